"""Inverted dropout."""

from __future__ import annotations

from deepfit.backend import RNGLike, array_module, as_generator, uniform
from deepfit.errors import DeepfitError
from deepfit.nn.layer import Layer


class Dropout(Layer):
    """Inverted dropout: keep each unit with probability ``keep_prob``, scale by ``1/keep_prob``.

    In training::

        d = (U[0, 1) < keep_prob) / keep_prob        a_out = a * d        da = da_out * d

    so ``E[a_out] = a`` and nothing needs rescaling at inference, where the layer is the
    identity. The mask is drawn uniformly (the notes' ``randn`` is a misprint: a normal draw
    would keep ``Phi(keep_prob)`` of the units, e.g. 79% instead of 80%) and the same mask is
    applied in backward.

    Note the convention: ``keep_prob`` is the probability of *keeping* a unit, as in the
    notes; PyTorch's and Keras' ``p``/``rate`` is ``1 - keep_prob``.

    References
    ----------
    Srivastava et al., "Dropout: a simple way to prevent neural networks from overfitting",
    JMLR 2014.
    """

    def __init__(self, keep_prob: float = 0.5, *, rng: RNGLike = None) -> None:
        super().__init__()
        if not isinstance(keep_prob, (int, float)) or not 0 < keep_prob <= 1:
            raise DeepfitError(f"Dropout keep_prob must be in (0, 1], got {keep_prob!r}")
        self.keep_prob = float(keep_prob)
        self.rng = as_generator(rng)
        self._mask = None

    @property
    def active(self) -> bool:
        """Whether the layer drops anything in training (``keep_prob < 1``)."""
        return self.keep_prob < 1.0

    def forward(self, a, training: bool = False):
        if not training or not self.active:
            self._mask = None if not training else 1
            return a
        xp = array_module(a)
        mask = uniform(self.rng, a.shape, a.dtype, xp) < self.keep_prob
        scaled = mask.astype(a.dtype)
        scaled *= a.dtype.type(1.0 / self.keep_prob)
        self._mask = scaled
        return a * scaled

    def backward(self, da):
        if self._mask is None:
            raise self._missing_cache()
        if not self.active:
            return da
        return da * self._mask

    def _clear_cache(self) -> None:
        self._mask = None

    def config(self) -> dict:
        return {"type": "Dropout", "keep_prob": self.keep_prob}

    def __repr__(self) -> str:
        return f"Dropout(keep_prob={self.keep_prob})"

"""Residual (skip-connection) blocks: ``y = z + f(z)``."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from deepfit.errors import DeepfitError, ShapeError
from deepfit.nn.layer import Layer
from deepfit.nn.sequential import Sequential


class Residual(Layer):
    """A residual block ``y = z + f(z)``, where ``f`` is a stack of layers (a
    :class:`~deepfit.nn.sequential.Sequential`) that keeps the width, typically
    ``[norm] -> Dense -> activation -> [Dropout] -> Dense``.

    Backward adds the identity path to the block's own gradient::

        dz = dy + J_f(z)^T dy

    so the gradient reaches the layers below undiminished however deep the stack (He et al.
    2016), the property Kadra et al. 2021 use in the "regularization cocktail" for tabular
    MLPs (skip connections, beside batch norm and dropout).

    The inner layers' arrays appear under ``"f.<index>.<key>"`` (``"f.1.W"``) in ``params``,
    ``grads`` and ``buffers``, so inside a model they are ``"<block>.f.<index>.<key>"``
    (``"2.f.1.W"``): unique, stable across save and load, and the inner layers' own arrays
    (optimizers update them in place). Weight penalties act on the inner weight matrices.

    References
    ----------
    He, Zhang, Ren and Sun, "Deep residual learning for image recognition", CVPR 2016.
    Kadra, Lindauer, Hutter and Grabocka, "Well-tuned simple nets excel on tabular datasets",
    NeurIPS 2021. Gorishniy, Rubachev, Khrulkov and Babenko, "Revisiting deep learning models
    for tabular data", NeurIPS 2021 (the pre-norm block used by :func:`~deepfit.nn.mlp`).
    """

    def __init__(self, layers: Sequence[Layer] | Sequential) -> None:
        # no Layer.__init__: the inner layers own the arrays, and params/grads/buffers are
        # views of theirs, rebuilt on every access
        self.f = layers if isinstance(layers, Sequential) else Sequential(layers)
        if not len(self.f):
            raise DeepfitError("Residual needs at least one layer in its block f")

    # -- the arrays, by qualified name ---------------------------------------------------
    @property
    def params(self) -> dict[str, Any]:  # type: ignore[override]
        return {f"f.{k}": v for k, v in self.f.params.items()}

    @property
    def grads(self) -> dict[str, Any]:  # type: ignore[override]
        return {f"f.{k}": v for k, v in self.f.grads.items()}

    @property
    def buffers(self) -> dict[str, Any]:  # type: ignore[override]
        return {f"f.{k}": v for k, v in self.f.buffers.items()}

    @property
    def decay_keys(self) -> tuple[str, ...]:  # type: ignore[override]
        return tuple(f"f.{k}" for k in self.f.decay_names())

    @property
    def n_in(self) -> int | None:
        """The block's width, as its first layer declares it (``None`` if none does)."""
        return self.f.n_inputs

    @property
    def n_out(self) -> int | None:
        return self.n_in

    def named_layers(self, prefix: str = "") -> Iterator[tuple[str, Layer]]:
        """The inner layers (recursively) under ``"<prefix>f.<index>"``."""
        return self.f.named_layers(prefix=f"{prefix}f.")

    # -- computation ---------------------------------------------------------------------
    def forward(self, z, training: bool = False):
        fz = self.f.forward(z, training)
        if fz.shape != z.shape:
            raise ShapeError(
                f"Residual block maps shape {tuple(z.shape)} to {tuple(fz.shape)}; z + f(z) "
                f"needs f to keep the shape"
            )
        return z + fz

    def backward(self, dy):
        return dy + self.f.backward(dy)

    def to(self, backend: str) -> Residual:
        self.f.to(backend)
        return self

    def astype(self, dtype: Any) -> Residual:
        self.f.astype(dtype)
        return self

    def _clear_cache(self) -> None:
        for layer in self.f:
            layer._clear_cache()

    def config(self) -> dict[str, Any]:
        return {"type": "Residual", "layers": self.f.config()}

    def __repr__(self) -> str:
        inner = ", ".join(repr(layer) for layer in self.f)
        return f"Residual({inner})"

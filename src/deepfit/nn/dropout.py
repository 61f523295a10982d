"""Inverted dropout, with masks from one random draw each."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy as np

from deepfit import kernels
from deepfit.backend import RNGLike, array_module, as_generator
from deepfit.errors import DeepfitError, ShapeError
from deepfit.nn.layer import Layer

# SplitMix64 (Steele, Lea and Flood, "Fast splittable pseudorandom number generators",
# OOPSLA 2014): state_k = seed + k * golden, bits_k = mix(state_k).
_GOLDEN = 0x9E3779B97F4A7C15
_MIX1 = 0xBF58476D1CE4E5B9
_MIX2 = 0x94D049BB133111EB


def mask_bits(seed: int, n: int, xp: ModuleType = np):
    """``n`` pseudo-random 32-bit integers (uint32) from one 64-bit ``seed``, on module ``xp``.

    Entry ``i`` is the low (even ``i``) or high (odd ``i``) half of ``splitmix64(seed + (i//2
    + 1) * golden)``: a counter-based stream, so any backend (NumPy, CuPy, the numba kernel
    :func:`deepfit.kernels.dropout_forward`) computes the same bits from the same seed without
    moving data, and a mask costs one draw from the layer's Generator.
    """
    u64 = xp.uint64
    blocks = (n + 1) // 2
    h = xp.arange(1, blocks + 1, dtype=u64)
    h *= u64(_GOLDEN)
    h += u64(seed)
    h ^= h >> u64(30)
    h *= u64(_MIX1)
    h ^= h >> u64(27)
    h *= u64(_MIX2)
    h ^= h >> u64(31)
    bits = xp.empty(2 * blocks, dtype=xp.uint32)
    bits[0::2] = h & u64(0xFFFFFFFF)
    bits[1::2] = h >> u64(32)
    return bits[:n]


def keep_threshold(keep_prob: float) -> int:
    """The integer ``t`` with ``P(bits < t) = t / 2^32``, the nearest to ``keep_prob``."""
    return min(round(keep_prob * 2**32), 2**32 - 1)


class Dropout(Layer):
    """Inverted dropout: keep each unit with probability ``keep_prob``, scale by ``1/keep_prob``.

    In training::

        d = (U[0, 1) < keep_prob) / keep_prob        a_out = a * d        da = da_out * d

    so ``E[a_out] = a`` and nothing needs rescaling at inference, where the layer is the
    identity. The mask is drawn uniformly (the notes' ``randn`` is a misprint: a normal draw
    would keep ``Phi(keep_prob)`` of the units, e.g. 79% instead of 80%) and the same mask is
    applied in backward. Each mask costs one draw from ``rng`` (a 64-bit seed) expanded into
    uniform 32-bit integers by :func:`mask_bits`; a unit is kept when its integer is below
    ``round(keep_prob * 2^32)``.

    Note the convention: ``keep_prob`` is the probability of *keeping* a unit, as in the
    notes; PyTorch's and Keras' ``p``/``rate`` is ``1 - keep_prob``.

    An explicit keep mask (for teaching and tests) replaces the random draw: ``D`` holds 1
    for a kept unit and 0 for a dropped one, has the input's shape, and is rescaled as a
    drawn mask is (``a_out = a * D / keep_prob``, ``da = da_out * D / keep_prob``). Give it
    for one call, ``forward(a, training=True, mask=D)``, or for every training forward until
    it is cleared, ``layer.mask = D`` (also ``Dropout(keep_prob, mask=D)``; set ``None`` to
    draw again), which also reaches a layer inside a ``Sequential``. A given mask draws
    nothing from ``rng`` and applies even when ``keep_prob = 1`` (then unscaled); at
    inference the layer stays the identity.

    References
    ----------
    Srivastava et al., "Dropout: a simple way to prevent neural networks from overfitting",
    JMLR 2014.
    """

    def __init__(self, keep_prob: float = 0.5, *, rng: RNGLike = None, mask: Any = None) -> None:
        super().__init__()
        if not isinstance(keep_prob, (int, float)) or not 0 < keep_prob <= 1:
            raise DeepfitError(f"Dropout keep_prob must be in (0, 1], got {keep_prob!r}")
        self.keep_prob = float(keep_prob)
        self.rng = as_generator(rng)
        self.mask = mask
        self._mask = None

    @property
    def mask(self) -> Any:
        """The fixed keep mask (0/1) every training forward uses, or ``None`` to draw one."""
        return self._fixed_mask

    @mask.setter
    def mask(self, mask: Any) -> None:
        self._fixed_mask = None if mask is None else _checked_keep_mask(mask)

    @property
    def active(self) -> bool:
        """Whether the layer drops anything in training (``keep_prob < 1``)."""
        return self.keep_prob < 1.0

    def forward(self, a, training: bool = False, *, mask: Any = None):
        if mask is not None and not training:
            raise DeepfitError(
                "Dropout mask= applies in training only (inference is the identity); call "
                "forward(x, training=True, mask=...)"
            )
        keep = self._fixed_mask if mask is None else _checked_keep_mask(mask)
        if training and keep is not None:
            xp = array_module(a)
            keep = xp.asarray(keep)
            if tuple(keep.shape) != tuple(a.shape):
                raise ShapeError(
                    f"Dropout mask has shape {tuple(keep.shape)}, the input {tuple(a.shape)}; "
                    f"give one 0/1 entry per unit"
                )
            self._mask = keep.astype(a.dtype) * a.dtype.type(1.0 / self.keep_prob)
            return a * self._mask
        if not training or not self.active:
            self._mask = None if not training else 1
            return a
        # one draw per mask: the generator's next 64 bits, as integers(0, 2**64, uint64)
        # gives them, without its range machinery
        seed = np.uint64(self.rng.bit_generator.random_raw())
        threshold = keep_threshold(self.keep_prob)
        scale = a.dtype.type(1.0 / self.keep_prob)
        if kernels.usable(a):
            out, mask = np.empty_like(a), np.empty_like(a)
            kernels.dropout_forward(
                a.reshape(-1), seed, np.uint64(threshold), scale, out.reshape(-1), mask.reshape(-1)
            )
        else:
            xp = array_module(a)
            keep = mask_bits(int(seed), a.size, xp) < xp.uint32(threshold)
            mask = keep.reshape(a.shape).astype(a.dtype)
            mask *= scale
            out = a * mask
        self._mask = mask
        return out

    def backward(self, da):
        if self._mask is None:
            raise self._missing_cache()
        if isinstance(self._mask, int):
            return da
        return da * self._mask

    def _clear_cache(self) -> None:
        self._mask = None

    def config(self) -> dict:
        return {"type": "Dropout", "keep_prob": self.keep_prob}

    def __repr__(self) -> str:
        return f"Dropout(keep_prob={self.keep_prob})"


def _checked_keep_mask(mask: Any) -> Any:
    """``mask`` as an array, refused unless every entry is 0 (drop) or 1 (keep)."""
    xp = array_module(mask)
    mask = xp.asarray(mask)
    if mask.dtype.kind not in "biuf":
        raise DeepfitError(f"Dropout mask must hold numbers 0 and 1, got dtype {mask.dtype}")
    bad = (mask != 0) & (mask != 1)
    if bool(bad.any()):
        value = mask.reshape(-1)[int(xp.argmax(bad.reshape(-1)))]
        raise DeepfitError(
            f"Dropout mask must hold 0 (drop) and 1 (keep) only, got {value.item()!r}"
        )
    return mask

"""Weight initializers: zeros, small random normal, Xavier/Glorot and He.

Each initializer is a callable ``(n_in, n_out, rng, dtype) -> W`` of shape ``(n_in, n_out)``,
where ``rng`` is a :class:`numpy.random.Generator`, a legacy :class:`numpy.random.RandomState`
or an int seed (converted once, by :func:`deepfit.backend.as_generator`). Biases are always
initialised to zero.

The scale matters because the variance of ``z = sum_i w_i x_i`` is ``n_in * Var(w) * E[x^2]``:
keeping it constant from layer to layer avoids vanishing or exploding activations in deep
networks.

References
----------
Glorot and Bengio, "Understanding the difficulty of training deep feedforward neural
networks", AISTATS 2010. He, Zhang, Ren and Sun, "Delving deep into rectifiers", ICCV 2015.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from deepfit.backend import RNGLike, as_generator, draw
from deepfit.backend import normal as _standard_normal
from deepfit.errors import DeepfitError

Initializer = Callable[[int, int, RNGLike, np.dtype], np.ndarray]


@dataclass(frozen=True)
class Zeros:
    """``W = 0``.

    Kept because it is a lesson: every hidden unit of a layer computes the same function and
    receives the same gradient, so the units stay identical (and with ReLU no gradient flows
    at all). Never train with it.
    """

    def __call__(self, n_in: int, n_out: int, rng: RNGLike, dtype: np.dtype):
        return np.zeros((n_in, n_out), dtype=dtype)


@dataclass(frozen=True)
class Normal:
    """``W ~ N(0, scale^2)``: the "small random" initialization (``scale = 0.01``)."""

    scale: float = 0.01

    def __call__(self, n_in: int, n_out: int, rng: RNGLike, dtype: np.dtype):
        return _standard_normal(as_generator(rng), (n_in, n_out), dtype, self.scale)


@dataclass(frozen=True)
class Xavier:
    """``W ~ N(0, 1/n_in)``: Xavier initialization as the notes give it (for tanh).

    Variance ``1/n_in`` keeps ``Var(z)`` equal to ``Var(x)`` for a linear or tanh unit; behind
    a ReLU it halves the activation variance at every layer.
    """

    def __call__(self, n_in: int, n_out: int, rng: RNGLike, dtype: np.dtype):
        return _standard_normal(as_generator(rng), (n_in, n_out), dtype, np.sqrt(1.0 / n_in))


@dataclass(frozen=True)
class GlorotUniform:
    """``W ~ U(-a, a)`` with ``a = sqrt(6 / (n_in + n_out))``, variance ``2/(n_in + n_out)``.

    Glorot and Bengio's "normalized initialization" (Keras' default).
    """

    def __call__(self, n_in: int, n_out: int, rng: RNGLike, dtype: np.dtype):
        limit = np.sqrt(6.0 / (n_in + n_out))
        rng = as_generator(rng)
        return draw(rng, (n_in, n_out), dtype, lambda n: rng.uniform(-limit, limit, n))


@dataclass(frozen=True)
class He:
    """``W ~ N(0, 2/n_in)``: He (Kaiming) initialization for ReLU networks.

    A ReLU zeroes half of its inputs, so ``E[a^2] = Var(z)/2``; variance ``2/n_in`` makes up
    for that and keeps the activation variance flat through any depth.
    """

    def __call__(self, n_in: int, n_out: int, rng: RNGLike, dtype: np.dtype):
        return _standard_normal(as_generator(rng), (n_in, n_out), dtype, np.sqrt(2.0 / n_in))


zeros = Zeros()
xavier = Xavier()
glorot_uniform = GlorotUniform()
he = He()


def normal(scale: float = 0.01) -> Normal:
    """Small random normal initializer ``N(0, scale^2)``."""
    if not scale > 0:
        raise DeepfitError(f"normal initializer scale must be > 0, got {scale}")
    return Normal(float(scale))


INITIALIZERS: dict[str, Initializer] = {
    "zeros": zeros,
    "normal": Normal(),
    "random": Normal(),
    "xavier": xavier,
    "glorot_uniform": glorot_uniform,
    "he": he,
}


def get_initializer(init: str | Initializer) -> Initializer:
    """Return the initializer named ``init`` (or ``init`` itself when it is callable)."""
    if callable(init):
        return init
    try:
        return INITIALIZERS[init]
    except KeyError:
        names = ", ".join(sorted(INITIALIZERS))
        raise DeepfitError(f"unknown init {init!r}; choose one of {names}") from None

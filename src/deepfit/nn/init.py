"""Weight initializers: zeros, small random normal, Xavier/Glorot, He, and the course
notebooks' draws (:class:`Course`).

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


class Course:
    """The course notebooks' initialization, draw for draw.

    ``np.random.seed(seed)`` once per network, then for each layer ``l`` in order::

        W[l] = np.random.randn(n_out, n_in) * std

    in the notebooks' ``(n_out, n_in)`` layout (deepfit's ``(n_in, n_out)`` weight is its
    transpose), drawn in float64 and cast to ``dtype``, biases zero, with

    - ``std = sqrt(2 / n_in)`` for ``"he"`` (the initialization and optimization exercises),
    - ``std = sqrt(1 / n_in)`` for ``"xavier"`` (the regularization exercise),
    - ``std = scale`` for a number (the initialization exercise's ``randn * 10``).

    Stateful: one instance draws a whole network's weights from one legacy
    :class:`numpy.random.RandomState`, layer after layer, and ignores the ``rng`` it is
    called with (so the network's other draws, its dropout masks, are unchanged). Build a
    fresh one per network (:func:`course`, or :func:`from_name`); the names
    ``course_he``, ``course_xavier`` and ``course_normal`` are therefore not in
    :data:`INITIALIZERS`, where one shared instance would serve every network.

    Parameters
    ----------
    std : "he", "xavier" or float
        The rule for the standard deviation (a number: the standard deviation itself, > 0).
    seed : int
        The seed of ``np.random.seed``, in ``[0, 2**32 - 1]`` (the notebooks use 3).
    """

    def __init__(self, std: str | float = "he", seed: int = 3) -> None:
        if isinstance(std, str):
            if std not in ("he", "xavier"):
                raise DeepfitError(
                    f"course initializer std must be 'he', 'xavier' or > 0, got {std!r}"
                )
        elif not (isinstance(std, (int, float)) and not isinstance(std, bool) and std > 0):
            raise DeepfitError(f"course initializer std must be 'he', 'xavier' or > 0, got {std!r}")
        if not (isinstance(seed, (int, np.integer)) and not isinstance(seed, bool)) or not (
            0 <= seed < 2**32
        ):
            raise DeepfitError(
                f"course initializer seed must be an integer in [0, 2**32 - 1], got {seed!r}"
            )
        self.std = std if isinstance(std, str) else float(std)
        self.seed = int(seed)
        self._state = np.random.RandomState(self.seed)

    def __call__(self, n_in: int, n_out: int, rng: RNGLike, dtype: np.dtype) -> np.ndarray:
        if isinstance(self.std, str):
            std = np.sqrt((2.0 if self.std == "he" else 1.0) / n_in)
        else:
            std = self.std
        return (self._state.randn(n_out, n_in) * std).T.astype(dtype)

    def __repr__(self) -> str:
        return f"Course({self.std!r}, seed={self.seed})"


def course(std: str | float = "he", seed: int = 3) -> Course:
    """A fresh :class:`Course` initializer (one per network)."""
    return Course(std, seed)


COURSE_INITIALIZERS: dict[str, str | None] = {
    "course_he": "he",
    "course_xavier": "xavier",
    "course_normal": None,  # std = scale
}


def from_name(name: str, *, scale: float = 0.01, seed: int = 3) -> Initializer:
    """The initializer called ``name``, built for one network: the names of
    :data:`INITIALIZERS`, ``"normal"`` with standard deviation ``scale``, or a course one
    (``"course_he"``, ``"course_xavier"``, ``"course_normal"`` with ``std = scale``) drawing
    from ``np.random.seed(seed)`` (see :class:`Course`)."""
    if name in COURSE_INITIALIZERS:
        rule = COURSE_INITIALIZERS[name]
        return course(scale if rule is None else rule, seed)
    if name == "normal":
        return normal(scale)
    return get_initializer(name)


def get_initializer(init: str | Initializer) -> Initializer:
    """Return the initializer named ``init`` (or ``init`` itself when it is callable)."""
    if callable(init):
        return init
    try:
        return INITIALIZERS[init]
    except KeyError:
        if init in COURSE_INITIALIZERS:
            raise DeepfitError(
                f"init {init!r} draws one network's weights from one stream: build it once per "
                f"network with deepfit.nn.init.from_name({init!r}, seed=...) and pass that"
            ) from None
        names = ", ".join(sorted(INITIALIZERS))
        raise DeepfitError(f"unknown init {init!r}; choose one of {names}") from None

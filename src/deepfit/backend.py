"""The array-module seam: NumPy on the CPU, CuPy on a GPU, one dtype policy, seeded Generators.

Every numerical routine asks :func:`array_module` which module owns its inputs and calls
that module's functions, so the same layer code runs on NumPy and on CuPy arrays. Random
draws always come from an explicit :class:`numpy.random.Generator`; nothing touches the
global ``np.random`` state.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy as np

from deepfit.errors import DeepfitError

DEFAULT_DTYPE = np.dtype(np.float32)
_FLOAT_DTYPES = {"float32": np.dtype(np.float32), "float64": np.dtype(np.float64)}

RNGLike = np.random.Generator | np.random.RandomState | int | np.integer | None


def resolve_dtype(dtype: Any = None) -> np.dtype:
    """Return the floating dtype asked for: float32 by default, float64 on request.

    Accepts ``None``, ``"float32"``, ``"float64"``, ``np.float32``, ``np.float64`` or a
    ``np.dtype`` of either. Anything else is refused: the library computes in float only.
    """
    if dtype is None:
        return DEFAULT_DTYPE
    try:
        resolved = np.dtype(dtype)
    except TypeError as exc:
        raise DeepfitError(
            f"dtype {dtype!r} is not a NumPy dtype; use 'float32' or 'float64'"
        ) from exc
    if resolved.name not in _FLOAT_DTYPES:
        raise DeepfitError(f"dtype {resolved.name} is not supported; use 'float32' or 'float64'")
    return resolved


def as_generator(rng: RNGLike = None) -> np.random.Generator:
    """Turn ``rng`` into a :class:`numpy.random.Generator`.

    ``None`` gives a freshly seeded generator (non-deterministic), an int seeds a new
    PCG64 generator (deterministic), and a Generator is returned as it is, so a caller
    that passes one generator to several constructors gets one reproducible stream. A legacy
    :class:`numpy.random.RandomState` is wrapped in a Generator over its own MT19937 bit
    generator: the two share one state, so draws through either advance both (as
    scikit-learn's ``check_random_state`` shares a RandomState), and the same seeded
    RandomState gives the same numbers every time.
    """
    if rng is None:
        return np.random.default_rng()
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, np.random.RandomState):
        return np.random.Generator(rng._bit_generator)
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
        if rng < 0:
            raise DeepfitError(f"rng seed must be a non-negative integer, got {rng}")
        return np.random.default_rng(int(rng))
    raise DeepfitError(
        f"rng must be a numpy.random.Generator, a RandomState, an int seed or None, got "
        f"{type(rng).__name__}"
    )


def array_module(*arrays: Any) -> ModuleType:
    """Return the array module (``numpy`` or ``cupy``) that owns ``arrays``.

    CuPy is imported only when one of the arrays is a CuPy array, so the CPU path never
    needs it installed.
    """
    for a in arrays:
        if type(a).__module__.split(".", 1)[0] == "cupy":
            import cupy

            return cupy
    return np


def get_backend(name: str = "numpy") -> ModuleType:
    """Return the array module called ``name`` (``"numpy"`` or ``"cupy"``).

    A clear error says how to install CuPy when it is asked for and missing.
    """
    if name in ("numpy", "cpu"):
        return np
    if name in ("cupy", "gpu"):
        try:
            import cupy
        except ImportError as exc:
            raise DeepfitError(
                "backend 'cupy' needs CuPy: pip install 'deepfit[gpu]' on a machine with CUDA"
            ) from exc
        return cupy
    raise DeepfitError(f"unknown backend {name!r}; use 'numpy' or 'cupy'")


def to_numpy(a: Any) -> np.ndarray:
    """Return ``a`` as a NumPy array (copied from the GPU when it is a CuPy array)."""
    if array_module(a) is np:
        return np.asarray(a)
    return a.get()


def uniform(rng: np.random.Generator, shape: tuple[int, ...], dtype: np.dtype, xp: ModuleType):
    """Draw ``U[0, 1)`` numbers of ``shape`` and ``dtype`` from ``rng`` onto module ``xp``.

    The draw itself always comes from the NumPy Generator, so results are the same on every
    backend for the same seed.
    """
    draw = rng.random(shape, dtype=dtype if dtype in (np.float32, np.float64) else np.float64)
    return draw if xp is np else xp.asarray(draw)


_DRAW_CHUNK = 1 << 20


def draw(
    rng: np.random.Generator,
    shape: tuple[int, ...],
    dtype: np.dtype,
    sample: Any,
) -> np.ndarray:
    """Fill an array of ``shape`` and ``dtype`` with ``sample(n)`` (float64 draws of ``n``
    numbers), one chunk of a million at a time.

    The result equals ``sample(size).astype(dtype)`` bit for bit (a Generator's stream does
    not depend on how the draws are split), but the float64 copy never exists whole: the
    peak is the final array plus 8 MB, not three times it.
    """
    out = np.empty(shape, dtype=dtype)
    flat = out.reshape(-1)
    for start in range(0, flat.size, _DRAW_CHUNK):
        stop = min(start + _DRAW_CHUNK, flat.size)
        flat[start:stop] = sample(stop - start)
    return out


def normal(
    rng: np.random.Generator, shape: tuple[int, ...], dtype: np.dtype, scale: float = 1.0
) -> np.ndarray:
    """Draw ``scale * N(0, 1)`` numbers of ``shape`` in ``dtype`` (float64 draws, cast in
    chunks by :func:`draw`).

    Drawing in float64 and casting keeps float32 and float64 models initialised from the
    same seed equal up to rounding.
    """
    return draw(rng, shape, dtype, lambda n: rng.standard_normal(n) * scale)

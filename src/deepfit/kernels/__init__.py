"""Optional JIT kernels: fused element-wise loops compiled by numba.

The loops run on one thread: measured here, a parallel (``prange``) Adam was no faster on
two cores, and a second thread pool beside BLAS's oversubscribes the cores as soon as tuning
workers run several trainings at once (on a busy two-core machine an OpenMP ``prange`` Adam
took 15-40 times the serial kernel's time).

numba is an optional extra (``pip install 'deepfit[fast]'``). Every kernel here has a
NumPy twin in the calling code that performs the same float operations in the same order,
so both paths give the same numbers (bit for bit on the CPU; the tests check it). The one
exception is :func:`softmax_cross_entropy`, whose ``exp`` and ``log`` are the compiled
ones, not NumPy's, and whose row sums run left to right: it agrees to rounding, and its
caller uses it for float32 only, so float64 stays bit for bit the NumPy path. The JIT is
used when numba imports and the environment variable ``DEEPFIT_JIT`` is not ``0``; tests
flip the module-level switch :data:`USE_JIT` to exercise both paths.

Kernels are compiled on first use with ``cache=True`` (the machine code is kept next to this
file, so later processes load it in milliseconds) and only for NumPy arrays: CuPy arrays
always take the array-module path.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

try:  # pragma: no cover - exercised by whichever environment runs the tests
    import numba as _numba
except ImportError:  # pragma: no cover
    _numba = None

#: Whether to use the JIT kernels when numba is installed (``DEEPFIT_JIT=0`` turns them off).
USE_JIT: bool = os.environ.get("DEEPFIT_JIT", "1").strip().lower() not in (
    "0",
    "false",
    "off",
    "no",
)


def available() -> bool:
    """Whether numba is importable."""
    return _numba is not None


def enabled() -> bool:
    """Whether the JIT kernels are in use (numba installed and :data:`USE_JIT` on)."""
    return USE_JIT and _numba is not None


def usable(*arrays: Any) -> bool:
    """Whether a kernel can take ``arrays``: JIT on, NumPy arrays in C order, all of one
    float dtype (float32 or float64)."""
    if not (USE_JIT and _numba is not None):
        return False
    dtype = arrays[0].dtype
    if dtype != np.float32 and dtype != np.float64:
        return False
    for a in arrays:
        if type(a) is not np.ndarray or a.dtype != dtype or not a.flags.c_contiguous:
            return False
    return True


_KERNELS = (  # the names served from deepfit.kernels._jit
    "adam_step",
    "relu_forward",
    "bias_relu_forward",
    "mask_multiply",
    "dropout_forward",
    "batchnorm_forward",
    "batchnorm_backward",
    "softmax_cross_entropy",
    "relu_dropout_forward",
    "dropout_relu_backward",
    "column_sum",
    "relu_backward_bias",
)


def __getattr__(name: str) -> Any:
    # the compiled kernels live in deepfit.kernels._jit, imported (and numba with it) only
    # when a kernel is first asked for
    if name in _KERNELS:
        from deepfit.kernels import _jit

        kernel = getattr(_jit, name)
        globals()[name] = kernel  # later look-ups skip this function
        return kernel
    raise AttributeError(name)

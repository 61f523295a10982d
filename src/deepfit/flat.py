"""One contiguous buffer seen as many arrays: the layout behind flat parameters.

A model's parameters (and, separately, their gradients) can live in one 1-D buffer, each
named array a C-ordered view of a segment of it, laid out in the model's parameter order::

    buffer = [ 0.W (n_in * n_out values) | 0.b | 2.W | 2.b | ... ]
    params["0.W"] = buffer[0 : n_in * n_out].reshape(n_in, n_out)

Per-array code (layers writing ``out=`` their gradient, penalties, clipping, averaging,
``state_dict``) sees ordinary arrays, while an optimizer that finds the arrays tiling one
buffer (:func:`flat_base`) updates every parameter in one pass over the buffer, as PyTorch's
fused and multi-tensor (``foreach``) optimizers do. Nothing depends on the layout being
there: arrays that do not tile a buffer are simply updated one by one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def _address(a: Any) -> int:
    """The address of an array's first element (NumPy or CuPy)."""
    if isinstance(a, np.ndarray):
        return a.__array_interface__["data"][0]
    return int(a.data.ptr)


def flat_base(arrays: Sequence[Any]) -> Any | None:
    """The 1-D buffer that ``arrays`` tile exactly, in order, or ``None``.

    ``arrays`` tile ``buffer`` when each is a C-contiguous view of it, all of its dtype, the
    first starting at element 0, each starting where the previous one ends, and the last
    ending at the buffer's end (``sum(a.size) == buffer.size``).
    """
    if not arrays:
        return None
    base = arrays[0].base
    if (
        base is None
        or type(base) is not type(arrays[0])
        or base.ndim != 1
        or not base.flags.c_contiguous
    ):
        return None
    dtype, itemsize = base.dtype, base.dtype.itemsize
    expected = _address(base)
    total = 0
    for a in arrays:
        if a.base is not base or a.dtype != dtype or not a.flags.c_contiguous:
            return None
        if a.size and _address(a) != expected:
            return None
        expected += a.size * itemsize
        total += a.size
    return base if total == base.size else None

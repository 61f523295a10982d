"""RowGather: a mini-batch's rows in one reused array, the values of X[idx]."""

from __future__ import annotations

import numpy as np
import pytest

from deepfit.data.batches import RowGather, minibatches
from deepfit.errors import DataError


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64])
def test_gathered_batches_equal_fancy_indexing_and_share_one_buffer(dtype):
    rng = np.random.default_rng(0)
    X = (rng.standard_normal((23, 3, 2)) * 10).astype(dtype)
    gather = RowGather(X, 5)
    seen = []
    for idx in minibatches(23, 5, rng):
        xb = gather(idx)
        np.testing.assert_array_equal(xb, X[idx])
        assert xb.dtype == X.dtype and xb.flags.c_contiguous
        assert xb.base is gather.buffer or xb is gather.buffer
        seen.append(len(idx))
    assert seen == [5, 5, 5, 5, 3]  # the last, smaller batch is a view of the first rows


def test_non_contiguous_rows_and_too_large_batches():
    X = np.asfortranarray(np.arange(40.0).reshape(10, 4))
    gather = RowGather(X, 4)
    idx = np.array([9, 0, 3])
    np.testing.assert_array_equal(gather(idx), X[idx])
    with pytest.raises(DataError, match="a batch of 5 rows does not fit the 4 rows"):
        gather(np.arange(5))
    with pytest.raises(DataError, match="batch_size must be an integer >= 1"):
        RowGather(X, 0)

import numpy as np
import pytest

from deepfit.data import HorizontalFlip, iterate_minibatches, minibatches
from deepfit.errors import DataError


@pytest.mark.parametrize(
    "n, bs, sizes",
    [
        (10, 4, [4, 4, 2]),
        (8, 4, [4, 4]),
        (3, 64, [3]),
        (5, 1, [1] * 5),
        (0, 4, []),
    ],
)
def test_batch_sizes_last_partial_kept(n, bs, sizes):
    batches = list(minibatches(n, bs, rng=0))
    assert [len(b) for b in batches] == sizes
    assert sorted(np.concatenate(batches or [np.array([], int)]).tolist()) == list(range(n))


def test_new_permutation_every_epoch_with_one_generator():
    gen = np.random.default_rng(0)
    e1 = np.concatenate(list(minibatches(50, 16, gen)))
    e2 = np.concatenate(list(minibatches(50, 16, gen)))
    assert sorted(e1.tolist()) == sorted(e2.tolist()) == list(range(50))
    assert not np.array_equal(e1, e2)
    same = np.concatenate(list(minibatches(50, 16, 0)))
    np.testing.assert_array_equal(same, np.concatenate(list(minibatches(50, 16, 0))))


def test_no_shuffle_in_order():
    batches = list(minibatches(5, 2, shuffle=False))
    assert [b.tolist() for b in batches] == [[0, 1], [2, 3], [4]]


@pytest.mark.parametrize("bs", [0, -1, 2.0, True, "8"])
def test_batch_size_validated_eagerly(bs):
    with pytest.raises(DataError, match="batch_size must be an integer >= 1"):
        minibatches(10, bs)


def test_iterate_minibatches_pairs_rows_and_augments():
    X = np.arange(20, dtype=np.float32).reshape(10, 2)
    y = np.arange(10)
    seen = []
    for Xb, yb in iterate_minibatches(X, y, 3, rng=0):
        np.testing.assert_array_equal(Xb[:, 0], 2 * yb)
        seen.extend(yb.tolist())
    assert sorted(seen) == list(range(10))
    flip = HorizontalFlip((1, 2), p=1.0)
    for Xb, yb in iterate_minibatches(X, y, 4, rng=0, augment=flip):
        np.testing.assert_array_equal(Xb[:, 1], 2 * yb)  # flipped columns
    np.testing.assert_array_equal(X[:, 0], np.arange(0, 20, 2))  # source untouched
    with pytest.raises(DataError, match="same number of rows"):
        iterate_minibatches(X, y[:5], 2)
    with pytest.raises(DataError, match="augment must be a callable"):
        iterate_minibatches(X, y, 2, augment="flip")

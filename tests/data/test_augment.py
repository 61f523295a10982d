import numpy as np
import pytest

from deepfit.data import Augment, Compose, HorizontalFlip, RandomCrop, RandomShift
from deepfit.errors import DataError

IMG = np.arange(1, 10, dtype=np.float32).reshape(3, 3)  # [[1,2,3],[4,5,6],[7,8,9]]


def _shift(transform, dy, dx, X):
    """Run ``transform._translate`` with fixed shifts."""
    n = X.shape[0]
    k = max(abs(dy), abs(dx))
    return transform._translate(X, np.full(n, dy), np.full(n, dx), k)


def test_shift_by_one_pixel_exact():
    t = RandomShift((3, 3), max_shift=1)
    X = IMG.reshape(1, 9)
    down = _shift(t, 1, 0, X).reshape(3, 3)
    np.testing.assert_array_equal(down, [[0, 0, 0], [1, 2, 3], [4, 5, 6]])
    right = _shift(t, 0, 1, X).reshape(3, 3)
    np.testing.assert_array_equal(right, [[0, 1, 2], [0, 4, 5], [0, 7, 8]])
    up_left = _shift(t, -1, -1, X).reshape(3, 3)
    np.testing.assert_array_equal(up_left, [[5, 6, 0], [8, 9, 0], [0, 0, 0]])


def test_random_shift_outputs_are_shifts_of_input():
    X = np.tile(IMG.reshape(1, 9), (200, 1))
    before = X.copy()
    out = RandomShift((3, 3), max_shift=1)(X, rng=0)
    np.testing.assert_array_equal(X, before)  # input untouched
    t = RandomShift((3, 3), max_shift=1)
    candidates = {(dy, dx): _shift(t, dy, dx, X[:1])[0] for dy in (-1, 0, 1) for dx in (-1, 0, 1)}
    seen = set()
    for row in out:
        match = [k for k, v in candidates.items() if np.array_equal(v, row)]
        assert len(match) == 1
        seen.add(match[0])
    assert len(seen) == 9  # every shift in [-1, 1]^2 drawn
    np.testing.assert_array_equal(out, RandomShift((3, 3), max_shift=1)(X, rng=0))


def test_horizontal_flip_exact_and_probability():
    X = np.tile(IMG.reshape(1, 9), (1000, 1))
    before = X.copy()
    out = HorizontalFlip((3, 3), p=0.5)(X, rng=1)
    np.testing.assert_array_equal(X, before)
    flipped = IMG[:, ::-1].reshape(9)
    is_flipped = np.all(out == flipped, axis=1)
    is_same = np.all(out == IMG.reshape(9), axis=1)
    assert np.all(is_flipped ^ is_same)
    assert 430 < is_flipped.sum() < 570
    np.testing.assert_array_equal(HorizontalFlip((3, 3), p=1.0)(X[:1], 0), flipped[None])
    np.testing.assert_array_equal(HorizontalFlip((3, 3), p=0.0)(X[:1], 0), X[:1])


def test_flip_with_channels_keeps_channels():
    img = np.arange(2 * 2 * 3, dtype=np.float32).reshape(2, 2, 3)
    out = HorizontalFlip((2, 2, 3), p=1.0)(img.reshape(1, 12), 0).reshape(2, 2, 3)
    np.testing.assert_array_equal(out, img[:, ::-1, :])


def test_random_crop_with_padding():
    X = np.tile(IMG.reshape(1, 9), (300, 1))
    out = RandomCrop((3, 3), padding=1)(X, rng=2)
    assert out.shape == X.shape and out.dtype == X.dtype
    # each output is a 3x3 window of the zero-padded 5x5 image
    padded = np.pad(IMG, 1)
    windows = {padded[r : r + 3, c : c + 3].tobytes() for r in range(3) for c in range(3)}
    assert {row.reshape(3, 3).tobytes() for row in out} == windows
    np.testing.assert_array_equal(RandomCrop((3, 3), padding=0)(X, 0), X)


def test_compose_deterministic_never_mutates_and_vectorized_shapes():
    rng = np.random.default_rng(0)
    X = rng.integers(0, 255, (64, 28 * 28)).astype(np.float32)
    before = X.copy()
    aug = Compose(
        HorizontalFlip((28, 28)),
        RandomCrop((28, 28), padding=2),
        RandomShift((28, 28), max_shift=1),
    )
    a = aug(X, 7)
    b = aug(X, np.random.default_rng(7))
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(X, before)
    assert a.shape == X.shape and a.dtype == np.float32
    assert not np.array_equal(a, aug(X, 8))
    assert Augment is Compose


def test_validation():
    with pytest.raises(DataError, match=r"expected \(n, 9\) rows of images of shape \(3, 3\)"):
        RandomShift((3, 3))(np.zeros((2, 8)), 0)
    with pytest.raises(DataError, match="image_shape"):
        HorizontalFlip((3,))
    with pytest.raises(DataError, match="p must be"):
        HorizontalFlip((3, 3), p=2)
    with pytest.raises(DataError, match="max_shift"):
        RandomShift((3, 3), max_shift=-1)
    with pytest.raises(DataError, match="padding"):
        RandomCrop((3, 3), padding=1.5)
    with pytest.raises(DataError, match="not callable"):
        Compose(3)

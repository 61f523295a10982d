import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deepfit.data import auto_split_sizes, train_dev_test_split
from deepfit.data.split import _stratified_counts, auto_holdout_size
from deepfit.errors import DataError


@pytest.mark.parametrize(
    "n, sizes",
    [
        (100, (60, 20, 20)),
        (10_000, (6_000, 2_000, 2_000)),
        (100_000, (96_000, 2_000, 2_000)),
        (1_000_000, (980_000, 10_000, 10_000)),
        (10_000_000, (9_800_000, 100_000, 100_000)),
    ],
)
def test_auto_rule(n, sizes):
    assert auto_split_sizes(n) == sizes


def test_auto_rule_is_monotone():
    ns = np.unique(np.logspace(0.5, 8, 400).astype(int))
    h = np.array([auto_holdout_size(int(n)) for n in ns])
    exact = np.maximum(0.01 * ns, np.minimum(0.2 * ns, 2000.0))
    assert np.all(np.abs(h - exact) <= 0.5 + 1e-9)
    assert np.all(np.diff(h) >= 0)  # the held-out count never shrinks
    assert np.all(np.diff(exact / ns) <= 1e-12)  # the held-out fraction never grows
    big = ns >= 10_000
    assert np.all((h[big] >= 0.01 * ns[big] - 0.5) & (h[big] <= 0.2 * ns[big]))
    assert np.all(h[big] >= 2000)


def test_auto_rule_tiny_data():
    assert auto_split_sizes(3) == (1, 1, 1)
    assert auto_split_sizes(12) == (8, 2, 2)


def _data(counts, seed=0):
    y = np.repeat(np.arange(len(counts)), counts)
    X = np.arange(len(y) * 2, dtype=np.float32).reshape(-1, 2)
    return X, y


def test_stratified_proportions_within_one_example():
    counts = [503, 97, 31, 7, 1]
    X, y = _data(counts)
    split = train_dev_test_split(X, y, (0.7, 0.2, 0.1), rng=1)
    assert split.sizes == (
        len(y) * 7 // 10,
        round(len(y) * 0.2),
        len(y) - len(y) * 7 // 10 - round(len(y) * 0.2),
    )
    for (Xs, ys), f in zip(split, (0.7, 0.2, 0.1), strict=True):
        got = np.bincount(ys, minlength=len(counts))
        assert np.all(np.abs(got - np.array(counts) * f) <= 1), (got, f)
        np.testing.assert_array_equal(y[(Xs[:, 0] / 2).astype(int)], ys)  # rows stay paired


def test_partition_and_alignment():
    X, y = _data([40, 60])
    split = train_dev_test_split(X, y, rng=0)
    idx = np.concatenate([split.train_index, split.dev_index, split.test_index])
    assert sorted(idx.tolist()) == list(range(100))
    for (Xs, ys), ix in zip(
        split, (split.train_index, split.dev_index, split.test_index), strict=True
    ):
        np.testing.assert_array_equal(Xs, X[ix])
        np.testing.assert_array_equal(ys, y[ix])
    assert split.sizes == (60, 20, 20)
    assert not np.all(np.diff(split.train_index) > 0)  # shuffled, not sorted by class


def test_deterministic_by_seed():
    X, y = _data([30, 30, 40])
    a = train_dev_test_split(X, y, rng=5)
    b = train_dev_test_split(X, y, rng=5)
    c = train_dev_test_split(X, y, rng=6)
    np.testing.assert_array_equal(a.train_index, b.train_index)
    np.testing.assert_array_equal(a.test_index, b.test_index)
    assert not np.array_equal(a.train_index, c.train_index)


def test_regression_targets_are_not_stratified_and_dev_may_be_zero():
    X = np.zeros((50, 3))
    y = np.linspace(0, 1, 50)
    (Xt, yt), (Xd, yd), (Xs, ys) = train_dev_test_split(X, y, (0.8, 0.0, 0.2), rng=0)
    assert (len(yt), len(yd), len(ys)) == (40, 0, 10)
    assert Xd.shape == (0, 3) and Xt.shape == (40, 3) and Xs.shape == (10, 3)
    assert sorted(np.concatenate([yt, ys]).tolist()) == sorted(y.tolist())


def test_string_labels_stratified():
    y = np.array(["a"] * 10 + ["b"] * 90)
    X = np.zeros((100, 1))
    split = train_dev_test_split(X, y, (0.5, 0.25, 0.25), rng=0)
    assert [(ys == "a").sum() for _, ys in split] in ([5, 2, 3], [5, 3, 2])


def test_supplied_test_set_auto_and_explicit():
    X, y = _data([500, 500])
    X_test, y_test = np.ones((300, 2), np.float32), np.zeros(300, np.int64)
    split = train_dev_test_split(X, y, test=(X_test, y_test), rng=0)
    assert split.test[0] is X_test and split.test_index is None
    # auto rule on the 1300 examples in all: dev = 260, the rest train
    assert split.sizes == (740, 260, 300)
    split = train_dev_test_split(X, y, (0.8, 0.2, 0.0), test=(X_test, y_test), rng=0)
    assert split.sizes == (800, 200, 300)
    with pytest.raises(DataError, match="test set was supplied, so its fraction must be 0"):
        train_dev_test_split(X, y, (0.6, 0.2, 0.2), test=(X_test, y_test))


def test_supplied_dev_and_test():
    X, y = _data([50, 50])
    dev = (np.zeros((5, 2)), np.zeros(5))
    test = (np.zeros((7, 2)), np.zeros(7))
    split = train_dev_test_split(X, y, dev=dev, test=test)
    assert split.sizes == (100, 5, 7) and split.dev_index is None
    assert sorted(split.train_index.tolist()) == list(range(100))
    with pytest.raises(DataError, match=r"supplied dev X has shape \(5, 3\)"):
        train_dev_test_split(X, y, dev=(np.zeros((5, 3)), np.zeros(5)))
    with pytest.raises(DataError, match="supplied test y"):
        train_dev_test_split(X, y, test=(np.zeros((5, 2)), np.zeros(4)))


@pytest.mark.parametrize(
    "fractions, pattern",
    [
        ((0.5, 0.3, 0.3), "sum to 1.1"),
        ((0.5, 0.5), "three numbers"),
        ((0.0, 0.5, 0.5), "train fraction 0.0 must be > 0"),
        ((0.5, -0.1, 0.6), r"dev fraction -0.1 must be in \[0, 1\)"),
        ((0.5, 0.5, float("nan")), "test fraction nan"),
        ("half", "'auto' or"),
        ((0.5, "x", 0.5), "three numbers"),
    ],
)
def test_fractions_validated(fractions, pattern):
    X, y = _data([5, 5])
    with pytest.raises(DataError, match=pattern):
        train_dev_test_split(X, y, fractions)


def test_shape_checks_and_too_little_data():
    with pytest.raises(DataError, match="2-D"):
        train_dev_test_split(np.zeros(5), np.zeros(5))
    with pytest.raises(DataError, match="y has shape"):
        train_dev_test_split(np.zeros((5, 1)), np.zeros(4))
    with pytest.raises(DataError, match="too few"):
        train_dev_test_split(np.zeros((2, 1)), np.array([0, 1]))


@settings(max_examples=150, deadline=None)
@given(
    counts=st.lists(st.integers(1, 60), min_size=1, max_size=8),
    f=st.tuples(st.integers(1, 98), st.integers(0, 98)).filter(lambda t: t[0] + t[1] < 100),
)
def test_stratified_counts_property(counts, f):
    n = sum(counts)
    fractions = (f[0] / 100, f[1] / 100, 1 - (f[0] + f[1]) / 100)
    from deepfit.data.split import _largest_remainder

    targets = _largest_remainder(n, fractions)
    table = _stratified_counts(counts, targets)
    assert table.sum(axis=0).tolist() == targets
    assert table.sum(axis=1).tolist() == counts
    ideal = np.outer(counts, targets) / n
    assert np.all(np.abs(table - ideal) < 1)

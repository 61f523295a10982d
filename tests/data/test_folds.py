"""Cross-validation folds (``tune.cv``): the one split function draws them, the tabular path
fits its preprocessing on each fold's training rows only."""

from __future__ import annotations

import numpy as np
import pytest

from deepfit import experiment
from deepfit.build import streams
from deepfit.data import train_dev_test_split
from deepfit.data.split import kfold_indices
from deepfit.errors import DataError
from deepfit.recipes import table_config


def labels(counts):
    return np.repeat(np.arange(len(counts)), counts)


@pytest.mark.parametrize("k", [2, 3, 5, 10])
def test_kfold_partitions_every_row_once_stratified(k):
    counts = [53, 31, 7, 2]
    y = labels(counts)
    folds = kfold_indices(y, k, rng=3)
    assert len(folds) == k
    every = np.concatenate(folds)
    np.testing.assert_array_equal(np.sort(every), np.arange(len(y)))  # each row exactly once
    sizes = [len(f) for f in folds]
    assert max(sizes) - min(sizes) <= 1 and sum(sizes) == len(y)
    for f in folds:
        got = np.bincount(y[f], minlength=len(counts))
        share = np.array(counts) * len(f) / len(y)
        assert np.all(np.abs(got - share) < 1 + 1e-9), (got, share)


def test_kfold_stratified_exact_values():
    y = np.array([0, 0, 0, 0, 1, 1, 1, 1, 1, 1])
    folds = kfold_indices(y, 2, rng=0)
    assert [np.bincount(y[f]).tolist() for f in folds] == [[2, 3], [2, 3]]


def test_kfold_is_deterministic_and_shuffled_by_the_seed():
    y = labels([40, 20])
    a, b = kfold_indices(y, 5, rng=7), kfold_indices(y, 5, rng=7)
    assert all(np.array_equal(f, g) for f, g in zip(a, b, strict=True))
    c = kfold_indices(y, 5, rng=8)
    assert not all(np.array_equal(f, g) for f, g in zip(a, c, strict=True))
    assert not np.array_equal(a[0], np.arange(12))  # shuffled, not the first rows in order


def test_kfold_regression_targets_are_not_stratified():
    y = np.linspace(0.0, 1.0, 23)
    folds = kfold_indices(y, 4, rng=0)
    assert [len(f) for f in folds] == [6, 6, 6, 5]
    np.testing.assert_array_equal(np.sort(np.concatenate(folds)), np.arange(23))


@pytest.mark.parametrize("k", [0, 1, True, 2.5, 11])
def test_kfold_refuses_bad_fold_counts(k):
    with pytest.raises(DataError, match="fold"):
        kfold_indices(np.arange(10.0), k)


@pytest.mark.parametrize("fractions", ["auto", (0.7, 0.2, 0.1), (0.85, 0.15, 0.0)])
def test_split_folds_cover_the_non_test_rows_and_keep_the_test_split(fractions):
    y = labels([60, 30, 10])
    X = np.arange(len(y), dtype=np.float64)[:, None]
    plain = train_dev_test_split(X, y, fractions, rng=11)
    k = 4
    devs = []
    for i in range(k):
        s = train_dev_test_split(X, y, fractions, rng=11, fold=(i, k))
        np.testing.assert_array_equal(s.test_index, plain.test_index)  # the test rows unchanged
        pool = np.sort(np.concatenate([plain.train_index, plain.dev_index]))
        np.testing.assert_array_equal(np.sort(np.concatenate([s.train_index, s.dev_index])), pool)
        assert not set(s.train_index) & set(s.dev_index)
        np.testing.assert_array_equal(s.dev[0][:, 0], s.dev_index)  # rows stay paired
        np.testing.assert_array_equal(s.train[1], y[s.train_index])
        devs.append(s.dev_index)
        # the fold's dev rows keep the classes' proportions of the non-test rows
        got = np.bincount(y[s.dev_index], minlength=3)
        share = np.bincount(y[pool], minlength=3) * len(s.dev_index) / len(pool)
        assert np.all(np.abs(got - share) < 1 + 1e-9)
    every = np.concatenate(devs)
    assert len(every) == len(set(every.tolist()))  # each non-test row a dev row exactly once
    np.testing.assert_array_equal(
        np.sort(every), np.sort(np.concatenate([plain.train_index, plain.dev_index]))
    )
    again = train_dev_test_split(X, y, fractions, rng=11, fold=(2, k))
    np.testing.assert_array_equal(again.dev_index, devs[2])


@pytest.mark.parametrize("fold", [(4, 4), (-1, 3), (0, 1), ("a", 3), (1,)])
def test_split_refuses_bad_folds(fold):
    X, y = np.zeros((20, 1)), np.arange(20.0)
    with pytest.raises(DataError, match="fold"):
        train_dev_test_split(X, y, (0.8, 0.2, 0.0), fold=fold)


def test_split_refuses_folds_of_a_supplied_dev_set():
    X, y = np.zeros((20, 1)), np.arange(20.0)
    with pytest.raises(DataError, match="supplied dev set"):
        train_dev_test_split(X, y, "auto", dev=(X[:3], y[:3]), fold=(0, 3))


def test_split_refuses_more_folds_than_training_rows():
    X, y = np.zeros((6, 1)), np.arange(6.0)
    with pytest.raises(DataError, match="too few for 5 cross-validation folds"):
        train_dev_test_split(X, y, (0.5, 0.0, 0.5), fold=(0, 5))


# -- the tabular path ---------------------------------------------------------------------------
N = 60


def table(tmp_path):
    """60 rows: a real-valued x (unique per row), a category with one row of its own ("rare",
    row 17) and a regression target."""
    rows = ["x,c,y"]
    for r in range(N):
        c = "rare" if r == 17 else ("a" if r % 3 else "b")
        rows.append(f"{0.37 * r + 0.001 * r * r:.6f},{c},{np.sin(r) * 3 + 0.1 * r:.6f}")
    path = tmp_path / "t.csv"
    path.write_text("\n".join(rows) + "\n")
    x = np.array([0.37 * r + 0.001 * r * r for r in range(N)])
    y = np.array([round(np.sin(r) * 3 + 0.1 * r, 6) for r in range(N)])
    return path, np.round(x, 6), y


def test_each_fold_fits_the_scaler_levels_and_target_on_its_training_rows_only(tmp_path):
    path, x, y = table(tmp_path)
    config = table_config(path, "y", overrides=["data.split=[0.8, 0.1, 0.1]"])
    seed = streams(config["train"]["seed"])["data"]
    k = 4
    plain = experiment.prepare(config)
    expected_test = train_dev_test_split(
        np.arange(N)[:, None], y, (0.8, 0.1, 0.1), rng=seed
    ).test_index
    rare_dev = 0
    for i in range(k):
        data = experiment.prepare(config, fold=(i, k))
        rows = train_dev_test_split(
            np.arange(N)[:, None], y, (0.8, 0.1, 0.1), rng=seed, fold=(i, k)
        )
        np.testing.assert_array_equal(rows.test_index, expected_test)
        tr = rows.train_index
        assert data.train[0].shape[0] == len(tr) and data.dev[0].shape[0] == len(rows.dev_index)
        pre = data.preprocessor
        j = pre.numeric.index("x")
        # the scaler's statistics are those of the fold's training rows, not of all rows
        np.testing.assert_allclose(pre.scaler.mean_[j], x[tr].mean(), rtol=1e-12)
        np.testing.assert_allclose(pre.scaler.std_[j], x[tr].std(), rtol=1e-12)
        assert not np.isclose(pre.scaler.mean_[j], x[np.setdiff1d(np.arange(N), tr)].mean())
        # as are the regression target's
        np.testing.assert_allclose(data.target.mean, y[tr].mean(), rtol=1e-12)
        # a category level seen only in the fold's dev rows is unknown to its preprocessing
        if 17 in rows.dev_index:
            rare_dev += 1
            assert "rare" not in pre.vocab["c"]
        else:
            assert "rare" in pre.vocab["c"]
        # the test rows are the usual ones, transformed by this fold's fit (its own columns)
        assert data.test[0].shape == (plain.test[0].shape[0], data.train[0].shape[1])
    assert rare_dev == 1  # row 17 is a dev row in exactly one fold


def test_a_streamed_table_refuses_folds_naming_the_keys(tmp_path):
    path, _, _ = table(tmp_path)
    config = table_config(path, "y", overrides=["data.stream=true"])
    with pytest.raises(Exception, match=r"tune\.cv.*data\.stream"):
        experiment.prepare(config, fold=(0, 3))


def test_in_memory_arrays_take_folds_too():
    from deepfit import config as C

    cfg = C.validate({"data": {"source": "digits", "split": [0.8, 0.2, 0.0]}})
    a = experiment.prepare(cfg, fold=(0, 3))
    b = experiment.prepare(cfg, fold=(1, 3))
    whole = experiment.prepare(cfg)
    n = whole.train[0].shape[0] + whole.dev[0].shape[0]
    assert a.train[0].shape[0] + a.dev[0].shape[0] == n
    assert abs(a.dev[0].shape[0] - n / 3) <= 1 and abs(b.dev[0].shape[0] - n / 3) <= 1
    # each fold standardized on its own training rows: mean 0 there (to float32 rounding)
    np.testing.assert_allclose(a.train[0].mean(axis=0), 0.0, atol=1e-5)
    assert not np.allclose(a.standardizer["mean"], b.standardizer["mean"])

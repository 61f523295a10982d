"""Mixup and CutMix for rows: the formulas with the draws replayed, soft targets, weights."""

from __future__ import annotations

import numpy as np
import pytest

import deepfit as df
from deepfit.data.mixup import Mixup


def _batch(m=6, d=5, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((m, d)).astype(np.float32), rng.integers(0, 3, m)


def test_mixup_mixes_rows_and_one_hot_targets_with_one_lambda():
    x, y = _batch()
    w = np.arange(1.0, 7.0)
    xm, t, wm = Mixup(alpha=0.4)(x, y, np.random.default_rng(7), n_classes=3, weight=w)
    replay = np.random.default_rng(7)
    lam, pi = replay.beta(0.4, 0.4), replay.permutation(6)
    np.testing.assert_allclose(xm, lam * x + (1 - lam) * x[pi], rtol=1e-6)
    onehot = np.eye(3)[y]
    np.testing.assert_allclose(t, lam * onehot + (1 - lam) * onehot[pi], rtol=1e-6)
    np.testing.assert_allclose(t.sum(axis=1), 1.0, rtol=1e-6)  # still distributions
    np.testing.assert_allclose(wm, lam * w + (1 - lam) * w[pi])
    assert xm.dtype == t.dtype == np.float32
    x2, y2 = _batch()
    assert np.array_equal(x, x2) and np.array_equal(y, y2)  # inputs untouched


def test_cutmix_swaps_a_random_subset_of_columns():
    x, y = _batch(m=8, d=10)
    xm, t, _ = Mixup(alpha=1.0, kind="cutmix")(x, y.astype(float), np.random.default_rng(3))
    replay = np.random.default_rng(3)
    lam, pi = replay.beta(1.0, 1.0), replay.permutation(8)
    c = round((1 - lam) * 10)
    cols = replay.choice(10, size=c, replace=False)
    expected = x.copy()
    expected[:, cols] = x[pi][:, cols]
    np.testing.assert_array_equal(xm, expected)
    kept = 1 - c / 10  # targets mix with the share of columns kept
    np.testing.assert_allclose(t, kept * y + (1 - kept) * y[pi], rtol=1e-6)


def test_regression_targets_mix_linearly_and_prob_zero_is_identity():
    x, _ = _batch()
    y = np.random.default_rng(1).standard_normal((6, 2))
    _xm, t, _ = Mixup(alpha=0.2)(x, y, np.random.default_rng(5))
    replay = np.random.default_rng(5)
    lam, pi = replay.beta(0.2, 0.2), replay.permutation(6)
    np.testing.assert_allclose(t, lam * y + (1 - lam) * y[pi])
    same = Mixup(prob=0.0)(x, y, np.random.default_rng(5))
    assert same[0] is x and same[1] is y


def test_same_seed_same_mixture_and_bad_settings():
    x, y = _batch()
    a = Mixup()(x, y, np.random.default_rng(2), n_classes=3)
    b = Mixup()(x, y, np.random.default_rng(2), n_classes=3)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    with pytest.raises(df.DeepfitError, match="kind must be one of mixup, cutmix"):
        Mixup(kind="cutout")
    with pytest.raises(df.DeepfitError, match="alpha must be a number > 0"):
        Mixup(alpha=0)
    with pytest.raises(df.DeepfitError, match=r"prob must be in \[0, 1\]"):
        Mixup(prob=2)


def test_mixup_never_blends_category_codes():
    """Codes for an embedding layer stay whole numbers: a mixed row keeps the code of the row
    with the larger share."""
    rng = np.random.default_rng(0)
    x = np.column_stack([rng.normal(size=64), rng.integers(1, 9, size=64)]).astype(np.float32)
    y = rng.normal(size=64).astype(np.float32)
    for seed in range(20):
        mixed, _, _ = Mixup(alpha=1.0)(x, y, np.random.default_rng(seed), discrete=[1])
        assert np.array_equal(mixed[:, 1], np.round(mixed[:, 1]))
        assert set(mixed[:, 1]) <= set(x[:, 1])


def test_trainer_mixup_with_an_embedding_first_layer():
    rng = np.random.default_rng(1)
    codes = rng.integers(1, 30, size=300)
    x = np.column_stack([rng.normal(size=300), codes]).astype(np.float32)
    y = (x[:, 0] + (codes % 3 == 0) > 0.5).astype(np.int64)
    embed = {"columns": [1], "cardinalities": [31], "dims": [4]}
    model = df.mlp(2, [16], 2, embed=embed, rng=0)
    trainer = df.Trainer(model, optimizer=df.Adam(0.01), mixup=Mixup(alpha=0.4), seed=0)
    history = trainer.fit(x, y, epochs=5)
    assert np.isfinite(history.records[-1]["train_loss"])

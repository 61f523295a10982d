"""deepfit.metrics against sklearn.metrics: one definition of accuracy and R^2, weighted or not,
single or multi-output, constant targets included."""

from __future__ import annotations

import numpy as np
import pytest

from deepfit import metrics
from deepfit.errors import DeepfitError

sk = pytest.importorskip("sklearn.metrics")


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("seed", range(5))
def test_accuracy_is_sklearns(seed, weighted):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, size=50)
    pred = np.where(rng.random(50) < 0.7, y, rng.integers(0, 4, size=50))
    w = rng.random(50) * 3 if weighted else None
    assert metrics.accuracy(y, pred, w) == pytest.approx(
        sk.accuracy_score(y, pred, sample_weight=w), abs=1e-15
    )


def test_accuracy_by_hand_and_on_names():
    assert metrics.accuracy([0, 1, 1, 2], [0, 1, 0, 0]) == 0.5
    # weights 1, 1, 2, 0: hits on the first two: (1 + 1) / 4
    assert metrics.accuracy([0, 1, 1, 2], [0, 1, 0, 0], [1, 1, 2, 0]) == 0.5
    assert metrics.accuracy(["a", "b"], np.array(["a", "a"], dtype=object)) == 0.5
    assert metrics.accuracy([], []) == 0.0


@pytest.mark.parametrize("multioutput", ["uniform_average", "variance_weighted", "raw_values"])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("shape", [(40,), (40, 1), (40, 3)])
def test_r2_is_sklearns(shape, weighted, multioutput):
    rng = np.random.default_rng(len(shape) + shape[-1])
    # outputs on very different scales: where pooling and averaging disagree
    scale = np.array([1.0, 100.0, 0.01])[: shape[-1] if len(shape) == 2 else 1]
    y = (rng.normal(size=(40, scale.size)) * scale).reshape(shape)
    pred = y + (rng.normal(size=(40, scale.size)) * scale * 0.5).reshape(shape)
    w = rng.random(40) * 2 if weighted else None
    ours = metrics.r2_score(y, pred, w, multioutput=multioutput)
    theirs = sk.r2_score(y, pred, sample_weight=w, multioutput=multioutput)
    np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-14)


def test_r2_of_constant_targets_is_sklearns_force_finite():
    y = np.array([[1.0, 2.0], [1.0, 3.0], [1.0, 4.0]])
    exact = y.copy()
    off = y + np.array([[0.5, 0.0]])
    for pred in (exact, off):
        for mo in ("uniform_average", "variance_weighted", "raw_values"):
            np.testing.assert_allclose(
                metrics.r2_score(y, pred, multioutput=mo), sk.r2_score(y, pred, multioutput=mo)
            )
    assert metrics.r2_score(y, off, multioutput="raw_values").tolist() == [0.0, 1.0]


def test_r2_averages_outputs_uniformly_not_pooled():
    """The issue's case: one wide output fitted well, one narrow output fitted badly. Pooling
    the sums gives about 0.99; scikit-learn's average of the two R^2 about 0.5."""
    rng = np.random.default_rng(0)
    wide = rng.normal(size=200) * 100
    narrow = rng.normal(size=200)
    y = np.stack([wide, narrow], axis=1)
    pred = np.stack([wide + rng.normal(size=200), np.zeros(200)], axis=1)
    pooled = 1 - ((y - pred) ** 2).sum() / ((y - y.mean(axis=0)) ** 2).sum()
    assert pooled > 0.99
    ours = metrics.r2_score(y, pred)
    assert ours == pytest.approx(sk.r2_score(y, pred), abs=1e-12)
    assert 0.45 < ours < 0.5


def test_bad_inputs_name_the_culprit():
    with pytest.raises(DeepfitError, match="2 true labels but 3 predictions"):
        metrics.accuracy([0, 1], [0, 1, 1])
    with pytest.raises(DeepfitError, match="sample_weight has 1 entries for 2 samples"):
        metrics.r2_score([0.0, 1.0], [0.0, 1.0], [1.0])
    with pytest.raises(DeepfitError, match="non-negative"):
        metrics.accuracy([0, 1], [0, 1], [1.0, -1.0])
    with pytest.raises(DeepfitError, match="multioutput"):
        metrics.r2_score([0.0, 1.0], [0.0, 1.0], multioutput="pooled")
    with pytest.raises(DeepfitError, match=r"shape \(2, 1\) but predictions \(2, 2\)"):
        metrics.r2_score([0.0, 1.0], [[0.0, 1.0], [1.0, 2.0]])


def test_runs_and_the_regressor_score_agree_on_multi_output_data():
    """experiment.evaluate (summary.json's r2, tuning's dev_r2) gives scikit-learn's R^2, the
    number DeepFitRegressor.score gives for the same predictions."""
    import deepfit as df
    from deepfit import experiment

    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 3)).astype(np.float32)
    y = np.stack([X[:, 0] * 50.0, X[:, 1] * 0.1 + rng.normal(size=64) * 0.1], axis=1)
    trainer = df.Trainer(df.mlp(3, [8], 2, rng=0), loss="mse", optimizer=df.Adam(lr=1e-2))
    trainer.fit(X, y.astype(np.float32), epochs=3)
    r2 = experiment.evaluate(trainer, X, y.astype(np.float32))["r2"]
    assert r2 == pytest.approx(sk.r2_score(y, trainer.predict(X)), rel=1e-6)

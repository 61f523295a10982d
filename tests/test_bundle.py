"""ModelBundle: raw inputs in, original labels out."""

from __future__ import annotations

import numpy as np
import pytest

import deepfit as df
from deepfit.bundle import ModelBundle
from deepfit.data import Standardizer


def test_predict_applies_the_training_standardizer_and_maps_labels(tmp_path):
    rng = np.random.default_rng(0)
    X_raw = rng.normal(1000, 50, (200, 2))
    y = (X_raw[:, 0] > 1000).astype(int)
    scaler = Standardizer().fit(X_raw)
    model = df.mlp(2, [8], 2, rng=0)
    df.Trainer(model, optimizer=df.Adam(0.05)).fit(scaler.transform(X_raw), y, epochs=30)
    bundle = ModelBundle(model, standardizer=scaler.state_dict(), class_names=["low", "high"])
    loaded = df.io.load(df.io.save(bundle, tmp_path / "m.npz"))
    labels = loaded.predict(X_raw)
    assert set(labels) == {"low", "high"}
    assert np.mean(labels == np.where(y == 1, "high", "low")) > 0.95
    proba = loaded.predict_proba(X_raw[:3])
    assert proba.shape == (3, 2) and np.allclose(proba.sum(axis=1), 1)


def test_binary_and_regression_bundles():
    model = df.mlp(3, [4], 1, rng=0)
    binary = ModelBundle(model, loss="sigmoid_binary_cross_entropy", class_names=["no", "yes"])
    proba = binary.predict_proba(np.zeros((2, 3)))
    assert proba.shape == (2, 2) and np.allclose(proba.sum(axis=1), 1)
    expected = np.where(proba[:, 1] > 0.5, "yes", "no")
    assert list(binary.predict(np.zeros((2, 3)))) == list(expected)
    regression = ModelBundle(model, loss="mse")
    assert regression.predict(np.zeros((2, 3))).shape == (2, 1)


def test_wrong_width_is_refused():
    bundle = ModelBundle(df.mlp(3, [4], 2, rng=0))
    with pytest.raises(df.ShapeError, match=r"shape \(rows, 3\) for this model, got \(2, 5\)"):
        bundle.predict(np.zeros((2, 5)))

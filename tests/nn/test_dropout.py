"""Inverted dropout: keep fraction, preserved mean, same mask in backward, reproducibility."""

from __future__ import annotations

import numpy as np
import pytest

import deepfit as df
from tests.gradients import layer_gradient_errors


def test_keep_fraction_and_mean_on_a_million_units():
    layer = df.Dropout(0.5, rng=0)
    x = np.ones((1000, 1000), dtype=np.float32)
    y = layer.forward(x, training=True)
    kept = float((y != 0).mean())
    assert abs(kept - 0.5) < 0.005
    assert set(np.unique(y)) == {0.0, 2.0}  # survivors scaled by 1/keep_prob
    assert abs(float(y.mean()) - 1.0) < 0.01  # E[a * d / keep_prob] = a


def test_keep_fraction_is_uniform_not_normal():
    # the notes' randn draw would keep Phi(0.8) = 79% of the units
    y = df.Dropout(0.8, rng=1).forward(np.ones((1000, 1000)), training=True)
    assert abs(float((y != 0).mean()) - 0.8) < 0.002


def test_backward_applies_the_forward_mask():
    rng = np.random.default_rng(0)
    layer = df.Dropout(0.7, rng=3)
    x = rng.standard_normal((50, 40))
    y = layer.forward(x, training=True)
    mask = y / x
    dy = rng.standard_normal(x.shape)
    assert np.allclose(layer.backward(dy), dy * mask)


def test_gradient_with_replayed_mask():
    rng = np.random.default_rng(0)
    layer = df.Dropout(0.6)

    def reseed():
        layer.rng = np.random.default_rng(123)

    errors = layer_gradient_errors(layer, rng.standard_normal((7, 5)), rng, reseed)
    assert errors["x"] < 1e-7


def test_identity_at_inference_and_reproducible_from_seed():
    x = np.random.default_rng(0).standard_normal((20, 30)).astype(np.float32)
    assert df.Dropout(0.5, rng=0).forward(x, training=False) is x
    a = df.Dropout(0.5, rng=42).forward(x, training=True)
    b = df.Dropout(0.5, rng=42).forward(x, training=True)
    c = df.Dropout(0.5, rng=43).forward(x, training=True)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert a.dtype == np.float32


def test_keep_prob_one_is_identity_in_training():
    layer = df.Dropout(1.0)
    x = np.ones((3, 3))
    assert layer.forward(x, training=True) is x
    assert layer.backward(x) is x


@pytest.mark.parametrize("keep_prob", [0, -0.1, 1.5, "0.5"])
def test_invalid_keep_prob(keep_prob):
    with pytest.raises(df.DeepfitError, match="keep_prob"):
        df.Dropout(keep_prob)

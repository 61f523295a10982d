"""Per-layer statistics flag vanishing and exploding networks."""

from __future__ import annotations

import numpy as np

import deepfit as df
from deepfit.checks import layerstats


def _data():
    rng = np.random.default_rng(0)
    return rng.standard_normal((256, 20)), rng.integers(0, 3, 256)


def test_he_is_flat_and_small_random_vanishes_in_a_deep_relu_net():
    X, y = _data()
    stats = layerstats.compare_initializers(20, [64] * 12, 3, df.SoftmaxCrossEntropy(), X, y)
    he = [s["activation_std"] for s in stats["he"]]
    assert 0.3 < he[-1] / he[0] < 3
    assert all(s["activation_flag"] == "ok" for s in stats["he"])
    assert stats["normal"][-1]["activation_flag"] == "vanishing"
    assert all(s["activation_std"] == 0 for s in stats["zeros"])
    assert stats["xavier"][-1]["activation_std"] < he[-1] / 10  # halves per layer
    assert "flags" in layerstats.report(stats["he"])


def test_exploding_and_saturation_are_reported():
    X, y = _data()
    model = df.mlp(20, [64] * 6, 3, activation="tanh", init=df.init.normal(1.0), rng=0)
    stats = layerstats.layer_statistics(model, df.SoftmaxCrossEntropy(), X, y)
    assert stats[-1]["saturated"] > 0.5  # tanh driven into its flat tails
    relu = df.mlp(20, [64] * 6, 3, init=df.init.normal(1.0), rng=0)
    stats = layerstats.layer_statistics(relu, df.SoftmaxCrossEntropy(), X, y)
    assert stats[-1]["activation_flag"] == "exploding"
    assert relu.dtype == np.float32  # the model itself is not touched

"""Initializers: the statistics that make deep ReLU networks trainable, and the zeros lesson."""

from __future__ import annotations

import numpy as np
import pytest

import deepfit as df
from deepfit.nn.init import get_initializer
from deepfit.nn.objective import cost_and_gradients


def _preactivation_variances(init: str, depth: int = 30, width: int = 512) -> np.ndarray:
    """Var(z_l) through a ``depth``-layer ReLU stack at initialization (no biases)."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((1000, width))
    variances = []
    for _ in range(depth):
        z = df.Dense(width, width, init=init, bias=False, rng=rng, dtype="float64").forward(a)
        variances.append(float(z.var()))
        a = np.maximum(z, 0)
    return np.array(variances)


def test_he_keeps_a_30_layer_relu_stack_flat():
    v = _preactivation_variances("he")
    assert v[0] == pytest.approx(2.0, rel=0.05)
    assert 0.5 < v[-1] / v[0] < 2.0


def test_xavier_halves_the_variance_per_relu_layer():
    v = _preactivation_variances("xavier")
    per_layer = (v[-1] / v[0]) ** (1 / (len(v) - 1))
    assert per_layer == pytest.approx(0.5, abs=0.03)
    assert v[-1] < 1e-7


@pytest.mark.parametrize(
    ("name", "variance"),
    [("he", 2 / 400), ("xavier", 1 / 400), ("glorot_uniform", 2 / 700), ("normal", 1e-4)],
)
def test_weight_variances(name, variance):
    W = get_initializer(name)(400, 300, np.random.default_rng(0), np.dtype(np.float64))
    assert W.shape == (400, 300)
    assert W.mean() == pytest.approx(0, abs=0.05 * np.sqrt(variance))
    assert W.var() == pytest.approx(variance, rel=0.02)


def test_custom_scale_and_callable():
    W = df.init.normal(10.0)(100, 100, np.random.default_rng(0), np.dtype(np.float32))
    assert W.std() == pytest.approx(10.0, rel=0.03) and W.dtype == np.float32
    layer = df.Dense(3, 2, init=df.init.normal(10.0), rng=0)
    assert np.abs(layer.params["W"]).max() > 1.0


def test_zeros_keeps_units_symmetric():
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((64, 4)), rng.integers(0, 2, 64)
    loss = df.SoftmaxCrossEntropy()
    for activation in ("sigmoid", "relu"):
        model = df.mlp(4, [5, 3], 2, activation=activation, init="zeros", dtype="float64")
        opt = df.SGD(0.5)
        for _ in range(50):
            cost_and_gradients(model, loss, X, y)
            opt.step(model.params, model.grads)
        for name in ("0.W", "2.W"):
            W = model.params[name]
            # every hidden unit (column) is the same function of its inputs
            assert np.allclose(W, W[:, :1]), (activation, name)
        if activation == "relu":
            assert not model.params["0.W"].any()  # no gradient ever reaches a zero ReLU net
    # the binary cost of a zero-initialised ReLU net is stuck near ln 2
    model = df.mlp(4, [5], 1, init="zeros", dtype="float64")
    bce = df.SigmoidBinaryCrossEntropy()
    assert bce.forward(model.forward(X), y) == pytest.approx(np.log(2))


def test_unknown_initializer():
    with pytest.raises(df.DeepfitError, match="unknown init 'kaiming'"):
        get_initializer("kaiming")
    with pytest.raises(df.DeepfitError, match="scale must be > 0"):
        df.init.normal(0)

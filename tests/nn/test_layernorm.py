"""LayerNorm: per-row statistics, full backward by finite differences (float64), and
torch.nn.LayerNorm as the oracle."""

from __future__ import annotations

import numpy as np
import pytest

import deepfit as df
from deepfit.nn import layer_from_config
from tests.gradients import layer_gradient_errors
from tests.torch_oracle import Oracle

ORACLE = Oracle("layernorm", 1e-12, 1e-14, float64=True)
ORACLE.worst = -1.0  # so that an exact first comparison is recorded too


@pytest.fixture(scope="module", autouse=True)
def _report_worst(request):
    yield
    if ORACLE.worst >= 0:  # something was compared (torch installed)
        ORACLE.report(request.config)


def test_rows_are_normalized_then_scaled_and_shifted():
    rng = np.random.default_rng(0)
    layer = df.LayerNorm(5, dtype="float64")
    x = rng.standard_normal((4, 5)) * 3 + 7
    y = layer.forward(x)
    np.testing.assert_allclose(y.mean(axis=1), 0, atol=1e-14)
    np.testing.assert_allclose(y.var(axis=1), 1 / (1 + 1e-5 / x.var(axis=1)), rtol=1e-12)
    layer.params["gamma"][...] = [1, 2, 3, 4, 5]
    layer.params["beta"][...] = -1
    y2 = layer.forward(x)
    np.testing.assert_allclose(y2, y * [1, 2, 3, 4, 5] - 1, rtol=1e-14)
    # training and inference compute the same function; one row is a valid batch
    np.testing.assert_array_equal(layer.forward(x, training=True), y2)
    np.testing.assert_array_equal(layer.forward(x[:1], training=True), y2[:1])


def test_gradient_float64_with_a_random_upstream():
    rng = np.random.default_rng(1)
    layer = df.LayerNorm(6, dtype="float64")
    layer.params["gamma"][...] = rng.standard_normal(6)
    layer.params["beta"][...] = rng.standard_normal(6)
    errors = layer_gradient_errors(layer, rng.standard_normal((5, 6)) * 2 + 1, rng)
    assert errors["x"] < 1e-8, errors
    assert errors["gamma"] < 1e-8 and errors["beta"] < 1e-8, errors


def test_gradient_over_leading_axes():
    rng = np.random.default_rng(2)
    layer = df.LayerNorm(4, dtype="float64")
    layer.params["gamma"][...] = rng.standard_normal(4)
    errors = layer_gradient_errors(layer, rng.standard_normal((3, 2, 4)), rng)
    assert max(errors.values()) < 1e-8, errors


def test_refuses_bad_arguments_and_shapes():
    with pytest.raises(df.DeepfitError, match="n_features must be a positive integer"):
        df.LayerNorm(0)
    with pytest.raises(df.DeepfitError, match="eps must be > 0"):
        df.LayerNorm(3, eps=0.0)
    with pytest.raises(df.ShapeError, match=r"expects input of shape \(\.\.\., 3\), got \(2, 4\)"):
        df.LayerNorm(3).forward(np.zeros((2, 4)))
    layer = df.LayerNorm(3)
    layer.forward(np.zeros((2, 3)))
    with pytest.raises(RuntimeError, match="without a preceding forward"):
        layer.backward(np.zeros((2, 3)))


def test_config_dtype_and_penalties():
    layer = df.LayerNorm(7, eps=1e-3)
    rebuilt = layer_from_config(layer.config(), dtype="float64")
    assert rebuilt.config() == {"type": "LayerNorm", "n_features": 7, "eps": 1e-3}
    assert rebuilt.dtype == np.float64 and layer.dtype == np.float32
    assert layer.astype("float64").params["gamma"].dtype == np.float64
    assert layer.decay_keys == ()  # gamma and beta are not weight matrices


@pytest.mark.torch
def test_matches_torch_layernorm_forward_and_every_gradient():
    torch = pytest.importorskip("torch")
    oracle = ORACLE
    rng = np.random.default_rng(3)
    n = 9
    ours = df.LayerNorm(n, eps=1e-5, dtype="float64")
    ours.params["gamma"][...] = rng.standard_normal(n)
    ours.params["beta"][...] = rng.standard_normal(n)
    theirs = torch.nn.LayerNorm(n, eps=1e-5, dtype=torch.float64)
    with torch.no_grad():  # gamma/beta are torch's weight/bias
        theirs.weight.copy_(torch.from_numpy(ours.params["gamma"]))
        theirs.bias.copy_(torch.from_numpy(ours.params["beta"]))
    x = rng.standard_normal((11, n)) * 4 - 2
    dy = rng.standard_normal((11, n))
    y = ours.forward(x, training=True)
    dx = ours.backward(dy)
    x_t = torch.from_numpy(x).requires_grad_()
    y_t = theirs(x_t)
    (y_t * torch.from_numpy(dy)).sum().backward()
    oracle.assert_matches("LayerNorm forward", y, y_t)
    oracle.assert_matches("LayerNorm dx", dx, x_t.grad)
    oracle.assert_matches("LayerNorm dgamma", ours.grads["gamma"], theirs.weight.grad)
    oracle.assert_matches("LayerNorm dbeta", ours.grads["beta"], theirs.bias.grad)

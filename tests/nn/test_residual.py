"""Residual blocks: z + f(z), nested qualified names, gradients by finite differences
(float64), config and state round trips, and the same block written in PyTorch."""

from __future__ import annotations

import numpy as np
import pytest

import deepfit as df
from deepfit.nn import layer_from_config
from tests.gradients import layer_gradient_errors
from tests.torch_oracle import Oracle

ORACLE = Oracle("residual", 1e-11, 1e-13, float64=True)
ORACLE.worst = -1.0  # so that an exact first comparison is recorded too


@pytest.fixture(scope="module", autouse=True)
def _report_worst(request):
    yield
    if ORACLE.worst >= 0:  # something was compared (torch installed)
        ORACLE.report(request.config)


def block(d: int = 5, w: int = 7, norm: str | None = "layernorm", seed: int = 0):
    rng = np.random.default_rng(seed)
    layers = []
    if norm == "layernorm":
        layers.append(df.LayerNorm(d, dtype="float64"))
    elif norm == "batchnorm":
        layers.append(df.BatchNorm(d, dtype="float64"))
    layers += [
        df.Dense(d, w, rng=rng, dtype="float64"),
        df.Tanh(),
        df.Dense(w, d, rng=rng, dtype="float64"),
    ]
    return df.Residual(layers)


def test_forward_is_z_plus_f_of_z():
    res = block()
    z = np.random.default_rng(1).standard_normal((4, 5))
    np.testing.assert_array_equal(res.forward(z), z + res.f.forward(z))


def test_inner_names_are_qualified_and_are_the_inner_arrays():
    res = block(norm="batchnorm")
    assert list(res.params) == ["f.0.gamma", "f.0.beta", "f.1.W", "f.1.b", "f.3.W", "f.3.b"]
    assert list(res.grads) == list(res.params)
    assert list(res.buffers) == ["f.0.running_mean", "f.0.running_var"]
    assert res.decay_keys == ("f.1.W", "f.3.W")
    assert res.params["f.1.W"] is res.f[1].params["W"]
    model = df.Sequential([df.Dense(3, 5, rng=0, dtype="float64"), res, df.Dense(5, 2, rng=0)])
    assert "1.f.3.W" in model.params and "1.f.0.running_var" in model.buffers
    assert model.decay_names() == ["0.W", "1.f.1.W", "1.f.3.W", "2.W"]
    assert [name for name, _ in model.named_layers()] == [
        "0",
        "1",
        "1.f.0",
        "1.f.1",
        "1.f.2",
        "1.f.3",
        "2",
    ]
    model.params["1.f.1.W"][...] = 3.0  # in-place updates reach the inner layer
    assert np.all(res.f[1].params["W"] == 3.0)


@pytest.mark.parametrize("norm", [None, "layernorm", "batchnorm"])
def test_gradient_float64(norm):
    rng = np.random.default_rng(2)
    res = block(norm=norm, seed=3)
    errors = layer_gradient_errors(res, rng.standard_normal((6, 5)), rng)
    assert max(errors.values()) < 1e-7, errors


def test_width_change_is_refused_naming_both_shapes():
    res = df.Residual([df.Dense(4, 3, rng=0)])
    with pytest.raises(df.ShapeError, match=r"maps shape \(2, 4\) to \(2, 3\)"):
        res.forward(np.zeros((2, 4), dtype=np.float32))
    with pytest.raises(df.DeepfitError, match="at least one layer"):
        df.Residual([])


def test_config_round_trip_and_state():
    res = block(norm="batchnorm")
    res.forward(np.random.default_rng(0).standard_normal((8, 5)), training=True)
    config = res.config()
    assert config["type"] == "Residual" and [c["type"] for c in config["layers"]] == [
        "BatchNorm",
        "Dense",
        "Tanh",
        "Dense",
    ]
    rebuilt = layer_from_config(config, 4, dtype="float64", rng=7)
    assert rebuilt.config() == config
    a = df.Sequential([res])
    b = df.Sequential([rebuilt])
    b.load_state_dict(a.state_dict())
    z = np.random.default_rng(1).standard_normal((3, 5))
    np.testing.assert_array_equal(a.predict(z), b.predict(z))
    with pytest.raises(df.DeepfitError, match=r"layer 4\.f\.1: unknown layer type 'Nope'"):
        layer_from_config({"type": "Residual", "layers": [{"type": "Tanh"}, {"type": "Nope"}]}, 4)
    with pytest.raises(df.DeepfitError, match=r"layer 2 \(Residual\): config must be"):
        layer_from_config({"type": "Residual", "layers": "Dense"}, 2)


def test_astype_and_to_reach_the_inner_layers():
    res = df.Residual([df.LayerNorm(3), df.Dense(3, 3, rng=0)])
    assert res.dtype == np.float32
    res.astype("float64").to("numpy")
    assert res.dtype == np.float64
    assert all(v.dtype == np.float64 for v in (*res.params.values(), *res.grads.values()))
    assert res.forward(np.ones((2, 3))).dtype == np.float64


@pytest.mark.torch
@pytest.mark.parametrize("norm", ["layernorm", "batchnorm"])
def test_block_matches_torch(norm):
    torch = pytest.importorskip("torch")
    oracle = ORACLE
    d, w, m = 5, 7, 9
    ours = block(d, w, norm=norm, seed=4)
    if norm == "layernorm":
        norm_t = torch.nn.LayerNorm(d, dtype=torch.float64)
    else:
        norm_t = torch.nn.BatchNorm1d(d, momentum=0.1, dtype=torch.float64)  # ours 0.9
    lin1 = torch.nn.Linear(d, w, dtype=torch.float64)
    lin2 = torch.nn.Linear(w, d, dtype=torch.float64)
    rng = np.random.default_rng(5)
    gamma, beta = rng.standard_normal(d), rng.standard_normal(d)
    ours.f[0].params["gamma"][...] = gamma
    ours.f[0].params["beta"][...] = beta
    with torch.no_grad():
        norm_t.weight.copy_(torch.from_numpy(gamma))
        norm_t.bias.copy_(torch.from_numpy(beta))
        lin1.weight.copy_(torch.from_numpy(ours.f[1].params["W"].T))  # Linear.weight = W^T
        lin1.bias.copy_(torch.from_numpy(ours.f[1].params["b"]))
        lin2.weight.copy_(torch.from_numpy(ours.f[3].params["W"].T))
        lin2.bias.copy_(torch.from_numpy(ours.f[3].params["b"]))
    norm_t.train()

    x = rng.standard_normal((m, d)) * 2 + 1
    dy = rng.standard_normal((m, d))
    y = ours.forward(x, training=True)
    dx = ours.backward(dy)
    x_t = torch.from_numpy(x).requires_grad_()
    y_t = x_t + lin2(torch.tanh(lin1(norm_t(x_t))))
    (y_t * torch.from_numpy(dy)).sum().backward()

    oracle.assert_matches("Residual forward", y, y_t)
    oracle.assert_matches("Residual dx", dx, x_t.grad)
    oracle.assert_matches("Residual d gamma", ours.grads["f.0.gamma"], norm_t.weight.grad)
    oracle.assert_matches("Residual d beta", ours.grads["f.0.beta"], norm_t.bias.grad)
    oracle.assert_matches("Residual dW1", ours.grads["f.1.W"], lin1.weight.grad.T)
    oracle.assert_matches("Residual db1", ours.grads["f.1.b"], lin1.bias.grad)
    oracle.assert_matches("Residual dW2", ours.grads["f.3.W"], lin2.weight.grad.T)
    oracle.assert_matches("Residual db2", ours.grads["f.3.b"], lin2.bias.grad)
    if norm == "batchnorm":
        oracle.assert_matches(
            "Residual running_mean", ours.buffers["f.0.running_mean"], norm_t.running_mean
        )
        oracle.assert_matches(
            "Residual running_var", ours.buffers["f.0.running_var"], norm_t.running_var
        )

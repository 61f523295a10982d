"""Dense + ReLU, and BatchNorm + ReLU (+ Dropout), fused in Sequential.forward and backward:
the numbers, caches and gradients of the layer-by-layer passes, on the NumPy and the JIT
path."""

from __future__ import annotations

import numpy as np
import pytest

import deepfit as df
from deepfit import kernels

JIT = [False, True] if kernels.available() else [False]


def layer_by_layer(model, x, training):
    x = np.asarray(x, dtype=model.dtype)
    for layer in model.layers:
        x = layer.forward(x, training)
    return x


@pytest.mark.parametrize("jit", JIT)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("training", [False, True])
def test_fused_forward_equals_the_layers_one_by_one(monkeypatch, jit, dtype, training):
    monkeypatch.setattr(kernels, "USE_JIT", jit)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((33, 7))
    x[3, 2] = np.nan  # a NaN row passes through as NaN
    model = df.mlp(7, [16, 9], 3, rng=0, dtype=dtype)
    fused = model.forward(x, training)
    expected = layer_by_layer(model, x, training)
    np.testing.assert_array_equal(fused, expected)
    assert np.isnan(fused[3]).all() and np.isfinite(np.delete(fused, 3, axis=0)).all()


@pytest.mark.parametrize("jit", JIT)
def test_fused_forward_leaves_the_same_gradients(monkeypatch, jit):
    monkeypatch.setattr(kernels, "USE_JIT", jit)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((20, 5)).astype(np.float32)
    dy = rng.standard_normal((20, 2)).astype(np.float32)
    model = df.mlp(5, [8, 8], 2, rng=0, keep_prob=1.0)
    model.forward(x, training=True)
    dx_fused = model.backward(dy)
    g_fused = {k: v.copy() for k, v in model.grads.items()}
    positive = model.layers[1]._positive.copy()
    layer_by_layer(model, x, training=True)
    np.testing.assert_array_equal(model.layers[1]._positive, positive)
    dx = model.backward(dy)
    np.testing.assert_array_equal(dx_fused, dx)
    for k, g in model.grads.items():
        np.testing.assert_array_equal(g_fused[k], g, err_msg=k)


@pytest.mark.parametrize("jit", JIT)
def test_bias_relu_kernel_matches_numpy(monkeypatch, jit):
    monkeypatch.setattr(kernels, "USE_JIT", jit)
    rng = np.random.default_rng(2)
    z = rng.standard_normal((6, 4)).astype(np.float32)
    b = np.array([0.5, -0.5, 0.0, np.inf], dtype=np.float32)
    relu = df.ReLU()
    a = relu.forward_biased(z.copy(), b, training=True)
    np.testing.assert_array_equal(a, np.maximum(z + b, 0))
    np.testing.assert_array_equal(relu._positive, z + b > 0)
    relu.forward_biased(z.copy(), b)  # inference: nothing cached
    assert relu._positive is None


def test_dense_without_bias_and_other_activations_are_not_fused():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((10, 4))
    for model in (
        df.mlp(4, [6], 2, batchnorm=True, rng=0),  # Dense(bias=False) -> BatchNorm -> ReLU
        df.mlp(4, [6], 2, activation="tanh", rng=0),
    ):
        np.testing.assert_array_equal(
            model.forward(x, training=True), layer_by_layer(model, x, training=True)
        )


def _bn_model(dtype, keep_prob):
    # Dense(no bias) -> BatchNorm -> ReLU [-> Dropout] per hidden layer
    return df.mlp(6, [12, 10], 3, batchnorm=True, keep_prob=keep_prob, rng=0, dtype=dtype)


def _train_pass(model, x, dy, fused):
    if fused:
        out = model.forward(x, training=True)
        dx = model.backward(dy)
    else:
        out = layer_by_layer(model, x, training=True)
        for layer in reversed(model.layers):
            dy = layer.backward(dy)
        dx = dy
    caches = []
    for layer in model.layers:
        for name in ("_positive", "_mask", "_z_hat", "_inv_std"):
            value = getattr(layer, name, None)
            if isinstance(value, np.ndarray):
                caches.append(value.copy())
    return out, dx, {**model.grads, **model.buffers}, caches


@pytest.mark.parametrize("jit", JIT)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("keep_prob", [1.0, 0.7])
def test_fused_batchnorm_relu_dropout_equals_the_layers(monkeypatch, jit, dtype, keep_prob):
    monkeypatch.setattr(kernels, "USE_JIT", jit)
    rng = np.random.default_rng(4)
    x = rng.standard_normal((24, 6))
    dy = rng.standard_normal((24, 3)).astype(dtype)
    results = []
    for fused in (True, False):
        model = _bn_model(dtype, keep_prob)  # same weights and dropout streams
        for _ in range(2):  # the second pass: running statistics and masks moved on
            results_step = _train_pass(model, x, dy, fused)
        results.append(results_step)
    (out0, dx0, g0, c0), (out1, dx1, g1, c1) = results
    np.testing.assert_array_equal(out0, out1)
    np.testing.assert_array_equal(dx0, dx1)
    assert g0.keys() == g1.keys()
    for k in g0:
        np.testing.assert_array_equal(g0[k], g1[k], err_msg=k)
    assert len(c0) == len(c1) > 0
    for a, b in zip(c0, c1, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_fused_batchnorm_path_equals_the_numpy_path(monkeypatch, dtype):
    if not kernels.available():
        pytest.skip("numba is not installed")
    rng = np.random.default_rng(5)
    x = rng.standard_normal((32, 6))
    x[4, 1] = np.nan  # NaN columns stay NaN on both paths
    dy = rng.standard_normal((32, 3)).astype(dtype)
    results = []
    for jit in (False, True):
        monkeypatch.setattr(kernels, "USE_JIT", jit)
        with np.errstate(invalid="ignore"):
            results.append(_train_pass(_bn_model(dtype, 0.8), x, dy, fused=True))
    (out0, dx0, g0, c0), (out1, dx1, g1, c1) = results
    np.testing.assert_array_equal(out0, out1)
    np.testing.assert_array_equal(dx0, dx1)
    for k in g0:
        np.testing.assert_array_equal(g0[k], g1[k], err_msg=k)
    for a, b in zip(c0, c1, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("jit", JIT)
def test_fused_batchnorm_with_a_fixed_dropout_mask(monkeypatch, jit):
    monkeypatch.setattr(kernels, "USE_JIT", jit)
    rng = np.random.default_rng(6)
    x = rng.standard_normal((8, 6)).astype(np.float32)
    dy = rng.standard_normal((8, 3)).astype(np.float32)
    keep = (rng.random((8, 12)) < 0.5).astype(np.float32)
    results = []
    for fused in (True, False):
        model = _bn_model("float32", 0.5)
        model.layers[3].mask = keep  # the first hidden layer's Dropout
        results.append(_train_pass(model, x, dy, fused))
    for a, b in zip(results[0][:2], results[1][:2], strict=True):
        np.testing.assert_array_equal(a, b)
    dropout = _bn_model("float32", 0.5).layers[3]
    assert type(dropout) is df.Dropout


@pytest.mark.parametrize("jit", JIT)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("input_grad", [True, False])
@pytest.mark.parametrize("rows", [1, 17])
def test_fused_relu_bias_backward_equals_the_layers(monkeypatch, jit, dtype, input_grad, rows):
    # Dense -> ReLU backward: the bias gradient summed in ReLU's pass (one hidden layer of
    # a single unit keeps NumPy's own sum)
    rng = np.random.default_rng(7)
    x = rng.standard_normal((rows, 5))
    dy = rng.standard_normal((rows, 3)).astype(dtype)
    results = []
    for fused, use_jit in ((True, jit), (False, jit), (False, False)):  # last: NumPy's own
        monkeypatch.setattr(kernels, "USE_JIT", use_jit)
        model = df.mlp(5, [8, 1, 6], 3, rng=0, dtype=dtype)
        model.forward(x, training=True)
        if fused:
            dx = model.backward(dy, input_grad=input_grad)
        else:
            d = dy
            for layer in reversed(model.layers[1:] if not input_grad else model.layers):
                d = layer.backward(d)
            dx = d if input_grad else model.layers[0].backward_params(d)
        results.append((dx, {k: v.copy() for k, v in model.grads.items()}))
    (dx0, g0) = results[0]
    for dx1, g1 in results[1:]:
        if input_grad:
            np.testing.assert_array_equal(dx0, dx1)
        else:
            assert dx0 is None and dx1 is None
        for k in g0:
            np.testing.assert_array_equal(g0[k], g1[k], err_msg=k)

"""Dense + ReLU fused in Sequential.forward: the numbers, caches and gradients of the
layer-by-layer forward, on the NumPy and the JIT path."""

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

"""Dense and the activations: gradient checks on random shapes, and the Layer contract."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import deepfit as df
from tests.gradients import layer_gradient_errors

shapes = st.tuples(st.integers(1, 6), st.integers(1, 5), st.integers(1, 5))
seeds = st.integers(0, 2**32 - 1)


@settings(max_examples=25, deadline=None)
@given(shape=shapes, seed=seeds, bias=st.booleans())
def test_dense_gradients(shape, seed, bias):
    m, n_in, n_out = shape
    rng = np.random.default_rng(seed)
    layer = df.Dense(n_in, n_out, bias=bias, rng=rng, dtype="float64")
    layer.params["W"][...] = rng.standard_normal((n_in, n_out))
    if bias:
        layer.params["b"][...] = rng.standard_normal(n_out)
    errors = layer_gradient_errors(layer, rng.standard_normal((m, n_in)), rng)
    assert set(errors) == ({"x", "W", "b"} if bias else {"x", "W"})
    assert max(errors.values()) < 1e-7, errors


@pytest.mark.parametrize("make", [df.ReLU, lambda: df.LeakyReLU(0.1), df.Tanh, df.Sigmoid], ids=str)
@settings(max_examples=15, deadline=None)
@given(m=st.integers(1, 6), n=st.integers(1, 6), seed=seeds)
def test_activation_gradients(make, m, n, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((m, n)) * 3
    errors = layer_gradient_errors(make(), x, rng)
    assert errors["x"] < 1e-7, errors


def test_activation_values():
    z = np.array([[-2.0, 0.0, 3.0]])
    assert np.array_equal(df.ReLU().forward(z), [[0.0, 0.0, 3.0]])
    assert np.allclose(df.LeakyReLU(0.1).forward(z), [[-0.2, 0.0, 3.0]])
    assert np.allclose(df.Tanh().forward(z), np.tanh(z))
    assert np.allclose(df.Sigmoid().forward(z), 1 / (1 + np.exp(-z)))


def test_sigmoid_is_stable_for_huge_inputs():
    z = np.array([[-1000.0, 1000.0]], dtype=np.float32)
    with np.errstate(over="raise", invalid="raise", divide="raise"):  # underflow is fine
        a = df.Sigmoid().forward(z)
    assert np.array_equal(a, [[0.0, 1.0]])


def test_dense_forward_values_and_orientation():
    layer = df.Dense(2, 3, init="zeros", dtype="float64")
    layer.params["W"][...] = [[1, 2, 3], [4, 5, 6]]
    layer.params["b"][...] = [0.5, 0, -0.5]
    z = layer.forward(np.array([[1.0, 1.0]]))
    assert np.array_equal(z, [[5.5, 7.0, 8.5]])


def test_backward_assigns_rather_than_accumulates():
    rng = np.random.default_rng(0)
    layer = df.Dense(3, 2, rng=rng, dtype="float64")
    x = rng.standard_normal((4, 3))
    dy = rng.standard_normal((4, 2))
    layer.forward(x, training=True)
    layer.backward(dy)
    first = layer.grads["W"].copy()
    layer.forward(x, training=True)
    layer.backward(dy)
    assert np.array_equal(layer.grads["W"], first)
    assert np.allclose(first, x.T @ dy)


def test_backward_without_training_forward_is_refused():
    layer = df.Dense(3, 2, rng=0)
    layer.forward(np.ones((2, 3)), training=False)
    with pytest.raises(RuntimeError, match="training=True"):
        layer.backward(np.ones((2, 2)))
    relu = df.ReLU()
    with pytest.raises(RuntimeError):
        relu.backward(np.ones((1, 1)))


def test_dense_refuses_wrong_input_width_naming_shapes():
    layer = df.Dense(4, 2, rng=0)
    with pytest.raises(df.ShapeError, match=r"\(batch, 4\), got \(5, 3\)"):
        layer.forward(np.ones((5, 3)))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_in": 0, "n_out": 2}, "n_in"),
        ({"n_in": 2, "n_out": -1}, "n_out"),
        ({"n_in": 2, "n_out": 2, "init": "bogus"}, "unknown init 'bogus'"),
    ],
)
def test_dense_invalid_arguments(kwargs, message):
    with pytest.raises(df.DeepfitError, match=message):
        df.Dense(**kwargs)


def test_float32_by_default_and_float64_on_request():
    layer = df.Dense(3, 2, rng=0)
    assert layer.params["W"].dtype == np.float32
    assert layer.forward(np.ones((1, 3))).dtype == np.float32
    layer.astype("float64")
    assert layer.params["W"].dtype == np.float64 and layer.grads["b"].dtype == np.float64


def test_same_seed_same_weights():
    a = df.Dense(5, 4, rng=7).params["W"]
    b = df.Dense(5, 4, rng=7).params["W"]
    c = df.Dense(5, 4, rng=8).params["W"]
    assert np.array_equal(a, b) and not np.array_equal(a, c)

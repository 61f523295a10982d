"""Batch norm: full gradient, running statistics as an EWA, inference mode."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import deepfit as df
from tests.gradients import layer_gradient_errors


@settings(max_examples=25, deadline=None)
@given(m=st.integers(3, 8), n=st.integers(1, 5), seed=st.integers(0, 2**32 - 1))
def test_full_gradient(m, n, seed):
    rng = np.random.default_rng(seed)
    layer = df.BatchNorm(n, dtype="float64")
    layer.params["gamma"][...] = rng.uniform(0.5, 2, n)
    layer.params["beta"][...] = rng.standard_normal(n)
    x = rng.standard_normal((m, n)) * 2 + 1
    errors = layer_gradient_errors(layer, x, rng)
    assert max(errors.values()) < 1e-7, errors


def test_simplified_gradient_would_be_caught():
    # The gradient that ignores mu(x), var(x) is gamma * dy / sigma; ours must differ from it
    rng = np.random.default_rng(0)
    layer = df.BatchNorm(3, dtype="float64")
    x = rng.standard_normal((6, 3))
    layer.forward(x, training=True)
    dy = rng.standard_normal((6, 3))
    dx = layer.backward(dy)
    naive = dy / np.sqrt(x.var(axis=0) + layer.eps)
    assert np.abs(dx - naive).max() > 0.1
    # and the full gradient is orthogonal to constants: shifting x changes nothing
    assert np.allclose(dx.sum(axis=0), 0)


def test_training_output_is_normalized():
    rng = np.random.default_rng(1)
    layer = df.BatchNorm(4, eps=1e-12, dtype="float64")
    y = layer.forward(rng.standard_normal((100, 4)) * 5 + 3, training=True)
    assert np.allclose(y.mean(axis=0), 0, atol=1e-12)
    assert np.allclose(y.var(axis=0), 1, atol=1e-9)


def test_running_statistics_are_an_ewa_with_unbiased_variance():
    rng = np.random.default_rng(2)
    layer = df.BatchNorm(3, momentum=0.8, dtype="float64")
    mean, var = np.zeros(3), np.ones(3)
    for _ in range(5):
        x = rng.standard_normal((10, 3)) * 2 + 4
        layer.forward(x, training=True)
        mean = 0.8 * mean + 0.2 * x.mean(axis=0)
        var = 0.8 * var + 0.2 * x.var(axis=0, ddof=1)
    assert np.allclose(layer.buffers["running_mean"], mean)
    assert np.allclose(layer.buffers["running_var"], var)
    assert set(layer.params) == {"gamma", "beta"}


def test_inference_uses_running_statistics_and_caches_nothing():
    layer = df.BatchNorm(2, dtype="float64")
    layer.buffers["running_mean"][...] = [1.0, -1.0]
    layer.buffers["running_var"][...] = [4.0, 0.25]
    layer.params["gamma"][...] = [2.0, 1.0]
    layer.params["beta"][...] = [0.5, 0.0]
    y = layer.forward(np.array([[3.0, -0.5]]), training=False)
    expected = [2.0 * 2 / np.sqrt(4 + 1e-5) + 0.5, 0.5 / np.sqrt(0.25 + 1e-5)]
    assert np.allclose(y, [expected])
    with pytest.raises(RuntimeError):
        layer.backward(np.ones((1, 2)))


def test_batch_of_one_is_refused_in_training():
    with pytest.raises(df.ShapeError, match="at least 2 rows"):
        df.BatchNorm(3).forward(np.ones((1, 3), dtype=np.float32), training=True)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"n": 0}, "n must"), ({"n": 3, "momentum": 1.0}, "momentum"), ({"n": 3, "eps": 0}, "eps")],
)
def test_invalid_arguments(kwargs, message):
    with pytest.raises(df.DeepfitError, match=message):
        df.BatchNorm(**kwargs)

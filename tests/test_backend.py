"""The backend seam: dtype policy, seeded generators, array modules."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

import deepfit as df
from deepfit import backend


def test_dtype_policy():
    assert backend.resolve_dtype(None) == np.float32
    assert backend.resolve_dtype("float64") == np.float64
    assert backend.resolve_dtype(np.float32) == np.float32
    with pytest.raises(df.DeepfitError, match="int32 is not supported"):
        backend.resolve_dtype("int32")
    with pytest.raises(df.DeepfitError, match="not a NumPy dtype"):
        backend.resolve_dtype("floaty")


def test_generators():
    g = np.random.default_rng(0)
    assert backend.as_generator(g) is g
    assert backend.as_generator(3).random() == np.random.default_rng(3).random()
    assert isinstance(backend.as_generator(None), np.random.Generator)
    with pytest.raises(df.DeepfitError, match="non-negative"):
        backend.as_generator(-1)
    with pytest.raises(df.DeepfitError, match="got str"):
        backend.as_generator("0")


def test_array_module_and_to_numpy_on_the_cpu():
    a = np.ones(3)
    assert backend.array_module(a, 1.0) is np
    assert backend.to_numpy(a) is a
    assert backend.get_backend("numpy") is np


def test_same_draws_in_float32_and_float64():
    a = backend.normal(np.random.default_rng(0), (3,), np.dtype(np.float32))
    b = backend.normal(np.random.default_rng(0), (3,), np.dtype(np.float64))
    assert np.allclose(a, b, rtol=1e-6)


@pytest.mark.skipif(importlib.util.find_spec("cupy") is not None, reason="CuPy is installed")
def test_missing_cupy_gives_a_clear_error():
    with pytest.raises(df.DeepfitError, match=r"pip install 'deepfit\[gpu\]'"):
        backend.get_backend("cupy")
    with pytest.raises(df.DeepfitError, match="unknown backend 'tpu'"):
        backend.get_backend("tpu")


def test_no_global_numpy_random_state_is_used():
    # the legacy global state must not move: deepfit draws only from explicit Generators
    np.random.seed(123)  # noqa: NPY002
    before = np.random.get_state()[1].copy()  # noqa: NPY002
    model = df.mlp(4, [8], 2, keep_prob=0.5, rng=None)
    model.forward(np.ones((3, 4)), training=True)
    df.gradcheck(df.mlp(2, [2], 2, rng=1), df.SoftmaxCrossEntropy(), np.ones((3, 2)), [0, 1, 0])
    assert np.array_equal(np.random.get_state()[1], before)  # noqa: NPY002


def test_cupy_model_trains_like_the_numpy_one():
    cupy = pytest.importorskip("cupy")
    X = np.random.default_rng(0).standard_normal((64, 5))
    y = (X[:, 0] > 0).astype(np.int64)
    states = []
    for device in ("numpy", "cupy"):
        model = df.mlp(5, [8], 2, batchnorm=True, keep_prob=0.8, rng=0, dtype="float64")
        model.to(device)
        df.Trainer(model, batch_size=16, seed=0).fit(X, y, epochs=2)
        states.append(model.state_dict())
        if device == "cupy":
            assert isinstance(model.params["0.W"], cupy.ndarray)
            assert isinstance(model.predict(X), np.ndarray)
    for k in states[0]:
        np.testing.assert_allclose(states[0][k], states[1][k], rtol=1e-9, atol=1e-12)

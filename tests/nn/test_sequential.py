"""Sequential and mlp: names, state dicts, dtype conversion, prediction."""

from __future__ import annotations

import numpy as np
import pytest

import deepfit as df
from deepfit.checks.gradcheck import relative_error
from tests.gradients import numeric_gradient


def test_mlp_structure_and_qualified_names():
    model = df.mlp(5, [8, 4], 3, batchnorm=True, keep_prob=[0.8, 1.0], rng=0)
    kinds = [type(layer).__name__ for layer in model]
    assert kinds == ["Dense", "BatchNorm", "ReLU", "Dropout", "Dense", "BatchNorm", "ReLU", "Dense"]
    assert list(model.params) == [
        "0.W",
        "1.gamma",
        "1.beta",
        "4.W",
        "5.gamma",
        "5.beta",
        "7.W",
        "7.b",
    ]
    assert list(model.grads) == list(model.params)
    assert list(model.buffers) == [
        "1.running_mean",
        "1.running_var",
        "5.running_mean",
        "5.running_var",
    ]
    assert model.n_params == 5 * 8 + 16 + 8 * 4 + 8 + 4 * 3 + 3
    assert "Dropout(keep_prob=0.8)" in repr(model)


def test_params_are_the_layers_arrays():
    model = df.mlp(2, [3], 1, rng=0)
    model.params["0.W"][...] = 7.0
    assert np.all(model.layers[0].params["W"] == 7.0)


def test_whole_network_gradient_of_the_input():
    rng = np.random.default_rng(0)
    model = df.mlp(4, [5, 5], 3, activation="tanh", batchnorm=True, rng=0, dtype="float64")
    x, dy = rng.standard_normal((6, 4)), rng.standard_normal((6, 3))
    model.forward(x, training=True)
    dx = model.backward(dy)
    numeric = numeric_gradient(lambda: float((model.forward(x, True) * dy).sum()), x)
    assert relative_error(numeric, dx) < 1e-7


def test_state_dict_round_trip_and_copies():
    a = df.mlp(4, [6], 2, batchnorm=True, rng=1)
    a.forward(np.random.default_rng(0).standard_normal((10, 4)), training=True)
    state = a.state_dict()
    assert set(state) == set(a.params) | set(a.buffers)
    state["0.W"][...] = 0  # a copy: the model is untouched
    assert a.params["0.W"].any()
    b = df.mlp(4, [6], 2, batchnorm=True, rng=2)
    b.load_state_dict(a.state_dict())
    x = np.ones((3, 4), dtype=np.float32)
    assert np.array_equal(a.predict(x), b.predict(x))


def test_load_state_dict_refuses_mismatches_naming_the_key():
    model = df.mlp(4, [6], 2, rng=0)
    state = model.state_dict()
    bad = dict(state, **{"0.W": np.zeros((5, 6))})
    with pytest.raises(
        df.ShapeError, match=r"'0.W' has shape \(5, 6\), the model expects \(4, 6\)"
    ):
        model.load_state_dict(bad)
    missing = {k: v for k, v in state.items() if k != "2.b"}
    with pytest.raises(df.DeepfitError, match=r"missing 2\.b"):
        model.load_state_dict(missing)
    with pytest.raises(df.DeepfitError, match=r"unexpected 9\.W"):
        model.load_state_dict(dict(state, **{"9.W": np.zeros(1)}))


def test_astype_float64_and_forward_casts_inputs():
    model = df.mlp(3, [4], 2, rng=0)
    assert model.dtype == np.float32
    assert model.forward(np.ones((2, 3), dtype=np.int64)).dtype == np.float32
    model.astype("float64")
    assert model.dtype == np.float64
    assert all(g.dtype == np.float64 for g in model.grads.values())
    assert model.forward(np.ones((2, 3), dtype=np.float32)).dtype == np.float64


def test_predict_in_chunks_equals_one_forward_in_inference_mode():
    model = df.mlp(3, [16], 4, batchnorm=True, keep_prob=0.5, rng=0)
    x = np.random.default_rng(1).standard_normal((50, 3)).astype(np.float32)
    full = model.forward(x, training=False)
    assert np.allclose(model.predict(x, batch_size=7), full, atol=1e-6)
    assert np.array_equal(model.predict(x), model.predict(x))  # dropout off
    assert model.predict(np.zeros((0, 3))).shape == (0, 4)


def test_same_seed_same_model_and_same_dropout():
    x = np.ones((8, 3), dtype=np.float32)
    a = df.mlp(3, [10], 2, keep_prob=0.5, rng=5)
    b = df.mlp(3, [10], 2, keep_prob=0.5, rng=5)
    assert np.array_equal(a.forward(x, training=True), b.forward(x, training=True))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"hidden": [4, 0]}, r"hidden\[1\]"),
        ({"hidden": [4], "keep_prob": [0.5, 0.5]}, "2 values for 1 hidden layers"),
        ({"hidden": [4], "keep_prob": 1.5}, "keep_prob"),
        ({"hidden": [4], "activation": "swish"}, "unknown activation 'swish'"),
    ],
)
def test_mlp_invalid_arguments(kwargs, message):
    with pytest.raises(df.DeepfitError, match=message):
        df.mlp(3, n_out=2, **kwargs)


def test_sequential_refuses_non_layers():
    with pytest.raises(df.DeepfitError, match="layer 1 is a str"):
        df.Sequential([df.ReLU(), "relu"])


def test_architecture_config_round_trip():
    model = df.mlp(4, [5, 3], 2, batchnorm=True, keep_prob=0.5, activation="leaky_relu", rng=0)
    rebuilt = df.Sequential.from_config(model.config())
    rebuilt.load_state_dict(model.state_dict())
    assert rebuilt.config() == model.config()
    x = np.random.default_rng(0).standard_normal((6, 4))
    assert np.array_equal(model.predict(x), rebuilt.predict(x))
    with pytest.raises(df.DeepfitError, match="layer 1: unknown layer type 'Conv2d'"):
        df.Sequential.from_config([{"type": "ReLU"}, {"type": "Conv2d"}])
    with pytest.raises(df.DeepfitError, match=r"layer 0 \(Dense\)"):
        df.Sequential.from_config([{"type": "Dense", "n_in": 2}])


def test_backward_without_input_gradient_fills_the_same_grads():
    rng = np.random.default_rng(0)
    x, dy = rng.standard_normal((6, 4)), rng.standard_normal((6, 3))
    model = df.mlp(4, [5, 5], 3, batchnorm=True, rng=0, dtype="float64")
    model.forward(x, training=True)
    dx = model.backward(dy)
    expected = {k: g.copy() for k, g in model.grads.items()}
    model.forward(x, training=True)
    assert model.backward(dy, input_grad=False) is None
    assert dx.shape == x.shape
    for k, g in model.grads.items():
        assert np.array_equal(g, expected[k]), k


def test_to_numpy_keeps_the_model_and_cupy_needs_cupy():
    import importlib.util

    model = df.mlp(3, [4], 2, batchnorm=True, rng=0)
    before = model.state_dict()
    assert model.to("cpu") is model and model.device == "numpy"
    assert all(np.array_equal(before[k], v) for k, v in model.state_dict().items())
    assert all(type(v) is np.ndarray for v in model.grads.values())
    if importlib.util.find_spec("cupy") is None:
        with pytest.raises(df.DeepfitError, match="needs CuPy"):
            model.to("cupy")
    with pytest.raises(df.DeepfitError, match="unknown backend"):
        model.to("tpu")

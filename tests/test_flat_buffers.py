"""Flat parameters: one buffer for every parameter, one for every gradient, one per optimizer
moment; the flat step gives the numbers of the per-parameter loop, bit for bit, on the NumPy
and the JIT path, with every technique that reads or writes the arrays."""

from __future__ import annotations

import numpy as np
import pytest

import deepfit as df
from deepfit import kernels
from deepfit.flat import flat_base
from deepfit.nn.sequential import Sequential

EMBED = {"columns": [3], "cardinalities": [9], "dims": [4]}
JIT = [False, True] if kernels.available() else [False]


def table(m: int = 64, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((m, 4))
    X[:, 3] = rng.integers(0, 9, m)
    y = (X[:, 0] + 0.5 * X[:, 1] > 0).astype(np.int64)
    return X, y


def pack(arrays: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
    buffer = np.concatenate([a.ravel() for a in arrays])
    views, start = [], 0
    for a in arrays:
        views.append(buffer[start : start + a.size].reshape(a.shape))
        start += a.size
    return buffer, views


def test_flat_base():
    arrays = [np.arange(12.0).reshape(3, 4), np.ones(4), np.zeros((0, 2)), np.full((2, 3), 7.0)]
    buffer, views = pack(arrays)
    assert buffer.shape == (22,) and flat_base(views) is buffer
    for a, v in zip(arrays, views, strict=True):
        np.testing.assert_array_equal(a, v)
        assert v.base is buffer
    np.testing.assert_array_equal(buffer[:12], np.arange(12.0))
    assert flat_base(views[:2]) is None  # does not reach the buffer's end
    assert flat_base([views[1], views[0], views[2], views[3]]) is None  # out of order
    assert flat_base(arrays) is None  # separate arrays
    assert flat_base([buffer[:12].reshape(4, 3).T, buffer[12:]]) is None  # not C-ordered
    assert flat_base([]) is None


@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"batchnorm": True, "keep_prob": 0.8},
        {"residual": True, "norm": "layernorm", "keep_prob": 0.9, "embed": EMBED},
    ],
)
def test_mlp_parameters_are_views_of_two_buffers(kw):
    model = df.mlp(4, [8, 6], 3, rng=0, **kw)
    params, grads = model.params, model.grads
    p_flat, g_flat = flat_base(list(params.values())), flat_base(list(grads.values()))
    assert p_flat is not None and g_flat is not None and p_flat is not g_flat
    assert p_flat.size == model.n_params
    # the views are the layers' own arrays, so in-place writes reach the layers
    for name, layer in model.named_layers():
        for key, value in vars(layer).get("params", {}).items():
            assert params[f"{name}.{key}"] is value
    # same values as an unflattened model from the same seed
    plain = df.mlp(4, [8, 6], 3, rng=0, **kw)
    for name, value in plain.params.items():
        np.testing.assert_array_equal(params[name], value)
    # flattening again copies nothing
    before = {k: v for k, v in params.items()}
    assert model.flatten_parameters()
    assert all(model.params[k] is v for k, v in before.items())


def test_flatten_refuses_mixed_dtypes_and_moving_reflattens():
    model = df.mlp(3, [4], 2, rng=0)
    model.layers[0].params["W"] = model.layers[0].params["W"].astype(np.float64)
    model.layers[0].grads["W"] = model.layers[0].grads["W"].astype(np.float64)
    assert not model.flatten_parameters()
    assert flat_base(list(model.params.values())) is None
    model.astype("float64")
    assert flat_base(list(model.params.values())) is not None
    assert model.dtype == np.float64
    model.to("numpy")
    assert flat_base(list(model.grads.values())) is not None
    assert not Sequential([df.ReLU()]).flatten_parameters()  # nothing to flatten


def _loose(params: dict) -> dict:
    """Copies of ``params`` that tile no buffer (the per-parameter loop's input)."""
    return {k: v.copy() for k, v in params.items()}


OPTIMIZERS = [
    lambda: df.SGD(0.1),
    lambda: df.SGD(0.1, weight_decay=0.05),
    lambda: df.Momentum(0.1, 0.9),
    lambda: df.RMSprop(0.01, bias_correction=True),
    lambda: df.Adam(0.01),
    lambda: df.Adam(0.01, weight_decay=0.1),
    lambda: df.Lookahead(df.Adam(0.01), k=2),
]


@pytest.mark.parametrize("jit", JIT)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("make", OPTIMIZERS)
def test_flat_step_equals_the_per_parameter_loop(monkeypatch, jit, dtype, make):
    monkeypatch.setattr(kernels, "USE_JIT", jit)
    model = df.mlp(5, [7, 6], 3, batchnorm=True, rng=0, dtype=dtype)
    flat, loose = model.params, _loose(model.params)
    flat_opt, loose_opt = make(), make()
    rng = np.random.default_rng(1)
    grads = model.grads
    for _ in range(5):
        for g in grads.values():
            g[...] = rng.standard_normal(g.shape)
        loose_grads = _loose(grads)
        flat_opt.step(flat, grads)
        loose_opt.step(loose, loose_grads)
        for name in flat:
            assert np.array_equal(flat[name], loose[name]), name
            np.testing.assert_array_equal(grads[name], loose_grads[name])  # g untouched
    inner = getattr(flat_opt, "inner", flat_opt)
    assert inner._layout is not None  # the flat path ran
    assert getattr(loose_opt, "inner", loose_opt)._layout is None
    s_flat, s_loose = flat_opt.state_dict(), loose_opt.state_dict()
    assert s_flat.keys() == s_loose.keys()
    for key in s_flat:
        np.testing.assert_array_equal(s_flat[key], s_loose[key], err_msg=key)
    # the moments are views of one buffer per slot, in the parameters' order
    for transform in inner.transforms:
        for slot in transform.slots:
            assert flat_base([transform.state[slot][n] for n in flat]) is not None


@pytest.mark.parametrize("jit", JIT)
def test_loaded_state_is_copied_into_the_flat_moments(monkeypatch, jit):
    monkeypatch.setattr(kernels, "USE_JIT", jit)
    rng = np.random.default_rng(2)
    model = df.mlp(4, [6], 2, rng=0)
    params, grads = model.params, model.grads

    def fill():
        for g in grads.values():
            g[...] = rng.standard_normal(g.shape)

    opt = df.Adam(0.01)
    for _ in range(3):
        fill()
        opt.step(params, grads)
    state, weights = opt.state_dict(), model.state_dict()
    fill()
    snapshot = _loose(grads)
    opt.step(params, grads)
    expected = _loose(params)

    model.load_state_dict(weights)
    again = df.Adam(0.01)
    again.step(_loose(params), snapshot)  # state for other arrays first
    again.load_state_dict(state)
    grads_now = model.grads
    for k, g in grads_now.items():
        g[...] = snapshot[k]
    again.step(model.params, grads_now)
    for k in expected:
        assert np.array_equal(model.params[k], expected[k]), k


def test_replaced_arrays_fall_back_to_the_loop_and_stay_right():
    model = df.mlp(4, [6], 2, rng=0)
    opt = df.Adam(0.01)
    rng = np.random.default_rng(3)
    for g in model.grads.values():
        g[...] = rng.standard_normal(g.shape)
    opt.step(model.params, model.grads)
    assert opt._layout is not None
    model.layers[0].params["W"] = model.layers[0].params["W"].copy()  # out of the buffer
    reference = df.Adam(0.01)
    reference.load_state_dict(opt.state_dict())
    loose, loose_grads = _loose(model.params), _loose(model.grads)
    opt.step(model.params, model.grads)
    reference.step(loose, loose_grads)
    for k, v in model.params.items():
        assert np.array_equal(v, loose[k]), k
    other = df.mlp(5, [6], 2, rng=0)  # same names, another shape: refused, not mixed up
    with pytest.raises(df.DeepfitError, match="optimizer state 'v' for parameter '0.W'"):
        opt.step(other.params, other.grads)


def _train(monkeypatch, flat: bool, jit: bool, **kw) -> dict:
    monkeypatch.setattr(kernels, "USE_JIT", jit)
    if not flat:
        monkeypatch.setattr(Sequential, "flatten_parameters", lambda self: False)
    X, y = table()
    model_kw = kw.pop("model")
    model = df.mlp(4, [8, 6], 2, rng=0, **model_kw)
    trainer = df.Trainer(model, batch_size=16, seed=0, **kw)
    trainer.fit(X[:48], y[:48], epochs=3, validation_data=(X[48:], y[48:]))
    monkeypatch.undo()
    assert (flat_base(list(model.params.values())) is not None) == flat
    state = model.state_dict()
    state.update({f"opt/{k}": v for k, v in trainer.optimizer.state_dict().items()})
    return state


TRAININGS = [  # factories: every run gets fresh optimizers and callbacks
    lambda: {"model": {"batchnorm": True, "keep_prob": 0.8}, "l2": 0.01, "clip_norm": 0.5},
    lambda: {
        "model": {"residual": True, "norm": "layernorm", "keep_prob": 0.9, "embed": EMBED},
        "optimizer": df.Adam(0.01, weight_decay=0.01),
    },
    lambda: {
        "model": {},
        "optimizer": df.Lookahead(df.Momentum(0.05), k=3),
        "callbacks": [df.WeightAveraging(df.EMA(0.9), every="batch")],
    },
]


@pytest.mark.parametrize("jit", JIT)
@pytest.mark.parametrize("make", TRAININGS)
def test_training_on_flat_buffers_equals_training_without(monkeypatch, jit, make):
    flat = _train(monkeypatch, True, jit, **make())
    loose = _train(monkeypatch, False, jit, **make())
    assert flat.keys() == loose.keys()
    for k in flat:
        np.testing.assert_array_equal(flat[k], loose[k], err_msg=k)

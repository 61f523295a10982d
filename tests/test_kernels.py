"""The optional JIT kernels: each gives the numbers of its NumPy twin, and the switch works.

Every test runs the NumPy path and, when numba is installed, the JIT path, and compares.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import deepfit as df
from deepfit import kernels
from deepfit.nn.dropout import keep_threshold, mask_bits

needs_numba = pytest.mark.skipif(not kernels.available(), reason="numba is not installed")


def both_paths(monkeypatch, fn):
    """``fn()`` with the JIT off, then on; returns both results."""
    monkeypatch.setattr(kernels, "USE_JIT", False)
    numpy_result = fn()
    monkeypatch.setattr(kernels, "USE_JIT", True)
    assert kernels.enabled()
    return numpy_result, fn()


@needs_numba
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
def test_adam_kernel_is_bit_identical(monkeypatch, dtype, weight_decay):
    # one tensor above the parallel threshold, two below
    shapes = {"0.W": (300, 400), "0.b": (400,), "1.W": (7, 3)}

    def run():
        rng = np.random.default_rng(0)
        params = {k: rng.standard_normal(s).astype(dtype) for k, s in shapes.items()}
        opt = df.Adam(1e-2, weight_decay=weight_decay)
        for _ in range(4):
            grads = {k: rng.standard_normal(s).astype(dtype) for k, s in shapes.items()}
            before = {k: g.copy() for k, g in grads.items()}
            opt.step(params, grads)
            assert all(np.array_equal(grads[k], before[k]) for k in grads)  # g untouched
        return params, opt.state_dict()

    (p0, s0), (p1, s1) = both_paths(monkeypatch, run)
    for k in p0:
        assert p1[k].dtype == np.dtype(dtype)
        assert np.array_equal(p0[k], p1[k]), k
    assert s0.keys() == s1.keys()
    for k in s0:
        assert np.array_equal(s0[k], s1[k]), k


@needs_numba
def test_adam_state_loaded_from_a_dict_is_used_by_the_kernel(monkeypatch):
    monkeypatch.setattr(kernels, "USE_JIT", True)
    rng = np.random.default_rng(1)
    params = {"0.W": rng.standard_normal((5, 4)).astype(np.float32)}
    grads = {"0.W": rng.standard_normal((5, 4)).astype(np.float32)}
    a = df.Adam(1e-2)
    a.step(params, grads)
    state = a.state_dict()
    p_a = {"0.W": params["0.W"].copy()}
    p_b = {"0.W": params["0.W"].copy()}
    a.step(p_a, grads)
    b = df.Adam(1e-2)
    b.step({"0.W": params["0.W"].copy()}, grads)  # builds a plan on other arrays
    b.load_state_dict(state)
    b.step(p_b, grads)
    assert np.array_equal(p_a["0.W"], p_b["0.W"])


@needs_numba
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_relu_kernels_match_numpy_and_keep_nan(monkeypatch, dtype):
    z = np.random.default_rng(0).standard_normal((33, 17)).astype(dtype)
    z[0, 0], z[1, 1] = np.nan, 0.0
    da = np.random.default_rng(1).standard_normal(z.shape).astype(dtype)

    def run():
        layer = df.ReLU()
        return layer.forward(z, training=True), layer.backward(da)

    (a0, d0), (a1, d1) = both_paths(monkeypatch, run)
    assert np.isnan(a1[0, 0]) and a1[1, 1] == 0
    np.testing.assert_array_equal(a0, a1)
    np.testing.assert_array_equal(d0, d1)


@pytest.mark.parametrize("xp_module", ["numpy"])
def test_mask_bits_are_splitmix64(xp_module):
    # reference values of splitmix64 seeded with 0 (Vigna's splitmix64.c): the first two
    # outputs are 0xE220A8397B1DCDAF and 0x6E789E6AA1B965F4
    bits = mask_bits(0, 4)
    assert bits.dtype == np.uint32
    assert [int(b) for b in bits] == [0x7B1DCDAF, 0xE220A839, 0xA1B965F4, 0x6E789E6A]
    assert np.array_equal(mask_bits(0, 3), bits[:3])
    assert keep_threshold(0.5) == 2**31 and keep_threshold(1.0) == 2**32 - 1


@needs_numba
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", [(64, 33), (1, 1), (5, 3)])
def test_dropout_kernel_draws_the_numpy_mask(monkeypatch, dtype, shape):
    x = np.random.default_rng(0).standard_normal(shape).astype(dtype)
    dy = np.random.default_rng(1).standard_normal(shape).astype(dtype)

    def run():
        layer = df.Dropout(0.7, rng=5)
        out = layer.forward(x, training=True)
        return out, layer.backward(dy), layer.rng.bit_generator.state

    (o0, d0, s0), (o1, d1, s1) = both_paths(monkeypatch, run)
    np.testing.assert_array_equal(o0, o1)
    np.testing.assert_array_equal(d0, d1)
    assert s0 == s1  # one draw per mask on both paths


def test_dropout_uses_one_draw_per_mask_whatever_the_size():
    layer = df.Dropout(0.5, rng=0)
    layer.forward(np.ones((300, 300)), training=True)
    reference = np.random.default_rng(0)
    reference.integers(0, 2**64, dtype=np.uint64)
    assert layer.rng.bit_generator.state == reference.bit_generator.state


def test_float32_and_float64_models_drop_the_same_units():
    x = np.ones((40, 30))
    a = df.Dropout(0.6, rng=3).forward(x.astype(np.float32), training=True)
    b = df.Dropout(0.6, rng=3).forward(x, training=True)
    assert np.array_equal(a != 0, b != 0)


@needs_numba
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_batchnorm_kernels_match_numpy(monkeypatch, dtype):
    rng = np.random.default_rng(0)
    z = (rng.standard_normal((32, 24)) * 3 + 1).astype(dtype)
    dy = rng.standard_normal(z.shape).astype(dtype)
    gamma = rng.standard_normal(24).astype(dtype)

    def run():
        layer = df.BatchNorm(24, dtype=dtype)
        layer.params["gamma"][...] = gamma
        y = layer.forward(z, training=True)
        dz = layer.backward(dy)
        return y, dz, {**layer.grads, **layer.buffers}

    (y0, dz0, g0), (y1, dz1, g1) = both_paths(monkeypatch, run)
    np.testing.assert_array_equal(y0, y1)
    np.testing.assert_array_equal(dz0, dz1)
    for k in g0:
        np.testing.assert_array_equal(g0[k], g1[k], err_msg=k)


@needs_numba
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_training_runs_give_the_same_model_on_both_paths(monkeypatch, dtype):
    X = np.random.default_rng(0).standard_normal((96, 6))
    y = (X[:, 0] + X[:, 1] > 0).astype(np.int64)

    def run():
        model = df.mlp(6, [16, 8], 2, batchnorm=True, keep_prob=0.8, rng=0, dtype=dtype)
        df.Trainer(model, batch_size=16, l2=0.01, seed=0).fit(X, y, epochs=2)
        return model.state_dict()

    s0, s1 = both_paths(monkeypatch, run)
    rtol = 1e-5 if dtype == "float32" else 1e-12
    for k in s0:
        np.testing.assert_allclose(s0[k], s1[k], rtol=rtol, atol=rtol, err_msg=k)


def test_jit_switch_from_the_environment():
    code = "from deepfit import kernels; print(kernels.USE_JIT, kernels.enabled())"
    env = {**os.environ, "DEEPFIT_JIT": "0"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.stdout.split() == ["False", "False"]


def test_kernels_refuse_what_they_cannot_take(monkeypatch):
    monkeypatch.setattr(kernels, "USE_JIT", True)
    a = np.ones((4, 3), dtype=np.float32)
    assert kernels.usable(a) is kernels.available()
    assert not kernels.usable(a.T)  # not C-contiguous
    assert not kernels.usable(a, a.astype(np.float64))  # mixed dtypes
    assert not kernels.usable(a.astype(np.int64))
    monkeypatch.setattr(kernels, "USE_JIT", False)
    assert not kernels.usable(a) and not kernels.enabled()


@needs_numba
@pytest.mark.parametrize("shape", [(32, 2), (128, 10), (7, 3), (1, 1)])
@pytest.mark.parametrize("eps", [0.0, 0.1])
@pytest.mark.parametrize("label_dtype", [np.int64, np.int32, np.uint8])
def test_softmax_cross_entropy_kernel_matches_numpy(monkeypatch, shape, eps, label_dtype):
    rng = np.random.default_rng(3)
    z = (rng.standard_normal(shape) * 4).astype(np.float32)
    y = rng.integers(0, shape[1], shape[0]).astype(label_dtype)

    def run():
        loss = df.SoftmaxCrossEntropy(label_smoothing=eps)
        return loss.forward(z, y), loss.backward()

    (v0, g0), (v1, g1) = both_paths(monkeypatch, run)
    assert g1.dtype == np.float32 and g1.shape == shape
    assert v1 == pytest.approx(v0, rel=1e-6)
    # exp and log differ from NumPy's in the last bit at most: the gradient to rounding
    np.testing.assert_allclose(g1, g0, rtol=2e-6, atol=1e-7 / shape[0])


@needs_numba
def test_softmax_cross_entropy_kernel_is_used_for_float32_only(monkeypatch):
    calls = []
    real = kernels.softmax_cross_entropy
    monkeypatch.setattr(kernels, "softmax_cross_entropy", lambda *a: calls.append(1) or real(*a))
    monkeypatch.setattr(kernels, "USE_JIT", True)
    rng = np.random.default_rng(4)
    z64 = rng.standard_normal((16, 4))
    y = rng.integers(0, 4, 16)
    loss = df.SoftmaxCrossEntropy()
    jit64 = loss.forward(z64, y), loss.backward()
    assert calls == []  # float64 stays on NumPy's exp and log: bit for bit the reference
    monkeypatch.setattr(kernels, "USE_JIT", False)
    ref64 = loss.forward(z64, y), loss.backward()
    assert jit64[0] == ref64[0] and np.array_equal(jit64[1], ref64[1])
    monkeypatch.setattr(kernels, "USE_JIT", True)
    loss.forward(z64.astype(np.float32), y)
    loss.forward(z64.astype(np.float32), y, weight=np.ones(16))  # weighted: NumPy path
    loss.forward(z64.astype(np.float32), np.eye(4, dtype=np.float32)[y])  # soft labels too
    assert calls == [1]


@needs_numba
@pytest.mark.parametrize("bad", [-1, 5])
def test_softmax_cross_entropy_kernel_names_a_bad_label_as_numpy_does(monkeypatch, bad):
    z = np.zeros((6, 4), np.float32)
    y = np.array([0, 1, bad, 3, 7, 2])

    def message():
        with pytest.raises(df.DeepfitError) as info:
            df.SoftmaxCrossEntropy().forward(z, y)
        return str(info.value)

    numpy_message, jit_message = both_paths(monkeypatch, message)
    assert jit_message == numpy_message
    assert f"label {bad if bad < 0 else 7} is outside the 4 classes 0..3" in jit_message


@needs_numba
def test_softmax_cross_entropy_kernel_propagates_nan_and_inf(monkeypatch):
    z = np.array([[0.0, np.nan, 1.0], [np.inf, 0.0, 1.0], [1e30, -1e30, 0.0]], np.float32)
    y = np.array([0, 1, 2])

    def run():
        with np.errstate(invalid="ignore", over="ignore"):
            loss = df.SoftmaxCrossEntropy()
            return loss.forward(z, y), loss.backward()

    (v0, g0), (v1, g1) = both_paths(monkeypatch, run)
    assert np.isnan(v0) and np.isnan(v1)
    np.testing.assert_array_equal(np.isnan(g0), np.isnan(g1))
    np.testing.assert_allclose(g1[2], g0[2], rtol=1e-6)


@needs_numba
def test_softmax_cross_entropy_kernel_counts_hits_as_argmax(monkeypatch):
    monkeypatch.setattr(kernels, "USE_JIT", True)
    z = np.array(
        [[1, 2, 3], [3, 3, 0], [0, 3, 3], [np.nan, 5, 0], [0, np.nan, np.nan], [2, 1, 0]],
        np.float32,
    )  # ties go to the first largest; a NaN counts as largest (NumPy's argmax)
    loss = df.SoftmaxCrossEntropy()
    for y in ([2, 0, 1, 0, 1, 1], [0, 1, 2, 1, 2, 0]):
        y = np.array(y)
        with np.errstate(invalid="ignore"):
            loss.forward(z, y)
        assert loss.counted_hits(z, y) == np.count_nonzero(z.argmax(axis=1) == y)
        assert loss.counted_hits(z.copy(), y) is None  # other arrays: not counted
    monkeypatch.setattr(kernels, "USE_JIT", False)
    loss.forward(z[:1], y[:1])
    assert loss.counted_hits(z[:1], y[:1]) is None  # the NumPy path counts nothing


@needs_numba
def test_trainer_accuracy_is_the_same_on_both_paths(monkeypatch):
    rng = np.random.default_rng(5)
    X = rng.standard_normal((200, 5)).astype(np.float32)
    y = rng.integers(0, 3, 200)
    model = df.mlp(5, [8], 3, rng=0)
    trainer = df.Trainer(model, batch_size=32)
    trainer.fit(X, y, epochs=1)

    def run():
        return trainer.evaluate(X, y)

    numpy_result, jit_result = both_paths(monkeypatch, run)
    assert jit_result["accuracy"] == numpy_result["accuracy"]
    expected = np.count_nonzero(model.predict(X).argmax(axis=1) == y) / 200
    assert jit_result["accuracy"] == expected
    assert jit_result["loss"] == pytest.approx(numpy_result["loss"], rel=1e-6)


@needs_numba
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", [(1, 5), (2, 2), (33, 64), (128, 513), (200, 1)])
def test_dense_bias_gradient_is_bit_identical(monkeypatch, dtype, shape):
    rng = np.random.default_rng(7)
    m, n = shape
    x = rng.standard_normal((m, 3)).astype(dtype)
    dz = (rng.standard_normal(shape) * 10 ** rng.uniform(-3, 3, shape)).astype(dtype)

    def run():
        layer = df.Dense(3, n, rng=0, dtype=dtype)
        layer.forward(x, training=True)
        dx = layer.backward(dz)
        grads = {k: v.copy() for k, v in layer.grads.items()}
        layer.grads["b"][...] = 0
        layer.backward_params(dz)
        assert np.array_equal(layer.grads["b"], grads["b"])
        return dx, grads

    (dx0, g0), (dx1, g1) = both_paths(monkeypatch, run)
    np.testing.assert_array_equal(dx0, dx1)
    np.testing.assert_array_equal(g0["b"], dz.sum(axis=0))
    for k in g0:
        np.testing.assert_array_equal(g0[k], g1[k], err_msg=k)


def test_adam_step_scalars_follow_t_lr_and_decay():
    from deepfit.optim.ewa import bias_correction
    from deepfit.optim.transforms import ScaleByAdam

    adam = ScaleByAdam(0.9, 0.999, 1e-8)
    for t, lr, wd in [
        (1, 1e-3, 0.0),
        (2, 1e-3, 0.0),
        (3, 1e-3, 0.0),
        (4, 5e-4, 0.0),
        (5, 5e-4, 0.1),
    ]:
        got = adam._step_scalars(t, lr, wd, np.dtype(np.float32)).copy()
        values = (0.9, 1.0 - 0.9, 0.999, 1.0 - 0.999, bias_correction(0.9, t))
        values += (bias_correction(0.999, t), 1e-8, wd, lr)
        assert np.array_equal(got, np.array(values, dtype=np.float32)), (t, lr, wd)
    assert adam._step_scalars(6, 5e-4, 0.1, np.dtype(np.float64)).dtype == np.float64

"""Optimizers: a hand-worked step, equivalences, convergence, state, learning-rate changes."""

from __future__ import annotations

import copy

import numpy as np
import pytest

import deepfit as df
from deepfit.nn.objective import cost_and_gradients


def test_one_hand_worked_sgd_step():
    model = df.Sequential(
        [df.Dense(2, 2, dtype="float64"), df.ReLU(), df.Dense(2, 1, dtype="float64")]
    )
    model.params["0.W"][...] = [[1.0, -1.0], [0.5, 1.0]]
    model.params["0.b"][...] = [0.0, 0.0]
    model.params["2.W"][...] = [[1.0], [2.0]]
    model.params["2.b"][...] = [0.0]
    x, y = np.array([[1.0, 1.0]]), np.array([[2.0]])
    # z1 = x W1 + b1 = [1 + 0.5, -1 + 1] = [1.5, 0];  a1 = relu(z1) = [1.5, 0]
    # z2 = a1 W2 + b2 = 1.5 * 1 + 0 * 2 = 1.5;       L = (z2 - y)^2 = 0.25
    J = cost_and_gradients(model, df.MeanSquaredError(), x, y)
    assert J == pytest.approx(0.25)
    # dz2 = 2 (z2 - y) / m = -1;  dW2 = a1^T dz2 = [[-1.5], [0]];  db2 = [-1]
    # da1 = dz2 W2^T = [-1, -2];  dz1 = da1 * [z1 > 0] = [-1, 0]  (relu'(0) taken as 0)
    # dW1 = x^T dz1 = [[-1, 0], [-1, 0]];  db1 = [-1, 0]
    df.SGD(lr=0.1).step(model.params, model.grads)
    # theta := theta - 0.1 * dtheta
    assert np.allclose(model.params["0.W"], [[1.1, -1.0], [0.6, 1.0]])
    assert np.allclose(model.params["0.b"], [0.1, 0.0])
    assert np.allclose(model.params["2.W"], [[1.15], [2.0]])
    assert np.allclose(model.params["2.b"], [0.1])


def test_momentum_is_the_notes_ewa_form():
    p, opt = {"w": np.array([0.0])}, df.Momentum(lr=0.1, beta=0.9)
    gs = [1.0, 2.0, -1.0]
    v, w = 0.0, 0.0
    for g in gs:
        opt.step(p, {"w": np.array([g])})
        v = 0.9 * v + 0.1 * g
        w -= 0.1 * v
        assert p["w"][0] == pytest.approx(w)


def test_adam_first_step_moves_each_coordinate_by_lr():
    # v_hat = g and s_hat = g^2 after one step, so the update is lr * sign(g)
    p = {"w": np.array([1.0, 1.0, 1.0])}
    df.Adam(lr=0.01, eps=1e-12).step(p, {"w": np.array([1e-3, -5.0, 300.0])})
    assert np.allclose(p["w"], [0.99, 1.01, 0.99])


def test_adam_with_beta1_zero_equals_bias_corrected_rmsprop():
    rng = np.random.default_rng(0)
    a, b = {"w": rng.standard_normal(5)}, None
    b = {"w": a["w"].copy()}
    adam = df.Adam(lr=0.05, beta1=0.0, beta2=0.9)
    rms = df.RMSprop(lr=0.05, beta=0.9, bias_correction=True)
    for _ in range(20):
        g = rng.standard_normal(5)
        adam.step(a, {"w": g})
        rms.step(b, {"w": g})
        assert np.allclose(a["w"], b["w"], rtol=1e-14, atol=1e-15)


def _quadratic(dim=4, seed=0):
    rng = np.random.default_rng(seed)
    Q = rng.standard_normal((dim, dim))
    A = Q @ Q.T + dim * np.eye(dim)
    b = rng.standard_normal(dim)
    return A, b, np.linalg.solve(A, b)


def _rosenbrock_grad(p):
    x, y = p
    return np.array([-2 * (1 - x) - 400 * x * (y - x * x), 200 * (y - x * x)])


OPTIMIZERS = {
    "sgd": lambda: df.SGD(1e-3),
    "momentum": lambda: df.Momentum(2e-3, 0.9),
    "rmsprop": lambda: df.RMSprop(1e-3, 0.9),
    "adam": lambda: df.Adam(1e-2),
    "adamw": lambda: df.Adam(1e-2, weight_decay=1e-6),
}


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_reaches_the_minimum_of_a_quadratic(name):
    A, b, solution = _quadratic()
    opt = OPTIMIZERS[name]()
    opt.lr = opt.lr * 10 if name in ("sgd", "momentum") else opt.lr
    p = {"w": np.zeros_like(b)}
    for _ in range(5000):
        opt.step(p, {"w": A @ p["w"] - b})
    assert np.allclose(p["w"], solution, atol=2e-3)


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_reaches_the_minimum_of_rosenbrock(name):
    opt = OPTIMIZERS[name]()
    p = {"xy": np.array([-1.0, 1.0])}
    for _ in range(20000):
        opt.step(p, {"xy": _rosenbrock_grad(p["xy"])})
    assert np.allclose(p["xy"], [1.0, 1.0], atol=2e-3)


def test_state_keyed_by_qualified_names_does_not_collide():
    opt = df.Adam(0.1)
    params = {"0.W": np.ones(2), "2.W": np.ones(2)}
    opt.step(params, {"0.W": np.array([1.0, 1.0]), "2.W": np.array([-1.0, -1.0])})
    assert np.allclose(params["0.W"], 0.9) and np.allclose(params["2.W"], 1.1)
    assert {"0.v/0.W", "0.v/2.W", "0.s/0.W", "0.s/2.W"} <= set(opt.state_dict())


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_state_dict_round_trip_continues_identically(name):
    rng = np.random.default_rng(1)
    grads = [rng.standard_normal(3) for _ in range(10)]
    opt = OPTIMIZERS[name]()
    p = {"0.W": np.ones(3)}
    for g in grads[:5]:
        opt.step(p, {"0.W": g})
    saved_p, saved_state = p["0.W"].copy(), copy.deepcopy(opt.state_dict())
    for g in grads[5:]:
        opt.step(p, {"0.W": g})
    fresh = OPTIMIZERS[name]()
    fresh.load_state_dict(saved_state)
    q = {"0.W": saved_p}
    for g in grads[5:]:
        fresh.step(q, {"0.W": g})
    assert np.array_equal(p["0.W"], q["0.W"])
    assert fresh.t == opt.t == 10


def test_a_learning_rate_of_zero_leaves_the_parameters_alone():
    p, opt = {"w": np.array([1.0])}, df.Adam(0.1)
    opt.lr = df.schedules.cosine(0.1, total=3)(3)
    assert opt.lr == 0.0
    opt.step(p, {"w": np.array([5.0])})
    assert p["w"][0] == 1.0


def test_learning_rate_can_change_between_steps():
    p, opt = {"w": np.array([0.0])}, df.SGD(0.1)
    opt.step(p, {"w": np.array([1.0])})
    opt.lr = 0.5
    opt.step(p, {"w": np.array([1.0])})
    assert p["w"][0] == pytest.approx(-0.6)


def test_decoupled_weight_decay_skips_biases_by_default():
    p = {"0.W": np.array([2.0]), "0.b": np.array([2.0])}
    df.SGD(0.1, weight_decay=0.5).step(p, {"0.W": np.zeros(1), "0.b": np.zeros(1)})
    assert p["0.W"][0] == pytest.approx(2.0 * (1 - 0.1 * 0.5)) and p["0.b"][0] == 2.0


def test_trains_a_network_in_float32_in_place():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((200, 2)).astype(np.float32)
    y = (X[:, 0] * X[:, 1] > 0).astype(np.int64)
    model = df.mlp(2, [16, 16], 2, rng=0)
    arrays = {k: id(v) for k, v in model.params.items()}
    loss, opt = df.SoftmaxCrossEntropy(), df.Adam(0.02)
    for _ in range(300):
        cost_and_gradients(model, loss, X, y)
        opt.step(model.params, model.grads)
    assert {k: id(v) for k, v in model.params.items()} == arrays
    assert all(v.dtype == np.float32 for v in model.params.values())
    assert (model.predict(X).argmax(axis=1) == y).mean() > 0.95


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: df.SGD(-0.1), "learning rate must be a finite number >= 0"),
        (lambda: df.SGD(float("nan")), "learning rate"),
        (lambda: df.Adam(beta1=1.0), "Adam beta1 must be in"),
        (lambda: df.Adam(beta2=-0.1), "Adam beta2"),
        (lambda: df.RMSprop(eps=0), "eps must be > 0"),
        (lambda: df.Momentum(beta=2), "momentum beta"),
        (lambda: df.Adam(weight_decay=-1), "weight_decay"),
    ],
)
def test_invalid_hyperparameters(make, message):
    with pytest.raises(df.DeepfitError, match=message):
        make()


def test_mismatched_keys_and_shapes_are_refused():
    opt = df.Adam(0.1)
    with pytest.raises(df.DeepfitError, match="different keys"):
        opt.step({"a": np.ones(1)}, {"b": np.ones(1)})
    opt.step({"a": np.ones(2)}, {"a": np.ones(2)})
    with pytest.raises(df.DeepfitError, match="build a new optimizer"):
        opt.step({"a": np.ones(3)}, {"a": np.ones(3)})

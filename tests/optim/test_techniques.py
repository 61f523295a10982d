"""Clipping by global norm, Lookahead, weight averaging (SWA, EMA, update_bn), SGDR and the
staircase inverse-time decay: hand-worked values, equivalences, and PyTorch as the oracle.

Conventions converted (deepfit -> PyTorch):

- ``clip_grad_norm_(grads, max_norm)`` == ``torch.nn.utils.clip_grad_norm_(params,
  max_norm)``: both return the norm before clipping and scale by ``max_norm / (norm + 1e-6)``
  when that is below 1.
- ``SWA`` == ``AveragedModel(module)`` (default ``avg_fn``: the equal running mean; the first
  update copies); ``EMA(decay)`` == ``AveragedModel(module,
  multi_avg_fn=get_ema_multi_avg_fn(decay))``. ``update_bn`` == ``swa_utils.update_bn``.
- ``schedules.sgdr(lr0, period, mult, lr_min)`` == ``CosineAnnealingWarmRestarts(T_0=period,
  T_mult=mult, eta_min=lr_min)`` stepped once per epoch.
"""

from __future__ import annotations

import numpy as np
import pytest

import deepfit as df
from deepfit.optim import SGD, Adam, Momentum, schedules
from deepfit.optim.averaging import EMA, SWA, update_bn
from deepfit.optim.clipping import clip_grad_norm_, global_norm
from deepfit.optim.lookahead import Lookahead
from tests.torch_oracle import Oracle

ORACLE = Oracle("techniques", 1e-12, 1e-14)


@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip("torch")


@pytest.fixture(scope="module", autouse=True)
def _report_worst(request):
    yield
    if ORACLE.worst:
        ORACLE.report(request.config)


# -- clipping ---------------------------------------------------------------------------------


def test_clip_by_global_norm_by_hand():
    grads = {"a": np.array([3.0, 0.0]), "b": np.array([[4.0]])}
    assert global_norm(grads) == 5.0
    norm = clip_grad_norm_(grads, 1.0)
    assert norm == 5.0
    np.testing.assert_allclose(grads["a"], [3 / (5 + 1e-6), 0.0])
    np.testing.assert_allclose(grads["b"], [[4 / (5 + 1e-6)]])
    small = {"a": np.array([0.3, 0.4])}
    assert clip_grad_norm_(small, 1.0) == pytest.approx(0.5)
    np.testing.assert_array_equal(small["a"], [0.3, 0.4])  # below the bound: untouched
    assert global_norm({"a": np.array([1.0, -7.0]), "b": np.array([2.0])}, np.inf) == 7.0
    with pytest.raises(df.DeepfitError, match="max_norm must be a finite number > 0"):
        clip_grad_norm_(small, 0.0)


@pytest.mark.torch
@pytest.mark.parametrize(
    ("max_norm", "norm_type"), [(0.5, 2.0), (100.0, 2.0), (1.0, 1.0), (0.3, float("inf"))]
)
def test_clip_grad_norm_matches_torch(torch, max_norm, norm_type):
    rng = np.random.default_rng(0)
    grads = {
        "0.W": rng.standard_normal((4, 3)),
        "0.b": rng.standard_normal(3),
        "2.W": rng.standard_normal((3, 2)),
    }
    params = [torch.zeros(g.shape, dtype=torch.float64, requires_grad=True) for g in grads.values()]
    for p, g in zip(params, grads.values(), strict=True):
        p.grad = torch.tensor(g.copy())
    theirs = torch.nn.utils.clip_grad_norm_(params, max_norm, norm_type=norm_type, foreach=False)
    ours = clip_grad_norm_(grads, max_norm, norm_type=norm_type)
    ORACLE.assert_matches("total norm", np.float64(ours), theirs)
    for (name, g), p in zip(grads.items(), params, strict=True):
        ORACLE.assert_matches(f"clipped {name}", g, p.grad)


# -- Lookahead --------------------------------------------------------------------------------


def _quadratic(seed=0, dim=4):
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(dim, dim)))
    A = q @ np.diag(rng.uniform(0.5, 5.0, dim)) @ q.T
    return 0.5 * (A + A.T), rng.normal(size=dim), rng.normal(0, 2, dim)


def test_lookahead_follows_the_papers_algorithm():
    A, b, theta0 = _quadratic()
    k, alpha, lr, beta = 3, 0.4, 0.05, 0.9
    opt = Lookahead(Momentum(lr, beta), k=k, alpha=alpha)
    theta = theta0.copy()
    # reference: Algorithm 1 of Zhang et al. with the notes' Momentum inside
    ref, slow, v = theta0.copy(), theta0.copy(), np.zeros_like(theta0)
    for t in range(1, 14):
        opt.step({"w": theta}, {"w": A @ theta - b})
        v = beta * v + (1 - beta) * (A @ ref - b)
        ref = ref - lr * v
        if t % k == 0:
            slow = slow + alpha * (ref - slow)
            ref = slow.copy()
        np.testing.assert_allclose(theta, ref, rtol=1e-13, atol=1e-15)
    assert np.linalg.norm(theta - theta0) > 0.1


def test_lookahead_with_k1_alpha1_is_the_inner_optimizer():
    A, b, theta0 = _quadratic(1)
    a, c = theta0.copy(), theta0.copy()
    plain, wrapped = Adam(0.1), Lookahead(Adam(0.1), k=1, alpha=1.0)
    for _ in range(10):
        plain.step({"w": a}, {"w": A @ a - b})
        wrapped.step({"w": c}, {"w": A @ c - b})
    np.testing.assert_array_equal(a, c)


def test_lookahead_reaches_the_minimum_and_sets_the_inner_lr():
    A, b, theta0 = _quadratic(2)
    opt = Lookahead(SGD(0.1), k=5, alpha=0.5)
    opt.lr = 0.15
    assert opt.inner.lr == 0.15
    theta = theta0.copy()
    for _ in range(400):
        opt.step({"w": theta}, {"w": A @ theta - b})
    np.testing.assert_allclose(theta, np.linalg.solve(A, b), atol=1e-8)


def test_lookahead_state_round_trip_continues_exactly():
    A, b, theta0 = _quadratic(3)
    straight, theta = Lookahead(Adam(0.05), k=4), theta0.copy()
    for _ in range(11):
        straight.step({"w": theta}, {"w": A @ theta - b})
    first, resumed = Lookahead(Adam(0.05), k=4), theta0.copy()
    for _ in range(6):
        first.step({"w": resumed}, {"w": A @ resumed - b})
    state = first.state_dict()
    assert state["lookahead.t"] == 6 and "lookahead.slow/w" in state
    second = Lookahead(Adam(0.05), k=4)
    second.load_state_dict(state)
    for _ in range(5):
        second.step({"w": resumed}, {"w": A @ resumed - b})
    np.testing.assert_array_equal(theta, resumed)


def test_lookahead_refuses_bad_settings():
    with pytest.raises(df.DeepfitError, match="k must be a positive integer"):
        Lookahead(SGD(), k=0)
    with pytest.raises(df.DeepfitError, match=r"alpha must be in \(0, 1\]"):
        Lookahead(SGD(), alpha=1.5)
    with pytest.raises(df.DeepfitError, match="wraps a deepfit optimizer"):
        Lookahead(Lookahead(SGD()))


# -- averaging --------------------------------------------------------------------------------


def test_swa_is_the_running_mean_and_ema_the_ewa_of_what_they_average():
    rng = np.random.default_rng(0)
    seq = [{"w": rng.standard_normal((3, 2)), "b": rng.standard_normal(2)} for _ in range(7)]
    swa, ema = SWA(), EMA(0.8)
    expected_ema = None
    for i, params in enumerate(seq):
        swa.update(params)
        ema.update(params)
        for name in params:
            np.testing.assert_allclose(
                swa.average[name], np.mean([s[name] for s in seq[: i + 1]], axis=0), rtol=1e-13
            )
        expected_ema = (
            {k: v.copy() for k, v in params.items()}
            if expected_ema is None
            else {k: 0.8 * expected_ema[k] + 0.2 * params[k] for k in params}
        )
        for name in params:
            np.testing.assert_allclose(ema.average[name], expected_ema[name], rtol=1e-13)
    assert swa.n == ema.n == 7
    target = {"w": np.zeros((3, 2), np.float32), "b": np.zeros(2, np.float32)}
    swa.copy_to(target)
    assert target["w"].dtype == np.float32
    np.testing.assert_allclose(target["w"], np.mean([s["w"] for s in seq], axis=0), rtol=1e-6)
    data, arrays = swa.state_dict()
    again = SWA()
    again.load_state_dict(data, arrays)
    again.update(seq[0])
    swa.update(seq[0])
    np.testing.assert_array_equal(again.average["w"], swa.average["w"])


def _torch_mlp(torch, model):
    """A torch Sequential with the weights of deepfit's mlp(3, [5], 2, batchnorm=True)."""
    nn = torch.nn
    net = nn.Sequential(
        nn.Linear(3, 5, bias=False), nn.BatchNorm1d(5, momentum=0.1), nn.ReLU(), nn.Linear(5, 2)
    ).double()
    load_into_torch(torch, net, model)
    return net


def load_into_torch(torch, net, model):
    p = model.params
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor(p["0.W"].T))
        net[1].weight.copy_(torch.tensor(p["1.gamma"]))
        net[1].bias.copy_(torch.tensor(p["1.beta"]))
        net[3].weight.copy_(torch.tensor(p["3.W"].T))
        net[3].bias.copy_(torch.tensor(p["3.b"]))


@pytest.mark.torch
@pytest.mark.parametrize("kind", ["swa", "ema"])
def test_averages_match_torch_averaged_model(torch, kind):
    from torch.optim import swa_utils

    model = df.mlp(3, [5], 2, batchnorm=True, rng=0, dtype="float64")
    assert [type(layer).__name__ for layer in model.layers][:2] == ["Dense", "BatchNorm"]
    net = _torch_mlp(torch, model)
    if kind == "swa":
        ours, theirs = SWA(), swa_utils.AveragedModel(net)
    else:
        ours = EMA(0.9)
        theirs = swa_utils.AveragedModel(net, multi_avg_fn=swa_utils.get_ema_multi_avg_fn(0.9))
    rng = np.random.default_rng(1)
    for _ in range(6):
        for v in model.params.values():
            v += 0.3 * rng.standard_normal(v.shape)
        load_into_torch(torch, net, model)
        ours.update(model.params)
        theirs.update_parameters(net)
    tm = theirs.module
    ORACLE.assert_matches(f"{kind} 0.W", ours.average["0.W"], tm[0].weight.T)
    ORACLE.assert_matches(f"{kind} 1.gamma", ours.average["1.gamma"], tm[1].weight)
    ORACLE.assert_matches(f"{kind} 3.b", ours.average["3.b"], tm[3].bias)
    ORACLE.assert_matches(f"{kind} 3.W", ours.average["3.W"], tm[3].weight.T)


@pytest.mark.torch
def test_update_bn_matches_torch(torch):
    from torch.optim import swa_utils

    model = df.mlp(3, [5], 2, batchnorm=True, rng=0, dtype="float64")
    net = _torch_mlp(torch, model)
    rng = np.random.default_rng(2)
    X = rng.standard_normal((37, 3)) * 2 + 1
    batches = [X[i : i + 8] for i in range(0, 37, 8)]  # last batch of 5
    model.forward(X[:4], training=True)  # stale statistics to be replaced
    n = update_bn(model, batches)
    assert n == 5
    loader = [torch.tensor(xb) for xb in batches]
    swa_utils.update_bn(loader, net)
    bn = model.layers[1]
    ORACLE.assert_matches("update_bn running_mean", bn.buffers["running_mean"], net[1].running_mean)
    ORACLE.assert_matches("update_bn running_var", bn.buffers["running_var"], net[1].running_var)
    assert bn.momentum == 0.9  # put back


def test_update_bn_leaves_dropout_streams_alone():
    model = df.mlp(3, [5], 2, batchnorm=True, keep_prob=0.5, rng=0)
    states = [layer.rng.bit_generator.state for layer in model.layers if hasattr(layer, "rng")]
    update_bn(model, [np.ones((4, 3), np.float32), np.zeros((4, 3), np.float32)])
    after = [layer.rng.bit_generator.state for layer in model.layers if hasattr(layer, "rng")]
    assert states == after
    assert update_bn(df.mlp(3, [4], 2, rng=0), [np.ones((4, 3))]) == 0


# -- schedules --------------------------------------------------------------------------------


def test_staircase_inverse_time():
    s = schedules.inverse_time(1.0, 0.5, interval=3)
    assert [s(e) for e in range(7)] == [1.0, 1.0, 1.0, 1 / 1.5, 1 / 1.5, 1 / 1.5, 0.5]
    assert schedules.inverse_time(0.2, 1.0)(3) == 0.05  # interval 1: the notes' decay
    assert schedules.from_config(s.config()) == s
    with pytest.raises(df.DeepfitError, match="interval must be a positive integer"):
        schedules.inverse_time(1.0, 0.5, interval=0)


def test_sgdr_cycles_and_cycle_ends():
    s = schedules.sgdr(1.0, 3, 2, 0.0)
    assert [e for e in range(22) if s.cycle_end(e)] == [2, 8, 20]
    assert s(0) == s(3) == s(9) == s(21) == 1.0
    assert s(1) == pytest.approx(0.75)
    w = schedules.warmup(s, 2)
    assert [e for e in range(12) if w.cycle_end(e)] == [4, 10]
    assert schedules.from_config(s.config()) == s
    with pytest.raises(df.DeepfitError, match="sgdr period must be a positive integer"):
        schedules.sgdr(1.0, 0)


@pytest.mark.torch
@pytest.mark.parametrize(
    ("period", "mult", "lr_min"), [(5, 1, 0.0), (3, 2, 0.01), (2, 3, 0.0), (1, 1, 0.0)]
)
def test_sgdr_matches_cosine_annealing_warm_restarts(torch, period, mult, lr_min):
    lr0, epochs = 0.1, 40
    p = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([p], lr=lr0)
    sched = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(
        opt, T_0=period, T_mult=mult, eta_min=lr_min
    )
    theirs = []
    for _ in range(epochs):
        theirs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    ours = schedules.sgdr(lr0, period, mult, lr_min)
    ORACLE.assert_matches(
        f"sgdr({period}, {mult})",
        np.array([ours(e) for e in range(epochs)]),
        np.array(theirs),
        rtol=1e-12,
        atol=1e-15,
    )

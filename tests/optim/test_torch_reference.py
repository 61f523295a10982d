"""Differential tests of the optimizers and schedules against PyTorch (the oracle), float64.

Trajectories run on the quadratic ``f(theta) = 0.5 theta^T A theta - b^T theta`` (``A``
symmetric positive definite), whose gradient is ``A theta - b``. Both contenders get their
gradient from that same NumPy formula evaluated at their own current parameters, so only
the optimizers' arithmetic is compared (not two autograd round-offs). Parameters are
compared after every step; :func:`assert_matches` records the largest relative error
(``max|ours - torch| / max|torch|``), printed at the end of the module.

Conventions converted below (deepfit -> PyTorch):

- ``Adam(lr, beta1, beta2, eps)`` == ``torch.optim.Adam(lr, betas=(beta1, beta2), eps)``:
  both bias-correct both moments and add ``eps`` outside the square root
  (``sqrt(s_hat) + eps``).
- ``Adam(weight_decay=wd, decay_filter=lambda n: True)`` == ``torch.optim.AdamW(
  weight_decay=wd)``: decoupled decay ``theta -= lr * wd * theta`` (torch multiplies by
  ``1 - lr * wd`` before the Adam step, deepfit adds ``wd * theta`` to the Adam direction;
  both use the pre-step ``theta``, so they agree). deepfit's default filter decays only
  ``"<i>.W"`` names; the filter here decays everything, as AdamW does for one param group.
- ``RMSprop(lr, beta, eps)`` == ``torch.optim.RMSprop(lr, alpha=beta, eps)``: ``alpha`` is
  our ``beta``; both compute ``g / (sqrt(s) + eps)`` (eps outside the root), no bias
  correction, not centred, no momentum.
- ``SGD(lr, weight_decay=wd)`` == ``torch.optim.SGD(lr, weight_decay=wd)``: for plain SGD
  decoupled decay and torch's ``g + wd * theta`` are the same update.
- ``Momentum(lr, beta)`` keeps ``v = beta v + (1 - beta) g`` (an EWA started at 0);
  torch's ``SGD(momentum=mu, dampening=d)`` keeps ``buf = mu buf + (1 - d) g`` but
  *initialises* ``buf = g`` at the first step (no dampening then). With ``mu = d = beta``
  the two differ only in that first step (torch's step is ``1/(1 - beta)`` times ours);
  pre-seeding torch's ``momentum_buffer`` with zeros removes the difference. Momentum is
  compared with a hand-written NumPy reference and with that pre-seeded torch SGD.
- Schedules give the lr of epoch ``e`` (counting from 0); a torch scheduler's lr for epoch
  ``e`` is ``param_groups[0]["lr"]`` after ``e`` calls of ``scheduler.step()``.
"""

from __future__ import annotations

import numpy as np
import pytest

from deepfit.optim import SGD, Adam, Momentum, RMSprop, schedules
from tests.torch_oracle import Oracle, as_numpy

torch = pytest.importorskip("torch")

pytestmark = pytest.mark.torch

RTOL = 1e-11
ATOL = 1e-13
DIM = 5
STEPS = 30

ORACLE = Oracle("optim", RTOL, ATOL)
assert_matches = ORACLE.assert_matches
_np = as_numpy


@pytest.fixture(scope="module", autouse=True)
def _report_worst(request):
    yield
    ORACLE.report(request.config)


# -- the quadratic ---------------------------------------------------------------------------


def quadratic(seed: int):
    """Random SPD ``A`` (eigenvalues in [0.5, 5]), ``b`` and a starting point ``theta0``."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(DIM, DIM)))
    A = q @ np.diag(rng.uniform(0.5, 5.0, size=DIM)) @ q.T
    A = 0.5 * (A + A.T)
    b = rng.normal(size=DIM)
    theta0 = rng.normal(0.0, 2.0, size=DIM)
    return A, b, theta0


def run_pair(opt, torch_opt_factory, seed: int, lr_at=None, steps: int = STEPS):
    """Run deepfit ``opt`` and the torch optimizer side by side, comparing every step.

    ``lr_at(t)`` (t = 0, 1, ...), when given, sets the learning rate of both before step t.
    Returns both trajectories (steps + 1, DIM), starting point included.
    """
    A, b, theta0 = quadratic(seed)
    theta = theta0.copy()
    p = torch.tensor(theta0.copy(), dtype=torch.float64, requires_grad=True)
    topt = torch_opt_factory([p])
    ours, theirs = [theta.copy()], [theta0.copy()]
    for t in range(steps):
        if lr_at is not None:
            opt.lr = lr_at(t)
            for group in topt.param_groups:
                group["lr"] = lr_at(t)
        opt.step({"theta": theta}, {"theta": A @ theta - b})
        topt.zero_grad()
        p.grad = torch.from_numpy(A @ _np(p) - b)
        topt.step()
        assert_matches(f"{opt!r} parameters at step {t + 1}", theta, p)
        ours.append(theta.copy())
        theirs.append(_np(p).copy())
    # The run went somewhere: the comparison is not between two standing-still vectors.
    assert np.linalg.norm(ours[-1] - theta0) > 1e-2
    return np.array(ours), np.array(theirs)


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize(
    ("lr", "beta1", "beta2", "eps"), [(0.05, 0.9, 0.999, 1e-8), (0.2, 0.5, 0.9, 1e-3)]
)
def test_adam_vs_torch_adam(seed, lr, beta1, beta2, eps):
    run_pair(
        Adam(lr, beta1, beta2, eps),
        lambda ps: torch.optim.Adam(ps, lr=lr, betas=(beta1, beta2), eps=eps, foreach=False),
        seed,
    )


@pytest.mark.parametrize("wd", [0.01, 0.3])
def test_adamw_vs_torch_adamw(wd):
    lr = 0.05
    run_pair(
        # decay_filter: decay every parameter (deepfit's default is weight matrices only).
        Adam(lr, weight_decay=wd, decay_filter=lambda name: True),
        lambda ps: torch.optim.AdamW(ps, lr=lr, weight_decay=wd, foreach=False),
        seed=2,
    )


@pytest.mark.parametrize(("lr", "beta", "eps"), [(0.01, 0.9, 1e-8), (0.05, 0.99, 1e-2)])
def test_rmsprop_vs_torch_rmsprop(lr, beta, eps):
    run_pair(
        RMSprop(lr, beta=beta, eps=eps),
        # torch's alpha is our beta; eps is added outside the square root in both.
        lambda ps: torch.optim.RMSprop(ps, lr=lr, alpha=beta, eps=eps, foreach=False),
        seed=3,
    )


@pytest.mark.parametrize("wd", [0.0, 0.1])
def test_sgd_vs_torch_sgd(wd):
    lr = 0.05
    run_pair(
        SGD(lr, weight_decay=wd, decay_filter=lambda name: True),
        lambda ps: torch.optim.SGD(ps, lr=lr, weight_decay=wd, foreach=False),
        seed=4,
    )


def test_adam_with_learning_rate_changed_every_step():
    # A warm-up into a cosine decay, applied before every step, to both optimizers.
    sched = schedules.warmup(schedules.cosine(0.1, total=20, lr_min=0.005), epochs=5, start=0.2)
    run_pair(
        Adam(sched(0)),
        lambda ps: torch.optim.Adam(ps, lr=sched(0), foreach=False),
        seed=5,
        lr_at=sched,
    )


def test_adam_with_learning_rate_halved_midway():
    run_pair(
        Adam(0.1),
        lambda ps: torch.optim.Adam(ps, lr=0.1, foreach=False),
        seed=6,
        lr_at=lambda t: 0.1 if t < STEPS // 2 else 0.05,
    )


# -- Momentum --------------------------------------------------------------------------------


def numpy_momentum(theta0, A, b, lr, beta, steps):
    """The notes' momentum: ``v = beta v + (1 - beta) g`` from ``v = 0``; ``theta -= lr v``."""
    theta, v, path = theta0.copy(), np.zeros_like(theta0), [theta0.copy()]
    for _ in range(steps):
        g = A @ theta - b
        v = beta * v + (1 - beta) * g
        theta = theta - lr * v
        path.append(theta.copy())
    return np.array(path)


@pytest.mark.parametrize("beta", [0.9, 0.5])
def test_momentum_vs_numpy_reference(beta):
    lr = 0.1
    A, b, theta0 = quadratic(7)
    expected = numpy_momentum(theta0, A, b, lr, beta, STEPS)
    opt, theta = Momentum(lr, beta), theta0.copy()
    for t in range(STEPS):
        opt.step({"theta": theta}, {"theta": A @ theta - b})
        assert_matches(f"Momentum(beta={beta}) vs NumPy at step {t + 1}", theta, expected[t + 1])


@pytest.mark.parametrize("beta", [0.9, 0.5])
def test_momentum_vs_torch_sgd_with_dampening(beta):
    lr = 0.1

    def seeded_sgd(ps):
        # dampening = momentum = beta turns torch's buf = mu buf + g into our EWA, but torch
        # starts with buf = g; a zero buffer in the state makes the first step an EWA step too.
        opt = torch.optim.SGD(ps, lr=lr, momentum=beta, dampening=beta, foreach=False)
        for p in ps:
            opt.state[p]["momentum_buffer"] = torch.zeros_like(p)
        return opt

    run_pair(Momentum(lr, beta), seeded_sgd, seed=8)

    # Without the zero buffer the first step differs, by exactly the factor 1/(1 - beta).
    A, b, theta0 = quadratic(8)
    g = A @ theta0 - b
    theta = theta0.copy()
    Momentum(lr, beta).step({"theta": theta}, {"theta": g})
    p = torch.tensor(theta0.copy(), requires_grad=True)
    plain = torch.optim.SGD([p], lr=lr, momentum=beta, dampening=beta, foreach=False)
    p.grad = torch.from_numpy(g.copy())
    plain.step()
    np.testing.assert_allclose(theta0 - _np(p), (theta0 - theta) / (1 - beta), rtol=1e-12)


# -- schedules -------------------------------------------------------------------------------


def torch_lrs(lr0: float, make_scheduler, epochs: int) -> list[float]:
    """The lr torch trains epoch ``e`` at, for ``e = 0 .. epochs - 1``."""
    p = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.SGD([p], lr=lr0)
    sched = make_scheduler(opt)
    lrs = []
    for _ in range(epochs):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()  # no gradient: a no-op, called to keep torch's call order happy
        sched.step()
    return lrs


def _compare_schedule(name: str, ours, theirs: list[float]) -> None:
    mine = np.array([ours(e) for e in range(len(theirs))])
    assert_matches(name, mine, np.array(theirs), rtol=1e-12, atol=0.0)


@pytest.mark.parametrize(("every", "factor"), [(3, 0.5), (7, 0.1), (1, 0.9)])
def test_step_vs_steplr(every, factor):
    lr0 = 0.3
    theirs = torch_lrs(
        lr0, lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=every, gamma=factor), 40
    )
    _compare_schedule(
        f"Step(every={every}, factor={factor})", schedules.step(lr0, every, factor), theirs
    )


@pytest.mark.parametrize("k", [0.95, 0.5, 1.0])
def test_exponential_vs_exponentiallr(k):
    lr0 = 0.1
    theirs = torch_lrs(lr0, lambda o: torch.optim.lr_scheduler.ExponentialLR(o, gamma=k), 40)
    _compare_schedule(f"Exponential(k={k})", schedules.exponential(lr0, k), theirs)


@pytest.mark.parametrize(("total", "lr_min"), [(10, 0.0), (25, 0.001), (1, 0.01)])
def test_cosine_vs_cosineannealinglr(total, lr_min):
    lr0 = 0.1
    # Compared over epochs 0..total only: beyond T_max torch's (recursive) cosine rises
    # again towards lr0, while deepfit's schedule stays at lr_min.
    theirs = torch_lrs(
        lr0,
        lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=total, eta_min=lr_min),
        total + 1,
    )
    ours = schedules.cosine(lr0, total, lr_min)
    _compare_schedule(f"Cosine(total={total}, lr_min={lr_min})", ours, theirs)
    assert ours(total + 5) == lr_min


@pytest.mark.parametrize(("epochs", "start"), [(5, 0.1), (1, 0.5), (10, 0.01)])
def test_warmup_vs_linearlr(epochs, start):
    lr0 = 0.2
    theirs = torch_lrs(
        lr0,
        lambda o: torch.optim.lr_scheduler.LinearLR(
            o, start_factor=start, end_factor=1.0, total_iters=epochs
        ),
        epochs + 10,
    )
    ours = schedules.warmup(schedules.constant(lr0), epochs, start)
    _compare_schedule(f"Warmup(Constant, epochs={epochs}, start={start})", ours, theirs)

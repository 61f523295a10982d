"""Example weights, class weights and label smoothing in the fused losses: float64 gradient
checks, hand-worked values, and differential tests against PyTorch.

Conventions converted (deepfit -> PyTorch):

- ``SoftmaxCrossEntropy().forward(z, y, weight=c[y])`` == ``CrossEntropyLoss(weight=c)``: both
  divide ``sum_i c[y_i] l_i`` by ``sum_i c[y_i]``.
- ``SigmoidBinaryCrossEntropy().forward(z, y, weight=w)`` (``z`` of shape ``(m, k)``) ==
  ``BCEWithLogitsLoss(weight=w[:, None], reduction="sum")(z, y) / (k * sum(w))``; torch's
  ``"mean"`` would divide by ``m k`` instead of ``k sum w``.
- ``MeanSquaredError`` with weights: ``sum_i w_i mean_j (z_ij - y_ij)^2 / sum_i w_i``, written
  out in torch.
- ``label_smoothing=eps``: ``CrossEntropyLoss(label_smoothing=eps)`` (target ``(1 - eps)
  onehot + eps / K``); for BCE the target ``y (1 - eps) + eps / 2`` is passed to torch.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import deepfit as df
from deepfit.checks.gradcheck import relative_error
from deepfit.nn.losses import class_weight_vector, example_weights
from tests.gradients import numeric_gradient
from tests.torch_oracle import Oracle

ORACLE = Oracle("weighted losses", 1e-12, 1e-14, float64=True)


def _targets(loss, m, k, rng):
    if isinstance(loss, df.SoftmaxCrossEntropy):
        return rng.integers(0, k, m)
    if isinstance(loss, df.SigmoidBinaryCrossEntropy):
        return rng.integers(0, 2, (m, k)).astype(float)
    return rng.standard_normal((m, k))


LOSSES = [
    lambda: df.SoftmaxCrossEntropy(),
    lambda: df.SoftmaxCrossEntropy(label_smoothing=0.2),
    lambda: df.SigmoidBinaryCrossEntropy(),
    lambda: df.SigmoidBinaryCrossEntropy(label_smoothing=0.1),
    lambda: df.MeanSquaredError(),
]


@pytest.mark.parametrize("make", LOSSES)
@settings(max_examples=15)
@given(m=st.integers(1, 6), k=st.integers(1, 5), seed=st.integers(0, 2**32 - 1))
def test_weighted_and_smoothed_gradients_match_finite_differences(make, m, k, seed):
    rng = np.random.default_rng(seed)
    loss = make()
    logits = rng.standard_normal((m, k)) * 3
    y = _targets(loss, m, k, rng)
    w = rng.uniform(0.0, 3.0, m)
    loss.forward(logits, y, w)
    analytic = loss.backward().copy()
    numeric = numeric_gradient(lambda: loss.forward(logits, y, w), logits)
    assert relative_error(numeric, analytic) < 1e-7


@pytest.mark.parametrize("eps", [0.0, 0.2])
def test_soft_targets_with_weights_and_smoothing_gradient(eps):
    rng = np.random.default_rng(3)
    loss = df.SoftmaxCrossEntropy(label_smoothing=eps)
    logits = rng.standard_normal((4, 3))
    soft = rng.dirichlet(np.ones(3), 4)
    w = np.array([1.0, 2.0, 0.5, 1.5])
    loss.forward(logits, soft, w)
    analytic = loss.backward().copy()
    numeric = numeric_gradient(lambda: loss.forward(logits, soft, w), logits)
    assert relative_error(numeric, analytic) < 1e-7


def test_unit_weights_change_nothing_and_scale_does_not_matter():
    rng = np.random.default_rng(0)
    for loss, y in [
        (df.SoftmaxCrossEntropy(), rng.integers(0, 4, 6)),
        (df.SigmoidBinaryCrossEntropy(), rng.integers(0, 2, (6, 4)).astype(float)),
        (df.MeanSquaredError(), rng.standard_normal((6, 4))),
    ]:
        z = rng.standard_normal((6, 4))
        plain = loss.forward(z, y)
        g = loss.backward().copy()
        assert loss.forward(z, y, np.ones(6)) == pytest.approx(plain, rel=1e-14)
        np.testing.assert_allclose(loss.backward(), g, rtol=1e-14)
        w = rng.uniform(0.1, 2, 6)
        a = loss.forward(z, y, w)
        ga = loss.backward().copy()
        assert loss.forward(z, y, 7.0 * w) == pytest.approx(a, rel=1e-13)
        np.testing.assert_allclose(loss.backward(), ga, rtol=1e-13)


def test_weighted_mean_by_hand():
    # MSE, one output: losses 1, 4, 9 with weights 1, 0, 2 -> (1 + 18) / 3
    loss = df.MeanSquaredError()
    z = np.array([[1.0], [2.0], [3.0]])
    assert loss.forward(z, np.zeros(3), np.array([1.0, 0.0, 2.0])) == pytest.approx(19 / 3)
    np.testing.assert_allclose(loss.backward().ravel(), [2 * 1 / 3, 0.0, 2 * 3 * 2 / 3])
    # an example of weight 0 is as if it were not there
    ce = df.SoftmaxCrossEntropy()
    z = np.random.default_rng(1).standard_normal((3, 4))
    y = np.array([0, 3, 1])
    with_zero = ce.forward(z, y, np.array([1.0, 0.0, 1.0]))
    assert with_zero == pytest.approx(ce.forward(z[[0, 2]], y[[0, 2]]), rel=1e-14)


def test_all_zero_weights_give_zero_loss_and_gradient():
    ce = df.SoftmaxCrossEntropy()
    assert ce.forward(np.ones((2, 3)), np.array([0, 1]), np.zeros(2)) == 0.0
    assert not ce.backward().any()


def test_bad_weights_are_refused_with_one_line():
    ce = df.SoftmaxCrossEntropy()
    with pytest.raises(df.ShapeError, match=r"weight must have shape \(2,\)"):
        ce.forward(np.zeros((2, 3)), np.array([0, 1]), np.ones(3))
    with pytest.raises(df.DeepfitError, match="finite and >= 0"):
        ce.forward(np.zeros((2, 3)), np.array([0, 1]), np.array([1.0, -1.0]))
    with pytest.raises(df.DeepfitError, match="finite and >= 0"):
        df.MeanSquaredError().forward(np.zeros((2, 1)), np.zeros(2), np.array([1.0, np.inf]))
    with pytest.raises(df.DeepfitError, match=r"label_smoothing must be in \[0, 1\)"):
        df.SoftmaxCrossEntropy(label_smoothing=1.0)
    with pytest.raises(df.DeepfitError, match="not to mse"):
        df.nn.losses.get_loss("mse", label_smoothing=0.1)


def test_label_smoothing_by_hand():
    # K = 2, eps = 0.2: target (0.9, 0.1) for class 0
    z = np.array([[1.0, -1.0]])
    logp = z - np.log(np.exp(z).sum())
    expected = -(0.9 * logp[0, 0] + 0.1 * logp[0, 1])
    loss = df.SoftmaxCrossEntropy(label_smoothing=0.2)
    assert loss.forward(z, np.array([0])) == pytest.approx(expected, rel=1e-14)
    np.testing.assert_allclose(loss.backward(), np.exp(logp) - [[0.9, 0.1]], rtol=1e-14)
    # BCE: y = 1 with eps = 0.2 is the target 0.9
    b = df.SigmoidBinaryCrossEntropy(label_smoothing=0.2)
    p = 1 / (1 + np.exp(-0.5))
    expected = -(0.9 * np.log(p) + 0.1 * np.log(1 - p))
    assert b.forward(np.array([[0.5]]), np.array([1])) == pytest.approx(expected, rel=1e-14)


def test_balanced_class_weights_are_scikit_learns():
    sklearn_utils = pytest.importorskip("sklearn.utils")
    y = np.array([0, 0, 0, 0, 1, 2, 2, 0, 1, 0])
    ours = class_weight_vector(y, 3, "balanced")
    theirs = sklearn_utils.compute_class_weight("balanced", classes=np.arange(3), y=y)
    np.testing.assert_allclose(ours, theirs, rtol=1e-15)
    # n_samples / (n_classes * bincount)
    np.testing.assert_allclose(ours, 10 / (3 * np.array([6, 2, 2])))
    # a class absent from y is not counted (scikit-learn's n_classes = classes present)
    np.testing.assert_allclose(
        class_weight_vector(np.array([0, 0, 1]), 3, "balanced")[:2], [3 / 4, 3 / 2]
    )
    np.testing.assert_allclose(class_weight_vector(y, 3, {1: 5.0}), [1.0, 5.0, 1.0])
    w = example_weights(y, 3, {2: 3.0}, sample_weight=np.full(10, 0.5))
    np.testing.assert_allclose(w, np.where(y == 2, 1.5, 0.5))
    assert example_weights(y, 3) is None
    with pytest.raises(df.DataError, match="outside the 3 classes"):
        class_weight_vector(y, 3, {3: 1.0})
    with pytest.raises(df.DeepfitError, match="'balanced', a mapping or None"):
        class_weight_vector(y, 3, "auto")


# -- PyTorch ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip("torch")


@pytest.fixture(scope="module", autouse=True)
def _report_worst(request):
    yield
    if ORACLE.worst:
        ORACLE.report(request.config)


def _grad(torch, fn, z):
    zt = torch.tensor(z, requires_grad=True)
    value = fn(zt)
    value.backward()
    return value, zt.grad


@pytest.mark.torch
@pytest.mark.parametrize("seed", range(4))
def test_class_weighted_cross_entropy_matches_torch(torch, seed):
    rng = np.random.default_rng(seed)
    m, k = 12, 4
    z, y = rng.standard_normal((m, k)) * 2, rng.integers(0, k, m)
    c = class_weight_vector(y, k, "balanced") if seed % 2 else rng.uniform(0.2, 3, k)
    loss = df.SoftmaxCrossEntropy()
    ours = loss.forward(z, y, c[y])
    crit = torch.nn.CrossEntropyLoss(weight=torch.tensor(c))
    value, grad = _grad(torch, lambda t: crit(t, torch.tensor(y)), z)
    ORACLE.assert_matches("weighted CE value", np.float64(ours), value)
    ORACLE.assert_matches("weighted CE gradient", loss.backward(), grad)


@pytest.mark.torch
@pytest.mark.parametrize("eps", [0.05, 0.1, 0.3])
def test_label_smoothing_matches_torch(torch, eps):
    rng = np.random.default_rng(int(eps * 100))
    m, k = 10, 5
    z, y = rng.standard_normal((m, k)) * 2, rng.integers(0, k, m)
    loss = df.SoftmaxCrossEntropy(label_smoothing=eps)
    ours = loss.forward(z, y)
    crit = torch.nn.CrossEntropyLoss(label_smoothing=eps)
    value, grad = _grad(torch, lambda t: crit(t, torch.tensor(y)), z)
    ORACLE.assert_matches("smoothed CE value", np.float64(ours), value)
    ORACLE.assert_matches("smoothed CE gradient", loss.backward(), grad)
    # soft targets (probabilities) are smoothed the same way by torch
    soft = rng.dirichlet(np.ones(k), m)
    ours = loss.forward(z, soft)
    value, grad = _grad(torch, lambda t: crit(t, torch.tensor(soft)), z)
    ORACLE.assert_matches("smoothed soft CE value", np.float64(ours), value)
    ORACLE.assert_matches("smoothed soft CE gradient", loss.backward(), grad)
    # BCE: torch has no label_smoothing there; the smoothed target is passed by hand
    zb, yb = rng.standard_normal((m, 2)), rng.integers(0, 2, (m, 2)).astype(float)
    bce = df.SigmoidBinaryCrossEntropy(label_smoothing=eps)
    ours = bce.forward(zb, yb)
    crit_b = torch.nn.BCEWithLogitsLoss()
    value, grad = _grad(torch, lambda t: crit_b(t, torch.tensor(yb * (1 - eps) + eps / 2)), zb)
    ORACLE.assert_matches("smoothed BCE value", np.float64(ours), value)
    ORACLE.assert_matches("smoothed BCE gradient", bce.backward(), grad)


@pytest.mark.torch
@pytest.mark.parametrize("k", [1, 3])
def test_weighted_bce_and_mse_match_torch(torch, k):
    rng = np.random.default_rng(k)
    m = 9
    w = rng.uniform(0.0, 2.0, m)
    z = rng.standard_normal((m, k)) * 2
    yb = rng.integers(0, 2, (m, k)).astype(float)
    bce = df.SigmoidBinaryCrossEntropy()
    ours = bce.forward(z, yb, w)
    crit = torch.nn.BCEWithLogitsLoss(weight=torch.tensor(w[:, None]), reduction="sum")
    value, grad = _grad(torch, lambda t: crit(t, torch.tensor(yb)) / (k * w.sum()), z)
    ORACLE.assert_matches("weighted BCE value", np.float64(ours), value)
    ORACLE.assert_matches("weighted BCE gradient", bce.backward(), grad)

    yr = rng.standard_normal((m, k))
    mse = df.MeanSquaredError()
    ours = mse.forward(z, yr, w)
    wt = torch.tensor(w)

    def weighted_mse(t):
        per_example = ((t - torch.tensor(yr)) ** 2).mean(dim=1)
        return (wt * per_example).sum() / wt.sum()

    value, grad = _grad(torch, weighted_mse, z)
    ORACLE.assert_matches("weighted MSE value", np.float64(ours), value)
    ORACLE.assert_matches("weighted MSE gradient", mse.backward(), grad)


@pytest.mark.parametrize(
    ("loss", "k"),
    [
        (df.SoftmaxCrossEntropy(label_smoothing=0.1), 3),
        (df.SigmoidBinaryCrossEntropy(label_smoothing=0.2), 1),
        (df.MeanSquaredError(), 2),
    ],
)
def test_weighted_objective_with_penalties_gradient_check(loss, k):
    """J = sum w_i l_i / sum w_i + lambda/(2m) sum ||W||^2 + lambda1/m sum |W| (m = rows, the
    penalties' meaning unchanged by weights): backward against finite differences in float64."""
    from deepfit.nn.objective import cost, cost_and_gradients, make_penalties

    rng = np.random.default_rng(k)
    model = df.mlp(4, [5], k, activation="tanh", rng=0, dtype="float64")
    x = rng.standard_normal((7, 4))
    y = _targets(loss, 7, k, rng)
    if isinstance(loss, df.SigmoidBinaryCrossEntropy):
        y = y[:, 0]
    w = rng.uniform(0.0, 2.0, 7)
    penalties = make_penalties(l2=0.3, l1=0.05)
    value = cost_and_gradients(model, loss, x, y, penalties, weight=w)
    grads = {name: g.copy() for name, g in model.grads.items()}
    weights_sq = sum(float((p**2).sum()) for n, p in model.params.items() if n.endswith("W"))
    weights_abs = sum(float(np.abs(p).sum()) for n, p in model.params.items() if n.endswith("W"))
    data = loss.forward(model.forward(x), y, w)
    assert value == pytest.approx(data + 0.3 / 14 * weights_sq + 0.05 / 7 * weights_abs)
    for name, p in model.params.items():
        numeric = numeric_gradient(lambda: cost(model, loss, x, y, penalties, weight=w), p)
        assert relative_error(numeric, grads[name]) < 1e-7, name

"""Differential tests of the layers and losses against PyTorch (the oracle), in float64.

Every comparison goes through :func:`assert_matches`, which also records the largest
relative error seen in this module (``max|ours - torch| / max|torch|`` per compared array,
i.e. the infinity-norm relative error); the number is printed at the end of the module.

Conventions converted below (deepfit -> PyTorch):

- ``Dense``: deepfit's ``W`` has shape ``(n_in, n_out)`` and ``z = x @ W + b``;
  ``torch.nn.Linear.weight`` has shape ``(n_out, n_in)`` and is ``W.T`` (``z = x @ weight.T +
  bias``). Gradients convert the same way: ``dW == weight.grad.T``.
- ``BatchNorm``: deepfit's ``momentum`` is the EWA beta, ``running = momentum * running +
  (1 - momentum) * batch_stat``; PyTorch's is the weight of the *new* statistic, so
  ``torch_momentum = 1 - deepfit_momentum``. Both update ``running_var`` with the unbiased
  batch variance (``* m / (m - 1)``) and normalise the batch with the biased one. deepfit's
  ``gamma``/``beta`` are ``BatchNorm1d.weight``/``bias``; ``eps`` means the same in both.
- ``Dropout``: deepfit's ``keep_prob`` is ``1 - p`` of ``torch.nn.Dropout(p)``. The masks
  come from different generators, so only mask-independent properties are compared.
- Losses: deepfit's fused losses take logits, like ``F.cross_entropy`` (softmax inside),
  ``BCEWithLogitsLoss`` (sigmoid inside) and ``MSELoss``; all use mean reduction over the
  batch (and, for BCE and MSE, over every output entry).
- L2 penalty: deepfit adds ``lambda / (2 m) * sum_l ||W_l||_F^2`` over weight matrices only
  (no biases, no gamma/beta), with ``m`` the batch size; that term is added to the torch
  loss by hand.
"""

from __future__ import annotations

import numpy as np
import pytest

import deepfit
from deepfit.nn import cost_and_gradients, make_penalties
from tests.torch_oracle import Oracle, as_numpy

torch = pytest.importorskip("torch")
F = torch.nn.functional

pytestmark = pytest.mark.torch

RTOL = 1e-11
ATOL = 1e-13

ORACLE = Oracle("nn", RTOL, ATOL, float64=True)
assert_matches = ORACLE.assert_matches
_np = as_numpy


@pytest.fixture(scope="module", autouse=True)
def _report_worst(request):
    yield
    ORACLE.report(request.config)


# -- the MLP ---------------------------------------------------------------------------------

N_IN, H1, H2, H3, K = 7, 12, 10, 8, 5
BN_MOMENTUM = 0.9  # deepfit's EWA beta; torch's momentum is 1 - 0.9 = 0.1
BN_EPS = 1e-5


def make_pair(seed: int, bn_momentum: float = BN_MOMENTUM):
    """A float64 deepfit MLP and the equivalent torch model, with identical parameters.

    Dense -> BatchNorm -> ReLU -> Dense -> Tanh -> Dense -> Sigmoid -> Dense (logits).
    The first Dense has no bias: batch norm's mean subtraction cancels it, so its gradient
    is rounding noise (~1e-17) in both frameworks and a relative comparison means nothing.
    """
    rng = np.random.default_rng(seed)
    ours = deepfit.Sequential(
        [
            deepfit.Dense(N_IN, H1, bias=False, rng=rng, dtype="float64"),
            deepfit.BatchNorm(H1, momentum=bn_momentum, eps=BN_EPS, dtype="float64"),
            deepfit.ReLU(),
            deepfit.Dense(H1, H2, "xavier", rng=rng, dtype="float64"),
            deepfit.Tanh(),
            deepfit.Dense(H2, H3, "xavier", rng=rng, dtype="float64"),
            deepfit.Sigmoid(),
            deepfit.Dense(H3, K, "xavier", rng=rng, dtype="float64"),
        ]
    )
    # Non-trivial biases and batch-norm scale/shift (the defaults 0 and 1 would hide
    # transposition or broadcasting mistakes).
    for name, p in ours.params.items():
        if name.endswith((".b", ".beta")):
            p[...] = rng.normal(0.0, 0.5, size=p.shape)
        elif name.endswith(".gamma"):
            p[...] = rng.uniform(0.5, 1.5, size=p.shape)

    f64 = torch.float64
    theirs = torch.nn.Sequential(
        torch.nn.Linear(N_IN, H1, bias=False, dtype=f64),
        # torch momentum = 1 - deepfit momentum (weight of the new batch statistic).
        torch.nn.BatchNorm1d(H1, eps=BN_EPS, momentum=1.0 - bn_momentum, dtype=f64),
        torch.nn.ReLU(),
        torch.nn.Linear(H1, H2, dtype=f64),
        torch.nn.Tanh(),
        torch.nn.Linear(H2, H3, dtype=f64),
        torch.nn.Sigmoid(),
        torch.nn.Linear(H3, K, dtype=f64),
    )
    with torch.no_grad():
        for i, layer in enumerate(ours.layers):
            mod = theirs[i]
            if isinstance(layer, deepfit.Dense):
                # nn.Linear.weight is deepfit's W transposed: (n_out, n_in).
                mod.weight.copy_(torch.from_numpy(layer.params["W"].T.copy()))
                if "b" in layer.params:
                    mod.bias.copy_(torch.from_numpy(layer.params["b"]))
            elif isinstance(layer, deepfit.BatchNorm):
                mod.weight.copy_(torch.from_numpy(layer.params["gamma"]))
                mod.bias.copy_(torch.from_numpy(layer.params["beta"]))
                mod.running_mean.copy_(torch.from_numpy(layer.buffers["running_mean"]))
                mod.running_var.copy_(torch.from_numpy(layer.buffers["running_var"]))
    return ours, theirs


def torch_grad_of(theirs, name: str):
    """The torch gradient matching deepfit's qualified parameter ``name`` ("<i>.<key>")."""
    index, key = name.split(".")
    mod = theirs[int(index)]
    if key == "W":
        return mod.weight.grad.T  # dW = (dL/d weight)^T
    if key == "b":
        return mod.bias.grad
    if key == "gamma":
        return mod.weight.grad
    if key == "beta":
        return mod.bias.grad
    raise KeyError(name)


def torch_l2_term(theirs, lam: float, m: int):
    """deepfit's L2 penalty, ``lambda/(2m) * sum ||W||^2`` over the Linear weights only."""
    total = sum((mod.weight**2).sum() for mod in theirs if isinstance(mod, torch.nn.Linear))
    return lam / (2 * m) * total


def batch(rng: np.random.Generator, m: int = 16):
    x = rng.normal(0.0, 1.0, size=(m, N_IN))
    y = rng.integers(0, K, size=m)
    return x, y


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mlp_forward_loss_and_every_gradient(seed):
    ours, theirs = make_pair(seed)
    x, y = batch(np.random.default_rng(100 + seed))

    loss = deepfit.SoftmaxCrossEntropy()
    logits = ours.forward(x, training=True)
    value = loss.forward(logits, y)
    dx = ours.backward(loss.backward())

    theirs.train()
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    logits_t = theirs(xt)
    value_t = F.cross_entropy(logits_t, torch.from_numpy(y), reduction="mean")
    value_t.backward()

    assert_matches("MLP logits (training mode)", logits, logits_t)
    assert_matches("softmax cross-entropy value", np.float64(value), value_t)
    grads = ours.grads
    assert set(grads) == {"0.W", "1.gamma", "1.beta", "3.W", "3.b", "5.W", "5.b", "7.W", "7.b"}
    for name, g in grads.items():
        assert_matches(f"gradient of {name}", g, torch_grad_of(theirs, name))
    assert_matches("gradient w.r.t. the input x", dx, xt.grad)
    # The batch-norm running statistics moved by one EWA step in both.
    assert_matches(
        "running_mean after 1 step", ours.buffers["1.running_mean"], theirs[1].running_mean
    )
    assert_matches("running_var after 1 step", ours.buffers["1.running_var"], theirs[1].running_var)


@pytest.mark.parametrize("lam", [0.1, 3.0])
def test_mlp_with_l2_penalty(lam):
    ours, theirs = make_pair(7)
    x, y = batch(np.random.default_rng(8))
    m = x.shape[0]

    loss = deepfit.SoftmaxCrossEntropy()
    value = cost_and_gradients(ours, loss, x, y, make_penalties(l2=lam))

    theirs.train()
    xt = torch.tensor(x, dtype=torch.float64)
    logits_t = theirs(xt)
    value_t = F.cross_entropy(logits_t, torch.from_numpy(y)) + torch_l2_term(theirs, lam, m)
    value_t.backward()

    assert_matches(f"cost with L2({lam})", np.float64(value), value_t)
    for name, g in ours.grads.items():
        # Only weight matrices carry the penalty; biases, gamma and beta do not.
        assert_matches(f"gradient of {name} with L2({lam})", g, torch_grad_of(theirs, name))


@pytest.mark.parametrize("bn_momentum", [0.9, 0.5])
def test_batchnorm_running_statistics_and_inference(bn_momentum):
    ours, theirs = make_pair(3, bn_momentum=bn_momentum)
    assert theirs[1].momentum == pytest.approx(1.0 - bn_momentum)
    rng = np.random.default_rng(4)

    theirs.train()
    for step in range(5):
        # Different batches, of different sizes, shifted so the statistics really move.
        x = rng.normal(step * 0.3, 1.0 + step * 0.2, size=(8 + 3 * step, N_IN))
        out = ours.forward(x, training=True)
        with torch.no_grad():
            out_t = theirs(torch.from_numpy(x))
        assert_matches(f"training output, pass {step}", out, out_t)

    assert_matches(
        "running_mean after 5 passes", ours.buffers["1.running_mean"], theirs[1].running_mean
    )
    assert_matches(
        "running_var after 5 passes", ours.buffers["1.running_var"], theirs[1].running_var
    )

    theirs.eval()
    x = rng.normal(0.0, 2.0, size=(11, N_IN))
    with torch.no_grad():
        out_t = theirs(torch.from_numpy(x))
    assert_matches("inference output with running statistics", ours.forward(x), out_t)
    assert_matches("predict() with running statistics", ours.predict(x, batch_size=4), out_t)


# -- losses on their own ---------------------------------------------------------------------


def _loss_pair(ours_loss, torch_loss_fn, logits: np.ndarray, y, y_t):
    """deepfit loss value and d loss / d logits, against torch's, compared."""
    value = ours_loss.forward(logits, y)
    grad = ours_loss.backward()
    zt = torch.tensor(logits, dtype=torch.float64, requires_grad=True)
    value_t = torch_loss_fn(zt, y_t)
    value_t.backward()
    assert np.isfinite(value) and np.all(np.isfinite(grad))
    return value, grad, value_t, zt.grad


def _extreme_logits(rng: np.random.Generator, m: int, k: int) -> np.ndarray:
    z = rng.normal(0.0, 3.0, size=(m, k))
    z[0, 0], z[1, -1] = 1000.0, -1000.0
    z[2, :] = 1000.0
    z[3, :] = -1000.0
    return z


@pytest.mark.parametrize("k", [1, 3])
def test_sigmoid_bce_vs_bce_with_logits(k):
    rng = np.random.default_rng(11)
    m = 9
    z = _extreme_logits(rng, m, k)
    y = rng.integers(0, 2, size=(m, k)).astype(np.float64)
    y[0, 0], y[1, -1] = 0.0, 1.0  # confidently wrong at +-1000: loss 1000 per entry
    # deepfit takes y of shape (m,) for one output; torch wants it shaped like the logits.
    y_ours = y[:, 0] if k == 1 else y
    bce = torch.nn.BCEWithLogitsLoss(reduction="mean")
    value, grad, value_t, grad_t = _loss_pair(
        deepfit.SigmoidBinaryCrossEntropy(), bce, z, y_ours, torch.from_numpy(y)
    )
    assert_matches(f"BCE-with-logits value (k={k}, logits +-1000)", np.float64(value), value_t)
    assert_matches(f"BCE-with-logits gradient (k={k}, logits +-1000)", grad, grad_t)

    # Soft labels in [0, 1] as well.
    y_soft = rng.uniform(0.0, 1.0, size=(m, k))
    value, grad, value_t, grad_t = _loss_pair(
        deepfit.SigmoidBinaryCrossEntropy(), bce, z, y_soft, torch.from_numpy(y_soft)
    )
    assert_matches(f"BCE-with-logits value, soft labels (k={k})", np.float64(value), value_t)
    assert_matches(f"BCE-with-logits gradient, soft labels (k={k})", grad, grad_t)


@pytest.mark.parametrize("k", [1, 4])
def test_mse_vs_mse_loss(k):
    rng = np.random.default_rng(12)
    m = 10
    z = _extreme_logits(rng, m, k)
    y = rng.normal(0.0, 5.0, size=(m, k))
    y_ours = y[:, 0] if k == 1 else y
    value, grad, value_t, grad_t = _loss_pair(
        deepfit.MeanSquaredError(),
        torch.nn.MSELoss(reduction="mean"),
        z,
        y_ours,
        torch.from_numpy(y),
    )
    assert_matches(f"MSE value (k={k}, outputs +-1000)", np.float64(value), value_t)
    assert_matches(f"MSE gradient (k={k}, outputs +-1000)", grad, grad_t)


def test_softmax_cross_entropy_extreme_and_soft_labels():
    rng = np.random.default_rng(13)
    m, k = 8, 5
    z = _extreme_logits(rng, m, k)
    y = rng.integers(0, k, size=m)
    y[0] = k - 1  # the +1000 logit is in column 0: a loss of ~1000 - z[0, k-1]
    value, grad, value_t, grad_t = _loss_pair(
        deepfit.SoftmaxCrossEntropy(), F.cross_entropy, z, y, torch.from_numpy(y)
    )
    assert_matches("cross-entropy value (logits +-1000)", np.float64(value), value_t)
    assert_matches("cross-entropy gradient (logits +-1000)", grad, grad_t)

    # Probability targets: torch's cross_entropy takes them as float targets of shape (m, K).
    soft = rng.dirichlet(np.ones(k), size=m)
    value, grad, value_t, grad_t = _loss_pair(
        deepfit.SoftmaxCrossEntropy(), F.cross_entropy, z, soft, torch.from_numpy(soft)
    )
    assert_matches("cross-entropy value, soft labels", np.float64(value), value_t)
    assert_matches("cross-entropy gradient, soft labels", grad, grad_t)


# -- activations on their own ----------------------------------------------------------------

ACTIVATION_PAIRS = [
    ("relu", deepfit.ReLU, torch.relu),
    # deepfit's LeakyReLU alpha is torch's negative_slope.
    ("leaky_relu", lambda: deepfit.LeakyReLU(0.1), lambda z: F.leaky_relu(z, 0.1)),
    ("tanh", deepfit.Tanh, torch.tanh),
    ("sigmoid", deepfit.Sigmoid, torch.sigmoid),
]


@pytest.mark.parametrize(
    ("name", "make", "torch_fn"), ACTIVATION_PAIRS, ids=[p[0] for p in ACTIVATION_PAIRS]
)
def test_activation_forward_backward(name, make, torch_fn):
    rng = np.random.default_rng(16)
    z = rng.uniform(-8.0, 8.0, size=(20, 6))
    dy = rng.normal(size=z.shape)
    layer = make()
    a = layer.forward(z, training=True)
    dz = layer.backward(dy)
    zt = torch.tensor(z, requires_grad=True)
    a_t = torch_fn(zt)
    a_t.backward(torch.from_numpy(dy))
    assert_matches(f"{name} output", a, a_t)
    assert_matches(f"{name} backward", dz, zt.grad)


def test_sigmoid_relative_accuracy_in_the_far_negative_tail():
    # computed from exp(-|z|), the tail keeps its relative accuracy (the tanh form gave 0)
    z = np.array([-17.0, -20.0, -40.0, -90.0, -700.0, 30.0])
    np.testing.assert_allclose(
        deepfit.Sigmoid().forward(z), torch.sigmoid(torch.from_numpy(z)).numpy(), rtol=1e-14
    )
    z32 = z.astype(np.float32)[:3]
    np.testing.assert_allclose(
        deepfit.Sigmoid().forward(z32), torch.sigmoid(torch.from_numpy(z32)).numpy(), rtol=1e-6
    )


# -- dropout ---------------------------------------------------------------------------------


@pytest.mark.parametrize("keep_prob", [0.8, 0.3])
def test_dropout_mask_semantics(keep_prob):
    rng = np.random.default_rng(14)
    # Strictly positive inputs so the mask can be recovered as out / x.
    x = rng.uniform(0.5, 2.0, size=(64, 32))
    layer = deepfit.Dropout(keep_prob, rng=15)
    out = layer.forward(x, training=True)
    mask = out / x
    # Inverted dropout: every entry is dropped (0) or kept and scaled by 1/keep_prob.
    kept = mask != 0
    np.testing.assert_allclose(mask[kept], 1.0 / keep_prob, rtol=1e-15)
    assert 0 < kept.mean() < 1

    # The torch-equivalent computation with the same mask, forward and backward.
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    out_t = xt * torch.from_numpy(mask)
    dy = rng.normal(size=x.shape)
    out_t.backward(torch.from_numpy(dy))
    assert_matches(f"dropout output (keep_prob={keep_prob})", out, out_t)
    assert_matches(f"dropout backward (keep_prob={keep_prob})", layer.backward(dy), xt.grad)

    # Inference: the identity, as torch.nn.Dropout(p=1 - keep_prob) in eval mode.
    drop_t = torch.nn.Dropout(p=1.0 - keep_prob).eval()
    with torch.no_grad():
        assert_matches("dropout inference", layer.forward(x), drop_t(torch.from_numpy(x)))

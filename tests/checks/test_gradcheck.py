"""gradcheck: composed networks pass, planted bugs are caught, dropout is refused."""

from __future__ import annotations

import numpy as np
import pytest

import deepfit as df
from deepfit.nn.activations import Tanh


def _data(m, n_in, k, loss, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((m, n_in))
    if isinstance(loss, df.SoftmaxCrossEntropy):
        return X, rng.integers(0, k, m)
    if isinstance(loss, df.SigmoidBinaryCrossEntropy):
        return X, rng.integers(0, 2, m)
    return X, rng.standard_normal((m, k))


@pytest.mark.parametrize("activation", ["relu", "leaky_relu", "tanh", "sigmoid"])
@pytest.mark.parametrize("batchnorm", [False, True])
@pytest.mark.parametrize(
    ("loss", "k"),
    [
        (df.SoftmaxCrossEntropy(), 3),
        (df.SigmoidBinaryCrossEntropy(), 1),
        (df.MeanSquaredError(), 2),
    ],
    ids=["softmax", "sigmoid-bce", "mse"],
)
def test_composed_networks_pass_with_penalties(activation, batchnorm, loss, k):
    model = df.mlp(4, [5, 4], k, activation=activation, batchnorm=batchnorm, rng=3)
    X, y = _data(7, 4, k, loss)
    result = df.gradcheck(model, loss, X, y, l2=0.7, l1=0.2)
    assert result.relative_error < 1e-7, result.report()
    assert max(result.per_tensor.values()) < 1e-6
    assert model.dtype == np.float32  # checked on a float64 copy; the model is untouched


class BuggyTanh(Tanh):
    """The classic slip: the derivative of tanh written as 1 - a instead of 1 - a^2."""

    def backward(self, da):
        return da * (1 - self._a)


def test_a_planted_backward_bug_is_caught_and_named():
    model = df.mlp(4, [6, 5], 3, activation="tanh", rng=0)
    model.layers[3] = BuggyTanh()
    loss = df.SoftmaxCrossEntropy()
    X, y = _data(10, 4, 3, loss)
    result = df.gradcheck(model, loss, X, y)
    assert result.relative_error > 1e-2
    assert result.verdict == "bug"
    assert result.per_tensor["4.W"] < 1e-7  # the layer after the bug is still right
    assert result.worst in ("0.W", "0.b", "2.W", "2.b")
    assert "worst tensor" in result.report() and "bug" in result.report()


def test_forgotten_penalty_gradient_is_caught():
    model = df.mlp(3, [4], 2, rng=0)
    loss = df.SoftmaxCrossEntropy()
    X, y = _data(5, 3, 2, loss)
    good = df.gradcheck(model, loss, X, y, l2=1.0)
    assert good.relative_error < 1e-7

    from deepfit.nn import penalties

    original = penalties.L2.add_grad
    try:
        penalties.L2.add_grad = lambda self, weights, grads, m: None
        bad = df.gradcheck(model, loss, X, y, l2=1.0)
    finally:
        penalties.L2.add_grad = original
    assert bad.relative_error > 1e-3


def test_dropout_is_refused_unless_switched_off():
    model = df.mlp(3, [4], 2, keep_prob=0.8, rng=0)
    loss = df.SoftmaxCrossEntropy()
    X, y = _data(5, 3, 2, loss)
    with pytest.raises(df.GradientCheckError, match=r"active dropout \(layer 2, keep_prob=0.8\)"):
        df.gradcheck(model, loss, X, y)
    result = df.gradcheck(model, loss, X, y, disable_dropout=True)
    assert result.relative_error < 1e-7
    assert model.layers[2].keep_prob == 0.8


def test_sampled_entries_for_big_models():
    model = df.mlp(30, [40], 5, rng=0)
    loss = df.SoftmaxCrossEntropy()
    X, y = _data(8, 30, 5, loss)
    result = df.gradcheck(model, loss, X, y, max_per_tensor=10)
    assert result.n_checked == {"0.W": 10, "0.b": 10, "2.W": 10, "2.b": 5}
    assert result.relative_error < 1e-7


def test_relative_error_and_verdicts():
    from deepfit.checks.gradcheck import relative_error, verdict

    assert relative_error(np.zeros(3), np.zeros(3)) == 0.0
    assert relative_error(np.array([1.0]), np.array([-1.0])) == 1.0
    assert [verdict(e) for e in (1e-9, 1e-6, 1e-4, 0.3)] == ["fine", "look", "suspicious", "bug"]


def test_inputs_at_a_relu_kink_are_reported():
    model = df.mlp(3, [4], 2, rng=0)
    X = np.vstack([np.zeros(3), np.random.default_rng(0).standard_normal((4, 3))])
    y = np.array([0, 1, 0, 1, 1])
    result = df.gradcheck(model, df.SoftmaxCrossEntropy(), X, y)
    assert result.near_kinks == 4  # the zero row gives z = b = 0 for all 4 hidden units
    assert "within 100 eps of the kink" in result.report()
    smooth = df.gradcheck(model, df.SoftmaxCrossEntropy(), X[1:], y[1:])
    assert smooth.near_kinks == 0 and "kink" not in smooth.report()

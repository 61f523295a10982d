"""L2 and L1 penalties: values as in the notes, gradients, weights only."""

from __future__ import annotations

import numpy as np
import pytest

import deepfit as df
from deepfit.checks.gradcheck import relative_error
from deepfit.nn import cost_and_gradients
from tests.gradients import numeric_gradient


def test_l2_value_and_gradient_as_in_the_notes():
    W1, W2 = np.array([[1.0, 2.0]]), np.array([[3.0], [4.0]])
    m, lam = 5, 0.5
    l2 = df.L2(lam)
    assert l2.value([W1, W2], m) == pytest.approx(lam / (2 * m) * (1 + 4 + 9 + 16))
    g1, g2 = np.zeros_like(W1), np.ones_like(W2)
    l2.add_grad([W1, W2], [g1, g2], m)
    assert np.allclose(g1, lam / m * W1) and np.allclose(g2, 1 + lam / m * W2)


@pytest.mark.parametrize("penalty", [df.L2(0.7), df.L1(0.3)], ids=repr)
def test_penalty_gradient_matches_finite_differences(penalty):
    rng = np.random.default_rng(0)
    W = rng.standard_normal((4, 3))
    W[np.abs(W) < 0.05] = 0.5  # keep L1 away from its kink
    grad = np.zeros_like(W)
    penalty.add_grad([W], [grad], 7)
    numeric = numeric_gradient(lambda: penalty.value([W], 7), W)
    assert relative_error(numeric, grad) < 1e-8


def test_l1_value():
    assert df.L1(2.0).value([np.array([[-1.0, 2.0]])], 4) == pytest.approx(2.0 / 4 * 3)


def test_penalties_touch_weights_only_not_biases_or_batchnorm():
    rng = np.random.default_rng(0)
    model = df.mlp(3, [4], 2, batchnorm=True, rng=0, dtype="float64")
    x, y = rng.standard_normal((6, 3)), rng.integers(0, 2, 6)
    loss = df.SoftmaxCrossEntropy()
    cost_and_gradients(model, loss, x, y)
    plain = {k: v.copy() for k, v in model.grads.items()}
    lam = 0.9
    J = cost_and_gradients(model, loss, x, y, [df.L2(lam)])
    for name, g in model.grads.items():
        if name.endswith(".W"):
            assert np.allclose(g, plain[name] + lam / 6 * model.params[name])
        else:
            assert np.array_equal(g, plain[name]), name
    weights = [model.params[n] for n in model.decay_names()]
    assert model.decay_names() == ["0.W", "3.W"]
    assert J == pytest.approx(
        loss.forward(model.forward(x, True), y) + df.L2(lam).value(weights, 6)
    )


def test_negative_lambda_is_refused():
    with pytest.raises(df.DeepfitError, match="lambda must be >= 0"):
        df.L2(-1)

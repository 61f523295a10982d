"""Fused losses: values, gradients, numerical stability, label validation."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import deepfit as df
from deepfit.checks.gradcheck import relative_error
from tests.gradients import numeric_gradient


def _targets(loss, m, k, rng):
    if isinstance(loss, df.SoftmaxCrossEntropy):
        return rng.integers(0, k, m)
    if isinstance(loss, df.SigmoidBinaryCrossEntropy):
        return rng.integers(0, 2, (m, k)).astype(float)
    return rng.standard_normal((m, k))


@pytest.mark.parametrize(
    "make", [df.SoftmaxCrossEntropy, df.SigmoidBinaryCrossEntropy, df.MeanSquaredError]
)
@settings(max_examples=20)
@given(m=st.integers(1, 6), k=st.integers(1, 5), seed=st.integers(0, 2**32 - 1))
def test_gradient_matches_finite_differences(make, m, k, seed):
    rng = np.random.default_rng(seed)
    loss = make()
    logits = rng.standard_normal((m, k)) * 3
    y = _targets(loss, m, k, rng)
    loss.forward(logits, y)
    analytic = loss.backward().copy()
    numeric = numeric_gradient(lambda: loss.forward(logits, y), logits)
    assert relative_error(numeric, analytic) < 1e-7


def test_softmax_cross_entropy_value_by_hand():
    logits = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    y = np.array([2, 0])
    expected = np.mean([np.log(np.exp([1, 2, 3]).sum()) - 3, np.log(3)])
    loss = df.SoftmaxCrossEntropy()
    assert loss.forward(logits, y) == pytest.approx(expected, rel=1e-12)
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    onehot = np.eye(3)[y]
    assert np.allclose(loss.backward(), (p - onehot) / 2)


def test_soft_labels_equal_hard_labels_when_one_hot():
    rng = np.random.default_rng(0)
    logits, y = rng.standard_normal((5, 4)), rng.integers(0, 4, 5)
    hard = df.SoftmaxCrossEntropy()
    soft = df.SoftmaxCrossEntropy()
    assert hard.forward(logits, y) == pytest.approx(soft.forward(logits, np.eye(4)[y]))
    assert np.allclose(hard.backward(), soft.backward())


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_stable_for_logits_of_plus_minus_1000(dtype):
    logits = np.array([[1000.0, -1000.0], [-1000.0, 1000.0]], dtype=dtype)
    with np.errstate(over="raise", invalid="raise", divide="raise"):  # underflow is fine
        ce = df.SoftmaxCrossEntropy()
        assert ce.forward(logits, np.array([0, 0])) == pytest.approx(1000.0)
        assert np.all(np.isfinite(ce.backward()))
        bce = df.SigmoidBinaryCrossEntropy()
        value = bce.forward(logits[:, :1], np.array([1.0, 1.0]))
        assert value == pytest.approx(500.0)
        assert np.allclose(bce.backward().ravel(), [0.0, -0.5])


def test_binary_cross_entropy_value_by_hand():
    z, y = np.array([[0.5], [-1.0]]), np.array([1, 0])
    p = 1 / (1 + np.exp(-z.ravel()))
    expected = -np.mean([np.log(p[0]), np.log(1 - p[1])])
    assert df.SigmoidBinaryCrossEntropy().forward(z, y) == pytest.approx(expected, rel=1e-12)


def test_mse_value_is_mean_over_entries():
    loss = df.MeanSquaredError()
    assert loss.forward(np.array([[1.0, 2.0], [3.0, 4.0]]), np.zeros((2, 2))) == 7.5
    assert loss.forward(np.array([[1.0], [3.0]]), np.array([0.0, 0.0])) == 5.0


def test_outputs():
    z = np.array([[0.0, np.log(3.0)]])
    assert np.allclose(df.SoftmaxCrossEntropy().output(z), [[0.25, 0.75]])
    assert np.allclose(df.SigmoidBinaryCrossEntropy().output(np.zeros((1, 1))), 0.5)
    assert df.MeanSquaredError().output(z) is z


def test_label_errors_name_the_problem():
    ce = df.SoftmaxCrossEntropy()
    with pytest.raises(df.DeepfitError, match="label 3 is outside the 3 classes"):
        ce.forward(np.zeros((2, 3)), np.array([0, 3]))
    with pytest.raises(df.ShapeError, match="2 rows of logits but 3 labels"):
        ce.forward(np.zeros((2, 3)), np.array([0, 1, 2]))
    with pytest.raises(df.DeepfitError, match="class indices"):
        ce.forward(np.zeros((2, 3)), np.array([0.5, 1.0]))
    with pytest.raises(df.DeepfitError, match=r"in \[0, 1\]"):
        df.SigmoidBinaryCrossEntropy().forward(np.zeros((2, 1)), np.array([0, 2]))
    with pytest.raises(RuntimeError, match="before forward"):
        df.MeanSquaredError().backward()

"""Bias/variance diagnosis: the notes' four cases and the learning-curve verdict."""

from __future__ import annotations

import pytest

import deepfit as df
from deepfit.checks.biasvariance import diagnose, diagnose_metrics, more_data_verdict


@pytest.mark.parametrize(
    ("train", "dev", "verdict"),
    [
        (0.01, 0.11, "high variance"),
        (0.15, 0.16, "high bias"),
        (0.15, 0.30, "high bias and high variance"),
        (0.005, 0.01, "fine"),
    ],
)
def test_the_notes_four_cases(train, dev, verdict):
    d = diagnose(train, dev)
    assert d.verdict == verdict
    assert d.avoidable_bias == pytest.approx(train)
    assert d.variance == pytest.approx(dev - train)
    assert d.remedies


def test_bayes_error_changes_the_verdict():
    # 15% train error is fine when humans get 14.5% wrong (blurry images)
    assert diagnose(0.15, 0.16, bayes_error=0.145).verdict == "fine"
    d = diagnose(0.15, 0.16, bayes_error=0.145)
    assert d.avoidable_bias == pytest.approx(0.005)
    assert "more training data" in " ".join(diagnose(0.0, 0.1).remedies)
    assert "bigger network" in " ".join(diagnose(0.2, 0.21).remedies)
    assert "verdict: high bias" in diagnose(0.2, 0.21).report()


def test_regression_uses_unexplained_variance():
    d = diagnose_metrics({"loss": 1.0, "r2": 0.95}, {"loss": 2.0, "r2": 0.7})
    assert d.verdict == "high bias and high variance"  # 5% and 25% of the variance
    assert d.error_kind.startswith("unexplained variance")


def test_invalid():
    with pytest.raises(df.DeepfitError, match="train_error must be a fraction"):
        diagnose(1.5, 0.1)
    with pytest.raises(df.DeepfitError, match="needs accuracy"):
        diagnose_metrics({"loss": 1.0}, {"loss": 1.0})


def test_more_data_verdicts():
    sizes = [100, 200, 400, 800]
    assert more_data_verdict(sizes, [0, 0, 0, 0.01], [0.3, 0.2, 0.15, 0.1]).startswith(
        "more data would likely help"
    )
    assert more_data_verdict(sizes, [0.2, 0.2, 0.2, 0.2], [0.21, 0.21, 0.21, 0.21]).startswith(
        "more data would not help much"
    )
    assert more_data_verdict(sizes, [0, 0, 0, 0], [0.1, 0.1, 0.1, 0.1]).startswith(
        "more data would help little"
    )

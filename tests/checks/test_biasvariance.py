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


def test_without_an_estimate_a_near_perfect_model_is_not_called_high_bias():
    """The issue's case: 97% accuracy on breast cancer was "high bias" because the Bayes error
    defaulted to 0. Without an estimate the verdict says what it assumed and how to give one."""
    d = diagnose(0.025, 0.03)
    assert d.verdict == "fine" and d.bayes_assumed
    assert "no Bayes error estimate was given" in d.note
    assert "below 0.5%" in d.note  # avoidable only if the best achievable error is below 0.5%
    assert "diagnose.bayes_error" in d.note and "--bayes-error" in d.note
    report = d.report()
    assert "no Bayes error estimate (assumed 0%)" in report
    assert "avoidable bias at most +2.50 points" in report
    # variance is judged as before: it does not depend on the Bayes error
    assert diagnose(0.025, 0.10).verdict == "high variance"


def test_without_an_estimate_large_bias_is_reported_with_its_assumption():
    d = diagnose(0.15, 0.16)
    assert d.verdict == "high bias" and d.bayes_assumed
    assert d.note.startswith("high bias assumes a Bayes error of 0%")
    assert "13% or more" in d.note and "--bayes-error" in d.note
    # an estimate removes the assumption and the note
    given = diagnose(0.025, 0.03, bayes_error=0.001)
    assert given.verdict == "high bias" and not given.bayes_assumed and given.note == ""
    assert "Bayes estimate 0.10%" in given.report()
    assert diagnose(0.025, 0.03, bayes_error=0.02).verdict == "fine"
    # below the tolerance the bias verdict holds for any estimate, and the note says so
    assert diagnose(0.01, 0.015).note.startswith("no Bayes error estimate was given (assumed")
    assert "holds whatever the best achievable error" in diagnose(0.01, 0.015).note


@pytest.mark.slow
def test_breast_cancer_run_and_deepfit_diagnose(tmp_path):
    """End to end: train on breast cancer (about 97% dev accuracy), then diagnose the run with
    and without --bayes-error."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    out = tmp_path / "run"
    cli = [sys.executable, "-m", "deepfit.cli"]
    train = subprocess.run(
        [*cli, "train", str(root / "examples" / "breast_cancer.toml"), "--out", str(out),
         "--set", "train.epochs=60", "--json"],
        capture_output=True, text=True, cwd=tmp_path,
    )  # fmt: skip
    assert train.returncode == 0, train.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["dev"]["accuracy"] > 0.93
    diagnosis = summary["diagnosis"]
    assert "bias" not in diagnosis["verdict"] or 1 - summary["train"]["accuracy"] > 0.05
    assert diagnosis["bayes_assumed"] is True
    text = subprocess.run([*cli, "diagnose", str(out)], capture_output=True, text=True).stdout
    assert "no Bayes error estimate (assumed 0%)" in text and "--bayes-error" in text
    given = subprocess.run(
        [*cli, "diagnose", str(out), "--bayes-error", "0.03", "--json"],
        capture_output=True, text=True,
    )  # fmt: skip
    d = json.loads(given.stdout)["diagnosis"]
    assert d["bayes_assumed"] is False and d["note"] == "" and d["bayes_error"] == 0.03

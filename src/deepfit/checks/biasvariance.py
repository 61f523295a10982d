"""Bias/variance diagnosis against a Bayes (human-level) error estimate.

The notes' reading of train and dev error::

    avoidable bias = train error - Bayes error
    variance       = dev error   - train error

Large avoidable bias: the network does not even fit the training set; large variance: it
fits the training set but does not generalize. Each calls for different remedies.

Without an estimate of the Bayes error (``bayes_error = 0``, the config's default), the
avoidable bias is only known to lie between 0 and the train error. The verdict then says so:
a train error of at most ``NEAR_PERFECT`` (5%) is not called high bias (it may well be the
task's own noise); above it, high bias is reported with the assumption spelled out, and
either way the diagnosis tells how to give an estimate (``diagnose.bayes_error`` in the
config, ``deepfit diagnose --bayes-error``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from deepfit.errors import DeepfitError

REMEDIES = {
    "high bias": [
        "use a bigger network (more hidden units or more layers)",
        "train longer, or with a better optimizer (Adam) and a tuned learning rate",
        "reduce regularization (smaller l2, keep_prob closer to 1)",
        "try another architecture or better input features",
    ],
    "high variance": [
        "get more training data (or augment the data you have)",
        "add regularization: L2 (model.l2), dropout (model.keep_prob < 1)",
        "use early stopping on the dev loss",
        "try a smaller network or another architecture",
    ],
    "fine": [
        "bias and variance are both low: check the test error once, then ship",
    ],
}

NEAR_PERFECT = 0.05
"""Without a Bayes error estimate, a train error up to this (95% accuracy, R^2 0.95) is not
called high bias."""

HOW_TO_ESTIMATE = (
    "give an estimate of the best achievable error (human-level error is a good proxy): "
    "diagnose.bayes_error in the config, or deepfit diagnose RUN --bayes-error 0.02"
)


@dataclass
class Diagnosis:
    """The numbers and the verdict of a bias/variance diagnosis (errors are fractions)."""

    train_error: float
    dev_error: float
    bayes_error: float
    avoidable_bias: float
    variance: float
    verdict: str
    remedies: list[str] = field(default_factory=list)
    tolerance: float = 0.02
    error_kind: str = "classification error"
    bayes_assumed: bool = False
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def report(self) -> str:
        pct = 100.0
        bayes = (
            "no Bayes error estimate (assumed 0%)"
            if self.bayes_assumed
            else f"Bayes estimate {self.bayes_error * pct:.2f}%"
        )
        lines = [
            f"{self.error_kind}: train {self.train_error * pct:.2f}%, dev "
            f"{self.dev_error * pct:.2f}%, {bayes}",
            f"avoidable bias {'at most ' if self.bayes_assumed else ''}"
            f"{self.avoidable_bias * pct:+.2f} points, variance "
            f"{self.variance * pct:+.2f} points (tolerance {self.tolerance * pct:.1f})",
            f"verdict: {self.verdict}",
        ]
        if self.note:
            lines.append(f"note: {self.note}")
        lines += [f"  - {r}" for r in self.remedies]
        return "\n".join(lines)

    __str__ = report


def diagnose(
    train_error: float,
    dev_error: float,
    bayes_error: float = 0.0,
    tolerance: float = 0.02,
    *,
    error_kind: str = "classification error",
) -> Diagnosis:
    r"""Diagnose bias and variance from train and dev errors.

    .. math::

        \text{avoidable bias} = e_\text{train} - e_\text{Bayes}, \qquad
        \text{variance} = e_\text{dev} - e_\text{train}

    Avoidable bias counts as high when it exceeds ``tolerance``, variance likewise (both as
    fractions, e.g. 0.02 = 2 points). The notes' examples: train 1% / dev 11% is high
    variance; 15% / 16% high bias; 15% / 30% both; 0.5% / 1% fine.

    ``bayes_error = 0`` means no estimate was given: the diagnosis is marked
    ``bayes_assumed``, its ``note`` says what was assumed and how to give an estimate, and a
    train error of at most :data:`NEAR_PERFECT` is not called high bias (the avoidable bias
    is somewhere between 0 and the train error, and a near-perfect model is no alarm).
    """
    for name, value in (
        ("train_error", train_error),
        ("dev_error", dev_error),
        ("bayes_error", bayes_error),
    ):
        if not 0 <= value <= 1:
            raise DeepfitError(f"{name} must be a fraction in [0, 1], got {value}")
    if not 0 <= tolerance < 1:
        raise DeepfitError(f"tolerance must be in [0, 1), got {tolerance}")
    bias = train_error - bayes_error
    variance = dev_error - train_error
    high_bias, high_variance = bias > tolerance, variance > tolerance
    assumed = bayes_error == 0
    note = ""
    if assumed and not high_bias:
        note = (
            "no Bayes error estimate was given (assumed 0%); the bias verdict holds whatever "
            f"the best achievable error; to judge against one, {HOW_TO_ESTIMATE}"
        )
    elif assumed:
        unless = f"{(train_error - tolerance) * 100:.2g}%"
        if train_error <= NEAR_PERFECT:
            high_bias = False
            note = (
                f"no Bayes error estimate was given; the train error of "
                f"{train_error * 100:.2f}% is not called high bias since it may be the task's "
                f"own noise (it is avoidable bias only if the best achievable error is below "
                f"{unless}); {HOW_TO_ESTIMATE}"
            )
        else:
            note = (
                f"high bias assumes a Bayes error of 0% (no estimate was given); it is not "
                f"if the best achievable error is {unless} or more; {HOW_TO_ESTIMATE}"
            )
    if high_bias and high_variance:
        verdict = "high bias and high variance"
        remedies = REMEDIES["high bias"][:2] + REMEDIES["high variance"][:2]
    elif high_bias:
        verdict, remedies = "high bias", list(REMEDIES["high bias"])
    elif high_variance:
        verdict, remedies = "high variance", list(REMEDIES["high variance"])
    else:
        verdict, remedies = "fine", list(REMEDIES["fine"])
    return Diagnosis(
        train_error=float(train_error),
        dev_error=float(dev_error),
        bayes_error=float(bayes_error),
        avoidable_bias=float(bias),
        variance=float(variance),
        verdict=verdict,
        remedies=remedies,
        tolerance=float(tolerance),
        error_kind=error_kind,
        bayes_assumed=assumed,
        note=note,
    )


def diagnose_metrics(
    train: dict[str, float],
    dev: dict[str, float],
    bayes_error: float = 0.0,
    tolerance: float = 0.02,
) -> Diagnosis:
    """Diagnose from evaluation dicts: ``1 - accuracy`` for classification, and for
    regression the fraction of unexplained variance ``1 - R^2`` (clipped to [0, 1]) when
    ``r2`` is present."""
    if "accuracy" in train and "accuracy" in dev:
        return diagnose(1 - train["accuracy"], 1 - dev["accuracy"], bayes_error, tolerance)
    if "r2" in train and "r2" in dev:

        def unexplained(r2: float) -> float:
            return min(max(1.0 - r2, 0.0), 1.0)

        return diagnose(
            unexplained(train["r2"]),
            unexplained(dev["r2"]),
            bayes_error,
            tolerance,
            error_kind="unexplained variance (1 - R^2)",
        )
    raise DeepfitError("diagnosis needs accuracy (classification) or r2 (regression) metrics")


@dataclass
class LearningCurve:
    """Train and dev error against the number of training examples."""

    sizes: list[int]
    train_errors: list[float]
    dev_errors: list[float]
    verdict: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def more_data_verdict(
    sizes: list[int], train_errors: list[float], dev_errors: list[float], tolerance: float = 0.02
) -> str:
    """Would more data help? Yes when the dev error was still falling over the last doubling
    of the data and a train/dev gap remains; no when the curves have met (high bias: more
    data will not help) or the dev error has flattened."""
    if len(sizes) < 2:
        return "need at least two training-set sizes to judge"
    gap = dev_errors[-1] - train_errors[-1]
    half = next((i for i in range(len(sizes) - 1, -1, -1) if sizes[i] <= sizes[-1] / 2), 0)
    drop = dev_errors[half] - dev_errors[-1]
    if gap > tolerance and drop > tolerance / 2:
        return (
            f"more data would likely help: the dev error fell {100 * drop:.1f} points over "
            f"the last doubling and a {100 * gap:.1f}-point gap to the train error remains"
        )
    if gap <= tolerance:
        return (
            "more data would not help much: train and dev errors have met; reduce bias "
            "(bigger network, longer training) instead"
        )
    return (
        f"more data would help little: the dev error moved {100 * drop:.1f} points over the "
        f"last doubling; regularize to close the {100 * gap:.1f}-point gap"
    )

"""Bias and variance: a bigger network lowers bias, more data lowers variance (notes 2.1.2-3).

The notes' recipe: if the training error is high (high bias), try a bigger network; once the
training set is fitted, if the dev error is much higher (high variance), get more data (or
regularize). On the bundled digits, networks of one hidden layer of 2 to 128 units are trained
on growing parts of the training split with :func:`deepfit.experiment.learning_curve` (the
same dev set throughout, about the same number of steps at every size), and every point gets
the bias/variance verdict of :func:`deepfit.checks.biasvariance.diagnose`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from deepfit.checks.biasvariance import diagnose
from deepfit.experiment import learning_curve
from deepfit.lab._common import LabResult, config, pyplot, row, save_figure

NAME = "bias_variance"
TITLE = "Bias and variance: a bigger network lowers bias, more data lowers variance"
BAYES = 0.01  # our estimate of the best achievable error on 8x8 digits
TOLERANCE = 0.02


def measure(widths: list[int], fractions: tuple[float, ...], epochs: int) -> dict[str, Any]:
    """Train/dev error and verdict for every width and training-set size."""
    curves: dict[str, Any] = {}
    for width in widths:
        cfg = config(
            [width],
            data={"source": "digits"},
            diagnose={"bayes_error": BAYES},
            optimizer="adam",
            lr=0.01,
            batch_size=64,
            epochs=epochs,
            seed=0,
        )
        curve = learning_curve(cfg, fractions)
        curves[str(width)] = {
            "sizes": list(curve.sizes),
            "train_error": list(curve.train_errors),
            "dev_error": list(curve.dev_errors),
            "verdict": [
                diagnose(tr, dv, BAYES, TOLERANCE).verdict
                for tr, dv in zip(curve.train_errors, curve.dev_errors, strict=True)
            ],
        }
    return curves


def table(curves: dict[str, Any], widths: list[int]) -> tuple[list, dict[str, bool]]:
    small, big = str(widths[0]), str(widths[-1])
    rows = []
    for w in widths:
        c = curves[str(w)]
        rows.append(
            row(
                f"{w} hidden units, all {c['sizes'][-1]} training digits: train / dev error",
                f"{c['train_error'][-1]:.3f} / {c['dev_error'][-1]:.3f} ({c['verdict'][-1]})",
                None,
                f"Bayes error estimate {BAYES}, tolerance {TOLERANCE}",
            )
        )
    for w in (small, big):
        c = curves[w]
        rows.append(
            row(
                f"{w} hidden units: variance (dev - train error) at {c['sizes'][0]} -> "
                f"{c['sizes'][-1]} digits",
                " -> ".join(
                    f"{d - t:.3f}" for t, d in zip(c["train_error"], c["dev_error"], strict=True)
                ),
                "falls with more data",
                "verdicts: " + ", ".join(c["verdict"]),
            )
        )
    full_train = [curves[str(w)]["train_error"][-1] for w in widths]
    gaps = [
        d - t for t, d in zip(curves[big]["train_error"], curves[big]["dev_error"], strict=True)
    ]
    checks = {
        "a bigger network lowers the training error (bias)": full_train[-1] < full_train[0] - 0.05,
        "the smallest network is diagnosed high bias": "bias" in curves[small]["verdict"][-1],
        "more data lowers the widest network's variance": gaps[-1] < gaps[0],
        "the widest network on the fewest digits is diagnosed high variance": "variance"
        in curves[big]["verdict"][0],
    }
    return rows, checks


def figure(curves: dict[str, Any], widths: list[int], out: Path) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    ax = axes[0]
    train = [curves[str(w)]["train_error"][-1] for w in widths]
    dev = [curves[str(w)]["dev_error"][-1] for w in widths]
    ax.plot(widths, train, "o-", color="#1f77b4", label="train error")
    ax.plot(widths, dev, "o-", color="#d62728", label="dev error")
    ax.axhline(BAYES, color="k", ls=":", lw=0.8, label=f"Bayes estimate {BAYES}")
    ax.set_xscale("log", base=2)
    ax.set_xticks(widths, [str(w) for w in widths])
    ax.set_xlabel("hidden units (all training digits)")
    ax.set_ylabel("error")
    ax.set_title("bigger network: bias falls", fontsize=9)
    ax.legend(fontsize=7)
    for ax, w in zip(axes[1:], (widths[0], widths[-1]), strict=True):
        c = curves[str(w)]
        ax.plot(c["sizes"], c["train_error"], "o-", color="#1f77b4", label="train error")
        ax.plot(c["sizes"], c["dev_error"], "o-", color="#d62728", label="dev error")
        for n, e, v in zip(c["sizes"], c["dev_error"], c["verdict"], strict=True):
            ax.annotate(v, (n, e), fontsize=6, textcoords="offset points", xytext=(0, 5))
        ax.set_xscale("log")
        ax.set_xlabel("training digits")
        ax.set_ylabel("error")
        ax.set_title(f"{w} hidden units: learning curve", fontsize=9)
        ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, out / f"{NAME}.png", dpi=70)


def run(out: Path, quick: bool = False) -> LabResult:
    widths = [2, 64] if quick else [2, 8, 32, 128]
    fractions = (0.1, 1.0) if quick else (0.1, 0.25, 0.5, 1.0)
    epochs = 8 if quick else 30
    curves = measure(widths, fractions, epochs)
    rows, checks = table(curves, widths)
    figure(curves, widths, out)
    return LabResult(
        name=NAME,
        title=TITLE,
        claim=(
            "High bias (the training set is not fitted) calls for a bigger network; high "
            "variance (dev error well above training error) for more data: the training "
            "error falls with the width, the dev - train gap with the number of examples."
        ),
        source="Course 2, week 1, 'Basic recipe for machine learning' (notes 2.1.2-2.1.3).",
        setup=(
            f"digits (auto split, standardized), one hidden ReLU layer of {widths} units, "
            f"Adam lr 0.01, batch 64, {epochs} epochs on the full training split and "
            f"epochs / fraction on fractions {list(fractions)} of it "
            "(deepfit.experiment.learning_curve); verdicts by checks.biasvariance.diagnose, "
            f"Bayes error {BAYES}, tolerance {TOLERANCE}."
        ),
        rows=rows,
        checks=checks,
        data={"curves": curves, "widths": widths},
        figure=f"{NAME}.png",
    )

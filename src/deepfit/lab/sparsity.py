"""L1 makes weights sparse, L2 shrinks them (notes 2.1.4).

The penalties' gradients say why: L2 adds ``(lambda/m) w`` (weight decay, ``w <- (1 - alpha
lambda/m) w - alpha dJ/dw``), a pull proportional to the weight that shrinks every weight and
vanishes as it nears 0; L1 adds ``(lambda/m) sign(w)``, a constant pull that drives every
weight whose data gradient is weaker than ``lambda/m`` to 0 (in plain gradient descent it
then hovers within ``alpha lambda/m`` of 0). On the digits, the first layer's weights after
training with each penalty over a sweep of lambda: the share of (near) zero weights and the
weights' size.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from deepfit.lab._common import LabResult, config, digits, pyplot, row, run_config, save_figure

NAME = "sparsity"
TITLE = "L1 makes weights sparse, L2 shrinks them"
ZERO = 0.01  # |w| below ZERO * max|w| counts as zero (SGD leaves L1 zeros hovering near 0)
COLORS = {"l1": "#d62728", "l2": "#1f77b4"}


def train(penalty: str, lam: float, data, epochs: int) -> np.ndarray:
    """The first layer's weights from the inputs that vary in the training split (a constant
    pixel gets no data gradient, so any penalty decays its weights to 0: no evidence either
    way), after training with ``penalty = lam``."""
    cfg = config(
        [32],
        model={penalty: lam},
        optimizer="sgd",
        lr=0.1,
        batch_size=64,
        epochs=epochs,
        seed=0,
        dtype="float64",
    )
    summary = run_config(cfg, data)
    live = data.train[0].std(axis=0) > 0
    return np.asarray(summary["model"].params["0.W"])[live].ravel()


def measure(lambdas: list[float], epochs: int) -> dict[str, Any]:
    data = digits(0)
    weights = {"none": train("l2", 0.0, data, epochs)}

    def zero_share(w: np.ndarray) -> float:
        return float(np.mean(np.abs(w) < ZERO * np.abs(w).max()))

    stats: dict[str, Any] = {"lambdas": lambdas, "l1": {}, "l2": {}}
    for penalty in ("l1", "l2"):
        for lam in lambdas:
            w = train(penalty, lam, data, epochs)
            weights[f"{penalty} {lam:g}"] = w
            stats[penalty][f"{lam:g}"] = {
                "zero_share": zero_share(w),
                "mean_abs": float(np.mean(np.abs(w))),
                "l2_norm": float(np.linalg.norm(w)),
            }
    w0 = weights["none"]
    stats["none"] = {
        "zero_share": zero_share(w0),
        "mean_abs": float(np.mean(np.abs(w0))),
        "l2_norm": float(np.linalg.norm(w0)),
    }
    return {"stats": stats, "weights": weights}


def table(stats: dict[str, Any]) -> tuple[list, dict[str, bool]]:
    lambdas = stats["lambdas"]
    none = stats["none"]
    rows = [
        row(
            "no penalty: share of |w| < 1% of max |w|; mean |w|",
            f"{none['zero_share']:.3f}; {none['mean_abs']:.3f}",
            None,
            "first layer of a 64-32-10 ReLU network, rows of the pixels that vary; SGD "
            "leaves L1's zeros hovering within ~alpha lambda/m of 0, so 'zero' is relative "
            "to the largest weight",
        )
    ]
    for penalty in ("l1", "l2"):
        s = stats[penalty]
        rows.append(
            row(
                f"{penalty.upper()}: share of |w| < 1% of max |w|, lambda "
                + ", ".join(map(str, lambdas)),
                " / ".join(f"{s[f'{lam:g}']['zero_share']:.3f}" for lam in lambdas),
                "many exact zeros" if penalty == "l1" else "few zeros",
                "",
            )
        )
        rows.append(
            row(
                f"{penalty.upper()}: mean |w| for the same lambdas",
                " / ".join(f"{s[f'{lam:g}']['mean_abs']:.4f}" for lam in lambdas),
                "shrinks with lambda",
                "",
            )
        )
    l1 = [stats["l1"][f"{lam:g}"] for lam in lambdas]
    l2 = [stats["l2"][f"{lam:g}"] for lam in lambdas]
    # compare at equal size: the L1 run whose mean |w| is closest to the strongest L2 run's
    target = l2[-1]["mean_abs"]
    match = min(l1, key=lambda s: abs(np.log(s["mean_abs"] / target)))
    rows.append(
        row(
            "at about equal mean |w|: share of zeros, L1 / L2",
            f"{match['zero_share']:.3f} / {l2[-1]['zero_share']:.3f} (mean |w| "
            f"{match['mean_abs']:.4f} / {target:.4f})",
            None,
            "same size of weights, different shape: L1 concentrates it on few weights",
        )
    )
    norms = [s["l2_norm"] for s in l2]
    checks = {
        "L2 shrinks the weights as lambda grows": all(
            a > b for a, b in zip([none["l2_norm"], *norms], norms, strict=False)
        ),
        "L2 leaves few zeros (< 10% at every lambda)": max(s["zero_share"] for s in l2) < 0.1,
        "L1 sets most weights to zero at the largest lambda (> 50%)": l1[-1]["zero_share"] > 0.5,
        "at equal mean |w| L1 has more zeros than L2": match["zero_share"]
        > l2[-1]["zero_share"] + 0.2,
    }
    return rows, checks


def figure(result: dict[str, Any], out: Path) -> None:
    stats, weights = result["stats"], result["weights"]
    lambdas = stats["lambdas"]
    strongest = f"{lambdas[-1]:g}"
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    ax = axes[0]
    bins = np.linspace(-0.6, 0.6, 61)
    ax.hist(weights["none"], bins=bins, color="#7f7f7f", alpha=0.5, label="no penalty")
    for penalty in ("l2", "l1"):
        ax.hist(
            weights[f"{penalty} {strongest}"],
            bins=bins,
            color=COLORS[penalty],
            alpha=0.5,
            label=f"{penalty.upper()}, lambda {strongest}",
        )
    ax.set_yscale("log")
    ax.set_xlabel("first-layer weight")
    ax.set_ylabel("count")
    ax.set_title("weight histograms", fontsize=9)
    ax.legend(fontsize=7)
    for ax, key, label in (
        (axes[1], "zero_share", f"share of |w| < {ZERO:g} max |w|"),
        (axes[2], "mean_abs", "mean |w|"),
    ):
        for penalty in ("l1", "l2"):
            ax.plot(
                lambdas,
                [stats[penalty][f"{lam:g}"][key] for lam in lambdas],
                "o-",
                color=COLORS[penalty],
                label=penalty.upper(),
            )
        ax.axhline(stats["none"][key], color="#7f7f7f", ls=":", label="no penalty")
        ax.set_xscale("log")
        ax.set_xlabel("lambda")
        ax.set_ylabel(label)
        ax.set_title(f"{label} against lambda", fontsize=9)
        ax.legend(fontsize=7)
    axes[2].set_yscale("log")
    fig.tight_layout()
    save_figure(fig, out / f"{NAME}.png", dpi=70)


def run(out: Path, quick: bool = False) -> LabResult:
    lambdas = [0.3, 3.0] if quick else [0.1, 0.3, 1.0, 3.0]
    epochs = 15 if quick else 60
    result = measure(lambdas, epochs)
    rows, checks = table(result["stats"])
    figure(result, out)
    return LabResult(
        name=NAME,
        title=TITLE,
        claim=(
            "With L1 regularization many weights end at 0 (a sparse network); L2 (weight "
            "decay) shrinks all weights towards 0 but leaves few of them there."
        ),
        source="Course 2, week 1, 'Regularization' (notes 2.1.4).",
        setup=(
            "digits (auto split, standardized), 64-32-10 ReLU, SGD lr 0.1, batch 64, "
            f"{epochs} epochs, float64, l1 or l2 = lambda in {lambdas} (lambda/m |w| and "
            "lambda/(2m) w^2), through deepfit.experiment.run; first-layer weights measured."
        ),
        rows=rows,
        checks=checks,
        data={"stats": result["stats"]},
        figure=f"{NAME}.png",
    )

"""Batch norm widens the range of learning rates that work (notes 2.3.4).

The notes: batch normalization makes the hyperparameter search easier, the network more robust
to the choice of hyperparameters, and works over a much larger range of them. Batch norm keeps
every layer's inputs at zero mean and unit variance whatever the scale of the weights before
it, so a large learning rate cannot blow up the activations layer after layer, and a small
one is not slowed by shrinking signals. A log-spaced sweep of SGD learning rates on a
4-hidden-layer ReLU network, with and without batch norm: which runs succeed.

Ioffe and Szegedy 2015 (section 4.2.2): with batch norm, Inception trained at 5 and 30 times
its learning rate (BN-x5, BN-x30), reaching the baseline's accuracy in 14 times fewer steps.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from deepfit.lab._common import LabResult, config, digits, pyplot, row, run_or_none, save_figure

NAME = "bn_learning_rates"
TITLE = "Batch norm widens the range of learning rates that work"
SUCCESS = 0.9  # dev accuracy for a run to count as working
COLORS = {False: "#1f77b4", True: "#d62728"}


def measure(lrs: list[float], seeds: list[int], epochs: int) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for bn in (False, True):
        accuracy = np.zeros((len(seeds), len(lrs)))
        for i, seed in enumerate(seeds):
            data = digits(seed)
            for j, lr in enumerate(lrs):
                cfg = config(
                    [64, 64, 64, 64],
                    model={"batchnorm": bn},
                    optimizer="sgd",
                    lr=lr,
                    batch_size=64,
                    epochs=epochs,
                    seed=seed,
                )
                summary = run_or_none(cfg, data)
                diverged = summary is None or summary["stop_reason"] != "completed all epochs"
                accuracy[i, j] = 0.0 if diverged else summary["dev"]["accuracy"]
        works = accuracy >= SUCCESS
        ok = [lr for lr, w in zip(lrs, works.all(axis=0), strict=True) if w]
        results["with" if bn else "without"] = {
            "dev_accuracy": accuracy.tolist(),
            "share_working": float(works.mean()),
            "working_range": [min(ok), max(ok)] if ok else None,
        }
    return results


def table(results: dict[str, Any], lrs: list[float]) -> tuple[list, dict[str, bool]]:
    rows = []
    decades = {}
    for name in ("without", "with"):
        r = results[name]
        span = r["working_range"]
        decades[name] = float(np.log10(span[1] / span[0])) if span else -1.0
        rows.append(
            row(
                f"{name} batch norm: share of runs with dev accuracy >= {SUCCESS}; "
                "learning rates that work for every seed",
                f"{r['share_working']:.2f}; "
                + (f"{span[0]:g} to {span[1]:g} ({decades[name]:.1f} decades)" if span else "none"),
                "wider with batch norm",
                f"{len(lrs)} learning rates from {lrs[0]:g} to {lrs[-1]:g}",
            )
        )
    w_range, wo_range = results["with"]["working_range"], results["without"]["working_range"]
    rows.append(
        row(
            "largest working learning rate, with / without batch norm",
            f"{w_range[1] / wo_range[1]:.3g}x" if w_range and wo_range else None,
            "5x and 30x (BN-x5, BN-x30 on Inception)",
            "Ioffe and Szegedy 2015, section 4.2.2; ours: digits, 4 x 64 ReLU",
        )
    )
    w, wo = results["with"], results["without"]
    checks = {
        "a larger share of the sweep works with batch norm": w["share_working"]
        > wo["share_working"],
        "batch norm's working range spans more decades": decades["with"] > decades["without"],
        "batch norm works at a larger learning rate": bool(
            w["working_range"]
            and (not wo["working_range"] or w["working_range"][1] > wo["working_range"][1])
        ),
    }
    return rows, checks


def figure(results: dict[str, Any], lrs: list[float], out: Path) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    for bn, name in ((False, "without"), (True, "with")):
        acc = np.array(results[name]["dev_accuracy"])
        ax.plot(lrs, acc.mean(axis=0), "o-", color=COLORS[bn], label=f"{name} batch norm")
        ax.fill_between(lrs, acc.min(axis=0), acc.max(axis=0), color=COLORS[bn], alpha=0.2)
    ax.axhline(SUCCESS, color="k", ls=":", lw=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("SGD learning rate")
    ax.set_ylabel("dev accuracy (0 = diverged)")
    ax.set_title("digits, 64-64-64-64-64-10 ReLU: runs that work", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, out / f"{NAME}.png", dpi=70)


def run(out: Path, quick: bool = False) -> LabResult:
    if quick:
        lrs, seeds, epochs = [0.003, 0.1, 3.0], [0], 5
    else:
        lrs, seeds, epochs = [float(v) for v in np.logspace(-3, 1.5, 10)], [0, 1, 2], 10
    results = measure(lrs, seeds, epochs)
    rows, checks = table(results, lrs)
    figure(results, lrs, out)
    return LabResult(
        name=NAME,
        title=TITLE,
        claim=(
            "With batch norm, training works over a much wider range of learning rates, so "
            "the search for a good one is easier and larger ones can be used."
        ),
        source=(
            "Course 2, week 3, 'Normalizing activations in a network' (notes 2.3.4); Ioffe "
            "and Szegedy, ICML 2015, section 4.2.2."
        ),
        setup=(
            "digits (auto split, standardized), 64-64-64-64-64-10 ReLU, He init, with or "
            f"without batch norm, SGD at {len(lrs)} learning rates from {lrs[0]:g} to "
            f"{lrs[-1]:g}, batch 64, {epochs} epochs, seeds {seeds}, through "
            f"deepfit.experiment.run; a run works when its dev accuracy is >= {SUCCESS} (a "
            "diverged run counts 0)."
        ),
        rows=rows,
        checks=checks,
        data={"learning_rates": lrs, "seeds": seeds, **results},
        figure=f"{NAME}.png",
    )

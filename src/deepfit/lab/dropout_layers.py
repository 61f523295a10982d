"""A smaller keep_prob on the layers that overfit most (notes 2.1.7).

The notes: if some layers are more likely to overfit than others (those with large weight
matrices), give them a smaller ``keep_prob`` than the rest; ``keep_prob = 1`` on a layer
means no dropout there. A 784-512-32-10 network on a few hundred MNIST digits has almost all
its weights (401k of 418k) in the first layer; the same network, so the same parameter
count, with no dropout, one ``keep_prob`` for both hidden layers, and a per-layer
``model.keep_prob`` that drops only where the weights are.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from deepfit.lab._common import (
    LabResult,
    mnist_config,
    pyplot,
    require_mnist,
    row,
    run_config,
    save_figure,
)

NAME = "dropout_layers"
TITLE = "Dropout per layer: a smaller keep_prob where the weights are"
HIDDEN = [512, 32]
VARIANTS: dict[str, float | list[float]] = {
    "none": 1.0,
    "keep 0.5 on both layers": 0.5,
    "keep 0.5 on the 512-unit layer only": [0.5, 1.0],
    "keep 0.5 on the 32-unit layer only": [1.0, 0.5],
    "keep 0.5 / 0.8 (the notes' pattern)": [0.5, 0.8],
}


def measure(
    variants: dict[str, Any], seeds: list[int], n_train: int, n_dev: int, epochs: int
) -> dict[str, Any]:
    """Train / dev / test accuracy of every variant for every seed (the seed draws the digits
    as well as the weights: compare variants seed by seed)."""
    results: dict[str, Any] = {}
    for label, keep in variants.items():
        runs = []
        for seed in seeds:
            cfg = mnist_config(
                HIDDEN,
                n_train,
                n_dev,
                1000,
                model={"keep_prob": keep},
                optimizer="momentum",
                lr=0.1,
                beta=0.9,
                batch_size=32,
                epochs=epochs,
                seed=seed,
            )
            s = run_config(cfg)
            runs.append(
                {
                    "train": s["train"]["accuracy"],
                    "dev": s["dev"]["accuracy"],
                    "test": s["test"]["accuracy"],
                    "n_params": s["n_params"],
                }
            )
        results[label] = {
            "keep_prob": keep,
            "runs": runs,
            "train": float(np.mean([r["train"] for r in runs])),
            "dev": float(np.mean([r["dev"] for r in runs])),
            "test": float(np.mean([r["test"] for r in runs])),
            "n_params": runs[0]["n_params"],
        }
    return results


def table(results: dict[str, Any], seeds: list[int]) -> tuple[list, dict[str, bool]]:
    rows = [
        row(
            f"{label}: train / dev / test accuracy (mean of {len(seeds)} seeds)",
            f"{r['train']:.3f} / {r['dev']:.3f} / {r['test']:.3f}",
            None,
            f"{r['n_params']:,} parameters; model.keep_prob = {r['keep_prob']}",
        )
        for label, r in results.items()
    ]
    big = results["keep 0.5 on the 512-unit layer only"]

    def paired(other: dict[str, Any]) -> str:
        return ", ".join(
            f"{a['dev'] - b['dev']:+.3f}" for a, b in zip(big["runs"], other["runs"], strict=True)
        )

    rows += [
        row(
            f"dev accuracy, 512-unit layer only minus {label}, seed by seed",
            paired(results[label]),
            None,
            "the seed draws the digits too, so compare within a seed",
        )
        for label in results
        if label != "keep 0.5 on the 512-unit layer only"
    ]
    none = results["none"]
    small = results["keep 0.5 on the 32-unit layer only"]
    both = results["keep 0.5 on both layers"]
    checks = {
        "every variant has the same parameter count": len({r["n_params"] for r in results.values()})
        == 1,
        "dropout on the large layer beats no dropout (dev)": big["dev"] > none["dev"],
        "dropout on the large layer beats dropout on the small one (dev)": big["dev"]
        > small["dev"],
        "dropout on the large layer only is at least as good as on both (dev, within 0.005)": big[
            "dev"
        ]
        >= both["dev"] - 0.005,
    }
    return rows, checks


def figure(results: dict[str, Any], out: Path) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(10, 3.8))
    labels = list(results)
    x = np.arange(len(labels))
    for k, (split, offset) in enumerate((("train", -0.27), ("dev", 0.0), ("test", 0.27))):
        ax.bar(
            x + offset,
            [results[label][split] for label in labels],
            0.27,
            label=split,
            color=["#c7c7c7", "#1f77b4", "#2ca02c"][k],
        )
    ax.set_xticks(x, [label.replace(" on the ", "\non the ") for label in labels], fontsize=7)
    ax.set_ylim(0.85, 1.005)
    ax.set_ylabel("accuracy (mean over seeds)")
    ax.set_title("784-512-32-10 on MNIST digits: where to drop", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, out / f"{NAME}.png", dpi=70)


def run(out: Path, quick: bool = False) -> LabResult:
    require_mnist(NAME)
    if quick:
        variants = {k: v for k, v in VARIANTS.items() if "pattern" not in k}
        seeds, n_train, n_dev, epochs = [0], 300, 1000, 15
    else:
        variants, seeds, n_train, n_dev, epochs = VARIANTS, [0, 1, 2, 3], 500, 2000, 40
    results = measure(variants, seeds, n_train, n_dev, epochs)
    rows, checks = table(results, seeds)
    figure(results, out)
    return LabResult(
        name=NAME,
        title=TITLE,
        claim=(
            "Dropout belongs where the network overfits: with the same architecture, a "
            "smaller keep_prob on the layer that holds most weights does better than dropping "
            "in a small layer, and as well as dropping everywhere."
        ),
        source="Course 2, week 1, 'Understanding dropout' (notes 2.1.7).",
        setup=(
            f"MNIST subset through a config: {n_train} training, {n_dev} dev, 1000 test digits, "
            "pixels / 255; 784-512-32-10 ReLU, Momentum lr 0.1 (beta 0.9), batch 32, "
            f"{epochs} epochs, seeds {seeds}, model.keep_prob per variant, through "
            "deepfit.experiment.run."
        ),
        rows=rows,
        checks=checks,
        data=results,
        figure=f"{NAME}.png",
    )

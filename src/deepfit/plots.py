"""Figures, drawn headless with matplotlib (the ``plot`` extra).

Every function takes plain data (a History, lists of numbers, dicts) and a path, writes a
PNG atomically and returns the path. Axes are labelled; log scales are used where the
quantity spans decades (learning rates, activation statistics).
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from deepfit.errors import DeepfitError
from deepfit.io import atomic_write
from deepfit.optim.ewa import EWA


def available() -> bool:
    """Whether matplotlib (the ``plot`` extra) can be imported: without it a run writes
    everything but its plots."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def pyplot():
    """matplotlib's pyplot on the headless Agg backend (a clear error without matplotlib)."""
    try:
        import matplotlib
    except ImportError as exc:
        raise DeepfitError("plots need matplotlib: pip install 'deepfit[plot]'") from exc
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str | Path, dpi: int = 110) -> Path:
    """Write ``fig`` as a PNG to ``path`` atomically, close it, and return the path."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    pyplot().close(fig)
    return atomic_write(path, lambda f: f.write(buffer.getvalue()))


def smooth(values: Sequence[float], beta: float = 0.8) -> list[float]:
    """Bias-corrected exponentially weighted average of a curve."""
    avg = EWA(beta)
    return [float(avg.update(v)) for v in values]


def learning_curves(history: Any, path: str | Path, beta: float | None = None) -> Path | None:
    """Loss (left) and accuracy (right) per epoch, train and dev, raw (thin) and
    EWA-smoothed (thick); the best epoch marked.

    By default ``beta = min(0.9, 1 - 10 / epochs)`` (none below 0): an average over about a
    tenth of the run, so short runs are not dragged behind by the average's lag.
    """
    records = history.records if hasattr(history, "records") else list(history)
    if not records:
        return None
    if beta is None:
        beta = round(min(0.9, max(0.0, 1.0 - 10.0 / len(records))), 2)
    plt = pyplot()
    epochs = [r["epoch"] for r in records]
    has_acc = "train_accuracy" in records[0] or "dev_accuracy" in records[0]
    fig, axes = plt.subplots(1, 2 if has_acc else 1, figsize=(11 if has_acc else 6, 4))
    axes = list(axes) if has_acc else [axes]
    panels = [("loss", axes[0])] + ([("accuracy", axes[1])] if has_acc else [])
    colors = {"train": "tab:blue", "dev": "tab:orange"}
    for metric, ax in panels:
        for split in ("train", "dev"):
            key = f"{split}_{metric}"
            if key not in records[0]:
                continue
            values = [r[key] for r in records]
            ax.plot(
                epochs, values, color=colors[split], alpha=0.35, linewidth=1, label=f"{split} (raw)"
            )
            ax.plot(
                epochs,
                smooth(values, beta),
                color=colors[split],
                linewidth=2,
                label=f"{split} (EWA, beta={beta})",
            )
        best = getattr(history, "best_epoch", None)
        if best:
            ax.axvline(best, color="grey", linestyle="--", linewidth=1, label=f"best epoch {best}")
        ax.set_xlabel("epoch")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.set_ylabel(metric)
        if metric == "loss":
            ax.set_yscale("log")
        ax.set_title(f"{metric} per epoch")
        ax.grid(alpha=0.3)
        ax.legend()
    return save_figure(fig, path)


def learning_rate(history: Any, path: str | Path) -> Path | None:
    """The learning rate of each epoch, on a log axis."""
    records = history.records if hasattr(history, "records") else list(history)
    if not records or "lr" not in records[0]:
        return None
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot([r["epoch"] for r in records], [r["lr"] for r in records], marker=".")
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_ylabel("learning rate")
    ax.set_title("learning-rate schedule")
    ax.grid(alpha=0.3, which="both")
    return save_figure(fig, path)


def data_learning_curve(curve: Mapping[str, Any], path: str | Path) -> Path:
    """Train and dev error against the number of training examples (log x axis), with the
    Bayes estimate as a floor."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4))
    sizes = curve["sizes"]
    ax.plot(sizes, [100 * e for e in curve["train_errors"]], marker="o", label="train error")
    ax.plot(sizes, [100 * e for e in curve["dev_errors"]], marker="o", label="dev error")
    if curve.get("bayes_error") is not None:
        ax.axhline(100 * curve["bayes_error"], color="grey", linestyle="--", label="Bayes estimate")
    ax.set_xscale("log")
    ax.set_xlabel("training examples")
    ax.set_ylabel("error (%)")
    ax.set_title("learning curve: does more data help?")
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    return save_figure(fig, path)


def layer_statistics(
    stats: Mapping[str, Sequence[Mapping[str, float]]],
    path: str | Path,
    quantity: str = "activation_std",
) -> Path:
    """One line per initializer: a per-layer statistic (activation or gradient std) against
    depth, log y axis: vanishing lines fall, exploding lines rise, healthy lines stay flat."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, layers in stats.items():
        values = [layer[quantity] for layer in layers]
        if not any(v > 0 for v in values):
            ax.plot([], [], " ", label=f"{name}: exactly 0 everywhere")
            continue
        ax.plot(
            range(1, len(values) + 1),
            [v if v > 0 else float("nan") for v in values],
            marker=".",
            label=name,
        )
    ax.set_yscale("log")
    ax.set_xlabel("hidden layer")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_ylabel(quantity.replace("_", " "))
    label = {"activation_std": "activation std", "grad_std": "std of dW"}.get(quantity, quantity)
    ax.set_title(f"{label} per hidden layer at initialization")
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    return save_figure(fig, path)

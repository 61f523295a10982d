"""Mini-batch gradient descent beats batch and stochastic descent in time (notes 2.2.1-2).

Batch gradient descent (batch size ``m``) takes one step per pass over the data; stochastic
gradient descent (batch size 1) takes ``m`` steps per pass but each step handles one example,
loses the speed of vectorized code and is noisy; mini-batches of 64 to 512 take many steps
per pass and keep the vectorization, so they reach a given cost first. On MNIST digits, the
training cost against processor seconds and against epochs, batch sizes 1, 64, 512 and m, the
same learning rate, each for the same CPU-time budget.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from deepfit.lab._common import (
    LabResult,
    config,
    mnist,
    prepared,
    pyplot,
    require_mnist,
    row,
    run_config,
    save_figure,
)
from deepfit.training.callbacks import Callback

NAME = "minibatch"
TITLE = "Mini-batch gradient descent: cost against seconds and epochs for batch sizes 1 to m"
LR = 0.05
COLORS = ["#d62728", "#2ca02c", "#1f77b4", "#7f7f7f"]


class Clock(Callback):
    """Records the training cost on a fixed sample every ``every`` steps against the CPU time
    spent training (the probe's own time excluded) and the epochs done; stops training at the
    end of the first epoch past ``budget`` CPU seconds."""

    def __init__(self, X, y, every: int, budget: float, n_train: int, batch: int) -> None:
        self.X, self.y, self.every, self.budget = X, y, every, budget
        self.per_epoch = -(-n_train // batch)
        self.seconds: list[float] = []
        self.epochs: list[float] = []
        self.cost: list[float] = []

    def on_train_begin(self, trainer) -> None:
        self.steps, self.spent = 0, 0.0
        self._record(trainer)
        self.start = time.process_time()

    def on_batch_end(self, trainer, batch: int, loss: float) -> None:
        self.steps += 1
        if self.steps % self.every == 0:
            self.spent += time.process_time() - self.start
            self._record(trainer)
            self.start = time.process_time()

    def on_epoch_end(self, trainer, epoch: int, logs) -> None:
        if self.spent + time.process_time() - self.start >= self.budget:
            trainer.stop_training = True

    def _record(self, trainer) -> None:
        self.seconds.append(self.spent)
        self.epochs.append(self.steps / self.per_epoch)
        self.cost.append(trainer.evaluate(self.X, self.y)["loss"])


def measure(n_train: int, budget: float, probes: int) -> dict[str, Any]:
    Xtr, ytr, Xte, yte = mnist(n_train, 1000)
    data = prepared((Xtr, ytr), (Xte, yte), 10, name="mnist10k")
    sample = (Xtr[:1000], ytr[:1000])
    results: dict[str, Any] = {}
    for batch in (1, 64, 512, n_train):
        steps_per_epoch = -(-n_train // batch)
        every = max(1, steps_per_epoch // probes)
        clock = Clock(*sample, every=every, budget=budget, n_train=n_train, batch=batch)
        cfg = config([64], optimizer="sgd", lr=LR, batch_size=batch, epochs=100_000, seed=0)
        run_config(cfg, data, callbacks=[clock])
        label = (
            "m (batch GD)" if batch == n_train else ("1 (stochastic)" if batch == 1 else str(batch))
        )
        results[label] = {
            "batch_size": batch,
            "seconds": clock.seconds,
            "epochs": clock.epochs,
            "cost": clock.cost,
        }
    return results


def first_time(r: dict[str, Any], target: float, axis: str = "seconds") -> float | None:
    """The first ``axis`` value at which the cost is at or below ``target``."""
    return next((t for t, c in zip(r[axis], r["cost"], strict=True) if c <= target), None)


def cost_at(r: dict[str, Any], x: float, axis: str) -> float:
    """The cost at ``axis`` value ``x`` (linear interpolation between probes)."""
    return float(np.interp(x, r[axis], r["cost"]))


def table(results: dict[str, Any], target: float) -> tuple[list, dict[str, bool]]:
    rows = []
    times = {k: first_time(r, target) for k, r in results.items()}
    for label, r in results.items():
        t = times[label]
        rows.append(
            row(
                f"batch {label}: CPU seconds to cost {target}; cost after 1 epoch; epochs run",
                (f"{t:.2f}" if t is not None else "not reached")
                + f"; {cost_at(r, 1.0, 'epochs'):.3f}; {r['epochs'][-1]:.1f}",
                "mini-batch fastest in time" if label in ("64", "512") else None,
                f"lr {LR}, SGD",
            )
        )
    inf = float("inf")
    t = {k: (v if v is not None else inf) for k, v in times.items()}
    best_mini = min(t["64"], t["512"])
    per_epoch = {k: cost_at(r, 1.0, "epochs") for k, r in results.items()}
    checks = {
        "a mini-batch size reaches the target cost before batch GD": best_mini < t["m (batch GD)"],
        "a mini-batch size reaches the target cost before stochastic GD": best_mini
        < t["1 (stochastic)"],
        "per epoch, smaller batches lower the cost more (1 < 64 < 512 < m after one epoch)": (
            per_epoch["1 (stochastic)"]
            < per_epoch["64"]
            < per_epoch["512"]
            < per_epoch["m (batch GD)"]
        ),
    }
    return rows, checks


def figure(results: dict[str, Any], target: float, out: Path) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    for ax, axis, label in (
        (axes[0], "seconds", "CPU seconds of training"),
        (axes[1], "epochs", "epochs (passes over the training set)"),
    ):
        for (name, r), color in zip(results.items(), COLORS, strict=True):
            ax.plot(r[axis], r["cost"], "-", color=color, label=f"batch {name}")
        ax.axhline(target, color="k", ls=":", lw=0.8)
        ax.set_xlabel(label)
        ax.set_ylabel("training cost (1000 fixed digits)")
        ax.set_yscale("log")
        ax.legend(fontsize=7)
    axes[1].set_xscale("symlog", linthresh=0.1)
    axes[1].set_xlim(left=0)
    axes[0].set_title("cost against time: mini-batches first", fontsize=9)
    axes[1].set_title("cost against epochs: small batches step more often", fontsize=9)
    fig.tight_layout()
    save_figure(fig, out / f"{NAME}.png", dpi=70)


def run(out: Path, quick: bool = False) -> LabResult:
    require_mnist(NAME)
    n_train, budget, probes, target = (1000, 0.5, 10, 1.0) if quick else (4000, 8.0, 20, 0.4)
    results = measure(n_train, budget, probes)
    rows, checks = table(results, target)
    figure(results, target, out)
    return LabResult(
        name=NAME,
        title=TITLE,
        claim=(
            "Mini-batches of 64 to 512 reach a given training cost in less time than batch "
            "gradient descent (one step per pass) and stochastic gradient descent (one "
            "example per step, no vectorization); per epoch, smaller batches lower the cost "
            "more."
        ),
        source="Course 2, week 2, 'Mini-batch gradient descent' (notes 2.2.1-2.2.2).",
        setup=(
            f"MNIST subset: {n_train} training digits, 784-64-10 ReLU, SGD lr {LR} for every "
            f"batch size, about {budget} CPU seconds each (stopped at the end of the epoch "
            "that passes it), cost on 1000 fixed training digits probed ~"
            f"{probes} times per epoch (probe time excluded), through deepfit.experiment.run "
            "with a clock callback. CPU time (time.process_time) rather than wall time: the "
            "machine is shared."
        ),
        rows=rows,
        checks=checks,
        data=results,
        figure=f"{NAME}.png",
    )

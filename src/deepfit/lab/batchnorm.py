"""Batch normalization: faster training and stable sigmoid inputs (Ioffe and Szegedy 2015).

Figure 1 of the paper: a network with 3 fully connected hidden layers of 100 sigmoid units on
MNIST, mini-batches of 60. (a) test accuracy against training steps, with and without batch
norm; (b, c) the 15th, 50th and 85th percentiles of the input to one sigmoid of the last
hidden layer over training: without batch norm they drift, with it they stay put.
"""

from __future__ import annotations

from pathlib import Path

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
from deepfit.nn.activations import Sigmoid
from deepfit.training.callbacks import Callback

NAME = "batchnorm"
TITLE = "Batch normalization: test accuracy and the last layer's sigmoid input over training"
UNIT = 0  # the sigmoid of the last hidden layer whose input is tracked


class Probe(Callback):
    """Every ``every`` steps: test accuracy, and the percentiles of one last-hidden-layer
    sigmoid's input on a fixed set of test digits (inference mode)."""

    def __init__(self, X, y, every: int) -> None:
        self.X, self.y, self.every = X, y, every
        self.steps: list[int] = []
        self.accuracy: list[float] = []
        self.percentiles: list[list[float]] = []
        self._step = 0

    def on_train_begin(self, trainer) -> None:
        self._step = 0
        self._record(trainer)

    def on_batch_end(self, trainer, batch: int, loss: float) -> None:
        self._step += 1
        if self._step % self.every == 0:
            self._record(trainer)

    def _record(self, trainer) -> None:
        model = trainer.model
        last = max(i for i, layer in enumerate(model.layers) if isinstance(layer, Sigmoid))
        x = np.asarray(self.X, dtype=model.dtype)
        for i, layer in enumerate(model.layers):
            if i == last:
                z = np.asarray(x[:, UNIT], dtype=np.float64)
            x = layer.forward(x, training=False)
        self.steps.append(self._step)
        self.accuracy.append(float((x.argmax(axis=1) == self.y).mean()))
        self.percentiles.append(np.percentile(z, [15, 50, 85]).tolist())


def run(out: Path, quick: bool = False) -> LabResult:
    require_mnist(NAME)
    n_train, epochs, every = (3000, 5, 10) if quick else (8000, 30, 100)
    Xtr, ytr, Xte, yte = mnist(n_train, 2000)
    data = prepared((Xtr, ytr), (Xte, yte), 10, name="mnist10k")
    probes = {}
    finals = {}
    for bn in (False, True):
        cfg = config(
            [100, 100, 100],
            model={"activation": "sigmoid", "batchnorm": bn, "init": "xavier"},
            optimizer="sgd",
            lr=0.5,
            batch_size=60,
            epochs=epochs,
            seed=0,
        )
        probe = Probe(Xte, yte, every)
        summary = run_config(cfg, data, callbacks=[probe])
        probes[bn] = probe
        finals[bn] = summary["test"]["accuracy"]

    def band(p: Probe) -> np.ndarray:
        q = np.array(p.percentiles)
        return q[:, 2] - q[:, 0]

    def drift(p: Probe) -> float:
        """How far the median moves after the first tenth of training, in units of the
        final band width."""
        q = np.array(p.percentiles)
        start = len(q) // 10
        return float(np.ptp(q[start:, 1]) / max(q[-1, 2] - q[-1, 0], 1e-12))

    def spread(p: Probe) -> float:
        """How much the 85th - 15th band changes after the first tenth of training,
        relative to its final width."""
        b = band(p)
        return float(np.ptp(b[len(b) // 10 :]) / max(b[-1], 1e-12))

    def steps_to(p: Probe, level: float) -> int | None:
        return next((s for s, a in zip(p.steps, p.accuracy, strict=True) if a >= level), None)

    level = 0.9
    rows = [
        row(
            "final test accuracy without / with BN",
            f"{finals[False]:.3f} / {finals[True]:.3f}",
            "BN higher and sooner (fig. 1a: ~0.95 / ~0.98 at 50k steps)",
            f"{n_train} training digits (paper: 60k), {probes[False].steps[-1]} steps (paper: "
            "50k), SGD lr 0.5, Xavier init",
        ),
        row(
            f"steps to {level:.0%} test accuracy without / with BN",
            f"{steps_to(probes[False], level)} / {steps_to(probes[True], level)}",
            "BN reaches it much sooner",
            f"probed every {every} steps",
        ),
        row(
            "sigmoid input, 15/50/85th percentiles at the end, without BN",
            " / ".join(f"{v:.2f}" for v in probes[False].percentiles[-1]),
            "drifts and widens (fig. 1b)",
            f"unit {UNIT} of the last hidden layer, on the 2000 test digits, inference mode",
        ),
        row(
            "sigmoid input, 15/50/85th percentiles at the end, with BN",
            " / ".join(f"{v:.2f}" for v in probes[True].percentiles[-1]),
            "stable (fig. 1c)",
            "the input to the sigmoid is BN's output gamma z_norm + beta",
        ),
        row(
            "median drift after the first 10% of training / final band, without / with BN",
            f"{drift(probes[False]):.2f} / {drift(probes[True]):.2f}",
            "large / small",
            "",
        ),
        row(
            "85th - 15th band: change after the first 10% / final band, without / with BN",
            f"{spread(probes[False]):.2f} / {spread(probes[True]):.2f}",
            "large / small",
            f"final band {band(probes[False])[-1]:.2f} / {band(probes[True])[-1]:.2f}",
        ),
    ]
    checks = {
        "BN's final test accuracy is higher": finals[True] > finals[False],
        "BN's percentile band changes less (relative to its width)": spread(probes[True])
        < spread(probes[False]),
        "BN's median drifts less": drift(probes[True]) < drift(probes[False]),
    }

    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    ax = axes[0]
    for bn, color in ((False, "#1f77b4"), (True, "#d62728")):
        p = probes[bn]
        ax.plot(p.steps, p.accuracy, color=color, label="with BN" if bn else "without BN")
    ax.set_xlabel("training step (batch of 60)")
    ax.set_ylabel("test accuracy")
    ax.set_ylim(0.7, 1.0)
    ax.set_title("(a) 3 x 100 sigmoid, MNIST subset", fontsize=9)
    ax.legend(fontsize=7)
    low = min(min(min(q) for q in probes[bn].percentiles) for bn in (False, True))
    high = max(max(max(q) for q in probes[bn].percentiles) for bn in (False, True))
    for ax, bn, title in ((axes[1], False, "(b) without BN"), (axes[2], True, "(c) with BN")):
        q = np.array(probes[bn].percentiles)
        steps = probes[bn].steps
        for k, (name, style) in enumerate((("15th", "--"), ("50th", "-"), ("85th", "--"))):
            ax.plot(steps, q[:, k], style, color="#333333", label=f"{name} percentile")
        ax.fill_between(steps, q[:, 0], q[:, 2], color="#bbbbbb", alpha=0.5)
        ax.set_ylim(low - 0.2, high + 0.2)
        ax.set_xlabel("training step")
        ax.set_ylabel("input to one last-layer sigmoid")
        ax.set_title(title, fontsize=9)
        ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, out / f"{NAME}.png", dpi=70)

    return LabResult(
        name=NAME,
        title=TITLE,
        claim=(
            "With batch normalization the network reaches a higher test accuracy sooner, and "
            "the distribution of a last-layer sigmoid's input stays stable during training "
            "instead of drifting (less internal covariate shift)."
        ),
        source="Ioffe and Szegedy, 'Batch normalization', ICML 2015, section 4.1, figure 1.",
        setup=(
            f"MNIST subset: {n_train} training / 2000 test digits, pixels / 255; "
            f"784-100-100-100-10, sigmoid, Xavier init, SGD lr 0.5, batch 60, {epochs} epochs, "
            "through deepfit.experiment.run with a probing callback."
        ),
        rows=rows,
        checks=checks,
        data={
            str(bn): {"steps": p.steps, "test_accuracy": p.accuracy, "percentiles": p.percentiles}
            for bn, p in (("without", probes[False]), ("with", probes[True]))
        },
        figure=f"{NAME}.png",
    )

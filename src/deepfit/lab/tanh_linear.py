"""A large lambda pushes tanh units into their linear regime (notes 2.1.5).

The notes' intuition for why L2 prevents overfitting: a large lambda makes ``W`` small, so
``z = W a + b`` stays small, where ``tanh(z) ~ z`` is nearly linear; a network of nearly
linear layers computes a nearly linear function and cannot draw the wiggly boundary of an
overfitted network, and with lambda too large it underfits. On noisy moons (a curved
boundary), a 2-32-32-1 tanh network over a sweep of lambda: the share of hidden
pre-activations with ``|z| < 0.5`` (where ``tanh`` is within 8% of the identity), train and
dev accuracy, against a logistic regression (the linear model) on the same data.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np

from deepfit.experiment import prepare
from deepfit.lab._common import (
    LabResult,
    config,
    hidden_preactivations,
    pyplot,
    row,
    run_config,
    save_figure,
)

NAME = "tanh_linear"
TITLE = "A large lambda pushes tanh units into their linear regime"
LINEAR = 0.5  # |z| < 0.5: tanh(z) / z > 0.92


def moons_config(hidden: list[int], lam: float, epochs: int) -> dict[str, Any]:
    return config(
        hidden,
        data={"source": "moons", "n_samples": 200, "noise": 0.3},
        model={"activation": "tanh", "init": "xavier", "l2": lam},
        optimizer="adam",
        lr=0.01,
        batch_size=64,
        epochs=epochs,
        seed=0,
    )


def measure(lambdas: list[float], epochs: int) -> dict[str, Any]:
    data = prepare(moons_config([32, 32], 0.0, epochs))
    Xtr = data.train[0]
    points = []
    for lam in lambdas:
        summary = run_config(moons_config([32, 32], lam, epochs), data)
        z = np.concatenate([a.ravel() for a in hidden_preactivations(summary["model"], Xtr)])
        points.append(
            {
                "lambda": lam,
                "linear_share": float(np.mean(np.abs(z) < LINEAR)),
                "mean_abs_z": float(np.mean(np.abs(z))),
                "train": summary["train"]["accuracy"],
                "dev": summary["dev"]["accuracy"],
                "trainer": summary["trainer"],
            }
        )
    linear = run_config(moons_config([], 0.0, epochs), data)
    return {
        "points": points,
        "linear": {"train": linear["train"]["accuracy"], "dev": linear["dev"]["accuracy"]},
        "data": data,
    }


def table(result: dict[str, Any]) -> tuple[list, dict[str, bool]]:
    points, linear = result["points"], result["linear"]
    rows = [
        row(
            f"lambda {p['lambda']:g}: share of |z| < {LINEAR}; train / dev accuracy",
            f"{p['linear_share']:.3f}; {p['train']:.3f} / {p['dev']:.3f}",
            None,
            f"mean |z| {p['mean_abs_z']:.3f}",
        )
        for p in points
    ]
    rows.append(
        row(
            "logistic regression (no hidden layer): train / dev accuracy",
            f"{linear['train']:.3f} / {linear['dev']:.3f}",
            "what a linear network can do",
            "the large-lambda network tends to this",
        )
    )
    shares = [p["linear_share"] for p in points]
    last = points[-1]
    checks = {
        "the share of linear-regime units grows with lambda": all(
            b >= a for a, b in itertools.pairwise(shares)
        )
        and shares[-1] > shares[0] + 0.3,
        "at the largest lambda almost all units are linear (> 90%)": shares[-1] > 0.9,
        "the largest lambda underfits: train accuracy below lambda 0's": last["train"]
        < points[0]["train"] - 0.02,
        "some lambda makes the network linear-like: > 90% linear units and train accuracy "
        "within 0.03 of logistic regression's": any(
            p["linear_share"] > 0.9 and abs(p["train"] - linear["train"]) <= 0.03 for p in points
        ),
    }
    return rows, checks


def figure(result: dict[str, Any], out: Path) -> None:
    points, linear, data = result["points"], result["linear"], result["data"]
    plt = pyplot()
    fig, axes = plt.subplots(1, 4, figsize=(15, 3.6))
    lams = [max(p["lambda"], 1e-3) for p in points]
    ax = axes[0]
    ax.plot(lams, [p["linear_share"] for p in points], "o-", color="#9467bd")
    ax.set_xscale("log")
    ax.set_xlabel("lambda (0 drawn at 1e-3)")
    ax.set_ylabel(f"share of hidden |z| < {LINEAR}")
    ax.set_title("tanh units in the linear regime", fontsize=9)
    ax = axes[1]
    ax.plot(lams, [p["train"] for p in points], "o-", color="#1f77b4", label="train")
    ax.plot(lams, [p["dev"] for p in points], "o-", color="#d62728", label="dev")
    ax.axhline(linear["train"], color="k", ls=":", lw=0.8, label="logistic regression, train")
    ax.set_xscale("log")
    ax.set_xlabel("lambda")
    ax.set_ylabel("accuracy")
    ax.set_title("accuracy against lambda", fontsize=9)
    ax.legend(fontsize=7)
    X, y = data.train
    xs = np.linspace(X[:, 0].min() - 0.5, X[:, 0].max() + 0.5, 120)
    ys = np.linspace(X[:, 1].min() - 0.5, X[:, 1].max() + 0.5, 100)
    gx, gy = np.meshgrid(xs, ys)
    grid = np.stack([gx.ravel(), gy.ravel()], axis=1).astype(np.float32)
    # the strongest lambda that still separates the classes: the nearly linear network
    linear_like = max((p for p in points if p["train"] > 0.6), key=lambda p: p["lambda"])
    for ax, p in zip(axes[2:], (points[0], linear_like), strict=True):
        label = p["trainer"].predict_classes(grid).reshape(gx.shape)
        ax.contourf(gx, gy, label, levels=[-0.5, 0.5, 1.5], colors=["#c6dbef", "#fdd0a2"])
        ax.scatter(X[:, 0], X[:, 1], c=np.where(y == 1, "#e6550d", "#3182bd"), s=4)
        ax.set_title(
            f"lambda {p['lambda']:g}: train {p['train']:.2f}, dev {p['dev']:.2f}", fontsize=9
        )
        ax.set_xlabel("x1 (standardized)")
        ax.set_ylabel("x2")
    fig.tight_layout()
    save_figure(fig, out / f"{NAME}.png", dpi=70)


def run(out: Path, quick: bool = False) -> LabResult:
    lambdas = [0.0, 3.0, 30.0] if quick else [0.0, 0.3, 1.0, 3.0, 10.0, 30.0]
    epochs = 100 if quick else 300
    result = measure(lambdas, epochs)
    rows, checks = table(result)
    figure(result, out)
    return LabResult(
        name=NAME,
        title=TITLE,
        claim=(
            "With a large L2 lambda the weights are small, so tanh units work near z = 0 "
            "where tanh is almost linear; the network then computes an almost linear function "
            "and underfits a curved boundary, as a logistic regression does."
        ),
        source="Course 2, week 1, 'Why regularization reduces overfitting' (notes 2.1.5).",
        setup=(
            "moons (200 points, noise 0.3, auto split 60/20/20, standardized), 2-32-32-1 "
            f"tanh, Xavier init, Adam lr 0.01, batch 64, {epochs} epochs, l2 = lambda in "
            f"{lambdas}, through deepfit.experiment.run; pre-activations of both hidden "
            "layers on the training points, inference mode."
        ),
        rows=rows,
        checks=checks,
        data={
            "points": [{k: v for k, v in p.items() if k != "trainer"} for p in result["points"]],
            "linear": result["linear"],
        },
        figure=f"{NAME}.png",
    )

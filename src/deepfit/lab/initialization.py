"""Initialization: zeros, large random and He on circles; Xavier versus He at depth 30.

Course 2, week 1 ("Initialization" exercise): ``make_circles(300, noise=0.05)`` for training and
100 points for testing, a [2, 10, 5, 1] ReLU-ReLU-sigmoid network, full-batch gradient descent
with lr 0.01 for 15,000 iterations. Zeros never breaks the symmetry (cost stuck at ln 2,
accuracy 0.5); ``randn * 10`` starts with saturated sigmoids and a huge cost and ends poorly;
He (``randn * sqrt(2 / n_in)``) fits the circles.

He et al. 2015 (figure 3): a 30-layer ReLU network initialised with Xavier's variance
``1/n_in`` halves the activation variance at every layer (std times 1/sqrt(2)), so the signal
vanishes and training stalls; He's ``2/n_in`` keeps it flat and trains.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from deepfit import data as datasets
from deepfit.checks.layerstats import layer_statistics
from deepfit.experiment import prepare
from deepfit.lab._common import (
    LabResult,
    config,
    prepared,
    pyplot,
    row,
    run_config,
    save_figure,
    sklearn_toy,
)
from deepfit.nn.losses import SoftmaxCrossEntropy
from deepfit.nn.sequential import mlp

NAME = "init"
TITLE = "Initialization: zeros, large random, He; and Xavier versus He at depth 30"
# the model keys of each initialization: deepfit's own draws, and the notebook's (np.random.seed(3)
# once, W = randn(n_out, n_in).T * std layer by layer: deepfit.nn.init.Course)
INITS = {
    "zeros": {"init": "zeros"},
    "large random (x10)": {"init": "normal", "init_scale": 10.0},
    "He": {"init": "he"},
}
COURSE_INITS = {
    "zeros": {"init": "zeros"},
    "large random (x10)": {"init": "course_normal", "init_scale": 10.0, "init_seed": 3},
    "He": {"init": "course_he", "init_seed": 3},
}
PUBLISHED = {"zeros": (0.50, 0.50), "large random (x10)": (0.83, 0.86), "He": (0.993, 0.96)}
COLORS = {"zeros": "#7f7f7f", "large random (x10)": "#d62728", "He": "#2ca02c"}
DEPTH, WIDTH = 30, 64
HE_COST_14000 = 0.07357895962677366  # the notebook's "Cost after iteration 14000"


def circles_data():
    """deepfit's own circles: 300 training and 100 test points (noise 0.05), seeds 1 and 2."""
    train = datasets.circles(n_samples=300, noise=0.05, rng=1)
    test = datasets.circles(n_samples=100, noise=0.05, rng=2)
    return prepared((train.X, train.y), (test.X, test.y), 2, name="circles")


def course_circles_data():
    """The notebook's points: ``make_circles(300, noise=.05)`` after ``np.random.seed(1)``
    for training, 100 after ``seed(2)`` for testing (scikit-learn's generator)."""
    Xtr, ytr, exact = sklearn_toy("circles", 300, 0.05, 1)
    Xte, yte, _ = sklearn_toy("circles", 100, 0.05, 2)
    return prepared((Xtr, ytr), (Xte, yte), 2, name="circles (course)"), exact


def circles_config(
    init: dict[str, Any], iterations: int, seed: int, dtype: str = "float32"
) -> dict:
    """The [2, 10, 5, 1] network with the model keys ``init`` (``model.init`` and its
    ``init_scale`` / ``init_seed``)."""
    return config(
        [10, 5],
        model={"loss": "sigmoid_binary_cross_entropy", **init},
        optimizer="sgd",
        lr=0.01,
        batch_size=300,
        epochs=iterations,
        seed=seed,
        dtype=dtype,
    )


def depth_config(init: str, epochs: int) -> dict:
    return config(
        [WIDTH] * DEPTH,
        model={"init": init},
        data={"source": "digits"},
        optimizer="momentum",
        lr=0.01,
        beta=0.9,
        batch_size=64,
        epochs=epochs,
        seed=0,
    )


def _boundary(trainer, ax, data, title):
    xs = np.linspace(-1.5, 1.5, 120)
    gx, gy = np.meshgrid(xs, xs)
    grid = np.stack([gx.ravel(), gy.ravel()], axis=1).astype(np.float32)
    p = trainer.predict(grid).reshape(gx.shape)
    ax.contourf(gx, gy, p > 0.5, levels=[-0.5, 0.5, 1.5], colors=["#c6dbef", "#fdd0a2"])
    X, y = data.train
    ax.scatter(X[:, 0], X[:, 1], c=np.where(y == 1, "#e6550d", "#3182bd"), s=5)
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("x1")
    ax.set_ylabel("x2")
    ax.set_aspect("equal")


def run(out: Path, quick: bool = False) -> LabResult:
    iterations = 4000 if quick else 15000
    seeds = [] if quick else [0, 1, 2, 3, 4]
    depth_epochs = 6 if quick else 30
    # 1. the notebook replicated: its points, its draws (RandomState(3)), float64
    data, exact_data = course_circles_data()
    course: dict[str, tuple[float, float]] = {}
    curves, trainers = {}, {}
    for name, init in COURSE_INITS.items():
        summary = run_config(circles_config(init, iterations, 0, "float64"), data)
        course[name] = (summary["train"]["accuracy"], summary["test"]["accuracy"])
        curves[name] = summary["history"]["train_loss"]
        trainers[name] = summary["trainer"]
    # 2. deepfit's own circles and initializers, several seeds
    own_data = circles_data()
    results: dict[str, list[tuple[float, float]]] = {k: [] for k in INITS}
    for name, init in INITS.items():
        for seed in seeds:
            summary = run_config(circles_config(init, iterations, seed), own_data)
            results[name].append((summary["train"]["accuracy"], summary["test"]["accuracy"]))

    # depth: per-layer activation std at initialization, then training
    digits = prepare(depth_config("he", 1))
    Xtr, ytr = digits.train
    stats = {}
    for init in ("xavier", "he"):
        model = mlp(Xtr.shape[1], [WIDTH] * DEPTH, 10, activation="relu", init=init, rng=0)
        stats[init] = [
            s["activation_std"] for s in layer_statistics(model, SoftmaxCrossEntropy(), Xtr, ytr)
        ]
    deep = {}
    for init in ("xavier", "he"):
        summary = run_config(depth_config(init, depth_epochs), digits)
        deep[init] = {
            "train_loss": summary["history"]["train_loss"],
            "dev_accuracy": summary["dev"]["accuracy"],
            "train_accuracy": summary["train"]["accuracy"],
        }

    rows = []
    at = min(14000, iterations - 1)  # the notebook's cost after 14,000 updates, if run that long
    how = (
        "replicated: the notebook's points (scikit-learn, seeds 1/2), its weight draws "
        "(RandomState(3), W transposed), float64"
        if exact_data
        else "scikit-learn missing: deepfit's circles, so the points differ"
    )
    if quick:
        how += f"; quick run: {iterations} iterations, not 15,000"
    for name in INITS:
        tr, te = course[name]
        pub = PUBLISHED[name]
        rows.append(
            row(
                f"{name}: train / test accuracy",
                f"{tr:.3f} / {te:.2f}",
                f"{pub[0]} / {pub[1]}",
                how,
            )
        )
    x10_train = [a for a, _ in results["large random (x10)"]] if seeds else []
    for name in INITS if seeds else []:
        tr = [a for a, _ in results[name]]
        te = [b for _, b in results[name]]
        rows.append(
            row(
                f"{name}, deepfit's circles and init, {len(seeds)} seeds: mean train / test "
                "(range)",
                f"{np.mean(tr):.3f} / {np.mean(te):.2f} ({min(tr):.2f}-{max(tr):.2f} / "
                f"{min(te):.2f}-{max(te):.2f})",
                f"{PUBLISHED[name][0]} / {PUBLISHED[name][1]}",
                "other points and draws: x10 varies most from seed to seed "
                f"({min(x10_train):.2f} to {max(x10_train):.2f} train); the ordering "
                "zeros < x10 < He holds on average",
            )
        )
    rows += [
        row(
            "zeros: final cost",
            curves["zeros"][-1],
            f"ln 2 = {math.log(2):.4f}",
            "stuck from the first iteration",
        ),
        row(
            "large random (x10): first / final cost",
            f"{curves['large random (x10)'][0]:.3g} / {curves['large random (x10)'][-1]:.3f}",
            "inf at first (log 0), then slow",
            "ours is finite: deepfit computes the loss from logits",
        ),
        row(
            f"He: cost at iteration {at:,}",
            curves["He"][at],
            HE_COST_14000 if at == 14000 else None,
            how
            if at == 14000
            else f"{how}; the notebook prints {HE_COST_14000:.5f} at iteration 14,000",
        ),
    ]
    ratio_x = (stats["xavier"][-1] / stats["xavier"][0]) ** (1 / (DEPTH - 1))
    ratio_h = (stats["he"][-1] / stats["he"][0]) ** (1 / (DEPTH - 1))
    rows += [
        row(
            f"depth {DEPTH}, Xavier: activation std, layer 1 -> layer {DEPTH}",
            f"{stats['xavier'][0]:.3g} -> {stats['xavier'][-1]:.2e}",
            "shrinks ~1/sqrt(2) per layer",
            f"width {WIDTH}, standardized digits ({Xtr.shape[0]} training rows)",
        ),
        row(
            f"depth {DEPTH}, Xavier: mean ratio of std per layer",
            ratio_x,
            f"1/sqrt(2) = {1 / math.sqrt(2):.3f}",
            "finite width: the ratio fluctuates layer to layer",
        ),
        row(
            f"depth {DEPTH}, He: activation std, layer 1 -> layer {DEPTH}",
            f"{stats['he'][0]:.3g} -> {stats['he'][-1]:.3g}",
            "flat",
            "",
        ),
        row(f"depth {DEPTH}, He: mean ratio of std per layer", ratio_h, 1.0, ""),
        row(
            f"depth {DEPTH}, Xavier: train loss, epoch 1 -> {depth_epochs}; dev accuracy",
            f"{deep['xavier']['train_loss'][0]:.3f} -> {deep['xavier']['train_loss'][-1]:.3f}; "
            f"{deep['xavier']['dev_accuracy']:.2f}",
            "stalls (He et al. fig. 3: no progress)",
            "digits, not ImageNet; Momentum(0.01, beta 0.9), batch 64. ln 10 = 2.303 is chance",
        ),
        row(
            f"depth {DEPTH}, He: train loss, epoch 1 -> {depth_epochs}; dev accuracy",
            f"{deep['he']['train_loss'][0]:.3f} -> {deep['he']['train_loss'][-1]:.3f}; "
            f"{deep['he']['dev_accuracy']:.2f}",
            "trains",
            "",
        ),
    ]
    checks = {
        "He train accuracy > large random's > zeros's": course["He"][0]
        > course["large random (x10)"][0]
        > course["zeros"][0],
        "zeros stays at accuracy 0.5 and cost ln 2": course["zeros"][0] == 0.5
        and abs(curves["zeros"][-1] - math.log(2)) < 1e-3,
        "Xavier's activation std shrinks with depth (last < first / 100)": stats["xavier"][-1]
        < stats["xavier"][0] / 100,
        "He's activation std stays within a factor 3": 1 / 3 < stats["he"][-1] / stats["he"][0] < 3,
        "depth 30: He's training loss falls below Xavier's": deep["he"]["train_loss"][-1]
        < deep["xavier"]["train_loss"][-1] - 0.1,
    }

    plt = pyplot()
    fig, axes = plt.subplots(2, 3, figsize=(11.5, 7.2))
    ax = axes[0, 0]
    for name in INITS:
        ax.plot(np.arange(1, iterations + 1), curves[name], color=COLORS[name], label=name)
    ax.set_xlabel("iteration (full batch)")
    ax.set_ylabel("cost (sigmoid cross-entropy)")
    ax.set_yscale("log")
    ax.set_xscale("log")
    ax.set_title("circles, [2, 10, 5, 1], lr 0.01", fontsize=9)
    ax.legend(fontsize=7)
    ax = axes[0, 1]
    layers = np.arange(1, DEPTH + 1)
    ax.semilogy(layers, stats["xavier"], "o-", ms=3, color="#9467bd", label="Xavier, Var(W) = 1/n")
    ax.semilogy(layers, stats["he"], "o-", ms=3, color="#2ca02c", label="He, Var(W) = 2/n")
    ax.semilogy(
        layers,
        stats["xavier"][0] * 2.0 ** (-(layers - 1) / 2),
        ":",
        color="k",
        lw=0.8,
        label="1/sqrt(2) per layer",
    )
    ax.set_xlabel("hidden layer")
    ax.set_ylabel("std of ReLU output at init")
    ax.set_title(f"{DEPTH}-layer ReLU MLP on digits", fontsize=9)
    ax.legend(fontsize=7)
    ax = axes[0, 2]
    for init, color in (("xavier", "#9467bd"), ("he", "#2ca02c")):
        loss = deep[init]["train_loss"]
        ax.plot(
            np.arange(1, len(loss) + 1),
            loss,
            "o-",
            ms=3,
            color=color,
            label=f"{init.capitalize()} (dev acc {deep[init]['dev_accuracy']:.2f})",
        )
    ax.axhline(math.log(10), color="k", ls=":", lw=0.8)
    ax.set_xlabel("epoch")
    ax.set_ylabel("training loss (softmax cross-entropy)")
    ax.set_title(f"training at depth {DEPTH} (Momentum, lr 0.01)", fontsize=9)
    ax.legend(fontsize=7)
    for ax, name in zip(axes[1], INITS, strict=True):
        tr, te = course[name]
        _boundary(trainers[name], ax, data, f"{name}: train {tr:.3f}, test {te:.2f}")
    fig.tight_layout()
    save_figure(fig, out / f"{NAME}.png", dpi=70)

    step = max(1, iterations // 300)
    return LabResult(
        name=NAME,
        title=TITLE,
        claim=(
            "Zeros cannot break symmetry (accuracy 0.5, cost ln 2); very large random weights "
            "start badly and train slowly; He initialization fits. At depth 30, Xavier's "
            "variance 1/n shrinks ReLU activations by 1/sqrt(2) per layer and training stalls; "
            "He's 2/n keeps them flat and trains."
        ),
        source=(
            "Course 2, week 1, 'Initialization' exercise; He, Zhang, Ren and Sun, 'Delving "
            "deep into rectifiers', ICCV 2015, section 2.2 and figure 3."
        ),
        setup=(
            f"circles: 300 train / 100 test (noise 0.05), [2, 10, 5, 1] ReLU-ReLU-sigmoid, "
            f"SGD lr 0.01, batch 300 (full), {iterations} iterations, through "
            f"deepfit.experiment.run; once as the notebook (its points and weight draws), "
            f"then with deepfit's circles and initializers for seeds {seeds or 'none (quick)'}. "
            f"Depth: digits (auto split, standardized), "
            f"{DEPTH} x {WIDTH} ReLU, Momentum lr 0.01, batch 64, {depth_epochs} epochs."
        ),
        rows=rows,
        checks=checks,
        data={
            "circles_course": course,
            "circles_own": {k: [list(p) for p in v] for k, v in results.items()},
            "cost_every": step,
            "cost": {k: v[::step] for k, v in curves.items()},
            "activation_std": stats,
            "depth_training": deep,
        },
        figure=f"{NAME}.png",
    )

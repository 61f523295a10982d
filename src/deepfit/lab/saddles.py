"""Critical points are saddles, not local minima; plateaus, and Adam leaves them sooner
(notes 2.2.10).

1. Where the gradient of a small network's cost vanishes, the Hessian's eigenvalues say what
   the point is: all positive, a local minimum; some negative, a saddle. In ``p`` dimensions
   a minimum needs all ``p`` curvatures positive, so as ``p`` grows ever fewer critical
   points are minima, and those are found near the lowest cost (Dauphin et al. 2014, figure
   1: the index, the share of negative eigenvalues, grows with the cost). Critical points of
   1-h-1 tanh networks on a 1-D regression are found with damped Newton steps
   (Levenberg-Marquardt) on the gradient, which, unlike descent, converge to saddles as well
   as minima, started from snapshots of training runs, and classified by their Hessian's
   eigenvalues.
2. A plateau: started near the saddle at ``theta = 0`` (weights drawn with std 0.01, three
   tanh layers), plain gradient descent barely moves for many epochs; Momentum moves as
   slowly (its EWA form takes steps of the same size); RMSprop and Adam divide by the
   gradient's root mean square and leave the plateau within a few epochs.

Dauphin, Pascanu, Gulcehre, Cho, Ganguli and Bengio, 'Identifying and attacking the saddle
point problem in high-dimensional non-convex optimization', NIPS 2014.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from deepfit.lab._common import (
    LabResult,
    config,
    digits,
    prepared,
    pyplot,
    row,
    run_config,
    save_figure,
)
from deepfit.nn.losses import MeanSquaredError
from deepfit.nn.objective import cost_and_gradients
from deepfit.nn.sequential import Sequential
from deepfit.training.callbacks import Callback

NAME = "saddles"
TITLE = "Critical points are saddles; plateaus, and Adam leaves them sooner"
OPTIMIZERS = {
    "SGD (lr 0.1)": ("sgd", 0.1),
    "Momentum (lr 0.1, beta 0.9)": ("momentum", 0.1),
    "RMSprop (lr 0.001)": ("rmsprop", 0.001),
    "Adam (lr 0.001)": ("adam", 0.001),
}
COLORS = ["#1f77b4", "#ff7f0e", "#9467bd", "#2ca02c"]
PLATEAU = 0.9  # left the plateau: training cost below 90% of ln 10


# -- 1. critical points -----------------------------------------------------------------------
def regression_data(m: int = 30, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``x ~ U(-2, 2)``, ``y = sin(1.5 x) + N(0, 0.1^2)``."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-2, 2, (m, 1))
    return x, np.sin(1.5 * x[:, 0]) + rng.normal(0, 0.1, m)


class Objective:
    """The cost of a network as a function of its flattened parameters ``theta``."""

    def __init__(self, model: Sequential, x: np.ndarray, y: np.ndarray) -> None:
        self.model, self.x, self.y = model, x, y
        self.loss = MeanSquaredError()
        self.names = list(model.params)

    def set(self, theta: np.ndarray) -> None:
        i = 0
        for _name, p in self.model.params.items():
            p[...] = theta[i : i + p.size].reshape(p.shape)
            i += p.size

    def grad(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        """``J(theta)`` and ``dJ/dtheta`` by backpropagation."""
        self.set(theta)
        value = cost_and_gradients(self.model, self.loss, self.x, self.y)
        return value, np.concatenate([g.ravel() for g in self.model.grads.values()])

    def hessian(self, theta: np.ndarray, eps: float = 1e-5) -> np.ndarray:
        r"""Central differences of the backpropagated gradient, symmetrized:

        .. math:: H_{:, i} = \frac{g(\theta + \epsilon e_i) - g(\theta - \epsilon e_i)}
                             {2 \epsilon}, \qquad H \leftarrow (H + H^T) / 2
        """
        p = theta.size
        H = np.empty((p, p))
        for i in range(p):
            e = np.zeros(p)
            e[i] = eps
            H[:, i] = (self.grad(theta + e)[1] - self.grad(theta - e)[1]) / (2 * eps)
        return (H + H.T) / 2


def find_critical_point(
    f: Objective, theta: np.ndarray, iterations: int, tol: float = 1e-5
) -> np.ndarray | None:
    r"""Levenberg-Marquardt on the gradient as a residual (Newton's method on
    :math:`g(\theta) = 0`, damped): :math:`\theta \leftarrow \theta - (H^2 + \mu I)^{-1} H g`,
    :math:`\mu` divided by 3 after a step that lowers :math:`\|g\|`, multiplied by 3 after
    one that does not. Unlike descent it is attracted to every critical point, saddles
    included. Returns the point when :math:`\|g\| < tol`, else ``None``."""
    _, g = f.grad(theta)
    mu = 1e-3
    for _ in range(iterations):
        norm = np.linalg.norm(g)
        if norm < tol:
            return theta
        H = f.hessian(theta)
        A = H @ H
        for _ in range(20):
            step = np.linalg.solve(A + mu * np.eye(len(theta)), H @ g)
            candidate = theta - step
            _, gc = f.grad(candidate)
            if np.linalg.norm(gc) < norm:
                theta, g, mu = candidate, gc, max(mu / 3, 1e-12)
                break
            mu *= 3
        else:
            return None
    return theta if np.linalg.norm(g) < tol else None


class Snapshots(Callback):
    """The flattened parameters at the end of the given epochs (1-based)."""

    def __init__(self, epochs: set[int]) -> None:
        self.at, self.thetas = epochs, []

    def on_epoch_end(self, trainer, epoch: int, logs) -> None:
        if epoch + 1 in self.at:
            self.thetas.append(
                np.concatenate(
                    [np.array(p, np.float64).ravel() for p in trainer.model.params.values()]
                )
            )


def snapshot_epochs(epochs: int) -> set[int]:
    """Eight log-spaced epochs from 1 to ``epochs``."""
    return {int(e) for e in np.unique(np.geomspace(1, epochs, 8).round())}


def critical_points(width: int, seeds: int, epochs: int, iterations: int) -> list[dict[str, Any]]:
    """Critical points of a 1-``width``-1 tanh network near the path of training: Adam runs
    (through the pipeline, full batch) are snapshotted at log-spaced epochs, and from every
    snapshot :func:`find_critical_point` looks for the nearest critical point; each is
    classified by its Hessian's eigenvalues (cost, number negative, number zero, index)."""
    x, y = regression_data()
    data = prepared((x, y), (x, y), 1, task="regression", name="sin(1.5 x)")
    at = snapshot_epochs(epochs)
    found = []
    for seed in range(seeds):
        snaps = Snapshots(at)
        cfg = config(
            [width],
            model={"activation": "tanh", "init": "xavier"},
            optimizer="adam",
            lr=0.01,
            batch_size=len(x),
            epochs=epochs,
            seed=seed,
            dtype="float64",
        )
        model = run_config(cfg, data, callbacks=[snaps])["model"]
        f = Objective(model, x, y)
        for start in snaps.thetas:
            theta = find_critical_point(f, start, iterations)
            if theta is None:
                continue
            eig = np.linalg.eigvalsh(f.hessian(theta))
            tol = 1e-6 * max(np.abs(eig).max(), 1e-12)
            found.append(
                {
                    "cost": f.grad(theta)[0],
                    "negative": int((eig < -tol).sum()),
                    "zero": int((np.abs(eig) <= tol).sum()),
                    "index": float((eig < -tol).mean()),
                    "n_params": int(theta.size),
                }
            )
    return found


# -- 2. plateaus ------------------------------------------------------------------------------
def plateau_runs(epochs: int, optimizers: dict[str, tuple[str, float]]) -> dict[str, Any]:
    data = digits(0)
    runs = {}
    for label, (opt, lr) in optimizers.items():
        cfg = config(
            [32, 32, 32],
            model={"activation": "tanh", "init": "normal", "init_scale": 0.01},
            optimizer=opt,
            lr=lr,
            beta=0.9 if opt == "momentum" else 0.999 if opt == "rmsprop" else 0.9,
            batch_size=64,
            epochs=epochs,
            seed=0,
        )
        loss = run_config(cfg, data)["history"]["train_loss"]
        left = next((i + 1 for i, v in enumerate(loss) if v < PLATEAU * math.log(10)), None)
        runs[label] = {"train_loss": loss, "epochs_to_leave": left}
    return runs


def table(
    points: dict[int, dict[str, Any]], runs: dict[str, Any], epochs: int
) -> tuple[list, dict]:
    rows = []
    shares, separated = {}, {}
    for width, r in points.items():
        found = r["points"]
        minima = sorted(c["cost"] for c in found if c["negative"] == 0)
        saddles = sorted(c["cost"] for c in found if c["negative"] > 0)
        shares[width] = len(saddles) / max(len(found), 1)
        separated[width] = not minima or not saddles or max(minima) < min(saddles)
        rows.append(
            row(
                f"1-{width}-1 tanh ({3 * width + 1} parameters): critical points found "
                f"(of {r['starts']} starts); saddles; minima",
                f"{len(found)}; {len(saddles)} ({shares[width]:.0%}); {len(minima)}",
                "saddles dominate as the dimension grows",
                "cost of minima: "
                + (", ".join(f"{c:.3f}" for c in sorted(set(np.round(minima, 3)))) or "none")
                + "; of saddles: "
                + (", ".join(f"{c:.3f}" for c in sorted(set(np.round(saddles, 3)))) or "none"),
            )
        )
    pooled = [c for r in points.values() for c in r["points"]]
    costs = np.array([c["cost"] for c in pooled])
    index = np.array([c["index"] for c in pooled])
    corr = float(np.corrcoef(costs, index)[0, 1]) if len(pooled) > 2 and index.std() > 0 else None
    rows.append(
        row(
            "correlation of cost and index (share of negative eigenvalues), all widths",
            corr,
            "positive (Dauphin et al. fig. 1)",
            "index 0 is a minimum",
        )
    )
    for label, r in runs.items():
        left = r["epochs_to_leave"]
        rows.append(
            row(
                f"{label}: epochs to leave the plateau; final training cost",
                f"{left if left is not None else f'> {epochs}'}; {r['train_loss'][-1]:.3f}",
                "adaptive methods leave sooner",
                f"plateau left: cost < {PLATEAU} ln 10 = {PLATEAU * math.log(10):.2f}",
            )
        )
    small, big = min(points), max(points)
    inf = float("inf")
    leave = {k: r["epochs_to_leave"] or inf for k, r in runs.items()}
    checks = {
        "most critical points of the largest network are saddles": shares[big] > 0.5,
        "saddles are a larger share with more parameters": shares[big] > shares[small],
        "every minimum found costs less than every saddle of its network": all(separated.values()),
        "Adam leaves the plateau before SGD": leave["Adam (lr 0.001)"] < leave["SGD (lr 0.1)"],
    }
    return rows, checks


def figure(points: dict[str, list], runs: dict[str, Any], out: Path) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    ax = axes[0]
    markers = ["o", "s", "^", "D"]
    for (width, r), marker in zip(points.items(), markers, strict=False):
        found = r["points"]
        ax.scatter(
            [c["cost"] for c in found],
            [c["index"] for c in found],
            marker=marker,
            s=18,
            alpha=0.7,
            label=f"1-{width}-1 ({3 * width + 1} params)",
        )
    ax.axhline(0, color="k", lw=0.6)
    ax.set_xlabel("cost at the critical point (MSE)")
    ax.set_ylabel("index: share of negative eigenvalues")
    ax.set_title("critical points: index 0 = minimum, > 0 = saddle", fontsize=9)
    ax.legend(fontsize=7)
    ax = axes[1]
    for (label, r), color in zip(runs.items(), COLORS, strict=False):
        loss = r["train_loss"]
        ax.plot(range(1, len(loss) + 1), loss, color=color, label=label)
    ax.axhline(PLATEAU * math.log(10), color="k", ls=":", lw=0.8)
    ax.set_xlabel("epoch")
    ax.set_ylabel("training cost")
    ax.set_title("digits, 3 x 32 tanh, init std 0.01: the plateau", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, out / f"{NAME}.png", dpi=70)


def run(out: Path, quick: bool = False) -> LabResult:
    widths = [1, 4] if quick else [1, 2, 4, 8]
    seeds, train_epochs, iterations = (2, 1000, 100) if quick else (3, 2000, 200)
    epochs = 15 if quick else 60
    optimizers = (
        {k: OPTIMIZERS[k] for k in ("SGD (lr 0.1)", "Adam (lr 0.001)")} if quick else OPTIMIZERS
    )
    points = {}
    for w in widths:
        found = critical_points(w, seeds, train_epochs, iterations)
        points[w] = {"points": found, "starts": seeds * len(snapshot_epochs(train_epochs))}
    runs = plateau_runs(epochs, optimizers)
    rows, checks = table(points, runs, epochs)
    figure(points, runs, out)
    return LabResult(
        name=NAME,
        title=TITLE,
        claim=(
            "Where the gradient vanishes, a network's cost is usually at a saddle (some "
            "curvatures negative), not a local minimum, and the minima lie near the lowest "
            "cost; what slows training are plateaus, which plain gradient descent crosses "
            "slowly and RMSprop and Adam leave sooner."
        ),
        source=(
            "Course 2, week 2, 'The problem of local optima' (notes 2.2.10); Dauphin et al., "
            "NIPS 2014, figure 1."
        ),
        setup=(
            f"Critical points: 1-h-1 tanh networks (h in {widths}), 30 points of y = "
            f"sin(1.5 x) + noise, MSE, float64; {seeds} full-batch Adam runs (lr 0.01, "
            f"{train_epochs} epochs) per width snapshotted at 8 log-spaced epochs, from each "
            f"snapshot Levenberg-Marquardt on the gradient (up to {iterations} steps, "
            "|g| < 1e-5); Hessian by "
            "central differences of backpropagated gradients. Plateau: digits, 64-32-32-32-10 "
            f"tanh, init N(0, 0.01^2), batch 64, {epochs} epochs, each optimizer at its usual "
            "learning rate, through deepfit.experiment.run."
        ),
        rows=rows,
        checks=checks,
        data={"critical_points": {str(w): r for w, r in points.items()}, "plateau": runs},
        figure=f"{NAME}.png",
    )

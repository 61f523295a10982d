"""Normalized inputs make the cost rounder and allow a larger learning rate (notes 2.1.9).

Linear regression on two features of very different scales, ``x1`` in [0, 1] and ``x2`` in
[1, 1000] (the notes' example). For the mean squared error
``J(w, b) = (1/m) sum (w.x + b - y)^2`` the Hessian is ``H = (2/m) X~^T X~`` (``X~`` with a
column of ones), the same everywhere: the contours of ``J`` are ellipses whose axes are
its eigenvectors, with lengths in the ratio ``sqrt(lambda_max / lambda_min)``. Full-batch
gradient descent converges for ``alpha < 2 / lambda_max`` and needs about
``lambda_max / lambda_min`` steps; standardizing the features (training statistics) makes
``H`` nearly a multiple of the identity: round contours, a much larger stable learning rate
and few steps.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np

from deepfit.data import Standardizer
from deepfit.lab._common import LabResult, config, prepared, pyplot, row, run_or_none, save_figure

NAME = "normalization"
TITLE = "Normalized inputs: round cost contours and a larger stable learning rate"
COLORS = {"raw": "#d62728", "standardized": "#1f77b4"}


def make_data(m: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``x1 ~ U(0, 1)``, ``x2 ~ U(1, 1000)``, ``y = 2 x1 + 0.003 x2 + 1 + N(0, 0.1^2)``."""
    rng = np.random.default_rng(seed)
    X = np.column_stack([rng.uniform(0, 1, m), rng.uniform(1, 1000, m)])
    y = 2 * X[:, 0] + 0.003 * X[:, 1] + 1 + rng.normal(0, 0.1, m)
    return X, y


def hessian(X: np.ndarray) -> np.ndarray:
    """``H = (2/m) X~^T X~`` of the mean squared error of a linear model (``X~ = [X, 1]``)."""
    Xt = np.column_stack([X, np.ones(len(X))])
    return 2.0 * Xt.T @ Xt / len(X)


def sweep(X: np.ndarray, y: np.ndarray, lrs: np.ndarray, epochs: int) -> list[dict[str, Any]]:
    """Full-batch gradient descent at every learning rate; ``stable`` when every epoch's cost
    is finite and not above the one before (up to rounding, once converged)."""
    data = prepared((X, y), (X, y), 1, task="regression", name="two scales")
    points = []
    for lr in lrs:
        cfg = config(
            [],
            optimizer="sgd",
            lr=float(lr),
            batch_size=len(X),
            epochs=epochs,
            seed=0,
            dtype="float64",
        )
        summary = run_or_none(cfg, data)
        loss = summary["history"]["train_loss"] if summary is not None else []
        done = len(loss) == epochs
        stable = done and all(b <= a * (1 + 1e-9) for a, b in itertools.pairwise(loss))
        points.append(
            {"lr": float(lr), "stable": bool(stable), "final": loss[-1] if done else None}
        )
    return points


def measure(quick: bool) -> dict[str, Any]:
    X, y = make_data(200, 0)
    Z = Standardizer().fit(X).transform(X)
    epochs = 30 if quick else 100
    lrs = 10.0 ** np.arange(-8, 1.01, 0.25)
    result: dict[str, Any] = {"epochs": epochs, "X": X, "Z": Z, "y": y}
    for name, A in (("raw", X), ("standardized", Z)):
        eig = np.linalg.eigvalsh(hessian(A))
        points = sweep(A, y, lrs, epochs)
        stable = [p for p in points if p["stable"]]
        best = min(stable, key=lambda p: p["final"]) if stable else None
        result[name] = {
            "eigenvalues": eig.tolist(),
            "condition": float(eig[-1] / eig[0]),
            "lr_limit": float(2 / eig[-1]),
            "largest_stable_lr": max(p["lr"] for p in stable) if stable else None,
            "best_lr": best["lr"] if best else None,
            "best_final_cost": best["final"] if best else None,
            "sweep": points,
        }
    return result


def table(result: dict[str, Any]) -> tuple[list, dict[str, bool]]:
    raw, std = result["raw"], result["standardized"]
    rows = []
    for name, r in (("raw", raw), ("standardized", std)):
        rows += [
            row(
                f"{name}: Hessian condition number lambda_max / lambda_min",
                r["condition"],
                None,
                "contour axes ratio = its square root",
            ),
            row(
                f"{name}: largest stable lr in the sweep / theory 2 / lambda_max",
                f"{r['largest_stable_lr']:.3g} / {r['lr_limit']:.3g}",
                None,
                "stable: the cost falls at every full-batch step; sweep in quarter decades",
            ),
            row(
                f"{name}: lowest cost after {result['epochs']} steps (at lr {r['best_lr']:.3g})",
                r["best_final_cost"],
                None,
                "noise variance 0.01 is the floor",
            ),
        ]
    checks = {
        "standardizing makes the cost rounder (condition number < 10)": std["condition"] < 10,
        "raw features give an elongated cost (condition number > 1e4)": raw["condition"] > 1e4,
        "standardized inputs allow a learning rate 1000x larger": std["largest_stable_lr"]
        > 1000 * raw["largest_stable_lr"],
        "standardized inputs reach a lower cost in the same steps": std["best_final_cost"]
        < raw["best_final_cost"] / 10,
        "the measured limit agrees with 2 / lambda_max (within a factor 2)": all(
            0.5 < r["largest_stable_lr"] / r["lr_limit"] < 2 for r in (raw, std)
        ),
    }
    return rows, checks


def _contours(ax, A: np.ndarray, y: np.ndarray, title: str) -> None:
    """``J`` over the two weights around the optimum, ``b`` at its optimum for each point,
    the same span on both axes, so that a round bowl looks round."""
    Xt = np.column_stack([A, np.ones(len(A))])
    w_star = np.linalg.lstsq(Xt, y, rcond=None)[0]
    span = 1.5 * np.abs(w_star[:2]).max()
    g1 = w_star[0] + np.linspace(-span, span, 121)
    g2 = w_star[1] + np.linspace(-span, span, 121)
    W1, W2 = np.meshgrid(g1, g2)
    resid = A[:, :1, None] * W1.ravel() + A[:, 1:, None] * W2.ravel() - y[:, None, None]
    resid = resid.reshape(len(A), -1)
    b = -resid.mean(axis=0)
    J = ((resid + b) ** 2).mean(axis=0).reshape(W1.shape)
    ax.contour(W1, W2, np.log10(J), levels=15, cmap="viridis")
    ax.plot(*w_star[:2], "r*", ms=8)
    ax.set_xlabel("w1")
    ax.set_ylabel("w2")
    ax.set_title(title, fontsize=9)


def figure(result: dict[str, Any], out: Path) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    _contours(
        axes[0],
        result["X"],
        result["y"],
        f"raw: log10 J (condition {result['raw']['condition']:.2g})",
    )
    _contours(
        axes[1],
        result["Z"],
        result["y"],
        f"standardized: log10 J (condition {result['standardized']['condition']:.2g})",
    )
    ax = axes[2]
    for name in ("raw", "standardized"):
        pts = result[name]["sweep"]
        ok = [p for p in pts if p["stable"]]
        ax.plot(
            [p["lr"] for p in ok],
            [p["final"] for p in ok],
            "o-",
            ms=3,
            color=COLORS[name],
            label=f"{name} (stable runs)",
        )
        ax.axvline(result[name]["lr_limit"], color=COLORS[name], ls=":", lw=0.8)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("learning rate (dotted: 2 / lambda_max)")
    ax.set_ylabel(f"cost after {result['epochs']} full-batch steps")
    ax.set_title("gradient descent against the learning rate", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, out / f"{NAME}.png", dpi=70)


def run(out: Path, quick: bool = False) -> LabResult:
    result = measure(quick)
    rows, checks = table(result)
    figure(result, out)
    return LabResult(
        name=NAME,
        title=TITLE,
        claim=(
            "With features on very different scales the cost is an elongated bowl and "
            "gradient descent needs a tiny learning rate; normalized inputs make it round, "
            "so a much larger learning rate works and the minimum is reached in few steps."
        ),
        source="Course 2, week 1, 'Normalizing inputs' (notes 2.1.9).",
        setup=(
            "200 points, x1 ~ U(0, 1), x2 ~ U(1, 1000), y = 2 x1 + 0.003 x2 + 1 + noise "
            "(std 0.1); a linear model (no hidden layer), mean squared error, full-batch SGD, "
            f"{result['epochs']} steps, float64, at learning rates 1e-8 to 10, through "
            "deepfit.experiment.run; standardized with deepfit.data.Standardizer."
        ),
        rows=rows,
        checks=checks,
        data={
            "epochs": result["epochs"],
            "raw": result["raw"],
            "standardized": result["standardized"],
        },
        figure=f"{NAME}.png",
    )

"""Hyperparameter search: random versus grid, and coarse-to-fine (Bergstra and Bengio 2012).

Course 2, week 3 ("Tuning process"): do not lay the trials on a grid, sample them at random
(on the right scale: log-uniform for a learning rate), then zoom in on the region of the best
points and sample it more densely (coarse to fine). Bergstra and Bengio 2012 (figure 1): with
two hyperparameters of which only one matters, a 3 x 3 grid tries 3 distinct values of the one
that matters, 9 random trials try 9, so random search finds better points at equal budget.

(a) A synthetic objective over ``(lr, l2)`` that depends on ``log10(lr)`` only (``l2`` is a
nuisance), its optimum drawn anew for each seed: best value found by
:class:`~deepfit.tuning.strategies.GridSearch` (``k x k``), by
:class:`~deepfit.tuning.strategies.RandomSearch` and by
:class:`~deepfit.tuning.strategies.CoarseToFine` at equal budgets, over many seeds
(:func:`~deepfit.tuning.strategies.simulate`). (b) A real tuning problem: ``train.lr`` and
``model.l2`` (both log-uniform) of a small MLP on the 8 x 8 digits, every trial a training run
through :func:`deepfit.experiment.run`, scored by its dev loss; random versus coarse-to-fine at
equal budget over several search seeds, a grid of the same budget beside them.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from deepfit.experiment import prepare
from deepfit.lab._common import LabResult, config, pyplot, row, run_config, save_figure
from deepfit.tuning.space import Space, parse_expression
from deepfit.tuning.strategies import CoarseToFine, GridSearch, RandomSearch, simulate

NAME = "search"
TITLE = "Hyperparameter search: random versus grid, and coarse-to-fine on digits"
COLORS = {"grid": "#7f7f7f", "random": "#1f77b4", "coarse-to-fine": "#d62728"}

#: the searched space, in both parts: lr matters, l2 (in part (a)) does not
SPACE_EXPRESSIONS = (("train.lr", "loguniform(1e-5, 1)"), ("model.l2", "loguniform(1e-6, 10)"))
#: where the synthetic optimum of log10(lr) is drawn (inside the box, away from its ends)
OPTIMUM_RANGE = (-4.5, -0.5)
#: the digits problem's space
DIGITS_EXPRESSIONS = (("train.lr", "loguniform(1e-4, 1)"), ("model.l2", "loguniform(1e-5, 10)"))
ROUNDS, KEEP = 3, 0.25


def make_space(expressions=SPACE_EXPRESSIONS) -> Space:
    return Space([parse_expression(k, e) for k, e in expressions])


def only_lr(optimum: float):
    """The synthetic objective: ``(log10(lr) - optimum)^2``; ``model.l2`` is ignored."""

    def objective(point: dict[str, Any]) -> float:
        return (math.log10(point["train.lr"]) - optimum) ** 2

    return objective


def optima(seeds: int) -> np.ndarray:
    """One optimum of log10(lr) per seed, uniform in :data:`OPTIMUM_RANGE`."""
    return np.random.default_rng(2012).uniform(*OPTIMUM_RANGE, size=seeds)


def strategies(space: Space, budget: int, seed: int) -> dict[str, Any]:
    return {
        "grid": GridSearch(space, budget, seed),
        "random": RandomSearch(space, budget, seed),
        "coarse-to-fine": CoarseToFine(space, budget, seed, rounds=ROUNDS, keep=KEEP),
    }


def synthetic(budgets: list[int], seeds: int) -> dict[str, Any]:
    """Part (a): best value per strategy, budget and seed, and the distinct learning rates."""
    space = make_space()
    centres = optima(seeds)
    best: dict[str, dict[int, list[float]]] = {name: {} for name in COLORS}
    distinct: dict[str, dict[int, float]] = {name: {} for name in COLORS}
    for budget in budgets:
        counts: dict[str, list[int]] = {name: [] for name in COLORS}
        for seed, centre in enumerate(centres):
            for name, strategy in strategies(space, budget, seed).items():
                value, history = simulate(strategy, only_lr(float(centre)))
                best[name].setdefault(budget, []).append(value)
                counts[name].append(len({f.point["train.lr"] for f in history}))
        for name in COLORS:
            distinct[name][budget] = float(np.mean(counts[name]))
    return {"optima": centres, "best": best, "distinct_lr": distinct}


def digits_config(point: dict[str, Any], epochs: int, hidden: list[int]) -> dict[str, Any]:
    return config(
        hidden,
        model={"l2": point["model.l2"]},
        data={"source": "digits"},
        optimizer="adam",
        lr=point["train.lr"],
        batch_size=64,
        epochs=epochs,
        seed=0,
    )


def digits_objective(epochs: int, hidden: list[int]):
    """Part (b): one training run per point through :func:`deepfit.experiment.run` on one
    fixed split of the digits; the value is the dev loss (``inf`` if training diverged).
    Returns ``(objective, trials)``; ``trials`` collects every run's point and result."""
    data = prepare(digits_config({"train.lr": 1e-3, "model.l2": 0.0}, epochs, hidden))
    trials: list[dict[str, Any]] = []

    def objective(point: dict[str, Any]) -> float:
        summary = run_config(digits_config(point, epochs, hidden), data)
        loss = summary["dev"]["loss"]
        value = float(loss) if loss is not None and math.isfinite(loss) else math.inf
        trials.append(
            {
                "lr": point["train.lr"],
                "l2": point["model.l2"],
                "dev_loss": value,
                "dev_accuracy": summary["dev"]["accuracy"],
                "test_accuracy": summary["test"]["accuracy"],
            }
        )
        return value

    sizes = {"train": len(data.train[1]), "dev": len(data.dev[1]), "test": len(data.test[1])}
    return objective, trials, sizes


def tune_digits(budget: int, seeds: int, epochs: int, hidden: list[int]) -> dict[str, Any]:
    space = make_space(DIGITS_EXPRESSIONS)
    objective, trials, sizes = digits_objective(epochs, hidden)
    out: dict[str, Any] = {"sizes": sizes}
    for name in COLORS:
        runs = []
        for seed in range(1 if name == "grid" else seeds):
            start = len(trials)
            strategy = strategies(space, budget, seed)[name]
            _, history = simulate(strategy, objective)
            done = trials[start:]
            for record, finished in zip(done, history, strict=True):
                record["round"] = finished.round
            for record in done:
                for k in ("lr", "l2", "dev_loss", "dev_accuracy", "test_accuracy"):
                    record[k] = _round([record[k]], 5)[0]
            curve = np.minimum.accumulate([t["dev_loss"] for t in done]).tolist()
            best = done[int(np.argmin([t["dev_loss"] for t in done]))]
            runs.append({"seed": seed, "best": best["dev_loss"], "curve": curve, "best_trial": best,
                         "trials": done})  # fmt: skip
        out[name] = runs
    return out


def _round(values, digits: int = 4) -> list[float]:
    """Values to ``digits`` significant digits (keeps the JSON small)."""
    return [float(f"{v:.{digits}g}") for v in values]


def _fmt(values) -> str:
    return "; ".join(f"{v:.4f}" for v in values)


def run(out: Path, quick: bool = False) -> LabResult:
    seeds_a = 200 if quick else 500
    budgets = [4, 9, 16, 25] if quick else [4, 9, 16, 25, 36, 49, 64]
    budget_b, seeds_b = (6, 2) if quick else (16, 20)
    epochs, hidden = (3, [16]) if quick else (20, [32])

    syn = synthetic(budgets, seeds_a)
    B = 16  # the headline budget of part (a): a 4 x 4 grid
    grid16 = np.array(syn["best"]["grid"][B])
    rand16 = np.array(syn["best"]["random"][B])
    c2f16 = np.array(syn["best"]["coarse-to-fine"][B])
    grid9 = np.array(syn["best"]["grid"][9])
    rand9 = np.array(syn["best"]["random"][9])
    wins16 = float(np.mean(rand16 < grid16))
    wins9 = float(np.mean(rand9 < grid9))

    dig = tune_digits(budget_b, seeds_b, epochs, hidden)
    rbest = np.array([r["best"] for r in dig["random"]])
    cbest = np.array([r["best"] for r in dig["coarse-to-fine"]])
    gbest = dig["grid"][0]["best"]
    c2f_wins = int(np.sum(cbest < rbest))
    rand_wins = int(np.sum(rbest < cbest))
    ties = seeds_b - c2f_wins - rand_wins
    c2f_vs_rand16 = float(np.mean(c2f16 < rand16))
    worst = int(np.argmax(cbest - rbest))
    zoomed = [t["lr"] for t in dig["coarse-to-fine"][worst]["trials"] if t["round"] > 0]
    later = (min(zoomed), max(zoomed)) if zoomed else (math.nan, math.nan)
    best_lrs = [r["best_trial"]["lr"] for n in ("random", "coarse-to-fine") for r in dig[n]]
    lr_lo, lr_hi = min(best_lrs), max(best_lrs)

    a_setup = (
        f"{seeds_a} seeds; optimum of log10(lr) uniform in [{OPTIMUM_RANGE[0]}, "
        f"{OPTIMUM_RANGE[1]}], drawn per seed"
    )
    rows = [
        row(
            "(a) 3 x 3 grid vs 9 random trials: distinct lr values tried",
            f"{syn['distinct_lr']['grid'][9]:.0f} vs {syn['distinct_lr']['random'][9]:.0f}",
            "3 vs 9 (fig. 1)",
            "the same geometry: a grid repeats each lr once per l2 level",
        ),
        row(
            "(a) 9 trials: mean best (log10 lr - optimum)^2, grid / random; random better on",
            f"{grid9.mean():.3f} / {rand9.mean():.4f}; {wins9:.0%} of seeds",
            "random finds better points (fig. 1; no number)",
            a_setup + "; the paper draws the picture, we count",
        ),
        row(
            "(a) 4 x 4 grid vs 16 random trials: distinct lr values tried",
            f"{syn['distinct_lr']['grid'][B]:.0f} vs {syn['distinct_lr']['random'][B]:.0f}",
            "k vs k^2 (fig. 1, k = 3)",
            "",
        ),
        row(
            "(a) 16 trials: mean (median) best value, grid / random / coarse-to-fine",
            f"{grid16.mean():.3f} ({np.median(grid16):.3f}) / {rand16.mean():.4f} "
            f"({np.median(rand16):.4f}) / {c2f16.mean():.4f} ({np.median(c2f16):.4f})",
            "random < grid",
            f"{a_setup}; coarse-to-fine: {ROUNDS} rounds, best {KEEP:.0%} define the next box",
        ),
        row(
            "(a) 16 trials: random better than the grid on",
            f"{wins16:.0%} of seeds",
            None,
            "the grid wins only when the optimum happens to sit near one of its 4 lr levels",
        ),
        row(
            "(a) 16 trials: coarse-to-fine better than random on",
            f"{c2f_vs_rand16:.0%} of seeds; 90th percentile of best {np.percentile(c2f16, 90):.3f} "
            f"(random {np.percentile(rand16, 90):.3f})",
            None,
            "the notes' zoom usually pays (median far lower) but its mean is worse: when the "
            "2 best first-round trials lie on one side of the optimum, the next box excludes "
            "it and later rounds cannot leave it",
        ),
        row(
            "(a) mean best, grid / random, at budgets " + ", ".join(map(str, budgets)),
            "; ".join(
                f"{np.mean(syn['best']['grid'][b]):.3g}/{np.mean(syn['best']['random'][b]):.2g}"
                for b in budgets
            ),
            "random's advantage grows with the budget",
            "theory: grid error ~ (range/k)^2 = range^2/n, random ~ (range/n)^2, so the ratio "
            "grows like n (right panel, log-log)",
        ),
        row(
            f"(b) digits, {budget_b} trials: mean best dev loss, random / coarse-to-fine",
            f"{rbest.mean():.4f} / {cbest.mean():.4f} (median {np.median(rbest):.4f} / "
            f"{np.median(cbest):.4f})",
            None,
            "the notes give no number for coarse-to-fine; Bergstra and Bengio do not test it",
        ),
        row(
            f"(b) per search seed (0-{seeds_b - 1}) best dev loss, random",
            _fmt(rbest),
            None,
            "each value: the lowest dev loss among the seed's trials",
        ),
        row(
            f"(b) per search seed (0-{seeds_b - 1}) best dev loss, coarse-to-fine",
            _fmt(cbest),
            None,
            f"round 0 (the first {CoarseToFine(make_space(), budget_b).sizes[0]} trials) "
            "draws the same points as random search with the same seed, so the two differ "
            "only in the later rounds",
        ),
        row(
            "(b) coarse-to-fine better than random on",
            f"{c2f_wins} of {seeds_b} seeds; random better on {rand_wins}"
            + (f"; {ties} ties (both bests are the same first-round trial)" if ties else ""),
            "coarse-to-fine zooms in on the good region (notes)",
            f"random's wins: the zoom went to the wrong place (seed {worst}: rounds 1-2 "
            f"tried lr {later[0]:.1e} to {later[1]:.1e}, random's best has lr "
            f"{dig['random'][worst]['best_trial']['lr']:.1e}), the failure mode of (a); one "
            "fixed split and training seed, so the objective is deterministic",
        ),
        row(
            f"(b) {len(dig['grid'][0]['trials'])}-point grid: best dev loss",
            gbest,
            None,
            "one deterministic grid, for reference; its lr levels: "
            + ", ".join(f"{v:.2g}" for v in sorted({t["lr"] for t in dig["grid"][0]["trials"]}))
            + f" (the best trials of the searches have lr {lr_lo:.1e} to {lr_hi:.1e})",
        ),
        row(
            "(b) best trial's dev / test accuracy, mean over seeds, random / coarse-to-fine",
            "; ".join(
                f"{n} {np.mean([r['best_trial']['dev_accuracy'] for r in dig[n]]):.3f} / "
                f"{np.mean([r['best_trial']['test_accuracy'] for r in dig[n]]):.3f}"
                for n in ("random", "coarse-to-fine")
            ),
            None,
            "selected by dev loss; the test set is only reported",
        ),
    ]
    checks = {
        "(a) 16 trials: grid tries 4 distinct lr values, random 16": syn["distinct_lr"]["grid"][B]
        == 4
        and syn["distinct_lr"]["random"][B] == 16,
        "(a) 16 trials: random's mean best < 1/3 of the grid's": rand16.mean() < grid16.mean() / 3,
        "(a) 16 trials: random better than the grid on > 75% of seeds": wins16 > 0.75,
        "(a) 9 trials: random's median best < the grid's": np.median(rand9) < np.median(grid9),
        "(b) both strategies ran their full budget on digits": all(
            len(r["trials"]) == budget_b for n in ("random", "coarse-to-fine") for r in dig[n]
        ),
    }

    _figure(out, syn, dig, budgets, budget_b, worst)
    data_b = {
        n: [
            {
                "seed": r["seed"],
                "best_dev_loss": r["best"],
                "best_so_far": r["curve"],
                "best_trial": r["best_trial"],
                # one list per field, in trial order (compact JSON)
                "trials": {
                    k: [t[k] for t in r["trials"]] for k in ("lr", "l2", "dev_loss", "round")
                },
            }
            for r in dig[n]
        ]
        for n in COLORS
    }
    return LabResult(
        name=NAME,
        title=TITLE,
        claim=(
            "When only one of two hyperparameters matters, random search at the budget of a "
            "grid tries as many distinct values of it as there are trials (a k x k grid tries "
            "k) and so finds better points (Bergstra and Bengio 2012). Coarse to fine: after a "
            "first random round, sample more densely where the best points are (the notes)."
        ),
        source=(
            "Bergstra and Bengio, 'Random search for hyper-parameter optimization', JMLR 13 "
            "(2012), figure 1 and section 2; course 2, week 3, 'Tuning process' and 'Using an "
            "appropriate scale to pick hyperparameters'."
        ),
        setup=(
            f"(a) lr ~ loguniform(1e-5, 1), l2 ~ loguniform(1e-6, 10), objective "
            f"(log10 lr - c)^2 (l2 ignored), c drawn per seed, {seeds_a} seeds, budgets "
            f"{budgets} (k x k grids), deepfit.tuning's GridSearch / RandomSearch / "
            f"CoarseToFine ({ROUNDS} rounds, keep {KEEP}) through simulate. (b) digits, fixed "
            f"split {dig['sizes']['train']}/{dig['sizes']['dev']}/{dig['sizes']['test']}, "
            f"{hidden} ReLU MLP, Adam, batch 64, {epochs} epochs, training seed 0, no early "
            f"stopping, through deepfit.experiment.run; lr ~ loguniform(1e-4, 1), l2 ~ "
            f"loguniform(1e-5, 10); objective: dev loss; {budget_b} trials per search, search "
            f"seeds 0-{seeds_b - 1}. The paper's figure 1 is a drawing and its experiments "
            "tune other models and data sets, so the published column holds its statements."
        ),
        rows=rows,
        checks=checks,
        data={
            "synthetic": {
                "optima": _round(syn["optima"]),
                "budgets": budgets,
                # per seed at 9 and 16 trials; quartiles and mean at every budget
                "best": {n: {str(b): _round(d[b]) for b in (9, B)} for n, d in syn["best"].items()},
                "summary": {
                    n: {
                        str(b): {
                            "mean": float(np.mean(v)),
                            "quartiles": np.percentile(v, [25, 50, 75]).tolist(),
                        }
                        for b, v in d.items()
                    }
                    for n, d in syn["best"].items()
                },
                "distinct_lr": {
                    n: {str(b): v for b, v in d.items()} for n, d in syn["distinct_lr"].items()
                },
            },
            "digits": data_b,
        },
        figure=f"{NAME}.png",
    )


def _figure(out: Path, syn, dig, budgets, budget_b, seed: int) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(2, 2, figsize=(11, 8))

    # (a) left: the 16 trials of the grid and of one random search, the objective shaded
    ax = axes[0, 0]
    space = make_space()
    centre = float(syn["optima"][0])
    xs = np.logspace(-5, 0, 200)
    ax.axvspan(10 ** (centre - 0.25), 10 ** (centre + 0.25), color="#2ca02c", alpha=0.15,
               label="|log10 lr - c| < 0.25 (good)")  # fmt: skip
    ax.axvline(10**centre, color="#2ca02c", lw=1, ls=":")
    for name, marker in (("grid", "s"), ("random", "o")):
        strategy = strategies(space, 16, 0)[name]
        pts = strategy.preview(16)
        ax.scatter([p["train.lr"] for p in pts], [p["model.l2"] for p in pts], marker=marker,
                   s=28, color=COLORS[name], label=f"{name}: 16 trials, "
                   f"{len({p['train.lr'] for p in pts})} distinct lr")  # fmt: skip
    top = ax.twinx()
    top.plot(xs, (np.log10(xs) - centre) ** 2, color="k", lw=0.8)
    top.set_ylabel("objective (log10 lr - c)^2 (black)")
    top.set_ylim(0, 40)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_ylim(3e-7, 1e5)  # room above the l2 range for the legend
    ax.set_xlabel("lr (matters)")
    ax.set_ylabel("l2 (ignored by the objective)")
    ax.set_title("(a) 16 trials, seed 0: a 4 x 4 grid tries 4 learning rates", fontsize=9)
    ax.legend(fontsize=7, loc="upper left", framealpha=0.9)

    # (a) right: mean best against the budget
    ax = axes[0, 1]
    for name in COLORS:
        mean = [np.mean(syn["best"][name][b]) for b in budgets]
        q1 = [np.percentile(syn["best"][name][b], 25) for b in budgets]
        q3 = [np.percentile(syn["best"][name][b], 75) for b in budgets]
        ax.plot(budgets, mean, "o-", ms=4, color=COLORS[name], label=f"{name} (mean)")
        ax.fill_between(budgets, q1, q3, color=COLORS[name], alpha=0.15)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xticks(budgets)
    ax.set_xticklabels([str(b) for b in budgets])
    ax.minorticks_off()
    ax.set_xlabel("trials (grids: k x k)")
    ax.set_ylabel("best (log10 lr - c)^2 found")
    ax.set_title(f"(a) {len(syn['optima'])} seeds: mean, band = quartiles", fontsize=9)
    ax.legend(fontsize=7)

    # (b) left: best-so-far dev loss against the trial number
    ax = axes[1, 0]
    trials = np.arange(1, budget_b + 1)
    for name in ("random", "coarse-to-fine"):
        curves = np.array([r["curve"] for r in dig[name]])
        for c in curves:
            ax.plot(trials, c, color=COLORS[name], lw=0.6, alpha=0.35)
        ax.plot(trials, np.median(curves, axis=0), color=COLORS[name], lw=2.4,
                label=f"{name}: median of {len(curves)} seeds (thin: each seed)")  # fmt: skip
        ax.plot(trials, curves.mean(axis=0), color=COLORS[name], lw=1.2, ls="--",
                label=f"{name}: mean")  # fmt: skip
    g = dig["grid"][0]
    ax.plot(np.arange(1, len(g["curve"]) + 1), g["curve"], color=COLORS["grid"], lw=1.2,
            ls=":", label="grid (row by row)")  # fmt: skip
    first = CoarseToFine(make_space(DIGITS_EXPRESSIONS), budget_b, rounds=ROUNDS).starts[1:]
    for s in first:
        ax.axvline(s + 0.5, color="k", lw=0.6, ls=":")
    ax.set_yscale("log")
    ax.set_xlabel("trial (dotted: coarse-to-fine's next round starts)")
    ax.set_ylabel("best dev loss so far")
    ax.set_title("(b) digits: tuning lr and l2 of an MLP, equal budget", fontsize=9)
    ax.legend(fontsize=7)

    # (b) right: where one seed's trials went (coarse-to-fine's worst seed against random)
    ax = axes[1, 1]
    gpts = dig["grid"][0]["trials"]
    best_r, best_c = dig["random"][seed]["best"], dig["coarse-to-fine"][seed]["best"]
    ax.scatter([t["lr"] for t in gpts], [t["l2"] for t in gpts], marker="s", s=18,
               facecolors="none", edgecolors=COLORS["grid"], label="grid")  # fmt: skip
    r = dig["random"][seed]["trials"]
    ax.scatter([t["lr"] for t in r], [t["l2"] for t in r], marker="o", s=22,
               color=COLORS["random"], label=f"random, seed {seed}")  # fmt: skip
    c = [t for t in dig["coarse-to-fine"][seed]["trials"] if t["round"] > 0]
    ax.scatter([t["lr"] for t in c], [t["l2"] for t in c], marker="^", s=30,
               c=["#ff9896" if t["round"] == 1 else "#d62728" for t in c],
               label=f"coarse-to-fine, seed {seed}, rounds 1-2 (round 0 = random's first "
               f"{len(r) - len(c)})")  # fmt: skip
    for name, marker in (("random", "*"), ("coarse-to-fine", "*")):
        best = dig[name][seed]["best_trial"]
        ax.scatter([best["lr"]], [best["l2"]], marker=marker, s=220, color=COLORS[name],
                   edgecolors="k", zorder=5,
                   label=f"best of {name}: dev loss {best['dev_loss']:.3f}")  # fmt: skip
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("lr")
    ax.set_ylim(1e-9, 50)  # room below the l2 range for the legend
    ax.set_ylabel("l2 (lambda)")
    verdict = "worse" if best_c > best_r else "not worse"
    ax.set_title(f"(b) seed {seed}, where coarse-to-fine did worst ({verdict} than random):\n"
                 "light / dark triangles = its rounds 1 / 2", fontsize=9)  # fmt: skip
    ax.legend(fontsize=6.5, loc="lower left", framealpha=0.9)
    fig.tight_layout()
    save_figure(fig, out / f"{NAME}.png", dpi=70)

"""Figures of a study: the metric against each hyperparameter, and the rounds.

``tune_params.png``: one panel per hyperparameter, the dev metric of every completed (dots)
and pruned (crosses) trial against its value, on a log axis where the value was sampled on a
log scale (for ``one_minus_loguniform``, the axis is ``1 - x``), coloured by round.
``tune_rounds.png``: the metric per trial in order with the best so far, and each
hyperparameter per trial; coarse-to-fine rounds are coloured and separated, so the box
closing in shows. A conditional key is drawn for the trials where it was active.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from deepfit.errors import DeepfitError
from deepfit.tuning import space as _space

PARAMS_FILE = "tune_params.png"
ROUNDS_FILE = "tune_rounds.png"


def _axis_value(d: _space.Dimension, v: Any) -> Any:
    if isinstance(d, _space.OneMinusLogUniform):
        return 1.0 - v
    if isinstance(d, _space.Choice):
        return d.index(v)
    return v


def _label(d: _space.Dimension) -> str:
    return f"1 - {d.key}" if isinstance(d, _space.OneMinusLogUniform) else d.key


def _collect(trials, space: _space.Space):
    from optuna.trial import TrialState

    rows = []
    for t in sorted(trials, key=lambda t: t.number):
        if t.state not in (TrialState.COMPLETE, TrialState.PRUNED) or t.value is None:
            continue
        if not _space.complete_params(space, t.params):
            continue
        rows.append(
            {
                "number": t.number,
                "round": int(t.user_attrs.get("round", 0)),
                "pruned": t.state == TrialState.PRUNED,
                "value": float(t.value),
                "point": _space.from_optuna(space, t.params),
            }
        )
    return rows


def write_all(out: Path, trials, space: _space.Space, settings) -> list[str]:
    """Write both figures; returns the file names (none without matplotlib or results)."""
    try:
        from deepfit.plots import pyplot

        pyplot()
    except (DeepfitError, ImportError):
        return []
    rows = _collect(trials, space)
    if not rows:
        return []
    params(rows, space, settings.metric, out / PARAMS_FILE)
    rounds(rows, space, settings, out / ROUNDS_FILE)
    return [PARAMS_FILE, ROUNDS_FILE]


def _log_metric(rows) -> bool:
    """A log axis for the metric when it is positive and spans more than a decade."""
    values = [r["value"] for r in rows]
    return min(values) > 0 and max(values) / min(values) > 10


def _colors(rows):
    import matplotlib

    n = max(r["round"] for r in rows) + 1
    cmap = matplotlib.colormaps["viridis"]
    return [cmap(0.15 + 0.7 * r["round"] / max(n - 1, 1)) for r in rows], n


def params(rows, space: _space.Space, metric: str, path: Path) -> Path:
    from matplotlib.ticker import NullFormatter

    from deepfit.plots import pyplot, save_figure

    plt = pyplot()
    n = len(space)
    cols = min(n, 3)
    nrows = -(-n // cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(4.2 * cols, 3.4 * nrows), squeeze=False)
    colors, n_rounds = _colors(rows)
    for i, d in enumerate(space.dimensions):
        ax = axes[i // cols][i % cols]
        for marker, pruned in (("o", False), ("x", True)):
            pick = [j for j, r in enumerate(rows) if r["pruned"] == pruned and d.key in r["point"]]
            if not pick:
                continue
            ax.scatter(
                [_axis_value(d, rows[j]["point"][d.key]) for j in pick],
                [rows[j]["value"] for j in pick],
                c=[colors[j] for j in pick],
                marker=marker,
                s=22,
                alpha=0.85,
                label="pruned (last report)" if pruned else "complete",
            )
        if d.log:
            ax.set_xscale("log")
            ax.xaxis.set_minor_formatter(NullFormatter())
        if isinstance(d, _space.Choice):
            ax.set_xticks(range(len(d.options)))
            ax.set_xticklabels([json.dumps(o) for o in d.options], rotation=30, fontsize=8)
        ax.set_xlabel(_label(d) + (" (log scale)" if d.log else ""))
        ax.set_ylabel(metric)
        if _log_metric(rows):
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
    for j in range(n, nrows * cols):
        axes[j // cols][j % cols].axis("off")
    axes[0][0].legend(fontsize=7)
    title = f"{metric} against each hyperparameter"
    if n_rounds > 1:
        title += f" (colour: round 1 to {n_rounds})"
    fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path)


def rounds(rows, space: _space.Space, settings, path: Path) -> Path:
    from matplotlib.ticker import NullFormatter

    from deepfit.plots import pyplot, save_figure

    plt = pyplot()
    numeric = list(space.dimensions)
    panels = 1 + len(numeric)
    fig, axes = plt.subplots(panels, 1, figsize=(8, 2.2 * panels + 0.6), sharex=True, squeeze=False)
    axes = [a[0] for a in axes]
    colors, n_rounds = _colors(rows)
    numbers = [r["number"] for r in rows]
    values = [r["value"] for r in rows]
    axes[0].scatter(numbers, values, c=colors, s=18)
    best, running = [], None
    for r in rows:
        if not r["pruned"]:
            v = r["value"]
            better = running is None or (v < running if settings.minimize else v > running)
            running = v if better else running
        best.append(running)
    axes[0].step(numbers, best, where="post", color="tab:red", label="best so far")
    axes[0].set_ylabel(settings.metric)
    if _log_metric(rows):
        axes[0].set_yscale("log")
    axes[0].legend(fontsize=7)
    for ax, d in zip(axes[1:], numeric, strict=True):
        have = [j for j, r in enumerate(rows) if d.key in r["point"]]
        ax.scatter(
            [numbers[j] for j in have],
            [_axis_value(d, rows[j]["point"][d.key]) for j in have],
            c=[colors[j] for j in have],
            s=14,
        )
        if d.log:
            ax.set_yscale("log")
            ax.yaxis.set_minor_formatter(NullFormatter())
        if isinstance(d, _space.Choice):
            ax.set_yticks(range(len(d.options)))
            ax.set_yticklabels([json.dumps(o) for o in d.options], fontsize=7)
        ax.set_ylabel(_label(d), fontsize=8)
    if n_rounds > 1:
        starts = {}
        for r in rows:
            starts.setdefault(r["round"], r["number"])
        for rnd, start in starts.items():
            if rnd > 0:
                for ax in axes:
                    ax.axvline(start - 0.5, color="grey", linestyle="--", linewidth=0.8)
    for ax in axes:
        ax.grid(alpha=0.3)
    axes[-1].set_xlabel("trial")
    name = settings.strategy
    fig.suptitle(
        f"{name}: {n_rounds} rounds (dashed lines), the box closing in"
        if n_rounds > 1
        else f"{name}: trials in order"
    )
    fig.tight_layout()
    return save_figure(fig, path)

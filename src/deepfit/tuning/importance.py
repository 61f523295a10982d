"""Hyperparameter importance of a study: which searched keys moved the dev metric.

One function, :func:`importances`, serves ``deepfit tune`` (``importance.json`` and
``importance.png`` in the output directory, :func:`write`) and ``deepfit report`` (its
"Hyperparameter importance" table).
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path
from typing import Any

from deepfit.errors import DeepfitError
from deepfit.io import atomic_write_text
from deepfit.tuning.space import Space, optuna_name

JSON_FILE = "importance.json"
PNG_FILE = "importance.png"


def importances(study, space: Space) -> tuple[dict[str, float], str]:
    """Hyperparameter importances of the completed trials, by deepfit key, and the evaluator
    used: Optuna's PED-ANOVA (Watanabe et al. 2023), or fANOVA (Hutter et al. 2014) when
    PED-ANOVA cannot judge (too few trials).

    PED-ANOVA compares the density of each parameter among the best trials (the top 10% by
    default) with its density among all trials: the importance of ``x_d`` is the Pearson
    divergence ``int (p_top(x_d) / p_all(x_d) - 1)^2 p_all(x_d) dx_d``, normalized to sum 1.

    Conditional keys (sampled in only some trials) are left out by Optuna, which judges the
    parameters every completed trial has; their switches (the keys their conditions read)
    carry their effect.

    Raises DeepfitError with the reason when neither can judge.
    """
    import optuna
    from optuna.importance import (
        FanovaImportanceEvaluator,
        PedAnovaImportanceEvaluator,
        get_param_importances,
    )

    done = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if len(done) < 2:
        raise DeepfitError(f"needs at least 2 completed trials, the study has {len(done)}")
    key = {optuna_name(d): d.key for d in space.dimensions}
    errors = []
    for name, make in (
        ("PED-ANOVA", PedAnovaImportanceEvaluator),
        ("fANOVA", lambda: FanovaImportanceEvaluator(seed=0)),
    ):
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                found = get_param_importances(study, evaluator=make())
        except (ValueError, RuntimeError, ImportError) as exc:
            errors.append(f"{name}: {str(exc).splitlines()[0] if str(exc) else exc}")
            continue
        # too few trials: PED-ANOVA warns and answers equal importances, which mean nothing
        doubts = [
            w for w in caught if not issubclass(w.category, optuna.exceptions.ExperimentalWarning)
        ]
        if doubts:
            errors.append(f"{name}: {str(doubts[0].message).splitlines()[0]}")
            continue
        if found and all(math.isfinite(v) for v in found.values()):
            return {key.get(k, k): float(v) for k, v in found.items()}, name
        errors.append(f"{name}: no finite importance")
    raise DeepfitError("; ".join(errors))


def write(out: Path, study, space: Space, metric: str, *, figure: bool = True) -> list[str]:
    """``importance.json`` (``{"evaluator", "metric", "importances"}``, largest first, or
    ``{"error"}`` saying why there is none) and, with ``figure`` and matplotlib,
    ``importance.png`` (a bar per key). Returns the file names written."""
    try:
        found, evaluator = importances(study, space)
    except DeepfitError as exc:
        atomic_write_text(out / JSON_FILE, json.dumps({"error": str(exc)}, indent=2) + "\n")
        return [JSON_FILE]
    ranked = dict(sorted(found.items(), key=lambda kv: -kv[1]))
    record: dict[str, Any] = {"evaluator": evaluator, "metric": metric, "importances": ranked}
    atomic_write_text(out / JSON_FILE, json.dumps(record, indent=2) + "\n")
    if not figure:
        return [JSON_FILE]
    try:
        from deepfit.plots import pyplot, save_figure

        plt = pyplot()
    except (DeepfitError, ImportError):
        return [JSON_FILE]
    names = list(ranked)[::-1]
    fig, ax = plt.subplots(figsize=(6.5, 0.9 + 0.35 * len(names)))
    ax.barh(names, [ranked[k] for k in names], color="tab:blue")
    ax.set_xlabel(f"importance for {metric} ({evaluator}, sums to 1)")
    ax.grid(axis="x", alpha=0.3)
    fig.suptitle("hyperparameter importance")
    fig.tight_layout()
    save_figure(fig, out / PNG_FILE)
    return [JSON_FILE, PNG_FILE]

"""``deepfit train --data FILE --target COL --budget 5m``: a budgeted search on a table.

The run's resolved config (the table recipe, ``--set`` applied) is the base; the space is the
regularization cocktail of :func:`deepfit.recipes.table_space` for the table's task, searched
by TPE until the budget is spent, with the keys the user fixed (``--set``) left out. The first
trial is the recipe itself (every technique off), so the winner is never worse than the
zero-config run on the dev set. The
output directory is a tune directory (``study.db``, ``trials.csv``, ``best.toml``,
``importance.json``, plots) whose ``best/`` is the winner's run directory, trained again as
the recipe says (``train.refit``: on train + dev for the best number of epochs).
Rerunning the same command resumes the study and its budget (see
:mod:`deepfit.tuning.budget`).

**Small tables are cross-validated.** A table with fewer than :data:`CV_ROWS` rows outside the
test split scores each trial by :data:`CV_FOLDS`-fold cross-validation (``tune.cv = 5``, the
``cv=5`` of scikit-learn's ``GridSearchCV`` / ``RandomizedSearchCV``) instead of one dev split:
at 2000 rows the 15% dev split holds 300, and below that the dev metric of one split is too
noisy to choose among hundreds of trials (on the 344-400-row tables it held 41-60 rows and the
search ended below the recipe, ``bench/tabular_budget.md``); five folds score every one of the
rows, at five trainings per trial, which the small tables can afford. Above it one split
holds enough rows and a trial's cost is what limits the search. ``--set tune.cv=K`` (``1``:
one split) overrides the rule, as ``--set tune.<key>=...`` does any search setting.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from deepfit import config as C
from deepfit.errors import DeepfitError
from deepfit.tuning import space as _space
from deepfit.tuning import study as _study

#: tables with fewer rows than this outside the test split are cross-validated (``tune.cv``)
CV_ROWS = 2000
#: the folds of a cross-validated table search
CV_FOLDS = 5
#: ``[tune]`` keys a user's ``--set tune.<key>=...`` may give a table search (the space and the
#: budget are its own)
USER_TUNE_KEYS = ("cv", "metric", "direction", "seed", "pruning", "pruner", "strategy", "trials")


def auto_cv(rows: int) -> int:
    """The folds of a table search on ``rows`` rows outside the test split: :data:`CV_FOLDS`
    below :data:`CV_ROWS`, else 1 (one dev split)."""
    return CV_FOLDS if rows < CV_ROWS else 1


def _drop(space: dict[str, Any], dotted: str) -> None:
    node = space
    parts = dotted.split(".")
    for part in parts[:-1]:
        node = node.get(part)
        if not isinstance(node, dict):
            return
    node.pop(parts[-1], None)


def without_fixed(
    space: Mapping[str, Any], config: Mapping[str, Any], fixed: Iterable[str]
) -> dict[str, Any]:
    """``space`` (a ``[tune.space]`` table) without the keys in ``fixed`` and without the
    conditional keys that the fixed values switch off for good (e.g. ``train.mixup.alpha`` when
    ``--set train.mixup.kind=none``); a condition the fixed values make always true is dropped,
    leaving the key searched in every trial."""
    table = copy.deepcopy(dict(space))
    for dotted in fixed:
        _drop(table, dotted)
    while True:
        searched = {k for k, _ in C.flatten(table)}
        changed = False
        for key, text in C.flatten(table):
            head, cond = _space.split_condition(key, text)
            if cond is None:
                continue
            condition = _space.parse_condition(key, cond)
            if any(name in searched or _space.is_switch(name) for name in condition.reads):
                continue
            try:
                values = {name: C.get(config, name) for name in condition.reads}
            except C.ConfigError:
                continue
            node = table
            *path, leaf = key.split(".")
            for part in path:
                node = node[part]
            if condition.holds(values):
                node[leaf] = head
            else:
                del node[leaf]
            changed = True
        if not changed:
            return table


def recipe_point(space: _space.Space, config: Mapping[str, Any]) -> dict[str, Any] | None:
    """The point of ``space`` that is the base config itself (every switch off): the search's
    first trial, so it never ends below the recipe on the dev set. None when a base value is
    outside the space."""
    point: dict[str, Any] = {}
    for d in space.dimensions:
        if not space.is_active(d.key, point):
            continue
        value = False if _space.is_switch(d.key) else C.get(config, d.key)
        if isinstance(d, _space.Choice):
            try:
                d.index(value)
            except DeepfitError:
                return None
        elif isinstance(value, bool) or not d.lo <= value <= d.hi:  # type: ignore[attr-defined]
            return None
        point[d.key] = value
    return point


def search_config(
    config: Mapping[str, Any],
    task: str,
    budget: str | float,
    *,
    fixed: Iterable[str] = (),
    trials: int | None = None,
    strategy: str = "tpe",
    pruner: str = "median",
    rows: int | None = None,
) -> dict[str, Any]:
    """The resolved config (with ``[tune]``) of a budgeted search on a table: metric
    ``dev_accuracy`` for classification (label smoothing changes the dev loss, not the
    accuracy: the smoothed loss has a floor, the smoothed target's entropy, 0.045-0.49 for 3
    classes, so a loss search never picks smoothing; with 5 folds on penguins the two metrics
    measured equal, ``bench/tabular_budget.md``), ``dev_loss`` for regression (the same order
    as the dev R^2); ``tune.cv`` by
    :func:`auto_cv` of ``rows`` (the rows outside the test split; None: one split). The
    ``tune.*`` keys in ``fixed`` (the user's ``--set``, among :data:`USER_TUNE_KEYS`) keep the
    config's values."""
    from deepfit.recipes import table_space

    given = config.get("tune") or {}
    raw = {k: copy.deepcopy(v) for k, v in config.items() if k != "tune"}
    raw["tune"] = {
        "strategy": strategy,
        "metric": "dev_accuracy" if task == "classification" else "dev_loss",
        "seed": int(config["train"]["seed"]),
        "trials": trials or _study.UNLIMITED_TRIALS,
        "pruner": pruner,
        "budget": str(budget),
        "space": without_fixed(table_space(task), config, fixed),
    }
    if rows is not None:
        raw["tune"]["cv"] = auto_cv(rows)
    for dotted in fixed:
        section, _, name = dotted.partition(".")
        if section == "tune" and name in USER_TUNE_KEYS and name in given:
            raw["tune"][name] = copy.deepcopy(given[name])
    if int(given.get("cv", 1)) != 1:  # a config file's [tune] cv
        raw["tune"]["cv"] = given["cv"]
    return C.validate(raw)


def search_table(
    config: Mapping[str, Any],
    out: str | Path,
    budget: str | float,
    *,
    fixed: Iterable[str] = (),
    trials: int | None = None,
    workers: int | None = None,
    echo: Callable[[str], None] | None = None,
    plots: bool = True,
    new_study: bool = False,
) -> dict[str, Any]:
    """Search the table recipe's cocktail on ``config``'s table for ``budget`` (``"5m"``) and
    train the winner into ``OUT/best``; returns :func:`deepfit.tuning.study.tune`'s summary
    with ``task`` and ``cv`` (the folds each trial was scored on; 1: one dev split).
    ``fixed``: dotted keys the user set, left out of the search."""
    from deepfit import experiment

    prepared = experiment.prepare(dict(config))
    Xtr = prepared.train[0]  # a table streamed from disk is big: never cross-validated
    rows = int(Xtr.shape[0] + prepared.dev[0].shape[0]) if isinstance(Xtr, np.ndarray) else None
    resolved = search_config(config, prepared.task, budget, fixed=fixed, trials=trials, rows=rows)
    first = recipe_point(_space.parse(resolved), resolved)
    summary = _study.tune(
        resolved,
        out,
        study="table",
        workers=workers,
        echo=echo,
        plots=plots,
        new_study=new_study,
        train_best=True,
        first_points=[first] if first is not None else (),
    )
    summary["task"] = prepared.task
    summary["cv"] = int(resolved["tune"]["cv"])
    return summary

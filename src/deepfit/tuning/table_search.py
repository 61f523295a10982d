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
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from deepfit import config as C
from deepfit.errors import DeepfitError
from deepfit.tuning import space as _space
from deepfit.tuning import study as _study


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
) -> dict[str, Any]:
    """The resolved config (with ``[tune]``) of a budgeted search on a table: metric
    ``dev_accuracy`` for classification (label smoothing changes the dev loss, not the
    accuracy), ``dev_loss`` for regression (the same order as the dev R^2)."""
    from deepfit.recipes import table_space

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
    with ``task``. ``fixed``: dotted keys the user set, left out of the search."""
    from deepfit import experiment

    task = experiment.prepare(dict(config)).task
    resolved = search_config(config, task, budget, fixed=fixed, trials=trials)
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
    summary["task"] = task
    return summary

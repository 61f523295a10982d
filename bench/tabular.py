"""deepfit's zero-config defaults on the seven shared real tables, against scikit-learn's MLP and
HistGradientBoosting, on the same 80/20 splits, in one process.

Contenders (each fitted on the same 80% of the rows, scored on the same 20%):

- ``deepfit``: the zero-config recipe (``deepfit.recipes.TABLE_RECIPE``: exactly what
  ``deepfit train --data FILE --target COL`` runs), trained on the 80% with its own dev split
  for early stopping, from the raw DataFrame (its own column roles, imputation, encoding and
  scaling);
- ``sklearn MLP``: ``MLPClassifier`` / ``MLPRegressor`` with default settings in the standard
  pipeline: median imputation + standard scaling of numbers, most-frequent imputation +
  one-hot encoding of text (unknown categories ignored), the target standardized for
  regression (``TransformedTargetRegressor``);
- ``HGB``: ``HistGradientBoostingClassifier`` / ``Regressor`` with default settings and native
  categorical support (text columns as pandas categories).

Metric: test accuracy (classification) or R^2 (regression); mean over ``--seeds`` seeds (3 by
default), and seconds to fit. Columns no model should see are dropped for every contender
(Bikeshare's ``casual`` and ``registered`` add up to the target; Credit's ``ID``).

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python bench/tabular.py

Options: ``--seeds N``, ``--tables a,b``, ``--set key=value`` (repeatable, a deepfit config
override, to compare recipes), ``--budget 5m`` (deepfit searches its table space for that long
per table and seed, as ``deepfit train --data FILE --target COL --budget 5m`` does, on the same
80% and with the same dev split, then predicts with the winner), ``--contenders deepfit,mlp``
(fit only these; the others' columns read ``-``: for comparing deepfit recipes quickly),
``--out PATH`` (default ``bench/tabular.md``, or ``bench/tabular_budget.md`` with
``--budget``; ``-``: none), ``--winners PATH`` (with ``--budget``: append each search's winner,
trial counts and budget spent to PATH as one JSON line).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer, TransformedTargetRegressor
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.exceptions import ConvergenceWarning
from sklearn.impute import SimpleImputer
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from threadpoolctl import threadpool_info

from deepfit import experiment
from deepfit.data.tables import from_arrays
from deepfit.metrics import accuracy, r2_score
from deepfit.recipes import table_config

HERE = Path(__file__).resolve().parent
TABLES_DIR = HERE.parent.parent / "shared" / "data" / "tables"

#: table -> (target, task, columns nobody may use)
TABLES: dict[str, tuple[str, str, list[str]]] = {
    "diamonds": ("price", "regression", []),
    "Default": ("default", "classification", []),
    "penguins": ("species", "classification", []),
    "Bikeshare": ("bikers", "regression", ["casual", "registered"]),
    "Carseats": ("Sales", "regression", []),
    "Credit": ("Balance", "regression", ["ID"]),
    "mpg": ("hwy", "regression", []),
}


def load(name: str) -> tuple[pd.DataFrame, pd.Series, str]:
    target, task, drop = TABLES[name]
    df = pd.read_csv(TABLES_DIR / f"{name}.csv", skipinitialspace=True)
    df = df.dropna(subset=[target]).drop(columns=drop)
    return df.drop(columns=[target]), df[target], task


def split(X: pd.DataFrame, y: pd.Series, task: str, seed: int):
    strat = y if task == "classification" else None
    return train_test_split(X, y, test_size=0.2, random_state=seed, stratify=strat)


def score(task: str, y_true, y_pred) -> float:
    if task == "classification":
        return accuracy(np.asarray(y_true).astype(str), np.asarray(y_pred).astype(str))
    return r2_score(np.asarray(y_true, dtype=np.float64), np.asarray(y_pred, dtype=np.float64))


def fit_deepfit(Xtr, ytr, Xte, task, seed, overrides):
    frame = Xtr.assign(__target__=ytr.to_numpy())
    config = table_config(
        "in-memory.csv",
        "__target__",
        seed=seed,
        overrides=["data.split=[0.85, 0.15, 0.0]", f"data.task='{task}'", *overrides],
    )
    prepared = experiment.prepare_table_data(config, table=from_arrays(frame))
    summary = experiment.run(config, None, progress=False, write_plots=False, prepared=prepared)
    bundle = summary["bundle"]
    return bundle.predict(from_arrays(Xte)), summary


def fit_deepfit_budget(Xtr, ytr, Xte, task, seed, overrides, budget, winners=""):
    from deepfit import io
    from deepfit.tuning import search_table

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "train.csv"
        Xtr.assign(__target__=ytr.to_numpy()).to_csv(path, index=False)
        fixed = ["data.split=[0.85, 0.15, 0.0]", f"data.task='{task}'"]
        config = table_config(path, "__target__", seed=seed, overrides=[*fixed, *overrides])
        keys = ["data.split", "data.task", *(o.split("=", 1)[0] for o in overrides)]
        summary = search_table(
            config, Path(tmp) / "search", budget, fixed=keys, plots=False, echo=lambda _: None
        )
        bundle = io.load(Path(tmp) / "search" / "best" / "model.npz")
        if winners:  # one JSON line per search: the winner, its trial counts, the budget spent
            record = {k: summary.get(k) for k in ("best", "counted", "pruned", "budget")}
            with open(winners, "a", encoding="utf-8") as fh:
                fh.write(json.dumps({"seed": seed, **record}, default=str) + "\n")
        return bundle.predict(from_arrays(Xte)), {"epochs_run": summary["counted"]}


def sklearn_pipeline(X: pd.DataFrame, model):
    text = [c for c in X.columns if not pd.api.types.is_numeric_dtype(X[c])]
    numbers = [c for c in X.columns if c not in text]
    pre = ColumnTransformer(
        [
            ("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), numbers),
            (
                "cat",
                make_pipeline(
                    SimpleImputer(strategy="most_frequent"),
                    OneHotEncoder(handle_unknown="ignore"),
                ),
                text,
            ),
        ]
    )
    return make_pipeline(pre, model)


def fit_mlp(Xtr, ytr, Xte, task, seed):
    if task == "classification":
        model = sklearn_pipeline(Xtr, MLPClassifier(random_state=seed))
    else:
        model = TransformedTargetRegressor(
            sklearn_pipeline(Xtr, MLPRegressor(random_state=seed)), transformer=StandardScaler()
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(Xtr, ytr)
    return model.predict(Xte)


def fit_hgb(Xtr, ytr, Xte, task, seed):
    def categorical(frame):
        return frame.apply(
            lambda c: c if pd.api.types.is_numeric_dtype(c) else c.astype("category")
        )

    both = categorical(pd.concat([Xtr, Xte]))
    if task == "classification":
        model = HistGradientBoostingClassifier(categorical_features="from_dtype", random_state=seed)
    else:
        model = HistGradientBoostingRegressor(categorical_features="from_dtype", random_state=seed)
    model.fit(both.iloc[: len(Xtr)], ytr)
    return model.predict(both.iloc[len(Xtr) :])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--tables", default=",".join(TABLES))
    parser.add_argument("--set", action="append", default=[], dest="overrides")
    parser.add_argument("--budget", default="")
    parser.add_argument("--contenders", default="deepfit,mlp,hgb")
    parser.add_argument("--out", default="")
    parser.add_argument("--winners", default="", help="--budget: append each winner to this file")
    args = parser.parse_args(argv)
    contenders = [c.strip() for c in args.contenders.split(",") if c.strip()]
    unknown = sorted(set(contenders) - {"deepfit", "mlp", "hgb"})
    if unknown or not contenders:
        parser.error(f"--contenders: choose among deepfit, mlp, hgb (got {args.contenders!r})")
    args.out = args.out or str(HERE / ("tabular_budget.md" if args.budget else "tabular.md"))
    names = [t.strip() for t in args.tables.split(",") if t.strip()]
    load_start = os.getloadavg()[1]
    rows = []
    for name in names:
        X, y, task = load(name)
        results: dict[str, list[tuple[float, float]]] = {"deepfit": [], "mlp": [], "hgb": []}
        epochs = []
        for seed in range(args.seeds):
            Xtr, Xte, ytr, yte = split(X, y, task, seed)
            for key, fit in (("deepfit", None), ("mlp", fit_mlp), ("hgb", fit_hgb)):
                if key not in contenders:
                    continue
                start = time.perf_counter()
                if fit is None and args.budget:
                    pred, summary = fit_deepfit_budget(
                        Xtr, ytr, Xte, task, seed, args.overrides, args.budget, args.winners
                    )
                    epochs.append(summary["epochs_run"])
                elif fit is None:
                    pred, summary = fit_deepfit(Xtr, ytr, Xte, task, seed, args.overrides)
                    epochs.append(summary["epochs_run"])
                else:
                    pred = fit(Xtr, ytr, Xte, task, seed)
                results[key].append((score(task, yte, pred), time.perf_counter() - start))
        nan = float("nan")
        mean = {k: statistics.fmean(s for s, _ in v) if v else nan for k, v in results.items()}
        secs = {k: statistics.fmean(t for _, t in v) if v else nan for k, v in results.items()}
        metric = "accuracy" if task == "classification" else "R^2"

        def cell(x: float, spec: str) -> str:
            return "-" if x != x else format(x, spec)

        row = (
            f"| {name} | {metric} | {cell(mean['deepfit'], '.4f')} | {cell(mean['mlp'], '.4f')} | "
            f"{cell(mean['hgb'], '.4f')} | {cell(mean['deepfit'] - mean['mlp'], '+.4f')} | "
            f"{cell(secs['deepfit'], '.1f')} | {cell(secs['mlp'], '.1f')} | "
            f"{cell(secs['hgb'], '.1f')} | "
            f"{cell(statistics.fmean(epochs) if epochs else nan, '.0f')} |"
        )
        rows.append(row)
        print(row, flush=True)
    blas = ", ".join(
        f"{i.get('internal_api')} {i.get('version')} ({i.get('architecture')}, "
        f"{i.get('num_threads')} threads)"
        for i in threadpool_info()
    )
    header = [
        f"deepfit {'budgeted search' if args.budget else 'defaults'} vs scikit-learn's MLP and "
        f"HistGradientBoosting: {args.seeds} seeds, "
        "80/20 splits, test metric (mean), seconds to fit (mean).",
        f"Overrides: {' '.join(args.overrides) or 'none'}. "
        + (
            f"deepfit: a {args.budget} search per table and seed (last column: trials). "
            if args.budget
            else ""
        )
        + f"Python {platform.python_version()}, "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, 5-minute load "
        f"average {load_start:.1f} at the start and {os.getloadavg()[1]:.1f} at the end (a "
        f"shared machine: seconds are noisy, scores are not); BLAS: {blas}.",
        "",
        "| table | metric | deepfit | sklearn MLP | HGB | deepfit - MLP | s deepfit | s MLP "
        f"| s HGB | {'trials' if args.budget else 'epochs'} |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    text = "\n".join([*header, *rows]) + "\n"
    print(text)
    if args.out != "-":
        Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

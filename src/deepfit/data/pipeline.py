"""The tabular path, from a file (or DataFrame) to training-ready arrays.

read (CSV / Parquet / DataFrame) -> target and weights -> column roles -> subsample -> split
-> fit preprocessing and target encoding on the training split -> transform every split.

Separate dev and test files are read the same way and matched to the training columns *by
name*; their targets are encoded as the training target is (the task comes from the training
data or ``data.task``, never from another file's values).
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from deepfit.data.columns import ColumnRoles, infer_roles
from deepfit.data.preprocess import TablePreprocessor, TargetEncoder, TransformReport
from deepfit.data.split import train_dev_test_split
from deepfit.data.tables import Table, from_arrays, read_table
from deepfit.errors import DataError

MAX_AUTO_CLASSES = 20
#: The scaling ``data.normalize = "auto"`` means for tables (chosen in bench/tabular.md).
DEFAULT_TABLE_SCALING = "standardize"


@dataclass
class TableSplits:
    """Training-ready arrays of a table, and everything fitted to make them."""

    train: tuple[np.ndarray, np.ndarray]
    dev: tuple[np.ndarray, np.ndarray]
    test: tuple[np.ndarray, np.ndarray]
    train_weight: np.ndarray | None
    dev_weight: np.ndarray | None
    task: str
    preprocessor: TablePreprocessor
    target: TargetEncoder
    roles: ColumnRoles
    name: str
    notes: list[str] = field(default_factory=list)
    reports: dict[str, dict[str, Any]] = field(default_factory=dict)


def infer_task(values: np.ndarray) -> str:
    """Classification for text (booleans included) or whole numbers with at most 20 distinct
    values; regression otherwise."""
    if values.dtype.kind != "f":
        return "classification"
    present = values[~np.isnan(values)]
    whole = bool(np.all(present == np.round(present)))
    return (
        "classification" if whole and np.unique(present).size <= MAX_AUTO_CLASSES else "regression"
    )


def _target_column(table: Table, target: str) -> np.ndarray:
    if target not in table:
        close = difflib.get_close_matches(target, table.names, n=1, cutoff=0.0)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise DataError(
            f"{table.source}: no target column {target!r} in the header "
            f"({', '.join(table.names)}){hint} Pass --target <column> (config key data.target)."
        )
    return table[target]


def _missing(values: np.ndarray) -> np.ndarray:
    if values.dtype.kind == "f":
        return np.isnan(values)
    return np.array([v is None for v in values], dtype=bool)


def class_weights(class_weight: Any, names: list[str], counts: np.ndarray) -> np.ndarray:
    """Per-class weights of ``data.class_weight``: ``"balanced"`` gives class ``k`` the weight
    ``n / (K n_k)`` (scikit-learn's rule, ``counts`` the training rows' ``n_k``, a class without
    rows 0); a mapping gives the classes it names their weights (others 1), and names a class
    the target does not have."""
    if class_weight == "balanced":
        n = counts.sum()
        return np.where(counts > 0, n / (len(names) * np.maximum(counts, 1)), 0.0)
    unknown = [k for k in class_weight if k not in names]
    if unknown:
        raise DataError(
            f"config key 'data.class_weight' names class {unknown[0]!r}, which the "
            f"target does not have (classes: {', '.join(names)})"
        )
    return np.array([float(class_weight.get(n, 1.0)) for n in names])


def table_scaling(cfg: Mapping[str, Any]) -> str:
    """The scaler of a table's numbers for ``data.normalize`` (``auto``: the default)."""
    scaling = cfg["normalize"]
    if scaling == "auto":
        return DEFAULT_TABLE_SCALING
    if scaling == "scale":
        raise DataError(
            "config key 'data.normalize' = 'scale' is for pixels; tables use 'standardize', "
            "'robust', 'quantile' or 'none'"
        )
    return scaling


def sample_weights(
    table: Table, weight: str, y_index: np.ndarray | None, class_weight: Any, target: TargetEncoder
) -> np.ndarray | None:
    """Per-row weights: the ``data.weight`` column times the class weight of each row's label.

    ``class_weight = "balanced"`` gives class ``k`` the weight ``n / (K n_k)`` (scikit-learn's
    rule, counted on the rows given); a mapping gives labels their weights (others 1).
    """
    w: np.ndarray | None = None
    if weight:
        if weight not in table:
            raise DataError(f"{table.source}: no weight column {weight!r} (config key data.weight)")
        col = table[weight]
        if col.dtype.kind != "f":
            raise DataError(f"{table.source}: weight column {weight!r} holds text")
        bad = ~np.isfinite(col) | (col < 0)
        if bad.any():
            i = int(np.argmax(bad))
            raise DataError(
                f"{table.source}: row {table.row(i)}, column {weight!r}: weight {col[i]} must be a "
                "finite number >= 0"
            )
        w = col.astype(np.float64)
    if class_weight not in (None, "none") and y_index is not None:
        names = target.class_names or []
        counts = np.bincount(y_index, minlength=len(names)).astype(np.float64)
        cw = class_weights(class_weight, names, counts)[y_index]
        w = cw if w is None else w * cw
    if w is not None and not w.sum() > 0:
        raise DataError(f"{table.source}: every sample weight is zero")
    return w


def load_table(source: Any, cfg: Mapping[str, Any]) -> Table:
    """A file path (read with the config's delimiter and missing tokens) or in-memory data."""
    if isinstance(source, Table):
        return source
    if isinstance(source, str):
        return read_table(source, delimiter=cfg["delimiter"] or None, na_values=cfg["na_values"])
    return from_arrays(source, na_values=cfg["na_values"])


def prepare_table(
    cfg: Mapping[str, Any],
    *,
    seed: int,
    table: Any = None,
    fold: tuple[int, int] | None = None,
) -> TableSplits:
    """Run the tabular path for the ``[data]`` section ``cfg`` (see the module docstring);
    ``fold = (i, k)``: the dev split is cross-validation fold ``i`` of ``k`` of the non-test
    rows, the training split the other folds (:func:`~deepfit.data.split.train_dev_test_split`)."""
    main = load_table(table if table is not None else cfg["path"], cfg)
    target_name = cfg["target"]
    raw_y = _target_column(main, target_name)
    notes: list[str] = []
    holes = _missing(raw_y)
    if holes.all():
        raise DataError(f"{main.source}: the target column {target_name!r} is empty")
    if holes.any():
        rows = np.flatnonzero(holes)[:5] + 1
        notes.append(
            f"{int(holes.sum())} rows without a target value are not used (rows "
            f"{', '.join(map(str, rows))}{', ...' if holes.sum() > 5 else ''})"
        )
        main = main.take(~holes)
        raw_y = main[target_name]
    task = cfg["task"] if cfg["task"] != "auto" else infer_task(raw_y)
    if task == "regression" and raw_y.dtype.kind != "f":
        bad = next(v for v in raw_y if v is not None)
        raise DataError(
            f"{main.source}: column {target_name!r}: non-numeric value {bad!r} in a regression "
            "target (set data.task = 'classification'?)"
        )
    if cfg["class_weight"] not in ("none", None) and task == "regression":
        raise DataError("config key 'data.class_weight' applies to classification only")
    roles = infer_roles(
        main,
        target_name,
        numeric=cfg["numeric"],
        categorical=cfg["categorical"],
        drop=cfg["drop"],
        weight=cfg["weight"] or None,
    )
    notes += roles.warnings
    rng = np.random.default_rng(seed)
    if cfg["max_examples"] and main.n_rows > cfg["max_examples"]:
        keep = np.sort(rng.permutation(main.n_rows)[: cfg["max_examples"]])
        main = main.take(keep)
        raw_y = main[target_name]
    target = TargetEncoder(task)
    if task == "classification":
        target.fit(_labels(raw_y), where=f"{main.source}: column {target_name!r}")
        y_all = target.encode(_labels(raw_y), where=main.source)
    else:
        y_all = raw_y.astype(np.float64)

    extra = {
        part: load_table(cfg[f"{part}_path"], cfg)
        for part in ("dev", "test")
        if cfg[f"{part}_path"]
    }
    fractions = cfg["split"]
    if fractions != "auto":
        fractions = list(fractions)
        if "dev" in extra:
            fractions = [fractions[0] + fractions[1], 0.0, fractions[2]]
        if "test" in extra:
            fractions = [fractions[0] + fractions[2], fractions[1], 0.0]
    placeholders = {
        part: (np.zeros((t.n_rows, 1)), np.zeros(t.n_rows, dtype=y_all.dtype))
        for part, t in extra.items()
    }
    index = np.arange(main.n_rows)[:, None]
    split = train_dev_test_split(
        index,
        y_all,
        fractions,
        rng=seed,
        dev=placeholders.get("dev"),
        test=placeholders.get("test"),
        fold=fold,
    )
    (i_tr, _), (i_dev, _), (i_te, _) = split
    tables = {"train": main.take(i_tr[:, 0].astype(np.int64))}
    for part, rows in (("dev", i_dev), ("test", i_te)):
        tables[part] = extra[part] if part in extra else main.take(rows[:, 0].astype(np.int64))

    scaling = table_scaling(cfg)
    pre = TablePreprocessor(
        roles, scaling=scaling, max_onehot=cfg["max_onehot"], missing=cfg["missing"]
    ).fit(tables["train"])
    if task == "regression":
        target.fit(tables["train"][target_name], where=f"{main.source}: column {target_name!r}")

    arrays: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    reports: dict[str, dict[str, Any]] = {}
    weights: dict[str, np.ndarray | None] = {"train": None, "dev": None}
    for part, t in tables.items():
        if t.n_rows:
            X, report = pre.transform(t)
            y = encode_target(t, target_name, target)
        else:
            X, report = np.zeros((0, pre.n_features), np.float32), TransformReport()
            y = np.zeros(0, dtype=np.int64 if task == "classification" else np.float32)
        arrays[part] = (X, y)
        reports[part] = report.to_dict()
        if part in weights and t.n_rows:
            weights[part] = sample_weights(
                t,
                cfg["weight"],
                y if task == "classification" else None,
                cfg["class_weight"] if task == "classification" else "none",
                target,
            )
    return TableSplits(
        train=arrays["train"],
        dev=arrays["dev"],
        test=arrays["test"],
        train_weight=weights["train"],
        dev_weight=weights["dev"],
        task=task,
        preprocessor=pre,
        target=target,
        roles=roles,
        name=Path(main.source).name.split(".")[0],
        notes=notes,
        reports=reports,
    )


def _labels(values: np.ndarray) -> np.ndarray:
    """Class labels as objects: numbers as floats (3.0 and 3 are one label), text as text."""
    return values.astype(object)


def encode_target(table: Table, target_name: str, target: TargetEncoder) -> np.ndarray:
    """The target column of ``table`` encoded as in training: class indices or scaled values.

    The task is the encoder's (the model's), never a guess from this file's values.
    """
    values = _target_column(table, target_name)
    where = f"{table.source}: column {target_name!r}"
    if target.task == "classification":
        holes = _missing(values)
        if holes.any():
            raise DataError(f"{where}: row {table.row(int(np.argmax(holes)))}: missing class label")
        return target.encode(_labels(values), where=where, rows=table)
    if values.dtype.kind != "f":
        bad = next(v for v in values if v is not None)
        raise DataError(f"{where}: non-numeric value {bad!r} in a regression target")
    bad = ~np.isfinite(values)
    if bad.any():
        raise DataError(
            f"{where}: row {table.row(int(np.argmax(bad)))}: missing or non-finite target"
        )
    return target.encode(values, where=where, rows=table)

"""Tabular files: CSV with a header and a target column, and ``.npz`` archives.

Every problem is refused with one line naming the file, the row and the column. Rows are
counted as *data rows* (1-based, the header not counted). CSV files are read by the one table
reader, :func:`deepfit.data.tables.read_table`.

How the task is decided when ``task`` is not given
(:func:`deepfit.data.pipeline.infer_task`): a target with any non-numeric cell is a
classification target; an all-numeric target whose values are all whole numbers with at
most ``MAX_AUTO_CLASSES`` (20) distinct values is a classification target too; anything
else is a regression target.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

import numpy as np

from deepfit.data.dataset import (
    TASKS,
    Dataset,
    check_classes,
    encode_labels,
    label_key,
    sort_class_names,
    to_float32,
)
from deepfit.data.pipeline import infer_task
from deepfit.data.tables import Table, read_table
from deepfit.errors import DataError, DeepfitError


def _decide_task(target: np.ndarray, task: str | None) -> str:
    if task is not None:
        if task not in TASKS:
            raise DataError(f"task must be 'classification' or 'regression', got {task!r}")
        return task
    return infer_task(target)


def _numeric_features(table: Table, names: list[str] | tuple[str, ...]) -> np.ndarray:
    """The named columns as a float64 matrix, refusing text and missing cells by row and column
    (this reader has no imputation: the table path, ``deepfit train --data``, has)."""
    X = np.empty((table.n_rows, len(names)), dtype=np.float64)
    for j, name in enumerate(names):
        values = table[name]
        if values.dtype.kind != "f":
            row = next(i for i, v in enumerate(values) if v is not None and not _is_number(v))
            raise DataError(
                f"{table.source}: row {row + 1}, column {name!r}: non-numeric value "
                f"{values[row]!r} (text columns are categories: use deepfit train --data)"
            )
        holes = np.isnan(values)
        if holes.any():
            raise DataError(
                f"{table.source}: row {int(np.argmax(holes)) + 1}, column {name!r}: empty or "
                "missing cell (deepfit train --data imputes missing cells)"
            )
        X[:, j] = values
    return X


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def csv(
    path: str | Path,
    target: str = "target",
    *,
    task: str | None = None,
    delimiter: str | None = None,
    name: str | None = None,
) -> Dataset:
    """Load a CSV file of numeric feature columns and a target column as a :class:`Dataset`.

    The file is read by :func:`deepfit.data.tables.read_table` (the one CSV reader); this
    loader then asks for numbers in every feature column and no missing cell. Tables with
    text categories and empty cells take the table path instead (``deepfit train --data``,
    :mod:`deepfit.data.pipeline`), which encodes and imputes them.

    Parameters
    ----------
    path : str or pathlib.Path
    target : str, optional
        Name of the target column; every other column is a numeric feature.
    task : {"classification", "regression"}, optional
        Override the automatic choice (see the module docstring).
    delimiter : str, optional
        Cell separator; sniffed when not given.
    name : str, optional
        Data set name; by default the file's stem.

    Raises
    ------
    DataError
        One line naming the file, the row and the column.
    """
    table = read_table(path, delimiter=delimiter)
    p = Path(table.source)
    _check_target(table, target)
    features = tuple(n for n in table.names if n != target)
    X = _numeric_features(table, features)
    values = table[target]
    holes = np.isnan(values) if values.dtype.kind == "f" else np.equal(values, None)
    if holes.any():
        raise DataError(
            f"{p}: row {int(np.argmax(holes)) + 1}, column {target!r}: empty target cell"
        )
    chosen = _decide_task(values, task)
    if chosen == "regression":
        if values.dtype.kind != "f":
            row = next(i for i, v in enumerate(values) if not _is_number(v))
            raise DataError(
                f"{p}: row {row + 1}, column {target!r}: non-numeric value {values[row]!r} in "
                "a regression target"
            )
        bad = ~np.isfinite(values)
        if bad.any():
            row = int(np.argmax(bad))
            raise DataError(
                f"{p}: row {row + 1}, column {target!r}: NaN or infinite value {values[row]} "
                "in a regression target"
            )
        y = values.astype(np.float32)
        class_names = None
    else:
        keys = [label_key(v) for v in values.tolist()]
        class_names = sort_class_names(keys)
        check_classes(class_names, str(p), column=target)
        index = {k: i for i, k in enumerate(class_names)}
        y = np.fromiter((index[k] for k in keys), dtype=np.int64, count=len(keys))
    return Dataset(
        X=to_float32(X, f"{p}", features),
        y=y,
        task=chosen,
        name=name or p.name.split(".")[0],
        source=str(p),
        feature_names=features,
        class_names=class_names,
    )


def _check_target(table: Table, target: str) -> None:
    if target not in table:
        close = difflib.get_close_matches(target, table.names, n=1, cutoff=0.0)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise DataError(
            f"{table.source}: no target column {target!r} in the header "
            f"({', '.join(table.names)}){hint} Pass target=<column name> (config key data.target)."
        )
    if len(table.names) < 2:
        raise DataError(
            f"{table.source}: the only column is the target {target!r}; no feature columns"
        )


def npz(path: str | Path, *, task: str | None = None, name: str | None = None) -> Dataset:
    """Load an ``.npz`` archive holding arrays ``X`` and ``y`` (pickles are refused).

    Parameters
    ----------
    path : str or pathlib.Path
        The archive, as written by ``numpy.savez``. ``X`` is ``(n, features)``, or
        ``(n, H, W)`` / ``(n, H, W, C)`` images which are flattened (``image_shape`` is
        recorded). Optional string arrays ``feature_names`` and ``class_names`` are used
        when present.
    task : {"classification", "regression"}, optional
        Override the automatic choice (as for :func:`csv`: strings, or whole numbers with
        at most 20 distinct values, mean classification).
    name : str, optional
        Data set name; by default the file's stem.

    Returns
    -------
    Dataset

    Raises
    ------
    DataError
        Naming the file, array, row and column: missing arrays, object arrays, bad shapes,
        non-numeric ``X``, NaN or infinity, unknown labels, a single class.
    """
    p = Path(path)
    from deepfit.io import npz_names, read_npz

    try:  # sizes checked before decompressing, damaged archives refused in one line
        arrays = read_npz(p, only=("X", "y", "feature_names", "class_names"))
    except DataError:
        raise
    except DeepfitError as exc:
        raise DataError(str(exc)) from None
    for key in ("X", "y"):
        if key not in arrays:
            raise DataError(
                f"{p}: no array {key!r}; the archive holds {', '.join(npz_names(p)) or 'nothing'}"
            )
    X, y = arrays["X"], arrays["y"]
    fnames, cnames = arrays.get("feature_names"), arrays.get("class_names")
    if X.ndim not in (2, 3, 4) or X.shape[0] == 0:
        raise DataError(
            f"{p}: array 'X' has shape {X.shape}; expected (n, features) with "
            "n >= 1, or (n, H, W[, C]) images"
        )
    if not (np.issubdtype(X.dtype, np.number) or X.dtype == np.bool_) or np.issubdtype(
        X.dtype, np.complexfloating
    ):
        raise DataError(f"{p}: array 'X' has dtype {X.dtype}; expected real numbers")
    image_shape = tuple(int(s) for s in X.shape[1:]) if X.ndim > 2 else None
    X = X.reshape(X.shape[0], -1)
    if y.shape != (X.shape[0],):
        raise DataError(
            f"{p}: array 'y' has shape {y.shape} but 'X' has {X.shape[0]} rows; "
            f"expected y of shape ({X.shape[0]},)"
        )
    if fnames is not None:
        feature_names = tuple(str(f) for f in fnames.reshape(-1))
        if len(feature_names) != X.shape[1]:
            raise DataError(
                f"{p}: {len(feature_names)} feature_names for {X.shape[1]} columns of 'X'"
            )
    elif image_shape is not None:
        feature_names = tuple("pixel_" + "_".join(map(str, ix)) for ix in np.ndindex(*image_shape))
    else:
        feature_names = tuple(f"x{j}" for j in range(X.shape[1]))
    Xf = to_float32(X, f"{p}: array 'X'", feature_names)
    y_out, class_names, chosen = _npz_target(p, y, cnames, task)
    return Dataset(
        X=Xf,
        y=y_out,
        task=chosen,
        name=name or p.stem,
        source=str(p),
        feature_names=feature_names,
        class_names=class_names,
        image_shape=image_shape,
    )


def _npz_target(
    p: Path, y: np.ndarray, cnames: np.ndarray | None, task: str | None
) -> tuple[np.ndarray, tuple[str, ...] | None, str]:
    numeric = np.issubdtype(y.dtype, np.number) or y.dtype == np.bool_
    if numeric and np.issubdtype(y.dtype, np.complexfloating):
        raise DataError(f"{p}: array 'y' has dtype {y.dtype}; expected real numbers or labels")
    if numeric and np.issubdtype(y.dtype, np.floating):
        bad = ~np.isfinite(y)
        if bad.any():
            i = int(np.argmax(bad))
            raise DataError(f"{p}: array 'y' row {i + 1}: {y[i]} is NaN or infinite")
    if not numeric and y.dtype.kind not in "US":
        raise DataError(f"{p}: array 'y' has dtype {y.dtype}; expected numbers or strings")
    if task is None:
        if cnames is not None or not numeric or y.dtype == np.bool_:
            task = "classification"
        else:
            task = infer_task(y.astype(np.float64))
    elif task not in TASKS:
        raise DataError(f"task must be 'classification' or 'regression', got {task!r}")
    if task == "regression":
        if not numeric:
            raise DataError(
                f"{p}: array 'y' holds text ({y.dtype}); a regression target must be numeric"
            )
        return y.astype(np.float32), None, task
    if cnames is not None:
        names = tuple(str(c) for c in cnames.reshape(-1))
        if numeric and np.issubdtype(y.dtype, np.integer):
            bad = (y < 0) | (y >= len(names))
            if bad.any():
                i = int(np.argmax(bad))
                raise DataError(
                    f"{p}: array 'y' row {i + 1}: class index {int(y[i])} "
                    f"outside 0..{len(names) - 1} of class_names"
                )
            out = y.astype(np.int64)
        else:
            out = encode_labels(y, names, source=f"{p}: array 'y'")
    else:
        keys = [label_key(v) for v in y.tolist()]
        names = sort_class_names(keys)
        index = {k: i for i, k in enumerate(names)}
        out = np.fromiter((index[k] for k in keys), dtype=np.int64, count=len(keys))
    # the classes present, by name (not their indices: all 1s is class '1', not '0')
    check_classes(tuple(names[i] for i in np.unique(out)), str(p), column="y")
    return out, names, task


def read_features(
    path: str | Path,
    feature_names: list[str] | tuple[str, ...] | None,
    *,
    target: str | None = None,
    delimiter: str | None = None,
) -> tuple[np.ndarray, list[Any] | None]:
    """Read raw feature rows (and the target cells, if that column is present) for a model.

    Columns are matched *by name* to ``feature_names`` (the model's training columns, in
    any order); a missing feature column or an unknown extra column is refused naming it.
    Without ``feature_names`` every column but ``target`` is a feature, in file order.
    Returns ``(X float32, target values or None)``.
    """
    table = read_table(path, delimiter=delimiter)
    p = table.source
    has_target = target is not None and target in table
    if feature_names is None:
        names = [n for n in table.names if n != target]
    else:
        missing = [f for f in feature_names if f not in table]
        if missing:
            raise DataError(
                f"{p}: no column {missing[0]!r} in the header; the model was trained on "
                f"{', '.join(feature_names)}"
            )
        extra = [n for n in table.names if n not in feature_names and n != target]
        if extra:
            raise DataError(f"{p}: column {extra[0]!r} was not among the model's training features")
        names = list(feature_names)
    X = to_float32(_numeric_features(table, names), p, names)
    return X, (table[target].tolist() if has_target else None)

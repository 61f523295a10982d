"""Tabular files: CSV with a header and a target column, and ``.npz`` archives.

Every problem is refused with one line naming the file, the row and the column. Rows are
counted as *data rows* (1-based, the header not counted) and the physical *line* of the
file is given too. Nothing is silently dropped; only completely blank lines, which hold no
data, are skipped.

How the task is decided when ``task`` is not given: a target with any non-numeric cell is a
classification target; an all-numeric target whose values are all whole numbers with at
most ``MAX_AUTO_CLASSES`` (20) distinct values is a classification target too; anything
else is a regression target.
"""

from __future__ import annotations

import csv as _csv
import difflib
import math
from collections.abc import Iterator
from pathlib import Path

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
from deepfit.errors import DataError, DeepfitError

MAX_AUTO_CLASSES = 20


def _parse_number(cell: str) -> float | None:
    try:
        return float(cell)
    except ValueError:
        return None


def _decide_task(values: list[float | None], task: str | None) -> str:
    if task is not None:
        if task not in TASKS:
            raise DataError(f"task must be 'classification' or 'regression', got {task!r}")
        return task
    if any(v is None for v in values):
        return "classification"
    numbers = [v for v in values if v is not None]
    if (
        all(math.isfinite(v) and v == int(v) for v in numbers)
        and len(set(numbers)) <= MAX_AUTO_CLASSES
    ):
        return "classification"
    return "regression"


def _read_csv(p: Path, delimiter: str) -> Iterator[tuple[str, int, list[str]]]:
    """Yield ``("header", line, cells)`` once, then ``(where, line, cells)`` for every data row.

    ``where`` is ``"<file>: row N (line L)"`` for error messages. Completely blank lines are
    skipped; an empty file, a ragged row, malformed CSV and non-UTF-8 text are refused with
    one line naming the file (and row).
    """
    try:
        fh = p.open(newline="", encoding="utf-8-sig")
    except FileNotFoundError as exc:
        raise DataError(f"{p}: no such file") from exc
    except OSError as exc:
        raise DataError(f"{p}: cannot read the file ({exc.strerror or exc})") from exc
    with fh:
        reader = _csv.reader(fh, delimiter=delimiter)
        try:
            header = next(reader, None)
            while header is not None and not any(c.strip() for c in header):
                header = next(reader, None)
            if header is None:
                raise DataError(
                    f"{p}: the file is empty; expected a header line naming the columns"
                )
            header = [h.strip() for h in header]
            yield "header", reader.line_num, header
            n_row = 0
            for row in reader:
                if not any(c.strip() for c in row):
                    continue
                n_row += 1
                where = f"{p}: row {n_row} (line {reader.line_num})"
                if len(row) != len(header):
                    raise DataError(
                        f"{where}: {len(row)} cells but the header has {len(header)} columns"
                    )
                yield where, reader.line_num, row
        except _csv.Error as exc:
            raise DataError(f"{p}: line {reader.line_num}: malformed CSV ({exc})") from exc
        except UnicodeDecodeError as exc:
            raise DataError(f"{p}: not UTF-8 text ({exc.reason})") from exc


def csv(
    path: str | Path,
    target: str = "target",
    *,
    task: str | None = None,
    delimiter: str = ",",
    name: str | None = None,
) -> Dataset:
    """Load a CSV file with a header row, numeric feature columns and a target column.

    Parameters
    ----------
    path : str or pathlib.Path
        The file (UTF-8, an optional byte-order mark is ignored).
    target : str, optional
        Name of the target column; every other column is a numeric feature.
    task : {"classification", "regression"}, optional
        Override the automatic choice (see the module docstring): strings, or whole numbers
        with at most 20 distinct values, mean classification.
    delimiter : str, optional
        Cell separator.
    name : str, optional
        Data set name; by default the file's stem.

    Returns
    -------
    Dataset
        ``X`` float32; ``y`` int64 class indices with ``class_names`` the sorted distinct
        labels (numerically when all are numbers), or float32 values for regression.

    Raises
    ------
    DataError
        One line naming file, row (data row, 1-based, plus the line number) and column for:
        an empty file, a header-only file, duplicate or empty column names, a missing target
        column (with the closest name suggested), a ragged row, an empty or non-numeric
        cell, NaN or infinity, or a single class.
    """
    p = Path(path)
    records = _read_csv(p, delimiter)
    _, _, header = next(records)
    _check_header(p, header, target)
    t_col = header.index(target)
    f_cols = [j for j in range(len(header)) if j != t_col]
    feature_names = tuple(header[j] for j in f_cols)
    rows: list[list[float]] = []
    cells: list[str] = []
    lines: list[int] = []
    for where, line, row in records:
        rows.append([_feature_value(where, header[j], row[j]) for j in f_cols])
        cell = row[t_col].strip()
        if cell == "":
            raise DataError(f"{where}, column {target!r}: empty target cell")
        cells.append(cell)
        lines.append(line)
    if not rows:
        raise DataError(f"{p}: the file has a header but no data rows")
    X = np.asarray(rows, dtype=np.float64).reshape(len(rows), len(f_cols))
    values = [_parse_number(c) for c in cells]
    chosen = _decide_task(values, task)
    if chosen == "regression":
        for i, v in enumerate(values):
            if v is None or not math.isfinite(v):
                what = "non-numeric value" if v is None else "NaN or infinite value"
                raise DataError(
                    f"{p}: row {i + 1} (line {lines[i]}), column {target!r}: "
                    f"{what} {cells[i]!r} in a regression target"
                )
        y = np.asarray(values, dtype=np.float32)
        class_names = None
    else:
        for i, v in enumerate(values):
            if v is not None and not math.isfinite(v):
                raise DataError(
                    f"{p}: row {i + 1} (line {lines[i]}), column {target!r}: "
                    f"label {cells[i]!r} is NaN or infinite"
                )
        keys = [label_key(c) for c in cells]
        class_names = sort_class_names(keys)
        check_classes(class_names, str(p), column=target)
        index = {k: i for i, k in enumerate(class_names)}
        y = np.fromiter((index[k] for k in keys), dtype=np.int64, count=len(keys))
    Xf = to_float32(X, f"{p}", feature_names)
    return Dataset(
        X=Xf,
        y=y,
        task=chosen,
        name=name or p.stem,
        source=str(p),
        feature_names=feature_names,
        class_names=class_names,
    )


def _check_header(p: Path, header: list[str], target: str) -> None:
    for j, h in enumerate(header):
        if h == "":
            raise DataError(f"{p}: line 1: column {j + 1} of the header has no name")
    seen: set[str] = set()
    for h in header:
        if h in seen:
            raise DataError(f"{p}: line 1: column name {h!r} appears twice in the header")
        seen.add(h)
    if target not in header:
        close = difflib.get_close_matches(target, header, n=1, cutoff=0.0)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise DataError(
            f"{p}: no target column {target!r} in the header "
            f"({', '.join(header)}){hint} Pass target=<column name> (config key data.target)."
        )
    if len(header) < 2:
        raise DataError(f"{p}: the only column is the target {target!r}; no feature columns")


def _feature_value(where: str, column: str, cell: str) -> float:
    text = cell.strip()
    if text == "":
        raise DataError(f"{where}, column {column!r}: empty cell")
    value = _parse_number(text)
    if value is None:
        raise DataError(f"{where}, column {column!r}: non-numeric value {cell!r}")
    if not math.isfinite(value):
        raise DataError(f"{where}, column {column!r}: {cell!r} is NaN or infinite")
    return value


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
            whole = bool(np.all(y == np.round(y)))
            task = (
                "classification"
                if whole and np.unique(y).size <= MAX_AUTO_CLASSES
                else "regression"
            )
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
    delimiter: str = ",",
) -> tuple[np.ndarray, list[str] | None]:
    """Read raw feature rows (and the target cells, if that column is present) for a model.

    Columns are matched *by name* to ``feature_names`` (the model's training columns, in
    any order); a missing feature column or an unknown extra column is refused naming it.
    Without ``feature_names`` every column but ``target`` is a feature, in file order.
    Cells are validated as in :func:`csv`. Returns ``(X float32, target cells or None)``.
    """
    p = Path(path)
    records = _read_csv(p, delimiter)
    _, _, header = next(records)
    t_col = header.index(target) if target and target in header else None
    if feature_names is None:
        f_cols = [j for j in range(len(header)) if j != t_col]
    else:
        missing = [f for f in feature_names if f not in header]
        if missing:
            raise DataError(
                f"{p}: no column {missing[0]!r} in the header; the model was trained on "
                f"{', '.join(feature_names)}"
            )
        extra = [h for j, h in enumerate(header) if h not in feature_names and j != t_col]
        if extra:
            raise DataError(f"{p}: column {extra[0]!r} was not among the model's training features")
        f_cols = [header.index(f) for f in feature_names]
    rows, cells = [], []
    for where, _, row in records:
        rows.append([_feature_value(where, header[j], row[j]) for j in f_cols])
        if t_col is not None:
            cells.append(row[t_col].strip())
    if not rows:
        raise DataError(f"{p}: the file has a header but no data rows")
    X = np.asarray(rows, dtype=np.float64).reshape(len(rows), len(f_cols))
    names = [header[j] for j in f_cols]
    return to_float32(X, str(p), names), (cells if t_col is not None else None)

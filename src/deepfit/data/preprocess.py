"""Preprocessing of a table, fitted on the training split only, travelling with the model.

:class:`TablePreprocessor` turns a :class:`~deepfit.data.tables.Table` into the network's
float32 input matrix, in this column order:

1. numeric columns: missing cells replaced by the training median, then scaled
   (``standardize``, ``robust`` or ``quantile``; see :mod:`deepfit.data.scaling`);
2. one missing-indicator column (1 where the cell was missing) per numeric column that had
   at least ``min_missing`` missing cells in the training split;
3. one-hot columns of each categorical column with at most ``max_onehot`` levels (a missing
   cell is a level of its own when the training split had at least ``min_missing`` of them,
   and is the column's most frequent training level otherwise; a level never seen in
   training gives all zeros);
4. one code column per categorical column with more levels, for an
   :class:`~deepfit.nn.embedding.EmbedColumns` first layer: code ``0`` is "unknown" (a level
   unseen in training), ``1..V`` the training levels.

:class:`TargetEncoder` maps targets: class labels of any type to indices ``0..K-1`` and back
(the original labels, as text), or regression values to ``(y - mean) / std`` and back.

Both save to plain arrays plus JSON (:meth:`state`) and load from them (``from_state``):
a model file stores them without pickle. Columns are matched *by name* at transform time,
in any order; a missing column is an error naming it; extra columns are ignored and listed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from deepfit.data.columns import ColumnRoles
from deepfit.data.dataset import label_key, sort_class_names
from deepfit.data.scaling import make_scaler
from deepfit.data.tables import Table
from deepfit.errors import DataError

MISSING_LEVEL = "<missing>"
SCALINGS = ("standardize", "robust", "quantile", "none")
#: Fewest missing cells of a column in the training split that earn it a missing-indicator
#: column (numbers) or a level of its own (categories). An indicator that is 1 on a handful of
#: rows is a feature the network fits to those rows' labels alone (on penguins, the one or two
#: training rows whose every measurement is missing taught it "indicators on -> Gentoo", and
#: an Adelie row missing the same cells was misclassified); below this count missing cells are
#: imputed like the rest: the median, or the most frequent level. 20 is LightGBM's
#: ``min_data_in_leaf``, the fewest rows it lets a leaf's value be learned from
#: (bench/tabular.md, "How the recipe was chosen").
MIN_MISSING = 20


def embedding_dim(n_levels: int) -> int:
    """Width of a category's embedding: ``min(16, round(1.6 n^0.56))`` (fastai's rule)."""
    return int(max(2, min(16, round(1.6 * n_levels**0.56))))


@dataclass
class TransformReport:
    """What a transform met: missing cells and unseen categories per column, extra columns."""

    missing: dict[str, int] = field(default_factory=dict)
    unseen: dict[str, int] = field(default_factory=dict)
    ignored_columns: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "missing": dict(self.missing),
            "unseen_categories": dict(self.unseen),
            "ignored_columns": list(self.ignored_columns),
        }

    def lines(self) -> list[str]:
        out = []
        if self.missing:
            out.append("missing cells: " + ", ".join(f"{k} {v}" for k, v in self.missing.items()))
        if self.unseen:
            out.append(
                "categories unseen in training (mapped to 'unknown'): "
                + ", ".join(f"{k} {v}" for k, v in self.unseen.items())
            )
        if self.ignored_columns:
            out.append("columns not used by the model: " + ", ".join(self.ignored_columns))
        return out


def _level_codes(values: np.ndarray) -> tuple[list[str | None], np.ndarray]:
    """The distinct cells of a column as text (numbers as :func:`label_key` writes them;
    ``None`` for a missing cell) and, for every row, the index of its cell among them.

    Numbers: one ``np.unique``; text: one hash-table pass (pyarrow's ``dictionary_encode``
    when pyarrow is there, as pandas' ``factorize``), then Python only for distinct values.
    """
    if values.dtype.kind == "f":
        missing = np.isnan(values)
        distinct, inverse = np.unique(values[~missing], return_inverse=True)
        texts: list[str | None] = [label_key(v) for v in distinct.tolist()]
        index = np.full(len(values), len(texts), dtype=np.int64)
        index[~missing] = inverse.reshape(-1)
        if missing.any():
            texts.append(None)
        return texts, index
    try:
        import pyarrow as pa
        import pyarrow.compute as pc
    except ImportError:
        seen: dict[Any, int] = {}
        index = np.fromiter(
            (seen.setdefault(v, len(seen)) for v in values.tolist()), np.int64, len(values)
        )
        return list(seen), index
    encoded = pa.array(values, type=pa.string(), from_pandas=True).dictionary_encode()
    texts = encoded.dictionary.to_pylist()
    index = pc.fill_null(encoded.indices, len(texts)).to_numpy(zero_copy_only=False)
    if encoded.null_count:
        texts.append(None)
    return texts, index.astype(np.int64)


class TablePreprocessor:
    """Impute, encode and scale the feature columns of a table (see the module docstring).

    Parameters
    ----------
    roles : ColumnRoles
        Which columns are numeric and categorical (the rest are not used).
    scaling : {"standardize", "robust", "quantile", "none"}
    max_onehot : int
        Categorical columns with at most this many levels are one-hot encoded; more levels
        get a learned embedding.
    missing : {"impute", "error"}
        ``"error"`` refuses any missing feature cell, naming the column and the first row.
    min_missing : int
        A column needs at least this many missing cells in the training split to get a
        missing indicator (numbers) or a missing level (categories); with fewer they are
        imputed (median; most frequent level). 1: every column that had a missing cell.
    """

    def __init__(
        self,
        roles: ColumnRoles,
        *,
        scaling: str = "standardize",
        max_onehot: int = 16,
        missing: str = "impute",
        min_missing: int = MIN_MISSING,
    ) -> None:
        if scaling not in SCALINGS:
            raise DataError(f"unknown scaling {scaling!r}; choose one of {', '.join(SCALINGS)}")
        if missing not in ("impute", "error"):
            raise DataError(f"data.missing must be 'impute' or 'error', got {missing!r}")
        self.roles = roles
        self.scaling = scaling
        self.max_onehot = int(max_onehot)
        self.missing = missing
        if int(min_missing) < 1:
            raise DataError(f"min_missing must be at least 1, got {min_missing!r}")
        self.min_missing = int(min_missing)
        self.numeric: list[str] = roles.of("numeric")
        self.categorical: list[str] = roles.of("categorical")
        self.medians: np.ndarray = np.zeros(0)
        self.indicators: list[str] = []
        self.vocab: dict[str, list[str]] = {}
        self.modes: dict[str, str] = {}
        self.scaler: Any = None
        self.fitted = False

    # -- fitting -------------------------------------------------------------------------------
    def fit(self, table: Table) -> TablePreprocessor:
        """Learn medians, indicator columns, category levels (and each column's most
        frequent one) and the scaler from ``table`` (the training split)."""
        self._check_missing_allowed(table)
        numeric = self._numeric_block(table, fitting=True)
        self.indicators = [
            n for n in self.numeric if int(np.isnan(table[n]).sum()) >= self.min_missing
        ]
        if self.numeric and self.scaling != "none":
            self.scaler = make_scaler(self.scaling).fit(numeric)
        self.modes = {}
        for name in self.categorical:
            levels, rows = _level_codes(table[name])
            counts = np.bincount(rows, minlength=len(levels))
            present = sort_class_names(v for v in levels if v is not None)
            self.vocab[name] = list(present)
            if present:
                count = dict(zip(levels, counts.tolist(), strict=True))
                self.modes[name] = max(present, key=lambda v: count[v])
            holes = int(counts[levels.index(None)]) if None in levels else 0
            if holes and (holes >= self.min_missing or not present):
                self.vocab[name].append(MISSING_LEVEL)
        self.fitted = True
        return self

    def _numeric_block(self, table: Table, *, fitting: bool) -> np.ndarray:
        X = np.empty((table.n_rows, len(self.numeric)), dtype=np.float64)
        for j, name in enumerate(self.numeric):
            X[:, j] = table[name]
        if fitting:
            with np.errstate(all="ignore"):
                med = np.array([np.nanmedian(c) if (~np.isnan(c)).any() else 0.0 for c in X.T])
            self.medians = med
        bad = np.isinf(X)
        if bad.any():
            r, c = np.argwhere(bad)[0]
            raise DataError(
                f"{table.source}: row {table.row(r)}, column {self.numeric[c]!r}: infinite value "
                f"{X[r, c]}; fix or remove it in the source data"
            )
        holes = np.isnan(X)
        if holes.any():
            X[holes] = np.broadcast_to(self.medians, X.shape)[holes]
        return X

    def _check_missing_allowed(self, table: Table) -> None:
        if self.missing != "error":
            return
        for name in self.numeric + self.categorical:
            col = table[name]
            holes = np.isnan(col) if col.dtype.kind == "f" else np.array([v is None for v in col])
            if holes.any():
                row = table.row(int(np.argmax(holes)))
                raise DataError(
                    f"{table.source}: row {row}, column {name!r}: missing cell "
                    "(data.missing = 'error'; set it to 'impute' to fill missing cells)"
                )

    # -- the layout ----------------------------------------------------------------------------
    @property
    def onehot(self) -> list[str]:
        return [n for n in self.categorical if len(self.vocab[n]) <= self.max_onehot]

    @property
    def embedded(self) -> list[str]:
        return [n for n in self.categorical if len(self.vocab[n]) > self.max_onehot]

    @property
    def feature_names(self) -> list[str]:
        """Names of the output columns."""
        names = list(self.numeric) + [f"{n}__missing" for n in self.indicators]
        for n in self.onehot:
            names += [f"{n}={level}" for level in self.vocab[n]]
        return names + [f"{n}__code" for n in self.embedded]

    @property
    def n_features(self) -> int:
        return len(self.feature_names)

    @property
    def input_columns(self) -> list[str]:
        """The table columns the preprocessor reads."""
        return self.numeric + self.categorical

    def embed_spec(self) -> dict[str, list[int]] | None:
        """Where the code columns are and how wide their embeddings are, for ``mlp(embed=)``."""
        if not self.embedded:
            return None
        start = self.n_features - len(self.embedded)
        cards = [len(self.vocab[n]) + 1 for n in self.embedded]
        return {
            "columns": list(range(start, self.n_features)),
            "cardinalities": cards,
            "dims": [embedding_dim(c) for c in cards],
        }

    # -- transforming --------------------------------------------------------------------------
    def transform(self, table: Table) -> tuple[np.ndarray, TransformReport]:
        """The float32 input matrix of ``table`` and what was missing or unseen in it."""
        if not self.fitted:
            raise DataError("TablePreprocessor.transform called before fit")
        report = TransformReport()
        missing_cols = [n for n in self.input_columns if n not in table]
        if missing_cols:
            raise DataError(
                f"{table.source}: no column {missing_cols[0]!r}; the model was trained on "
                f"{', '.join(self.input_columns)}"
            )
        self._check_missing_allowed(table)
        numeric = self._numeric_block_counted(table, report)
        out = np.empty((table.n_rows, self.n_features), dtype=np.float32)
        j = numeric.shape[1]
        out[:, :j] = self.scaler.transform(numeric) if self.scaler is not None else numeric
        for name in self.indicators:
            out[:, j] = np.isnan(table[name])
            j += 1
        codes = {n: self._codes(table, n, report) for n in self.categorical}
        for n in self.onehot:
            width = len(self.vocab[n])
            block = out[:, j : j + width]
            block[:] = 0.0
            known = codes[n] > 0
            block[np.flatnonzero(known), codes[n][known] - 1] = 1.0
            j += width
        for n in self.embedded:
            out[:, j] = codes[n]
            j += 1
        return out, report

    def _numeric_block_counted(self, table: Table, report: TransformReport) -> np.ndarray:
        for name in self.numeric:
            col = table[name]
            if col.dtype.kind != "f":
                i = next(i for i, v in enumerate(col) if v is not None and not _is_float(v))
                raise DataError(
                    f"{table.source}: row {table.row(i)}, column {name!r}: non-numeric value "
                    f"{col[i]!r} in a numeric column"
                )
            holes = int(np.isnan(col).sum())
            if holes:
                report.missing[name] = holes
        return self._numeric_block(table, fitting=False)

    def _codes(self, table: Table, name: str, report: TransformReport) -> np.ndarray:
        index = {level: k + 1 for k, level in enumerate(self.vocab[name])}
        levels, rows = _level_codes(table[name])
        if None in levels:
            holes = int((rows == levels.index(None)).sum())
            report.missing[name] = report.missing.get(name, 0) + holes
        fill = MISSING_LEVEL if MISSING_LEVEL in index else self.modes.get(name, MISSING_LEVEL)
        of_level = np.array(
            [index.get(fill if v is None else v, 0) for v in levels], dtype=np.int64
        )
        codes = of_level[rows] if len(levels) else np.zeros(len(rows), dtype=np.int64)
        unseen = int((codes == 0).sum())
        if unseen:
            report.unseen[name] = unseen
        return codes

    def ignored(self, table: Table, also: tuple[str, ...] = ()) -> list[str]:
        """Columns of ``table`` the model does not read (besides ``also``)."""
        used = set(self.input_columns) | set(also)
        return [n for n in table.names if n not in used]

    # -- saving --------------------------------------------------------------------------------
    def state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """``(arrays, meta)``: float arrays and a JSON-ready description."""
        arrays = {"medians": self.medians.astype(np.float64)}
        if self.scaler is not None:
            arrays.update({f"scaler.{k}": v for k, v in self.scaler.state_dict().items()})
        meta = {
            "roles": self.roles.to_dict(),
            "numeric": self.numeric,
            "categorical": self.categorical,
            "indicators": self.indicators,
            "vocab": self.vocab,
            "scaling": self.scaling,
            "max_onehot": self.max_onehot,
            "missing": self.missing,
            "min_missing": self.min_missing,
            "modes": self.modes,
        }
        return arrays, meta

    @classmethod
    def from_state(
        cls, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any], where: str = "model"
    ) -> TablePreprocessor:
        """Rebuild a fitted preprocessor from :meth:`state`; refuses damaged state clearly."""
        try:
            roles_meta = meta["roles"]
            roles = ColumnRoles(
                {
                    **{n: "numeric" for n in roles_meta["numeric"]},
                    **{n: "categorical" for n in roles_meta["categorical"]},
                    **{n: "drop" for n in roles_meta["dropped"]},
                },
                dict(roles_meta["dropped"]),
                list(roles_meta["warnings"]),
            )
            pre = cls(
                roles,
                scaling=str(meta["scaling"]),
                max_onehot=int(meta["max_onehot"]),
                missing=str(meta["missing"]),
                min_missing=int(meta.get("min_missing", 1)),
            )
            pre.numeric = [str(n) for n in meta["numeric"]]
            pre.categorical = [str(n) for n in meta["categorical"]]
            pre.indicators = [str(n) for n in meta["indicators"]]
            pre.vocab = {str(k): [str(v) for v in vs] for k, vs in dict(meta["vocab"]).items()}
            pre.modes = {str(k): str(v) for k, v in dict(meta.get("modes", {})).items()}
            pre.medians = np.asarray(arrays["medians"], dtype=np.float64)
            if pre.scaling != "none" and pre.numeric:
                pre.scaler = make_scaler(pre.scaling).load_state_dict(
                    {k.split(".", 1)[1]: v for k, v in arrays.items() if k.startswith("scaler.")}
                )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise DataError(f"{where}: damaged preprocessing state ({exc!r})") from None
        if pre.medians.shape != (len(pre.numeric),) or not np.all(np.isfinite(pre.medians)):
            raise DataError(f"{where}: damaged preprocessing state (medians)")
        if (
            set(pre.categorical) != set(pre.vocab)
            or not set(pre.indicators) <= set(pre.numeric)
            or any(pre.modes[n] not in pre.vocab.get(n, ()) for n in pre.modes)
        ):
            raise DataError(f"{where}: damaged preprocessing state (columns)")
        pre.fitted = True
        return pre


class TargetEncoder:
    """Targets in, targets out: class labels <-> indices, or values <-> standardized values.

    Classification: ``class_names`` are the sorted distinct labels as text (numerically
    sorted when all are numbers); a label of any type (``3``, ``3.0``, ``"3"``, ``" yes"``)
    is known by :func:`~deepfit.data.dataset.label_key`.

    Regression: ``y' = (y - mean) / std`` per output column on the training split (std 1 for
    a constant column), so a target in the thousands trains like one near 1; predictions are
    mapped back with ``y = y' std + mean``.
    """

    def __init__(self, task: str) -> None:
        if task not in ("classification", "regression"):
            raise DataError(f"task must be 'classification' or 'regression', got {task!r}")
        self.task = task
        self.class_names: list[str] | None = None
        self.mean: np.ndarray | None = None
        self.std: np.ndarray | None = None

    def fit(self, y: Any, where: str = "target") -> TargetEncoder:
        if self.task == "classification":
            keys = [label_key(v) for v in _labels(y, where)]
            self.class_names = list(sort_class_names(keys))
            if len(self.class_names) < 2:
                only = self.class_names[0] if self.class_names else "none"
                raise DataError(
                    f"{where}: a single class ({only!r}); classification needs at least 2"
                )
        else:
            Y = _values(y, where)
            self.mean = Y.mean(axis=0)
            std = Y.std(axis=0)
            self.std = np.where(std > 0, std, 1.0)
        return self

    def encode(self, y: Any, where: str = "target", rows: Table | None = None) -> np.ndarray:
        """Class indices (int64), or standardized values (float32, the shape of ``y``).
        ``rows``: the table ``y`` came from, whose row numbers the messages name."""
        row_of = rows.row if rows is not None else (lambda i: i + 1)
        if self.task == "classification":
            index = {k: i for i, k in enumerate(self.class_names)}
            labels = _labels(y, where, row_of)
            out = np.empty(len(labels), dtype=np.int64)
            for row, label in enumerate(labels):
                k = index.get(label_key(label))
                if k is None:
                    known = ", ".join(repr(n) for n in self.class_names[:10])
                    raise DataError(
                        f"{where}: row {row_of(row)}: label {label_key(label)!r} was not seen in "
                        f"training; known classes: {known}"
                    )
                out[row] = k
            return out
        Y = _values(y, where, row_of)
        return ((Y - self.mean) / self.std).astype(np.float32)

    def decode_values(self, z: np.ndarray) -> np.ndarray:
        """Standardized predictions back in the target's units."""
        z = np.asarray(z, dtype=np.float64)
        return z * self.std + self.mean if z.ndim == 1 or z.shape[1] == self.mean.size else z

    def state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        if self.task == "classification":
            return {}, {"task": self.task, "class_names": self.class_names}
        return {"mean": self.mean, "std": self.std}, {"task": self.task}

    @classmethod
    def from_state(
        cls, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any], where: str = "model"
    ) -> TargetEncoder:
        try:
            enc = cls(str(meta["task"]))
            if enc.task == "classification":
                enc.class_names = [str(c) for c in meta["class_names"]]
            else:
                enc.mean = np.asarray(arrays["mean"], dtype=np.float64)
                enc.std = np.asarray(arrays["std"], dtype=np.float64)
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"{where}: damaged target state ({exc!r})") from None
        if enc.task == "regression" and not (
            enc.mean.shape == enc.std.shape
            and np.all(np.isfinite(enc.mean))
            and np.all(np.isfinite(enc.std))
            and np.all(enc.std > 0)
        ):
            raise DataError(f"{where}: damaged target state (mean/std must be finite, std > 0)")
        return enc


def _labels(y: Any, where: str, row_of: Any = lambda i: i + 1) -> list[Any]:
    arr = np.asarray(y, dtype=object)
    if arr.ndim != 1:
        raise DataError(f"{where}: class labels must be 1-D, got shape {arr.shape}")
    for row, v in enumerate(arr.tolist()):
        if v is None or (isinstance(v, float) and not math.isfinite(v)):
            raise DataError(f"{where}: row {row_of(row)}: missing or non-finite class label")
    return arr.tolist()


def _values(y: Any, where: str, row_of: Any = lambda i: i + 1) -> np.ndarray:
    arr = np.asarray(y)
    if arr.dtype.kind not in "iufb":
        try:
            arr = arr.astype(np.float64)
        except (TypeError, ValueError):
            bad = next(v for v in arr.ravel().tolist() if not _is_float(v))
            raise DataError(f"{where}: non-numeric value {bad!r} in a regression target") from None
    arr = arr.astype(np.float64)
    if arr.ndim not in (1, 2) or arr.shape[0] == 0:
        raise DataError(
            f"{where}: regression targets must be (n,) or (n, outputs), got {arr.shape}"
        )
    bad = ~np.isfinite(arr)
    if bad.any():
        row = int(np.argwhere(bad)[0][0])
        raise DataError(f"{where}: row {row_of(row)}: missing, NaN or infinite regression target")
    return arr


def _is_float(v: Any) -> bool:
    try:
        float(v)
    except (TypeError, ValueError):
        return False
    return True

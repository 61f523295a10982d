"""The :class:`Dataset` every loader returns, and the label encoding it relies on.

Classification targets are stored as integer class indices ``0..K-1``; ``class_names[k]``
is the original label (as text) of index ``k``. :func:`encode_labels` maps labels seen at
prediction time back to those indices and refuses labels the model never saw.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from deepfit.errors import DataError

Task = Literal["classification", "regression"]
TASKS: tuple[str, ...] = ("classification", "regression")


@dataclass(frozen=True, eq=False)
class Dataset:
    """Features, targets and the metadata needed to use them.

    Parameters
    ----------
    X : numpy.ndarray
        Features, float32, shape ``(n, features)``. Images are stored as flat rows in
        row-major ``(H, W)`` or ``(H, W, C)`` order; see ``image_shape``.
    y : numpy.ndarray
        Targets, shape ``(n,)``: int64 class indices ``0..K-1`` for classification,
        float32 values for regression.
    task : {"classification", "regression"}
        What ``y`` holds.
    name : str
        Short name of the data set (``"digits"``, a file's stem, ...).
    source : str
        Where it came from: a file path, ``"scikit-learn"``, ``"generated"``.
    feature_names : tuple of str
        One name per column of ``X``.
    class_names : tuple of str or None
        ``class_names[k]`` is the original label of class index ``k``; None for regression.
    image_shape : tuple of int or None
        ``(H, W)`` or ``(H, W, C)`` when the rows are images, None for tabular data.
    """

    X: np.ndarray
    y: np.ndarray
    task: Task
    name: str
    source: str
    feature_names: tuple[str, ...]
    class_names: tuple[str, ...] | None = None
    image_shape: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise DataError(
                f"{self.name}: task must be 'classification' or 'regression', got {self.task!r}"
            )
        if self.X.ndim != 2:
            raise DataError(f"{self.name}: X must be 2-D (n, features), got shape {self.X.shape}")
        if self.y.shape != (self.X.shape[0],):
            raise DataError(
                f"{self.name}: y has shape {self.y.shape} but X has "
                f"{self.X.shape[0]} rows; expected y of shape ({self.X.shape[0]},)"
            )
        if len(self.feature_names) != self.X.shape[1]:
            raise DataError(
                f"{self.name}: {len(self.feature_names)} feature names for "
                f"{self.X.shape[1]} columns"
            )
        if self.task == "classification" and self.class_names is None:
            raise DataError(f"{self.name}: a classification data set needs class_names")
        if self.task == "regression" and self.class_names is not None:
            raise DataError(f"{self.name}: a regression data set has no class_names")
        if self.image_shape is not None and math.prod(self.image_shape) != self.X.shape[1]:
            raise DataError(
                f"{self.name}: image_shape {self.image_shape} does not match "
                f"{self.X.shape[1]} features per row"
            )

    @property
    def n_samples(self) -> int:
        """Number of examples (rows of ``X``)."""
        return int(self.X.shape[0])

    @property
    def n_features(self) -> int:
        """Number of features (columns of ``X``)."""
        return int(self.X.shape[1])

    @property
    def n_classes(self) -> int | None:
        """Number of classes, or None for regression."""
        return None if self.class_names is None else len(self.class_names)

    def __repr__(self) -> str:
        extra = f", classes={self.n_classes}" if self.class_names is not None else ""
        image = f", image_shape={self.image_shape}" if self.image_shape is not None else ""
        return (
            f"Dataset(name={self.name!r}, task={self.task!r}, X={self.X.shape}"
            f"{extra}{image}, source={self.source!r})"
        )


def label_key(label: Any) -> str:
    """Return the text a label is known by: integral numbers lose their ``.0``.

    ``3``, ``3.0``, ``np.int64(3)`` and ``"3"`` all map to ``"3"``; strings are stripped.
    """
    if isinstance(label, bytes):
        label = label.decode()
    if isinstance(label, str):
        text = label.strip()
        if _looks_integral(text):
            whole = text.lstrip("+-").partition(".")[0]
            return str(-int(whole) if text.startswith("-") else int(whole))
        return text
    if isinstance(label, (bool, np.bool_)):
        return str(bool(label))
    if isinstance(label, (int, np.integer)):
        return str(int(label))
    if isinstance(label, (float, np.floating)):
        value = float(label)
        if math.isfinite(value) and value == int(value):
            return str(int(value))
        return repr(value)
    return str(label)


def _looks_integral(text: str) -> bool:
    """True for texts like ``"3"``, ``"+3"``, ``"03"``, ``"3.0"`` or ``"3.00"``."""
    body = text.lstrip("+-")
    whole, _, frac = body.partition(".")
    return whole.isdigit() and (frac == "" or set(frac) == {"0"})


def sort_class_names(keys: Iterable[str]) -> tuple[str, ...]:
    """Sort distinct label texts: numerically when all are numbers, else as text."""
    distinct = set(keys)
    try:
        return tuple(sorted(distinct, key=float))
    except ValueError:
        return tuple(sorted(distinct))


def encode_labels(
    y: Sequence[Any] | np.ndarray, class_names: Sequence[str], *, source: str = "labels"
) -> np.ndarray:
    """Map original labels to the class indices fixed at training time.

    Parameters
    ----------
    y : sequence or numpy.ndarray
        Labels as they appear in the data (strings or numbers), shape ``(n,)``.
    class_names : sequence of str
        The training data set's ``class_names``: index ``k`` is the label of class ``k``.
    source : str, optional
        What to call ``y`` in error messages (a file name, for instance).

    Returns
    -------
    numpy.ndarray
        int64 class indices, shape ``(n,)``.

    Raises
    ------
    DataError
        When a label was not seen at training time; the message names the label and its
        1-based row.
    """
    arr = np.asarray(y)
    if arr.ndim != 1:
        raise DataError(f"{source}: labels must be 1-D, got shape {arr.shape}")
    index = {label_key(name): k for k, name in enumerate(class_names)}
    out = np.empty(arr.shape[0], dtype=np.int64)
    for row, label in enumerate(arr.tolist(), start=1):
        key = label_key(label)
        k = index.get(key)
        if k is None:
            known = ", ".join(repr(n) for n in list(class_names)[:10])
            more = ", ..." if len(class_names) > 10 else ""
            raise DataError(
                f"{source}: row {row}: label {key!r} was not seen at training "
                f"time; known classes: {known}{more}"
            )
        out[row - 1] = k
    return out


def first_nonfinite(X: np.ndarray) -> tuple[int, int] | None:
    """Return ``(row, column)`` (0-based) of the first NaN or infinity in 2-D ``X``, or None."""
    if np.issubdtype(X.dtype, np.floating) or np.issubdtype(X.dtype, np.complexfloating):
        bad = ~np.isfinite(X)
        if bad.any():
            r, c = np.argwhere(bad)[0]
            return int(r), int(c)
    return None


def check_finite(X: np.ndarray, where: str, feature_names: Sequence[str] | None = None) -> None:
    """Refuse NaN or infinite values in 2-D ``X``, naming the 1-based row and the column."""
    hit = first_nonfinite(X)
    if hit is None:
        return
    r, c = hit
    col = repr(feature_names[c]) if feature_names is not None else f"index {c}"
    value = X[r, c]
    kind = "NaN" if np.isnan(value) else "an infinite value"
    raise DataError(
        f"{where}: row {r + 1}, column {col}: {kind} ({value}); fix or remove it in the source data"
    )


def to_float32(X: np.ndarray, where: str, feature_names: Sequence[str] | None = None) -> np.ndarray:
    """Return 2-D ``X`` as float32, refusing NaN, infinity and values float32 cannot hold."""
    check_finite(X, where, feature_names)
    if (X.dtype.kind == "f" and X.dtype.itemsize > 4) or X.dtype.kind in "iu":
        big = np.abs(X.astype(np.float64)) > np.finfo(np.float32).max
        if big.any():
            r, c = np.argwhere(big)[0]
            col = repr(feature_names[c]) if feature_names is not None else f"index {c}"
            raise DataError(
                f"{where}: row {r + 1}, column {col}: {X[r, c]} is too large for float32"
            )
    return X.astype(np.float32)


def check_classes(class_names: Sequence[str], where: str, column: str = "target") -> None:
    """Refuse a classification target with fewer than two classes."""
    if len(class_names) < 2:
        only = repr(class_names[0]) if class_names else "none"
        raise DataError(
            f"{where}: column {column!r} has a single class ({only}); "
            "classification needs at least 2 classes"
        )

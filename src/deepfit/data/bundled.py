"""scikit-learn's bundled real data sets: digits, breast cancer, wine and iris.

These ship inside scikit-learn (no download). scikit-learn is an optional dependency and is
imported only inside these functions.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from deepfit.data.dataset import Dataset
from deepfit.errors import DataError


def _sklearn_datasets() -> Any:
    try:
        from sklearn import datasets
    except ImportError as exc:
        raise DataError(
            "this data set ships with scikit-learn, which is not installed: "
            "pip install 'deepfit[sklearn]'"
        ) from exc
    return datasets


def _from_bunch(name: str, bunch: Any, image_shape: tuple[int, ...] | None = None) -> Dataset:
    X = np.ascontiguousarray(bunch.data, dtype=np.float32)
    y = np.asarray(bunch.target, dtype=np.int64)
    raw_names = getattr(bunch, "feature_names", None)
    feature_names = tuple(str(f) for f in raw_names) if raw_names is not None else ()
    if len(feature_names) != X.shape[1]:
        feature_names = tuple(f"x{j}" for j in range(X.shape[1]))
    return Dataset(
        X=X,
        y=y,
        task="classification",
        name=name,
        source="scikit-learn",
        feature_names=feature_names,
        class_names=tuple(str(c) for c in bunch.target_names),
        image_shape=image_shape,
    )


def digits() -> Dataset:
    """Load the 1,797 8x8 handwritten digits (grey levels 0-16) bundled with scikit-learn.

    Returns
    -------
    Dataset
        ``X`` float32 ``(1797, 64)`` with values 0-16, ``y`` in 0..9, ``class_names``
        ``("0", ..., "9")``, ``image_shape`` ``(8, 8)``.
    """
    return _from_bunch("digits", _sklearn_datasets().load_digits(), image_shape=(8, 8))


def breast_cancer() -> Dataset:
    """Load the Wisconsin breast cancer data (569 x 30; classes malignant, benign).

    Returns
    -------
    Dataset
        ``y`` is 0 for ``"malignant"`` and 1 for ``"benign"`` (scikit-learn's coding).
    """
    return _from_bunch("breast_cancer", _sklearn_datasets().load_breast_cancer())


def wine() -> Dataset:
    """Load the wine recognition data (178 x 13; three cultivars).

    Returns
    -------
    Dataset
        ``class_names`` ``("class_0", "class_1", "class_2")``.
    """
    return _from_bunch("wine", _sklearn_datasets().load_wine())


def iris() -> Dataset:
    """Load Fisher's iris data (150 x 4; setosa, versicolor, virginica).

    Returns
    -------
    Dataset
        ``class_names`` ``("setosa", "versicolor", "virginica")``.
    """
    return _from_bunch("iris", _sklearn_datasets().load_iris())

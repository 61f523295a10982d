"""Fitted table preprocessing and target encoding: values, layout, unseen levels, state."""

from __future__ import annotations

import numpy as np
import pytest

from deepfit.data.columns import infer_roles
from deepfit.data.preprocess import MIN_MISSING, TablePreprocessor, TargetEncoder, embedding_dim
from deepfit.data.tables import from_arrays
from deepfit.errors import DataError


def train_table():
    return from_arrays(
        {
            "x": np.array([1.0, 2.0, np.nan, 4.0]),
            "z": np.array([10.0, 10.0, 20.0, 20.0]),
            "c": np.array(["a", "b", None, "a"], dtype=object),
            "big": np.array(["p", "q", "r", "s"], dtype=object),
            "y": np.array([0, 1, 0, 1]),
        },
        source="train.csv",
    )


def fitted(**kwargs):
    """The preprocessor of :func:`train_table`; ``min_missing=1`` (one missing cell earns an
    indicator and a level) unless given."""
    t = train_table()
    roles = infer_roles(t, "y", categorical=["big"])
    kwargs.setdefault("min_missing", 1)
    return TablePreprocessor(roles, scaling="standardize", **kwargs).fit(t), t


def test_layout_values_and_indicators():
    pre, t = fitted(max_onehot=3)
    assert pre.feature_names == [
        "x", "z", "x__missing", "c=a", "c=b", "c=<missing>", "big__code",
    ]  # fmt: skip
    X, report = pre.transform(t)
    assert X.dtype == np.float32
    x = np.array([1.0, 2.0, 2.0, 4.0])  # the median 2 fills the hole
    np.testing.assert_allclose(X[:, 0], (x - x.mean()) / x.std(), rtol=1e-6)
    np.testing.assert_array_equal(X[:, 2], [0, 0, 1, 0])
    np.testing.assert_array_equal(X[:, 3:6], [[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 0, 0]])
    np.testing.assert_array_equal(X[:, 6], [1, 2, 3, 4])  # codes; 0 is "unknown"
    assert report.missing == {"x": 1, "c": 1}
    assert pre.embed_spec() == {"columns": [6], "cardinalities": [5], "dims": [embedding_dim(5)]}


def test_unseen_levels_missing_cells_and_column_order():
    pre, _ = fitted(max_onehot=3)
    new = from_arrays(
        {
            "big": np.array(["zzz", "p"], dtype=object),
            "y": np.array([0, 0]),
            "c": np.array(["new", None], dtype=object),
            "z": np.array([np.nan, 20.0]),
            "x": np.array([4.0, 1.0]),
            "extra": np.array([1.0, 2.0]),
        },
        source="new.csv",
    )
    X, report = pre.transform(new)
    np.testing.assert_array_equal(X[0, 3:6], [0, 0, 0])  # unseen level: all zeros
    np.testing.assert_array_equal(X[1, 3:6], [0, 0, 1])  # missing: its own level
    np.testing.assert_array_equal(X[:, 6], [0, 1])
    assert report.unseen == {"c": 1, "big": 1}
    assert report.missing == {"z": 1, "c": 1}
    assert pre.ignored(new, also=("y",)) == ["extra"]


def test_missing_column_and_error_mode():
    pre, _ = fitted()
    with pytest.raises(DataError, match=r"new\.csv: no column 'x'; the model was trained on"):
        pre.transform(from_arrays({"z": [1.0]}, source="new.csv"))
    with pytest.raises(DataError, match=r"row 3, column 'x': missing cell \(data.missing"):
        fitted(missing="error")


def test_rare_missing_cells_are_imputed_not_indicated():
    """Below ``min_missing`` missing cells a column gets no indicator and no missing level:
    numbers take the median, categories their most frequent training level."""
    assert MIN_MISSING == 20
    pre, t = fitted(max_onehot=3, min_missing=2)  # x and c have one missing cell each
    assert pre.feature_names == ["x", "z", "c=a", "c=b", "big__code"]
    assert pre.modes == {"c": "a", "big": "p"}  # "a" twice; "big": a tie, the first level
    X, report = pre.transform(t)
    np.testing.assert_array_equal(X[:, 2:4], [[1, 0], [0, 1], [1, 0], [1, 0]])  # row 3: "a"
    x = np.array([1.0, 2.0, 2.0, 4.0])
    np.testing.assert_allclose(X[:, 0], (x - x.mean()) / x.std(), rtol=1e-6)
    assert report.missing == {"x": 1, "c": 1} and report.unseen == {}
    default = TablePreprocessor(infer_roles(t, "y", categorical=["big"]), max_onehot=3).fit(t)
    assert default.feature_names == pre.feature_names


def test_missing_cells_at_the_threshold_get_their_indicator_and_level():
    n = 2 * MIN_MISSING
    x = np.arange(n, dtype=np.float64)
    x[:MIN_MISSING] = np.nan
    c = np.array(["u", "v"] * MIN_MISSING, dtype=object)
    c[: MIN_MISSING - 1] = None  # one short of the threshold
    t = from_arrays({"x": x, "c": c, "y": np.arange(n) % 2})
    pre = TablePreprocessor(infer_roles(t, "y")).fit(t)
    assert pre.feature_names == ["x", "x__missing", "c=u", "c=v"]
    X, _ = pre.transform(t)
    np.testing.assert_array_equal(X[:, 1], np.isnan(x))
    # c's most frequent level is "v" (20 against 1 "u"): its missing cells are "v"
    np.testing.assert_array_equal(X[: MIN_MISSING - 1, 2:4], [[0, 1]] * (MIN_MISSING - 1))


def test_missing_cell_of_a_column_complete_in_training_is_its_most_frequent_level():
    t = from_arrays({"c": np.array(["a", "b", "b"], dtype=object), "y": np.array([0, 1, 0])})
    pre = TablePreprocessor(infer_roles(t, "y")).fit(t)
    new = from_arrays({"c": np.array([None, "zzz"], dtype=object)}, source="new.csv")
    X, report = pre.transform(new)
    np.testing.assert_array_equal(X, [[0, 1], [0, 0]])  # missing: "b"; unseen: all zeros
    assert report.missing == {"c": 1} and report.unseen == {"c": 1}


@pytest.mark.parametrize("scaling", ["standardize", "robust", "quantile", "none"])
def test_state_round_trip(scaling):
    t = train_table()
    pre = TablePreprocessor(infer_roles(t, "y"), scaling=scaling, max_onehot=2).fit(t)
    arrays, meta = pre.state()
    import json

    again = TablePreprocessor.from_state(arrays, json.loads(json.dumps(meta)))
    np.testing.assert_array_equal(again.transform(t)[0], pre.transform(t)[0])
    assert again.modes == pre.modes and again.min_missing == pre.min_missing


def test_state_without_modes_keeps_its_old_meaning():
    """A model file written before ``min_missing`` had an indicator and a level for every
    column with a missing cell; a missing cell of another column was "unknown" (zeros)."""
    pre, t = fitted(max_onehot=3)
    arrays, meta = pre.state()
    old = {k: v for k, v in meta.items() if k not in ("modes", "min_missing")}
    again = TablePreprocessor.from_state(arrays, old)
    assert again.min_missing == 1 and again.modes == {}
    np.testing.assert_array_equal(again.transform(t)[0], pre.transform(t)[0])


def test_damaged_state_is_refused():
    pre, _ = fitted()
    arrays, meta = pre.state()
    with pytest.raises(DataError, match="damaged preprocessing state"):
        TablePreprocessor.from_state(arrays, {**meta, "vocab": {"c": ["a"]}})
    with pytest.raises(DataError, match="damaged preprocessing state"):
        TablePreprocessor.from_state({"medians": np.array([np.nan, 1.0])}, meta)
    with pytest.raises(DataError, match=r"damaged preprocessing state \(columns\)"):
        TablePreprocessor.from_state(arrays, {**meta, "modes": {"c": "nope"}})
    with pytest.raises(DataError, match="min_missing must be at least 1"):
        fitted(min_missing=0)


def test_target_encoder_classes_and_values():
    enc = TargetEncoder("classification").fit(np.array([3, 1.0, "2", 3], dtype=object))
    assert enc.class_names == ["1", "2", "3"]
    np.testing.assert_array_equal(enc.encode(np.array(["3", 1, 2.0], dtype=object)), [2, 0, 1])
    with pytest.raises(DataError, match="label '7' was not seen in training"):
        enc.encode(np.array([7], dtype=object))
    reg = TargetEncoder("regression").fit(np.array([1000.0, 3000.0]))
    np.testing.assert_allclose(reg.encode(np.array([2000.0, 3000.0])), [0.0, 1.0])
    np.testing.assert_allclose(reg.decode_values(np.array([[1.0]])), [[3000.0]])
    with pytest.raises(DataError, match="single class"):
        TargetEncoder("classification").fit(["a", "a"])


def test_errors_on_a_split_name_the_rows_of_the_file():
    """A missing cell found in the training split is named by its row in the file."""
    t = from_arrays({"x": np.array([1.0, 2.0, 3.0, np.nan]), "y": np.arange(4)}, source="f.csv")
    roles = infer_roles(t, "y")
    train = t.take(np.array([0, 3]))
    with pytest.raises(DataError, match=r"f\.csv: row 4, column 'x': missing cell"):
        TablePreprocessor(roles, missing="error").fit(train)

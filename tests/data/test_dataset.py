import numpy as np
import pytest

from deepfit.data import Dataset, encode_labels
from deepfit.data.dataset import check_finite, label_key, sort_class_names
from deepfit.errors import DataError, DeepfitError


def _ds(**kw):
    args = dict(
        X=np.zeros((3, 2), np.float32),
        y=np.array([0, 1, 0]),
        task="classification",
        name="t",
        source="here",
        feature_names=("a", "b"),
        class_names=("x", "y"),
    )
    args.update(kw)
    return Dataset(**args)


def test_dataset_properties_and_repr():
    ds = _ds()
    assert (ds.n_samples, ds.n_features, ds.n_classes) == (3, 2, 2)
    assert "classes=2" in repr(ds)
    assert _ds(task="regression", class_names=None).n_classes is None


@pytest.mark.parametrize(
    "kw, msg",
    [
        (dict(X=np.zeros(3, np.float32)), "2-D"),
        (dict(y=np.zeros(2)), "y has shape"),
        (dict(feature_names=("a",)), "feature names"),
        (dict(class_names=None), "needs class_names"),
        (dict(task="regression"), "no class_names"),
        (dict(task="ranking"), "task"),
        (dict(image_shape=(3, 3)), "image_shape"),
    ],
)
def test_dataset_refuses_inconsistent_fields(kw, msg):
    with pytest.raises(DataError, match=msg):
        _ds(**kw)


def test_data_error_is_a_value_error():
    assert issubclass(DataError, DeepfitError) and issubclass(DataError, ValueError)


@pytest.mark.parametrize(
    "label, key",
    [
        (3, "3"),
        (3.0, "3"),
        (np.int64(3), "3"),
        ("3", "3"),
        (" 3.0 ", "3"),
        ("03", "3"),
        ("-2", "-2"),
        (2.5, "2.5"),
        ("cat", "cat"),
        (" cat ", "cat"),
        (True, "True"),
        (b"x", "x"),
    ],
)
def test_label_key(label, key):
    assert label_key(label) == key


def test_sort_class_names_numeric_then_text():
    assert sort_class_names(["10", "9", "2", "9"]) == ("2", "9", "10")
    assert sort_class_names(["b", "a", "10"]) == ("10", "a", "b")


def test_encode_labels_maps_to_training_indices():
    names = ("cat", "dog", "eel")
    assert encode_labels(["dog", "cat", "eel", "dog"], names).tolist() == [1, 0, 2, 1]
    assert encode_labels(np.array([3, 5]), ("3", "5")).tolist() == [0, 1]
    assert encode_labels(np.array([3.0, 5.0]), ("3", "5")).dtype == np.int64


def test_encode_labels_refuses_unseen_label_naming_it_and_row():
    with pytest.raises(DataError, match=r"row 3: label 'fox' was not seen at training time"):
        encode_labels(["cat", "dog", "fox"], ("cat", "dog"), source="new.csv")


def test_encode_labels_refuses_2d():
    with pytest.raises(DataError, match="1-D"):
        encode_labels(np.zeros((2, 2)), ("0",))


def test_check_finite_names_row_and_column():
    X = np.ones((4, 3))
    X[2, 1] = np.inf
    with pytest.raises(DataError, match=r"f\.npz: row 3, column 'b': an infinite value"):
        check_finite(X, "f.npz", ("a", "b", "c"))
    X[2, 1] = np.nan
    with pytest.raises(DataError, match=r"row 3, column index 1: NaN"):
        check_finite(X, "f.npz")

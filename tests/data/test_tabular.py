import numpy as np
import pytest

from deepfit.data import csv, encode_labels, npz
from deepfit.errors import DataError


def write(tmp_path, text, name="d.csv"):
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def test_csv_string_target_is_classification(tmp_path):
    p = write(tmp_path, "a,b,target\n1,2,dog\n3,4.5,cat\n-1,1e2,dog\n")
    ds = csv(p)
    assert ds.task == "classification" and ds.class_names == ("cat", "dog")
    assert ds.y.tolist() == [1, 0, 1] and ds.y.dtype == np.int64
    np.testing.assert_array_equal(ds.X, np.array([[1, 2], [3, 4.5], [-1, 100]], np.float32))
    assert ds.X.dtype == np.float32 and ds.feature_names == ("a", "b")
    assert ds.name == "d" and ds.source == str(p) and ds.image_shape is None
    assert encode_labels(["cat", "dog"], ds.class_names).tolist() == [0, 1]


def test_csv_target_column_anywhere_and_renamed(tmp_path):
    p = write(tmp_path, "label,x\n1,0.5\n0,0.25\n1,1\n")
    ds = csv(p, target="label")
    assert ds.feature_names == ("x",) and ds.class_names == ("0", "1")
    assert ds.y.tolist() == [1, 0, 1]


def test_csv_integer_classes_sorted_numerically(tmp_path):
    p = write(tmp_path, "x,target\n0,10\n1,9\n2,2\n3,9.0\n")
    ds = csv(p)
    assert ds.class_names == ("2", "9", "10") and ds.y.tolist() == [2, 1, 0, 1]


def test_csv_real_valued_target_is_regression(tmp_path):
    p = write(tmp_path, "x,target\n0,1.5\n1,2.25\n2,-3\n")
    ds = csv(p)
    assert ds.task == "regression" and ds.class_names is None
    assert ds.y.dtype == np.float32 and ds.y.tolist() == [1.5, 2.25, -3.0]


def test_csv_many_integers_is_regression_and_task_overrides(tmp_path):
    rows = "".join(f"{i},{i * 7}\n" for i in range(30))
    p = write(tmp_path, "x,target\n" + rows)
    assert csv(p).task == "regression"
    assert csv(p, task="classification").n_classes == 30
    q = write(tmp_path, "x,target\n0,1\n1,2\n2,1\n", name="q.csv")
    assert csv(q).task == "classification"
    assert csv(q, task="regression").y.tolist() == [1.0, 2.0, 1.0]


def test_csv_bom_quotes_blank_lines_and_delimiter(tmp_path):
    p = write(tmp_path, '\ufeff"a";"target"\n\n1;"x y"\n2;z\n\n', name="semi.csv")
    ds = csv(p, delimiter=";")
    assert ds.class_names == ("x y", "z") and ds.X[:, 0].tolist() == [1.0, 2.0]


@pytest.mark.parametrize(
    "text, pattern",
    [
        ("", r"d\.csv: the file is empty"),
        ("\n\n", r"d\.csv: the file is empty"),
        ("a,target\n", r"d\.csv: the file has a header but no data rows"),
        ("a,target\n1,x\n2,3,4\n", r"d\.csv: row 2 \(line 3\): 3 cells but the header has 2"),
        ("a,target\n1,x\n2\n", r"row 2 \(line 3\): 1 cells"),
        (
            "a,b,target\n1,2,x\n1,oops,y\n",
            r"row 2, column 'b': non-numeric value 'oops'",
        ),
        ("a,b,target\n1,2,x\n1,,y\n", r"row 2, column 'b': empty or missing cell"),
        ("a,b,target\n1,nan,x\n1,2,y\n", r"row 1, column 'b': empty or missing cell"),
        ("a,b,target\n1,2,x\n\n-inf,2,y\n", r"row 2, column 'a': an infinite value"),
        ("a,b,target\n1,2,x\n1,2,\n", r"row 2, column 'target': empty target cell"),
        ("a,b,Target\n1,2,x\n", r"no target column 'target' .*did you mean 'Target'\?"),
        ("a,b,target\n1,2,x\n3,4,x\n", r"column 'target' has a single class \('x'\)"),
        ("a,a,target\n1,2,x\n", r"column name 'a' appears twice"),
        ("a,,target\n1,2,x\n", r"column 2 of the header has no name"),
        ("target\nx\ny\n", r"no feature columns"),
        ("a,b,target\n1,2,x\n1,1e39,y\n", r"row 2, column 'b': 1e\+39 is too large for float32"),
    ],
)
def test_csv_refusals_are_one_line_naming_file_row_column(tmp_path, text, pattern):
    p = write(tmp_path, text)
    with pytest.raises(DataError, match=pattern) as info:
        csv(p)
    assert "\n" not in str(info.value) and str(p) in str(info.value)


def test_csv_regression_refuses_text_and_nonfinite_target(tmp_path):
    p = write(tmp_path, "a,target\n1,2.5\n2,abc\n")
    with pytest.raises(DataError, match=r"row 2, column 'target': non-numeric"):
        csv(p, task="regression")
    q = write(tmp_path, "a,target\n1,2.5\n2,inf\n", name="q.csv")
    with pytest.raises(DataError, match=r"row 2, column 'target': NaN or infinite"):
        csv(q)
    with pytest.raises(DataError, match="task must be"):
        csv(q, task="ranking")


def test_csv_missing_file(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        csv(tmp_path / "missing.csv")


def test_npz_roundtrip_and_class_encoding(tmp_path):
    p = tmp_path / "d.npz"
    X = np.arange(12, dtype=np.float64).reshape(4, 3)
    np.savez(p, X=X, y=np.array(["b", "a", "b", "c"]))
    ds = npz(p)
    assert ds.X.dtype == np.float32 and ds.X.shape == (4, 3)
    assert ds.class_names == ("a", "b", "c") and ds.y.tolist() == [1, 0, 1, 2]
    assert ds.feature_names == ("x0", "x1", "x2")


def test_npz_regression_images_and_names(tmp_path):
    p = tmp_path / "r.npz"
    np.savez(p, X=np.zeros((3, 2, 2)), y=np.array([0.5, 1.5, 2.25]))
    ds = npz(p)
    assert ds.task == "regression" and ds.image_shape == (2, 2) and ds.X.shape == (3, 4)
    q = tmp_path / "n.npz"
    np.savez(
        q,
        X=np.zeros((3, 2)),
        y=np.array([1, 0, 1]),
        feature_names=np.array(["u", "v"]),
        class_names=np.array(["neg", "pos"]),
    )
    ds = npz(q)
    assert ds.feature_names == ("u", "v") and ds.class_names == ("neg", "pos")
    assert ds.y.tolist() == [1, 0, 1]


@pytest.mark.parametrize(
    "arrays, pattern",
    [
        (dict(X=np.zeros((2, 2))), r"no array 'y'"),
        (dict(X=np.zeros(2), y=np.zeros(2)), r"array 'X' has shape \(2,\)"),
        (dict(X=np.zeros((3, 2)), y=np.zeros(2)), r"array 'y' has shape \(2,\)"),
        (
            dict(X=np.array([[1.0, np.nan], [1, 2]]), y=np.array([0, 1])),
            r"array 'X': row 1, column 'x1': NaN",
        ),
        (dict(X=np.zeros((2, 2)), y=np.array([0.5, np.inf])), r"array 'y' row 2: inf"),
        (dict(X=np.zeros((2, 2)), y=np.array([1, 1])), r"single class"),
        (
            dict(X=np.zeros((2, 2)), y=np.array([0, 5]), class_names=np.array(["a", "b"])),
            r"row 2: class index 5 outside 0\.\.1",
        ),
        (dict(X=np.array([["a", "b"]]), y=np.array([0])), r"dtype <U1"),
    ],
)
def test_npz_refusals(tmp_path, arrays, pattern):
    p = tmp_path / "bad.npz"
    np.savez(p, **arrays)
    with pytest.raises(DataError, match=pattern):
        npz(p)


def test_npz_refuses_pickles_and_non_archives(tmp_path):
    p = tmp_path / "obj.npz"
    np.savez(p, X=np.zeros((2, 1)), y=np.array([{"a": 1}, None], dtype=object))
    with pytest.raises(DataError, match="Python objects"):
        npz(p)
    q = tmp_path / "single.npy"
    np.save(q, np.zeros(3))
    with pytest.raises(DataError, match="single array"):
        npz(q)
    r = tmp_path / "junk.npz"
    r.write_bytes(b"not a zip")
    with pytest.raises(DataError, match="not a readable"):
        npz(r)

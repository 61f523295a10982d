"""Reading tables: CSV dialects, Parquet, DataFrames, and one-line errors for broken files."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from deepfit.data.tables import from_arrays, read_table, sniff_delimiter
from deepfit.errors import DataError

pytest.importorskip("pyarrow")

TABLES = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "tables"
SHAPES = {
    "diamonds": (53940, 10),
    "Default": (10000, 4),
    "penguins": (344, 8),
    "Bikeshare": (8645, 15),
    "Carseats": (400, 11),
    "Credit": (400, 12),
    "mpg": (234, 11),
}


def write(tmp_path: Path, text: str, name: str = "t.csv", encoding: str = "utf-8") -> Path:
    p = tmp_path / name
    p.write_bytes(text.encode(encoding))
    return p


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_every_shared_table_reads_with_its_shape(name):
    path = TABLES / f"{name}.csv"
    if not path.exists():
        pytest.skip("shared tables not found")
    table = read_table(path)
    assert (table.n_rows, len(table.names)) == SHAPES[name]


def test_types_missing_cells_and_stray_spaces(tmp_path):
    p = write(tmp_path, 'a,b,c,d\n1,x, Male,TRUE\n2.5,NA, Female,FALSE\n,?,"Male",TRUE\n')
    t = read_table(p)
    np.testing.assert_array_equal(t["a"], [1.0, 2.5, np.nan])
    assert list(t["b"]) == ["x", None, None]
    assert list(t["c"]) == ["Male", "Female", "Male"]
    assert list(t["d"]) == ["TRUE", "FALSE", "TRUE"]  # booleans stay categories, as spelled


def test_numbers_with_stray_spaces_are_numbers(tmp_path):
    t = read_table(write(tmp_path, "a,b\n 1 ,x\n2 ,y\n"))
    np.testing.assert_array_equal(t["a"], [1.0, 2.0])


@pytest.mark.parametrize("sep", [",", ";", "\t", "|"])
def test_delimiter_is_sniffed(tmp_path, sep):
    text = sep.join(["a", "b", "c"]) + "\n" + sep.join(["1", "2,5" if sep != "," else "2", "x"])
    p = write(tmp_path, text + "\n" + sep.join(["3", "4", "y"]) + "\n")
    t = read_table(p)
    assert t.names == ["a", "b", "c"]
    assert list(t["c"]) == ["x", "y"]


def test_explicit_delimiter_wins(tmp_path):
    p = write(tmp_path, "a;b\n1;2\n")
    assert read_table(p, delimiter=",").names == ["a;b"]


def test_bom_crlf_quotes_and_gzip(tmp_path):
    text = '\ufeff"name","note"\r\n"a","x, y"\r\n"b","say ""hi"""\r\n'
    p = tmp_path / "t.csv.gz"
    p.write_bytes(gzip.compress(text.encode("utf-8")))
    t = read_table(p)
    assert t.names == ["name", "note"]
    assert list(t["note"]) == ["x, y", 'say "hi"']


def test_tilde_is_expanded(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    write(tmp_path, "a,b\n1,2\n")
    assert read_table("~/t.csv").n_rows == 1


def test_parquet(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    p = tmp_path / "t.parquet"
    pq.write_table(pa.table({"x": [1.0, None, 3.0], "c": ["a", None, "b"], "k": [1, 2, 3]}), p)
    t = read_table(p)
    np.testing.assert_array_equal(t["x"], [1.0, np.nan, 3.0])
    assert list(t["c"]) == ["a", None, "b"]
    np.testing.assert_array_equal(t["k"], [1.0, 2.0, 3.0])


def test_dataframe_and_mapping():
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame(
        {"x": [1, 2, None], "c": ["a", " b", None], "n": pd.array([1, None, 3], dtype="Int64")}
    )
    t = from_arrays(df)
    np.testing.assert_array_equal(t["x"], [1.0, 2.0, np.nan])
    assert list(t["c"]) == ["a", "b", None]
    np.testing.assert_array_equal(t["n"], [1.0, np.nan, 3.0])
    t2 = from_arrays({"b": np.array([True, False])})
    assert list(t2["b"]) == ["True", "False"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a,b\n1,2\n3,4,5\n", r"t\.csv: row 2 \(line 3\): 3 cells but the header has 2 columns"),
        ('a,b,c\n1,x,2\n2,"y,3\n3,z,4\n4,w,5\n', r"t\.csv: line 3: a quoted field opens here"),
        ("", r"t\.csv: the file is empty"),
        ("a,b\n", r"t\.csv: the file has a header but no data rows"),
        ("a,a\n1,2\n", r"column name 'a' appears twice"),
        ("a,,c\n1,2,3\n", r"column 2 of the header has no name"),
    ],
)
def test_broken_files_get_one_line(tmp_path, text, message):
    p = write(tmp_path, text)
    with pytest.raises(DataError, match=message) as info:
        read_table(p)
    assert "\n" not in str(info.value)


def test_unclosed_quote_at_the_end_names_its_own_line(tmp_path):
    p = write(tmp_path, 'a,b\n1,2\n3,4\n5,6\n7,8\n9,10\n11,"12\n')
    with pytest.raises(DataError, match=r"line 7: a quoted field opens here"):
        read_table(p)


def test_not_utf8_names_the_line(tmp_path):
    p = tmp_path / "t.csv"
    p.write_bytes(b"a,b\n1,x\n2,\xff\xfe\n")
    with pytest.raises(DataError, match=r"t\.csv: line 3: not UTF-8"):
        read_table(p)


def test_binary_garbage(tmp_path):
    p = tmp_path / "t.csv"
    p.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(DataError, match="binary data"):
        read_table(p)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        read_table(tmp_path / "nope.csv")
    with pytest.raises(DataError, match="is a directory"):
        read_table(tmp_path)


def test_sniffer_falls_back_to_comma():
    assert sniff_delimiter(b"just_one_column\n1\n2\n") == ","
    assert sniff_delimiter(b"a;b;c\n") == ";"


def test_a_subset_names_the_source_rows(tmp_path):
    t = read_table(write(tmp_path, "a,b\n1,x\n2,y\n3,z\n4,w\n"))
    sub = t.take(np.array([3, 1]))
    assert [sub.row(0), sub.row(1)] == [4, 2]
    assert sub.take(np.array([1])).row(0) == 2
    assert t.row(2) == 3

"""The tabular path end to end, in a subprocess as a user runs it: every shared table trains
from the raw file with no config, predicts and evaluates from raw files; column order does not
matter; unseen categories and empty cells at prediction work."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from tests.test_cli import deepfit

pytest.importorskip("pyarrow")

TABLES = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "tables"
CASES = {
    "diamonds": ("price", "r2", ["--set", "data.max_examples=3000"]),
    "Default": ("default", "accuracy", []),
    "penguins": ("species", "accuracy", []),
    "Bikeshare": ("bikers", "r2", ["--drop", "casual,registered"]),
    "Carseats": ("Sales", "r2", []),
    "Credit": ("Balance", "r2", []),
    "mpg": ("hwy", "r2", []),
}
QUICK = ["--set", "train.epochs=8", "-q"]


def reversed_columns(src: Path, dst: Path) -> Path:
    rows = list(csv.reader(src.open(newline="")))
    with dst.open("w", newline="") as fh:
        csv.writer(fh).writerows([list(reversed(r)) for r in rows])
    return dst


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CASES))
def test_every_shared_table_trains_predicts_and_evaluates(tmp_path, name):
    path = TABLES / f"{name}.csv"
    if not path.exists():
        pytest.skip("shared tables not found")
    target, metric, extra = CASES[name]
    out = tmp_path / "run"
    deepfit("train", "--data", path, "--target", target, "--out", out, *QUICK, *extra)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["columns"]["numeric"] or summary["columns"]["categorical"]
    assert target not in summary["columns"]["numeric"] + summary["columns"]["categorical"]
    score = summary["test"][metric]
    assert score > (0.5 if metric == "accuracy" else 0.0)
    model = out / "model.npz"
    same = json.loads(deepfit("evaluate", model, path, "--json").stdout)[str(path)]
    flipped = reversed_columns(path, tmp_path / "flipped.csv")
    other = json.loads(deepfit("evaluate", model, flipped, "--json").stdout)[str(flipped)]
    assert other[metric] == pytest.approx(same[metric], abs=1e-12)
    assert other["n"] == same["n"]
    predicted = deepfit("predict", model, flipped).stdout.splitlines()
    assert predicted[0] == "prediction" and len(predicted) == same["n"] + 1
    # the config written into the run directory reproduces the run
    again = tmp_path / "again"
    deepfit("train", out / "config.toml", "--out", again, "-q")
    assert json.loads((again / "summary.json").read_text())["test"] == summary["test"]


def test_unseen_category_and_empty_cells_at_prediction(tmp_path):
    path = TABLES / "penguins.csv"
    if not path.exists():
        pytest.skip("shared tables not found")
    out = tmp_path / "run"
    deepfit("train", "--data", path, "--target", "species", "--out", out, *QUICK)
    new = tmp_path / "new.csv"
    new.write_text(
        "island,bill_length_mm,bill_depth_mm,flipper_length_mm,body_mass_g,sex,year,note\n"
        "Atlantis,,18.0,190,3500,,2009,x\n"
        "Biscoe,47.0,15.0,215,5000,male,2008,y\n"
    )
    done = deepfit("predict", out / "model.npz", new, "--proba")
    rows = list(csv.reader(done.stdout.splitlines()))
    assert rows[0] == ["p_Adelie", "p_Chinstrap", "p_Gentoo"]
    assert all(abs(sum(map(float, r)) - 1) < 1e-5 for r in rows[1:])
    assert "island 1" in done.stderr and "columns not used by the model: note" in done.stderr
    missing = new.with_name("missing.csv")
    missing.write_text("island,bill_length_mm\nBiscoe,40\n")
    refused = deepfit("predict", out / "model.npz", missing, check=False)
    assert refused.returncode != 0
    assert "no column 'bill_depth_mm'" in refused.stderr and "Traceback" not in refused.stderr


def test_zero_config_usage_errors(tmp_path):
    path = TABLES / "penguins.csv"
    if not path.exists():
        pytest.skip("shared tables not found")
    for args, message in (
        (["--data", path], "--target"),
        (["--data", path, "--target", "specie"], "did you mean 'species'"),
        (["--data", path, "--target", "species", "--drop", "islnd"], "data.drop"),
        ([], "give a config file"),
    ):
        done = deepfit("train", *args, "--out", tmp_path / "x", check=False)
        assert done.returncode != 0, args
        assert message in done.stderr, (args, done.stderr)
        assert "Traceback" not in done.stderr


def test_resume_refuses_other_data_at_the_same_path(tmp_path):
    """Issue 14 item 7: the checkpoint's identity includes a digest of the training data."""
    src = TABLES / "Carseats.csv"
    if not src.exists():
        pytest.skip("shared tables not found")
    data = tmp_path / "data.csv"
    lines = src.read_text().splitlines()
    data.write_text("\n".join(lines) + "\n")
    out = tmp_path / "run"
    deepfit(
        "train", "--data", data, "--target", "Sales", "--out", out, "-q", "--set", "train.epochs=3"
    )
    # same rows, same columns, other values: CompPrice (column 2) changed in every third row
    body = []
    for i, line in enumerate(lines[1:]):
        cells = line.split(",")
        cells[1] = str(int(cells[1]) + (i % 3 == 0))
        body.append(",".join(cells))
    data.write_text("\n".join([lines[0], *body]) + "\n")
    done = deepfit(
        "train", out / "config.toml", "--out", out, "--resume", "--set", "train.epochs=6",
        check=False,
    )  # fmt: skip
    assert done.returncode != 0
    assert "data differs" in done.stderr and "Traceback" not in done.stderr


def test_regression_npz_in_the_thousands_with_whole_number_targets(tmp_path):
    """Targets are standardized inside the model and predicted in their units; a test file
    whose regression targets happen to be whole numbers stays regression (issue 14 item 1)."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(600, 3))
    y = np.round(2000 * X[:, 0] - 1000 * X[:, 1] + 50_000)  # whole numbers, thousands
    np.savez(tmp_path / "train.npz", X=X[:500], y=y[:500])
    np.savez(tmp_path / "test.npz", X=X[500:], y=y[500:])
    small = np.round(X[500:510, 0] > 0).astype(float)  # 0/1 targets: look like classes
    np.savez(tmp_path / "binary_looking.npz", X=X[500:510], y=small)
    config = tmp_path / "c.toml"
    config.write_text(
        '[data]\nsource = "npz"\npath = "train.npz"\ntask = "regression"\n'
        "[model]\nhidden = [32]\n[train]\nepochs = 60\nlr = 0.01\n"
    )
    out = tmp_path / "run"
    deepfit("train", config, "--out", out, "-q")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["test"]["r2"] > 0.95
    result = json.loads(
        deepfit("evaluate", out / "model.npz", tmp_path / "test.npz", "--json").stdout
    )
    assert result[str(tmp_path / "test.npz")]["r2"] > 0.95
    odd = deepfit("evaluate", out / "model.npz", tmp_path / "binary_looking.npz", "--json")
    assert "r2" in json.loads(odd.stdout)[str(tmp_path / "binary_looking.npz")]
    inputs = tmp_path / "inputs.csv"
    inputs.write_text("x0,x1,x2\n1,0,0\n")
    value = float(deepfit("predict", out / "model.npz", inputs).stdout.splitlines()[1])
    assert abs(value - 52_000) < 800  # in the target's units


def _write_rows(path: Path, header: list[str], rows: list[list[object]]) -> Path:
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def test_test_path_columns_are_matched_by_name_and_float_labels_named(tmp_path):
    """Issue 14 items 2 and 10: a test file with its columns in another order scores the
    same; float labels for a classifier are one line naming the label, not an IndexError."""
    rng = np.random.default_rng(0)
    a, b, c = rng.normal(size=(3, 300))
    label = np.where(a + 2 * b - c > 0, "yes", "no")
    rows = [[x, y, z, lab] for x, y, z, lab in zip(a, b, c, label, strict=True)]
    train = _write_rows(tmp_path / "train.csv", ["a", "b", "c", "y"], rows[:200])
    test = _write_rows(tmp_path / "test.csv", ["a", "b", "c", "y"], rows[200:])
    swapped = _write_rows(
        tmp_path / "swapped.csv",
        ["c", "y", "b", "a"],
        [[r[2], r[3], r[1], r[0]] for r in rows[200:]],
    )
    scores = []
    for name, path in (("plain", test), ("swapped", swapped)):
        out = tmp_path / name
        deepfit(
            "train", "--data", train, "--target", "y", "--out", out, "-q",
            "--set", f"data.test_path='{path}'", "--set", "train.epochs=30",
        )  # fmt: skip
        scores.append(json.loads((out / "summary.json").read_text())["test"]["accuracy"])
    assert scores[0] == scores[1] > 0.8
    floats = _write_rows(tmp_path / "floats.csv", ["a", "b", "c", "y"], [[0, 0, 0, 0.5]])
    done = deepfit("evaluate", tmp_path / "plain" / "model.npz", floats, check=False)
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert "label '0.5' was not seen in training" in done.stderr


def test_a_semicolon_table_is_sniffed(tmp_path):
    """Issue 14 item 18: a semicolon CSV is read as such (no "did you mean 'a;b;c'")."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(120, 2))
    rows = [[f"{p:.4f}", f"{q:.4f}", int(p + q > 0)] for p, q in x]
    path = tmp_path / "semi.csv"
    path.write_text("a;b;target\n" + "\n".join(";".join(map(str, r)) for r in rows) + "\n")
    out = tmp_path / "run"
    deepfit("train", "--data", path, "--target", "target", "--out", out, "-q", *QUICK[:2])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["columns"]["numeric"] == ["a", "b"]

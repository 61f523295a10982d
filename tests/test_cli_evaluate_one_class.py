"""``deepfit evaluate`` on an ``.npz`` whose labels are all one class the model knows: scored
(as scikit-learn's ``accuracy_score`` scores single-class data), not refused as for training."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.test_cli import SMALL, deepfit

pytest.importorskip("sklearn")


@pytest.fixture(scope="module")
def digits_model(tmp_path_factory):
    from sklearn.datasets import load_digits

    root = tmp_path_factory.mktemp("one_class")
    config = root / "small.toml"
    config.write_text(SMALL)
    deepfit("train", config, "--out", root / "run", "--quiet")
    X, y = load_digits(return_X_y=True)
    return root / "run" / "model.npz", X, y


def _evaluate(model, path):
    done = deepfit("evaluate", model, path, "--json")
    return json.loads(done.stdout)[str(path)]


def test_one_class_is_scored_with_its_accuracy(digits_model, tmp_path):
    model, X, y = digits_model
    threes = X[y == 3]
    path = tmp_path / "threes.npz"
    np.savez(path, X=threes, y=np.full(len(threes), 3))
    result = _evaluate(model, path)
    # the accuracy is the share of rows predicted '3', as predict says
    np.savez(tmp_path / "inputs.npz", X=threes)
    predicted = deepfit("predict", model, tmp_path / "inputs.npz").stdout.split()[1:]
    assert result["n"] == len(threes) == len(predicted)
    assert result["accuracy"] == pytest.approx(np.mean([p == "3" for p in predicted]))
    assert result["accuracy"] > 0.5 and result["loss"] > 0
    # the same labels as text, or as indices into the file's class_names, score the same
    np.savez(tmp_path / "text.npz", X=threes, y=np.full(len(threes), "3"))
    names = np.array([str(k) for k in range(10)])
    np.savez(tmp_path / "named.npz", X=threes, y=np.full(len(threes), 3), class_names=names)
    assert _evaluate(model, tmp_path / "text.npz") == result
    assert _evaluate(model, tmp_path / "named.npz") == result
    text = deepfit("evaluate", model, path).stdout
    assert text.startswith(f"{path}: n {len(threes)}") and "accuracy" in text


def test_several_classes_still_read_as_before(digits_model, tmp_path):
    model, X, y = digits_model
    path = tmp_path / "mixed.npz"
    np.savez(path, X=X[:300], y=y[:300])
    result = _evaluate(model, path)
    assert result["n"] == 300 and result["accuracy"] > 0.8


def test_one_unknown_class_or_bad_inputs_are_refused_in_one_line(digits_model, tmp_path):
    model, X, _ = digits_model
    unknown = tmp_path / "unknown.npz"
    np.savez(unknown, X=X[:5], y=np.full(5, 42))
    done = deepfit("evaluate", model, unknown, check=False)
    assert done.returncode != 0 and len(done.stderr.strip().splitlines()) == 1
    assert done.stderr.startswith(f"error: {unknown}: array 'y': row 1: label '42' was not seen")
    bad = X[:5].copy()
    bad[2, 7] = np.nan
    nan = tmp_path / "nan.npz"
    np.savez(nan, X=bad, y=np.full(5, 3))
    done = deepfit("evaluate", model, nan, check=False)
    assert done.returncode != 0 and len(done.stderr.strip().splitlines()) == 1
    assert done.stderr.startswith(f"error: {nan}: array 'X'") and "row 3" in done.stderr
    short = tmp_path / "short.npz"
    np.savez(short, X=X[:5], y=np.full(4, 3))
    done = deepfit("evaluate", model, short, check=False)
    assert done.returncode != 0
    assert "array 'y' has shape (4,) but 'X' has 5 rows" in done.stderr

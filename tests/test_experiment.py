"""The experiment pipeline: one config in, a trained model and a run directory out."""

from __future__ import annotations

import json

import numpy as np
import pytest

import deepfit as df
from deepfit import config as C
from deepfit import experiment as E


def _csv(path, X, labels, header=("a", "b", "label")):
    with open(path, "w") as f:
        f.write(",".join(header) + "\n")
        for row, label in zip(X, labels, strict=True):
            f.write(f"{row[0]:.5f},{row[1]:.5f},{label}\n")


def _two_blobs(n, rng):
    X = np.vstack([rng.normal(-1, 0.4, (n, 2)), rng.normal(1, 0.4, (n, 2))]) * [1, 100] + [0, 500]
    return X, ["cat"] * n + ["dog"] * n


def test_csv_with_categorical_labels_end_to_end(tmp_path):
    rng = np.random.default_rng(0)
    X, labels = _two_blobs(100, rng)
    _csv(tmp_path / "train.csv", X, labels)
    config = C.validate(
        {
            "data": {"source": "csv", "path": str(tmp_path / "train.csv"), "target": "label"},
            "model": {"hidden": [8]},
            "train": {"lr": 0.02, "epochs": 20},
        }
    )
    summary = E.run(config, tmp_path / "run", progress=False)
    assert summary["test"]["accuracy"] > 0.95
    bundle = df.io.load(tmp_path / "run" / "model.npz")
    assert bundle.class_names == ["cat", "dog"]
    new_rows = {"b": np.array([400.0, 600.0]), "a": np.array([-1.0, 1.0])}  # any order
    assert list(bundle.predict(new_rows)) == ["cat", "dog"]
    with pytest.raises(df.ShapeError, match="reads named columns"):
        bundle.predict(np.array([[-1.0, 400.0]]))
    # scaling statistics are those of the training split alone
    train_idx = summary["n_train"]
    mean_b = bundle.preprocessor.scaler.mean_[1]
    assert train_idx == 120 and mean_b != pytest.approx(500, abs=1e-9)
    saved = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert saved["diagnosis"]["verdict"] == "fine"


def test_separate_dev_file_and_unseen_labels(tmp_path):
    rng = np.random.default_rng(1)
    X, labels = _two_blobs(60, rng)
    _csv(tmp_path / "train.csv", X, labels)
    Xd, ld = _two_blobs(10, rng)
    _csv(tmp_path / "dev.csv", Xd, ld)
    config = C.validate(
        {
            "data": {
                "source": "csv",
                "path": str(tmp_path / "train.csv"),
                "target": "label",
                "dev_path": str(tmp_path / "dev.csv"),
                "split": [0.8, 0.0, 0.2],
            },
            "model": {"hidden": [4]},
            "train": {"epochs": 2},
        }
    )
    data = E.prepare(config)
    assert len(data.dev[0]) == 20 and len(data.train[0]) == 96 and len(data.test[0]) == 24
    _csv(tmp_path / "dev.csv", Xd, ["cat"] * 19 + ["eel"])
    with pytest.raises(df.DataError, match="'eel'"):
        E.prepare(config)


def test_regression_reports_r2_and_scale_normalization(tmp_path):
    rng = np.random.default_rng(2)
    X = rng.uniform(-1, 1, (300, 2))
    y = X[:, 0] ** 2 + 0.5 * X[:, 1]
    np.savez(tmp_path / "reg.npz", X=X, y=y)
    config = C.validate(
        {
            "data": {
                "source": "npz",
                "path": str(tmp_path / "reg.npz"),
                "task": "regression",
                "normalize": "scale",
            },
            "model": {"hidden": [32, 32], "activation": "tanh"},
            "train": {"lr": 0.01, "epochs": 80, "batch_size": 32},
        }
    )
    summary = E.run(config, None, progress=False)
    assert summary["loss_function"] == "mse"
    assert summary["test"]["r2"] > 0.9
    assert summary["diagnosis"]["error_kind"].startswith("unexplained variance")


def test_max_examples_and_tabular_augmentation(tmp_path):
    config = C.validate({"data": {"source": "iris", "max_examples": 50}})
    data = E.prepare(config)
    assert sum(len(part[0]) for part in (data.train, data.dev, data.test)) == 50
    with pytest.raises(C.ConfigError, match="'data.augment' needs image-shaped data"):
        E.prepare(C.validate({"data": {"source": "iris", "augment": ["flip"]}}))


def test_same_config_same_numbers():
    config = C.validate(
        {"data": {"source": "wine"}, "model": {"keep_prob": 0.8}, "train": {"epochs": 5}}
    )
    a = E.run(config, None, progress=False)
    b = E.run(config, None, progress=False)
    assert a["test"] == b["test"] and a["dev"] == b["dev"]


def test_learning_curve_says_more_data_helps_on_a_data_hungry_problem():
    config = C.validate(
        {
            "data": {"source": "digits"},
            "model": {"hidden": [64]},
            "train": {"lr": 0.01, "epochs": 30, "batch_size": 32},
            "diagnose": {"tolerance": 0.02},
        }
    )
    curve = E.learning_curve(config, fractions=(0.05, 0.1, 0.2, 0.5, 1.0))
    assert curve.sizes == sorted(curve.sizes) and curve.sizes[-1] > 1000
    assert curve.dev_errors[0] > curve.dev_errors[-1] + 0.05
    assert curve.verdict.startswith("more data would")


def test_schedule_and_optimizer_choices_build():
    for kind in ("inverse_time", "exponential", "inverse_sqrt", "step", "cosine"):
        config = C.validate({"train": {"schedule": {"kind": kind, "warmup": 2}, "epochs": 10}})
        schedule = E.build_schedule(config)
        assert schedule(0) < schedule(2) == pytest.approx(schedule.after(0))
    for name, cls in (("sgd", df.SGD), ("momentum", df.Momentum), ("rmsprop", df.RMSprop)):
        assert isinstance(E.build_optimizer(C.validate({"train": {"optimizer": name}})), cls)


def test_init_scale_sets_the_std_of_normal_initialization():
    config = C.validate({"model": {"init": "normal", "init_scale": 10.0, "hidden": [200]}})
    model = E.build_model(config, 100, 3, "softmax_cross_entropy")
    assert float(model.params["0.W"].std()) == pytest.approx(10.0, rel=0.05)
    with pytest.raises(C.ConfigError, match="'model.init_scale' must be a number > 0"):
        C.validate({"model": {"init_scale": 0}})

"""The zero-config table recipe and the config a ``deepfit train --data`` run resolves."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from deepfit import config as configuration
from deepfit import experiment, io
from deepfit.build import loss_name
from deepfit.config import ConfigError
from deepfit.data.tables import from_arrays
from deepfit.recipes import TABLE_RECIPE, TABLE_SPACE, table_config, table_space


def test_the_recipe_holds_the_measured_settings():
    """The values bench/tabular.md chose (5 seeds, seven tables)."""
    config = table_config("my.csv", "y")
    model, train = config["model"], config["train"]
    assert model["hidden"] == [128] and model["init"] == "glorot_uniform"
    assert model["l2"] == 0.1 and model["keep_prob"] == 1.0
    assert model["binary_output"] == "sigmoid" and model["loss"] == "auto"
    assert (train["optimizer"], train["lr"], train["batch_size"]) == ("adam", 0.001, 128)
    assert train["epochs"] == 500 and train["refit"] is True
    assert train["early_stopping"]["patience"] == 50
    assert config["data"]["normalize"] == "auto"


def test_table_config_resolves_path_target_drop_seed_and_overrides(tmp_path):
    config = table_config(
        tmp_path / "t.parquet",
        "price",
        drop=["id"],
        seed=7,
        overrides=["model.l2=0.0", "train.epochs=3"],
    )
    data = config["data"]
    assert data["source"] == "parquet" and Path(data["path"]).is_absolute()
    assert data["target"] == "price" and data["drop"] == ["id"]
    assert config["train"]["seed"] == 7
    assert config["model"]["l2"] == 0.0 and config["train"]["epochs"] == 3  # --set wins
    assert TABLE_RECIPE["model"]["l2"] == 0.1  # the recipe itself is not changed


def test_a_base_config_replaces_the_recipe():
    config = table_config("t.csv", "y", base={"model": {"hidden": [8]}})
    assert config["data"]["source"] == "csv" and config["model"]["hidden"] == [8]
    assert config["model"]["l2"] == 0.0  # the schema's default, not the recipe's


def test_a_bad_override_is_refused_by_key():
    with pytest.raises(ConfigError, match="model.l2"):
        table_config("t.csv", "y", overrides=["model.l2=-1"])


def test_label_smoothing_is_searched_for_classification_only():
    assert "label_smoothing" in table_space("classification")["train"]
    assert "label_smoothing" not in table_space("regression")["train"]
    assert "label_smoothing" not in TABLE_SPACE["train"]  # the shared space is not changed


def test_binary_output_picks_the_loss_of_two_classes_only():
    sigmoid = configuration.validate({"model": {"binary_output": "sigmoid"}})
    plain = configuration.validate({})
    assert plain["model"]["binary_output"] == "softmax"  # the schema keeps two softmax units
    assert loss_name(sigmoid, "classification", 2) == "sigmoid_binary_cross_entropy"
    assert loss_name(sigmoid, "classification", 3) == "softmax_cross_entropy"
    assert loss_name(sigmoid, "regression", 1) == "mse"
    assert loss_name(plain, "classification", 2) == "softmax_cross_entropy"
    chosen = configuration.validate(
        {"model": {"binary_output": "sigmoid", "loss": "softmax_cross_entropy"}}
    )
    assert loss_name(chosen, "classification", 2) == "softmax_cross_entropy"  # loss wins
    with pytest.raises(ConfigError, match="model.binary_output"):
        configuration.validate({"model": {"binary_output": "tanh"}})


def _two_class_table(n: int = 240):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, 2))
    group = np.where(rng.random(n) < 0.5, "a", "b")
    y = np.where(x[:, 0] + 0.5 * x[:, 1] + (group == "a") > 0.5, "Yes", "No")
    return {"x0": x[:, 0], "x1": x[:, 1], "group": group, "label": y}


@pytest.mark.parametrize("extra", [[], ["model.ensemble=2", "train.mixup.kind='mixup'"]])
def test_the_recipe_trains_one_sigmoid_unit_on_a_two_class_table(tmp_path, extra):
    """Zero-config on a two-class target: one output unit, probabilities [1 - p, p] that
    survive saving, labels as given; with what a budgeted search may add (ensemble, mixup)."""
    columns = _two_class_table()
    config = table_config("in-memory.csv", "label", seed=0, overrides=["train.epochs=5", *extra])
    prepared = experiment.prepare_table_data(config, table=from_arrays(columns))
    summary = experiment.run(
        config, tmp_path / "run", progress=False, write_plots=False, prepared=prepared
    )
    assert summary["loss_function"] == "sigmoid_binary_cross_entropy"
    assert summary["model"].n_outputs == 1
    new = {k: v[:7] for k, v in columns.items() if k != "label"}
    bundle = io.load(tmp_path / "run" / "model.npz")
    proba = bundle.predict_proba(from_arrays(new))
    assert proba.shape == (7, 2) and np.allclose(proba.sum(axis=1), 1.0)
    np.testing.assert_allclose(proba, summary["bundle"].predict_proba(from_arrays(new)))
    labels = bundle.predict(from_arrays(new))
    assert set(labels) <= {"Yes", "No"}
    assert list(labels) == ["Yes" if p > 0.5 else "No" for p in proba[:, 1]]
    assert summary["test"]["accuracy"] > 0.8


def test_the_recipe_keeps_softmax_for_three_classes():
    columns = _two_class_table()
    columns["label"] = np.array(["p", "q", "r"])[np.arange(240) % 3]
    config = table_config("in-memory.csv", "label", seed=0, overrides=["train.epochs=1"])
    prepared = experiment.prepare_table_data(config, table=from_arrays(columns))
    summary = experiment.run(config, None, progress=False, write_plots=False, prepared=prepared)
    assert summary["loss_function"] == "softmax_cross_entropy"
    assert summary["model"].n_outputs == 3

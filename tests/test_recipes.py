"""The zero-config table recipe and the config a ``deepfit train --data`` run resolves."""

from __future__ import annotations

from pathlib import Path

import pytest

from deepfit.config import ConfigError
from deepfit.recipes import TABLE_RECIPE, TABLE_SPACE, table_config, table_space


def test_the_recipe_holds_the_measured_settings():
    """The values bench/tabular.md chose (5 seeds, seven tables)."""
    config = table_config("my.csv", "y")
    model, train = config["model"], config["train"]
    assert model["hidden"] == [128] and model["init"] == "glorot_uniform"
    assert model["l2"] == 0.1 and model["keep_prob"] == 1.0
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

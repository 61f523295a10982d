"""Hyperparameter importance in the tune output (importance.json, importance.png), computed by
the one function the HTML report uses too."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("optuna")

from deepfit import config as C
from deepfit.tuning import importance
from deepfit.tuning import study as T

CONFIG = {
    "data": {"source": "digits"},
    "model": {"hidden": [16]},
    "train": {"epochs": 3},
    "tune": {
        "trials": 16,
        "pruning": False,
        "space": {
            "train": {
                "lr": "loguniform(1e-5, 1)",
                "beta1": "one_minus_loguniform(0.5, 0.9999)",
                "beta2": "uniform(0.9, 0.999)",  # the bowl ignores it
            }
        },
    },
}


def test_importance_json_and_figure_are_written(tmp_path):
    out = tmp_path / "out"
    summary = T.tune(C.validate(CONFIG), out, objective="tests.tuning.objectives:bowl")
    assert {importance.JSON_FILE, importance.PNG_FILE} <= set(summary["files"])
    record = json.loads((out / importance.JSON_FILE).read_text())
    assert record["evaluator"] in ("PED-ANOVA", "fANOVA") and record["metric"] == "dev_loss"
    found = record["importances"]
    assert set(found) == {"train.lr", "train.beta1", "train.beta2"}
    assert sum(found.values()) == pytest.approx(1.0, abs=1e-6)
    assert list(found) == sorted(found, key=lambda k: -found[k])  # largest first
    assert found["train.beta2"] < max(found["train.lr"], found["train.beta1"])
    assert (out / importance.PNG_FILE).stat().st_size > 0


def test_too_few_trials_write_the_reason(tmp_path):
    config = C.validate({**CONFIG, "tune": {**CONFIG["tune"], "trials": 1}})
    out = tmp_path / "out"
    summary = T.tune(config, out, objective="tests.tuning.objectives:bowl", plots=False)
    assert summary["files"] == ["trials.csv", "best.toml", importance.JSON_FILE]
    record = json.loads((out / importance.JSON_FILE).read_text())
    assert "at least 2 completed trials" in record["error"]


def test_the_report_uses_the_same_function(tmp_path, monkeypatch):
    out = tmp_path / "out"
    T.tune(C.validate(CONFIG), out, objective="tests.tuning.objectives:bowl", plots=False)
    monkeypatch.setattr(importance, "importances", lambda study, space: ({"train.lr": 1.0}, "X"))
    from deepfit.report import tune_report

    assert "importance (X)" in tune_report(out)

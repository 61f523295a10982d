"""The techniques from TOML keys: validation of the new keys, the builders of deepfit.build,
and whole runs through deepfit.experiment (including the NaN guard's failure: no model)."""

from __future__ import annotations

import math

import pytest

import deepfit as df
from deepfit import build as B
from deepfit import config as C
from deepfit import experiment as E


def _config(**train):
    base = {"data": {"source": "digits", "max_examples": 300}, "model": {"hidden": [16]}}
    return C.validate({**base, "train": {"epochs": 4, "lr": 0.01, **train}})


def test_defaults_turn_every_technique_off():
    config = C.defaults()
    assert B.build_callbacks(config) == []
    assert B.build_trainer_options(config) == {"clip_norm": None, "mixup": None, "threads": 0}
    assert isinstance(B.build_optimizer(config), df.Adam)
    assert B.build_loss(config, "softmax_cross_entropy").label_smoothing == 0.0


def test_every_key_builds_its_technique():
    config = _config(
        clip_norm=2.0,
        label_smoothing=0.1,
        schedule={"kind": "sgdr", "period": 3, "mult": 2, "lr_min": 1e-4, "warmup": 1},
        early_stopping={"start_from_epoch": 2, "baseline": 0.9, "patience": 8},
        plateau={"enabled": True, "patience": 3, "factor": 0.5, "threshold_mode": "abs"},
        averaging={"kind": "swa", "start": 2},
        lookahead={"enabled": True, "k": 6, "alpha": 0.8},
        mixup={"kind": "cutmix", "alpha": 0.4, "prob": 0.5},
        snapshots={"enabled": True, "keep": 2},
    )
    plateau, averaging, snapshots = B.build_callbacks(config)
    assert isinstance(plateau, df.ReduceLROnPlateau) and plateau.factor == 0.5
    assert plateau.threshold_mode == "abs" and plateau.patience == 3
    assert isinstance(averaging.average, df.SWA) and averaging.start == 2
    assert averaging.every == "epoch"
    assert isinstance(snapshots, df.SnapshotEnsemble) and snapshots.keep == 2
    options = B.build_trainer_options(config)
    assert options["clip_norm"] == 2.0 and options["mixup"].config() == {
        "kind": "cutmix",
        "alpha": 0.4,
        "prob": 0.5,
    }
    opt = B.build_optimizer(config)
    assert isinstance(opt, df.Lookahead) and (opt.k, opt.alpha) == (6, 0.8)
    schedule = B.build_schedule(config)
    assert schedule.config()["after"] == {
        "kind": "sgdr",
        "lr0": 0.01,
        "period": 3,
        "mult": 2,
        "lr_min": 1e-4,
    }
    stopper = B.build_early_stopping(config)
    assert (stopper.start_from_epoch, stopper.baseline) == (2, 0.9)
    assert B.build_loss(config, "softmax_cross_entropy").label_smoothing == 0.1
    ema = B.build_averaging(_config(averaging={"kind": "ema", "decay": 0.99}))
    assert isinstance(ema.average, df.EMA) and ema.average.decay == 0.99 and ema.every == "batch"
    staircase = B.build_schedule(_config(schedule={"kind": "inverse_time", "interval": 4}))
    assert staircase(3) == 0.01 and staircase(4) == 0.005


@pytest.mark.parametrize(
    ("train", "message"),
    [
        ({"mixup": {"alpha": 0}}, r"'train.mixup.alpha' must be a number > 0"),
        ({"mixup": {"kind": "cutout"}}, r"'train.mixup.kind' must be one of"),
        ({"averaging": {"kind": "polyak"}}, r"'train.averaging.kind' must be one of"),
        ({"plateau": {"factor": 1.0}}, r"'train.plateau.factor' must be a number in \(0, 1\)"),
        ({"label_smoothing": 1.0}, r"'train.label_smoothing' must be a number in \[0, 1\)"),
        ({"clip_norm": -1}, r"'train.clip_norm' must be a number >= 0"),
        ({"lookahead": {"k": 0}}, r"'train.lookahead.k' must be an integer >= 1"),
        ({"schedule": {"period": 0}}, r"'train.schedule.period' must be an integer >= 1"),
        ({"snapshots": {"enabled": True}}, r"needs train.schedule.kind = 'sgdr'"),
        (
            {"plateau": {"enabled": True, "patience": 10}},
            r"'train.plateau.patience' = 10 must be below 'train.early_stopping.patience' = 10",
        ),
    ],
)
def test_bad_technique_keys_are_refused_with_one_line(train, message):
    with pytest.raises(C.ConfigError, match=message):
        _config(**train)


def test_label_smoothing_is_refused_for_regression():
    config = _config(label_smoothing=0.1)
    with pytest.raises(C.ConfigError, match="not to a regression"):
        B.build_loss(config, "mse")
    with pytest.raises(C.ConfigError, match="applies to classification"):
        C.validate({"model": {"loss": "mse"}, "train": {"label_smoothing": 0.1}})


def test_a_run_with_every_technique(tmp_path):
    config = _config(
        epochs=6,
        lr=0.03,
        batch_size=16,
        clip_norm=5.0,
        label_smoothing=0.05,
        schedule={"kind": "sgdr", "period": 2},
        plateau={"enabled": True, "patience": 2},
        averaging={"kind": "ema", "decay": 0.9},
        lookahead={"enabled": True},
        mixup={"kind": "mixup", "alpha": 0.2},
        snapshots={"enabled": True},
    )
    summary = E.run(config, tmp_path / "run", progress=False, write_plots=False)
    assert math.isfinite(summary["test"]["loss"]) and summary["test"]["accuracy"] > 0.5
    trainer = summary["trainer"]
    assert isinstance(trainer.optimizer, df.Lookahead) and trainer.clip_norm == 5.0
    snaps = next(c for c in trainer.callbacks if isinstance(c, df.SnapshotEnsemble))
    assert snaps.epochs == [2, 4, 6]
    assert (tmp_path / "run" / "model.npz").exists()
    again = E.run(config, tmp_path / "run", resume=True, progress=False, write_plots=False)
    assert again["test"] == summary["test"]


def test_a_diverging_run_fails_with_one_line_and_writes_no_model(tmp_path):
    config = _config(lr=1e30, optimizer="sgd", epochs=3)
    with pytest.raises(df.TrainingDiverged, match="training diverged: non-finite") as info:
        E.run(config, tmp_path / "run", progress=False, write_plots=False)
    assert "\n" not in str(info.value)
    assert not (tmp_path / "run" / "model.npz").exists()
    assert not (tmp_path / "run" / "checkpoint.npz").exists()

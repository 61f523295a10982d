"""Tuning trials in lockstep: a packed group answers what each trial alone answers."""

from __future__ import annotations

import numpy as np
import pytest

from deepfit import config as C
from deepfit import experiment as E
from deepfit.errors import DeepfitError
from deepfit.tuning import worker
from deepfit.tuning.packed import group_key, packable, split_groups, train_group


def _configs(tmp_path, members, **extra):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((240, 3))
    y = np.where(X[:, 0] * X[:, 1] + 0.2 * rng.standard_normal(240) > 0, "a", "b")
    path = tmp_path / "train.csv"
    with open(path, "w") as f:
        f.write("x,y,z,label\n")
        for row, label in zip(X, y, strict=True):
            f.write(f"{row[0]:.5f},{row[1]:.5f},{row[2]:.5f},{label}\n")
    base = {
        "data": {"source": "csv", "path": str(path), "target": "label"},
        "model": {"hidden": [12, 8]},
        "train": {
            "epochs": 25,
            "batch_size": 32,
            "dtype": "float64",
            "early_stopping": {"patience": 3},
            **extra,
        },
    }
    out = []
    for member in members:
        config = {k: {**v} for k, v in base.items()}
        config["model"].update(member.get("model", {}))
        config["train"].update(member.get("train", {}))
        out.append(C.validate(config))
    return out


MEMBERS = [
    {"train": {"lr": 0.03}, "model": {"keep_prob": 0.8}},
    {"train": {"lr": 0.003, "beta1": 0.8, "weight_decay": 0.01}, "model": {"l2": 0.5}},
    {"train": {"lr": 0.01, "schedule": {"kind": "exponential", "k": 0.1}}},
]


def test_a_packed_group_answers_what_each_trial_alone_answers(tmp_path):
    configs = _configs(tmp_path, MEMBERS)
    payloads = [{"number": i, "config": c, "metric": "dev_loss"} for i, c in enumerate(configs)]
    prepared = E.prepare(configs[0])
    alone = [worker.train(p, lambda epoch, value: False) for p in payloads]
    reports: list[tuple[int, int, float]] = []

    def report(number, epoch, value):
        reports.append((number, epoch, value))
        return False

    packed = train_group(payloads, report, prepared)
    for one, ours in zip(alone, packed, strict=True):
        assert ours["state"] == one["state"] == "complete"
        assert ours["value"] == one["value"]  # float64, same batches: the same number
        assert ours["epochs"] == one["epochs"]
        assert ours["best_epoch"] == one["best_epoch"]
    assert len({r["epochs"] for r in packed}) > 1  # they stopped at different epochs
    assert {n for n, _, _ in reports} == {0, 1, 2}


def test_members_are_pruned_one_by_one(tmp_path):
    configs = _configs(tmp_path, MEMBERS[:2])
    payloads = [
        {"number": 10 + i, "config": c, "metric": "dev_loss"} for i, c in enumerate(configs)
    ]

    def report(number, epoch, value):
        return number == 11 and epoch == 2

    results = train_group(payloads, report)
    assert results[1]["state"] == "pruned" and results[1]["epochs"] == 2
    assert results[1]["stop_reason"] == "pruned after epoch 2"
    assert results[0]["state"] == "complete" and results[0]["epochs"] > 2


def test_grouping_and_refusals(tmp_path):
    configs = _configs(tmp_path, [*MEMBERS, {"model": {"hidden": [16]}}])
    assert group_key(configs[0]) == group_key(configs[1]) != group_key(configs[3])
    payloads = [{"number": i, "config": c, "metric": "dev_loss"} for i, c in enumerate(configs)]
    groups = split_groups(payloads, 2)
    assert [[p["number"] for p in g] for g in groups] == [[0, 1], [2], [3]]
    clipped = _configs(tmp_path, MEMBERS[:1], clip_norm=1.0)[0]
    assert "train.clip_norm" in packable(clipped)
    assert [
        [p["number"] for p in g]
        for g in split_groups(
            [{"number": 7, "config": clipped, "metric": "dev_loss"}, *payloads[:1]], 4
        )
    ] == [[7], [0]]
    with pytest.raises(DeepfitError, match="beyond the per-member keys"):
        train_group([payloads[0], payloads[3]], lambda *a: False)
    with pytest.raises(DeepfitError, match="pack size"):
        split_groups(payloads, 0)

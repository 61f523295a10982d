"""``deepfit tune`` rerun with a changed base config (issue 14, item 5): refused naming the
changed keys, since the old trials' dev metrics are not comparable with new ones; continued
only with the same config; started afresh only when asked (``--new-study``)."""

from __future__ import annotations

import csv
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

optuna = pytest.importorskip("optuna")

CONFIG = """
[data]
source = "digits"
[model]
hidden = [8]
[train]
epochs = 2
batch_size = 128
[tune]
trials = 2
pruning = false
[tune.space.train]
lr = "loguniform(1e-3, 1e-1)"
"""


def deepfit(*args, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "deepfit.cli", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
    )


def study_trials(out: Path):
    return optuna.load_study(study_name="cfg", storage=f"sqlite:///{out / 'study.db'}").trials


def csv_rows(out: Path) -> list[dict[str, str]]:
    with open(out / "trials.csv", newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_a_changed_base_config_is_refused_naming_the_keys_then_new_study(tmp_path):
    cfg = tmp_path / "cfg.toml"
    cfg.write_text(CONFIG)
    out = tmp_path / "out"
    first = deepfit("tune", cfg, "--out", out, "--workers", "1", "-q", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert len(study_trials(out)) == 2

    changed = ("--set", "train.epochs=3", "--set", "data.max_examples=500")
    again = deepfit("tune", cfg, "--out", out, "--trials", "3", *changed, cwd=tmp_path)
    assert again.returncode != 0
    message = again.stderr.strip().splitlines()
    assert len(message) == 1, again.stderr  # one line, no traceback
    assert "train.epochs (2 -> 3)" in message[0]
    assert "data.max_examples (0 -> 500)" in message[0]
    assert "--new-study" in message[0] and "Traceback" not in again.stderr
    assert len(study_trials(out)) == 2  # nothing added to the old study

    # a searched key is no change: the space sets it in every trial
    searched = deepfit(
        "tune", cfg, "--out", out, "--set", "train.lr=0.5", "--trials", "3", "-q", cwd=tmp_path
    )
    assert searched.returncode == 0, searched.stderr
    assert len(study_trials(out)) == 3

    fresh = deepfit("tune", cfg, "--out", out, *changed, "--new-study", "-q", cwd=tmp_path)
    assert fresh.returncode == 0, fresh.stderr
    trials = study_trials(out)
    assert len(trials) == 2 and all(t.state.name == "COMPLETE" for t in trials)
    assert [r["number"] for r in csv_rows(out)] == ["0", "1"]
    best = tomllib.loads((out / "best.toml").read_text())
    assert best["train"]["epochs"] == 3 and best["data"]["max_examples"] == 500

    # the new study continues with its own config, and refuses the old one
    more = deepfit("tune", cfg, "--out", out, *changed, "--trials", "3", "-q", cwd=tmp_path)
    assert more.returncode == 0, more.stderr
    assert len(study_trials(out)) == 3
    old = deepfit("tune", cfg, "--out", out, cwd=tmp_path)
    assert old.returncode != 0 and "train.epochs (3 -> 2)" in old.stderr

"""``[tune.space]`` searches ``model.ensemble`` and ``model.ensemble_kind`` (issue 12): sampled,
applied, trained as a packed network, and refused with the residual blocks it cannot pack."""

from __future__ import annotations

import csv
import subprocess
import sys
import tomllib

import numpy as np
import pytest

from deepfit import config as C
from deepfit import experiment as E
from deepfit.nn.packed import PackedSequential
from deepfit.tuning import space as S

SPACE = {
    "model": {
        "ensemble": "choice([1, 3])",
        "ensemble_kind": "choice(['deep', 'batch']) if model.ensemble > 1",
    }
}


def base(**model) -> dict:
    return C.validate(
        {
            "data": {"source": "circles", "n_samples": 200},
            "model": {"hidden": [8], **model},
            "train": {"epochs": 2, "batch_size": 32},
            "tune": {"space": SPACE},
        }
    )


def test_the_space_samples_ensembles_and_a_trial_trains_one_packed():
    config = base()
    space = S.parse(config)
    rng = np.random.default_rng(0)
    points = [space.sample(rng) for _ in range(60)]
    seen = {(p["model.ensemble"], p.get("model.ensemble_kind")) for p in points}
    assert seen == {(1, None), (3, "deep"), (3, "batch")}
    point = next(p for p in points if p.get("model.ensemble_kind") == "batch")
    trial = space.apply(config, point)
    assert trial["model"]["ensemble"] == 3 and trial["model"]["ensemble_kind"] == "batch"
    model = E.run(trial, None, progress=False)["model"]
    assert isinstance(model, PackedSequential) and model.members == 3 and model.kind == "batch"


def test_an_ensemble_the_base_config_cannot_pack_is_refused_naming_the_space_key():
    with pytest.raises(S.SpaceError, match=r"tune.space.model.ensemble .*model.residual"):
        S.parse(base(residual=True))


@pytest.mark.slow
def test_deepfit_tune_searches_the_ensemble(tmp_path):
    pytest.importorskip("optuna")
    (tmp_path / "cfg.toml").write_text(
        '[data]\nsource = "circles"\nn_samples = 200\n[model]\nhidden = [8]\n'
        "[train]\nepochs = 2\nbatch_size = 32\n"
        '[tune]\ntrials = 2\nstrategy = "grid"\npruning = false\n'
        '[tune.space.model]\nensemble = "choice([1, 3])"\n'
    )
    done = subprocess.run(
        [sys.executable, "-m", "deepfit.cli", "tune", "cfg.toml", "--out", "out", "-q"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    with open(tmp_path / "out" / "trials.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["model.ensemble"] for r in rows] == ["1", "3"]
    assert all(r["state"] == "complete" for r in rows)
    best = tomllib.loads((tmp_path / "out" / "best.toml").read_text())
    assert best["model"]["ensemble"] in (1, 3)

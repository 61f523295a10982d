"""Trials as Ray tasks on a local Ray cluster (num_cpus=2): real training, results in the
driver's study, per-epoch reports answered through the actor."""

from __future__ import annotations

import csv
import os

import pytest

pytest.importorskip("optuna")
ray = pytest.importorskip("ray")

from deepfit import config as C  # noqa: E402
from deepfit.tuning import tune  # noqa: E402

CONFIG = """
[data]
source = "digits"
[model]
hidden = [16]
[train]
epochs = 3
batch_size = 128
[tune]
trials = 3
[tune.space.train]
lr = "loguniform(1e-3, 1e-1)"
[tune.space.model]
hidden = "choice([[8], [16]])"
keep_prob = "uniform(0.5, 0.9) if use.dropout"
[tune.space.use]
dropout = "choice([false, true])"
"""


@pytest.mark.slow
def test_local_ray_cluster_runs_the_trials(tmp_path):
    cfg = tmp_path / "cfg.toml"
    cfg.write_text(CONFIG)
    out = tmp_path / "out"
    lines: list[str] = []
    summary = tune(C.load(cfg), out, executor="ray", workers=2, echo=lines.append, plots=False)
    assert not ray.is_initialized()  # the local cluster started for the study is shut down
    assert summary["complete"] == 3 and summary["best"] is not None
    assert "2 at a time" in lines[0]
    with open(out / "trials.csv", newline="") as f:
        table = list(csv.DictReader(f))
    assert [r["state"] for r in table] == ["complete"] * 3
    assert all(int(r["epochs"]) >= 1 for r in table)
    # the conditional key: sampled (in the driver, define-by-run) only where it is on
    assert all((r["model.keep_prob"] == "") == (r["use.dropout"] == "False") for r in table)
    import optuna

    study = optuna.load_study(study_name="deepfit", storage=f"sqlite:///{out / 'study.db'}")
    hosts = {t.user_attrs["host"] for t in study.trials}
    assert all(not h.endswith(f":{os.getpid()}") for h in hosts)  # ran in Ray workers
    assert all(len(t.intermediate_values) >= 1 for t in study.trials)  # per-epoch reports
    assert (out / "best.toml").exists()

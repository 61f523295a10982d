"""kill -9 of the driver in the middle of a trial, then the same command again: the study ends
with exactly the requested number of counted trials, none lost, none counted twice, the
interrupted ones marked and retried with the same point."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

optuna = pytest.importorskip("optuna")

ROOT = Path(__file__).resolve().parents[2]
TRIALS = 6

CONFIG = """
[data]
source = "digits"
[model]
hidden = [16]
[tune]
trials = 6
pruning = false
[tune.space.train]
lr = "loguniform(1e-5, 1)"
beta1 = "one_minus_loguniform(0.5, 0.9999)"
"""

DRIVER = """
import sys
from deepfit import config as C
from deepfit.tuning import tune
summary = tune(C.load(sys.argv[1]), sys.argv[2], study="s", workers=int(sys.argv[3]),
               objective="tests.tuning.objectives:sleepy", plots=False)
print("counted", summary["counted"])
"""


def start(cfg: Path, out: Path, workers: int, pids: Path) -> subprocess.Popen:
    env = {**os.environ, "DEEPFIT_TEST_PIDS": str(pids), "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-c", DRIVER, str(cfg), str(out), str(workers)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def counted_rows(out: Path) -> int:
    try:
        with open(out / "trials.csv", newline="") as f:
            return sum(r["state"] in ("complete", "pruned", "failed") for r in csv.DictReader(f))
    except FileNotFoundError:
        return 0


def alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_kill_9_mid_trial_then_resume(tmp_path, workers):
    cfg = tmp_path / "cfg.toml"
    cfg.write_text(CONFIG)
    out, pids = tmp_path / "out", tmp_path / "pids"
    proc = start(cfg, out, workers, pids)
    deadline = time.monotonic() + 60
    while counted_rows(out) < 2:
        assert proc.poll() is None, proc.stdout.read()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(0.3)  # inside the next trial(s): each lasts 0.75 s
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    storage = f"sqlite:///{out / 'study.db'}"
    study = optuna.load_study(study_name="s", storage=storage)
    running = [t for t in study.trials if t.state == optuna.trial.TrialState.RUNNING]
    assert running, "the kill should land during a trial"
    before = {t.number: t.params for t in study.trials if t.state.is_finished()}
    # the worker processes die with the driver
    if workers > 1:
        worker_pids = [int(p.name) for p in pids.iterdir() if p.name.isdigit()]
        assert worker_pids
        limit = time.monotonic() + 10
        while any(alive(pid) for pid in worker_pids) and time.monotonic() < limit:
            time.sleep(0.1)
        assert not any(alive(pid) for pid in worker_pids)

    again = start(cfg, out, workers, pids)
    output, _ = again.communicate(timeout=120)
    assert again.returncode == 0, output
    assert f"counted {TRIALS}" in output

    study = optuna.load_study(study_name="s", storage=storage)
    S = optuna.trial.TrialState
    trials = study.trials
    assert not [t for t in trials if t.state in (S.RUNNING, S.WAITING)]
    counted = [t for t in trials if t.state == S.COMPLETE]
    assert len(counted) == TRIALS
    # each slot of the search exactly once among the counted trials: none lost, none twice
    assert sorted(t.user_attrs["slot"] for t in counted) == list(range(TRIALS))
    # finished trials untouched by the restart
    assert all(study.trials[n].params == params for n, params in before.items())
    interrupted = [t for t in trials if t.state == S.FAIL]
    assert {t.number for t in interrupted} == {t.number for t in running}
    for t in interrupted:
        assert t.user_attrs["interrupted"] is True
        retry = [r for r in counted if r.user_attrs.get("retry_of") == t.number]
        assert len(retry) == 1 and retry[0].params == t.params
        assert retry[0].user_attrs["attempt"] == 2
    with open(out / "trials.csv", newline="") as f:
        states = [r["state"] for r in csv.DictReader(f)]
    assert states.count("interrupted") == len(interrupted)
    assert states.count("complete") == TRIALS


@pytest.mark.slow
def test_killed_at_random_moments_the_study_still_ends_exact(tmp_path):
    cfg = tmp_path / "cfg.toml"
    cfg.write_text(CONFIG.replace("trials = 6", 'trials = 6\nstrategy = "coarse-to-fine"'))
    out, pids = tmp_path / "out", tmp_path / "pids"
    rng = __import__("random").Random(0)
    for _ in range(3):
        proc = start(cfg, out, 2, pids)
        time.sleep(1.2 + rng.random() * 1.5)  # start-up takes about a second
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    again = start(cfg, out, 2, pids)
    output, _ = again.communicate(timeout=120)
    assert again.returncode == 0, output
    assert f"counted {TRIALS}" in output
    study = optuna.load_study(study_name="s", storage=f"sqlite:///{out / 'study.db'}")
    S = optuna.trial.TrialState
    complete = [t for t in study.trials if t.state == S.COMPLETE]
    assert sorted(t.user_attrs["slot"] for t in complete) == list(range(TRIALS))
    assert not [t for t in study.trials if t.state in (S.RUNNING, S.WAITING)]
    assert all(t.user_attrs.get("interrupted") for t in study.trials if t.state == S.FAIL)
    # coarse-to-fine rounds survived the kills: 3 rounds of 2
    assert sorted(t.user_attrs["round"] for t in complete) == [0, 0, 1, 1, 2, 2]

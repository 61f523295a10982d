"""Crash and resume: a run killed with SIGKILL and restarted ends exactly like one that never
stopped (same parameters, same metrics, no duplicated or lost rows)."""

from __future__ import annotations

import csv
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import deepfit as df

JOB = Path(__file__).with_name("resume_job.py")


def _run(out: Path, kill_epoch: int) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(JOB), str(out), str(kill_epoch)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def _metrics(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        row.pop("seconds")
    return rows


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
def test_killed_run_resumes_to_the_same_result(tmp_path):
    straight, crashed = tmp_path / "straight", tmp_path / "crashed"
    done = _run(straight, -1)
    assert done.returncode == 0, done.stderr

    killed = _run(crashed, 4)
    assert killed.returncode == -signal.SIGKILL
    assert not (crashed / "final.npz").exists()
    rows_at_crash = _metrics(crashed / "metrics.csv")
    assert [r["epoch"] for r in rows_at_crash] == ["1", "2", "3", "4"]

    resumed = _run(crashed, -1)
    assert resumed.returncode == 0, resumed.stderr

    a, b = np.load(straight / "final.npz"), np.load(crashed / "final.npz")
    assert sorted(a.files) == sorted(b.files)
    for name in a.files:
        assert np.array_equal(a[name], b[name]), name
    assert _metrics(straight / "metrics.csv") == _metrics(crashed / "metrics.csv")
    assert [r["epoch"] for r in _metrics(crashed / "metrics.csv")] == [str(e) for e in range(1, 9)]


def test_resume_continues_an_in_process_run_exactly(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((64, 3)).astype(np.float32)
    y = (X[:, 0] > 0).astype(int)

    def trainer(path):
        model = df.mlp(3, [8], 2, keep_prob=0.7, rng=2)
        return df.Trainer(
            model,
            optimizer=df.Momentum(0.1),
            batch_size=16,
            seed=5,
            callbacks=[df.Checkpoint(path)],
        )

    straight = trainer(tmp_path / "a.npz")
    straight.fit(X, y, epochs=6)
    first = trainer(tmp_path / "b.npz")
    first.fit(X, y, epochs=3)
    second = trainer(tmp_path / "b.npz")  # a fresh process would build exactly this
    history = second.fit(X, y, epochs=6, resume=True)
    assert history["epoch"] == [1, 2, 3, 4, 5, 6]
    assert history["train_loss"] == straight.history["train_loss"]
    for name, value in straight.model.state_dict().items():
        assert np.array_equal(second.model.state_dict()[name], value)


def test_resume_refuses_a_checkpoint_of_another_run(tmp_path):
    X, y = np.ones((8, 3), dtype=np.float32), np.arange(8) % 2
    path = tmp_path / "ckpt.npz"
    df.Trainer(df.mlp(3, [4], 2, rng=0), batch_size=4, callbacks=[df.Checkpoint(path)]).fit(
        X, y, epochs=1
    )
    other = df.Trainer(df.mlp(3, [4], 2, rng=0), batch_size=8, callbacks=[df.Checkpoint(path)])
    with pytest.raises(df.DeepfitError, match="different run \\(batch_size 4 there, 8 here\\)"):
        other.fit(X, y, epochs=2, resume=True)
    wider = df.Trainer(df.mlp(3, [5], 2, rng=0), batch_size=4, callbacks=[df.Checkpoint(path)])
    with pytest.raises(df.DeepfitError, match="architecture differs"):
        wider.fit(X, y, epochs=2, resume=True)


def test_resume_after_early_stopping_does_not_train_on(tmp_path):
    X = np.random.default_rng(0).standard_normal((40, 3)).astype(np.float32)
    y = np.arange(40) % 2  # noise: the dev loss stops improving quickly

    def run():
        model = df.mlp(3, [16], 2, rng=0)
        cbs = [df.EarlyStopping(patience=1), df.Checkpoint(tmp_path / "c.npz")]
        t = df.Trainer(model, optimizer=df.Adam(0.05), batch_size=8, callbacks=cbs)
        return t, t.fit(X, y, epochs=50, validation_data=(X[:10], y[:10]), resume=True)

    first, h1 = run()
    assert h1.stop_reason.startswith("early stopping") and len(h1) < 50
    again, h2 = run()
    assert len(h2) == len(h1) and h2.stop_reason == h1.stop_reason
    for name, value in first.model.state_dict().items():
        assert np.array_equal(again.model.state_dict()[name], value)

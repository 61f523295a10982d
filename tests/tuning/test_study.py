"""The study driver: outputs, counting, pruning, resume with more trials, strategies through
Optuna, parallel worker processes, failing trials, and the command line."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest

pytest.importorskip("optuna")

from deepfit import config as C
from deepfit.cli import main
from deepfit.errors import DeepfitError
from deepfit.tuning import study as T

BOWL = "tests.tuning.objectives:bowl"

BASE = """
[data]
source = "digits"
[model]
hidden = [16]
[train]
epochs = 3
batch_size = 128
[train.early_stopping]
patience = 2
"""


def write(tmp_path: Path, tune: str, name: str = "cfg.toml") -> Path:
    path = tmp_path / name
    path.write_text(BASE + tune)
    return path


SPACE = """
[tune.space.train]
lr = "loguniform(1e-5, 1)"
beta1 = "one_minus_loguniform(0.5, 0.9999)"
"""


def rows(out: Path) -> list[dict[str, str]]:
    with open(out / "trials.csv", newline="") as f:
        return list(csv.DictReader(f))


def run(tmp_path, tune_text, out="out", **kwargs):
    config = C.load(write(tmp_path, tune_text))
    lines: list[str] = []
    kwargs.setdefault("objective", BOWL)
    kwargs.setdefault("plots", False)
    summary = T.tune(config, tmp_path / out, echo=lines.append, **kwargs)
    return summary, lines


def test_study_outputs_counts_and_best_config(tmp_path):
    summary, lines = run(tmp_path, "[tune]\ntrials = 12\n" + SPACE, plots=True)
    out = tmp_path / "out"
    table = rows(out)
    assert [int(r["number"]) for r in table] == list(range(12))
    assert list(table[0]) == [
        "number", "state", "round", "attempt", "train.lr", "train.beta1", "dev_loss", "epochs",
        "seconds", "error",
    ]  # fmt: skip
    assert summary["counted"] == 12 == summary["complete"] + summary["pruned"]
    assert summary["pruned"] >= 1  # the median pruner, on by default
    complete = [r for r in table if r["state"] == "complete"]
    best = min(complete, key=lambda r: float(r["dev_loss"]))
    assert summary["best"]["number"] == int(best["number"])
    resolved = C.load(out / "best.toml")  # a complete config ready for deepfit train
    assert "tune" not in resolved
    assert resolved["train"]["lr"] == pytest.approx(float(best["train.lr"]))
    assert resolved["model"]["hidden"] == [16]
    assert (out / "tune_params.png").stat().st_size > 0 and (out / "tune_rounds.png").exists()
    assert sum(" trial " in line for line in lines) == 12


def test_pruning_can_be_switched_off(tmp_path):
    summary, _ = run(tmp_path, "[tune]\ntrials = 10\npruning = false\n" + SPACE)
    assert summary["pruned"] == 0 and summary["complete"] == 10
    summary, _ = run(tmp_path, "[tune]\ntrials = 10\n" + SPACE, out="o2", pruning=False)
    assert summary["pruned"] == 0


def test_resume_with_more_trials_keeps_the_finished_ones(tmp_path):
    run(tmp_path, "[tune]\ntrials = 5\n" + SPACE)
    first = rows(tmp_path / "out")
    summary, lines = run(tmp_path, "[tune]\ntrials = 8\n" + SPACE)
    table = rows(tmp_path / "out")
    assert len(table) == 8 and table[:5] == first and summary["counted"] == 8
    assert "5 already counted" in lines[0]
    # the same points as one uninterrupted study of 8 (points depend on seed and slot only)
    run(tmp_path, "[tune]\ntrials = 8\n" + SPACE, out="fresh")
    fresh = rows(tmp_path / "fresh")
    assert [r["train.lr"] for r in fresh] == [r["train.lr"] for r in table]


def test_resuming_with_another_space_is_refused(tmp_path):
    run(tmp_path, "[tune]\ntrials = 2\n" + SPACE)
    other = SPACE.replace("1e-5", "1e-4")
    with pytest.raises(DeepfitError, match="different tune.space"):
        run(tmp_path, "[tune]\ntrials = 3\n" + other)


def test_a_second_driver_on_the_same_directory_is_refused(tmp_path):
    out = tmp_path / "out"
    lock = T._Lock(out / T.LOCK_FILE, "test")
    try:
        with pytest.raises(DeepfitError, match="in use by another deepfit tune"):
            run(tmp_path, "[tune]\ntrials = 2\n" + SPACE)
    finally:
        lock.release()


def test_coarse_to_fine_rounds_are_visible(tmp_path):
    text = '[tune]\ntrials = 12\nstrategy = "coarse-to-fine"\nrounds = 3\npruning = false\n'
    _, lines = run(tmp_path, text + SPACE, plots=True)
    table = rows(tmp_path / "out")
    assert [int(r["round"]) for r in table] == [1] * 4 + [2] * 4 + [3] * 4
    assert [line.split(":")[0] for line in lines if line.startswith("round")] == [
        "round 1/3 (4 trials)", "round 2/3 (4 trials)", "round 3/3 (4 trials)",
    ]  # fmt: skip
    # the later rounds sample a smaller region of log(lr)
    logs = [math.log10(float(r["train.lr"])) for r in table]
    assert max(logs[8:]) - min(logs[8:]) < max(logs[:4]) - min(logs[:4])
    assert (tmp_path / "out" / "tune_rounds.png").exists()


def test_grid_and_tpe_through_the_study(tmp_path):
    summary, lines = run(tmp_path, '[tune]\ntrials = 10\nstrategy = "grid"\n' + SPACE)
    assert summary["counted"] == 9  # a 3 x 3 grid within 10
    assert any("no more points" in line for line in lines)
    summary, _ = run(tmp_path, "[tune]\ntrials = 8\n" + SPACE, out="tpe", strategy="tpe")
    table = rows(tmp_path / "tpe")
    assert summary["counted"] == 8
    assert all(1e-5 <= float(r["train.lr"]) <= 1 for r in table)
    assert all(0.5 <= float(r["train.beta1"]) <= 0.9999 for r in table)


def test_parallel_worker_processes_overlap(tmp_path, monkeypatch):
    pids = tmp_path / "pids"
    monkeypatch.setenv("DEEPFIT_TEST_PIDS", str(pids))
    summary, _ = run(
        tmp_path, "[tune]\ntrials = 4\npruning = false\n" + SPACE, workers=2,
        objective="tests.tuning.objectives:sleepy",
    )  # fmt: skip
    assert summary["complete"] == 4
    workers = [p for p in pids.iterdir() if not p.name.startswith("trial-")]
    assert len(workers) == 2  # two worker processes
    spans = [tuple(map(float, p.read_text().split())) for p in pids.glob("trial-*")]
    assert len(spans) == 4
    overlapping = [
        (a, b) for i, a in enumerate(spans) for b in spans[i + 1 :] if a[0] < b[1] and b[0] < a[1]
    ]
    assert overlapping  # trials ran at the same time


def test_a_lost_worker_process_is_retried_then_given_up(tmp_path):
    text = '[tune]\ntrials = 2\nstrategy = "grid"\n[tune.space.train]\nlr = "choice([0.01, 0.5])"\n'
    summary, _ = run(tmp_path, text, workers=2, objective="tests.tuning.objectives:crash")
    table = rows(tmp_path / "out")
    states = [(r["train.lr"], r["state"], r["attempt"]) for r in table]
    assert ("0.01", "complete", "1") in states
    assert [s for s in states if s[0] == "0.5"] == [
        ("0.5", "interrupted", "1"), ("0.5", "interrupted", "2"), ("0.5", "failed", "3"),
    ]  # fmt: skip
    assert "given up after 3 lost workers" in table[-1]["error"] or any(
        "given up" in r["error"] for r in table
    )
    assert summary["counted"] == 2 and summary["interrupted"] == 2


# -- real training, through the command line -------------------------------------------------------
def test_cli_real_training_with_a_diverging_trial_and_two_workers(tmp_path, capsys):
    cfg = write(
        tmp_path,
        '[tune]\ntrials = 4\nstrategy = "grid"\n'
        "[tune.space.train]\noptimizer = \"choice(['sgd'])\"\n"
        'lr = "choice([0.1, 1e5])"\nbatch_size = "choice([64, 128])"\n',
    )
    out = tmp_path / "out"
    code = main(["tune", str(cfg), "--out", str(out), "--workers", "2"])
    text = capsys.readouterr().out
    assert code == 0, text
    table = rows(out)
    by_lr = {(float(r["train.lr"]), int(r["train.batch_size"])): r for r in table}
    assert len(table) == 4
    for bs in (64, 128):
        assert by_lr[(1e5, bs)]["state"] == "failed"
        assert "non-finite loss" in by_lr[(1e5, bs)]["error"]
        assert by_lr[(0.1, bs)]["state"] == "complete"
        assert 1 <= int(by_lr[(0.1, bs)]["epochs"]) <= 3
    assert "4 trials counted: 2 complete, 0 pruned, 2 failed" in text
    best = C.load(out / "best.toml")
    assert best["train"]["lr"] == 0.1 and best["train"]["optimizer"] == "sgd"
    assert main(["train", str(out / "best.toml"), "--out", str(tmp_path / "run"), "--json"]) == 0


def test_cli_dry_run_prints_json_lines_without_training(tmp_path, capsys):
    cfg = write(
        tmp_path, "[tune]\n" + SPACE + '[tune.space.model]\nhidden = "choice([[8], [16, 8]])"\n'
    )
    out = tmp_path / "out"
    assert main(["tune", str(cfg), "--dry-run", "5", "--out", str(out)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    points = [json.loads(line) for line in lines]
    assert len(points) == 5
    assert set(points[0]) == {"train.lr", "train.beta1", "model.hidden"}
    assert all(
        0.5 <= p["train.beta1"] <= 0.9999 and p["model.hidden"] in ([8], [16, 8]) for p in points
    )
    assert not out.exists()


@pytest.mark.parametrize(
    ("tune", "message"),
    [
        ('[tune]\n[tune.space.train]\nlr = "loguniform(1e-4"\n', "tune.space.train.lr"),
        (
            '[tune]\n[tune.space.train]\nlrr = "uniform(0, 1)"\n',
            "'tune.space.train.lrr' is unknown",
        ),
        ('[tune]\nmetric = "test_accuracy"\n' + SPACE, "'tune.metric' must be one of"),
        ("", "no [tune] table"),
    ],
)
def test_cli_refuses_bad_spaces_before_training(tmp_path, capsys, tune, message):
    cfg = write(tmp_path, tune)
    assert main(["tune", str(cfg), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err
    assert not (tmp_path / "out" / "study.db").exists()


def test_cli_train_accepts_and_ignores_a_tune_table(tmp_path):
    cfg = write(tmp_path, "[tune]\ntrials = 3\n" + SPACE)
    assert main(["train", str(cfg), "--out", str(tmp_path / "run"), "--set", "train.epochs=1"]) == 0
    assert main(["tune", str(cfg), "--strategy", "annealing", "--dry-run", "1"]) == 2


def _ghost(tmp_path, slot: int):
    """A RUNNING trial of a driver on another machine, as that driver leaves it."""
    import optuna

    from deepfit.tuning import space as S

    storage = f"sqlite:///{tmp_path / 'out' / 'study.db'}"
    study = optuna.load_study(study_name="deepfit", storage=storage)
    config = C.load(write(tmp_path, "[tune]\n" + SPACE))
    ghost = study.ask(S.optuna_distributions(S.parse(config)))
    for key, value in {"slot": slot, "round": 0, "attempt": 1, "driver": "elsewhere:1"}.items():
        ghost.set_user_attr(key, value)
    return study, ghost


def test_shared_storage_retries_a_dead_drivers_trial_after_the_grace_period(tmp_path, monkeypatch):
    """As with PostgreSQL (several drivers): Optuna's heartbeat on the database's clock. The
    dead driver's trial has no heartbeat; the live driver stamps one, and once it is older
    than the grace period Optuna fails it and the retry callback enqueues the same values."""
    import optuna

    run(tmp_path, "[tune]\ntrials = 2\n" + SPACE)
    _, ghost = _ghost(tmp_path, slot=2)
    monkeypatch.setattr(T, "_is_sqlite", lambda url: False)
    summary, lines = run(
        tmp_path, "[tune]\ntrials = 3\n" + SPACE, heartbeat_interval=1, grace_period=1
    )
    assert summary["counted"] == 3 and summary["interrupted"] == 1
    assert any(f"trial {ghost.number}: interrupted" in line for line in lines)
    trials = optuna.load_study(
        study_name="deepfit", storage=f"sqlite:///{tmp_path / 'out' / 'study.db'}"
    ).trials
    failed = trials[ghost.number]
    assert failed.state == optuna.trial.TrialState.FAIL and not T.counted(failed)
    retry = [t for t in trials if t.user_attrs.get("retry_of") == ghost.number]
    assert len(retry) == 1 and retry[0].params == ghost.params
    assert retry[0].user_attrs["attempt"] == 2 and retry[0].user_attrs["slot"] == 2
    assert retry[0].state == optuna.trial.TrialState.COMPLETE
    assert retry[0].system_attrs["failed_trial"] == ghost.number  # Optuna's own record
    with open(tmp_path / "out" / "trials.csv", newline="") as f:
        states = [r["state"] for r in csv.DictReader(f)]
    assert states.count("interrupted") == 1 and states.count("complete") == 3


def test_a_driver_with_a_wrong_clock_does_not_interrupt_a_live_trial(tmp_path, monkeypatch):
    """The driver's clock is an hour ahead; another driver's trial is alive (beating) and ends
    after a few seconds. It is never failed: staleness is judged by the database's clock."""
    import threading
    import time

    import optuna

    run(tmp_path, "[tune]\ntrials = 2\n" + SPACE)
    study, ghost = _ghost(tmp_path, slot=2)
    storage = study._storage
    trial_id = ghost._trial_id

    def live_driver() -> None:  # beats every 0.3 s for 3 s, then completes its trial
        for _ in range(10):
            storage.record_heartbeat(trial_id)
            time.sleep(0.3)
        study.tell(ghost, 1.5)

    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + 3600)
    monkeypatch.setattr(T, "_is_sqlite", lambda url: False)
    other = threading.Thread(target=live_driver)
    other.start()
    try:
        summary, lines = run(
            tmp_path, "[tune]\ntrials = 3\n" + SPACE, heartbeat_interval=1, grace_period=2
        )
    finally:
        other.join()
    assert summary["counted"] == 3 and summary["interrupted"] == 0
    assert not any("interrupted" in line for line in lines)
    trials = optuna.load_study(
        study_name="deepfit", storage=f"sqlite:///{tmp_path / 'out' / 'study.db'}"
    ).trials
    assert trials[ghost.number].state == optuna.trial.TrialState.COMPLETE
    assert not [t for t in trials if t.user_attrs.get("retry_of") == ghost.number]

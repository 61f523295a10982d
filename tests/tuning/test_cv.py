"""``tune.cv = k``: a trial is k trainings on the folds of the non-test rows, scored by the mean
held-out metric, reported fold by fold (prunable after the first), cut by the deadline between
and within folds, resumable after ``kill -9``; small tables turn it on in a budgeted search."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

optuna = pytest.importorskip("optuna")

from deepfit import config as C  # noqa: E402
from deepfit import experiment  # noqa: E402
from deepfit.tuning import study as T  # noqa: E402
from deepfit.tuning import table_search as TS  # noqa: E402
from deepfit.tuning import worker as W  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]

BASE = {
    "data": {"source": "digits", "split": [0.8, 0.1, 0.1]},
    "model": {"hidden": [8]},
    "train": {"epochs": 6, "batch_size": 128, "early_stopping": {"patience": 2}},
}


def base(**train):
    return C.validate({**BASE, "train": {**BASE["train"], **train}})


def recorder(into: list, answer: bool = False):
    """A ``report`` that keeps the fold steps (not the ticks, step 0) and answers ``answer``."""

    def report(step: int, value: float) -> bool:
        if step:
            into.append((step, value))
        else:
            assert math.isnan(value)
        return answer

    return report


def payload(config, cv, **extra):
    return {"number": 0, "config": config, "metric": "dev_loss", "cv": cv, **extra}


# -- the worker ----------------------------------------------------------------------------------
def test_a_cv_trial_is_the_mean_of_k_separate_runs_on_the_same_folds():
    config = base()
    reports: list[tuple[int, float]] = []
    result = W.train(payload(config, 3), recorder(reports))
    runs = [
        experiment.run(config, None, progress=False, prepared=experiment.prepare(config, fold=f))
        for f in ((0, 3), (1, 3), (2, 3))
    ]
    losses = [r["dev"]["loss"] for r in runs]
    assert result["state"] == "complete" and result["folds"] == 3
    assert result["fold_values"] == losses  # the same folds, the same training, bit for bit
    assert result["value"] == sum(losses) / 3
    assert 0.05 < result["value"] < 3.0
    # the running mean after each fold, steps 1..k
    assert [s for s, _ in reports] == [1, 2, 3]
    assert reports[0][1] == losses[0] and reports[1][1] == (losses[0] + losses[1]) / 2
    assert reports[2][1] == result["value"]
    best = [r["best_epoch"] for r in runs]
    assert result["best_epoch"] == math.floor(sum(best) / 3 + 0.5)
    assert result["epochs"] == math.floor(sum(r["epochs_run"] for r in runs) / 3 + 0.5)
    # each fold's dev set is another third of the non-test rows
    sizes = [r["n_dev"] for r in runs]
    assert max(sizes) - min(sizes) <= 1 and sum(sizes) == runs[0]["n_train"] + runs[0]["n_dev"]


def test_the_folds_are_cached_per_worker(monkeypatch):
    W._PREPARED.clear()
    calls: list[object] = []
    real = experiment.prepare
    monkeypatch.setattr(
        experiment, "prepare", lambda c, fold=None: calls.append(fold) or real(c, fold=fold)
    )
    config = base(epochs=1)
    for _ in range(2):
        W.train(payload(config, 2), lambda s, v: False)
    assert calls == [(0, 2), (1, 2)]


def test_a_cv_trial_is_pruned_after_its_first_fold():
    config = base()
    steps: list[tuple[int, float]] = []
    result = W.train(payload(config, 4), recorder(steps, True))
    assert [s for s, _ in steps] == [1]
    assert result["state"] == "pruned" and result["folds"] == 1
    assert result["value"] == result["fold_values"][0]
    one = experiment.run(
        config, None, progress=False, prepared=experiment.prepare(config, fold=(0, 4))
    )
    assert result["value"] == one["dev"]["loss"]
    assert result["stop_reason"] == "pruned after fold 1 of 4"


def test_the_deadline_stops_a_cv_trial_within_its_first_fold():
    config = base(epochs=50)
    steps: list[tuple[int, float]] = []
    result = W.train(payload(config, 3, deadline=time.time() - 1), recorder(steps))
    assert result["state"] == "complete" and result["folds"] == 1 and steps == []
    assert result["epochs"] == 1 and result["best_epoch"] == 1
    assert result["stop_reason"] == f"{W.DEADLINE_REASON} in fold 1 of 3"
    assert result["value"] == result["fold_values"][0] > 0


def test_the_deadline_stops_a_cv_trial_between_folds(monkeypatch):
    config = base()
    folds_done: list[tuple[int, float]] = []  # the clock passes the deadline at fold 1's report
    monkeypatch.setattr(W, "past_deadline", lambda p: bool(folds_done))
    result = W.train(payload(config, 3, deadline=0.0), recorder(folds_done))
    assert (
        [s for s, _ in folds_done] == [1] and result["folds"] == 1 and result["state"] == "complete"
    )
    assert result["stop_reason"] == f"{W.DEADLINE_REASON} after fold 1 of 3"
    assert result["value"] == result["fold_values"][0]


def test_a_cv_trial_ticks_between_its_fold_reports_and_the_driver_records_only_its_budget(
    tmp_path, monkeypatch
):
    reports: list[tuple[int, float]] = []
    tick = W.Tick(lambda s, v: reports.append((s, v)) or True, every=0.0)
    for epoch in range(3):
        tick.on_epoch_end(None, epoch, {})
    assert len(reports) == 3 and all(s == 0 and math.isnan(v) for s, v in reports)
    # the driver: a tick records the budget, reports nothing to Optuna and prunes nothing
    config = tuned(tmp_path, trials=1, cv=2, budget="1h")
    tuner = T.Tuner(config, tmp_path / "out")
    recorded: list[bool] = []
    monkeypatch.setattr(tuner.budget, "record", lambda force=False: recorded.append(force))

    class Trial:
        def report(self, value, step):
            raise AssertionError("a tick is no step")

    tuner.running[0] = Trial()
    assert tuner.decide(0, 0, math.nan) is False and recorded == [False]


def test_a_failing_fold_fails_the_trial_in_one_line():
    config = base(lr=1e6, optimizer="sgd")
    result = W.run_trial(payload(config, 3), lambda s, v: False)
    assert result["state"] == "failed" and result["value"] is None
    error = result["error"]
    assert error.startswith("DeepfitError: fold 1 of 3: TrainingDiverged: training diverged")
    assert "\n" not in error


# -- the driver ----------------------------------------------------------------------------------
SPACE = {"train": {"lr": "choice([0.01, 0.011, 0.012, 0.013, 0.014, 1e-7, 1.1e-7])"}}


def tuned(tmp_path, **tune):
    return C.validate({**BASE, "tune": {"strategy": "grid", "space": SPACE, **tune}})


def test_the_median_pruner_stops_cv_trials_after_one_fold(tmp_path):
    config = tuned(tmp_path, trials=7, cv=3)
    pruner = T.Tuner(config, tmp_path / "unused")._pruner()
    assert isinstance(pruner, optuna.pruners.MedianPruner) and pruner._n_warmup_steps == 0
    hyper = T.Tuner(C.validate({**config, "tune": {**config["tune"], "pruner": "hyperband"}}),
                    tmp_path / "unused2")._pruner()  # fmt: skip
    assert hyper._max_resource == 3
    out = tmp_path / "out"
    summary = T.tune(config, out, plots=False, echo=lambda _: None)
    assert summary["counted"] == 7 and summary["complete"] == 5 and summary["pruned"] == 2
    study = optuna.load_study(study_name="deepfit", storage=f"sqlite:///{out / 'study.db'}")
    S = optuna.trial.TrialState
    for t in study.trials:
        if t.state == S.PRUNED:  # lr 1e-7 learns nothing: stopped after its first fold
            assert t.params["train.lr"] < 1e-6
            assert list(t.intermediate_values) == [1] and t.user_attrs["folds"] == 1
            assert t.user_attrs["stop_reason"] == "pruned after fold 1 of 3"
        else:
            assert list(t.intermediate_values) == [1, 2, 3] and t.user_attrs["folds"] == 3
            assert t.value == pytest.approx(t.intermediate_values[3], rel=0, abs=0)
    assert study.user_attrs["deepfit"]["cv"] == 3
    assert summary["best"]["folds"] == 3


def test_the_winner_refits_on_all_non_test_rows_for_the_folds_mean_best_epoch(tmp_path):
    config = tuned(tmp_path, trials=2, cv=3, pruning=False)
    config["train"]["refit"] = True
    out = tmp_path / "out"
    summary = T.tune(config, out, plots=False, echo=lambda _: None, train_best=True)
    best = summary["best"]
    assert best["best_epoch"] >= 1
    run = C.load(out / "best" / "config.toml")
    assert run["train"]["epochs"] == best["best_epoch"]
    assert run["train"]["early_stopping"]["enabled"] is False
    written = experiment.load_summary(out / "best")
    assert written["refit"]["epochs"] == best["best_epoch"]
    assert written["refit"]["n_rows"] == written["n_train"] + written["n_dev"]


def partial(payload, report):
    """Trial 1 ends with fewer folds than ``cv`` (as the deadline leaves it)."""
    folds = 1 if payload["number"] == 1 else int(payload["cv"])
    value = 1.0 if payload["number"] == 1 else 2.0 + payload["number"]
    return {"state": "complete", "value": value, "folds": folds, "epochs": 1}


def partial_first(payload, report):
    """Trial 0 ends with fewer folds than ``cv``, before any other trial finished."""
    folds = 1 if payload["number"] == 0 else int(payload["cv"])
    return {"state": "complete", "value": 5.0 - payload["number"], "folds": folds, "epochs": 1}


@pytest.mark.parametrize("first_partial", [False, True])
def test_a_trial_the_deadline_cut_short_is_pruned_if_another_has_all_folds(tmp_path, first_partial):
    config = tuned(tmp_path, trials=3, cv=3, pruning=False)
    objective = "tests.tuning.test_cv:" + ("partial_first" if first_partial else "partial")
    out = tmp_path / "out"
    summary = T.tune(config, out, plots=False, objective=objective)
    study = optuna.load_study(study_name="deepfit", storage=f"sqlite:///{out / 'study.db'}")
    S = optuna.trial.TrialState
    if first_partial:  # nothing had finished: its mean of one fold was all there was
        assert summary["complete"] == 3 and study.trials[0].state == S.COMPLETE
        assert study.trials[0].user_attrs["folds"] == 1
    else:  # a better value (1.0) on one fold does not beat the full means (2.0, 4.0)
        assert summary["complete"] == 2 and summary["pruned"] == 1
        assert study.trials[1].state == S.PRUNED and study.trials[1].user_attrs["folds"] == 1
        assert summary["best"]["number"] == 0 and summary["best"]["value"] == 2.0


# -- bad values ----------------------------------------------------------------------------------
@pytest.mark.parametrize("value", [0, -2, 2.5, "5", True])
def test_bad_tune_cv_values_are_refused_in_one_line(value):
    with pytest.raises(C.ConfigError) as info:
        C.validate({**BASE, "tune": {"cv": value}})
    message = str(info.value)
    assert message.startswith("config key 'tune.cv' must be an integer >= 1, got ")
    assert "\n" not in message


def test_tune_cv_with_pack_is_refused_naming_both_keys(tmp_path):
    config = tuned(tmp_path, trials=2, cv=3, pack=2)
    with pytest.raises(C.ConfigError) as info:
        T.tune(config, tmp_path / "out", plots=False)
    assert "'tune.pack' = 2" in str(info.value) and "'tune.cv' = 3" in str(info.value)
    assert "\n" not in str(info.value)
    assert not (tmp_path / "out").exists()


def test_tune_cv_with_a_dev_file_is_refused(tmp_path):
    config = tuned(tmp_path, trials=2, cv=3)
    config["data"]["dev_path"] = "dev.npz"
    with pytest.raises(C.ConfigError, match=r"'tune.cv' = 3.*data.dev_path"):
        T.tune(config, tmp_path / "out", plots=False)


def test_the_cli_refuses_a_bad_tune_cv_in_one_line(tmp_path, capsys):
    from deepfit.cli import main

    cfg = tmp_path / "c.toml"
    cfg.write_text(
        '[data]\nsource = "digits"\n[tune]\ncv = 0\n'
        '[tune.space.train]\nlr = "loguniform(1e-3, 1e-1)"\n'
    )
    code = main(["tune", str(cfg), "--out", str(tmp_path / "o")])
    assert code == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and "'tune.cv' must be an integer >= 1, got 0" in lines[0]


# -- the budgeted table search ------------------------------------------------------------------
def table_base():
    return C.validate({"data": {"source": "csv", "path": "t.csv", "target": "y"}})


@pytest.mark.parametrize(("rows", "cv"), [(344, 5), (1999, 5), (2000, 1), (46_000, 1), (None, 1)])
def test_small_tables_are_cross_validated(rows, cv):
    resolved = TS.search_config(table_base(), "regression", "5m", rows=rows)
    assert resolved["tune"]["cv"] == cv


def test_the_user_s_tune_cv_wins_over_the_rule():
    config = C.validate({**table_base(), "tune": {"cv": 1, "metric": "dev_loss"}})
    resolved = TS.search_config(
        config, "classification", "5m", rows=300, fixed=["tune.cv", "tune.metric"]
    )
    assert resolved["tune"]["cv"] == 1 and resolved["tune"]["metric"] == "dev_loss"
    config["tune"]["cv"] = 3  # a config file's [tune] cv, not --set
    assert TS.search_config(config, "regression", "5m", rows=50_000)["tune"]["cv"] == 3
    assert TS.search_config(table_base(), "classification", "5m", rows=300)["tune"]["metric"] == (
        "dev_accuracy"
    )


# -- kill -9 ------------------------------------------------------------------------------------
def slow_folds(payload, report):
    """The real cross-validated trial, 0.3 s slower per fold, recording the worker's pid."""
    pids = Path(os.environ["DEEPFIT_TEST_PIDS"])
    pids.mkdir(parents=True, exist_ok=True)
    (pids / str(os.getpid())).touch()

    def slow(step, value):
        time.sleep(0.3)
        return report(step, value)

    return W.train_folds(payload, slow)


KILL_CONFIG = """
[data]
source = "digits"
split = [0.8, 0.1, 0.1]
[model]
hidden = [8]
[train]
epochs = 2
batch_size = 256
[tune]
trials = 5
cv = 3
pruning = false
[tune.space.train]
lr = "loguniform(1e-3, 1e-1)"
"""

DRIVER = """
import sys
from deepfit import config as C
from deepfit.tuning import tune
summary = tune(C.load(sys.argv[1]), sys.argv[2], study="s",
               objective="tests.tuning.test_cv:slow_folds", plots=False)
print("counted", summary["counted"])
"""


def start(cfg: Path, out: Path, pids: Path) -> subprocess.Popen:
    env = {**os.environ, "DEEPFIT_TEST_PIDS": str(pids), "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-c", DRIVER, str(cfg), str(out)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


@pytest.mark.slow
def test_kill_9_mid_cv_trial_then_resume_loses_no_finished_trial(tmp_path):
    cfg = tmp_path / "cfg.toml"
    cfg.write_text(KILL_CONFIG)
    out, pids = tmp_path / "out", tmp_path / "pids"
    storage = f"sqlite:///{out / 'study.db'}"
    proc = start(cfg, out, pids)
    deadline = time.monotonic() + 120
    S = optuna.trial.TrialState
    while True:  # wait until two trials finished and the third is between its folds
        assert proc.poll() is None, proc.stdout.read()
        assert time.monotonic() < deadline
        if (out / "trials.csv").exists():
            study = optuna.load_study(study_name="s", storage=storage)
            done = [t for t in study.trials if t.state == S.COMPLETE]
            running = [t for t in study.trials if t.state == S.RUNNING]
            if len(done) >= 2 and running and running[0].intermediate_values:
                break
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    study = optuna.load_study(study_name="s", storage=storage)
    before = {
        t.number: (t.params, t.value, t.user_attrs["folds"])
        for t in study.trials
        if t.state.is_finished()
    }
    running = [t for t in study.trials if t.state == S.RUNNING]
    assert running and all(t.intermediate_values for t in running)

    again = start(cfg, out, pids)
    output, _ = again.communicate(timeout=300)
    assert again.returncode == 0, output
    assert "counted 5" in output
    study = optuna.load_study(study_name="s", storage=storage)
    trials = study.trials
    complete = [t for t in trials if t.state == S.COMPLETE]
    assert sorted(t.user_attrs["slot"] for t in complete) == list(range(5))
    assert all(t.user_attrs["folds"] == 3 and sorted(t.intermediate_values) == [1, 2, 3]
               for t in complete)  # fmt: skip
    for n, (params, value, folds) in before.items():  # finished trials untouched
        assert (trials[n].params, trials[n].value, trials[n].user_attrs["folds"]) == (
            params,
            value,
            folds,
        )
    for t in running:  # the interrupted trial ran again, all its folds, with the same values
        assert trials[t.number].state == S.FAIL and trials[t.number].user_attrs["interrupted"]
        retry = [r for r in complete if r.user_attrs.get("retry_of") == t.number]
        assert len(retry) == 1 and retry[0].params == t.params

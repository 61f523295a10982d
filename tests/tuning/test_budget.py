"""``--budget``: a search runs until its time is spent (a trial that would start after the
deadline is not started), counts its time across reruns, survives ``kill -9`` losing no
finished trial, and trains the winner into ``OUT/best``."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

optuna = pytest.importorskip("optuna")

from deepfit import config as C  # noqa: E402
from deepfit.cli import main  # noqa: E402
from deepfit.errors import DeepfitError  # noqa: E402
from deepfit.tuning import budget as B  # noqa: E402
from deepfit.tuning import study as T  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
SLEEPY = "tests.tuning.objectives:sleepy"

CONFIG = """
[data]
source = "digits"
[model]
hidden = [16]
[train]
epochs = 3
batch_size = 128
[tune]
pruning = false
budget = "BUDGET"
[tune.space.use]
mix = "choice([false, true])"
[tune.space.train]
lr = "loguniform(1e-5, 1)"
beta1 = "one_minus_loguniform(0.5, 0.9999)"
[tune.space.train.mixup]
alpha = "uniform(0.1, 1) if use.mix"
"""


def write(tmp_path: Path, budget: str, extra: str = "") -> Path:
    path = tmp_path / "cfg.toml"
    path.write_text(CONFIG.replace("BUDGET", budget) + extra)
    return path


def load(out: Path):
    return optuna.load_study(study_name="s", storage=f"sqlite:///{out / 'study.db'}")


def trial_times(pids: Path) -> list[tuple[float, float]]:
    return sorted(
        tuple(map(float, p.read_text().split())) for p in pids.iterdir() if p.name[:6] == "trial-"
    )


# -- durations --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("5m", 300), ("1h", 3600), ("1h30m", 5400), ("1.5h", 5400), ("300", 300),
     ("2 min", 120), (3, 3)],
)  # fmt: skip
def test_durations(text, seconds):
    assert B.parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["5x", "m", "", "-3", "0", "1h5", "five minutes"])
def test_bad_durations_are_refused_naming_the_option(text):
    with pytest.raises(C.ConfigError, match="--budget"):
        B.parse_duration(text)


def test_a_bad_tune_budget_is_refused_before_any_training(tmp_path):
    config = C.load(write(tmp_path, "soon"))
    with pytest.raises(C.ConfigError, match="tune.budget = 'soon'"):
        T.tune(config, tmp_path / "out", objective=SLEEPY)
    assert not (tmp_path / "out").exists()


# -- the search stops on time -------------------------------------------------------------------
def test_the_search_stops_when_the_budget_is_spent_and_resumes_with_none_left(
    tmp_path, monkeypatch
):
    pids = tmp_path / "pids"
    monkeypatch.setenv("DEEPFIT_TEST_PIDS", str(pids))
    monkeypatch.setenv("DEEPFIT_TEST_EPOCH_S", "0.1")  # 0.3 s trials
    config = C.load(write(tmp_path, "2s"))
    out = tmp_path / "out"
    lines: list[str] = []
    summary = T.tune(
        config,
        out,
        study="s",
        trials=T.UNLIMITED_TRIALS,
        objective=SLEEPY,
        plots=False,
        echo=lines.append,
    )
    end = time.time()
    spent = summary["budget"]
    assert spent["seconds"] == 2.0
    assert summary["counted"] >= 2 and summary["best"] is not None
    assert "trials until the budget is spent" in lines[0]
    assert any("the budget (2.0s) is spent" in line for line in lines)
    times = trial_times(pids)
    assert len(times) == summary["counted"]
    # the budget's clock starts when the study is open; no trial started after its deadline,
    # and the last one, started in time, was allowed to finish: within budget + one trial
    deadline = end - spent["this_run"] + 2.0
    assert all(start <= deadline + 0.2 for start, _ in times)
    longest = max(stop - start for start, stop in times)
    assert 2.0 <= spent["spent"] <= 2.0 + longest + 1.0
    assert spent["this_run"] == pytest.approx(spent["spent"])
    # the winner is trained (the default with a budget) into OUT/best: a normal run directory
    assert summary["best_run"]["out"] == str(out / "best")
    assert (out / "best" / "model.npz").exists() and "best/" in summary["files"]

    # the same command again: the budget is spent, nothing new starts, the outputs stay
    lines.clear()
    again = T.tune(
        config, out, study="s", trials=T.UNLIMITED_TRIALS, objective=SLEEPY, plots=False,
        echo=lines.append, train_best=False,
    )  # fmt: skip
    assert again["counted"] == summary["counted"]
    assert any("no new trial" in line for line in lines)
    assert again["budget"]["spent"] >= spent["spent"]
    assert len(trial_times(pids)) == summary["counted"]


def test_trials_still_cap_a_budgeted_search(tmp_path, monkeypatch):
    monkeypatch.setenv("DEEPFIT_TEST_PIDS", str(tmp_path / "pids"))
    monkeypatch.setenv("DEEPFIT_TEST_EPOCH_S", "0.01")
    config = C.load(write(tmp_path, "1h"))
    summary = T.tune(
        config, tmp_path / "out", trials=3, objective=SLEEPY, plots=False, train_best=False
    )
    assert summary["counted"] == 3 and summary["budget"]["spent"] < 3600
    assert summary["best_run"] is None and not (tmp_path / "out" / "best").exists()


# -- kill -9 ------------------------------------------------------------------------------------
DRIVER = """
import sys
from deepfit import config as C
from deepfit.tuning import tune
from deepfit.tuning.study import UNLIMITED_TRIALS
summary = tune(C.load(sys.argv[1]), sys.argv[2], study="s", trials=UNLIMITED_TRIALS,
               objective="tests.tuning.objectives:sleepy", plots=False, train_best=False)
print("counted", summary["counted"], "spent", summary["budget"]["spent"])
"""


def start(cfg: Path, out: Path, pids: Path) -> subprocess.Popen:
    env = {
        **os.environ,
        "DEEPFIT_TEST_PIDS": str(pids),
        "DEEPFIT_TEST_EPOCH_S": "0.25",
        "PYTHONPATH": str(ROOT),
    }
    return subprocess.Popen(
        [sys.executable, "-c", DRIVER, str(cfg), str(out)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def counted_rows(out: Path) -> int:
    try:
        with open(out / "trials.csv", newline="") as f:
            return sum(r["state"] == "complete" for r in csv.DictReader(f))
    except FileNotFoundError:
        return 0


@pytest.mark.slow
def test_kill_9_then_rerun_loses_no_trial_and_ends_within_budget_plus_one_trial(tmp_path):
    budget = 5.0
    cfg = write(tmp_path, "5s")
    out, pids = tmp_path / "out", tmp_path / "pids"
    proc = start(cfg, out, pids)
    deadline = time.monotonic() + 60
    while counted_rows(out) < 2:
        assert proc.poll() is None, proc.stdout.read()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(0.3)  # inside the next trial (0.75 s each)
    os.kill(proc.pid, signal.SIGKILL)
    killed_at = time.time()
    proc.wait()
    study = load(out)
    S = optuna.trial.TrialState
    before = {t.number: t.params for t in study.trials if t.state == S.COMPLETE}
    running = [t for t in study.trials if t.state == S.RUNNING]
    assert running, "the kill should land during a trial"
    first = min(start for start, _ in trial_times(pids))
    recorded = B.Budget.spent_in(study.user_attrs)
    # the killed run's time was kept (written at least every second while it worked)
    assert killed_at - first - 1.5 <= recorded <= killed_at - first + 0.5

    again = start(cfg, out, pids)
    output, _ = again.communicate(timeout=120)
    assert again.returncode == 0, output
    study = load(out)
    trials = study.trials
    # no finished trial lost or changed
    assert all(trials[n].state == S.COMPLETE and trials[n].params == p for n, p in before.items())
    assert not [t for t in trials if t.state == S.RUNNING]
    # the interrupted trial was retried with the same values (conditional keys included)
    for t in running:
        frozen = trials[t.number]
        assert frozen.state == S.FAIL and frozen.user_attrs["interrupted"] is True
        retry = [r for r in trials if r.user_attrs.get("retry_of") == t.number]
        assert len(retry) == 1 and retry[0].params == t.params
    # both runs together: within the budget plus one trial (and the second one's start-up)
    spent = B.Budget.spent_in(study.user_attrs)
    longest = max(stop - start for start, stop in trial_times(pids))
    assert budget <= spent <= budget + longest + 1.0
    sessions = [k for k in study.user_attrs if k.startswith(B.PREFIX)]
    assert len(sessions) == 2
    # trials.csv lists every trial: inactive conditional keys as empty cells
    with open(out / "trials.csv", newline="") as f:
        table = list(csv.DictReader(f))
    assert {int(r["number"]) for r in table} >= set(before)
    for r in table:
        if r["state"] == "complete":
            assert (r["train.mixup.alpha"] == "") == (r["use.mix"] == "False")


# -- the command line -------------------------------------------------------------------------
def test_tune_budget_on_the_command_line(tmp_path, capsys):
    cfg = write(tmp_path, "1h").as_posix()
    out = tmp_path / "out"
    code = main(["tune", cfg, "--budget", "2s", "--out", str(out), "--json", "--pruner", "none"])
    summary = json.loads(capsys.readouterr().out)
    assert code == 0
    assert summary["budget"]["seconds"] == 2.0 and summary["counted"] >= 1
    assert (out / "best" / "model.npz").exists()
    assert json.loads((out / "importance.json").read_text())
    code = main(["tune", cfg, "--budget", "5x", "--out", str(tmp_path / "o2")])
    assert code == 2
    assert "--budget = '5x' is not a duration" in capsys.readouterr().err


def test_train_budget_needs_a_table(tmp_path, capsys):
    code = main(["train", write(tmp_path, "1h").as_posix(), "--budget", "1m"])
    assert code == 2
    assert "--budget searches a table's recipe" in capsys.readouterr().err


TABLE = "x1,x2,color,y\n" + "".join(
    f"{i % 7},{(i * 3) % 11},{['red', 'green', 'blue'][i % 3]},{(i % 7) * 2.5 + i / 97:.3f}\n"
    for i in range(60)
)


@pytest.mark.slow
def test_train_data_budget_searches_the_table_space_and_trains_the_winner(tmp_path, capsys):
    data = tmp_path / "t.csv"
    data.write_text(TABLE)
    out = tmp_path / "search"
    code = main(
        ["train", "--data", str(data), "--target", "y", "--budget", "3s", "--out", str(out),
         "--set", "train.epochs=4", "--set", "train.mixup.kind=none"]
    )  # fmt: skip
    text = capsys.readouterr().out
    assert code == 0, text
    assert "best: trial" in text and "run directory" in text
    study = load_table(out)
    keys = set().union(*(t.params for t in study.trials))
    assert "train.lr" in keys
    # --set keys are left out of the search, and the keys they switch off with them
    assert not {"train.mixup.kind", "train.mixup.alpha"} & keys
    assert "train.label_smoothing" not in keys  # a regression table
    # the first trial is the recipe itself, every technique off
    from deepfit.tuning import space as S

    space = S.Space.from_description(study.user_attrs["deepfit"]["space"])
    first = S.from_optuna(space, study.trials[0].params)
    assert first["model.hidden"] == [128] and first["train.lr"] == 0.001
    assert not any(v for k, v in first.items() if k.startswith("use."))
    best = C.validate(__import__("tomllib").loads((out / "best" / "config.toml").read_text()))
    # 60 rows: cross-validated (tune.cv = 5), so the winner trains for its folds' mean best
    # epoch (at most the 4 of --set, fewer if the deadline cut its folds on a slow machine)
    assert study.user_attrs["deepfit"]["cv"] == 5
    winner = study.best_trial
    assert best["train"]["epochs"] == winner.user_attrs["best_epoch"] <= 4
    assert best["train"]["refit"] is True
    code = main(["evaluate", str(out / "best" / "model.npz"), str(data), "--json"])
    assert code == 0
    assert "r2" in json.loads(capsys.readouterr().out)[str(data)]
    # another config in the same directory is refused, pointing at --overwrite
    code = main(
        ["train", "--data", str(data), "--target", "y", "--budget", "3s", "--out", str(out),
         "--set", "train.epochs=5"]
    )  # fmt: skip
    assert code == 2
    err = capsys.readouterr().err
    assert "train.epochs (4 -> 5)" in err and "--overwrite" in err


def load_table(out: Path):
    return optuna.load_study(study_name="table", storage=f"sqlite:///{out / 'study.db'}")


def test_a_search_without_budget_has_no_budget_entry(tmp_path, monkeypatch):
    monkeypatch.setenv("DEEPFIT_TEST_PIDS", str(tmp_path / "pids"))
    monkeypatch.setenv("DEEPFIT_TEST_EPOCH_S", "0.01")
    config = C.load(write(tmp_path, ""))
    summary = T.tune(config, tmp_path / "out", trials=2, objective=SLEEPY, plots=False)
    assert "budget" not in summary and summary["best_run"] is None
    with pytest.raises(DeepfitError):
        T.Settings.from_config(config, budget="never")

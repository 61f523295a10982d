"""``deepfit tune --pack K``: the driver trains groups of trials as one packed network, and each
member is still an Optuna trial of its own (count, values, pruning, failures, kill -9 resume,
worker processes, Ray)."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

optuna = pytest.importorskip("optuna")

from deepfit import config as C  # noqa: E402
from deepfit.cli import main  # noqa: E402
from deepfit.errors import DeepfitError  # noqa: E402
from deepfit.tuning import study as T  # noqa: E402
from deepfit.tuning import worker  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
HERE = "tests.tuning.test_pack_driver"


# -- group objectives for the tests (run in the driver, a worker process or a Ray task) ---------
def slow_group(payloads, report):
    """The real packed training, each report 0.03 s slower (``DEEPFIT_TEST_PIDS``: the
    worker's pid and ``group-N``, N the group's first trial, are recorded there)."""
    pids = os.environ.get("DEEPFIT_TEST_PIDS")
    if pids:
        Path(pids).mkdir(parents=True, exist_ok=True)
        (Path(pids) / str(os.getpid())).touch()
        (Path(pids) / f"group-{payloads[0]['number']}").touch()

    def slow(number, epoch, value):
        time.sleep(0.03)
        return report(number, epoch, value)

    return worker.train_group(payloads, slow)


def broken_group(payloads, report):
    """A group whose setup raises."""
    raise DeepfitError("the group's data went away\nsecond line")


# -- tables and configs ---------------------------------------------------------------------------
def write_table(path: Path, kind: str = "classification") -> Path:
    rng = np.random.default_rng(0)
    X = rng.standard_normal((240, 3))
    cats = rng.integers(0, 4, 240)
    if kind == "classification":
        target = np.where(X[:, 0] * X[:, 1] + 0.2 * rng.standard_normal(240) > 0, "a", "b")
    else:
        target = np.array([f"{v:.5f}" for v in X[:, 0] + X[:, 1] * X[:, 2]])
    with open(path, "w") as f:
        f.write("x,y,z,city,label\n")
        for row, c, t in zip(X, cats, target, strict=True):
            f.write(f"{row[0]:.5f},{row[1]:.5f},{row[2]:.5f},c{c},{t}\n")
    return path


def config_text(table: Path, tune: str, *, data: str = "", train: str = "") -> str:
    return f"""
[data]
source = "csv"
path = "{table}"
target = "label"
{data}
[model]
hidden = [12, 8]
[train]
epochs = 12
batch_size = 32
dtype = "float64"
{train}
[train.early_stopping]
patience = 3
{tune}
"""


SEARCH = """
[tune]
trials = 6
pruning = false
[tune.space.train]
lr = "loguniform(1e-3, 1e-1)"
weight_decay = "loguniform(1e-5, 1e-2)"
[tune.space.model]
keep_prob = "uniform(0.7, 1.0)"
"""


def load(out: Path, name: str = "deepfit"):
    return optuna.load_study(study_name=name, storage=f"sqlite:///{out / 'study.db'}")


def rows(out: Path) -> list[dict[str, str]]:
    with open(out / "trials.csv", newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def table(tmp_path_factory) -> Path:
    return write_table(tmp_path_factory.mktemp("table") / "train.csv")


@pytest.fixture(scope="module")
def one_by_one(table, tmp_path_factory):
    """The 6-trial search with pack 1 (today's path): the reference."""
    out = tmp_path_factory.mktemp("pack1") / "out"
    cfg = out.parent / "cfg.toml"
    cfg.write_text(config_text(table, SEARCH))
    summary = T.tune(C.load(cfg), out, plots=False)
    return summary, load(out).trials


def same_trials(packed, alone) -> None:
    assert len(packed) == len(alone) == 6
    for p, a in zip(packed, alone, strict=True):
        assert p.params == a.params
        assert p.state == a.state == optuna.trial.TrialState.COMPLETE
        assert p.value == a.value  # float64, same seed, same batches: bit for bit
        assert p.user_attrs["epochs"] == a.user_attrs["epochs"]
        assert p.intermediate_values == a.intermediate_values


# -- the tests ----------------------------------------------------------------------------------
def test_packed_study_equals_the_one_by_one_study(table, one_by_one, tmp_path):
    reference, alone = one_by_one
    cfg = tmp_path / "cfg.toml"
    cfg.write_text(config_text(table, SEARCH))
    lines: list[str] = []
    summary = T.tune(C.load(cfg), tmp_path / "out", pack=4, plots=False, echo=lines.append)
    assert "packs of up to 4 trials" in lines[0]
    # exactly 6 trials: a group of 4 and the 2 left
    assert summary["counted"] == summary["complete"] == 6
    packed = load(tmp_path / "out").trials
    assert [t.user_attrs["group"] for t in packed] == [[0, 1, 2, 3]] * 4 + [[4, 5]] * 2
    assert [t.user_attrs["pack"] for t in packed] == [4] * 4 + [2] * 2
    same_trials(packed, alone)
    assert len({t.user_attrs["epochs"] for t in packed}) > 1  # members stopped on their own
    assert summary["best"] == reference["best"]
    table_rows = rows(tmp_path / "out")
    assert [r["number"] for r in table_rows] == [str(i) for i in range(6)]
    assert [r["dev_loss"] for r in table_rows] == [str(t.value) for t in alone]
    assert (tmp_path / "out" / "best.toml").exists()


def test_tune_pack_in_the_config_and_its_refusals(table, tmp_path):
    cfg = tmp_path / "cfg.toml"
    cfg.write_text(config_text(table, SEARCH.replace("trials = 6", "trials = 3\npack = 3")))
    summary = T.tune(C.load(cfg), tmp_path / "out", plots=False)
    assert summary["counted"] == 3
    assert [t.user_attrs["group"] for t in load(tmp_path / "out").trials] == [[0, 1, 2]] * 3
    cfg.write_text(config_text(table, SEARCH.replace("trials = 6", "trials = 3\npack = 0")))
    with pytest.raises(C.ConfigError, match="tune.pack"):
        T.tune(C.load(cfg), tmp_path / "bad", plots=False)
    cfg.write_text(config_text(table, SEARCH))
    with pytest.raises(DeepfitError, match="group_objective"):
        T.tune(C.load(cfg), tmp_path / "custom", pack=2, objective="tests.tuning.objectives:bowl")


def test_members_are_pruned_one_by_one(table, tmp_path):
    search = SEARCH.replace("trials = 6", "trials = 12").replace(
        "pruning = false", 'pruner = "median"'
    )
    cfg = tmp_path / "cfg.toml"
    cfg.write_text(config_text(table, search.replace("1e-3, 1e-1", "1e-4, 1e-1")))
    summary = T.tune(C.load(cfg), tmp_path / "out", pack=4, plots=False)
    assert summary["counted"] == 12
    S = optuna.trial.TrialState
    trials = load(tmp_path / "out").trials
    pruned = [t for t in trials if t.state == S.PRUNED]
    assert pruned and summary["pruned"] == len(pruned)
    for t in pruned:
        # stopped alone, after its own report: the median of the completed trials at that
        # epoch (Optuna's MedianPruner) was better than its value
        step = max(t.intermediate_values)
        assert t.user_attrs["epochs"] == step
        assert t.user_attrs["stop_reason"] == f"pruned after epoch {step}"
        assert step >= 2  # n_warmup_steps = 2: never before epoch 2
        group = [trials[n] for n in t.user_attrs["group"]]
        earlier = [
            c.intermediate_values[step]
            for c in trials
            if c.state == S.COMPLETE
            and c.number < group[0].number
            and step in c.intermediate_values
        ]
        assert t.intermediate_values[step] > np.median(earlier)
    # a group with a pruned member went on for the others
    mixed = [
        t
        for t in trials
        if t.state == S.PRUNED and any(trials[n].state == S.COMPLETE for n in t.user_attrs["group"])
    ]
    assert mixed
    for t in mixed:
        survivors = [trials[n] for n in t.user_attrs["group"] if trials[n].state == S.COMPLETE]
        assert max(s.user_attrs["epochs"] for s in survivors) > t.user_attrs["epochs"]


def test_a_diverging_member_fails_alone_on_a_grid(tmp_path):
    table = write_table(tmp_path / "reg.csv", "regression")
    search = """
[tune]
strategy = "grid"
trials = 4
pruning = false
[tune.space.train]
lr = "choice([0.003, 0.01, 0.03, 1000.0])"
"""
    cfg = tmp_path / "cfg.toml"
    cfg.write_text(config_text(table, search, train='optimizer = "sgd"'))
    summary = T.tune(C.load(cfg), tmp_path / "out", pack=4, plots=False)
    assert summary["counted"] == 4 and summary["complete"] == 3 and summary["failed"] == 1
    by_lr = {r["train.lr"]: r for r in rows(tmp_path / "out")}
    assert by_lr["1000.0"]["state"] == "failed"
    assert "non-finite loss" in by_lr["1000.0"]["error"]
    assert all(by_lr[lr]["state"] == "complete" for lr in ("0.003", "0.01", "0.03"))
    assert [t.user_attrs["group"] for t in load(tmp_path / "out").trials] == [[0, 1, 2, 3]] * 4


def test_a_group_whose_setup_raises_fails_every_member(table, tmp_path):
    cfg = tmp_path / "cfg.toml"
    cfg.write_text(config_text(table, SEARCH.replace("trials = 6", "trials = 3")))
    summary = T.tune(
        C.load(cfg), tmp_path / "out", pack=3, group_objective=f"{HERE}:broken_group", plots=False
    )
    assert summary["counted"] == summary["failed"] == 3 and summary["best"] is None
    errors = {r["error"] for r in rows(tmp_path / "out")}
    assert errors == {"DeepfitError: the group's data went away"}


def test_data_that_refuses_packing_trains_the_members_alone(table, tmp_path):
    cfg = tmp_path / "cfg.toml"
    # four city levels above max_onehot = 2: a category embedding, not packed per member
    cfg.write_text(config_text(table, SEARCH, data="max_onehot = 2"))
    lines: list[str] = []
    summary = T.tune(C.load(cfg), tmp_path / "out", pack=4, plots=False, echo=lines.append)
    assert summary["counted"] == summary["complete"] == 6
    assert sum("trials run one by one from now on" in line for line in lines) == 1
    trials = load(tmp_path / "out").trials
    assert all("pack" not in t.user_attrs for t in trials)
    assert [t.user_attrs.get("group") for t in trials] == [[0, 1, 2, 3]] * 4 + [None, None]


def test_coarse_to_fine_groups_never_cross_a_round(table, tmp_path):
    search = SEARCH.replace("trials = 6", 'trials = 6\nstrategy = "coarse-to-fine"\nrounds = 3')
    cfg = tmp_path / "cfg.toml"
    cfg.write_text(config_text(table, search))
    summary = T.tune(C.load(cfg), tmp_path / "out", pack=4, plots=False)
    assert summary["counted"] == 6
    trials = load(tmp_path / "out").trials
    assert [t.user_attrs["round"] for t in trials] == [0, 0, 1, 1, 2, 2]
    assert [t.user_attrs["group"] for t in trials] == [
        [0, 1],
        [0, 1],
        [2, 3],
        [2, 3],
        [4, 5],
        [4, 5],
    ]


@pytest.mark.slow
def test_worker_processes_run_packed_groups_from_the_command_line(
    table, one_by_one, tmp_path, capsys
):
    cfg = tmp_path / "cfg.toml"
    cfg.write_text(config_text(table, SEARCH))
    out = tmp_path / "out"
    code = main(["tune", str(cfg), "--pack", "4", "--workers", "2", "--out", str(out), "-q"])
    assert code in (0, None)
    assert "6 trials counted: 6 complete" in capsys.readouterr().out
    packed = load(out, "cfg").trials
    same_trials(packed, one_by_one[1])
    hosts = {t.user_attrs["host"] for t in packed}
    assert all(not h.endswith(f":{os.getpid()}") for h in hosts)  # in the worker processes
    for t in packed:  # a group is one task: its members ran in one process
        assert {packed[n].user_attrs["host"] for n in t.user_attrs["group"]} == {
            t.user_attrs["host"]
        }


def test_help_names_the_flag(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "240")
    main(["tune", "--help"])
    text = " ".join(capsys.readouterr().out.replace("│", " ").split())
    assert "--pack K" in text
    assert "Train up to K trials that share the architecture and batch size as one packed" in text


@pytest.mark.slow
def test_ray_runs_each_group_as_one_task(table, tmp_path):
    ray = pytest.importorskip("ray")
    cfg = tmp_path / "cfg.toml"
    cfg.write_text(config_text(table, SEARCH.replace("trials = 6", "trials = 4")))
    summary = T.tune(C.load(cfg), tmp_path / "out", pack=2, executor="ray", workers=2, plots=False)
    assert not ray.is_initialized()
    assert summary["counted"] == summary["complete"] == 4
    trials = load(tmp_path / "out").trials
    assert [t.user_attrs["group"] for t in trials] == [[0, 1], [0, 1], [2, 3], [2, 3]]
    assert all(len(t.intermediate_values) == t.user_attrs["epochs"] for t in trials)
    for t in trials:
        assert not t.user_attrs["host"].endswith(f":{os.getpid()}")
        assert {trials[n].user_attrs["host"] for n in t.user_attrs["group"]} == {
            t.user_attrs["host"]
        }


# -- kill -9 of the driver in the middle of a packed group -----------------------------------------
DRIVER = f"""
import sys
from deepfit import config as C
from deepfit.tuning import tune
summary = tune(C.load(sys.argv[1]), sys.argv[2], study="s", workers=int(sys.argv[3]), pack=4,
               group_objective="{HERE}:slow_group", plots=False)
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
        return sum(r["state"] in ("complete", "pruned", "failed") for r in rows(out))
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
def test_kill_9_mid_group_then_resume(table, tmp_path, workers):
    n = 12
    cfg = tmp_path / "cfg.toml"
    cfg.write_text(config_text(table, SEARCH.replace("trials = 6", f"trials = {n}")))
    out, pids = tmp_path / "out", tmp_path / "pids"
    proc = start(cfg, out, workers, pids)
    deadline = time.monotonic() + 120
    # a group started after the first one was told (with 2 workers the first two start at once)
    started = pids / f"group-{4 * workers}"
    while counted_rows(out) < 4 or not started.exists():
        assert proc.poll() is None, proc.stdout.read()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(0.2)  # inside that group: each lasts over a second
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    S = optuna.trial.TrialState
    study = optuna.load_study(study_name="s", storage=f"sqlite:///{out / 'study.db'}")
    running = [t for t in study.trials if t.state == S.RUNNING]
    assert len(running) >= 4, "the kill should land during a group"
    for t in running:  # the kill may land while a group's members are being told one by one
        assert all(study.trials[m].state in (S.RUNNING, S.COMPLETE) for m in t.user_attrs["group"])
    before = {t.number: (t.params, t.value) for t in study.trials if t.state.is_finished()}
    if workers > 1:  # the worker processes die with the driver
        worker_pids = [int(p.name) for p in pids.iterdir() if p.name.isdigit()]
        assert worker_pids
        limit = time.monotonic() + 10
        while any(alive(pid) for pid in worker_pids) and time.monotonic() < limit:
            time.sleep(0.1)
        assert not any(alive(pid) for pid in worker_pids)

    again = start(cfg, out, workers, pids)
    output, _ = again.communicate(timeout=300)
    assert again.returncode == 0, output
    assert f"counted {n}" in output

    study = optuna.load_study(study_name="s", storage=f"sqlite:///{out / 'study.db'}")
    trials = study.trials
    assert not [t for t in trials if t.state in (S.RUNNING, S.WAITING)]
    complete = [t for t in trials if t.state == S.COMPLETE]
    assert len(complete) == n
    assert sorted(t.user_attrs["slot"] for t in complete) == list(range(n))  # none lost, none twice
    assert all((t.params, t.value) == before[t.number] for t in trials if t.number in before)
    interrupted = [t for t in trials if t.state == S.FAIL]
    assert {t.number for t in interrupted} == {t.number for t in running}
    for t in interrupted:
        assert t.user_attrs["interrupted"] is True
        retry = [r for r in complete if r.user_attrs.get("retry_of") == t.number]
        assert len(retry) == 1 and retry[0].params == t.params
        assert retry[0].user_attrs["attempt"] == 2
        assert retry[0].user_attrs["pack"] > 1  # the retries were packed again
    states = [r["state"] for r in rows(out)]
    assert states.count("interrupted") == len(interrupted)
    assert states.count("complete") == n

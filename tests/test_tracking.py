"""MLflow tracking: a training run (parameters, per-epoch metrics, summary, artifacts; resume
continues the same MLflow run) and a study (a parent run, each trial a nested run), written to
a local SQLite store and read back with MLflow's client. MLflow is imported only when asked."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from deepfit import config as C
from deepfit.cli import main

BOWL = "tests.tuning.objectives:bowl"
EXPERIMENT = "deepfit-tests"

CONFIG = """
[data]
source = "digits"
[model]
hidden = [16]
[train]
epochs = 3
batch_size = 128
lr = 0.003
"""

TUNE = """
[tune]
trials = 8
[tune.space.train]
lr = "loguniform(1e-5, 1)"
beta1 = "one_minus_loguniform(0.5, 0.9999)"
[tune.space.model]
hidden = "choice([[16], [32, 16]])"
"""


def test_importing_deepfit_does_not_import_mlflow():
    code = (
        "import sys, deepfit, deepfit.cli, deepfit.tracking, deepfit.report, deepfit.tuning; "
        "assert 'mlflow' not in sys.modules, 'mlflow imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """One SQLite tracking store for the module (MLflow's import and schema take seconds), with
    the artifacts in a folder beside it."""
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    base = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{base / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    client.create_experiment(EXPERIMENT, artifact_location=(base / "artifacts").as_uri())
    return uri, client


def runs(client, filter_string: str = ""):
    experiment = client.get_experiment_by_name(EXPERIMENT)
    return client.search_runs([experiment.experiment_id], filter_string=filter_string)


def history(client, run_id: str, key: str) -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))


@pytest.mark.slow
def test_training_run_logs_params_metrics_summary_and_artifacts(store, tmp_path):
    uri, client = store
    (tmp_path / "cfg.toml").write_text(CONFIG)
    out = tmp_path / "run"
    args = ["train", str(tmp_path / "cfg.toml"), "--out", str(out), "-q"]
    track = ["--tracking-uri", uri, "--experiment-name", EXPERIMENT]
    assert main([*args, *track]) == 0
    (run,) = runs(client, f"tags.`deepfit.run_dir` = '{out.resolve()}'")
    assert run.info.status == "FINISHED" and run.info.run_name == "run"
    # every key of the resolved config, as MLflow parameters
    resolved = C.load(out / "config.toml")
    expected = {k: v if isinstance(v, str) else json.dumps(v) for k, v in C.flatten(resolved)}
    assert run.data.params == expected
    assert run.data.params["train.lr"] == "0.003" and run.data.params["model.hidden"] == "[16]"
    # each epoch's metrics as training went, the numbers of metrics.csv
    with open(out / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    for key in ("train_loss", "dev_loss", "dev_accuracy", "lr"):
        assert history(client, run.info.run_id, key) == [
            (int(r["epoch"]), pytest.approx(float(r[key]))) for r in rows
        ]
    summary = json.loads((out / "summary.json").read_text())
    m = run.data.metrics
    assert m["final_dev_accuracy"] == pytest.approx(summary["dev"]["accuracy"])
    assert m["final_test_loss"] == pytest.approx(summary["test"]["loss"])
    assert m["best_epoch"] == summary["best_epoch"] and m["n_params"] == summary["n_params"]
    assert m["variance"] == pytest.approx(summary["diagnosis"]["variance"])
    assert run.data.tags["deepfit.verdict"] == summary["diagnosis"]["verdict"]
    # the run directory's files, byte for byte
    names = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"model.npz", "config.toml", "metrics.csv", "summary.json"} <= names
    assert {"learning_curves.png", "learning_rate.png"} <= names
    local = client.download_artifacts(run.info.run_id, "model.npz", str(tmp_path))
    assert Path(local).read_bytes() == (out / "model.npz").read_bytes()

    # --resume continues the same MLflow run; the changed epochs are kept as a tag
    assert main([*args, *track, "--resume", "--set", "train.epochs=5"]) == 0
    (again,) = runs(client, f"tags.`deepfit.run_dir` = '{out.resolve()}'")
    assert again.info.run_id == run.info.run_id and again.info.status == "FINISHED"
    assert [s for s, _ in history(client, run.info.run_id, "dev_loss")] == [1, 2, 3, 4, 5]
    assert again.data.params["train.epochs"] == "3"
    assert again.data.tags["deepfit.changed.train.epochs"] == "5"


@pytest.mark.slow
def test_study_is_a_parent_run_and_each_trial_a_nested_run(store, tmp_path):
    import optuna

    from deepfit import tracking
    from deepfit.tuning import space as S

    uri, client = store
    (tmp_path / "cfg.toml").write_text(CONFIG + TUNE)
    config = C.load(tmp_path / "cfg.toml")
    out = tmp_path / "tune"
    kwargs = {"objective": BOWL, "plots": False, "study": "lr-search"}
    track = {"tracking_uri": uri, "experiment_name": EXPERIMENT}
    summary = tracking.tune(config, out, **track, **kwargs)
    (parent,) = runs(client, "tags.`deepfit.study` = 'lr-search'")
    assert parent.info.status == "FINISHED" and summary["mlflow_run_id"] == parent.info.run_id
    assert parent.data.params["tune.space.train.lr"] == "loguniform(1e-5, 1)"
    assert parent.data.metrics["best_dev_loss"] == pytest.approx(summary["best"]["value"])
    assert parent.data.metrics["counted"] == 8
    assert int(parent.data.tags["deepfit.best_trial"]) == summary["best"]["number"]
    assert {"trials.csv", "best.toml"} <= {
        a.path for a in client.list_artifacts(parent.info.run_id)
    }

    study = optuna.load_study(study_name="lr-search", storage=f"sqlite:///{out / 'study.db'}")
    space = S.parse(config)
    children = runs(client, f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
    assert len(children) == 8
    by_number = {int(c.data.tags["deepfit.trial"]): c for c in children}
    states = set()
    for t in study.get_trials(deepcopy=False):
        child = by_number[t.number]
        state = t.state.name.lower()
        states.add(state)
        assert child.data.tags["deepfit.state"] == state
        assert child.info.run_name == f"trial {t.number}"
        point = S.from_optuna(space, t.params)
        assert float(child.data.params["train.lr"]) == pytest.approx(point["train.lr"])
        assert float(child.data.params["train.beta1"]) == pytest.approx(point["train.beta1"])
        assert json.loads(child.data.params["model.hidden"]) == point["model.hidden"]
        assert history(client, child.info.run_id, "dev_loss") == [
            (s, pytest.approx(v)) for s, v in sorted(t.intermediate_values.items())
        ]
        if t.value is not None:
            assert child.data.metrics["final_dev_loss"] == pytest.approx(t.value)
        assert child.info.status == "FINISHED"
    assert "complete" in states

    # run again with more trials: the same parent, the new trials nested under it
    tracking.tune(config, out, trials=10, **track, **kwargs)
    (same,) = runs(client, "tags.`deepfit.study` = 'lr-search'")
    assert same.info.run_id == parent.info.run_id and same.data.metrics["counted"] == 10
    assert len(runs(client, f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")) == 10


@pytest.mark.slow
def test_tune_command_takes_the_mlflow_options(store, tmp_path):
    uri, client = store
    (tmp_path / "cfg.toml").write_text(CONFIG + TUNE.replace("trials = 8", "trials = 3"))
    args = ["tune", str(tmp_path / "cfg.toml"), "--out", str(tmp_path / "t"), "-q"]
    args += ["--set", "train.epochs=1", "--study", "cli-study", "--trials", "3"]
    assert main([*args, "--tracking-uri", uri, "--experiment-name", EXPERIMENT]) == 0
    (parent,) = runs(client, "tags.`deepfit.study` = 'cli-study'")
    assert len(runs(client, f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")) == 3


def test_a_bad_tracking_uri_is_one_line(tmp_path, capsys):
    pytest.importorskip("mlflow")
    (tmp_path / "cfg.toml").write_text(CONFIG)
    args = ["train", str(tmp_path / "cfg.toml"), "--out", str(tmp_path / "run"), "-q"]
    assert main([*args, "--tracking-uri", "nosuchscheme://x"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: MLflow tracking URI nosuchscheme://x:") and "\n" not in err


@pytest.mark.slow
def test_mlflows_environment_variables_choose_the_store_and_experiment(
    store, tmp_path, monkeypatch
):
    from deepfit import tracking

    uri, client = store
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", EXPERIMENT)
    config = C.validate({"data": {"source": "iris"}, "train": {"epochs": 2}})
    summary = tracking.run(config, tmp_path / "env-run", progress=False)
    (run,) = runs(client, f"tags.`deepfit.run_dir` = '{(tmp_path / 'env-run').resolve()}'")
    assert run.info.run_id == summary["mlflow_run_id"]
    assert [s for s, _ in history(client, run.info.run_id, "train_loss")] == [1, 2]


TABLE = "x1,x2,color,y\n" + "".join(
    f"{i % 7},{(i * 3) % 11},{['red', 'green', 'blue'][i % 3]},{(i % 7) * 2.5 + i / 97:.3f}\n"
    for i in range(60)
)


@pytest.mark.slow
def test_train_data_budget_logs_the_winner_as_a_plain_train_does(store, tmp_path, capsys):
    uri, client = store
    data = tmp_path / "t.csv"
    data.write_text(TABLE)
    out = tmp_path / "search"
    args = ["train", "--data", str(data), "--target", "y", "--budget", "3s", "--out", str(out)]
    # one dev split: a cross-validated winner (the small-table rule) trains its folds' mean
    # best epoch, not train.epochs
    args += ["--set", "train.epochs=3", "--set", "tune.cv=1", "-q"]
    assert main([*args, "--tracking-uri", uri, "--experiment-name", EXPERIMENT]) == 0
    best = (out / "best").resolve()
    (run,) = runs(client, f"tags.`deepfit.run_dir` = '{best}'")
    assert run.info.status == "FINISHED" and run.info.run_name == "search/best"
    assert run.data.tags["deepfit.search_dir"] == str(out.resolve())
    # the winner's resolved config, epochs, final evaluation and files: a plain train's run
    expected = {
        k: v if isinstance(v, str) else json.dumps(v)
        for k, v in C.flatten(C.read_raw(best / "config.toml"))
    }
    assert run.data.params == expected and run.data.params["train.epochs"] == "3"
    with open(best / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) >= 1
    for key in ("train_loss", "dev_loss", "lr"):
        assert history(client, run.info.run_id, key) == [
            (int(r["epoch"]), pytest.approx(float(r[key]))) for r in rows
        ]
    summary = json.loads((best / "summary.json").read_text())
    m = run.data.metrics
    assert m["final_test_r2"] == pytest.approx(summary["test"]["r2"])
    assert m["epochs_run"] == summary["epochs_run"] and m["n_params"] == summary["n_params"]
    assert m["search_complete"] >= 1
    names = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"model.npz", "config.toml", "metrics.csv", "summary.json"} <= names
    assert {"trials.csv", "best.toml"} <= names
    local = client.download_artifacts(run.info.run_id, "model.npz", str(tmp_path))
    assert Path(local).read_bytes() == (best / "model.npz").read_bytes()
    with open(out / "trials.csv", newline="") as f:
        trials = list(csv.DictReader(f))
    assert run.data.tags["deepfit.best_trial"] in {t["number"] for t in trials}


def test_train_data_budget_refuses_a_bad_tracking_uri_before_any_trial(tmp_path, capsys):
    pytest.importorskip("mlflow")
    data = tmp_path / "t.csv"
    data.write_text(TABLE)
    out = tmp_path / "search"
    args = ["train", "--data", str(data), "--target", "y", "--budget", "1m", "--out", str(out)]
    assert main([*args, "--tracking-uri", "nosuchscheme://x"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: MLflow tracking URI nosuchscheme://x:") and "\n" not in err
    assert not (out / "study.db").exists()


@pytest.mark.slow
def test_a_study_that_trains_its_best_logs_that_run_nested_under_it(store, tmp_path):
    from deepfit import tracking

    uri, client = store
    (tmp_path / "cfg.toml").write_text(CONFIG + TUNE.replace("trials = 8", "trials = 3"))
    config = C.load(tmp_path / "cfg.toml")
    out = tmp_path / "tune"
    track = {"tracking_uri": uri, "experiment_name": EXPERIMENT}
    summary = tracking.tune(
        config, out, objective=BOWL, plots=False, study="with-best", train_best=True, **track
    )
    (parent,) = runs(client, "tags.`deepfit.study` = 'with-best'")
    children = runs(client, f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
    (best,) = [c for c in children if c.info.run_name == "best"]
    assert len(children) == 4 and best.info.status == "FINISHED"
    run_dir = (out / "best").resolve()
    assert best.data.tags["deepfit.run_dir"] == str(run_dir)
    assert int(best.data.tags["deepfit.trial"]) == summary["best"]["number"]
    resolved = C.read_raw(run_dir / "config.toml")
    expected = {k: v if isinstance(v, str) else json.dumps(v) for k, v in C.flatten(resolved)}
    assert best.data.params == expected
    with open(run_dir / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert history(client, best.info.run_id, "dev_loss") == [
        (int(r["epoch"]), pytest.approx(float(r["dev_loss"]))) for r in rows
    ]
    assert "model.npz" in {a.path for a in client.list_artifacts(best.info.run_id)}

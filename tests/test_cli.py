"""End-to-end tests of the deepfit command, each in a subprocess as a user would run it."""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("typer")
pytest.importorskip("sklearn")

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = Path(sys.executable).parent / "deepfit"


def deepfit(*args: str, cwd: Path | None = None, check: bool = True):
    command = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "deepfit.cli"]
    done = subprocess.run(
        [*command, *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=300
    )
    if check and done.returncode != 0:
        raise AssertionError(f"deepfit {' '.join(map(str, args))} failed:\n{done.stderr}")
    return done


SMALL = """
[data]
source = "digits"
[model]
hidden = [32]
keep_prob = 0.9
l2 = 0.01
[train]
lr = 0.01
epochs = 6
batch_size = 64
[train.early_stopping]
patience = 3
"""


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    config = root / "small.toml"
    config.write_text(SMALL)
    out = root / "run"
    done = deepfit("train", config, "--out", out, "--json")
    return root, config, out, json.loads(done.stdout)


def test_train_writes_a_complete_run_directory(trained):
    _, _, out, summary = trained
    for name in (
        "config.toml",
        "metrics.csv",
        "summary.json",
        "model.npz",
        "checkpoint.npz",
        "learning_curves.png",
        "learning_rate.png",
    ):
        assert (out / name).is_file(), name
    for split in ("train", "dev", "test"):
        assert set(summary[split]) == {"loss", "accuracy"}
    assert summary["test"]["accuracy"] > 0.85
    assert {"best_epoch", "stop_reason", "seconds", "diagnosis"} <= set(summary)
    assert summary["diagnosis"]["verdict"] in (
        "high bias",
        "high variance",
        "high bias and high variance",
        "fine",
    )
    resolved = (out / "config.toml").read_text()
    assert "beta2 = 0.999" in resolved and "[train.early_stopping]" in resolved  # defaults out
    assert json.loads((out / "summary.json").read_text())["n_params"] == summary["n_params"]


def test_resume_continues_and_extends_a_run(trained, tmp_path):
    _, config, out, _ = trained
    copy = tmp_path / "run"
    subprocess.run(["cp", "-r", str(out), str(copy)], check=True)
    done = deepfit(
        "train",
        config,
        "--out",
        copy,
        "--resume",
        "--set",
        "train.epochs=8",
        "--set",
        "train.early_stopping.enabled=false",
        "--json",
        check=False,
    )
    # a checkpoint written with early stopping cannot be resumed without it: refused clearly
    assert done.returncode == 2 and "callbacks" in done.stderr
    done = deepfit("train", config, "--out", copy, "--resume", "--set", "train.epochs=8", "--json")
    with open(copy / "metrics.csv", newline="") as f:
        epochs = [int(r["epoch"]) for r in csv.DictReader(f)]
    assert epochs == list(range(1, len(epochs) + 1))  # no duplicated or lost rows


def test_evaluate_and_predict_take_raw_inputs(trained, tmp_path):
    from sklearn.datasets import load_digits

    _, _, out, _ = trained
    X, y = load_digits(return_X_y=True)
    names = [f"pixel_{r}_{c}" for r in range(8) for c in range(8)]
    labelled = tmp_path / "labelled.csv"
    with open(labelled, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow([*names, "target"])
        w.writerows([[*map(int, row), int(t)] for row, t in zip(X[:200], y[:200], strict=True)])
    done = deepfit("evaluate", out / "model.npz", labelled, "--json")
    result = json.loads(done.stdout)[str(labelled)]
    assert result["n"] == 200 and result["accuracy"] > 0.85

    inputs = tmp_path / "inputs.csv"
    with open(inputs, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(names)
        w.writerows([[*map(int, row)] for row in X[:20]])
    deepfit("predict", out / "model.npz", inputs, "-o", tmp_path / "pred.csv")
    with open(tmp_path / "pred.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["prediction"] and len(rows) == 21
    assert np.mean([int(r[0]) == t for r, t in zip(rows[1:], y[:20], strict=True)]) > 0.8
    proba = deepfit("predict", out / "model.npz", inputs, "--proba").stdout.splitlines()
    assert proba[0].split(",")[:2] == ["p_0", "p_1"]
    assert abs(sum(map(float, proba[1].split(","))) - 1) < 1e-4


def test_gradcheck_passes_and_reports_per_tensor(tmp_path):
    config = tmp_path / "g.toml"
    config.write_text(SMALL.replace("hidden = [32]", "hidden = [8, 6]\nbatchnorm = true"))
    done = deepfit("gradcheck", config, "--examples", "8", "--max-per-tensor", "10")
    assert "overall" in done.stdout and "worst tensor" in done.stdout
    assert re.search(r"0\.W\s+10\s+\S+\s+fine", done.stdout)
    report = json.loads(deepfit("gradcheck", config, "--json", "--max-per-tensor", "5").stdout)
    assert report["relative_error"] < 1e-7


def test_diagnose_with_a_bayes_error_and_learning_curve(trained):
    _, _, out, summary = trained
    done = deepfit("diagnose", out, "--bayes-error", "0.05", "--json")
    diagnosis = json.loads(done.stdout)["diagnosis"]
    assert diagnosis["bayes_error"] == 0.05
    assert diagnosis["avoidable_bias"] == pytest.approx(1 - summary["train"]["accuracy"] - 0.05)
    text = deepfit("diagnose", out, "--learning-curve").stdout
    assert "verdict:" in text and "learning curve" in text
    assert (out / "learning_curve.png").is_file() and (out / "learning_curve.json").is_file()


def test_inspect_flags_vanishing_layers_and_compares_initializers(tmp_path):
    config = tmp_path / "deep.toml"
    config.write_text(
        SMALL.replace("hidden = [32]", "hidden = [32, 32, 32, 32, 32, 32, 32, 32]").replace(
            "keep_prob = 0.9", 'init = "xavier"\nactivation = "tanh"'
        )
    )
    done = deepfit("inspect", config, "--steps", "5", "--json", "--out", tmp_path / "plots")
    payload = json.loads(done.stdout)
    assert len(payload["at_init"]) == 8 and "after_5_steps" in payload
    zeros = payload["initializers"]["zeros"]
    assert all(layer["activation_std"] == 0 for layer in zeros)
    normal = payload["initializers"]["normal"]  # N(0, 0.01^2): the signal dies with depth
    assert normal[-1]["activation_flag"] == "vanishing"
    assert (tmp_path / "plots" / "init_activation_std.png").is_file()
    text = deepfit("inspect", config).stdout
    assert "initializers compared" in text and "he" in text


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (
            "[train]\nlearning_rate = 0.1\n",
            "'train.learning_rate' is unknown; did you mean 'train.lr'",
        ),
        ("[train]\nlr = -1\n", "'train.lr' must be a number > 0, got -1"),
        ("[model]\nkeep_prob = 1.5\n", r"'model.keep_prob' must be a number in \(0, 1\]"),
        ('[data]\nsource = "csv"\n', "'data.path' is required"),
        ("[trian]\n", "did you mean 'train'"),
        ("[train\n", "not valid TOML"),
    ],
)
def test_config_errors_are_one_line_naming_the_key(tmp_path, config, message):
    path = tmp_path / "bad.toml"
    path.write_text(config)
    done = deepfit("train", path, "--out", tmp_path / "run", check=False)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert re.search(message, lines[0]), lines[0]
    assert "Traceback" not in done.stderr


def test_bad_files_and_debug(tmp_path):
    done = deepfit("evaluate", tmp_path / "missing.npz", tmp_path / "x.csv", check=False)
    assert done.returncode == 2 and "missing.npz: no such file" in done.stderr
    path = tmp_path / "bad.toml"
    path.write_text("[train]\nlr = 0\n")
    debug = deepfit("--debug", "train", path, check=False)
    assert "Traceback" in debug.stderr
    assert deepfit("train", "--set", "x", path, check=False).returncode == 2


def test_readme_main_command_runs_the_demo(tmp_path):
    readme = (ROOT / "README.md").read_text()
    commands = [line for line in readme.splitlines() if line.startswith("python3 -m venv .venv")]
    assert len(commands) == 2, "the README shows the two setup commands"
    main, tests = commands
    assert main.endswith(".venv/bin/deepfit demo")
    assert tests.endswith("-m pytest -q") and (ROOT / ".ci" / "run").read_text().count(tests) == 1
    done = deepfit("demo", "--out", tmp_path / "demo", cwd=tmp_path)
    assert "verdict:" in done.stdout and "test" in done.stdout
    accuracy = float(re.search(r"test\s+loss \S+\s+accuracy (\S+)", done.stdout).group(1))
    assert accuracy >= 0.95
    assert (tmp_path / "demo" / "learning_curves.png").is_file()


def test_gradcheck_exit_code_is_one_when_the_check_fails(tmp_path, monkeypatch):
    from deepfit import cli
    from deepfit.nn import activations

    config = tmp_path / "g.toml"
    config.write_text(SMALL.replace("hidden = [32]", 'hidden = [6]\nactivation = "tanh"'))
    monkeypatch.setattr(activations.Tanh, "backward", lambda self, da: da * (1 - self._a))
    assert cli.main(["gradcheck", str(config), "--max-per-tensor", "5"]) == 1
    monkeypatch.undo()
    assert cli.main(["gradcheck", str(config), "--max-per-tensor", "5"]) == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("train",), "give a config file, or a table with --data FILE --target COLUMN"),
        (("train", "x.toml", "--bogus"), "--bogus"),
    ],
)
def test_usage_errors_are_short_and_exit_2(args, message):
    done = deepfit(*args, check=False)
    assert done.returncode == 2
    assert message in done.stderr and "Traceback" not in done.stderr

"""optuna-dashboard shows deepfit's studies as they are: the dashboard server started on
loopback over a study written by ``deepfit tune``, read back through its HTTP API (the routes
its web page calls) and compared with the study's database."""

from __future__ import annotations

import json
import math
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("optuna")
pytest.importorskip("optuna_dashboard")

from deepfit import config as C
from deepfit.tuning.study import tune

from .objectives import bowl

CONFIG = """
[data]
source = "digits"
[model]
hidden = [16]
[train]
epochs = 3
[tune]
trials = 12
[tune.space.train]
lr = "loguniform(1e-5, 1)"
beta1 = "one_minus_loguniform(0.5, 0.9999)"
batch_size = "choice([32, 64, 128])"
[tune.space.model]
hidden = "choice([[16], [32, 16]])"
"""


def diverging(payload: dict[str, Any], report) -> dict[str, Any]:
    """The bowl, failing (as a diverged run does) where the learning rate is large."""
    if payload["config"]["train"]["lr"] > 0.1:
        report(1, 5.0)
        return {"state": "failed", "value": None, "epochs": 1, "error": "diverged"}
    return bowl(payload, report)


@pytest.fixture(scope="module")
def study_dir(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("dashboard")
    (base / "cfg.toml").write_text(CONFIG)
    out = base / "tune"
    objective = "tests.tuning.test_dashboard:diverging"
    tune(C.load(base / "cfg.toml"), out, objective=objective, plots=False, study="digits-lr")
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.loads(response.read())


@pytest.fixture(scope="module")
def dashboard(study_dir):
    """``optuna-dashboard sqlite:///.../study.db`` on a free loopback port; its base URL."""
    port = free_port()
    command = [
        sys.executable,
        "-c",
        "from optuna_dashboard._cli import main; main()",
        f"sqlite:///{(study_dir / 'study.db').resolve()}",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--server",
        "wsgiref",
        "--quiet",
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                get(f"{base}/api/meta")
                break
            except (urllib.error.URLError, ConnectionError):
                if process.poll() is not None:
                    raise AssertionError(
                        f"optuna-dashboard exited: {process.stderr.read().decode()[-2000:]}"
                    ) from None
                assert time.monotonic() < deadline, "optuna-dashboard did not start in 60 s"
                time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        process.stderr.close()


@pytest.mark.slow
def test_dashboard_shows_trials_states_params_and_intermediate_values(study_dir, dashboard):
    import optuna

    storage = f"sqlite:///{(study_dir / 'study.db').resolve()}"
    study = optuna.load_study(study_name="digits-lr", storage=storage)
    summaries = get(f"{dashboard}/api/studies")["study_summaries"]
    assert [(s["study_name"], s["directions"]) for s in summaries] == [("digits-lr", ["minimize"])]
    detail = get(f"{dashboard}/api/studies/{summaries[0]['study_id']}")
    assert detail["objective_names"] == ["dev_loss"]
    assert detail["has_intermediate_values"] is True
    shown = {t["number"]: t for t in detail["trials"]}
    stored = study.get_trials(deepcopy=False)
    assert sorted(shown) == [t.number for t in stored] == list(range(12))

    states = {t["state"] for t in shown.values()}
    assert {"Complete", "Pruned", "Fail"} <= states
    for t in stored:
        s = shown[t.number]
        assert s["state"] == t.state.name.capitalize()
        # every epoch's dev metric, as the pruner saw it
        steps = [(v["step"], v["value"]) for v in s["intermediate_values"]]
        assert steps == sorted(t.intermediate_values.items()) and steps
        assert all(step >= 1 for step, _ in steps)
        if t.state.name == "COMPLETE":
            assert s["values"] == [pytest.approx(t.value)]
            assert t.value == pytest.approx(steps[-1][1] - 1 / 3)  # the bowl reports v + 1/epoch
        # the parameters with the distributions they were sampled from
        params = {p["name"]: p for p in s["params"]}
        assert set(params) == {"train.lr", "1-train.beta1", "train.batch_size", "model.hidden"}
        lr = params["train.lr"]
        assert float(lr["param_external_value"]) == pytest.approx(t.params["train.lr"])
        assert lr["distribution"] == {
            "type": "FloatDistribution",
            "low": 1e-5,
            "high": 1.0,
            "step": None,
            "log": True,
        }
        beta = params["1-train.beta1"]["distribution"]
        assert beta["type"] == "FloatDistribution" and beta["log"] is True
        assert (beta["low"], beta["high"]) == pytest.approx((1 - 0.9999, 1 - 0.5))
        batch = params["train.batch_size"]["distribution"]
        assert batch["type"] == "CategoricalDistribution"
        assert [c["value"] for c in batch["choices"]] == ["32", "64", "128"]
        hidden = params["model.hidden"]
        assert [c["value"] for c in hidden["distribution"]["choices"]] == ["[16]", "[32, 16]"]
        assert json.loads(hidden["param_external_value"]) in ([16], [32, 16])
        attrs = {a["key"]: a["value"] for a in s["user_attrs"]}
        if t.state.name == "FAIL":
            assert attrs["error"] == "diverged" and float(lr["param_external_value"]) > 0.1
    best = detail["best_trials"][0]
    assert best["number"] == study.best_trial.number
    assert best["values"] == [pytest.approx(study.best_value)]
    assert math.isfinite(best["values"][0])

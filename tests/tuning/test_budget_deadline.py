"""A budgeted search stops its running trials at the deadline (Ray Tune's ``time_budget_s``):
the search ends within its budget plus one epoch, the stopped trial is scored on its best
weights so far, and the winner's run trains as long as its trial did."""

from __future__ import annotations

import time

import pytest

optuna = pytest.importorskip("optuna")

from deepfit import config as C  # noqa: E402
from deepfit.tuning import study as T  # noqa: E402
from deepfit.tuning import worker as W  # noqa: E402

CONFIG = """
[data]
source = "digits"
[model]
hidden = [16]
[train]
epochs = 100000
batch_size = 64
early_stopping = { enabled = false }
[tune]
pruning = false
budget = "BUDGET"
pack = PACK
[tune.space.train]
lr = "loguniform(1e-3, 1e-2)"
"""


def load(tmp_path, budget: str, pack: int = 1):
    path = tmp_path / "cfg.toml"
    path.write_text(CONFIG.replace("BUDGET", budget).replace("PACK", str(pack)))
    return C.load(path)


def test_a_trial_past_the_deadline_stops_after_its_epoch_and_is_scored(tmp_path):
    config = load(tmp_path, "1s")
    config.pop("tune")
    config["train"]["epochs"] = 50
    payload = {"number": 0, "config": config, "metric": "dev_loss", "deadline": time.time() - 1}
    reports = []
    result = W.train(payload, lambda epoch, value: reports.append(epoch) or False)
    assert result["state"] == "complete" and result["value"] > 0
    assert result["epochs"] == 1 and reports == [1]
    assert result["stop_reason"] == f"{W.DEADLINE_REASON} after epoch 1"
    # without a deadline the same payload trains all its epochs
    del payload["deadline"]
    config["train"]["epochs"] = 3
    assert W.train(payload, lambda epoch, value: False)["epochs"] == 3


@pytest.mark.parametrize("pack", [1, 2])
def test_a_budgeted_search_of_endless_trials_ends_on_time(tmp_path, pack):
    config = load(tmp_path, "3s", pack)
    out = tmp_path / "out"
    lines: list[str] = []
    start = time.monotonic()
    summary = T.tune(
        config, out, study="s", trials=pack, plots=False, echo=lines.append, train_best=False
    )
    searched = time.monotonic() - start
    # 100,000 epochs per trial: only the deadline stopped them, one epoch after it
    assert summary["complete"] == pack and summary["best"] is not None
    assert summary["budget"]["spent"] < 3.0 + 2.0
    assert searched < 3.0 + 10.0  # + study set-up, data, final evaluation
    study = optuna.load_study(study_name="s", storage=f"sqlite:///{out / 'study.db'}")
    for t in study.trials:
        assert t.user_attrs["stop_reason"].startswith(W.DEADLINE_REASON)
        assert 1 <= t.user_attrs["epochs"] < 100000
    assert summary["best"]["stop_reason"].startswith(W.DEADLINE_REASON)


def test_the_winner_stopped_by_the_deadline_trains_as_long_as_its_trial(tmp_path):
    config = load(tmp_path, "2s")
    out = tmp_path / "out"
    summary = T.tune(config, out, study="s", trials=1, plots=False, echo=lambda _: None)
    epochs = summary["best"]["epochs"]
    assert summary["best_run"]["epochs"] == epochs
    best = C.load(out / "best" / "config.toml")
    assert best["train"]["epochs"] == epochs


def test_groups_still_queued_when_the_budget_runs_out_are_interrupted_not_counted(tmp_path):
    # two batch sizes cannot share a packed network: two groups, one slot, one waits
    config = load(tmp_path, "2s", pack=2)
    config["tune"]["strategy"] = "grid"
    config["tune"]["space"] = {"train": {"batch_size": "choice([32, 64])"}}
    out = tmp_path / "out"
    lines: list[str] = []
    summary = T.tune(config, out, study="s", trials=2, plots=False, echo=lines.append)
    assert summary["counted"] == 1 and summary["complete"] == 1
    assert summary["interrupted"] == 1
    assert any("the budget ran out before it started" in line for line in lines)

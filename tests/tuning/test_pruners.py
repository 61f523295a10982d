"""``tune.pruner``: median, successive halving and Hyperband (Optuna's pruners) each prune
hopeless trials; ``none`` and ``pruning = false`` prune nothing."""

from __future__ import annotations

import pytest

optuna = pytest.importorskip("optuna")

from deepfit import config as C  # noqa: E402
from deepfit.tuning import study as T  # noqa: E402

BASE = {
    "data": {"source": "digits"},
    "model": {"hidden": [16]},
    "train": {"epochs": 9},
    "tune": {
        "trials": 16,
        "space": {"train": {"lr": "loguniform(1e-5, 1)", "beta1": "uniform(0.5, 0.999)"}},
    },
}


def run(tmp_path, **tune):
    config = C.validate({**BASE, "tune": {**BASE["tune"], **tune}})
    out = tmp_path / "out"
    lines: list[str] = []
    summary = T.tune(
        config, out, objective="tests.tuning.objectives:curve", plots=False, echo=lines.append
    )
    study = optuna.load_study(study_name="deepfit", storage=f"sqlite:///{out / 'study.db'}")
    return summary, study, lines


@pytest.mark.parametrize(
    ("pruner", "kind"),
    [
        ("median", optuna.pruners.MedianPruner),
        ("halving", optuna.pruners.SuccessiveHalvingPruner),
        ("hyperband", optuna.pruners.HyperbandPruner),
    ],
)
def test_each_pruner_prunes(tmp_path, pruner, kind):
    config = C.validate({**BASE, "tune": {**BASE["tune"], "pruner": pruner}})
    assert isinstance(T.Tuner(config, tmp_path / "unused")._pruner(), kind)
    summary, study, lines = run(tmp_path, pruner=pruner)
    assert f"{pruner} pruning" in lines[0]
    assert summary["counted"] == 16 == summary["complete"] + summary["pruned"]
    assert summary["pruned"] >= 1
    pruned = [t for t in study.trials if t.state == optuna.trial.TrialState.PRUNED]
    assert all(max(t.intermediate_values) <= 9 for t in pruned)
    # a pruned trial was not the best at the epoch it was stopped: another trial reported less
    for t in pruned:
        step = max(t.intermediate_values)
        others = [
            o.intermediate_values[step]
            for o in study.trials
            if o.number != t.number and step in o.intermediate_values
        ]
        assert others and t.intermediate_values[step] > min(others)


def test_hyperband_reaches_up_to_train_epochs(tmp_path):
    config = C.validate({**BASE, "tune": {**BASE["tune"], "pruner": "hyperband"}})
    tuner = T.Tuner(config, tmp_path / "out")
    pruner = tuner._pruner()
    assert isinstance(pruner, optuna.pruners.HyperbandPruner)
    assert pruner._max_resource == 9


@pytest.mark.parametrize("tune", [{"pruner": "none"}, {"pruner": "halving", "pruning": False}])
def test_none_or_pruning_off_prunes_nothing(tmp_path, tune):
    summary, _, lines = run(tmp_path, **tune)
    assert summary["pruned"] == 0 and summary["complete"] == 16
    assert "pruning" not in lines[0].rsplit("):", 1)[-1]


def test_an_unknown_pruner_is_refused_naming_the_key():
    with pytest.raises(C.ConfigError, match="tune.pruner"):
        C.validate({**BASE, "tune": {**BASE["tune"], "pruner": "asha"}})

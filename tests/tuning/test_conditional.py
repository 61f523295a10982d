"""Conditional search spaces: ``"expr if CONDITION"`` and ``[tune.space.use]`` switches.

An inactive key is never sampled (no Optuna parameter, an empty cell in trials.csv, its
base-config value in the trial's config), for every strategy; conditions are checked before
any training, each error naming the key."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from deepfit import config as C
from deepfit.tuning import space as S
from deepfit.tuning import strategies as St

BASE = """
[data]
source = "digits"
[model]
hidden = [16]
[train]
epochs = 3
"""

SPACE = """
[tune.space.use]
dropout = "choice([false, true])"
[tune.space.model]
keep_prob = "uniform(0.5, 0.95) if use.dropout"
[tune.space.train]
lr = "loguniform(1e-4, 1e-1)"
beta1 = "one_minus_loguniform(0.5, 0.999)"
[tune.space.train.mixup]
alpha = "uniform(0.1, 1) if train.mixup.kind != 'none'"
kind = "choice(['none', 'mixup', 'cutmix'])"
[tune.space.train.averaging]
kind = "choice(['none', 'swa', 'ema'])"
decay = "one_minus_loguniform(0.9, 0.999) if train.averaging.kind == 'ema'"
"""


def config(tune: str = SPACE, extra: str = "") -> dict:
    import tomllib

    return C.validate(tomllib.loads(BASE + extra + "[tune]\ntrials = 12\n" + tune))


def active_ok(point: dict) -> bool:
    """The space's rules, spelled out: each conditional key present exactly when on."""
    if ("model.keep_prob" in point) != point["use.dropout"]:
        return False
    if ("train.mixup.alpha" in point) != (point["train.mixup.kind"] != "none"):
        return False
    return ("train.averaging.decay" in point) == (point["train.averaging.kind"] == "ema")


# -- parsing --------------------------------------------------------------------------------
def test_conditions_parse_and_order_parents_first():
    space = S.parse(config())
    keys = space.keys
    assert keys.index("train.mixup.kind") < keys.index("train.mixup.alpha")  # written after
    assert keys.index("use.dropout") < keys.index("model.keep_prob")
    assert space.conditions["train.mixup.alpha"].reads == ("train.mixup.kind",)
    described = space.describe()
    assert described["train.mixup.alpha"] == "uniform(0.1, 1) if train.mixup.kind != 'none'"
    again = S.Space.from_description(described)
    assert again.describe() == described
    assert again.keys == keys


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("alpha = \"uniform(0.1, 1) if train.mixup.kind != 'nonee'\"", "'nonee' is not an option"),
        ('alpha = "uniform(0.1, 1) if train.mixup.knd"', "neither searched nor a config key"),
        ('alpha = "uniform(0.1, 1) if use.nothing"', "does not define"),
        ('alpha = "uniform(0.1, 1) if train.mixup.alpha > 0.5"', "reads the key itself"),
        ("alpha = \"uniform(0.1, 1) if train.mixup.kind == 'none' else 3\"", "no 'else'"),
        ('alpha = "uniform(0.1, 1) if"', "nothing after 'if'"),
        ('alpha = "uniform(0.1, 1) if train.lr + 1"', "neither a dotted key"),
        ('alpha = "uniform(0.1, 1) if 3 > 2"', "reads no key"),
        (
            "alpha = \"uniform(0.1, 1) if train.mixup.kind == 'none' and "
            "train.mixup.kind == 'mixup'\"",
            "never holds",
        ),
    ],
)
def test_bad_conditions_are_refused_naming_the_key(entry, message):
    tune = "[tune.space.train.mixup]\nkind = \"choice(['none', 'mixup'])\"\n" + entry + "\n"
    with pytest.raises(S.SpaceError, match=message) as info:
        S.parse(config(tune))
    assert "tune.space.train.mixup.alpha" in str(info.value)


def test_a_cycle_is_refused():
    tune = """
[tune.space.use]
a = "choice([false, true]) if use.b"
b = "choice([false, true]) if use.a"
[tune.space.train]
lr = "loguniform(1e-4, 1e-1)"
"""
    with pytest.raises(S.SpaceError, match="cycle") as info:
        S.parse(config(tune))
    assert "tune.space.use.a" in str(info.value)


def test_a_condition_on_a_base_config_key_is_fixed():
    tune = """
[tune.space.train.mixup]
alpha = "uniform(0.1, 1) if train.mixup.kind == 'mixup'"
[tune.space.train]
lr = "loguniform(1e-4, 1e-1)"
"""
    on = S.parse(config(tune, '[train.mixup]\nkind = "mixup"\n'))
    assert "train.mixup.alpha" in on.sample(np.random.default_rng(0))
    with pytest.raises(S.SpaceError, match="never holds"):
        S.parse(config(tune))  # the base has kind = "none"


def test_a_conditional_key_is_checked_where_it_is_active():
    # snapshots need an sgdr schedule: valid only on the branch where the schedule is sgdr
    tune = """
[tune.space.train.schedule]
kind = "choice(['constant', 'sgdr'])"
[tune.space.train.snapshots]
enabled = "choice([false, true]) if train.schedule.kind == 'sgdr'"
"""
    S.parse(config(tune))
    bad = tune.replace("== 'sgdr'", "== 'constant'")
    with pytest.raises(S.SpaceError, match="tune.space.train.snapshots.enabled"):
        S.parse(config(bad))


def test_nested_conditions_and_boolean_operators():
    tune = """
[tune.space.use]
wd = "choice([false, true])"
[tune.space.train]
optimizer = "choice(['sgd', 'adam'])"
weight_decay = "loguniform(1e-5, 1e-1) if use.wd and train.optimizer in ['adam']"
[tune.space.train.lookahead]
enabled = "choice([false, true]) if not use.wd"
k = "int(3, 10) if train.lookahead.enabled"
"""
    space = S.parse(config(tune))
    for i in range(200):
        p = space.sample(np.random.default_rng(i))
        assert ("train.weight_decay" in p) == (p["use.wd"] and p["train.optimizer"] == "adam")
        assert ("train.lookahead.enabled" in p) == (not p["use.wd"])
        # a key whose parent is inactive is inactive too
        assert ("train.lookahead.k" in p) == bool(p.get("train.lookahead.enabled"))


# -- sampling --------------------------------------------------------------------------------
def test_sampling_never_draws_an_inactive_key_and_keeps_the_others_stable():
    space = S.parse(config())
    seen = set()
    for i in range(300):
        p = space.sample(np.random.default_rng(i))
        assert active_ok(p)
        seen.add((p["use.dropout"], p["train.mixup.kind"], p["train.averaging.kind"]))
        assert space.complete(p)
    assert len(seen) == 2 * 3 * 3  # every branch is reached
    # a condition never shifts another key's draw: lr is the same with or without conditions
    plain = S.Space([S.parse_expression(d.key, d.expression) for d in space.dimensions])
    for i in range(20):
        a, b = space.sample(np.random.default_rng(i)), plain.sample(np.random.default_rng(i))
        assert a["train.lr"] == b["train.lr"]


def test_apply_leaves_inactive_keys_at_their_base_values():
    cfg = config()
    space = S.parse(cfg)
    point = {
        "use.dropout": False,
        "train.lr": 0.01,
        "train.beta1": 0.9,
        "train.mixup.kind": "none",
        "train.averaging.kind": "swa",
    }
    applied = space.apply(cfg, point)
    assert "use" not in applied and "tune" not in applied
    assert applied["model"]["keep_prob"] == 1.0
    assert applied["train"]["mixup"]["alpha"] == C.defaults()["train"]["mixup"]["alpha"]
    assert applied["train"]["averaging"]["kind"] == "swa"


def test_grid_drops_inactive_keys_and_their_repeats():
    space = S.parse(config())
    points = S.grid(space, 300)
    assert all(active_ok(p) for p in points)
    signatures = [json.dumps(p, sort_keys=True) for p in points]
    assert len(set(signatures)) == len(points) <= 300
    none = [p for p in points if p["train.mixup.kind"] == "none"]
    mixup = [p for p in points if p["train.mixup.kind"] == "mixup"]
    assert len(mixup) > len(none)  # alpha's levels only where it is active


def test_coarse_to_fine_shrinks_a_conditional_key_on_its_active_points():
    space = S.parse(config())
    box = S.Box.full(space)
    best = [space.sample(np.random.default_rng(i)) for i in range(6)]
    for p in best:
        p["train.mixup.kind"] = "none"
        p.pop("train.mixup.alpha", None)
    best[0]["train.mixup.kind"] = "mixup"
    best[0]["train.mixup.alpha"] = 0.5
    shrunk = S.shrink(space, box, best)
    i = space.keys.index("train.mixup.alpha")
    assert shrunk.lo[i] < space.dimension("train.mixup.alpha").to_unit(0.5) < shrunk.hi[i]
    assert shrunk.hi[i] - shrunk.lo[i] < 1
    # a key active in none of the best points keeps its whole range
    for p in best:
        p.pop("model.keep_prob", None)
        p["use.dropout"] = False
    shrunk = S.shrink(space, box, best)
    j = space.keys.index("model.keep_prob")
    assert (shrunk.lo[j], shrunk.hi[j]) == (0.0, 1.0)
    strategy = St.CoarseToFine(space, 12, 0)
    assert all(active_ok(p) for p in strategy.preview(12))


# -- studies ------------------------------------------------------------------------------------
optuna = pytest.importorskip("optuna")


def run_study(tmp_path: Path, strategy: str, monkeypatch, trials: int = 12, **kwargs):
    from deepfit.tuning import tune

    seen = tmp_path / "configs.jsonl"
    monkeypatch.setenv("DEEPFIT_TEST_CONFIGS", str(seen))
    cfg = config().copy()
    cfg["tune"] = {**cfg["tune"], "strategy": strategy, "trials": trials, "pruning": False}
    out = tmp_path / strategy
    summary = tune(cfg, out, objective="tests.tuning.objectives:cocktail", plots=False, **kwargs)
    configs = {}
    for line in seen.read_text().splitlines():
        record = json.loads(line)
        configs[record["number"]] = record["config"]
    return summary, out, configs


@pytest.mark.parametrize("strategy", ["random", "grid", "coarse-to-fine", "tpe"])
def test_every_strategy_samples_only_active_keys(tmp_path, monkeypatch, strategy):
    summary, out, configs = run_study(tmp_path, strategy, monkeypatch)
    assert summary["counted"] == 12 == summary["complete"]
    space = S.parse(config())
    study = optuna.load_study(study_name="deepfit", storage=f"sqlite:///{out / 'study.db'}")
    for t in study.trials:
        point = S.from_optuna(space, t.params)
        assert active_ok(point), point
        assert len(point) == len(t.params)  # no Optuna parameter for an inactive key
        trial_config = configs[t.number]
        if not point["use.dropout"]:
            assert trial_config["model"]["keep_prob"] == 1.0
        if point["train.mixup.kind"] == "none":
            assert trial_config["train"]["mixup"]["alpha"] == 0.2  # the base value
    with open(out / "trials.csv", newline="") as f:
        table = list(csv.DictReader(f))
    assert len(table) == 12
    for row in table:
        assert (row["train.mixup.alpha"] == "") == (row["train.mixup.kind"] == "none")
        assert (row["model.keep_prob"] == "") == (row["use.dropout"] == "False")
    best = (out / "best.toml").read_text()
    best_config = C.validate(__import__("tomllib").loads(best))
    assert "use" not in best_config
    assert summary["best"]["params"]["train.lr"] == pytest.approx(best_config["train"]["lr"])


def test_plots_and_the_report_draw_conditional_keys(tmp_path, monkeypatch):
    from deepfit.tuning import tune

    cfg = config()
    cfg["tune"] = {**cfg["tune"], "trials": 8, "pruning": False}
    out = tmp_path / "out"
    summary = tune(cfg, out, objective="tests.tuning.objectives:cocktail")
    assert "tune_params.png" in summary["files"] and (out / "tune_params.png").exists()
    from deepfit.report import tune_report

    html = tune_report(out)
    assert "train.mixup.alpha" in html

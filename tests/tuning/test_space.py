"""The search space: expressions, keys checked against the config, sampling laws, grid, boxes."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from deepfit import config as C
from deepfit.tuning import space as S


def make_config(space: dict) -> dict:
    return C.validate({"model": {"hidden": [16]}, "tune": {"space": space}})


def draws(expression: str, n: int = 40_000, seed: int = 0) -> np.ndarray:
    sp = S.Space([S.parse_expression("train.lr", expression)])
    rng = np.random.default_rng(seed)
    return np.array([sp.sample(rng)["train.lr"] for _ in range(n)])


# -- sampling laws ---------------------------------------------------------------------------
def test_loguniform_puts_equal_mass_in_each_decade():
    x = draws("loguniform(1e-4, 1)")
    assert x.min() >= 1e-4 and x.max() <= 1
    counts = np.histogram(np.log10(x), bins=[-4, -3, -2, -1, 0])[0] / len(x)
    # 4 decades, 1/4 each; binomial sd of a share is about 0.002 at n = 40,000
    np.testing.assert_allclose(counts, 0.25, atol=0.01)


def test_one_minus_loguniform_gives_beta_equal_mass_per_decade_of_one_minus_beta():
    x = draws("one_minus_loguniform(0.9, 0.999)")
    assert x.min() >= 0.9 and x.max() <= 0.999
    low = np.mean((x >= 0.9) & (x < 0.99))
    high = np.mean((x >= 0.99) & (x <= 0.999))
    assert abs(low - 0.5) < 0.01 and abs(high - 0.5) < 0.01
    # a uniform beta would put 90% of the draws in [0.9, 0.99]
    uniform = draws("uniform(0.9, 0.999)")
    assert np.mean(uniform < 0.99) > 0.88


def test_uniform_int_and_choice_laws_and_bounds():
    u = draws("uniform(-2, 3)")
    assert u.min() >= -2 and u.max() <= 3 and abs(u.mean() - 0.5) < 0.03
    i = draws("int(1, 4)", 20_000)
    assert set(np.unique(i)) == {1, 2, 3, 4}
    np.testing.assert_allclose(np.bincount(i.astype(int))[1:] / len(i), 0.25, atol=0.015)
    il = draws("int(1, 1000, log=true)", 20_000)
    assert il.min() >= 1 and il.max() <= 1000 and np.all(il == np.round(il))
    # log-uniform on [0.5, 1000.5], rounded: P(x <= 31) = log(31.5 / 0.5) / log(1000.5 / 0.5)
    expected = math.log(31.5 / 0.5) / math.log(1000.5 / 0.5)
    assert abs(np.mean(il <= 31) - expected) < 0.015
    sp = S.Space([S.parse_expression("model.hidden", "choice([[64], [128, 64], [8]])")])
    rng = np.random.default_rng(1)
    seen = [tuple(sp.sample(rng)["model.hidden"]) for _ in range(3000)]
    assert {seen.count(o) for o in [(64,), (128, 64), (8,)]} <= set(range(900, 1100))


@given(
    st.floats(0, 1),
    st.sampled_from(
        ["loguniform(1e-5, 10)", "uniform(-1, 1)", "one_minus_loguniform(0.5, 0.9999)"]
    ),
)
def test_unit_coordinates_round_trip(u, expression):
    d = S.parse_expression("train.lr", expression)
    value = d.from_unit(u)
    assert math.isclose(d.to_unit(value), u, abs_tol=1e-9)
    assert d.from_unit(0.0) == d.lo and d.from_unit(1.0) == d.hi


# -- parsing and refusals -----------------------------------------------------------------------
def test_parse_reads_the_issue_examples():
    config = make_config(
        {
            "train": {
                "lr": "loguniform(1e-4, 1)",
                "beta1": "one_minus_loguniform(0.9, 0.999)",
                "batch_size": "choice([32, 64, 128, 256])",
                "epochs": "int(2, 20, log=true)",
                "schedule": {"rate": "uniform(0, 1)"},
            },
            "model": {"hidden": "choice([[64], [128, 64], [256, 128, 64]])"},
        }
    )
    sp = S.parse(config)
    assert sp.keys == [
        "train.lr", "train.beta1", "train.batch_size", "train.epochs", "train.schedule.rate",
        "model.hidden",
    ]  # fmt: skip
    point = sp.sample(np.random.default_rng(0))
    applied = sp.apply(config, point)
    assert "tune" not in applied
    assert applied["train"]["schedule"]["rate"] == point["train.schedule.rate"]
    assert applied["model"]["hidden"] == point["model.hidden"]


@pytest.mark.parametrize(
    ("space", "message"),
    [
        ({"train": {"lr": "loguniform(1e-4)"}}, r"tune.space.train.lr = 'loguniform\(1e-4\)'"),
        ({"train": {"lr": "logunifrom(1e-4, 1)"}}, "unknown function 'logunifrom'"),
        ({"train": {"lr": "loguniform(0, 1)"}}, "loguniform needs 0 < low < high"),
        ({"train": {"lr": "uniform(1, 0.1)"}}, "low end must be below"),
        ({"train": {"lr": "loguniform(1e-4, 1"}}, "not an expression"),
        ({"train": {"lr": "__import__('os')"}}, "expected uniform"),
        ({"train": {"lr": "uniform(-1, 1)"}}, r"gives -1.0, which the config refuses.*train.lr"),
        ({"train": {"beta1": "one_minus_loguniform(0.9, 1)"}}, "needs 0 <= low < high < 1"),
        ({"train": {"epochs": "int(0.5, 3)"}}, "two integers"),
        ({"train": {"epochs": "int(0, 3, log=true)"}}, "needs low >= 1"),
        ({"train": {"epochs": "int(1, 3, step=2)"}}, "unexpected argument step"),
        ({"train": {"batch_size": "choice([])"}}, "non-empty list"),
        ({"train": {"batch_size": "choice([32, 32])"}}, "option twice"),
        ({"model": {"hidden": "choice([[64], [0]])"}}, "model.hidden"),
        ({"model": {"activation": "choice(['relu', 'gelu'])"}}, "'gelu'.*model.activation"),
    ],
)
def test_malformed_expressions_are_refused_naming_the_key(space, message):
    with pytest.raises(S.SpaceError, match=message):
        S.parse(make_config(space))


@pytest.mark.parametrize(
    ("space", "message"),
    [
        ({"train": {"lrr": "uniform(0, 1)"}}, "'tune.space.train.lrr' is unknown; did you mean"),
        ({"trian": {"lr": "uniform(0, 1)"}}, "'tune.space.trian' is unknown"),
        ({"tune": {"trials": "int(1, 3)"}}, "'tune.space.tune' is unknown"),
        ({"train": {"lr": 0.1}}, "'tune.space.train.lr' must be a search expression"),
    ],
)
def test_unknown_keys_are_refused_by_the_config_schema(space, message):
    with pytest.raises(C.ConfigError, match=message):
        make_config(space)


def test_an_empty_space_is_refused():
    with pytest.raises(S.SpaceError, match="empty"):
        S.parse(C.validate({"tune": {"trials": 3}}))


def test_train_configs_ignore_tune_and_runs_without_it_do_not_grow_one():
    assert "tune" not in C.defaults()
    config = make_config({"train": {"lr": "loguniform(1e-4, 1)"}})
    assert config["tune"]["trials"] == 20 and config["tune"]["strategy"] == "random"


# -- grid and boxes ---------------------------------------------------------------------------
def test_grid_is_the_same_space_discretized_within_the_budget():
    sp = S.Space([S.parse_expression("train.lr", "loguniform(1e-4, 1)"),
                  S.parse_expression("model.l2", "uniform(0, 1)")])  # fmt: skip
    points = S.grid(sp, 16)
    assert len(points) == 16
    lrs = sorted({p["train.lr"] for p in points})
    np.testing.assert_allclose(np.log10(lrs), [-4, -4 + 4 / 3, -4 + 8 / 3, 0])
    assert len(S.grid(sp, 15)) == 9  # 3 x 3: the largest square grid within 15
    with_choice = S.Space(
        [*sp.dimensions, S.parse_expression("train.batch_size", "choice([32, 64])")]
    )
    assert S.grid_levels(with_choice, 20) == [3, 3, 2]
    assert S.Int("train.epochs", "int(1, 3)", 1, 3).levels(10) == [1, 2, 3]


def test_shrink_closes_in_around_the_best_points_in_log_space():
    sp = S.Space([S.parse_expression("train.lr", "loguniform(1e-6, 1)"),
                  S.parse_expression("model.hidden", "choice([[8], [16], [32]])")])  # fmt: skip
    box = S.Box.full(sp)
    best = [{"train.lr": 1e-3, "model.hidden": [16]}, {"train.lr": 1e-2, "model.hidden": [32]}]
    new = S.shrink(sp, box, best)
    lo, hi = new.to_dict(sp)["train.lr"]
    assert 1e-4 < lo <= 1e-3 and 1e-2 <= hi < 1e-1  # one decade widened by a quarter each side
    assert new.options[1] == [1, 2]
    # never outside the old box, never narrower than a tenth of it
    tiny = S.shrink(sp, new, [{"train.lr": 1e-3, "model.hidden": [16]}] * 2)
    assert tiny.lo[0] >= new.lo[0] and tiny.hi[0] <= new.hi[0]
    assert tiny.widths()[0] == pytest.approx(0.1 * new.widths()[0])
    rng = np.random.default_rng(0)
    for _ in range(200):
        p = sp.sample(rng, new)
        assert lo <= p["train.lr"] <= hi and p["model.hidden"] in ([16], [32])


def test_optuna_view_round_trips():
    pytest.importorskip("optuna")
    sp = S.parse(
        make_config(
            {
                "train": {"lr": "loguniform(1e-4, 1)", "beta1": "one_minus_loguniform(0.9, 0.999)"},
                "model": {"hidden": "choice([[64], [128, 64]])", "l2": "uniform(0, 1)"},
            }
        )
    )
    dists = S.optuna_distributions(sp)
    assert dists["1-train.beta1"].log and dists["1-train.beta1"].low == pytest.approx(0.001)
    rng = np.random.default_rng(3)
    for _ in range(50):
        p = sp.sample(rng)
        q = S.from_optuna(sp, S.to_optuna(sp, p))
        assert q["model.hidden"] == p["model.hidden"]
        assert q["train.beta1"] == pytest.approx(p["train.beta1"], abs=1e-12)
        for name, value in S.to_optuna(sp, p).items():
            assert dists[name]._contains(dists[name].to_internal_repr(value))

import json
import math

import numpy as np
import pytest

from deepfit.lab import cocktail
from tests.lab.helpers import assert_written


def test_ranks_share_ties_and_put_failures_last():
    r = cocktail.ranks({"a": 0.9, "b": 0.8, "c": 0.9, "d": math.nan, "e": 0.1})
    assert r == {"a": 1.5, "c": 1.5, "b": 3.0, "e": 4.0, "d": 5.0}


def test_ranks_match_scipy_rankdata():
    scipy_stats = pytest.importorskip("scipy.stats")
    x = np.random.default_rng(0).integers(0, 5, 12).astype(float)
    ours = cocktail.ranks({str(i): v for i, v in enumerate(x)})
    np.testing.assert_allclose(
        [ours[str(i)] for i in range(12)], scipy_stats.rankdata(-x, method="average")
    )


def test_average_rank_over_the_tables_a_contender_ran_on():
    s = cocktail.summarize(
        {
            "t1": {"x": [0.9, 0.7], "y": [0.5, 0.5], "only1": [1.0, 1.0]},
            "t2": {"x": [0.1], "y": [0.2]},
        }
    )
    assert s["mean"]["t1"]["x"] == pytest.approx(0.8)
    assert s["ranks"] == {"t1": {"x": 2.0, "y": 3.0, "only1": 1.0}, "t2": {"x": 2.0, "y": 1.0}}
    assert s["average_rank"] == {"x": 2.0, "y": 2.0, "only1": 1.0}


def test_each_technique_is_one_valid_override_on_the_recipe(tmp_path):
    from deepfit import config as C

    path = tmp_path / "t.csv"
    path.write_text("a,b,__target__\n1,x,0\n2,y,1\n3,x,0\n4,y,1\n")
    plain = cocktail.recipe(path, "classification", 0, 40, 8, {})
    assert plain["train"]["epochs"] == 40 and plain["train"]["refit"] is True
    for name, extra in cocktail.techniques(40, 8).items():
        cfg = cocktail.recipe(path, "classification", 0, 40, 8, extra)
        for key, value in extra.items():
            assert C.get(cfg, key) == value, (name, key)
        changed = {k for k, v in C.flatten(cfg) if C.get(plain, k) != v}
        assert changed <= set(extra), (name, changed)


@pytest.mark.slow
def test_quick_run_ranks_every_contender_on_every_table(quick):
    result, out = quick("cocktail")
    assert_written("cocktail", out)
    data = result.data
    assert data["tables"] == list(cocktail.QUICK_TABLES)
    techniques = set(cocktail.techniques(data["epochs"], data["patience"]))
    everyone = {cocktail.PLAIN, cocktail.COCKTAIL, cocktail.HGB} | techniques
    for table, scores in data["mean"].items():
        task = data["sizes"][table]["task"]
        expected = everyone - (set() if task == "classification" else {"label smoothing"})
        assert set(scores) == expected, table
        ranks = data["ranks"][table]
        n = len(ranks)
        assert sum(ranks.values()) == pytest.approx(n * (n + 1) / 2)
        for contender, value in scores.items():
            failed = contender in result.data.get("failures", {}).get(table, {})
            assert math.isnan(value) if failed else (value == value and value <= 1.0)
        # the winner of the table has rank 1 (or shares it)
        best = max((v for v in scores.values() if v == v), default=None)
        assert min(ranks.values()) == pytest.approx(
            (sum(v == best for v in scores.values()) + 1) / 2
        )
    assert data["average_rank"]["label smoothing"] == data["ranks"]["penguins"]["label smoothing"]
    assert data["published_rank"] == {cocktail.COCKTAIL: 2.46, cocktail.HGB: 3.93}
    for table in data["tables"]:
        (winner,) = data["searched"][table]
        assert winner["trials"] >= 1 and winner["params"]
    # the claim's direction is reported, not asserted: with a 2 s search and 60 epochs on two
    # 300-row tables the plain recipe often ranks ahead (the full run is docs/lab/cocktail.md)
    assert set(result.checks) == {
        "the searched cocktail ranks ahead of gradient-boosted trees (HGB) on average"
    }
    page = (out / "cocktail.md").read_text()
    assert "| cocktail (searched): average rank |" in page and "| 2.46 |" in page
    assert json.loads((out / "cocktail.json").read_text())["quick"] is True

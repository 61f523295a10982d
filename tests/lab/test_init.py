import math

import numpy as np

from deepfit.build import build_model
from deepfit.lab import initialization
from tests.lab.helpers import assert_written


def test_he_beats_large_random_beats_zeros(quick):
    result, out = quick("init")
    assert_written("init", out)
    assert all(result.checks.values()), result.checks
    course = result.data["circles_course"]
    assert course["He"][0] > course["large random (x10)"][0] > course["zeros"][0] == 0.5
    assert abs(result.data["cost"]["zeros"][-1] - math.log(2)) < 1e-3
    xavier, he = result.data["activation_std"]["xavier"], result.data["activation_std"]["he"]
    assert xavier[-1] < 1e-3 * xavier[0] and he[-1] > 0.3 * he[0]
    # the quick run stops at 4,000 iterations: the row names the iteration it prints, and the
    # notebook's number for iteration 14,000 is not set beside it
    rows = {r["quantity"]: r for r in result.rows}
    he_cost = rows["He: cost at iteration 3,999"]
    assert he_cost["published"] is None and "14,000" in he_cost["note"]
    assert any("(1079 training rows)" in r["note"] for r in result.rows)


def test_course_init_draws_like_the_notebook():
    """The course configs name their initializer (no object put into a validated config)
    and build the notebook's draws: np.random.seed(3), then randn(n_out, n_in) * std."""
    cfg = initialization.circles_config(initialization.COURSE_INITS["He"], 1, 0, "float64")
    assert all(isinstance(v, (str, int, float, bool, list)) for v in cfg["model"].values())
    model = build_model(cfg, 2, 2, "sigmoid_binary_cross_entropy")
    state = np.random.RandomState(3)
    W1 = state.randn(10, 2) * np.sqrt(2 / 2)
    W2 = state.randn(5, 10) * np.sqrt(2 / 10)
    assert np.array_equal(model.params["0.W"], W1.T)
    assert np.array_equal(model.params["2.W"], W2.T)
    assert initialization.COURSE_INITS.keys() == initialization.PUBLISHED.keys()

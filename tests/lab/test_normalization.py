import numpy as np

from deepfit.lab import normalization
from deepfit.lab.saddles import Objective
from deepfit.nn.sequential import mlp
from tests.lab.helpers import assert_written


def test_normalized_inputs_are_rounder_and_take_larger_steps(quick):
    result, out = quick("normalization")
    assert_written("normalization", out)
    assert all(result.checks.values()), result.checks
    raw, std = result.data["raw"], result.data["standardized"]
    assert raw["condition"] > 1e6 and std["condition"] < 2
    assert std["largest_stable_lr"] / raw["largest_stable_lr"] > 1e4
    for r in (raw, std):  # the sweep finds the theory's limit 2 / lambda_max within a step
        assert r["lr_limit"] / 10**0.25 <= r["largest_stable_lr"] <= r["lr_limit"]


def test_hessian_formula_matches_finite_differences_of_backprop():
    X, y = normalization.make_data(20, 1)
    X = (X - X.mean(0)) / X.std(0)
    model = mlp(2, [], 1, dtype="float64", rng=0)
    f = Objective(model, X, y)
    theta = np.concatenate([p.ravel() for p in model.params.values()])
    # parameters are ordered (W1, W2, b): the formula's order is (w1, w2, b) as well
    np.testing.assert_allclose(f.hessian(theta), normalization.hessian(X), rtol=1e-6, atol=1e-8)

import numpy as np

from deepfit.lab import saddles
from deepfit.nn.sequential import mlp
from tests.lab.helpers import assert_written


def test_critical_points_are_saddles_and_adam_leaves_the_plateau(quick):
    result, out = quick("saddles")
    assert_written("saddles", out)
    assert all(result.checks.values()), result.checks
    points = result.data["critical_points"]
    for r in points.values():
        for c in r["points"]:
            assert c["index"] == c["negative"] / c["n_params"]
    plateau = result.data["plateau"]
    assert plateau["SGD (lr 0.1)"]["epochs_to_leave"] is None  # still on the plateau
    assert plateau["Adam (lr 0.001)"]["epochs_to_leave"] <= 5


def test_critical_point_finder_converges_and_hessian_is_symmetric():
    x, y = saddles.regression_data()
    model = mlp(1, [2], 1, activation="tanh", dtype="float64", rng=0)
    f = saddles.Objective(model, x, y)
    # the constant predictor is a critical point: W1 = 0 (constant hidden units), output = mean
    theta = np.concatenate([p.ravel() for p in model.params.values()])  # W1, b1, W2, b2
    theta[:2], theta[-1] = 0.0, y.mean() + 0.05
    found = saddles.find_critical_point(f, theta, 50)
    assert found is not None
    cost, g = f.grad(found)
    assert np.linalg.norm(g) < 1e-5 and abs(cost - y.var()) < 1e-6
    H = f.hessian(found)
    np.testing.assert_array_equal(H, H.T)

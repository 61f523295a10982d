from tests.lab.helpers import assert_written


def test_large_lambda_makes_tanh_units_linear_and_underfits(quick):
    result, out = quick("tanh_linear")
    assert_written("tanh_linear", out)
    assert all(result.checks.values()), result.checks
    points = result.data["points"]
    assert points[0]["lambda"] == 0 and points[-1]["lambda"] > points[0]["lambda"]
    assert points[-1]["linear_share"] > 0.9 > points[0]["linear_share"]
    assert points[-1]["mean_abs_z"] < points[0]["mean_abs_z"] / 5
    assert points[-1]["train"] < points[0]["train"]

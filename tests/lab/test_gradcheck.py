import numpy as np

from deepfit.checks.gradcheck import gradcheck
from deepfit.lab import gradcheck as lab_gradcheck
from deepfit.nn.losses import SigmoidBinaryCrossEntropy
from tests.lab.helpers import assert_written


def test_planted_bug_caught_fix_passes(quick):
    result, out = quick("gradcheck")
    assert_written("gradcheck", out)
    assert all(result.checks.values()), result.checks
    assert result.data["buggy"][0] > 0.1
    assert result.data["fixed"][0] < 1e-7


def test_plant_bugs_leaves_the_original_alone():
    model, X, y = lab_gradcheck.course_problem(1)
    buggy = lab_gradcheck.plant_bugs(model, {"2.W": 2.0})
    loss = SigmoidBinaryCrossEntropy()
    assert gradcheck(model, loss, X, y).relative_error < 1e-7
    report = gradcheck(buggy, loss, X, y)
    assert report.worst == "2.W" and report.per_tensor["2.W"] > 0.1
    assert np.array_equal(model.params["2.W"], buggy.params["2.W"])

import pytest

from tests.lab.helpers import assert_written, needs_mnist


@needs_mnist
@pytest.mark.slow
def test_batchnorm_trains_faster_and_keeps_sigmoid_inputs_stable(quick):
    result, out = quick("batchnorm")
    assert_written("batchnorm", out)
    assert all(result.checks.values()), result.checks
    with_bn, without = result.data["with"], result.data["without"]
    assert with_bn["test_accuracy"][-1] > without["test_accuracy"][-1]

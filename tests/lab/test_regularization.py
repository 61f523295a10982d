import pytest

from tests.lab.helpers import assert_written


@pytest.mark.slow
def test_l2_and_dropout_narrow_the_gap(quick):
    result, out = quick("regularization")
    assert_written("regularization", out)
    gap = result.data["gap"]
    assert gap["L2 (lambda 0.7)"] < gap["none"]
    assert gap["dropout (keep 0.86)"] < gap["none"]

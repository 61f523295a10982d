from tests.lab.helpers import assert_written


def test_batchnorm_works_over_more_learning_rates(quick):
    result, out = quick("bn_learning_rates")
    assert_written("bn_learning_rates", out)
    assert all(result.checks.values()), result.checks
    with_bn, without = result.data["with"], result.data["without"]
    lrs = result.data["learning_rates"]
    assert without["dev_accuracy"][0][lrs.index(3.0)] == 0.0  # diverged without batch norm
    assert with_bn["dev_accuracy"][0][lrs.index(3.0)] > 0.9

from tests.lab.helpers import assert_written


def test_l1_zeroes_weights_l2_shrinks_them(quick):
    result, out = quick("sparsity")
    assert_written("sparsity", out)
    assert all(result.checks.values()), result.checks
    stats = result.data["stats"]
    strongest = f"{stats['lambdas'][-1]:g}"
    assert stats["l1"][strongest]["zero_share"] > 0.5
    assert stats["l2"][strongest]["zero_share"] < 0.1
    assert stats["l2"][strongest]["l2_norm"] < stats["none"]["l2_norm"]

from tests.lab.helpers import assert_written


def test_bigger_network_lowers_bias_more_data_lowers_variance(quick):
    result, out = quick("bias_variance")
    assert_written("bias_variance", out)
    assert all(result.checks.values()), result.checks
    curves = result.data["curves"]
    small, big = (curves[str(w)] for w in result.data["widths"][:: len(result.data["widths"]) - 1])
    assert small["train_error"][-1] > 0.2 > big["train_error"][-1]  # 2 units cannot fit digits
    gaps = [d - t for t, d in zip(big["train_error"], big["dev_error"], strict=True)]
    assert gaps[0] > gaps[-1] and big["verdict"][0] == "high variance"
    assert big["sizes"][-1] == 1079  # the whole training split of the digits

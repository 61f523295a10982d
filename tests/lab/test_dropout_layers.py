from tests.lab.helpers import assert_written, needs_mnist


@needs_mnist
def test_dropout_where_the_weights_are(quick):
    result, out = quick("dropout_layers")
    assert_written("dropout_layers", out)
    assert all(result.checks.values()), result.checks
    data = result.data
    big = data["keep 0.5 on the 512-unit layer only"]
    assert big["keep_prob"] == [0.5, 1.0]
    assert big["n_params"] == data["none"]["n_params"] == 784 * 512 + 512 + 512 * 32 + 32 + 330
    assert big["dev"] > data["keep 0.5 on the 32-unit layer only"]["dev"]

from tests.lab.helpers import assert_written, needs_mnist


@needs_mnist
def test_minibatches_reach_the_cost_first(quick):
    result, out = quick("minibatch")
    assert_written("minibatch", out)
    assert all(result.checks.values()), result.checks
    data = result.data
    assert [data[k]["batch_size"] for k in data] == [1, 64, 512, 1000]
    for r in data.values():  # probes start at 0 s, 0 epochs, and time only grows
        assert r["seconds"][0] == 0 and r["epochs"][0] == 0
        assert all(b >= a for a, b in zip(r["seconds"], r["seconds"][1:], strict=False))

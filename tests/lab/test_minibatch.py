from tests.lab.helpers import assert_written, needs_mnist


@needs_mnist
def test_minibatches_reach_the_cost_first(quick):
    result, out = quick("minibatch")
    assert_written("minibatch", out)
    # The claims about seconds are checked in the full run (docs/lab/minibatch.json, see
    # tests/lab for the committed tables); a unit test does not assert timings, which a
    # loaded machine can reorder. The per-epoch claim does not depend on the clock.
    per_epoch = [k for k in result.checks if k.startswith("per epoch")]
    assert per_epoch and all(result.checks[k] for k in per_epoch), result.checks
    data = result.data
    assert [data[k]["batch_size"] for k in data] == [1, 64, 512, 1000]
    for r in data.values():  # probes start at 0 s, 0 epochs, and time only grows
        assert r["seconds"][0] == 0 and r["epochs"][0] == 0
        assert all(b >= a for a, b in zip(r["seconds"], r["seconds"][1:], strict=False))

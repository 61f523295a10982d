from tests.lab.helpers import assert_written, needs_mnist


def test_adam_beats_gd_on_moons(quick):
    result, out = quick("optimizers")
    assert_written("optimizers", out)
    moons = result.data["moons"]
    assert moons["Adam"]["train_accuracy"] > moons["mini-batch GD"]["train_accuracy"]
    assert result.checks["moons: Adam's train accuracy > mini-batch GD's"]


@needs_mnist
def test_adam_training_cost_falls_fastest_on_mnist(quick):
    result, _ = quick("optimizers")
    curves = result.data["mnist_curves"]
    adam, sgd = curves["adam"]["0.001"], curves["sgd"]["0.1"]
    assert sum(adam) < sum(sgd)
    assert all(result.checks.values()), result.checks

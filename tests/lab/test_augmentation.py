from tests.lab.helpers import assert_written, needs_mnist


@needs_mnist
def test_shifts_narrow_the_train_dev_gap(quick):
    result, out = quick("augmentation")
    assert_written("augmentation", out)
    assert all(result.checks.values()), result.checks
    none, shift = result.data["none"], result.data["shift (2 px)"]
    assert none["train"] == 1.0  # 300 digits are memorized without augmentation
    assert shift["gap"] < none["gap"] - 0.03

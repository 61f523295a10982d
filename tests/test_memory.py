"""Memory estimates from an architecture, before anything is built (issue 14, item 14)."""

from __future__ import annotations

import numpy as np
import pytest

import deepfit as df
from deepfit import memory
from deepfit.config import validate
from deepfit.errors import DeepfitError


@pytest.mark.parametrize("batchnorm", [False, True])
def test_mlp_params_counts_every_parameter_and_buffer(batchnorm):
    model = df.mlp(64, [128, 64], 10, batchnorm=batchnorm, rng=0)
    entries = sum(v.size for v in model.state_dict().values())
    assert memory.mlp_params(64, [128, 64], 10, batchnorm) == entries
    assert sum(memory.layer_params(c) for c in model.config()) == entries


def test_architecture_and_training_bytes_by_hand():
    # Dense(4, 3): 12 weights + 3 biases = 15 entries; x 2 (gradients) x 4 bytes = 120
    assert memory.architecture_bytes([{"type": "Dense", "n_in": 4, "n_out": 3}]) == 120
    assert memory.architecture_bytes([{"type": "Dense", "n_in": 4, "n_out": 3}], "float64") == 240
    # mlp(4, [3], 2): 4*3+3 + 3*2+2 = 23 entries; Adam: weights, gradients, two moments and
    # two copies = 6 per entry; activations 8 rows x (4 + 3 + 2) x 4 -> (23*6 + 288) * 4 bytes
    assert memory.training_bytes(4, [3], 2, batch_size=8) == (23 * 6 + 8 * 9 * 4) * 4
    assert (
        memory.training_bytes(4, [3], 2, batch_size=8, optimizer="sgd") == (23 * 4 + 8 * 9 * 4) * 4
    )


def test_unknown_layers_are_bounded_by_their_sizes():
    assert memory.layer_params({"type": "ReLU"}) == 0
    assert memory.layer_params({"type": "LayerNorm", "n_features": 7}) == 14
    assert memory.layer_params({"type": "SomeNorm", "n": 7}) == 7
    embed = {"type": "EmbedColumns", "cardinalities": [10, 5], "dims": [4, 3]}
    assert memory.layer_params(embed) == 10 * 4 + 5 * 3
    block = {"type": "Residual", "layers": [{"type": "Dense", "n_in": 5, "n_out": 5}]}
    assert memory.layer_params(block) == 30
    with pytest.raises(DeepfitError, match="layer Dense needs an integer 'n_in'"):
        memory.layer_params({"type": "Dense", "n_in": "5", "n_out": 5})


def test_check_training_memory_names_the_key_and_the_estimate(monkeypatch):
    monkeypatch.setenv("DEEPFIT_MAX_BYTES", str(1 << 20))
    small = validate({"model": {"hidden": [16]}})
    assert memory.check_training_memory(small, 64, 10) < 1 << 20
    big = validate({"model": {"hidden": [512, 512]}})
    with pytest.raises(DeepfitError) as exc:
        memory.check_training_memory(big, 64, 10)
    n = memory.mlp_params(64, [512, 512], 10)
    assert str(exc.value).startswith(
        f"config key 'model.hidden' = [512, 512] gives a network of {n:,} parameters that "
        "needs about"
    )
    assert np.isclose(n, 64 * 512 + 512 + 512 * 512 + 512 + 512 * 10 + 10)


@pytest.mark.parametrize("norm", [None, "batchnorm", "layernorm"])
@pytest.mark.parametrize("residual", [False, True])
def test_mlp_params_counts_residual_blocks_and_norms_exactly(residual, norm):
    model = df.mlp(12, [16, 8, 8], 3, norm=norm, residual=residual, rng=0)
    entries = sum(v.size for v in model.state_dict().values())
    assert memory.mlp_params(12, [16, 8, 8], 3, norm=norm, residual=residual) == entries
    assert sum(memory.layer_params(c) for c in model.config()) == entries


def _training_peak(config, n_in: int, n_out: int, rows: int) -> int:
    """tracemalloc's peak over building and training ``config``'s network for one epoch
    (with early stopping and a dev set, as a run has them), the data allocated before."""
    import tracemalloc

    from deepfit.build import build_loss, build_model, build_optimizer
    from deepfit.training.callbacks import EarlyStopping
    from deepfit.training.trainer import Trainer

    rng = np.random.default_rng(0)
    X = rng.standard_normal((rows, n_in)).astype(np.float32)
    y = rng.integers(0, n_out, rows)
    dev = (X[:64].copy(), y[:64].copy())
    loss = "softmax_cross_entropy"
    tracemalloc.start()
    try:
        model = build_model(config, n_in, n_out, loss)
        trainer = Trainer(
            model,
            loss=build_loss(config, loss),
            optimizer=build_optimizer(config),
            batch_size=config["train"]["batch_size"],
            callbacks=[EarlyStopping(patience=3)],
            seed=0,
        )
        trainer.fit(X, y, epochs=1, validation_data=dev)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_the_estimate_of_residual_blocks_is_within_a_factor_of_the_measured_peak():
    # the first training of a process imports modules lazily, which tracemalloc counts too
    _training_peak(validate({"model": {"hidden": [4], "residual": True}}), 8, 2, 64)
    cases = [
        # weights dominate: two 512 x 512 matrices per block (the plain stack has one in all)
        ({"hidden": [512, 512], "residual": True}, {"batch_size": 64}, 256),
        ({"hidden": [256, 256, 256], "residual": True, "norm": "layernorm"}, {}, 256),
        # activations dominate: per block the inner width, its output back to d and the sum
        ({"hidden": [32, 32], "residual": True}, {"batch_size": 2048}, 4096),
    ]
    for model, train, rows in cases:
        config = validate({"model": model, "train": train})
        estimate = memory.check_training_memory(config, 64, 10)
        peak = _training_peak(config, 64, 10, rows)
        # the parameters are counted exactly; activations are allowed 4 copies of each width
        # (the same allowance as a plain stack, measured at 1.8-2.2x there)
        assert 0.8 * peak < estimate < 4 * peak, (model, train, estimate, peak)


def test_check_training_memory_names_residual_blocks(monkeypatch):
    monkeypatch.setenv("DEEPFIT_MAX_BYTES", str(8 << 20))
    plain = validate({"model": {"hidden": [512]}})
    assert memory.check_training_memory(plain, 64, 10) < 8 << 20
    residual = validate({"model": {"hidden": [512], "residual": True}})
    n = memory.mlp_params(64, [512], 10, residual=True)
    assert n == 64 * 512 + 512 + (512 * 512 + 512) * 2 + 512 * 10 + 10
    with pytest.raises(DeepfitError, match=f"a network of residual blocks of {n:,} parameters"):
        memory.check_training_memory(residual, 64, 10)


def test_check_training_memory_counts_category_embeddings(monkeypatch):
    config = validate({"model": {"hidden": [8]}, "train": {"optimizer": "adam"}})
    plain = memory.check_training_memory(config, 5, 2)
    embed = {"columns": [4], "cardinalities": [1000], "dims": [16]}
    with_table = memory.check_training_memory(config, 5, 2, embed)
    # the table's 16,000 weights with their gradient, two moments and two copies, plus the
    # first layer's 15 more inputs (4 passed through + 16 embedded - 5) x 8 units
    extra_params = 1000 * 16 + 15 * 8
    batch = config["train"]["batch_size"]
    assert with_table - plain == (extra_params * 6 + batch * 15 * 4) * 4
    monkeypatch.setenv("DEEPFIT_MAX_BYTES", str(with_table - 1))
    names = ["a", "b", "c", "d", "zip__code"]
    with pytest.raises(DeepfitError) as exc:
        memory.check_training_memory(config, 5, 2, embed, names)
    message = str(exc.value)
    assert message.startswith(
        "the category embeddings need 16,000 parameters (the largest, column 'zip', has "
        "1,000 levels x 16 dimensions)"
    )
    assert "'data.drop'" in message and "\n" not in message

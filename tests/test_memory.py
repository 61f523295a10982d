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

"""``model.norm`` and ``model.residual``: config keys of :func:`deepfit.nn.mlp` (layer norm
or batch norm, residual blocks), refused when contradictory."""

from __future__ import annotations

import pytest

from deepfit import config as C
from deepfit.build import build_model
from deepfit.nn.batchnorm import BatchNorm
from deepfit.nn.layernorm import LayerNorm
from deepfit.nn.residual import Residual


def model(**keys):
    config = C.validate({"data": {"source": "moons"}, "model": {"hidden": [8, 8], **keys}})
    return build_model(config, 3, 2, "softmax_cross_entropy")


def kinds(net) -> list[type]:
    return [type(layer) for _, layer in net.named_layers()]


def test_norm_and_residual_reach_the_network():
    assert LayerNorm in kinds(model(norm="layernorm"))
    assert BatchNorm in kinds(model(norm="batchnorm"))
    assert BatchNorm in kinds(model(batchnorm=True))  # the old key still works
    assert BatchNorm in kinds(model(batchnorm=True, norm="batchnorm"))
    plain = kinds(model())
    assert LayerNorm not in plain and BatchNorm not in plain and Residual not in plain
    residual = kinds(model(residual=True, norm="layernorm"))
    assert residual.count(Residual) == 2 and LayerNorm in residual


def test_contradictory_norms_are_refused_naming_both_keys():
    with pytest.raises(C.ConfigError, match="'model.batchnorm' = true and 'model.norm'"):
        model(batchnorm=True, norm="layernorm")
    with pytest.raises(C.ConfigError, match="model.norm"):
        model(norm="groupnorm")

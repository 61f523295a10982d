"""How much memory a network needs, estimated from its architecture before it is built.

A parameter array of ``n`` entries costs ``n * itemsize`` bytes for the weights, as much
again for their gradients, and one more copy per optimizer moment (Momentum and RMSprop keep
one, Adam two). Training also keeps copies of the weights: early stopping's best weights and
the NaN guard's last good ones. So training holds about::

    bytes = n_params * itemsize * (2 + moments + copies) + batch * sum(widths) * itemsize * 4

where the second term is the activations of one mini-batch (forward values, the caches
backward needs, and the gradients flowing back). Checking this sum against the memory
available turns a ``MemoryError`` deep inside NumPy into one line naming the config key.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from deepfit.errors import DeepfitError

OPTIMIZER_MOMENTS = {"sgd": 0, "momentum": 1, "rmsprop": 1, "adam": 2}


def _int(layer: dict[str, Any], key: str) -> int:
    value = layer.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise DeepfitError(f"layer {layer.get('type')} needs an integer {key!r}, got {value!r}")
    return value


def layer_params(layer: dict[str, Any]) -> int:
    """Entries of the arrays (parameters and buffers) one layer config declares.

    ``Dense(n_in, n_out)`` holds ``n_in * n_out`` weights plus ``n_out`` biases;
    ``BatchNorm(n)`` holds ``gamma``, ``beta`` and two running statistics, ``4 n``;
    ``LayerNorm(n)`` ``2 n``; ``EmbedColumns`` one ``cardinality x dim`` table per code
    column; a ``Residual`` block what its ``layers`` hold. Layers without arrays hold none; a layer
    type unknown here is bounded by the product of its integer sizes (a normalization's
    ``n``) times, for lists of sizes, the sum of their entrywise products (an embedding's
    ``cardinalities x dims``).
    """
    kind = layer.get("type")
    if kind == "Dense":
        n_in, n_out = _int(layer, "n_in"), _int(layer, "n_out")
        return n_in * n_out + (n_out if layer.get("bias", True) else 0)
    if kind == "BatchNorm":
        return 4 * _int(layer, "n")
    if kind == "LayerNorm":
        return 2 * _int(layer, "n_features")
    if kind == "EmbedColumns":  # one cardinality x dim table per code column
        cards, dims = layer.get("cardinalities"), layer.get("dims")
        if isinstance(cards, list) and isinstance(dims, list) and len(cards) == len(dims):
            sizes = [*cards, *dims]
            if all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in sizes):
                return sum(c * d for c, d in zip(cards, dims, strict=True))
    if kind == "Residual" and isinstance(layer.get("layers"), list):
        return sum(layer_params(inner) for inner in layer["layers"] if isinstance(inner, dict))
    sizes = [v for v in layer.values() if isinstance(v, int) and not isinstance(v, bool) and v > 1]
    lists = [
        [int(x) for x in v if isinstance(x, int) and not isinstance(x, bool)]
        for v in layer.values()
        if isinstance(v, list)
    ]
    total = math.prod(sizes) if sizes else 0
    if len(lists) >= 2 and len(lists[0]) == len(lists[1]):
        total += sum(a * b for a, b in zip(lists[0], lists[1], strict=True))
    else:
        total += sum(sum(v) for v in lists)
    return total


def architecture_bytes(architecture: Sequence[dict[str, Any]], dtype: Any = "float32") -> int:
    """Bytes of a network's parameters, gradients and buffers, built from ``architecture``
    (a :meth:`Sequential.config` list): ``2 * sum(layer entries) * itemsize``."""
    itemsize = np.dtype(dtype).itemsize
    return 2 * itemsize * sum(layer_params(layer) for layer in architecture)


def mlp_params(n_in: int, hidden: Sequence[int], n_out: int, batchnorm: bool = False) -> int:
    """Parameters and buffers of :func:`deepfit.nn.mlp` with these widths (exact)."""
    total, width_in = 0, n_in
    for width in hidden:
        total += width_in * width + (4 * width if batchnorm else width)
        width_in = width
    return total + width_in * n_out + n_out


def training_bytes(
    n_in: int,
    hidden: Sequence[int],
    n_out: int,
    *,
    batchnorm: bool = False,
    dtype: Any = "float32",
    optimizer: str = "adam",
    batch_size: int = 64,
    copies: int = 2,
) -> int:
    """Estimated peak bytes of training :func:`deepfit.nn.mlp` (see the module docstring).

    ``copies`` counts the extra full copies of the weights kept during training (early
    stopping's best weights, the NaN guard's last good ones).
    """
    itemsize = np.dtype(dtype).itemsize
    n = mlp_params(n_in, hidden, n_out, batchnorm)
    per_param = 2 + OPTIMIZER_MOMENTS.get(optimizer, 2) + copies
    activations = batch_size * (n_in + sum(hidden) + n_out) * 4
    return (n * per_param + activations) * itemsize


def check_training_memory(config: dict[str, Any], n_in: int, n_out: int) -> int:
    """Refuse a config whose network cannot fit in memory, before any array is allocated.

    Returns the estimate in bytes. The limit is :func:`deepfit.io.memory_limit`.
    """
    from deepfit.io import format_bytes, memory_limit

    m, t = config["model"], config["train"]
    estimate = training_bytes(
        n_in,
        m["hidden"],
        n_out,
        batchnorm=m["batchnorm"],
        dtype=t["dtype"],
        optimizer=t["optimizer"],
        batch_size=t["batch_size"],
    )
    estimate *= int(m.get("ensemble", 1))  # K packed members: K networks' arrays
    limit = memory_limit()
    if estimate > limit:
        n = mlp_params(n_in, m["hidden"], n_out, m["batchnorm"])
        raise DeepfitError(
            f"config key 'model.hidden' = {list(m['hidden'])} gives a network of {n:,} "
            f"parameters that needs about {format_bytes(estimate)} to train ({t['dtype']}, "
            f"{t['optimizer']}), more than the {format_bytes(limit)} of memory available; "
            f"use narrower layers"
        )
    return estimate

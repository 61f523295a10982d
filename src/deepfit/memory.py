"""How much memory a network needs, estimated from its architecture before it is built.

A parameter array of ``n`` entries costs ``n * itemsize`` bytes for the weights, as much
again for their gradients, and one more copy per optimizer moment (Momentum and RMSprop keep
one, Adam two). Training also keeps copies of the weights: early stopping's best weights and
the NaN guard's last good ones. So training holds about::

    bytes = n_params * itemsize * (2 + moments + copies) + batch * sum(widths) * itemsize * 4

where the second term is the activations of one mini-batch (forward values, the caches
backward needs, and the gradients flowing back); ``widths`` are the input, every layer output
that backward keeps, and the output. Residual blocks (``model.residual``) count what they
build: the stem ``Dense(n_in, d)``, per block ``[norm(d)] -> Dense(d, h) -> Dense(h, d)``
plus the skip's sum ``z + f(z)`` (two weight matrices and about ``2 d + h`` activations per
block, not the plain stack's one), the head's ``[norm(d)] -> activation``. Checking this sum
against the memory available turns a ``MemoryError`` deep inside NumPy into one line naming
the config key.
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


NORM_ENTRIES = {"batchnorm": 4, "layernorm": 2}  # gamma, beta (+ running mean, variance)


def _norm(batchnorm: bool, norm: str | None) -> str | None:
    return "batchnorm" if batchnorm else None if norm in (None, "none") else norm


def mlp_params(
    n_in: int,
    hidden: Sequence[int],
    n_out: int,
    batchnorm: bool = False,
    *,
    norm: str | None = None,
    residual: bool = False,
) -> int:
    """Parameters and buffers of :func:`deepfit.nn.mlp` with these widths (exact).

    Plain: ``Dense(w_in, w)`` per hidden width ``w`` (no bias under batch norm), its norm,
    then ``Dense(w_last, n_out)``. Residual, with ``d = hidden[0]`` and ``c`` the norm's
    entries per unit (batch norm 4, layer norm 2, none 0)::

        (n_in d + d) + sum_h (c d + d h + h + h d + d) + c d + (d n_out + n_out)
    """
    norm = _norm(batchnorm, norm)
    per_unit = NORM_ENTRIES.get(norm or "", 0)
    if residual and hidden:
        d = int(hidden[0])
        total = n_in * d + d + per_unit * d + d * n_out + n_out
        return total + sum(per_unit * d + 2 * d * int(h) + int(h) + d for h in hidden)
    total, width_in = 0, n_in
    for width in hidden:
        bias = 0 if norm == "batchnorm" else width
        total += width_in * width + bias + per_unit * width
        width_in = width
    return total + width_in * n_out + n_out


def activation_widths(
    n_in: int,
    hidden: Sequence[int],
    n_out: int,
    *,
    norm: str | None = None,
    residual: bool = False,
) -> int:
    """Values per example that a training step keeps (the ``sum(widths)`` of the module's
    formula): the input, the outputs of the layers, the output. Plain:
    ``n_in + sum(hidden) + n_out``; residual (``d = hidden[0]``, ``n`` = 1 with a norm else
    0): ``n_in + d + sum_h (n d + h + 2 d) + (n + 1) d + n_out``."""
    if residual and hidden:
        d, n = int(hidden[0]), 0 if norm in (None, "none") else 1
        blocks = sum(n * d + int(h) + 2 * d for h in hidden)
        return n_in + d + blocks + (n + 1) * d + n_out
    return n_in + sum(int(h) for h in hidden) + n_out


def arrays_per_param(optimizer: str, copies: int = 2) -> int:
    """Arrays of a parameter's size that training keeps: the parameter, its gradient, the
    optimizer's moments and ``copies`` (early stopping's best weights, the NaN guard's)."""
    return 2 + OPTIMIZER_MOMENTS.get(optimizer, 2) + copies


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
    norm: str | None = None,
    residual: bool = False,
) -> int:
    """Estimated peak bytes of training :func:`deepfit.nn.mlp` (see the module docstring).

    ``copies`` counts the extra full copies of the weights kept during training (early
    stopping's best weights, the NaN guard's last good ones). ``norm`` and ``residual`` as
    :func:`deepfit.nn.mlp` takes them.
    """
    itemsize = np.dtype(dtype).itemsize
    n = mlp_params(n_in, hidden, n_out, batchnorm, norm=norm, residual=residual)
    per_param = arrays_per_param(optimizer, copies)
    widths = activation_widths(n_in, hidden, n_out, norm=_norm(batchnorm, norm), residual=residual)
    return (n * per_param + batch_size * widths * 4) * itemsize


def check_training_memory(
    config: dict[str, Any],
    n_in: int,
    n_out: int,
    embed: dict[str, list[int]] | None = None,
    names: Sequence[str] | None = None,
) -> int:
    """Refuse a config whose network cannot fit in memory, before any array is allocated.

    ``embed`` is :func:`deepfit.nn.mlp`'s (a table preprocessor's ``embed_spec()``): its
    tables (``sum_k cardinality_k * dim_k`` parameters) are counted like the other weights,
    and the first hidden layer sees ``n_in - len(columns) + sum(dims)`` inputs; ``names``
    (the input columns' names) name the largest table in the error. Returns the estimate in
    bytes. The limit is :func:`deepfit.io.memory_limit`.
    """
    from deepfit.io import format_bytes, memory_limit

    m, t = config["model"], config["train"]
    shape = {"norm": m.get("norm"), "residual": bool(m.get("residual"))}
    width, table_params, largest = n_in, 0, None
    if embed:
        cards, dims = embed["cardinalities"], embed["dims"]
        width = n_in - len(embed["columns"]) + sum(dims)
        sizes = [int(c) * int(d) for c, d in zip(cards, dims, strict=True)]
        table_params = sum(sizes)
        largest = max(range(len(sizes)), key=sizes.__getitem__) if sizes else None
    estimate = training_bytes(
        width,
        m["hidden"],
        n_out,
        batchnorm=m["batchnorm"],
        dtype=t["dtype"],
        optimizer=t["optimizer"],
        batch_size=t["batch_size"],
        **shape,
    )
    # an embedding table's gradient is dense here (a scatter-add into a full dW)
    estimate += table_params * arrays_per_param(t["optimizer"]) * np.dtype(t["dtype"]).itemsize
    estimate *= int(m.get("ensemble", 1))  # K packed members: K networks' arrays
    limit = memory_limit()
    if estimate > limit:
        n = mlp_params(width, m["hidden"], n_out, m["batchnorm"], **shape)
        if embed and largest is not None and table_params > n:
            c, d = embed["cardinalities"][largest], embed["dims"][largest]
            col = embed["columns"][largest]
            name = repr(names[col].removesuffix("__code")) if names else f"number {col}"
            raise DeepfitError(
                f"the category embeddings need {table_params:,} parameters (the largest, column "
                f"{name}, has {c:,} levels x {d} dimensions), about "
                f"{format_bytes(estimate)} to train ({t['dtype']}, {t['optimizer']}), more than "
                f"the {format_bytes(limit)} of memory available; leave that column out "
                f"(config key 'data.drop')"
            )
        blocks = " of residual blocks" if shape["residual"] else ""
        raise DeepfitError(
            f"config key 'model.hidden' = {list(m['hidden'])} gives a network{blocks} of {n:,} "
            f"parameters that needs about {format_bytes(estimate)} to train ({t['dtype']}, "
            f"{t['optimizer']}), more than the {format_bytes(limit)} of memory available; "
            f"use narrower layers"
        )
    return estimate

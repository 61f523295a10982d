"""Per-layer activation and gradient statistics: vanishing and exploding signals.

For a batch, each hidden layer's activations ``a_l`` (after the activation function) and the
gradient of its weights ``dW_l`` are summarized. In a healthy network ``std(a_l)`` stays
within a couple of orders of magnitude from layer to layer; a ratio below ``1e-2`` relative
to the first hidden layer flags the layer as *vanishing*, above ``1e2`` as *exploding*
(gradients likewise, relative to the last layer, where backpropagation starts).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import numpy as np

from deepfit.nn.activations import ACTIVATIONS
from deepfit.nn.dense import Dense
from deepfit.nn.dropout import Dropout
from deepfit.nn.losses import Loss
from deepfit.nn.sequential import Sequential, mlp

VANISHING = 1e-2
EXPLODING = 1e2
INITIALIZERS = ("zeros", "normal", "xavier", "he")


def _flag(ratio: float) -> str:
    if not np.isfinite(ratio) or ratio > EXPLODING:
        return "exploding"
    if ratio < VANISHING:
        return "vanishing"
    return "ok"


def layer_statistics(model: Sequential, loss: Loss, X: Any, y: Any) -> list[dict[str, Any]]:
    """Statistics of every hidden layer for one training-mode pass (dropout off).

    Returns one dict per hidden activation: ``layer`` (index in the model), ``activation``
    (its type), ``activation_mean``, ``activation_std``, ``fraction_zero`` (dead ReLUs,
    exactly-zero outputs), ``saturated`` (tanh/sigmoid outputs within 1% of their limits),
    ``grad_std`` (std of the preceding Dense layer's dW), and the flags ``activation_flag`` and
    ``grad_flag``.
    """
    model = copy.deepcopy(model)
    for layer in model.layers:
        if isinstance(layer, Dropout):
            layer.keep_prob = 1.0
    x = np.asarray(X, dtype=model.dtype)
    stats: list[dict[str, Any]] = []
    last_dense: int | None = None
    activation_types = tuple(ACTIVATIONS.values())
    for i, layer in enumerate(model.layers):
        x = layer.forward(x, training=True)
        if isinstance(layer, Dense):
            last_dense = i
        if isinstance(layer, activation_types):
            a = x.astype(np.float64)
            saturated = 0.0
            name = type(layer).__name__
            if name == "Tanh":
                saturated = float((np.abs(a) > 0.99).mean())
            elif name == "Sigmoid":
                saturated = float(((a < 0.01) | (a > 0.99)).mean())
            stats.append(
                {
                    "layer": i,
                    "activation": name,
                    "activation_mean": float(a.mean()),
                    "activation_std": float(a.std()),
                    "fraction_zero": float((a == 0).mean()),
                    "saturated": saturated,
                    "dense": last_dense,
                }
            )
    loss.forward(x, y)
    model.backward(loss.backward())
    for s in stats:
        s["grad_std"] = float(model.layers[s.pop("dense")].grads["W"].std())
    if stats:
        first_a = stats[0]["activation_std"] or 1e-300
        last_g = stats[-1]["grad_std"] or 1e-300
        for s in stats:
            s["activation_flag"] = _flag(s["activation_std"] / first_a)
            s["grad_flag"] = _flag(s["grad_std"] / last_g)
    return stats


def compare_initializers(
    n_in: int,
    hidden: Sequence[int],
    n_out: int,
    loss: Loss,
    X: Any,
    y: Any,
    *,
    activation: str = "relu",
    initializers: Sequence[str] = INITIALIZERS,
    seed: int = 0,
) -> dict[str, list[dict[str, Any]]]:
    """:func:`layer_statistics` at initialization for each initializer, same depth and data."""
    return {
        name: layer_statistics(
            mlp(n_in, hidden, n_out, activation=activation, init=name, rng=seed), loss, X, y
        )
        for name in initializers
    }


def report(stats: list[dict[str, Any]]) -> str:
    """A fixed-width table of :func:`layer_statistics`."""
    lines = [
        f"{'layer':>5}  {'activation':<10} {'mean':>9} {'std':>9} {'zero':>6} "
        f"{'satur.':>6} {'dW std':>9}  flags"
    ]
    for s in stats:
        flags = [f for f in (s["activation_flag"], s["grad_flag"]) if f != "ok"]
        lines.append(
            f"{s['layer']:>5}  {s['activation']:<10} {s['activation_mean']:>9.3g} "
            f"{s['activation_std']:>9.3g} {s['fraction_zero']:>6.2f} {s['saturated']:>6.2f} "
            f"{s['grad_std']:>9.3g}  {', '.join(sorted(set(flags))) or 'ok'}"
        )
    return "\n".join(lines)

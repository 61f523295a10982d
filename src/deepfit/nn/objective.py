"""The training objective: loss plus weight penalties, and its gradient.

``J = L(model(x), y; w) + sum of penalties``, where ``L`` is the (optionally example-weighted)
mean loss of :mod:`deepfit.nn.losses` and each penalty keeps its meaning ``lambda/(2m) sum
||W||^2`` (L2) or ``lambda/m sum |W|`` (L1) with ``m`` the number of rows of the batch, whatever
the example weights.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from deepfit.nn.losses import Loss
from deepfit.nn.penalties import L1, L2, Penalty
from deepfit.nn.sequential import Sequential


def make_penalties(l2: float = 0.0, l1: float = 0.0) -> list[Penalty]:
    """The penalties asked for, skipping those whose lambda is 0."""
    return [p for p in (L2(l2), L1(l1)) if p.lam]


def _weights(model: Sequential) -> tuple[list[Any], list[Any]]:
    params, grads = model.params, model.grads
    names = model.decay_names()
    return [params[n] for n in names], [grads[n] for n in names]


@dataclass
class Evaluation:
    """One evaluation of the objective on a batch: ``J = data_loss + penalty``."""

    data_loss: float
    penalty: float
    outputs: Any

    @property
    def total(self) -> float:
        return self.data_loss + self.penalty


def evaluate_objective(
    model: Sequential,
    loss: Loss,
    x: Any,
    y: Any,
    penalties: Sequence[Penalty] = (),
    training: bool = True,
    weight: Any = None,
) -> Evaluation:
    """Forward pass, loss and penalties for a batch of ``m = len(x)`` rows (no backward);
    ``weight`` holds optional per-example weights of the loss."""
    outputs = model.forward(x, training=training)
    data_loss = loss.forward(outputs, y, weight)
    weights, _ = _weights(model) if penalties else ([], [])
    penalty = sum((p.value(weights, x.shape[0]) for p in penalties), 0.0)
    return Evaluation(data_loss, penalty, outputs)


def cost(
    model: Sequential,
    loss: Loss,
    x: Any,
    y: Any,
    penalties: Sequence[Penalty] = (),
    training: bool = True,
    weight: Any = None,
) -> float:
    """``J = loss(model(x), y; weight) + sum of penalties`` for a batch of ``m = len(x)``
    rows."""
    return evaluate_objective(model, loss, x, y, penalties, training, weight).total


def forward_backward(
    model: Sequential,
    loss: Loss,
    x: Any,
    y: Any,
    penalties: Sequence[Penalty] = (),
    weight: Any = None,
) -> Evaluation:
    """Training-mode forward and backward: leaves ``dJ/dtheta`` in ``model.grads`` (penalty
    gradients included) and returns the evaluation (data loss, penalty, outputs)."""
    evaluation = evaluate_objective(model, loss, x, y, penalties, training=True, weight=weight)
    model.backward(loss.backward(), input_grad=False)
    if penalties:
        weights, grads = _weights(model)
        for p in penalties:
            p.add_grad(weights, grads, x.shape[0])
    return evaluation


def cost_and_gradients(
    model: Sequential,
    loss: Loss,
    x: Any,
    y: Any,
    penalties: Sequence[Penalty] = (),
    weight: Any = None,
) -> float:
    """Training-mode forward and backward: returns ``J`` and leaves ``dJ/dtheta`` in
    ``model.grads`` (penalty gradients included)."""
    return forward_backward(model, loss, x, y, penalties, weight).total

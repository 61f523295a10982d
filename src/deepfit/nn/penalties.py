"""Weight penalties: L2 (weight decay) and L1, on weight matrices only.

A penalty adds to the cost ``J`` of a mini-batch of ``m`` examples and to the gradient of
every weight matrix ``W`` (never biases, batch-norm ``gamma``/``beta``: see
``Layer.decay_keys``). The ``1/m`` scaling follows the notes, so ``lambda`` means the same
thing whatever the batch size.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from deepfit.backend import array_module
from deepfit.errors import DeepfitError


class Penalty:
    """Base class: ``value(weights, m)`` and ``add_grad(weights, grads, m)``."""

    def __init__(self, lam: float) -> None:
        if not isinstance(lam, (int, float)) or lam < 0:
            raise DeepfitError(f"{type(self).__name__} lambda must be >= 0, got {lam!r}")
        self.lam = float(lam)

    def value(self, weights: Iterable[Any], m: int) -> float:
        raise NotImplementedError

    def add_grad(self, weights: Iterable[Any], grads: Iterable[Any], m: int) -> None:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.lam})"


class L2(Penalty):
    """``J += lambda/(2m) * sum_l ||W_l||_F^2``; ``dW_l += (lambda/m) * W_l``.

    With plain gradient descent the update is ``W := (1 - lr*lambda/m) W - lr * dW_backprop``,
    hence the name weight decay.
    """

    def value(self, weights, m):
        if not self.lam:
            return 0.0
        return self.lam / (2 * m) * sum(float((W * W).sum()) for W in weights)

    def add_grad(self, weights, grads, m):
        if not self.lam:
            return
        c = self.lam / m
        for W, dW in zip(weights, grads, strict=True):
            dW += c * W


class L1(Penalty):
    """``J += lambda/m * sum_l ||W_l||_1``; ``dW_l += (lambda/m) * sign(W_l)``.

    The subgradient at 0 is taken as 0. L1 drives many weights to exactly zero (sparse W).
    """

    def value(self, weights, m):
        if not self.lam:
            return 0.0
        return self.lam / m * sum(float(abs(W).sum()) for W in weights)

    def add_grad(self, weights, grads, m):
        if not self.lam:
            return
        c = self.lam / m
        for W, dW in zip(weights, grads, strict=True):
            dW += c * array_module(W).sign(W)

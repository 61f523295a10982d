"""Exponentially weighted averages: the one primitive behind Momentum, RMSprop, Adam,
batch-norm running statistics and smoothed loss curves."""

from __future__ import annotations

from typing import Any

import numpy as np

from deepfit.errors import DeepfitError


def ewa_update_(v, x, beta: float):
    """Update the average ``v`` in place with the new observation ``x``::

        v = beta * v + (1 - beta) * x

    ``v`` averages roughly the last ``1 / (1 - beta)`` observations. Returns ``v``.
    """
    v *= beta
    v += (1.0 - beta) * x
    return v


def bias_correction(beta: float, t: int) -> float:
    """The factor ``1 - beta^t`` that undoes the start-up bias of an average begun at 0.

    After ``t`` updates of an EWA started at ``v_0 = 0``, the weights on the observations sum
    to ``1 - beta^t``, so ``v_t / (1 - beta^t)`` is an unbiased weighted average.
    """
    return 1.0 - beta**t


class EWA:
    """A running exponentially weighted average of scalars or arrays.

    ``update(x)`` applies ``v_t = beta * v_{t-1} + (1 - beta) * x_t`` (with ``v_0 = 0``) and
    returns ``v_t / (1 - beta^t)`` when ``bias_correction`` is on (the default), else
    ``v_t``. With correction, the average of a constant series is that constant from the
    first step on.

    Examples
    --------
    >>> avg = EWA(0.9)
    >>> avg.update(10.0)
    10.0
    >>> EWA(0.9, bias_correction=False).update(10.0)
    1.0
    """

    def __init__(self, beta: float, bias_correction: bool = True) -> None:
        if not 0 <= beta < 1:
            raise DeepfitError(f"EWA beta must be in [0, 1), got {beta}")
        self.beta = float(beta)
        self.bias_correction = bool(bias_correction)
        self.t = 0
        self.raw: Any = 0.0

    def update(self, x: Any) -> Any:
        """Fold in observation ``x`` and return the (corrected) average."""
        self.t += 1
        if self.t == 1 and isinstance(x, np.ndarray):
            self.raw = np.zeros_like(x, dtype=np.result_type(x, np.float64))
        if isinstance(self.raw, np.ndarray):
            ewa_update_(self.raw, x, self.beta)
        else:
            self.raw = self.beta * self.raw + (1.0 - self.beta) * x
        return self.value

    @property
    def value(self) -> Any:
        """The current average (bias-corrected when asked for; 0 before any update)."""
        if self.t == 0 or not self.bias_correction:
            return self.raw
        return self.raw / bias_correction(self.beta, self.t)

    def state_dict(self) -> dict[str, Any]:
        return {
            "beta": self.beta,
            "bias_correction": self.bias_correction,
            "t": self.t,
            "raw": self.raw,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.beta = float(state["beta"])
        self.bias_correction = bool(state["bias_correction"])
        self.t = int(state["t"])
        raw = state["raw"]
        self.raw = np.array(raw) if np.ndim(raw) else float(raw)

    def __repr__(self) -> str:
        return f"EWA(beta={self.beta}, bias_correction={self.bias_correction}, t={self.t})"

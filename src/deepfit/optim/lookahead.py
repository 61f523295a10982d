"""Lookahead: slow weights that follow any optimizer's fast weights."""

from __future__ import annotations

from typing import Any

import numpy as np

from deepfit.backend import array_module, to_numpy
from deepfit.errors import DeepfitError
from deepfit.optim.ewa import ewa_update_
from deepfit.optim.optimizers import Optimizer

_PREFIX = "lookahead."


class Lookahead(Optimizer):
    """Wrap ``inner`` (any deepfit optimizer): it takes ``k`` fast steps, then the slow weights
    move a fraction ``alpha`` of the way to the fast ones and the fast weights restart there::

        phi_0 = theta_0
        for each step t:  theta := inner.step(theta)
        every k steps:    phi := phi + alpha (theta - phi);  theta := phi

    ``phi + alpha (theta - phi)`` is an EWA of the fast weights with ``beta = 1 - alpha``
    (:func:`deepfit.optim.ewa.ewa_update_`). ``lr`` is the inner optimizer's (schedules set it
    through the wrapper); the inner optimizer's state is not reset at synchronization, as in
    the paper's experiments. ``k = 1, alpha = 1`` is the inner optimizer itself.

    References
    ----------
    Zhang, Lucas, Hinton and Ba, "Lookahead optimizer: k steps forward, 1 step back",
    NeurIPS 2019.
    """

    def __init__(self, inner: Optimizer, k: int = 5, alpha: float = 0.5) -> None:
        if not isinstance(inner, Optimizer) or isinstance(inner, Lookahead):
            raise DeepfitError(f"Lookahead wraps a deepfit optimizer, got {inner!r}")
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise DeepfitError(f"Lookahead k must be a positive integer, got {k!r}")
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 < alpha <= 1:
            raise DeepfitError(f"Lookahead alpha must be in (0, 1], got {alpha!r}")
        self.inner, self.k, self.alpha = inner, k, float(alpha)
        self.slow: dict[str, Any] = {}
        self.t = 0

    # the learning rate, the weight decay and the transforms are the inner optimizer's
    @property
    def lr(self) -> float:
        return self.inner.lr

    @lr.setter
    def lr(self, value: float) -> None:
        self.inner.lr = value

    @property
    def weight_decay(self) -> float:  # type: ignore[override]
        return self.inner.weight_decay

    @property
    def transforms(self):  # type: ignore[override]
        return self.inner.transforms

    def step(self, params: dict[str, Any], grads: dict[str, Any]) -> None:
        """One inner step; every ``k``-th step also synchronizes slow and fast weights."""
        if self.t == 0 or self.slow.keys() != params.keys():
            self.slow = {name: p.copy() for name, p in params.items()}
        self.inner.step(params, grads)
        self.t += 1
        if self.t % self.k:
            return
        for name, p in params.items():
            phi = self.slow[name]
            if type(phi) is not type(p):  # restored from a checkpoint onto another device
                phi = array_module(p).asarray(to_numpy(phi) if array_module(p) is np else phi)
                self.slow[name] = phi
            ewa_update_(phi, p, 1.0 - self.alpha)
            p[...] = phi

    def state_dict(self) -> dict[str, Any]:
        """The inner optimizer's state, plus ``lookahead.t`` and the slow weights
        ``lookahead.slow/<name>``."""
        state = self.inner.state_dict()
        state[f"{_PREFIX}t"] = self.t
        for name, phi in self.slow.items():
            state[f"{_PREFIX}slow/{name}"] = to_numpy(phi).copy()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if f"{_PREFIX}t" not in state:
            raise DeepfitError("optimizer state has no Lookahead entries (lookahead.t)")
        inner = {k: v for k, v in state.items() if not k.startswith(_PREFIX)}
        self.inner.load_state_dict(inner)
        self.t = int(state[f"{_PREFIX}t"])
        self.slow = {
            k[len(f"{_PREFIX}slow/") :]: np.array(v)
            for k, v in state.items()
            if k.startswith(f"{_PREFIX}slow/")
        }

    def __repr__(self) -> str:
        return f"Lookahead({self.inner!r}, k={self.k}, alpha={self.alpha})"

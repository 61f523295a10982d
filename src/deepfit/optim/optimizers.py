"""Optimizers: SGD, Momentum, RMSprop, Adam (and AdamW through ``weight_decay``).

Each is a short chain of :mod:`deepfit.optim.transforms` followed by the step
``theta := theta - lr * (u + weight_decay * theta)``. ``step(params, grads)`` updates the
arrays of ``params`` in place; state is keyed by the parameters' qualified names, so two
layers' ``W`` never share a moment. ``lr`` may be changed between steps (schedules do).

When the parameters tile one contiguous buffer and the gradients another, in the same order
(:meth:`deepfit.nn.Sequential.flatten_parameters`; :mod:`deepfit.flat`), a step is one pass
over the buffers: one fused kernel call for Adam with the JIT, else each NumPy operation
once over every parameter, as PyTorch's fused and ``foreach`` optimizers. Every operation is
element-wise, so this gives the numbers of the per-parameter loop, bit for bit.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from operator import is_
from typing import Any

import numpy as np

from deepfit.backend import array_module, to_numpy
from deepfit.errors import DeepfitError
from deepfit.flat import flat_base
from deepfit.optim.transforms import FLAT, ScaleByAdam, ScaleByMomentum, ScaleByRMS, Transform


def decays_weight_matrices(name: str) -> bool:
    """Default decoupled-weight-decay filter: weight matrices (``"<i>.W"``) only."""
    return name.rsplit(".", 1)[-1] == "W"


def restore_transform_states(optimizer: Any, state: dict[str, Any], skip: tuple[str, ...]) -> None:
    """Put the ``"<transform index>.<slot>/<parameter name>"`` entries of ``state`` back into
    ``optimizer.transforms`` (keys in ``skip`` are the optimizer's own scalars), refusing an
    entry that fits no transform's slot, naming it."""
    restored: list[dict[str, dict[str, Any]]] = [
        {slot: {} for slot in tr.slots} for tr in optimizer.transforms
    ]
    for key, value in state.items():
        if key in skip:
            continue
        head, _, name = key.partition("/")
        index, _, slot = head.partition(".")
        if (
            not index.isdigit()
            or int(index) >= len(optimizer.transforms)
            or slot not in restored[int(index)]
        ):
            raise DeepfitError(f"optimizer state entry {key!r} does not fit {optimizer!r}")
        restored[int(index)][slot][name] = np.array(value)
    for transform, slots in zip(optimizer.transforms, restored, strict=True):
        transform.state = slots


class Optimizer:
    """Chain of transforms, then a step of size ``lr``.

    Parameters
    ----------
    lr : float
        Learning rate (> 0). Assign ``opt.lr`` to change it between steps.
    transforms : sequence of Transform
        Applied in order to a copy of each gradient.
    weight_decay : float
        Decoupled weight decay (Loshchilov and Hutter's AdamW): ``theta -= lr * wd * theta``
        on the parameters selected by ``decay_filter`` (weight matrices by default), added
        after the transforms so it is not rescaled by the adaptive denominators. This is not
        the L2 penalty, which enters the gradient (see :mod:`deepfit.nn.penalties`).
    """

    def __init__(
        self,
        lr: float,
        transforms: Sequence[Transform] = (),
        *,
        weight_decay: float = 0.0,
        decay_filter: Callable[[str], bool] = decays_weight_matrices,
    ) -> None:
        self.lr = lr
        if not isinstance(weight_decay, (int, float)) or weight_decay < 0:
            raise DeepfitError(f"weight_decay must be >= 0, got {weight_decay!r}")
        self.weight_decay = float(weight_decay)
        self.decay_filter = decay_filter
        self.transforms = list(transforms)
        self.t = 0
        self._scratch: dict[str, Any] = {}
        self._layout: _FlatLayout | None = None

    @property
    def lr(self) -> float:
        return self._lr

    @lr.setter
    def lr(self, value: float) -> None:
        # 0 is allowed, as in PyTorch: a cosine schedule ends there, and the step is a no-op
        if not isinstance(value, (int, float, np.floating)) or not (
            value >= 0 and math.isfinite(value)
        ):
            raise DeepfitError(f"learning rate must be a finite number >= 0, got {value!r}")
        self._lr = float(value)

    def step(self, params: dict[str, Any], grads: dict[str, Any]) -> None:
        """One update of every array in ``params`` from the matching ``grads`` entry."""
        if params.keys() != grads.keys():
            raise DeepfitError(
                f"params and grads have different keys: {sorted(set(params) ^ set(grads))}"
            )
        self.t += 1
        layout = self._flat_layout(params, grads)
        if layout is not None:
            self._flat_step(layout)
            return
        fused = self.transforms[0] if len(self.transforms) == 1 else None
        for name, p in params.items():
            g = grads[name]
            if fused is not None:
                wd = self.weight_decay if self.weight_decay and self.decay_filter(name) else 0.0
                if fused.fused_step_(name, p, g, self.t, self.lr, wd):
                    continue
            u = self._scratch.get(name)
            if u is None or u.shape != g.shape or u.dtype != p.dtype or type(u) is not type(p):
                u = array_module(p).empty_like(p)
                self._scratch[name] = u
            u[...] = g
            for transform in self.transforms:
                transform.update_(name, u, self.t)
            if self.weight_decay and self.decay_filter(name):
                u += self.weight_decay * p
            u *= self.lr
            p -= u

    def _flat_layout(self, params: dict[str, Any], grads: dict[str, Any]) -> _FlatLayout | None:
        """The buffers that ``params`` and ``grads`` tile, in the same order, or ``None``
        (then the step goes parameter by parameter)."""
        layout = self.__dict__.get("_layout")
        if layout is not None and layout.matches(params, grads):
            return layout
        if not all(type(tr).flat_ok for tr in self.transforms):
            return None
        names = list(params)
        p_views = [params[n] for n in names]
        g_views = [grads[n] for n in names]
        p_flat, g_flat = flat_base(p_views), flat_base(g_views)
        if (
            p_flat is None
            or g_flat is None
            or p_flat is g_flat
            or type(g_flat) is not type(p_flat)
            or g_flat.dtype != p_flat.dtype
            or any(p.shape != g.shape for p, g in zip(p_views, g_views, strict=True))
        ):
            return None
        layout = _FlatLayout(names, p_views, g_views, p_flat, g_flat)
        self._layout = layout
        return layout

    def _flat_step(self, layout: _FlatLayout) -> None:
        """:meth:`step` as one pass over the flat buffers (same numbers as the loop)."""
        p, g = layout.p_flat, layout.g_flat
        runs = layout.decay_runs(self.weight_decay, self.decay_filter)
        for transform in self.transforms:
            transform.prepare_flat_(layout.names, layout.params, p)
        if len(self.transforms) == 1 and self.transforms[0].fused_flat_step_(
            p, g, runs, self.t, self.lr
        ):
            return
        u = self._scratch.get(FLAT)
        if u is None or u.shape != p.shape or u.dtype != p.dtype or type(u) is not type(p):
            u = array_module(p).empty_like(p)
            self._scratch[FLAT] = u
        u[...] = g
        for transform in self.transforms:
            transform.update_(FLAT, u, self.t)
        for start, stop, wd in runs:
            if wd:
                u[start:stop] += wd * p[start:stop]
        u *= self.lr
        p -= u

    def state_dict(self) -> dict[str, Any]:
        """Flat dict of NumPy arrays and numbers: ``t``, ``lr`` and
        ``"<transform index>.<slot>/<parameter name>"`` for every state array."""
        state: dict[str, Any] = {"t": self.t, "lr": self.lr}
        for i, transform in enumerate(self.transforms):
            for slot, arrays in transform.state.items():
                for name, arr in arrays.items():
                    state[f"{i}.{slot}/{name}"] = to_numpy(arr).copy()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned (arrays become NumPy arrays; they move to
        the parameters' device at the next step)."""
        if "t" not in state or "lr" not in state:
            raise DeepfitError("optimizer state dict lacks 't' or 'lr'")
        restore_transform_states(self, state, skip=("t", "lr"))
        self.t = int(state["t"])
        self.lr = float(state["lr"])

    def __repr__(self) -> str:
        return f"{type(self).__name__}(lr={self.lr})"


class _FlatLayout:
    """Parameters and gradients tiling two 1-D buffers: the names in order, the per-name
    views, the buffers, and the weight-decay runs (cached per decay and filter)."""

    def __init__(self, names, params, grads, p_flat, g_flat) -> None:
        self.names: list[str] = names
        self.params: list[Any] = params
        self.grads: list[Any] = grads
        self.p_flat, self.g_flat = p_flat, g_flat
        self._runs_key: tuple = ()
        self._runs: list[tuple[int, int, float]] = []

    def matches(self, params: dict[str, Any], grads: dict[str, Any]) -> bool:
        """Whether ``params`` and ``grads`` (same keys) are still exactly these views, in
        this order."""
        return (
            len(params) == len(self.names)
            and all(map(is_, params.values(), self.params))
            and list(params) == self.names
            and all(map(is_, map(grads.__getitem__, self.names), self.grads))
        )

    def decay_runs(
        self, weight_decay: float, decay_filter: Callable[[str], bool]
    ) -> list[tuple[int, int, float]]:
        """``(start, stop, wd)`` segments covering the buffer in order, adjacent parameters
        of equal decay merged: one segment when ``weight_decay`` is 0."""
        key = (weight_decay, decay_filter)
        if key != self._runs_key:
            runs: list[tuple[int, int, float]] = []
            start = 0
            for name, p in zip(self.names, self.params, strict=True):
                wd = weight_decay if weight_decay and decay_filter(name) else 0.0
                stop = start + p.size
                if runs and runs[-1][2] == wd:
                    runs[-1] = (runs[-1][0], stop, wd)
                else:
                    runs.append((start, stop, wd))
                start = stop
            self._runs, self._runs_key = runs, key
        return self._runs


class SGD(Optimizer):
    """Plain (mini-batch) gradient descent: ``theta := theta - lr * g``."""

    def __init__(self, lr: float = 0.01, *, weight_decay: float = 0.0, **kw: Any) -> None:
        super().__init__(lr, (), weight_decay=weight_decay, **kw)


class Momentum(Optimizer):
    """Gradient descent with momentum, the notes' EWA form::

    v = beta v + (1 - beta) g        theta := theta - lr * v
    """

    def __init__(self, lr: float = 0.01, beta: float = 0.9, **kw: Any) -> None:
        super().__init__(lr, (ScaleByMomentum(beta),), **kw)
        self.beta = beta

    def __repr__(self) -> str:
        return f"Momentum(lr={self.lr}, beta={self.beta})"


class RMSprop(Optimizer):
    """RMSprop::

        s = beta s + (1 - beta) g^2        theta := theta - lr * g / (sqrt(s) + eps)

    ``bias_correction=True`` divides ``s`` by ``1 - beta^t`` (then it equals Adam with
    ``beta1 = 0``). PyTorch's ``alpha`` is our ``beta``.

    References
    ----------
    Tieleman and Hinton, Lecture 6.5 of "Neural networks for machine learning", 2012.
    """

    def __init__(
        self,
        lr: float = 0.001,
        beta: float = 0.9,
        eps: float = 1e-8,
        *,
        bias_correction: bool = False,
        **kw: Any,
    ) -> None:
        super().__init__(lr, (ScaleByRMS(beta, eps, bias_correction),), **kw)
        self.beta, self.eps = beta, eps

    def __repr__(self) -> str:
        return f"RMSprop(lr={self.lr}, beta={self.beta}, eps={self.eps})"


class Adam(Optimizer):
    """Adam: Momentum and RMSprop combined, both moments bias-corrected::

        theta := theta - lr * v_hat / (sqrt(s_hat) + eps)

    With ``weight_decay > 0`` this is AdamW (decoupled weight decay).

    References
    ----------
    Kingma and Ba, ICLR 2015; Loshchilov and Hutter, "Decoupled weight decay
    regularization", ICLR 2019.
    """

    def __init__(
        self,
        lr: float = 0.001,
        beta1: float = 0.9,
        beta2: float = 0.999,
        eps: float = 1e-8,
        **kw: Any,
    ) -> None:
        super().__init__(lr, (ScaleByAdam(beta1, beta2, eps),), **kw)
        self.beta1, self.beta2, self.eps = beta1, beta2, eps

    def __repr__(self) -> str:
        wd = f", weight_decay={self.weight_decay}" if self.weight_decay else ""
        return f"Adam(lr={self.lr}, beta1={self.beta1}, beta2={self.beta2}, eps={self.eps}{wd})"


OPTIMIZERS: dict[str, type[Optimizer]] = {
    "sgd": SGD,
    "momentum": Momentum,
    "rmsprop": RMSprop,
    "adam": Adam,
}

"""Gradient transformations: the pieces optimizers are chained from.

Inspired by optax: an optimizer is a chain of small transformations of the update direction,
followed by a step of size ``lr``. Every transformation here is stateful per parameter tensor
and works in place on the update ``u`` (initially a copy of the gradient ``g``), so a step
allocates nothing after the first one. All moving averages are the notes' exponentially
weighted averages (:func:`deepfit.optim.ewa.ewa_update_`), bias-corrected with
:func:`deepfit.optim.ewa.bias_correction` where asked.
"""

from __future__ import annotations

from collections.abc import Sequence
from operator import is_
from typing import Any, ClassVar

import numpy as np

from deepfit import kernels
from deepfit.backend import array_module, to_numpy
from deepfit.errors import DeepfitError
from deepfit.optim.ewa import bias_correction, ewa_update_


def _check_beta(name: str, beta: float) -> float:
    if not isinstance(beta, (int, float)) or not 0 <= beta < 1:
        raise DeepfitError(f"{name} must be in [0, 1), got {beta!r}")
    return float(beta)


def _check_eps(eps: float) -> float:
    if not isinstance(eps, (int, float)) or not eps > 0:
        raise DeepfitError(f"eps must be > 0, got {eps!r}")
    return float(eps)


#: The name under which an optimizer passes the flat buffer of every parameter's update (see
#: :meth:`Transform.prepare_flat_`); no parameter is called that.
FLAT = "<all parameters>"


class Transform:
    """A stateful, in-place transformation of one tensor's update direction.

    ``slots`` names the per-tensor state arrays; ``update_(name, u, t)`` rewrites ``u`` for
    step ``t`` (1-based).

    Transforms whose ``update_`` is element-wise and keeps its state through :meth:`_slot`
    set ``flat_ok``: an optimizer whose parameters tile one buffer (:mod:`deepfit.flat`) then
    calls :meth:`prepare_flat_` and ``update_(FLAT, u, t)`` once on the whole buffer instead
    of once per parameter. The state stays keyed by parameter name (each entry a view of a
    buffer per slot), so ``state_dict`` and loading work as before.
    """

    slots: tuple[str, ...] = ()
    flat_ok: ClassVar[bool] = False

    def __init__(self) -> None:
        self.state: dict[str, dict[str, Any]] = {slot: {} for slot in self.slots}
        # slot -> (parameter buffer, moment buffer, per-parameter views, their ids)
        self._flat: dict[str, tuple[Any, Any, list[Any], list[int]]] = {}

    def prepare_flat_(self, names: Sequence[str], params: Sequence[Any], flat: Any) -> None:
        """Keep every slot's state for ``params`` (tiling the 1-D buffer ``flat``, in order)
        as views of one buffer per slot, shaped like ``flat``.

        An entry that is not yet such a view (a new transform, or state loaded from a dict)
        is copied into its segment (a missing one starts at 0, shape and dtype checked as
        :meth:`_slot` checks them) and replaced by the view. Cheap when nothing changed: one
        identity test per entry.
        """
        cache = self.__dict__.setdefault("_flat", {})
        for slot in self.slots:
            entry = cache.get(slot)
            store = self.state[slot]
            if entry is None or entry[0] is not flat:
                buffer = array_module(flat).zeros_like(flat)
                views, start = [], 0
                for p in params:
                    views.append(buffer[start : start + p.size].reshape(p.shape))
                    start += p.size
                entry = (flat, buffer, views, [id(v) for v in views])
                cache[slot] = entry
            elif all(map(is_, map(store.get, names), entry[2])):
                continue  # every entry is its view already
            for name, p, view in zip(names, params, entry[2], strict=True):
                current = store.get(name)
                if current is view:
                    continue
                if current is None:
                    view[...] = 0
                else:
                    view[...] = self._slot(slot, name, p)
                store[name] = view

    def _slot(self, slot: str, name: str, like: Any) -> Any:
        if name == FLAT:
            return self._flat[slot][1]
        store = self.state[slot]
        arr = store.get(name)
        if arr is not None and type(arr) is not type(like):
            # the state follows its parameter's device (NumPy <-> CuPy, e.g. after loading
            # a checkpoint or moving the model)
            xp = array_module(like)
            arr = xp.asarray(to_numpy(arr) if xp is np else arr)
            store[name] = arr
        if arr is None or arr.shape != like.shape or arr.dtype != like.dtype:
            if arr is not None:
                raise DeepfitError(
                    f"optimizer state {slot!r} for parameter {name!r} has shape {arr.shape} "
                    f"{arr.dtype}, the parameter is {like.shape} {like.dtype}; build a new "
                    f"optimizer after changing the model"
                )
            arr = array_module(like).zeros_like(like)
            store[name] = arr
        return arr

    def update_(self, name: str, u: Any, t: int) -> None:
        raise NotImplementedError

    def fused_step_(self, name: str, p: Any, g: Any, t: int, lr: float, wd: float) -> bool:
        """Apply this transform and the step ``p -= lr * (u + wd * p)`` in one fused kernel.

        Returns False (and does nothing) when there is no kernel for this transform or these
        arrays; the optimizer then takes the NumPy path, which gives the same numbers.
        """
        return False

    def fused_flat_step_(
        self, p: Any, g: Any, runs: Sequence[tuple[int, int, float]], t: int, lr: float
    ) -> bool:
        """:meth:`fused_step_` on the flat buffers of every parameter (after
        :meth:`prepare_flat_`): segment ``p[start:stop]`` takes weight decay ``wd`` for each
        ``(start, stop, wd)`` of ``runs``, which cover the buffer in order. Returns False when
        there is no kernel."""
        return False


class ScaleByMomentum(Transform):
    """``v = beta v + (1 - beta) u``; ``u := v`` (optionally ``v / (1 - beta^t)``).

    The notes' form of Momentum: ``v`` is an EWA of the gradients. PyTorch's SGD momentum
    keeps ``v = beta v + g`` instead, which equals ours times ``1/(1 - beta)`` in the steady
    state (so its learning rate is ``(1 - beta)`` times ours).
    """

    slots = ("v",)
    flat_ok = True

    def __init__(self, beta: float = 0.9, bias_correction: bool = False) -> None:
        super().__init__()
        self.beta = _check_beta("momentum beta", beta)
        self.bias_correction = bias_correction

    def update_(self, name, u, t):
        v = ewa_update_(self._slot("v", name, u), u, self.beta)
        u[...] = v
        if self.bias_correction:
            u /= bias_correction(self.beta, t)


class ScaleByRMS(Transform):
    """``s = beta s + (1 - beta) u^2``; ``u := u / (sqrt(s_hat) + eps)``.

    ``s_hat = s / (1 - beta^t)`` with bias correction, else ``s`` (RMSprop as in the notes
    and PyTorch, whose ``alpha`` is our ``beta``).
    """

    slots = ("s",)
    flat_ok = True

    def __init__(self, beta: float = 0.9, eps: float = 1e-8, bias_correction: bool = False):
        super().__init__()
        self.beta = _check_beta("RMSprop beta", beta)
        self.eps = _check_eps(eps)
        self.bias_correction = bias_correction

    def update_(self, name, u, t):
        xp = array_module(u)
        s = ewa_update_(self._slot("s", name, u), u * u, self.beta)
        c = bias_correction(self.beta, t) if self.bias_correction else 1.0
        denom = xp.sqrt(s / c)
        denom += self.eps
        u /= denom


class ScaleByAdam(Transform):
    """Adam's direction: Momentum's EWA of ``g`` over RMSprop's EWA of ``g^2``, both
    bias-corrected::

        v = beta1 v + (1 - beta1) g            s = beta2 s + (1 - beta2) g^2
        v_hat = v / (1 - beta1^t)              s_hat = s / (1 - beta2^t)
        u := v_hat / (sqrt(s_hat) + eps)

    (The notes print ``s_hat`` with ``v``; the correction of ``s`` uses ``beta2``.)

    References
    ----------
    Kingma and Ba, "Adam: a method for stochastic optimization", ICLR 2015.
    """

    slots = ("v", "s")
    flat_ok = True

    def __init__(self, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8) -> None:
        super().__init__()
        self.beta1 = _check_beta("Adam beta1", beta1)
        self.beta2 = _check_beta("Adam beta2", beta2)
        self.eps = _check_eps(eps)
        self._plans: dict[str, tuple] = {}
        self._scalars_key: tuple | None = None
        self._scalars: Any = None
        self._flat_plan: tuple = ()

    def _step_scalars(self, t: int, lr: float, wd: float, dtype: Any) -> np.ndarray:
        """The kernel's scalars for step ``t`` as one array of the arrays' dtype, each rounded
        as NumPy's ufuncs round a Python float: ``beta1, 1 - beta1, beta2, 1 - beta2,
        1 - beta1^t, 1 - beta2^t, eps, wd, lr``."""
        key = (t, lr, wd, dtype)
        last = self._scalars_key
        if key != last:
            b1, b2 = self.beta1, self.beta2
            scalars = self._scalars
            if last is not None and last[1:] == key[1:]:  # a new step: only t moved on
                scalars[4] = bias_correction(b1, t)  # each float rounded once, as below
                scalars[5] = bias_correction(b2, t)
            else:
                values = (b1, 1.0 - b1, b2, 1.0 - b2, bias_correction(b1, t))
                values += (bias_correction(b2, t), self.eps, wd, lr)
                self._scalars = np.array(values, dtype=dtype)  # each float rounded once
            self._scalars_key = key
        return self._scalars

    def fused_flat_step_(self, p, g, runs, t, lr):
        v, s = self._flat["v"][1], self._flat["s"][1]
        plan = self._flat_plan
        if not plan or plan[0] is not p or plan[1] is not g or plan[2] is not v or plan[3] is not s:
            if not kernels.usable(p, g, v, s):
                return False
            plan = (p, g, v, s, kernels.adam_step)
            self._flat_plan = plan
        kernel = plan[4]
        if len(runs) == 1:
            kernel(p, g, v, s, self._step_scalars(t, lr, runs[0][2], p.dtype))
            return True
        for start, stop, wd in runs:
            scalars = self._step_scalars(t, lr, wd, p.dtype)
            kernel(p[start:stop], g[start:stop], v[start:stop], s[start:stop], scalars)
        return True

    def fused_step_(self, name, p, g, t, lr, wd):
        plan = self._plans.get(name)
        state_v, state_s = self.state["v"], self.state["s"]
        if (
            plan is None
            or plan[0] is not p
            or plan[1] is not g
            or state_v.get(name) is not plan[2]
            or state_s.get(name) is not plan[3]
        ):
            if not kernels.usable(p, g):
                return False
            v, s = self._slot("v", name, p), self._slot("s", name, p)
            if not kernels.usable(p, v, s):
                return False
            kernel = kernels.adam_step
            flat = (p.reshape(-1), g.reshape(-1), v.reshape(-1), s.reshape(-1))
            plan = (p, g, v, s, kernel, flat)
            self._plans[name] = plan
        plan[4](*plan[5], self._step_scalars(t, lr, wd, p.dtype))
        return True

    def update_(self, name, u, t):
        xp = array_module(u)
        v = ewa_update_(self._slot("v", name, u), u, self.beta1)
        s = ewa_update_(self._slot("s", name, u), u * u, self.beta2)
        denom = xp.sqrt(s / bias_correction(self.beta2, t))
        denom += self.eps
        xp.divide(v, denom, out=u)
        u /= bias_correction(self.beta1, t)

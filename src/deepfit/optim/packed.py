"""Optimizers for packed networks: the same chains of transforms, with per-member scalars.

A packed parameter carries the member axis first (``W`` of shape ``(K, n_in, n_out)``; see
:mod:`deepfit.nn.packed`). Every scalar of the single-network optimizer (the learning rate,
decoupled weight decay, the betas of Momentum, RMSprop and Adam, eps) becomes an array of
length ``K``, broadcast over that axis as ``(K, 1, ..., 1)`` in the parameter's dtype. Member
``k`` then follows exactly the update of :mod:`deepfit.optim.optimizers` with its own
scalars; the arithmetic is the same, operation for operation, so a float64 member equals its
own run bit for bit (the NumPy path; the fused JIT kernel of the single Adam agrees with it to
rounding).

A parameter the members share (BatchEnsemble's ``W``) has no member axis and takes one value
of each scalar: the members' values must then be equal.

Members can be frozen (``active[k] = False``): their parameters stop moving (their update is
set to 0), which is how a packed trainer stops a member early or after it diverged. A trainer
that wants stopped members to cost nothing trains a compact copy of the running members
(:meth:`PackedOptimizer.take`) and writes it back (:meth:`PackedOptimizer.put`).

Adam on NumPy arrays runs as one fused kernel per parameter when the JIT is on
(:func:`deepfit.kernels._packed.packed_adam_step`), with the same numbers as the NumPy path.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any, ClassVar

import numpy as np

from deepfit import kernels
from deepfit.backend import array_module, to_numpy
from deepfit.errors import DeepfitError
from deepfit.optim.ewa import bias_correction
from deepfit.optim.optimizers import decays_weight_matrices, restore_transform_states
from deepfit.optim.transforms import Transform


def member_values(
    name: str,
    value: Any,
    k: int,
    *,
    low: float,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> np.ndarray:
    """``value`` as a float64 array of length ``k``: a scalar is repeated, a sequence must
    have ``k`` finite entries within the bounds; anything else is refused naming ``name``."""
    arr = np.asarray(value, dtype=np.float64) if not isinstance(value, bool) else None
    if arr is None or arr.ndim > 1:
        raise DeepfitError(f"{name} must be a number or {k} numbers, got {value!r}")
    arr = np.full(k, float(arr)) if arr.ndim == 0 else arr.copy()
    if arr.shape != (k,):
        raise DeepfitError(f"{name} has {arr.shape[0]} values for {k} members")
    bad = ~np.isfinite(arr) | ((arr <= low) if low_open else (arr < low))
    if high is not None:
        bad |= (arr >= high) if high_open else (arr > high)
    if bad.any():
        i = int(np.argmax(bad))
        lo, hi = "(" if low_open else "[", ")" if high_open else "]"
        span = f"{lo}{low}, {high if high is not None else 'inf'}{hi}"
        raise DeepfitError(f"{name} of member {i} must be in {span}, got {arr[i]!r}")
    return arr


def member_view(values: np.ndarray, like: Any) -> Any:
    """Per-member ``values`` (length ``K``) shaped ``(K, 1, ..., 1)`` to broadcast over an array
    ``like`` whose first axis is the member axis, in ``like``'s dtype and array module."""
    xp = array_module(like)
    shape = (values.shape[0],) + (1,) * (like.ndim - 1)
    return xp.asarray(values.astype(like.dtype).reshape(shape))


def _scalar(values: np.ndarray, like: Any, shared: bool, what: str) -> Any:
    """Per-member ``values`` broadcast over ``like`` (member axis first), or the one value of a
    shared parameter (the members' values must agree)."""
    if shared:
        if not np.all(values == values[0]):
            raise DeepfitError(
                f"{what} differs between members but the parameter is shared; give one value"
            )
        return float(values[0])
    return member_view(values, like)


def bias_corrections(beta: np.ndarray, t: int) -> np.ndarray:
    """``1 - beta_k^t`` for every member (:func:`~deepfit.optim.ewa.bias_correction` member by
    member, in Python floats, as the single optimizer computes it: NumPy's vectorized power
    may differ from C's ``pow`` in the last bit)."""
    return np.array([bias_correction(float(b), t) for b in beta])


def ewa_members_(v: Any, x: Any, beta: np.ndarray, shared: bool = False) -> Any:
    """The EWA with one ``beta`` per member, in place::

        v_k = beta_k * v_k + (1 - beta_k) * x_k

    ``beta_k`` and ``1 - beta_k`` are formed in float64 and rounded to ``v``'s dtype, as the
    single-network :func:`~deepfit.optim.ewa.ewa_update_` rounds its Python float. Returns ``v``.
    """
    b = _scalar(beta, v, shared, "beta")
    c = _scalar(1.0 - beta, v, shared, "beta")
    v *= b
    v += c * x
    return v


class PackedTransform(Transform):
    """A transform whose scalars are per-member arrays; ``update_(name, u, t, shared)``.

    ``member_attrs`` names the per-member arrays (length ``K``)."""

    member_attrs: ClassVar[tuple[str, ...]] = ()

    def __init__(self, members: int) -> None:
        super().__init__()
        self.members = members
        self._views: dict[tuple, Any] = {}
        self._step_views: dict[tuple, Any] = {}
        self._step = 0

    def _betas(self, name: str, value: Any) -> np.ndarray:
        return member_values(name, value, self.members, low=0.0, high=1.0, high_open=True)

    def _view(self, form: str, attr: str, u: Any, shared: bool, t: int = 0) -> Any:
        """``form`` (``"value"``, ``"one_minus"``: ``1 - x``, ``"correction"``: ``1 - x^t``)
        of the per-member attribute ``attr``, shaped for ``u`` (see :func:`_scalar`), cached:
        a step reuses the views of the previous parameters of the same shape."""
        values = getattr(self, attr)
        key = (form, attr, id(values), u.ndim, u.dtype, shared, type(u))
        if form == "correction":
            if t != self._step:
                self._step, self._step_views = t, {}
            store = self._step_views
        else:
            store = self._views
        hit = store.get(key)
        if hit is None:
            if form == "value":
                raw = values
            elif form == "one_minus":
                raw = 1.0 - values
            else:
                raw = bias_corrections(values, t)
            # the entry holds ``values`` too, so its id is not reused while cached
            hit = store[key] = (values, _scalar(raw, u, shared, attr))
        return hit[1]

    def _ewa(self, v: Any, x: Any, attr: str, shared: bool) -> Any:
        """:func:`ewa_members_` with the cached views of ``beta = self.<attr>``."""
        v *= self._view("value", attr, v, shared)
        v += self._view("one_minus", attr, v, shared) * x
        return v

    def update_(self, name: str, u: Any, t: int, shared: bool = False) -> None:
        raise NotImplementedError

    def fused_step_(
        self, name: str, p: Any, g: Any, t: int, opt: PackedOptimizer, decay: bool
    ) -> bool:
        """This transform and the step ``p_k -= lr_k (u_k + wd_k p_k)`` in one fused kernel,
        for a parameter with a member axis; False (nothing done) when there is no kernel for
        this transform or these arrays, and the optimizer takes the NumPy path."""
        return False

    def take(self, members: np.ndarray) -> PackedTransform:
        """A copy for the ``members`` listed: their scalars and state rows (copies)."""
        part = copy.copy(self)
        part.members = len(members)
        for attr in self.member_attrs:
            setattr(part, attr, getattr(self, attr)[members])
        part.state = {
            slot: {name: arr[members] for name, arr in arrays.items()}
            for slot, arrays in self.state.items()
        }
        part._flat, part._views, part._step_views, part._step = {}, {}, {}, 0
        for cache in ("_tables", "_plans"):
            if cache in vars(self):
                setattr(part, cache, {})
        return part

    def put(self, members: np.ndarray, part: PackedTransform) -> None:
        """Write the state rows of ``part`` (from :meth:`take` of ``members``) back."""
        for slot, arrays in part.state.items():
            store = self.state[slot]
            for name, arr in arrays.items():
                full = store.get(name)
                if full is None:
                    xp = array_module(arr)
                    full = store[name] = xp.zeros((self.members, *arr.shape[1:]), arr.dtype)
                full[members] = arr


class PackedScaleByMomentum(PackedTransform):
    """``v_k = beta_k v_k + (1 - beta_k) u_k``; ``u := v`` (the notes' Momentum, per member)."""

    slots = ("v",)
    member_attrs = ("beta",)

    def __init__(self, members: int, beta: Any = 0.9) -> None:
        super().__init__(members)
        self.beta = self._betas("momentum beta", beta)

    def update_(self, name, u, t, shared=False):
        v = self._ewa(self._slot("v", name, u), u, "beta", shared)
        u[...] = v


class PackedScaleByRMS(PackedTransform):
    """``s_k = beta_k s_k + (1 - beta_k) u_k^2``; ``u := u / (sqrt(s_hat) + eps_k)`` with
    ``s_hat = s / (1 - beta_k^t)`` under bias correction, else ``s``."""

    slots = ("s",)
    member_attrs = ("beta", "eps")

    def __init__(
        self, members: int, beta: Any = 0.9, eps: Any = 1e-8, bias_correction: bool = False
    ) -> None:
        super().__init__(members)
        self.beta = self._betas("RMSprop beta", beta)
        self.eps = member_values("eps", eps, members, low=0.0, low_open=True)
        self.bias_correction = bias_correction

    def update_(self, name, u, t, shared=False):
        xp = array_module(u)
        s = self._ewa(self._slot("s", name, u), u * u, "beta", shared)
        if self.bias_correction:
            denom = xp.sqrt(s / self._view("correction", "beta", u, shared, t))
        else:
            denom = xp.sqrt(s / 1.0)
        denom += self._view("value", "eps", u, shared)
        u /= denom


class PackedScaleByAdam(PackedTransform):
    """Adam's direction per member::

    v_k = beta1_k v_k + (1 - beta1_k) g_k      s_k = beta2_k s_k + (1 - beta2_k) g_k^2
    u_k := (v_k / (1 - beta1_k^t)) / (sqrt(s_k / (1 - beta2_k^t)) + eps_k)
    """

    slots = ("v", "s")
    member_attrs = ("beta1", "beta2", "eps")

    def __init__(self, members: int, beta1: Any = 0.9, beta2: Any = 0.999, eps: Any = 1e-8):
        super().__init__(members)
        self.beta1 = self._betas("Adam beta1", beta1)
        self.beta2 = self._betas("Adam beta2", beta2)
        self.eps = member_values("eps", eps, members, low=0.0, low_open=True)
        self._tables: dict[Any, tuple] = {}  # dtype -> (key, t, table)
        self._plans: dict[str, tuple] = {}

    def _step_table(self, t: int, opt: PackedOptimizer, dtype: Any) -> np.ndarray:
        """The kernel's scalars for step ``t``, one row per member, each value formed in
        float64 (the corrections as :func:`bias_corrections` forms them) and rounded once to
        ``dtype``, as the NumPy path's views round them:
        ``beta1, 1 - beta1, beta2, 1 - beta2, 1 - beta1^t, 1 - beta2^t, eps, wd, lr``.
        Only the corrections change from step to step."""
        arrays = (self.beta1, self.beta2, self.eps, opt.lr, opt.weight_decay)
        hit = self._tables.get(dtype)
        if hit is None or any(a is not b for a, b in zip(hit[0], arrays, strict=True)):
            b1, b2 = self.beta1, self.beta2
            zero = np.zeros_like(b1)
            columns = (b1, 1.0 - b1, b2, 1.0 - b2, zero, zero, self.eps, opt.weight_decay, opt.lr)
            # the key holds the arrays: their ids are not reused while cached
            hit = [arrays, 0, np.stack(columns, axis=1).astype(dtype)]
            self._tables[dtype] = hit
        if hit[1] != t:
            table = hit[2]
            table[:, 4] = bias_corrections(self.beta1, t)  # each rounded once to dtype
            table[:, 5] = bias_corrections(self.beta2, t)
            hit[1] = t
        return hit[2]

    def fused_step_(self, name, p, g, t, opt, decay):
        plan = self._plans.get(name)
        if (
            plan is None
            or plan[0] is not p
            or plan[1] is not g
            or self.state["v"].get(name) is not plan[2]
            or self.state["s"].get(name) is not plan[3]
        ):
            if type(p) is not np.ndarray or p.ndim < 2 or not kernels.usable(p, g):
                return False
            v, s = self._slot("v", name, p), self._slot("s", name, p)
            if not kernels.usable(p, g, v, s):
                return False
            k = p.shape[0]
            flat = tuple(a.reshape(k, -1) for a in (p, g, v, s))
            plan = self._plans[name] = (p, g, v, s, flat)
        from deepfit.kernels._packed import packed_adam_step

        packed_adam_step(*plan[4], self._step_table(t, opt, p.dtype), opt.active, decay)
        return True

    def update_(self, name, u, t, shared=False):
        xp = array_module(u)
        v = self._ewa(self._slot("v", name, u), u, "beta1", shared)
        s = self._ewa(self._slot("s", name, u), u * u, "beta2", shared)
        denom = xp.sqrt(s / self._view("correction", "beta2", u, shared, t))
        denom += self._view("value", "eps", u, shared)
        xp.divide(v, denom, out=u)
        u /= self._view("correction", "beta1", u, shared, t)


class PackedOptimizer:
    """A chain of packed transforms, then ``theta_k := theta_k - lr_k (u_k + wd_k theta_k)``.

    Parameters
    ----------
    members : int
        ``K``.
    lr : float or sequence of K floats
        Learning rates (>= 0). Assign ``opt.lr`` (one value or ``K``) between steps.
    transforms : sequence of PackedTransform
    weight_decay : float or sequence of K floats
        Decoupled weight decay on the parameters ``decay_filter`` selects (weight matrices).
    shared : iterable of str
        Names of the parameters without a member axis.
    """

    def __init__(
        self,
        members: int,
        lr: Any,
        transforms: Sequence[PackedTransform] = (),
        *,
        weight_decay: Any = 0.0,
        decay_filter: Callable[[str], bool] = decays_weight_matrices,
        shared: Iterable[str] = (),
    ) -> None:
        if isinstance(members, bool) or not isinstance(members, int) or members < 1:
            raise DeepfitError(
                f"PackedOptimizer members must be a positive integer, got {members!r}"
            )
        self.members = members
        self.lr = lr
        self.weight_decay = member_values("weight_decay", weight_decay, members, low=0.0)
        self.decay_filter = decay_filter
        self.transforms = list(transforms)
        for tr in self.transforms:
            if not isinstance(tr, PackedTransform) or tr.members != members:
                raise DeepfitError(f"{tr!r} is not a packed transform of {members} members")
        self.shared = set(shared)
        self.active = np.ones(members, dtype=bool)
        self._views: dict[tuple, Any] = {}
        self.t = 0
        self._scratch: dict[str, Any] = {}

    @property
    def lr(self) -> np.ndarray:
        """The members' learning rates, shape ``(K,)``."""
        return self._lr

    @lr.setter
    def lr(self, value: Any) -> None:
        self._lr = member_values("learning rate", value, self.members, low=0.0)

    def _view(self, values: np.ndarray, like: Any, shared: bool, what: str) -> Any:
        key = (id(values), like.ndim, like.dtype, shared, type(like))
        hit = self._views.get(key)
        if hit is None:
            if len(self._views) > 64:  # learning rates change every epoch: forget old ones
                self._views.clear()
            # the entry holds ``values`` too, so its id is not reused while cached
            hit = self._views[key] = (values, _scalar(values, like, shared, what))
        return hit[1]

    def step(self, params: dict[str, Any], grads: dict[str, Any]) -> None:
        """One update of every array in ``params``; frozen members do not move."""
        if params.keys() != grads.keys():
            raise DeepfitError(
                f"params and grads have different keys: {sorted(set(params) ^ set(grads))}"
            )
        self.t += 1
        frozen = np.flatnonzero(~self.active)
        decaying = bool(self.weight_decay.any())
        fused = self.transforms[0] if len(self.transforms) == 1 else None
        for name, p in params.items():
            g = grads[name]
            shared = name in self.shared
            if (
                fused is not None
                and not shared
                and fused.fused_step_(
                    name, p, g, self.t, self, decaying and self.decay_filter(name)
                )
            ):
                continue
            u = self._scratch.get(name)
            if u is None or u.shape != g.shape or u.dtype != p.dtype or type(u) is not type(p):
                u = array_module(p).empty_like(p)
                self._scratch[name] = u
            u[...] = g
            for transform in self.transforms:
                transform.update_(name, u, self.t, shared)
            if decaying and self.decay_filter(name):
                u += self._view(self.weight_decay, p, shared, "weight_decay") * p
            u *= self._view(self.lr, p, shared, "learning rate")
            if frozen.size and not shared:
                u[frozen] = 0
            p -= u

    def take(self, members: Sequence[int]) -> PackedOptimizer:
        """An optimizer of the ``members`` listed only (in that order), to step a compact
        model of them (:meth:`deepfit.nn.packed.PackedSequential.take`): their learning
        rates, weight decays, transform scalars, ``active`` flags and state rows (copies),
        and the step count. Member ``j`` of the copy moves exactly as member
        ``members[j]`` would here; :meth:`put` writes it back."""
        idx = np.asarray(members, dtype=np.int64)
        if self.shared:
            raise DeepfitError("an optimizer of shared parameters cannot take some members")
        part = copy.copy(self)
        part.members = len(idx)
        part._lr = self._lr[idx]
        part.weight_decay = self.weight_decay[idx]
        part.active = self.active[idx]
        part.transforms = [tr.take(idx) for tr in self.transforms]
        part.shared = set()
        part._views, part._scratch = {}, {}
        return part

    def put(self, members: Sequence[int], part: PackedOptimizer) -> None:
        """Write back what ``part`` (:meth:`take` of ``members``) learned: the step count,
        the ``active`` flags and the state rows (learning rates stay this optimizer's)."""
        idx = np.asarray(members, dtype=np.int64)
        self.t = part.t
        self.active[idx] = part.active
        for transform, piece in zip(self.transforms, part.transforms, strict=True):
            transform.put(idx, piece)

    def state_dict(self) -> dict[str, Any]:
        """``t``, ``lr``, ``weight_decay``, ``active`` and every state array, keyed
        ``"<transform index>.<slot>/<parameter name>"``."""
        state: dict[str, Any] = {
            "t": self.t,
            "lr": [float(v) for v in self.lr],
            "weight_decay": [float(v) for v in self.weight_decay],
            "active": [bool(a) for a in self.active],
        }
        for i, transform in enumerate(self.transforms):
            for slot, arrays in transform.state.items():
                for name, arr in arrays.items():
                    state[f"{i}.{slot}/{name}"] = to_numpy(arr).copy()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""
        for key in ("t", "lr", "active"):
            if key not in state:
                raise DeepfitError(f"packed optimizer state dict lacks {key!r}")
        restore_transform_states(self, state, skip=("t", "lr", "weight_decay", "active"))
        self.t = int(state["t"])
        self.lr = state["lr"]
        if "weight_decay" in state:
            self.weight_decay = member_values(
                "weight_decay", state["weight_decay"], self.members, low=0.0
            )
        active = np.asarray(state["active"], dtype=bool)
        if active.shape != (self.members,):
            raise DeepfitError(f"optimizer state 'active' has {active.size} entries")
        self.active = active

    def __repr__(self) -> str:
        return f"{type(self).__name__}(members={self.members}, lr={[float(v) for v in self.lr]})"


class PackedSGD(PackedOptimizer):
    """Plain gradient descent per member: ``theta_k := theta_k - lr_k g_k``."""

    def __init__(self, members: int, lr: Any = 0.01, **kw: Any) -> None:
        super().__init__(members, lr, (), **kw)


class PackedMomentum(PackedOptimizer):
    """Momentum per member: ``v_k = beta_k v_k + (1 - beta_k) g_k``; ``theta_k -= lr_k v_k``."""

    def __init__(self, members: int, lr: Any = 0.01, beta: Any = 0.9, **kw: Any) -> None:
        super().__init__(members, lr, (PackedScaleByMomentum(members, beta),), **kw)


class PackedRMSprop(PackedOptimizer):
    """RMSprop per member (see :class:`~deepfit.optim.optimizers.RMSprop`)."""

    def __init__(
        self,
        members: int,
        lr: Any = 0.001,
        beta: Any = 0.9,
        eps: Any = 1e-8,
        *,
        bias_correction: bool = False,
        **kw: Any,
    ) -> None:
        transform = PackedScaleByRMS(members, beta, eps, bias_correction)
        super().__init__(members, lr, (transform,), **kw)


class PackedAdam(PackedOptimizer):
    """Adam (AdamW with ``weight_decay``) per member (see :class:`~deepfit.optim.Adam`)."""

    def __init__(
        self,
        members: int,
        lr: Any = 0.001,
        beta1: Any = 0.9,
        beta2: Any = 0.999,
        eps: Any = 1e-8,
        **kw: Any,
    ) -> None:
        super().__init__(members, lr, (PackedScaleByAdam(members, beta1, beta2, eps),), **kw)


PACKED_OPTIMIZERS: dict[str, type[PackedOptimizer]] = {
    "sgd": PackedSGD,
    "momentum": PackedMomentum,
    "rmsprop": PackedRMSprop,
    "adam": PackedAdam,
}


def packed_lr(schedules: Sequence[Callable[[int], float]] | None, epoch: int, base: Any) -> Any:
    """The members' learning rates at ``epoch``: each member's schedule, or ``base``."""
    if schedules is None:
        return base
    rates = [float(s(epoch)) for s in schedules]
    if not all(math.isfinite(r) and r >= 0 for r in rates):
        raise DeepfitError(f"a member's schedule gave an invalid learning rate: {rates}")
    return rates

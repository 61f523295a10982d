"""Gradient checking: backpropagation against two-sided finite differences."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from deepfit.backend import RNGLike, as_generator
from deepfit.errors import GradientCheckError
from deepfit.nn.activations import LeakyReLU, ReLU
from deepfit.nn.dropout import Dropout
from deepfit.nn.losses import Loss
from deepfit.nn.objective import cost, cost_and_gradients, make_penalties
from deepfit.nn.sequential import Sequential

FINE = 1e-7
LOOK = 1e-5
BUG = 1e-3


def relative_error(approx: np.ndarray, exact: np.ndarray) -> float:
    """``||approx - exact|| / (||approx|| + ||exact||)`` (0 when both are zero)."""
    denom = np.linalg.norm(approx) + np.linalg.norm(exact)
    if denom == 0:
        return 0.0
    return float(np.linalg.norm(approx - exact) / denom)


def verdict(error: float) -> str:
    """The notes' reading of a relative error: below 1e-7 fine, up to 1e-5 worth a look,
    up to 1e-3 suspicious, above that a bug."""
    if error < FINE:
        return "fine"
    if error < LOOK:
        return "look"
    if error < BUG:
        return "suspicious"
    return "bug"


@dataclass
class GradCheckResult:
    """Outcome of :func:`gradcheck`: the overall and per-tensor relative errors."""

    relative_error: float
    per_tensor: dict[str, float]
    n_checked: dict[str, int] = field(default_factory=dict)
    eps: float = 1e-7
    near_kinks: int = 0

    @property
    def worst(self) -> str:
        """Name of the tensor with the largest relative error."""
        return max(self.per_tensor, key=self.per_tensor.__getitem__)

    @property
    def verdict(self) -> str:
        return verdict(self.relative_error)

    def passed(self, threshold: float = LOOK) -> bool:
        return self.relative_error < threshold

    def report(self) -> str:
        """A table: one row per tensor with its relative error and verdict, then the total."""
        width = max(len("tensor"), *(len(n) for n in self.per_tensor))
        lines = [f"{'tensor':<{width}}  {'checked':>7}  {'rel. error':>10}  verdict"]
        for name, err in self.per_tensor.items():
            checked = self.n_checked.get(name, 0)
            lines.append(f"{name:<{width}}  {checked:>7}  {err:>10.2e}  {verdict(err)}")
        lines.append(
            f"{'overall':<{width}}  {sum(self.n_checked.values()):>7}  "
            f"{self.relative_error:>10.2e}  {self.verdict}"
        )
        lines.append(
            f"worst tensor: {self.worst} ({self.per_tensor[self.worst]:.2e}); "
            f"thresholds: <{FINE:g} fine, <{LOOK:g} look, <{BUG:g} suspicious, else bug"
        )
        if self.near_kinks:
            lines.append(
                f"{self.near_kinks} ReLU input(s) lie within 100 eps of the kink at 0: a large "
                f"error there can be a false alarm (the two-sided difference straddles it)"
            )
        return "\n".join(lines)

    __str__ = report


def gradcheck(
    model: Sequential,
    loss: Loss,
    X: Any,
    y: Any,
    l2: float = 0.0,
    eps: float = 1e-7,
    *,
    l1: float = 0.0,
    disable_dropout: bool = False,
    max_per_tensor: int | None = None,
    rng: RNGLike = 0,
) -> GradCheckResult:
    """Compare backpropagation's gradient with two-sided finite differences.

    For every parameter entry ``theta_i`` (all tensors flattened into one vector ``theta``)::

        dtheta_approx_i = (J(theta + eps e_i) - J(theta - eps e_i)) / (2 eps)

    with ``J`` the mean loss on ``(X, y)`` plus the L2/L1 penalties, in training mode (batch
    norm uses the batch statistics), and reports
    ``||dtheta_approx - dtheta|| / (||dtheta_approx|| + ||dtheta||)`` overall and per tensor.

    The check runs on a float64 copy of ``model``; the model itself is not touched. Dropout
    makes ``J`` random, so a model with active dropout is refused unless
    ``disable_dropout=True``, which sets ``keep_prob = 1`` in the copy (the notes: check with
    dropout off, then switch it on).

    Parameters
    ----------
    max_per_tensor : int, optional
        Check at most this many randomly chosen entries of each tensor (for big models).
    """
    active = [
        (name, layer)
        for name, layer in model.named_layers()
        if isinstance(layer, Dropout) and layer.active and layer.mask is None
    ]
    if active and not disable_dropout:
        raise GradientCheckError(
            f"model has active dropout (layer {active[0][0]}, keep_prob="
            f"{active[0][1].keep_prob}); gradient checks need a deterministic cost: "
            f"pass disable_dropout=True"
        )
    check = copy.deepcopy(model).astype("float64")
    for _, layer in check.named_layers():
        if isinstance(layer, Dropout) and layer.mask is None:
            layer.keep_prob = 1.0
    X = np.asarray(X, dtype=np.float64)
    penalties = make_penalties(l2=l2, l1=l1)
    gen = as_generator(rng)

    cost_and_gradients(check, loss, X, y, penalties)
    near_kinks = _inputs_near_kinks(check, X, eps)
    params = check.params
    exact = {name: g.copy() for name, g in check.grads.items()}

    per_tensor: dict[str, float] = {}
    n_checked: dict[str, int] = {}
    approx_all, exact_all = [], []
    for name, p in params.items():
        flat = p.reshape(-1)
        if max_per_tensor is not None and flat.size > max_per_tensor:
            indices = np.sort(gen.choice(flat.size, size=max_per_tensor, replace=False))
        else:
            indices = np.arange(flat.size)
        approx = np.empty(indices.size)
        for k, i in enumerate(indices):
            original = flat[i]
            flat[i] = original + eps
            j_plus = cost(check, loss, X, y, penalties)
            flat[i] = original - eps
            j_minus = cost(check, loss, X, y, penalties)
            flat[i] = original
            approx[k] = (j_plus - j_minus) / (2 * eps)
        analytic = exact[name].reshape(-1)[indices]
        per_tensor[name] = relative_error(approx, analytic)
        n_checked[name] = int(indices.size)
        approx_all.append(approx)
        exact_all.append(analytic)
    overall = relative_error(np.concatenate(approx_all), np.concatenate(exact_all))
    return GradCheckResult(overall, per_tensor, n_checked, eps, near_kinks)


def _inputs_near_kinks(model: Sequential, X: np.ndarray, eps: float) -> int:
    """How many inputs of ReLU / LeakyReLU layers lie within ``100 eps`` of 0, where the
    derivative jumps and finite differences can disagree with backprop for no fault of its
    own (the notes' caveat about kinks; a parameter step of ``eps`` moves a pre-activation
    by ``eps`` times an input, hence the margin)."""
    count, x = 0, X
    for layer in model.layers:
        if isinstance(layer, (ReLU, LeakyReLU)):
            count += int((np.abs(x) < 100 * eps).sum())
        x = layer.forward(x, training=True)
    return count

"""Gradient checking catches a planted backpropagation bug (course 2, week 1, 2.1.13-2.1.14).

The course's exercise ("Gradient Checking", ``gradient_check_n``) takes a 4-5-3-1
LINEAR-RELU-LINEAR-RELU-LINEAR-SIGMOID network on 3 examples of 4 features, plants two bugs in
its backward pass (``dW2`` twice too large, ``db1`` four times too large), and compares the
gradient with two-sided differences, eps = 1e-7: the buggy network gives a relative
difference of 0.285, the fixed one about 1e-7 (the notebook flags anything above 2e-7).

We plant the same two bugs in deepfit's own :class:`~deepfit.nn.Dense` backward (layer 2's
``dW`` doubled, layer 0's ``db`` quadrupled) and run :func:`deepfit.gradcheck`.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np

from deepfit.checks.gradcheck import BUG, FINE, gradcheck, relative_error
from deepfit.lab._common import LabResult, pyplot, row, save_figure
from deepfit.nn.dense import Dense
from deepfit.nn.losses import SigmoidBinaryCrossEntropy
from deepfit.nn.objective import cost, cost_and_gradients
from deepfit.nn.sequential import Sequential, mlp

NAME = "gradcheck"
TITLE = "Gradient checking: a planted backward bug is caught, the fix passes"
#: the course's planted bugs, in deepfit's qualified names: dW2 * 2 and db1 * 4
COURSE_BUGS = {"2.W": 2.0, "0.b": 4.0}


class BuggyDense(Dense):
    """A Dense layer whose backward pass multiplies some gradients by a wrong factor
    (``bugs``: parameter key -> factor); everything else is :class:`Dense`."""

    bugs: dict[str, float]

    def backward(self, dz):
        dx = super().backward(dz)
        self._plant()
        return dx

    def backward_params(self, dz) -> None:
        super().backward_params(dz)
        self._plant()

    def _plant(self) -> None:
        for key, factor in self.bugs.items():
            self.grads[key] *= factor


def plant_bugs(model: Sequential, bugs: dict[str, float]) -> Sequential:
    """A copy of ``model`` whose backward pass scales the gradients named in ``bugs``
    (qualified names, e.g. ``{"2.W": 2.0}``) by the given factors."""
    buggy = copy.deepcopy(model)
    by_layer: dict[int, dict[str, float]] = {}
    for name, factor in bugs.items():
        index, key = name.split(".")
        by_layer.setdefault(int(index), {})[key] = factor
    for index, layer_bugs in by_layer.items():
        layer = buggy.layers[index]
        if type(layer) is not Dense:
            raise TypeError(f"layer {index} is {layer!r}, not a Dense layer")
        layer.__class__ = BuggyDense
        layer.bugs = layer_bugs
    return buggy


def course_problem(seed: int = 1):
    """The exercise's shapes: 3 examples of 4 features, labels (1, 1, 0); a 4-5-3-1 ReLU
    network with a sigmoid output."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((3, 4))
    y = np.array([1, 1, 0])
    model = mlp(4, [5, 3], 1, activation="relu", init="he", rng=seed, dtype="float64")
    return model, X, y


def degeneracies(model: Sequential, X, y, eps: float = 1e-7) -> dict[str, bool]:
    """Why a check can mislead on a tiny batch: ``kink`` when a hidden pre-activation lies
    within ``eps`` of a ReLU kink (e.g. z = b = 0 exactly, for an example whose previous layer
    is all off), ``invisible`` when the planted tensors' true gradients are all zero (their
    units dead on every example), so scaling them changes nothing."""
    check = copy.deepcopy(model).astype("float64")
    cost_and_gradients(check, SigmoidBinaryCrossEntropy(), X, y)
    kink = False
    h = np.asarray(X, dtype=np.float64)
    for layer in check.layers[:-1]:
        h = layer.forward(h)
        if isinstance(layer, Dense) and np.any(np.abs(h) <= eps):
            kink = True
    grads = check.grads
    invisible = all(not np.any(grads[name]) for name in COURSE_BUGS)
    return {"kink": kink, "invisible": invisible}


def eps_sweep(model: Sequential, X, y, epsilons) -> list[float]:
    """Relative error of the two-sided difference against backprop for each eps."""
    loss = SigmoidBinaryCrossEntropy()
    return [gradcheck(model, loss, X, y, eps=float(e)).relative_error for e in epsilons]


def one_sided(model: Sequential, X, y, eps: float = 1e-7) -> float:
    """Relative error of the one-sided difference ``(J(theta + eps) - J(theta)) / eps``
    (the notes: the two-sided one is O(eps^2) accurate, this one only O(eps))."""
    loss = SigmoidBinaryCrossEntropy()
    check = copy.deepcopy(model).astype("float64")
    cost_and_gradients(check, loss, X, y)
    exact, approx = [], []
    for name, p in check.params.items():
        flat = p.reshape(-1)
        exact.append(check.grads[name].reshape(-1).copy())
        base = cost(check, loss, X, y)
        values = np.empty(flat.size)
        for i in range(flat.size):
            keep = flat[i]
            flat[i] = keep + eps
            values[i] = (cost(check, loss, X, y) - base) / eps
            flat[i] = keep
        approx.append(values)
    return relative_error(np.concatenate(approx), np.concatenate(exact))


def run(out: Path, quick: bool = False) -> LabResult:
    loss = SigmoidBinaryCrossEntropy()
    seeds = [1] if quick else list(range(1, 21))
    fixed_errors, buggy_errors = [], []
    per_tensor: dict[str, Any] = {}
    flags = []
    for seed in seeds:
        model, X, y = course_problem(seed)
        flags.append(degeneracies(model, X, y))
        fixed = gradcheck(model, loss, X, y, eps=1e-7)
        buggy = gradcheck(plant_bugs(model, COURSE_BUGS), loss, X, y, eps=1e-7)
        fixed_errors.append(fixed.relative_error)
        buggy_errors.append(buggy.relative_error)
        if seed == seeds[0]:
            per_tensor = {"fixed": fixed.per_tensor, "buggy": buggy.per_tensor}
            worst = buggy.worst
    epsilons = np.logspace(-1, -10, 10 if quick else 19)
    model, X, y = course_problem(seeds[0])
    sweep = eps_sweep(model, X, y, epsilons)
    one = one_sided(model, X, y)

    rows = [
        row(
            "buggy backward (dW2 x2, db1 x4): relative difference, seed 1",
            buggy_errors[0],
            0.2851,
            "same bugs, same shapes; our weights (He init, our seed) and inputs differ from "
            "the notebook's, so the number is close, not equal",
        ),
        row(
            "fixed backward: relative difference, seed 1",
            fixed_errors[0],
            "≈ 1e-7 (flagged above 2e-7)",
            "float64 copy of the model; the notebook's cost is also the mean over m = 3",
        ),
        row(
            "tensor with the largest error (buggy)",
            worst,
            "dW2 / db1",
            "deepfit's names: '2.W' = dW2, '0.b' = db1",
        ),
    ]
    for name in per_tensor["buggy"]:
        rows.append(
            row(
                f"per tensor {name}: buggy / fixed",
                f"{per_tensor['buggy'][name]:.2e} / {per_tensor['fixed'][name]:.2e}",
                None,
                "planted bug" if name in COURSE_BUGS else "",
            )
        )
    visible = [b for b, f in zip(buggy_errors, flags, strict=True) if not f["invisible"]]
    smooth = [e for e, f in zip(fixed_errors, flags, strict=True) if not f["kink"]]
    invisible_seeds = [s for s, f in zip(seeds, flags, strict=True) if f["invisible"]]
    kink_seeds = [s for s, f in zip(seeds, flags, strict=True) if f["kink"]]
    if len(seeds) > 1:
        rows += [
            row(
                f"buggy, {len(seeds)} seeds: min / median / max",
                f"{min(buggy_errors):.3f} / {np.median(buggy_errors):.3f} / "
                f"{max(buggy_errors):.3f}",
                0.2851,
                "one seed in the notebook",
            ),
            row(
                "seeds where the bug is invisible (planted tensors' true gradient is 0)",
                ", ".join(map(str, invisible_seeds)) or "none",
                None,
                "every unit of the planted layers is off for all 3 examples: 0 x 2 = 0. "
                "Check on more examples (or several seeds) before trusting a pass",
            ),
            row(
                f"fixed, {len(seeds)} seeds: min / median / max",
                f"{min(fixed_errors):.1e} / {np.median(fixed_errors):.1e} / "
                f"{max(fixed_errors):.1e}",
                "≈ 1e-7",
                "",
            ),
            row(
                "seeds where the correct backward fails (a ReLU kink within eps)",
                ", ".join(map(str, kink_seeds)) or "none",
                None,
                "an example whose layer-1 ReLUs are all off gives z2 = b2 = 0 exactly (biases "
                "start at 0); at the kink the difference sees half a slope, backprop uses "
                "ReLU'(0) = 0. Not a backward bug: the notes' caveat about non-smooth costs",
            ),
        ]
    best = int(np.argmin(sweep))
    rows += [
        row(
            "one-sided difference (J(theta+eps) - J(theta))/eps, eps = 1e-7",
            one,
            "O(eps), less accurate than two-sided",
            "the notes' reason for the two-sided formula",
        ),
        row(
            "eps with the smallest two-sided error (fixed network)",
            f"{epsilons[best]:.0e} ({sweep[best]:.1e})",
            "1e-7 used",
            "truncation error ~eps^2 above, floating-point cancellation ~1e-16/eps below",
        ),
    ]
    checks = {
        "bug caught on the course's case (seed 1)": buggy_errors[0] > BUG,
        "fix passes on the course's case (seed 1)": fixed_errors[0] < FINE,
        "bug caught (> 1e-3) on every seed where it is visible": min(visible) > BUG,
        "fix passes (< 1e-7) on every seed without a ReLU kink": max(smooth) < FINE,
        "the worst tensor is a planted one": worst in COURSE_BUGS,
        "two-sided beats one-sided at eps = 1e-7": fixed_errors[0] < one,
    }

    plt = pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.8))
    names = list(per_tensor["buggy"])
    pos = np.arange(len(names))
    left.bar(
        pos - 0.2,
        [per_tensor["buggy"][n] for n in names],
        0.4,
        color="#d62728",
        label="planted bug (dW2 x2, db1 x4)",
    )
    left.bar(
        pos + 0.2,
        [max(per_tensor["fixed"][n], 1e-16) for n in names],
        0.4,
        color="#2ca02c",
        label="fixed backward",
    )
    left.axhline(FINE, color="k", ls=":", lw=0.8)
    left.axhline(BUG, color="k", ls="--", lw=0.8)
    left.text(len(names) - 0.5, FINE * 1.5, "1e-7: fine", ha="right", fontsize=7)
    left.text(len(names) - 0.5, BUG * 1.5, "1e-3: bug", ha="right", fontsize=7)
    left.set_xticks(pos, names)
    left.set_yscale("log")
    left.set_xlabel("parameter tensor (deepfit name)")
    left.set_ylabel("relative error (two-sided vs backprop)")
    left.set_title("4-5-3-1 ReLU net, eps = 1e-7")
    left.legend(fontsize=7, loc="center left")
    right.loglog(epsilons, sweep, "o-", color="#1f77b4", label="two-sided (fixed network)")
    right.axvline(1e-7, color="k", ls=":", lw=0.8)
    right.scatter([1e-7], [one], color="#ff7f0e", zorder=3, label="one-sided, eps = 1e-7")
    right.set_xlabel("eps")
    right.set_ylabel("relative error")
    right.set_title("choice of eps (float64)")
    right.invert_xaxis()
    right.legend(fontsize=7)
    save_figure(fig, out / f"{NAME}.png")

    return LabResult(
        name=NAME,
        title=TITLE,
        claim=(
            "Two-sided finite differences, eps = 1e-7, catch a wrong backward pass (relative "
            "difference ~0.3) and pass a correct one (~1e-7 or better)."
        ),
        source=(
            "Course 2, week 1, 2.1.13-2.1.14, and its programming exercise 'Gradient "
            "Checking' (gradient_check_n: 0.2850931567761624 with the planted bugs)."
        ),
        setup=(
            f"mlp(4, [5, 3], 1, relu, He init), X ~ N(0, 1) of shape (3, 4), y = (1, 1, 0), "
            f"SigmoidBinaryCrossEntropy, deepfit.gradcheck on a float64 copy; "
            f"{len(seeds)} seed(s)."
        ),
        rows=rows,
        checks=checks,
        data={
            "seeds": seeds,
            "buggy": buggy_errors,
            "fixed": fixed_errors,
            "degeneracies": flags,
            "per_tensor": per_tensor,
            "eps": epsilons.tolist(),
            "eps_sweep": sweep,
            "one_sided": one,
        },
        figure=f"{NAME}.png",
    )

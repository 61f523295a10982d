"""Finite-difference helpers shared by the gradient tests (float64 throughout)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from deepfit.checks.gradcheck import relative_error


def numeric_gradient(f: Callable[[], float], arr: np.ndarray, eps: float = 1e-5) -> np.ndarray:
    """Two-sided differences ``(f(a + eps e_i) - f(a - eps e_i)) / 2 eps`` for every entry of
    ``arr``, perturbed in place and restored."""
    grad = np.zeros(arr.shape)
    flat, out = arr.reshape(-1), grad.reshape(-1)
    for i in range(flat.size):
        original = flat[i]
        flat[i] = original + eps
        plus = f()
        flat[i] = original - eps
        minus = f()
        flat[i] = original
        out[i] = (plus - minus) / (2 * eps)
    return grad


def layer_gradient_errors(layer, x: np.ndarray, rng: np.random.Generator, reseed=None):
    """Relative errors of a layer's backward for ``J = sum(forward(x) * dy)`` with a random
    upstream ``dy`` (never all ones): ``{"x": err, "<param>": err, ...}``.

    ``reseed`` is called before every forward (to replay dropout's mask).
    """
    reseed = reseed or (lambda: None)
    reseed()
    y = layer.forward(x, training=True)
    dy = rng.standard_normal(y.shape)
    dy_before = dy.copy()
    dx = layer.backward(dy)
    assert np.array_equal(dy, dy_before), "backward mutated its input"
    analytic = {"x": dx.copy(), **{k: g.copy() for k, g in layer.grads.items()}}

    def J() -> float:
        reseed()
        return float((layer.forward(x, training=True) * dy).sum())

    errors = {"x": relative_error(numeric_gradient(J, x), analytic["x"])}
    for key, p in layer.params.items():
        errors[key] = relative_error(numeric_gradient(J, p), analytic[key])
    return errors

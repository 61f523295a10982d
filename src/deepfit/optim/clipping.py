"""Gradient clipping by global norm."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from deepfit.backend import array_module
from deepfit.errors import DeepfitError


def global_norm(grads: Mapping[str, Any], norm_type: float = 2.0) -> float:
    """The norm of all gradients taken as one vector::

        ||g|| = (sum_tensors ||g_t||_p^p)^(1/p)        (p = inf: max_t max |g_t|)

    computed, as PyTorch does, as the ``p``-norm of the per-tensor ``p``-norms.
    """
    norm_type = _check_norm_type(norm_type)
    norms = []
    for g in grads.values():
        xp = array_module(g)
        flat = g.reshape(-1)
        if flat.size == 0:
            continue
        if math.isinf(norm_type):
            norms.append(float(xp.abs(flat).max()))
        else:
            norms.append(float(xp.linalg.norm(flat.astype(float, copy=False), ord=norm_type)))
    if not norms:
        return 0.0
    if math.isinf(norm_type):
        return max(norms)
    return float(sum(n**norm_type for n in norms) ** (1.0 / norm_type))


def _check_norm_type(norm_type: float) -> float:
    if isinstance(norm_type, bool) or not isinstance(norm_type, (int, float)) or norm_type <= 0:
        raise DeepfitError(f"clipping norm_type must be a number > 0 or inf, got {norm_type!r}")
    return float(norm_type)


def clip_grad_norm_(
    grads: Mapping[str, Any], max_norm: float, norm_type: float = 2.0, eps: float = 1e-6
) -> float:
    """Rescale the gradients in place so that their global norm is at most ``max_norm``::

        n = ||g||                      (see :func:`global_norm`)
        g := g * min(1, max_norm / (n + eps))

    Returns the norm ``n`` before clipping, exactly as PyTorch's
    ``torch.nn.utils.clip_grad_norm_(parameters, max_norm, norm_type)`` (which also adds
    ``1e-6``). Clipping the whole vector keeps its direction, unlike clipping each entry.

    References
    ----------
    Pascanu, Mikolov and Bengio, "On the difficulty of training recurrent neural networks",
    ICML 2013.
    """
    if (
        isinstance(max_norm, bool)
        or not isinstance(max_norm, (int, float))
        or not (max_norm > 0 and math.isfinite(max_norm))
    ):
        raise DeepfitError(f"clip max_norm must be a finite number > 0, got {max_norm!r}")
    total = global_norm(grads, norm_type)
    coef = max_norm / (total + eps)
    if coef < 1.0:
        for g in grads.values():
            g *= g.dtype.type(coef)
    return total

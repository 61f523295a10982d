"""Losses with their output activation fused in: softmax cross-entropy, sigmoid binary
cross-entropy, mean squared error.

Each loss takes the network's raw outputs (logits), so the fused gradient is the simple and
stable ``(p - y) / m``. ``forward(logits, y)`` returns the mean loss over the batch as a
Python float and caches what ``backward()`` needs; ``output(logits)`` gives the predictions
(probabilities, or the values themselves for regression).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from deepfit.backend import array_module
from deepfit.errors import DeepfitError, ShapeError
from deepfit.nn.activations import sigmoid


class Loss:
    """Base class of the fused losses."""

    task = "classification"

    def __init__(self) -> None:
        self._dlogits = None

    def forward(self, logits: Any, y: Any) -> float:
        raise NotImplementedError

    def __call__(self, logits: Any, y: Any) -> float:
        return self.forward(logits, y)

    def backward(self):
        """Gradient of the last ``forward``'s mean loss with respect to the logits."""
        if self._dlogits is None:
            raise RuntimeError(f"{self!r}.backward() called before forward()")
        return self._dlogits

    def output(self, logits: Any) -> Any:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def _check_batch(logits, y, name: str) -> None:
    if logits.ndim != 2:
        raise ShapeError(f"{name}: logits must have shape (batch, outputs), got {logits.shape}")
    if y.shape[0] != logits.shape[0]:
        raise ShapeError(
            f"{name}: {logits.shape[0]} rows of logits but {y.shape[0]} labels (y shape {y.shape})"
        )


def _entrywise_targets(logits, y, name: str, what: str):
    """``y`` as an array shaped like ``logits`` (``(m,)`` is read as one output column)."""
    y = array_module(logits).asarray(y)
    _check_batch(logits, y, name)
    if y.ndim == 1:
        y = y.reshape(-1, 1)
    if y.shape != logits.shape:
        raise ShapeError(f"{name}: y of shape {y.shape} does not match {what} {logits.shape}")
    return y


def log_softmax(z):
    """``log softmax(z) = z - logsumexp(z)``, with the row maximum subtracted first so that
    ``exp`` never overflows (logits of +-1000 are fine)."""
    xp = array_module(z)
    shifted = z - z.max(axis=1, keepdims=True)
    return shifted - xp.log(xp.exp(shifted).sum(axis=1, keepdims=True))


def softmax(z):
    """``softmax(z)_k = exp(z_k - max z) / sum_j exp(z_j - max z)``."""
    xp = array_module(z)
    e = xp.exp(z - z.max(axis=1, keepdims=True))
    e /= e.sum(axis=1, keepdims=True)
    return e


class SoftmaxCrossEntropy(Loss):
    """Softmax over ``K`` classes with the cross-entropy loss, fused.

    ::

        L = -(1/m) sum_i log softmax(z_i)[y_i]        dL/dz = (softmax(z) - onehot(y)) / m

    ``y`` holds class indices ``0..K-1`` of shape ``(m,)``; a float array of shape ``(m, K)``
    whose rows are probability distributions (soft labels) is accepted too.
    """

    def forward(self, logits, y) -> float:
        xp = array_module(logits)
        y = xp.asarray(y)
        _check_batch(logits, y, "SoftmaxCrossEntropy")
        m, k = logits.shape
        logp = log_softmax(logits)
        grad = xp.exp(logp)
        if y.ndim == 1:
            if y.dtype.kind not in "iu":
                if y.dtype.kind == "f" and bool(xp.all(y == xp.round(y))):
                    y = y.astype(np.int64)
                else:
                    raise DeepfitError(
                        f"SoftmaxCrossEntropy: labels must be class indices, got dtype {y.dtype}"
                    )
            if m and (int(y.min()) < 0 or int(y.max()) >= k):
                bad = int(y.min()) if int(y.min()) < 0 else int(y.max())
                raise DeepfitError(
                    f"SoftmaxCrossEntropy: label {bad} is outside the {k} classes 0..{k - 1}"
                )
            rows = xp.arange(m)
            loss = -float(logp[rows, y].sum()) / m
            grad[rows, y] -= 1
        elif y.shape == logits.shape:
            target = y.astype(logits.dtype)
            loss = -float((target * logp).sum()) / m
            grad -= target
        else:
            raise ShapeError(
                f"SoftmaxCrossEntropy: y must have shape ({m},) or {logits.shape}, got {y.shape}"
            )
        grad /= m
        self._dlogits = grad
        return loss

    def output(self, logits):
        """Class probabilities ``softmax(z)``."""
        return softmax(logits)


class SigmoidBinaryCrossEntropy(Loss):
    """Sigmoid output with the binary cross-entropy loss, fused, for labels in {0, 1}.

    ::

        L = (1/(m k)) sum max(z, 0) - z y + log(1 + exp(-|z|))
        dL/dz = (sigmoid(z) - y) / (m k)

    The form on the left equals ``-y log p - (1 - y) log(1 - p)`` with ``p = sigmoid(z)``
    but never overflows. ``logits`` has shape ``(m, k)`` (usually ``k = 1``: one output unit
    per binary target); ``y`` has shape ``(m,)`` when ``k = 1``, or ``(m, k)``. The mean
    runs over all ``m k`` entries, as PyTorch's ``BCEWithLogitsLoss``.
    """

    def forward(self, logits, y) -> float:
        xp = array_module(logits)
        y = _entrywise_targets(logits, y, "SigmoidBinaryCrossEntropy", "logits")
        if y.size and bool(xp.any((y < 0) | (y > 1))):
            raise DeepfitError("SigmoidBinaryCrossEntropy: labels must lie in [0, 1]")
        y = y.astype(logits.dtype)
        n = logits.size
        per_entry = xp.maximum(logits, 0) - logits * y + xp.log1p(xp.exp(-xp.abs(logits)))
        loss = float(per_entry.sum()) / n
        grad = sigmoid(logits)
        grad -= y
        grad /= n
        self._dlogits = grad
        return loss

    def output(self, logits):
        """Probabilities of the positive class, ``sigmoid(z)``."""
        return sigmoid(logits)


class MeanSquaredError(Loss):
    """Mean squared error over every entry, for regression with a linear output.

    ::

        L = (1/(m k)) sum (z - y)^2        dL/dz = 2 (z - y) / (m k)

    As PyTorch's ``MSELoss`` and Keras' ``mean_squared_error``. ``y`` may have shape
    ``(m,)`` for one output.
    """

    task = "regression"

    def forward(self, logits, y) -> float:
        y = _entrywise_targets(logits, y, "MeanSquaredError", "outputs")
        diff = logits - y.astype(logits.dtype)
        n = logits.size
        loss = float((diff * diff).sum()) / n
        diff *= 2.0 / n
        self._dlogits = diff
        return loss

    def output(self, logits):
        """The predictions themselves (identity output)."""
        return logits


LOSSES: dict[str, type[Loss]] = {
    "softmax_cross_entropy": SoftmaxCrossEntropy,
    "sigmoid_binary_cross_entropy": SigmoidBinaryCrossEntropy,
    "mse": MeanSquaredError,
}


def get_loss(name: str | Loss) -> Loss:
    """Return the loss called ``name`` (or ``name`` itself when it is a Loss)."""
    if isinstance(name, Loss):
        return name
    try:
        return LOSSES[name]()
    except KeyError:
        raise DeepfitError(f"unknown loss {name!r}; choose one of {', '.join(LOSSES)}") from None

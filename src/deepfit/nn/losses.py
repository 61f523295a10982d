"""Losses with their output activation fused in: softmax cross-entropy, sigmoid binary
cross-entropy, mean squared error; optional per-example weights and label smoothing.

Each loss takes the network's raw outputs (logits), so the fused gradient is the simple and
stable ``(p - y) / m``. ``forward(logits, y, weight=None)`` returns the mean loss over the
batch as a Python float and caches what ``backward()`` needs; ``output(logits)`` gives the
predictions (probabilities, or the values themselves for regression).

With per-example weights ``w`` (``weight``, shape ``(m,)``, >= 0) the mean becomes the
weighted mean of the examples' losses ``l_i``::

    L = sum_i w_i l_i / sum_i w_i            dL/dz_i = (w_i / sum_j w_j) dl_i/dz_i

so ``w = 1`` gives the plain mean, scaling every weight by a constant changes nothing, and a
batch whose weights are all 0 has loss 0 and gradient 0. Class weights become example weights
with :func:`class_weight_vector` and :func:`example_weights`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from deepfit import kernels
from deepfit.backend import array_module
from deepfit.errors import DataError, DeepfitError, ShapeError
from deepfit.nn.activations import sigmoid


def _check_smoothing(name: str, eps: float) -> float:
    if isinstance(eps, bool) or not isinstance(eps, (int, float, np.floating)) or not 0 <= eps < 1:
        raise DeepfitError(f"{name}: label_smoothing must be in [0, 1), got {eps!r}")
    return float(eps)


class Loss:
    """Base class of the fused losses."""

    task = "classification"

    def __init__(self) -> None:
        self._dlogits = None

    def forward(self, logits: Any, y: Any, weight: Any = None) -> float:
        raise NotImplementedError

    def __call__(self, logits: Any, y: Any, weight: Any = None) -> float:
        return self.forward(logits, y, weight)

    def backward(self):
        """Gradient of the last ``forward``'s mean loss with respect to the logits."""
        if self._dlogits is None:
            raise RuntimeError(f"{self!r}.backward() called before forward()")
        return self._dlogits

    def output(self, logits: Any) -> Any:
        raise NotImplementedError

    def counted_hits(self, logits: Any, y: Any) -> int | None:
        """The number of correct predictions (``argmax`` of a row equal to its label) that the
        last ``forward`` counted on its way, when it ran on these very arrays (unchanged since,
        unweighted); ``None`` when it counted nothing (count them yourself)."""
        return None

    def config(self) -> dict[str, Any]:
        """The loss's settings that change its value (for checkpoints and run files)."""
        return {}

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


def _row_scale(logits, weight, name: str, per_entry: int = 1):
    """The factor ``c_i`` each example's loss and gradient get: ``1 / (m k)`` without weights,
    ``w_i / (k sum w)`` with them (``k = per_entry`` outputs averaged per example). Returns
    ``(c, total)``: a Python float or an ``(m, 1)`` column, and ``sum w`` (or ``m``)."""
    m = logits.shape[0]
    if weight is None:
        return 1.0 / (max(m, 1) * per_entry), float(m)
    xp = array_module(logits)
    w = xp.asarray(weight)
    if w.shape != (m,):
        raise ShapeError(f"{name}: weight must have shape ({m},) (one per example), got {w.shape}")
    if w.dtype.kind not in "biuf":
        raise DeepfitError(f"{name}: weights must be numbers, got dtype {w.dtype}")
    if m and not bool(xp.all(w >= 0)):
        raise DeepfitError(f"{name}: weights must be finite and >= 0")
    total = float(w.sum())
    if not np.isfinite(total):
        raise DeepfitError(f"{name}: weights must be finite and >= 0")
    if total == 0:
        return xp.zeros((m, 1), dtype=logits.dtype), 0.0
    return (w / (total * per_entry)).astype(logits.dtype).reshape(-1, 1), total


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

        l_i = -sum_k t_ik log softmax(z_i)_k        dl_i/dz_i = softmax(z_i) sum_k t_ik - t_i
        L = (1/m) sum_i l_i        (weighted: sum_i w_i l_i / sum_i w_i)

    ``y`` holds class indices ``0..K-1`` of shape ``(m,)`` (then ``t_i = onehot(y_i)``); a
    float array of shape ``(m, K)`` whose rows are probability distributions (soft labels,
    e.g. from mixup) is accepted too.

    ``label_smoothing = eps`` replaces the target by ``(1 - eps) t + eps / K``, as PyTorch's
    ``CrossEntropyLoss(label_smoothing=eps)``. Example weights ``w_i`` multiply the whole
    (smoothed) example loss; with ``w_i = c[y_i]`` for class weights ``c`` this equals
    PyTorch's ``CrossEntropyLoss(weight=c)`` (which also divides by ``sum_i c[y_i]``) when no
    smoothing is applied.
    """

    _fused_key: tuple = ()  # (m, k, eps) of the fused kernel's scalars [1 - eps, eps / k, m]
    _fused_scalars: Any = None
    _hits: tuple | None = None  # (logits, y, hits) of the last fused forward

    def __init__(self, label_smoothing: float = 0.0) -> None:
        super().__init__()
        self.label_smoothing = _check_smoothing("SoftmaxCrossEntropy", label_smoothing)

    def forward(self, logits, y, weight=None) -> float:
        self._hits = None
        if (
            weight is None
            and type(y) is np.ndarray
            and y.ndim == 1
            and y.dtype.kind in "iu"
            and logits.dtype == np.float32
            and kernels.usable(logits)
            and logits.ndim == 2
            and 0 < y.shape[0] == logits.shape[0]
        ):
            return self._forward_fused(logits, y)
        xp = array_module(logits)
        y = xp.asarray(y)
        _check_batch(logits, y, "SoftmaxCrossEntropy")
        m, k = logits.shape
        eps = self.label_smoothing
        scale, total = _row_scale(logits, weight, "SoftmaxCrossEntropy")
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
            per_example = -logp[rows, y]
            if eps:
                per_example = (1.0 - eps) * per_example - (eps / k) * logp.sum(axis=1)
                grad -= eps / k
            grad[rows, y] -= 1.0 - eps
        elif y.shape == logits.shape:
            target = y.astype(logits.dtype)
            if eps:
                target = (1.0 - eps) * target + eps / k
            per_example = -(target * logp).sum(axis=1)
            grad *= target.sum(axis=1, keepdims=True)
            grad -= target
        else:
            raise ShapeError(
                f"SoftmaxCrossEntropy: y must have shape ({m},) or {logits.shape}, got {y.shape}"
            )
        _scale_(grad, scale, weight, m)
        self._dlogits = grad
        return _reduce(per_example, weight, total, m)

    def _forward_fused(self, logits, y) -> float:
        """:meth:`forward` for float32 logits and class indices, without example weights: one
        kernel pass (:func:`deepfit.kernels.softmax_cross_entropy`) computes the value and the
        gradient, with the NumPy path's operations in its order (its sums run left to right,
        and ``exp`` and ``log`` are the compiled ones, so the numbers agree to rounding).
        float64 keeps the NumPy path, bit for bit the reference."""
        m, k = logits.shape
        key = (m, k, self.label_smoothing)
        if key != self._fused_key:
            eps = self.label_smoothing
            self._fused_scalars = np.array([1.0 - eps, eps / k, m], dtype=logits.dtype)
            self._fused_key = key
        scalars = self._fused_scalars
        grad = np.empty_like(logits)
        total, hits, bad = kernels.softmax_cross_entropy(logits, y, scalars, grad)
        if bad >= 0:
            low, high = int(y.min()), int(y.max())
            raise DeepfitError(
                f"SoftmaxCrossEntropy: label {low if low < 0 else high} is outside the {k} "
                f"classes 0..{k - 1}"
            )
        self._dlogits = grad
        self._hits = (logits, y, hits)
        return total / m

    def counted_hits(self, logits, y) -> int | None:
        last = self._hits
        if last is not None and last[0] is logits and last[1] is y:
            return last[2]
        return None

    def output(self, logits):
        """Class probabilities ``softmax(z)``."""
        return softmax(logits)

    def config(self) -> dict[str, Any]:
        return {"label_smoothing": self.label_smoothing} if self.label_smoothing else {}

    def __repr__(self) -> str:
        ls = f"label_smoothing={self.label_smoothing}" if self.label_smoothing else ""
        return f"SoftmaxCrossEntropy({ls})"


def _scale_(grad, scale, weight, n: int) -> None:
    """``grad /= n`` without weights (the plain mean), else ``grad *= c`` row by row."""
    if weight is None:
        grad /= max(n, 1)
    else:
        grad *= scale


def _reduce(per_example, weight, total: float, m: int) -> float:
    """``sum(l) / m``, or ``sum(w l) / sum(w)`` (0 when every weight is 0)."""
    if weight is None:
        return float(per_example.sum()) / m if m else 0.0
    if total == 0:
        return 0.0
    xp = array_module(per_example)
    w = xp.asarray(weight).astype(np.float64)
    return float((w * per_example.astype(np.float64)).sum()) / total


class SigmoidBinaryCrossEntropy(Loss):
    """Sigmoid output with the binary cross-entropy loss, fused, for labels in [0, 1].

    ::

        e_ij = max(z, 0) - z y + log(1 + exp(-|z|))       de_ij/dz = sigmoid(z) - y
        L = (1/(m k)) sum_ij e_ij        (weighted: sum_i w_i (1/k) sum_j e_ij / sum_i w_i)

    The form of ``e`` equals ``-y log p - (1 - y) log(1 - p)`` with ``p = sigmoid(z)`` but
    never overflows. ``logits`` has shape ``(m, k)`` (usually ``k = 1``: one output unit per
    binary target); ``y`` has shape ``(m,)`` when ``k = 1``, or ``(m, k)``. Unweighted, the
    mean runs over all ``m k`` entries, as PyTorch's ``BCEWithLogitsLoss``; weighted, it equals
    ``BCEWithLogitsLoss(weight=w[:, None], reduction="sum") / (k sum w)``. Soft labels in
    [0, 1] (mixup) are accepted. ``label_smoothing = eps`` uses ``y (1 - eps) + eps / 2``.
    """

    def __init__(self, label_smoothing: float = 0.0) -> None:
        super().__init__()
        self.label_smoothing = _check_smoothing("SigmoidBinaryCrossEntropy", label_smoothing)

    def forward(self, logits, y, weight=None) -> float:
        xp = array_module(logits)
        y = _entrywise_targets(logits, y, "SigmoidBinaryCrossEntropy", "logits")
        if y.size and bool(xp.any((y < 0) | (y > 1))):
            raise DeepfitError("SigmoidBinaryCrossEntropy: labels must lie in [0, 1]")
        y = y.astype(logits.dtype)
        if self.label_smoothing:
            y = y * (1.0 - self.label_smoothing) + self.label_smoothing / 2
        m, k = logits.shape
        scale, total = _row_scale(logits, weight, "SigmoidBinaryCrossEntropy", k)
        per_entry = xp.maximum(logits, 0) - logits * y + xp.log1p(xp.exp(-xp.abs(logits)))
        grad = sigmoid(logits)
        grad -= y
        _scale_(grad, scale, weight, logits.size)
        self._dlogits = grad
        if weight is None:
            return float(per_entry.sum()) / logits.size if logits.size else 0.0
        return _reduce(per_entry.mean(axis=1), weight, total, m)

    def output(self, logits):
        """Probabilities of the positive class, ``sigmoid(z)``."""
        return sigmoid(logits)

    def config(self) -> dict[str, Any]:
        return {"label_smoothing": self.label_smoothing} if self.label_smoothing else {}

    def __repr__(self) -> str:
        ls = f"label_smoothing={self.label_smoothing}" if self.label_smoothing else ""
        return f"SigmoidBinaryCrossEntropy({ls})"


class MeanSquaredError(Loss):
    """Mean squared error over every entry, for regression with a linear output.

    ::

        L = (1/(m k)) sum (z - y)^2        dL/dz = 2 (z - y) / (m k)

    As PyTorch's ``MSELoss`` and Keras' ``mean_squared_error``. ``y`` may have shape
    ``(m,)`` for one output. Weighted: ``L = sum_i w_i (1/k) sum_j (z_ij - y_ij)^2 / sum_i
    w_i`` and ``dL/dz_i = 2 w_i (z_i - y_i) / (k sum w)``.
    """

    task = "regression"

    def forward(self, logits, y, weight=None) -> float:
        y = _entrywise_targets(logits, y, "MeanSquaredError", "outputs")
        diff = logits - y.astype(logits.dtype)
        m, k = logits.shape
        scale, total = _row_scale(logits, weight, "MeanSquaredError", k)
        squared = diff * diff
        if weight is None:
            diff *= 2.0 / max(logits.size, 1)
        else:
            diff *= 2.0
            diff *= scale
        self._dlogits = diff
        if weight is None:
            return float(squared.sum()) / logits.size if logits.size else 0.0
        return _reduce(squared.mean(axis=1), weight, total, m)

    def output(self, logits):
        """The predictions themselves (identity output)."""
        return logits


LOSSES: dict[str, type[Loss]] = {
    "softmax_cross_entropy": SoftmaxCrossEntropy,
    "sigmoid_binary_cross_entropy": SigmoidBinaryCrossEntropy,
    "mse": MeanSquaredError,
}


def get_loss(name: str | Loss, **options: Any) -> Loss:
    """Return the loss called ``name`` built with ``options`` (e.g. ``label_smoothing``), or
    ``name`` itself when it is a Loss."""
    if isinstance(name, Loss):
        return name
    try:
        cls = LOSSES[name]
    except KeyError:
        raise DeepfitError(f"unknown loss {name!r}; choose one of {', '.join(LOSSES)}") from None
    if options.get("label_smoothing") and cls is MeanSquaredError:
        raise DeepfitError("label_smoothing applies to classification losses, not to mse")
    options = {k: v for k, v in options.items() if not (k == "label_smoothing" and not v)}
    return cls(**options)


# -- class weights ------------------------------------------------------------------------------
ClassWeight = str | Mapping[int, float] | None


def class_weight_vector(y: Any, n_classes: int, class_weight: ClassWeight) -> np.ndarray:
    """One weight per class ``0..n_classes-1`` (float64).

    ``"balanced"`` is scikit-learn's ``compute_class_weight``: ``n_samples / (n_present *
    bincount(y))`` over the ``n_present`` classes that occur in ``y`` (absent classes get 1;
    no example uses them). A mapping ``{class index: weight}`` sets the listed classes; the
    others keep weight 1, as in scikit-learn. ``None`` gives all ones.
    """
    y = np.asarray(y)
    weights = np.ones(n_classes)
    if class_weight is None:
        return weights
    if isinstance(class_weight, str):
        if class_weight != "balanced":
            raise DeepfitError(
                f"class_weight must be 'balanced', a mapping or None, got {class_weight!r}"
            )
        counts = np.bincount(y.astype(np.int64), minlength=n_classes)[:n_classes]
        present = counts > 0
        weights[present] = y.shape[0] / (int(present.sum()) * counts[present])
        return weights
    if not isinstance(class_weight, Mapping):
        raise DeepfitError(
            f"class_weight must be 'balanced', a mapping or None, got {type(class_weight)}"
        )
    for label, value in class_weight.items():
        if isinstance(label, bool) or not isinstance(label, (int, np.integer)):
            raise DataError(f"class_weight key {label!r} is not a class index 0..{n_classes - 1}")
        if not 0 <= int(label) < n_classes:
            raise DataError(
                f"class_weight names class {label}, outside the {n_classes} classes "
                f"0..{n_classes - 1}"
            )
        if not isinstance(value, (int, float, np.number)) or not (
            np.isfinite(value) and value >= 0
        ):
            raise DataError(f"class_weight of class {label} must be a number >= 0, got {value!r}")
        weights[int(label)] = float(value)
    return weights


def example_weights(
    y: Any, n_classes: int, class_weight: ClassWeight = None, sample_weight: Any = None
) -> np.ndarray | None:
    """Per-example weights ``w_i = sample_weight_i * c[y_i]`` (``None`` when neither is given).

    For binary labels of a one-unit sigmoid output pass ``n_classes = 2``.
    """
    if class_weight is None and sample_weight is None:
        return None
    y = np.asarray(y)
    w = np.ones(y.shape[0]) if sample_weight is None else np.asarray(sample_weight, np.float64)
    if class_weight is not None:
        if y.ndim != 1:
            raise DataError("class_weight needs class labels (one per row), not soft targets")
        w = w * class_weight_vector(y, n_classes, class_weight)[y.astype(np.int64)]
    return w

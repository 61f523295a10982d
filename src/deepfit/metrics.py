"""The one definition of each score deepfit reports: accuracy and R^2, optionally weighted.

Runs (``summary.json``'s ``r2``), tuning (``dev_r2``, ``dev_accuracy``), ``deepfit evaluate``
and the scikit-learn estimators' ``score`` all call these, so one model gets one number
everywhere. The definitions are scikit-learn's (``sklearn.metrics.accuracy_score`` and
``sklearn.metrics.r2_score`` with its default ``multioutput="uniform_average"``), tested
against it.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from deepfit.errors import DeepfitError

Multioutput = Literal["uniform_average", "variance_weighted", "raw_values"]


def _weights(sample_weight, n: int, what: str) -> np.ndarray | None:
    if sample_weight is None:
        return None
    w = np.asarray(sample_weight, dtype=np.float64).reshape(-1)
    if w.shape[0] != n:
        raise DeepfitError(f"{what}: sample_weight has {w.shape[0]} entries for {n} samples")
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise DeepfitError(f"{what}: sample_weight must be finite and non-negative")
    return w


def accuracy(y_true, y_pred, sample_weight=None) -> float:
    """Fraction of correctly predicted labels, optionally weighted.

    .. math:: \\mathrm{acc} = \\frac{\\sum_i w_i [\\hat y_i = y_i]}{\\sum_i w_i}

    with :math:`w_i = 1` when ``sample_weight`` is None (scikit-learn's ``accuracy_score``).

    Parameters
    ----------
    y_true, y_pred : array of shape (n,)
        Labels (class indices or names), not logits.
    sample_weight : array of shape (n,), optional
        Non-negative weight of each sample.

    Returns
    -------
    float
        In [0, 1]; 0.0 for no samples (or all weights zero).
    """
    t, p = np.asarray(y_true).reshape(-1), np.asarray(y_pred).reshape(-1)
    if t.shape != p.shape:
        raise DeepfitError(f"accuracy: {t.shape[0]} true labels but {p.shape[0]} predictions")
    hits = (t == p).astype(np.float64)
    w = _weights(sample_weight, t.shape[0], "accuracy")
    total = float(t.shape[0] if w is None else w.sum())
    if total == 0.0:
        return 0.0
    return float(hits.sum() if w is None else (w * hits).sum()) / total


def r2_score(
    y_true,
    y_pred,
    sample_weight=None,
    multioutput: Multioutput = "uniform_average",
) -> float | np.ndarray:
    """Coefficient of determination, per output column then averaged (scikit-learn's).

    For each output column :math:`j`, with weights :math:`w_i` (1 by default) and the weighted
    mean :math:`\\bar y_j = \\sum_i w_i y_{ij} / \\sum_i w_i`:

    .. math::

        R^2_j = 1 - \\frac{\\sum_i w_i (y_{ij} - \\hat y_{ij})^2}
                         {\\sum_i w_i (y_{ij} - \\bar y_j)^2}

    A column whose target is constant (zero denominator) scores 1.0 when predicted exactly and
    0.0 otherwise (scikit-learn's ``force_finite=True``); fewer than two samples are scored the
    same way (scikit-learn returns NaN there). The columns are combined by ``multioutput``:

    - ``"uniform_average"`` (default, as ``DeepFitRegressor.score`` and scikit-learn):
      :math:`\\frac{1}{k} \\sum_j R^2_j`;
    - ``"variance_weighted"``: the :math:`R^2_j` weighted by their denominators;
    - ``"raw_values"``: the array of :math:`R^2_j`.

    Pooling every column into one sum (one numerator, one denominator) is *not* this score:
    it lets the widest-ranging output dominate.

    Parameters
    ----------
    y_true, y_pred : array of shape (n,) or (n, k)
    sample_weight : array of shape (n,), optional
    multioutput : {"uniform_average", "variance_weighted", "raw_values"}

    Returns
    -------
    float, or array of shape (k,) for ``"raw_values"``
    """
    t = np.asarray(y_true, dtype=np.float64)
    p = np.asarray(y_pred, dtype=np.float64)
    t = t.reshape(t.shape[0], -1) if t.ndim else t.reshape(1, 1)
    p = p.reshape(p.shape[0], -1) if p.ndim else p.reshape(1, 1)
    if t.shape != p.shape:
        raise DeepfitError(f"r2_score: targets of shape {t.shape} but predictions {p.shape}")
    if multioutput not in ("uniform_average", "variance_weighted", "raw_values"):
        raise DeepfitError(
            "r2_score: multioutput must be 'uniform_average', 'variance_weighted' or "
            f"'raw_values', got {multioutput!r}"
        )
    w = _weights(sample_weight, t.shape[0], "r2_score")
    ww = np.ones((t.shape[0], 1)) if w is None else w[:, None]
    total = float(ww.sum())
    mean = (ww * t).sum(axis=0) / total if total > 0 else np.zeros(t.shape[1])
    numerator = (ww * (t - p) ** 2).sum(axis=0)
    denominator = (ww * (t - mean) ** 2).sum(axis=0)
    if t.shape[0] < 2:
        denominator = np.zeros_like(denominator)
    scores = np.where(numerator == 0.0, 1.0, 0.0)
    ok = denominator != 0.0
    scores[ok] = 1.0 - numerator[ok] / denominator[ok]
    if multioutput == "raw_values":
        return scores
    if multioutput == "variance_weighted" and denominator.sum() != 0.0:
        return float((scores * denominator).sum() / denominator.sum())
    return float(scores.mean()) if scores.size else 0.0

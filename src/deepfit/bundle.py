"""A trained network with everything needed to use it on raw inputs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from deepfit.errors import DeepfitError, ShapeError
from deepfit.nn.losses import SigmoidBinaryCrossEntropy, get_loss


@dataclass
class ModelBundle:
    """The network plus the preprocessing and labels around it.

    ``predict`` and ``predict_proba`` take *raw* inputs: the standardizer fitted on the
    training split is applied first, and class indices are mapped back to the original
    labels.

    Attributes
    ----------
    model : Sequential
    loss : str
        The loss's registry name (``softmax_cross_entropy``, ``sigmoid_binary_cross_entropy``,
        ``mse``); its ``output`` turns logits into predictions.
    standardizer : dict or None
        The fitted standardizer's ``state_dict()`` (``mean`` and ``std`` arrays).
    class_names : list of str or None
        Original labels of class indices ``0..K-1`` (classification only).
    feature_names : list of str or None
    config : dict
        The resolved config that produced the model (for the record).
    image_shape : tuple or None
    version : str
        deepfit version that wrote the file (empty for a bundle made in memory).
    """

    model: Any
    loss: str = "softmax_cross_entropy"
    standardizer: dict[str, Any] | None = None
    class_names: list[str] | None = None
    feature_names: list[str] | None = None
    config: dict[str, Any] = field(default_factory=dict)
    image_shape: tuple[int, ...] | None = None
    version: str = ""

    def transform(self, X: Any) -> np.ndarray:
        """Raw inputs -> model inputs: ``(x - mean) / std`` with the training statistics."""
        X = np.asarray(X, dtype=np.float64)
        n_in = self.model.layers[0].n_in if hasattr(self.model.layers[0], "n_in") else None
        if X.ndim != 2 or (n_in is not None and X.shape[1] != n_in):
            raise ShapeError(f"inputs must have shape (rows, {n_in}) for this model, got {X.shape}")
        if self.standardizer is not None:
            X = (X - self.standardizer["mean"]) / self.standardizer["std"]
        return X

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities (rows sum to 1; binary models give ``[1 - p, p]``), or the
        predicted values for regression."""
        out = get_loss(self.loss).output(self.model.predict(self.transform(X)))
        if self.loss == "sigmoid_binary_cross_entropy" and out.shape[1] == 1:
            out = np.hstack([1 - out, out])
        return out

    def predict(self, X: Any) -> np.ndarray:
        """Class labels (the original names) for classification, values for regression."""
        if self.loss == "mse":
            return self.predict_proba(X)
        logits = self.model.predict(self.transform(X))
        if isinstance(get_loss(self.loss), SigmoidBinaryCrossEntropy):
            index = (logits[:, 0] > 0).astype(np.int64)
        else:
            index = logits.argmax(axis=1)
        if self.class_names is None:
            return index
        if len(self.class_names) <= int(index.max(initial=0)):
            raise DeepfitError(
                f"model predicts class {int(index.max())} but names only "
                f"{len(self.class_names)} classes"
            )
        return np.asarray(self.class_names, dtype=object)[index]

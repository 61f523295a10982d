"""Layer normalization over the feature axis, with learned scale and shift."""

from __future__ import annotations

from typing import Any

import numpy as np

from deepfit.backend import array_module, resolve_dtype
from deepfit.errors import DeepfitError, ShapeError
from deepfit.nn.layer import Layer


class LayerNorm(Layer):
    """Layer normalization: each row normalized over its ``n`` features, then scaled and
    shifted, as ``torch.nn.LayerNorm(n)``.

    For one row ``z`` (the last axis; any leading axes are independent rows)::

        mu = mean_j z_j        var = mean_j (z_j - mu)^2          (biased)
        z_hat = (z - mu) / sqrt(var + eps)        y = gamma * z_hat + beta

    Backward, with sums over the feature axis ``j`` for ``dz`` and over the rows for the
    parameters::

        dgamma = sum_rows dy * z_hat        dbeta = sum_rows dy        dz_hat = dy * gamma
        dz = (n * dz_hat - sum_j dz_hat_j - z_hat * sum_j (dz_hat_j * z_hat_j)) / (n * sigma)

    with ``sigma = sqrt(var + eps)``. Unlike batch norm the statistics are the row's own, so
    training and inference compute the same function, nothing is kept between batches, and a
    batch of one row is fine. ``gamma`` (PyTorch's ``weight``) starts at 1 and ``beta``
    (``bias``) at 0; neither is a weight matrix, so penalties leave them alone.

    References
    ----------
    Ba, Kiros and Hinton, "Layer normalization", arXiv:1607.06450, 2016.
    """

    def __init__(self, n_features: int, eps: float = 1e-5, *, dtype: Any = None) -> None:
        super().__init__()
        if isinstance(n_features, bool) or not isinstance(n_features, int) or n_features < 1:
            raise DeepfitError(
                f"LayerNorm n_features must be a positive integer, got {n_features!r}"
            )
        if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not eps > 0:
            raise DeepfitError(f"LayerNorm eps must be > 0, got {eps!r}")
        self.n_features, self.eps = n_features, float(eps)
        dt = resolve_dtype(dtype)
        self.params["gamma"] = np.ones(n_features, dtype=dt)
        self.params["beta"] = np.zeros(n_features, dtype=dt)
        self.grads["gamma"] = np.zeros(n_features, dtype=dt)
        self.grads["beta"] = np.zeros(n_features, dtype=dt)
        self._z_hat = None
        self._inv_std = None

    def forward(self, z, training: bool = False):
        gamma, beta = self.params["gamma"], self.params["beta"]
        xp = array_module(z, gamma)
        z = xp.asarray(z, dtype=gamma.dtype)
        if z.ndim < 1 or z.shape[-1] != self.n_features:
            raise ShapeError(
                f"{self!r} expects input of shape (..., {self.n_features}), got {tuple(z.shape)}"
            )
        mu = z.mean(axis=-1, keepdims=True)
        z_hat = z - mu
        var = (z_hat * z_hat).mean(axis=-1, keepdims=True)
        inv_std = 1.0 / xp.sqrt(var + self.eps)
        z_hat *= inv_std
        if training:
            self._z_hat, self._inv_std = z_hat, inv_std
        else:
            self._z_hat = self._inv_std = None
        return z_hat * gamma + beta

    def backward_params(self, dy) -> None:
        z_hat = self._z_hat
        if z_hat is None:
            raise self._missing_cache()
        rows = tuple(range(dy.ndim - 1))
        (dy * z_hat).sum(axis=rows, out=self.grads["gamma"])
        dy.sum(axis=rows, out=self.grads["beta"])

    def backward(self, dy):
        self.backward_params(dy)
        z_hat, inv_std = self._z_hat, self._inv_std
        dz_hat = dy * self.params["gamma"]
        # dz = inv_std * (dz_hat - mean_j dz_hat - z_hat * mean_j(dz_hat * z_hat))
        proj = (dz_hat * z_hat).mean(axis=-1, keepdims=True)
        dz = dz_hat - dz_hat.mean(axis=-1, keepdims=True)
        dz -= z_hat * proj
        dz *= inv_std
        return dz

    def _clear_cache(self) -> None:
        self._z_hat = self._inv_std = None

    def config(self) -> dict[str, Any]:
        return {"type": "LayerNorm", "n_features": self.n_features, "eps": self.eps}

    def __repr__(self) -> str:
        return f"LayerNorm({self.n_features}, eps={self.eps})"

"""Batch normalization for fully connected layers."""

from __future__ import annotations

from typing import Any

import numpy as np

from deepfit import kernels
from deepfit.backend import array_module, resolve_dtype
from deepfit.errors import DeepfitError, ShapeError
from deepfit.nn.layer import Layer
from deepfit.optim.ewa import ewa_update_


class BatchNorm(Layer):
    """Batch normalization over the batch axis, with learned scale and shift.

    Training, for a batch of ``m`` rows::

        mu = mean_i z_i        var = mean_i (z_i - mu)^2          (biased)
        z_hat = (z - mu) / sqrt(var + eps)        y = gamma * z_hat + beta

    Backward is the full gradient, which accounts for ``mu`` and ``var`` depending on ``z``::

        dgamma = sum_i dy_i * z_hat_i        dbeta = sum_i dy_i
        dz_hat = dy * gamma
        dz = (m * dz_hat - sum_i dz_hat_i - z_hat * sum_i (dz_hat_i * z_hat_i)) / (m * sigma)

    Running statistics for inference are exponentially weighted averages with
    ``beta = momentum`` (the notes' EWA)::

        running_mean = momentum * running_mean + (1 - momentum) * mu
        running_var  = momentum * running_var  + (1 - momentum) * var * m / (m - 1)

    The running variance uses the unbiased batch variance, as Ioffe and Szegedy's inference
    step and PyTorch do. Inference computes ``gamma * (z - running_mean) /
    sqrt(running_var + eps) + beta``. The statistics live in ``buffers``, never in ``params``.

    Convention: PyTorch's ``momentum`` is ``1 - momentum`` here (PyTorch 0.1 == ours 0.9).

    References
    ----------
    Ioffe and Szegedy, "Batch normalization: accelerating deep network training by reducing
    internal covariate shift", ICML 2015.
    """

    def __init__(self, n: int, momentum: float = 0.9, eps: float = 1e-5, *, dtype: Any = None):
        super().__init__()
        if not isinstance(n, int) or n < 1:
            raise DeepfitError(f"BatchNorm n must be a positive integer, got {n!r}")
        if not 0 <= momentum < 1:
            raise DeepfitError(f"BatchNorm momentum must be in [0, 1), got {momentum}")
        if not eps > 0:
            raise DeepfitError(f"BatchNorm eps must be > 0, got {eps}")
        self.n, self.momentum, self.eps = n, float(momentum), float(eps)
        dt = resolve_dtype(dtype)
        self.params["gamma"] = np.ones(n, dtype=dt)
        self.params["beta"] = np.zeros(n, dtype=dt)
        self.grads["gamma"] = np.zeros(n, dtype=dt)
        self.grads["beta"] = np.zeros(n, dtype=dt)
        self.buffers["running_mean"] = np.zeros(n, dtype=dt)
        self.buffers["running_var"] = np.ones(n, dtype=dt)
        self._z_hat = None
        self._inv_std = None

    def forward(self, z, training: bool = False):
        gamma, beta = self.params["gamma"], self.params["beta"]
        xp = array_module(z, gamma)
        if z.ndim != 2 or z.shape[1] != self.n:
            raise ShapeError(f"{self!r} expects input of shape (batch, {self.n}), got {z.shape}")
        if not training:
            scale = gamma / xp.sqrt(self.buffers["running_var"] + self.eps)
            return (z - self.buffers["running_mean"]) * scale + beta
        m = z.shape[0]
        if m < 2:
            raise ShapeError(
                f"{self!r} needs at least 2 rows per batch in training to estimate a variance, "
                f"got input of shape {z.shape}"
            )
        if kernels.usable(z, gamma, beta):
            n, dt = self.n, z.dtype
            y, z_hat = np.empty_like(z), np.empty_like(z)
            mu, var, inv_std = np.empty(n, dt), np.empty(n, dt), np.empty(n, dt)
            kernels.batchnorm_forward(z, gamma, beta, dt.type(self.eps), y, z_hat, mu, var, inv_std)
        else:
            mu = z.mean(axis=0)
            centered = z - mu
            var = (centered * centered).mean(axis=0)
            inv_std = 1.0 / xp.sqrt(var + self.eps)
            z_hat = centered
            z_hat *= inv_std
            y = z_hat * gamma + beta
        ewa_update_(self.buffers["running_mean"], mu, self.momentum)
        ewa_update_(self.buffers["running_var"], var * (m / (m - 1)), self.momentum)
        self._z_hat, self._inv_std = z_hat, inv_std
        return y

    def backward(self, dy):
        z_hat, inv_std = self._z_hat, self._inv_std
        if z_hat is None:
            raise self._missing_cache()
        m = dy.shape[0]
        dgamma, dbeta = self.grads["gamma"], self.grads["beta"]
        scale = self.params["gamma"] * inv_std / m
        if kernels.usable(dy, z_hat, dgamma, dbeta, scale) and dy.shape == z_hat.shape:
            dz = np.empty_like(dy)
            kernels.batchnorm_backward(dy, z_hat, scale, dgamma, dbeta, dz)
            return dz
        (dy * z_hat).sum(axis=0, out=dgamma)
        dy.sum(axis=0, out=dbeta)
        # dz = gamma * inv_std / m * (m * dy - sum(dy) - z_hat * sum(dy * z_hat))
        dz = dy * m
        dz -= dbeta
        dz -= z_hat * dgamma
        dz *= scale
        return dz

    def _clear_cache(self) -> None:
        self._z_hat = self._inv_std = None

    def config(self) -> dict[str, Any]:
        return {"type": "BatchNorm", "n": self.n, "momentum": self.momentum, "eps": self.eps}

    def __repr__(self) -> str:
        return f"BatchNorm({self.n}, momentum={self.momentum}, eps={self.eps})"

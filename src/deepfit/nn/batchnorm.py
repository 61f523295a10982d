"""Batch normalization for fully connected layers."""

from __future__ import annotations

from typing import Any

import numpy as np

from deepfit import kernels
from deepfit.backend import array_module, resolve_dtype
from deepfit.errors import DeepfitError, ShapeError
from deepfit.nn.dropout import keep_threshold
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

    def forward_relu(self, z, relu: Layer, dropout: Layer | None = None):
        """Training forward of this layer, then ``relu`` and ``dropout`` (a ``Dropout`` or
        ``None``), which follow it in a network; the same numbers and caches as the three
        ``forward(..., training=True)`` calls.

        With the JIT on, the activation and the dropout mask are applied in one pass, in
        place on the normalized batch (:func:`deepfit.kernels.relu_dropout_forward`), instead
        of two passes and two new arrays.
        """
        y = self.forward(z, training=True)
        drop = dropout is not None and dropout.mask is None and dropout.active
        if not kernels.usable(y) or (dropout is not None and dropout.mask is not None):
            y = relu.forward(y, training=True)
            return y if dropout is None else dropout.forward(y, training=True)
        flat = y.reshape(-1)
        positive = np.empty(y.shape, dtype=np.bool_)
        if drop:
            seed = np.uint64(dropout.rng.bit_generator.random_raw())  # one draw per mask
            mask = np.empty_like(y)
            scale = y.dtype.type(1.0 / dropout.keep_prob)
            threshold = np.uint64(keep_threshold(dropout.keep_prob))
            kernels.relu_dropout_forward(
                flat, positive.reshape(-1), seed, threshold, scale, mask.reshape(-1)
            )
            dropout._mask = mask
        else:
            kernels.relu_forward(flat, flat, positive.reshape(-1))
            if dropout is not None:
                dropout._mask = 1  # keep_prob 1: the identity, as Dropout.forward
        relu._positive = positive
        return y

    def backward_relu(self, dy, relu: Layer, dropout: Layer | None = None):
        """``backward`` of ``dropout`` (or ``None``), ``relu`` and this layer, in that order,
        from their caches; with the JIT on, the two masks are applied in one pass. The same
        numbers as the three calls."""
        positive = relu._positive
        mask = None if dropout is None else dropout._mask
        if (
            positive is not None
            and self._z_hat is not None
            and (dropout is None or mask is not None)
            and kernels.usable(dy)
            and dy.shape == positive.shape == self._z_hat.shape
            and (
                mask is None
                or isinstance(mask, int)
                or (kernels.usable(dy, mask) and mask.shape == dy.shape)
            )
        ):
            dz = np.empty_like(dy)
            if mask is None or isinstance(mask, int):
                kernels.mask_multiply(dy.reshape(-1), positive.reshape(-1), dz.reshape(-1))
            else:
                kernels.dropout_relu_backward(
                    dy.reshape(-1), mask.reshape(-1), positive.reshape(-1), dz.reshape(-1)
                )
            return self.backward(dz)
        if dropout is not None:
            dy = dropout.backward(dy)
        return self.backward(relu.backward(dy))

    def _clear_cache(self) -> None:
        self._z_hat = self._inv_std = None

    def config(self) -> dict[str, Any]:
        return {"type": "BatchNorm", "n": self.n, "momentum": self.momentum, "eps": self.eps}

    def __repr__(self) -> str:
        return f"BatchNorm({self.n}, momentum={self.momentum}, eps={self.eps})"

"""Element-wise activations: ReLU, LeakyReLU, Tanh, Sigmoid.

The output activations (softmax, sigmoid for binary labels) are fused into the losses in
:mod:`deepfit.nn.losses`, where they are numerically stable and their gradient is ``p - y``.
"""

from __future__ import annotations

import numpy as np

from deepfit import kernels
from deepfit.backend import array_module
from deepfit.errors import DeepfitError
from deepfit.nn.layer import Layer


class ReLU(Layer):
    """``a = max(z, 0)``; ``dz = da * [z > 0]`` (the subgradient at 0 is taken as 0).

    NaN passes through (so a diverging run still shows a non-finite loss). With the JIT on
    (:mod:`deepfit.kernels`) each direction is one fused pass over the batch.
    """

    def __init__(self) -> None:
        super().__init__()
        self._positive = None

    def forward(self, z, training: bool = False):
        if kernels.usable(z):
            a = np.empty_like(z)
            positive = np.empty(z.shape, dtype=np.bool_)
            kernels.relu_forward(z.reshape(-1), a.reshape(-1), positive.reshape(-1))
        else:
            xp = array_module(z)
            a = xp.maximum(z, 0)
            positive = (z > 0) if training else None
        self._positive = positive if training else None
        return a

    def forward_biased(self, z, b, training: bool = False):
        """``forward(z + b)`` for the bias ``b`` of the ``Dense`` layer in front, reusing
        ``z`` (which the caller gives up) for the output. With the JIT on, the bias and the
        activation are one pass over the batch; otherwise ``z += b`` then :meth:`forward`,
        the same numbers."""
        if kernels.usable(z, b) and z.ndim == 2 and b.shape == (z.shape[1],):
            positive = np.empty(z.shape, dtype=np.bool_)
            kernels.bias_relu_forward(z, b, positive)
            self._positive = positive if training else None
            return z
        z += b
        return self.forward(z, training)

    def backward(self, da):
        positive = self._positive
        if positive is None:
            raise self._missing_cache()
        if kernels.usable(da) and da.shape == positive.shape:
            dz = np.empty_like(da)
            kernels.mask_multiply(da.reshape(-1), positive.reshape(-1), dz.reshape(-1))
            return dz
        return da * positive

    def backward_bias(self, da, db):
        """:meth:`backward`, also filling ``db`` with the column sums of the result (the bias
        gradient of the ``Dense`` layer in front) in the same pass, with the JIT on
        (:func:`deepfit.kernels.relu_backward_bias`; NumPy's row order, the same numbers).
        Returns ``None``, having done nothing, when the kernel cannot take the arrays."""
        positive = self._positive
        if (
            positive is None
            or not kernels.usable(da, db)
            or da.ndim != 2
            or da.shape != positive.shape
            or da.shape[0] == 0
            or db.shape != (da.shape[1],)
            or da.shape[1] < 2  # one column: NumPy sums pairwise
        ):
            return None
        dz = np.empty_like(da)
        kernels.relu_backward_bias(da, positive, dz, db)
        return dz

    def _clear_cache(self) -> None:
        self._positive = None


class LeakyReLU(Layer):
    """``a = z`` for ``z > 0`` and ``alpha * z`` otherwise; ``dz = da * (1 or alpha)``."""

    def __init__(self, alpha: float = 0.01) -> None:
        super().__init__()
        if not 0 <= alpha < 1:
            raise DeepfitError(f"LeakyReLU alpha must be in [0, 1), got {alpha}")
        self.alpha = float(alpha)
        self._slope = None

    def forward(self, z, training: bool = False):
        xp = array_module(z)
        slope = xp.where(z > 0, z.dtype.type(1), z.dtype.type(self.alpha))
        self._slope = slope if training else None
        return z * slope

    def backward(self, da):
        if self._slope is None:
            raise self._missing_cache()
        return da * self._slope

    def _clear_cache(self) -> None:
        self._slope = None

    def config(self) -> dict:
        return {"type": "LeakyReLU", "alpha": self.alpha}

    def __repr__(self) -> str:
        return f"LeakyReLU(alpha={self.alpha})"


class Tanh(Layer):
    """``a = tanh(z)``; ``dz = da * (1 - a^2)``."""

    def __init__(self) -> None:
        super().__init__()
        self._a = None

    def forward(self, z, training: bool = False):
        a = array_module(z).tanh(z)
        self._a = a if training else None
        return a

    def backward(self, da):
        a = self._a
        if a is None:
            raise self._missing_cache()
        return da * (1 - a * a)

    def _clear_cache(self) -> None:
        self._a = None


def sigmoid(z):
    """Logistic function ``1 / (1 + exp(-z))``, computed from ``e = exp(-|z|)``::

        sigmoid(z) = 1 / (1 + e)   for z >= 0        sigmoid(z) = e / (1 + e)   for z < 0

    ``e`` lies in (0, 1], so nothing overflows, and the far negative tail keeps its relative
    accuracy (``sigmoid(-40)`` is 4.2e-18, not 0) in float32 as in float64.
    """
    xp = array_module(z)
    e = xp.exp(-xp.abs(z))
    s = xp.where(z >= 0, z.dtype.type(1), e)
    s /= 1 + e
    return s


class Sigmoid(Layer):
    """``a = sigmoid(z)``; ``dz = da * a * (1 - a)``."""

    def __init__(self) -> None:
        super().__init__()
        self._a = None

    def forward(self, z, training: bool = False):
        a = sigmoid(z)
        self._a = a if training else None
        return a

    def backward(self, da):
        a = self._a
        if a is None:
            raise self._missing_cache()
        return da * a * (1 - a)

    def _clear_cache(self) -> None:
        self._a = None


ACTIVATIONS: dict[str, type[Layer]] = {
    "relu": ReLU,
    "leaky_relu": LeakyReLU,
    "tanh": Tanh,
    "sigmoid": Sigmoid,
}


def get_activation(name: str) -> Layer:
    """Return a new activation layer called ``name`` (relu, leaky_relu, tanh, sigmoid)."""
    try:
        return ACTIVATIONS[name]()
    except KeyError:
        raise DeepfitError(
            f"unknown activation {name!r}; choose one of {', '.join(ACTIVATIONS)}"
        ) from None

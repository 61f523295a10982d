"""Fully connected (affine) layer."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from deepfit import kernels
from deepfit.backend import RNGLike, array_module, as_generator, resolve_dtype
from deepfit.errors import DeepfitError, ShapeError
from deepfit.nn.init import Initializer, get_initializer
from deepfit.nn.layer import Layer


class Dense(Layer):
    """Affine map ``z = x @ W + b`` with ``W`` of shape ``(n_in, n_out)``.

    Backward, for upstream gradient ``dz`` of shape ``(m, n_out)``::

        dW = x^T dz        db = sum_i dz_i        dx = dz W^T

    Orientation: PyTorch's ``nn.Linear.weight`` is ``W^T`` (shape ``(n_out, n_in)``).

    Parameters
    ----------
    n_in, n_out : int
        Input and output widths.
    init : str or callable
        ``"he"`` (default), ``"xavier"``, ``"glorot_uniform"``, ``"normal"`` (N(0, 0.01^2)),
        ``"zeros"``, or an initializer from :mod:`deepfit.nn.init`.
    bias : bool
        Whether to learn ``b`` (set False in front of batch norm, whose ``beta`` replaces it).
    rng : Generator, RandomState or int, optional
        Source of the initial weights (a legacy ``numpy.random.RandomState`` is used through
        :func:`deepfit.backend.as_generator`, sharing its state).
    dtype : "float32" (default) or "float64".
    """

    decay_keys: ClassVar[tuple[str, ...]] = ("W",)

    def __init__(
        self,
        n_in: int,
        n_out: int,
        init: str | Initializer = "he",
        *,
        bias: bool = True,
        rng: RNGLike = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        for name, value in (("n_in", n_in), ("n_out", n_out)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise DeepfitError(f"Dense {name} must be a positive integer, got {value!r}")
        self.n_in, self.n_out = n_in, n_out
        self.init = init
        dt = resolve_dtype(dtype)
        W = get_initializer(init)(n_in, n_out, as_generator(rng), dt)
        self.params["W"] = W
        self.grads["W"] = W * 0
        if bias:
            self.params["b"] = W[0] * 0
            self.grads["b"] = W[0] * 0
        self._x = None

    def forward(self, x, training: bool = False):
        z = self.forward_linear(x, training)
        b = self.params.get("b")
        if b is not None:
            z += b
        return z

    def forward_linear(self, x, training: bool = False):
        """``x @ W`` without the bias: :meth:`forward` for a caller that adds ``b`` itself,
        fused with what follows (:meth:`deepfit.nn.activations.ReLU.forward_biased`).
        Caches ``x`` for :meth:`backward` like :meth:`forward`."""
        W = self.params["W"]
        if type(x) is not np.ndarray or type(W) is not np.ndarray or x.dtype is not W.dtype:
            x = array_module(x, W).asarray(x, dtype=W.dtype)
        if x.ndim != 2 or x.shape[1] != self.n_in:
            raise ShapeError(
                f"{self!r} expects input of shape (batch, {self.n_in}), got {tuple(x.shape)}"
            )
        self._x = x if training else None
        return x @ W

    def backward(self, dz, *, bias_grad: bool = True):
        """Fill ``grads`` and return ``dx = dz W^T``; ``bias_grad=False`` leaves ``grads["b"]``
        to a caller that computed it already (:meth:`deepfit.nn.activations.ReLU.backward_bias`)."""
        x = self._x
        if x is None:
            raise self._missing_cache()
        self._param_grads(x, dz, bias_grad)
        return dz @ self.params["W"].T

    def backward_params(self, dz, *, bias_grad: bool = True) -> None:
        x = self._x
        if x is None:
            raise self._missing_cache()
        self._param_grads(x, dz, bias_grad)

    def _param_grads(self, x, dz, bias_grad: bool = True) -> None:
        """``dW = x^T dz`` and (``bias_grad``) ``db = sum_i dz_i`` into ``grads``."""
        grads = self.grads
        xp = np if type(dz) is np.ndarray else array_module(dz)
        xp.matmul(x.T, dz, out=grads["W"])
        db = grads.get("b") if bias_grad else None
        if db is not None:
            # the kernel adds the rows in NumPy's order (bit for bit), which for a single
            # column is pairwise instead
            if dz.ndim == 2 and dz.shape[0] and dz.shape[1] > 1 and kernels.usable(dz, db):
                kernels.column_sum(dz, db)
            else:
                dz.sum(axis=0, out=db)

    def _clear_cache(self) -> None:
        self._x = None

    def config(self) -> dict[str, Any]:
        return {"type": "Dense", "n_in": self.n_in, "n_out": self.n_out, "bias": "b" in self.params}

    def __repr__(self) -> str:
        extra = "" if "b" in self.params else ", bias=False"
        return f"Dense({self.n_in}, {self.n_out}{extra})"

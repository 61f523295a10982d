"""Packed networks: ``K`` networks of one architecture trained as one, over a leading member axis.

Every array of a packed layer carries the member axis first: a packed ``Dense`` holds ``W``
of shape ``(K, n_in, n_out)`` and turns the ``K`` small products of ``K`` networks into one
batched ``np.matmul``. Activations are the single-network layers themselves (they act entry
by entry, so a ``(K, m, n)`` array is just a bigger array); dropout, batch norm, the losses
and the penalties get a member axis here. Inputs are shared: the first layer takes the batch
``x`` of shape ``(m, n_in)`` once (no per-member copy of the data) and broadcasts it over the
members; from there on activations have shape ``(K, m, n)``.

The packed objective is the **sum** of the members' objectives, ``J = sum_k J_k``, so the
gradient with respect to member ``k``'s parameters is exactly ``dJ_k/dtheta_k``: member ``k``
trains as its own run would. Per-member hyperparameters (keep_prob, L2/L1 lambda here; the
learning rate, weight decay and betas in :mod:`deepfit.optim.packed`) are arrays of length
``K`` wherever the single network has a scalar.

Two ensembles are built from these pieces by :func:`packed_mlp`:

- ``kind="deep"``: ``K`` independent networks (members differ by their seeds and
  hyperparameters); member ``k`` equals ``mlp(..., rng=seed_k)`` trained alone.
- ``kind="batch"``: BatchEnsemble / TabM-mini: the hidden layers share one ``W`` and each
  member owns rank-1 scalings ``r_k``, ``s_k`` and a bias (:class:`BatchEnsembleDense`), with
  one output head per member.

References
----------
Lakshminarayanan, Pritzel and Blundell, "Simple and scalable predictive uncertainty
estimation using deep ensembles", NeurIPS 2017. Wen, Tran and Ba, "BatchEnsemble: an
alternative approach to efficient ensemble and lifelong learning", ICLR 2020. Gorishniy,
Kotelnikov and Babenko, "TabM: advancing tabular deep learning with parameter-efficient
ensembling", ICLR 2025.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from deepfit import kernels
from deepfit.backend import RNGLike, array_module, as_generator, resolve_dtype, to_numpy
from deepfit.errors import DeepfitError, ShapeError
from deepfit.nn.activations import ReLU, get_activation, sigmoid
from deepfit.nn.batchnorm import BatchNorm
from deepfit.nn.dense import Dense
from deepfit.nn.dropout import Dropout, keep_threshold
from deepfit.nn.embedding import EmbedColumns, scatter_add_rows
from deepfit.nn.init import Initializer, get_initializer
from deepfit.nn.layer import Layer
from deepfit.nn.losses import (
    Loss,
    MeanSquaredError,
    SigmoidBinaryCrossEntropy,
    SoftmaxCrossEntropy,
    _check_smoothing,
)
from deepfit.nn.penalties import Penalty
from deepfit.nn.sequential import LAYER_TYPES, Sequential, layer_from_config
from deepfit.optim.ewa import ewa_update_
from deepfit.optim.packed import member_values, member_view

ENSEMBLE_KINDS = ("deep", "batch")


def _generators(rng: RNGLike | Sequence[RNGLike], k: int, what: str) -> list[np.random.Generator]:
    """One Generator per member: a sequence gives them (one per member: seeds or Generators);
    a single seed or Generator is split into ``k`` independent children
    (``Generator.spawn``)."""
    if isinstance(rng, (list, tuple)):
        if len(rng) != k:
            raise DeepfitError(f"{what}: {len(rng)} seeds for {k} members")
        return [as_generator(r) for r in rng]
    return as_generator(rng).spawn(k)


def _check_members(k: Any, what: str) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise DeepfitError(f"{what} members must be a positive integer, got {k!r}")
    return int(k)


# -- layers -----------------------------------------------------------------------------------
class PackedDense(Layer):
    """``K`` affine maps at once: ``z_k = x_k @ W_k + b_k`` with ``W`` of shape
    ``(K, n_in, n_out)`` and ``b`` of shape ``(K, n_out)``.

    ``x`` is ``(m, n_in)`` (one batch shared by every member, broadcast by ``np.matmul``) or
    ``(K, m, n_in)``; ``z`` is ``(K, m, n_out)``. Backward, member by member, as
    :class:`~deepfit.nn.dense.Dense`::

        dW_k = x_k^T dz_k        db_k = sum_i dz_k,i        dx_k = dz_k W_k^T

    and for a shared input ``dx = sum_k dz_k W_k^T``. Member ``k``'s initial weights are
    those a ``Dense`` built from generator ``rngs[k]`` draws.
    """

    decay_keys: ClassVar[tuple[str, ...]] = ("W",)

    def __init__(
        self,
        members: int,
        n_in: int,
        n_out: int,
        init: str | Initializer = "he",
        *,
        bias: bool = True,
        rng: RNGLike | Sequence[RNGLike] = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        self.members = _check_members(members, "PackedDense")
        for name, value in (("n_in", n_in), ("n_out", n_out)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise DeepfitError(f"PackedDense {name} must be a positive integer, got {value!r}")
        self.n_in, self.n_out, self.init = n_in, n_out, init
        dt = resolve_dtype(dtype)
        initializer = get_initializer(init)
        gens = _generators(rng, self.members, "PackedDense")
        W = np.stack([initializer(n_in, n_out, g, dt) for g in gens])
        self.params["W"], self.grads["W"] = W, np.zeros_like(W)
        if bias:
            self.params["b"] = np.zeros((self.members, n_out), dtype=dt)
            self.grads["b"] = np.zeros((self.members, n_out), dtype=dt)
        self._x = None
        self._wt: np.ndarray | None = None  # scratch for W^T in backward

    def forward(self, x, training: bool = False):
        z = self.forward_linear(x, training)
        if "b" in self.params:
            z += self.params["b"][:, None, :]
        return z

    def forward_linear(self, x, training: bool = False):
        """``x @ W_k`` for every member, without the bias (for a caller that adds it fused
        with what follows); caches ``x`` for backward like :meth:`forward`."""
        W = self.params["W"]
        xp = np if type(x) is np.ndarray and type(W) is np.ndarray else array_module(x, W)
        x = xp.asarray(x, dtype=W.dtype)
        _check_input(self, x, self.n_in)
        self._x = x if training else None
        return xp.matmul(x, W)

    def _grads(self, dz, bias_done: bool = False):
        x = self._x
        if x is None:
            raise self._missing_cache()
        xp = array_module(dz)
        xt = x.T if x.ndim == 2 else x.transpose(0, 2, 1)
        xp.matmul(xt, dz, out=self.grads["W"])
        if "b" in self.grads and not bias_done:
            db = self.grads["b"]
            if _sequential_sum_ok(dz, db):
                from deepfit.kernels._packed import bias_grad

                bias_grad(dz, db)
            else:
                dz.sum(axis=1, out=db)
        return x

    def backward(self, dz):
        return self.backward_fused(dz, bias_done=False, input_grad=True)

    def backward_params(self, dz) -> None:
        self._grads(dz)

    def backward_fused(self, dz, *, bias_done: bool, input_grad: bool):
        """:meth:`backward` (or, without ``input_grad``, :meth:`backward_params`, returning
        ``None``) for a caller that has already filled ``grads["b"]`` when ``bias_done``."""
        x = self._grads(dz, bias_done)
        if not input_grad:
            return None
        W = self.params["W"]
        WT = W.transpose(0, 2, 1)
        if type(W) is np.ndarray:  # the stacked product runs faster on a C-ordered W^T
            buffer = self._wt
            if buffer is None or buffer.shape != WT.shape or buffer.dtype != W.dtype:
                buffer = self._wt = np.empty(WT.shape, dtype=W.dtype)
            np.copyto(buffer, WT)
            WT = buffer
        dx = array_module(dz).matmul(dz, WT)
        return dx.sum(axis=0) if x.ndim == 2 else dx

    def member(self, k: int) -> Dense:
        """Member ``k`` as a plain :class:`Dense` holding copies of its arrays."""
        layer = Dense(self.n_in, self.n_out, "zeros", bias="b" in self.params, dtype=self.dtype)
        for key, value in self.params.items():
            layer.params[key][...] = to_numpy(value[k])
        return layer

    def _clear_cache(self) -> None:
        self._x = None

    def config(self) -> dict[str, Any]:
        return {
            "type": "PackedDense",
            "members": self.members,
            "n_in": self.n_in,
            "n_out": self.n_out,
            "bias": "b" in self.params,
        }

    def __repr__(self) -> str:
        extra = "" if "b" in self.params else ", bias=False"
        return f"PackedDense({self.members}, {self.n_in}, {self.n_out}{extra})"


def _sequential_sum_ok(dz, db) -> bool:
    """Whether ``db = dz.sum(axis=1)`` of a ``(K, m, n)`` ``dz`` can be the JIT's row-by-row sum
    (:func:`deepfit.kernels._packed.bias_grad`): NumPy sums such an axis row by row from 0 too,
    except when ``n = 1``, where the axis is contiguous and NumPy sums it pairwise."""
    return dz.ndim == 3 and dz.shape[2] > 1 and kernels.usable(dz, db)


def _check_input(layer: Layer, x, width: int) -> None:
    k = layer.members
    if not (
        (x.ndim == 2 and x.shape[1] == width)
        or (x.ndim == 3 and x.shape[0] == k and x.shape[2] == width)
    ):
        raise ShapeError(
            f"{layer!r} expects input of shape (batch, {width}) or ({k}, batch, {width}), "
            f"got {tuple(x.shape)}"
        )


class BatchEnsembleDense(Layer):
    """BatchEnsemble's layer: one shared ``W`` and per-member rank-1 scalings ``r_k``, ``s_k``
    and biases ``b_k``::

        z_k = ((x_k * r_k) @ W) * s_k + b_k         i.e.  W_k = diag(r_k) W diag(s_k)

    with ``W`` ``(n_in, n_out)``, ``r`` ``(K, n_in)``, ``s`` and ``b`` ``(K, n_out)``. Backward,
    with ``u_k = x_k * r_k`` and ``h_k = u_k @ W``::

        dh_k = dz_k * s_k      ds_k = sum_i dz_k,i * h_k,i      db_k = sum_i dz_k,i
        dW = sum_k u_k^T dh_k      du_k = dh_k W^T      dr_k = sum_i du_k,i * x_k,i
        dx_k = du_k * r_k      (a shared input: dx = sum_k dx_k)

    ``W`` is drawn as a ``Dense``'s; ``s = 1``; ``r`` is 1, or random signs +-1 with
    ``random_signs=True`` (TabM's initialization of the first adapter, which is what makes
    the members differ from the start).

    References
    ----------
    Wen, Tran and Ba, ICLR 2020; Gorishniy et al., "TabM", ICLR 2025.
    """

    decay_keys: ClassVar[tuple[str, ...]] = ("W",)
    shared_keys: ClassVar[tuple[str, ...]] = ("W",)

    def __init__(
        self,
        members: int,
        n_in: int,
        n_out: int,
        init: str | Initializer = "he",
        *,
        bias: bool = True,
        random_signs: bool = False,
        rng: RNGLike = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        self.members = k = _check_members(members, "BatchEnsembleDense")
        for name, value in (("n_in", n_in), ("n_out", n_out)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise DeepfitError(
                    f"BatchEnsembleDense {name} must be a positive integer, got {value!r}"
                )
        self.n_in, self.n_out, self.init = n_in, n_out, init
        self.random_signs = bool(random_signs)
        dt = resolve_dtype(dtype)
        gen = as_generator(rng)
        W = get_initializer(init)(n_in, n_out, gen, dt)
        r = np.ones((k, n_in), dtype=dt)
        if random_signs:
            r[gen.random((k, n_in)) < 0.5] = -1
        arrays = {"W": W, "r": r, "s": np.ones((k, n_out), dtype=dt)}
        if bias:
            arrays["b"] = np.zeros((k, n_out), dtype=dt)
        for key, value in arrays.items():
            self.params[key], self.grads[key] = value, np.zeros_like(value)
        self._cache = None

    def forward(self, x, training: bool = False):
        p = self.params
        xp = array_module(x, p["W"])
        x = xp.asarray(x, dtype=p["W"].dtype)
        _check_input(self, x, self.n_in)
        u = x * p["r"][:, None, :]
        h = xp.matmul(u, p["W"])
        z = h * p["s"][:, None, :]
        if "b" in p:
            z += p["b"][:, None, :]
        self._cache = (x, u, h) if training else None
        return z

    def _grads(self, dz):
        if self._cache is None:
            raise self._missing_cache()
        x, u, h = self._cache
        xp = array_module(dz)
        p, g = self.params, self.grads
        k, m = self.members, dz.shape[1]
        dh = dz * p["s"][:, None, :]
        (dz * h).sum(axis=1, out=g["s"])
        if "b" in g:
            dz.sum(axis=1, out=g["b"])
        xp.matmul(u.reshape(k * m, self.n_in).T, dh.reshape(k * m, self.n_out), out=g["W"])
        du = xp.matmul(dh, p["W"].T)
        (du * x).sum(axis=1, out=g["r"])
        return x, du

    def backward(self, dz):
        x, du = self._grads(dz)
        dx = du * self.params["r"][:, None, :]
        return dx.sum(axis=0) if x.ndim == 2 else dx

    def backward_params(self, dz) -> None:
        self._grads(dz)

    def member(self, k: int) -> Dense:
        """Member ``k`` as a plain :class:`Dense` with ``W_k = diag(r_k) W diag(s_k)``."""
        p = {key: to_numpy(v) for key, v in self.params.items()}
        layer = Dense(self.n_in, self.n_out, "zeros", bias="b" in p, dtype=self.dtype)
        layer.params["W"][...] = p["r"][k][:, None] * p["W"] * p["s"][k][None, :]
        if "b" in p:
            layer.params["b"][...] = p["b"][k]
        return layer

    def _clear_cache(self) -> None:
        self._cache = None

    def config(self) -> dict[str, Any]:
        return {
            "type": "BatchEnsembleDense",
            "members": self.members,
            "n_in": self.n_in,
            "n_out": self.n_out,
            "bias": "b" in self.params,
            "random_signs": self.random_signs,
        }

    def __repr__(self) -> str:
        return f"BatchEnsembleDense({self.members}, {self.n_in}, {self.n_out})"


class PackedEmbedColumns(EmbedColumns):
    """:class:`~deepfit.nn.embedding.EmbedColumns` with one set of tables per member.

    Table ``E_j`` has shape ``(K, cardinality_j, dim_j)``; member ``k``'s tables are drawn as
    an ``EmbedColumns`` built from generator ``rngs[k]`` draws them. The raw batch ``x``
    ``(m, n_in)`` is shared; the output is ``(K, m, n_out)``::

        y_k = [x[:, passthrough], E_0,k[x[:, columns[0]]], ...]
        dE_j,k[c] = sum_{i : x_i,columns[j] = c} dy_k,i,block j        (scatter-add)
        dx[:, passthrough] = sum_k dy_k[:, :n_passthrough]        dx[:, columns] = 0
    """

    def __init__(
        self,
        members: int,
        n_in: int,
        columns: Sequence[int],
        cardinalities: Sequence[int],
        dims: Sequence[int],
        *,
        rng: RNGLike | Sequence[RNGLike] = None,
        dtype: Any = None,
    ) -> None:
        self.members = k = _check_members(members, "PackedEmbedColumns")
        gens = _generators(rng, k, "PackedEmbedColumns")
        singles = [
            EmbedColumns(n_in, columns, cardinalities, dims, rng=g, dtype=dtype) for g in gens
        ]
        EmbedColumns.__init__(self, n_in, columns, cardinalities, dims, rng=0, dtype=dtype)
        for key in self.params:
            stacked = np.stack([single.params[key] for single in singles])
            self.params[key], self.grads[key] = stacked, np.zeros_like(stacked)

    def forward(self, x, training: bool = False):
        E0 = self.params["E0"]
        xp = array_module(x, E0)
        x = xp.asarray(x)
        if x.ndim != 2 or x.shape[1] != self.n_in:
            raise ShapeError(
                f"{self!r} expects input of shape (batch, {self.n_in}), got {tuple(x.shape)}"
            )
        codes = self._lookup_codes(x)
        m, n_pass = x.shape[0], len(self.passthrough)
        y = xp.empty((self.members, m, self.n_out), dtype=E0.dtype)
        y[:, :, :n_pass] = x[:, self.passthrough]
        start = n_pass
        for j, c in enumerate(codes):
            stop = start + self.dims[j]
            y[:, :, start:stop] = self.params[f"E{j}"][:, c]
            start = stop
        self._codes = codes if training else None
        return y

    def backward_params(self, dy) -> None:
        codes = self._codes
        if codes is None:
            raise self._missing_cache()
        start = len(self.passthrough)
        for j, c in enumerate(codes):
            stop = start + self.dims[j]
            grad = self.grads[f"E{j}"]
            for k in range(self.members):
                scatter_add_rows(grad[k], c, dy[k, :, start:stop])
            start = stop

    def backward(self, dy):
        self.backward_params(dy)
        xp = array_module(dy)
        dx = xp.zeros((dy.shape[1], self.n_in), dtype=dy.dtype)
        dx[:, self.passthrough] = dy[:, :, : len(self.passthrough)].sum(axis=0)
        return dx

    def member(self, k: int) -> EmbedColumns:
        """Member ``k`` as a plain :class:`EmbedColumns` holding copies of its tables."""
        layer = EmbedColumns(
            self.n_in, self.columns, self.cardinalities, self.dims, rng=0, dtype=self.dtype
        )
        for key, value in self.params.items():
            layer.params[key][...] = to_numpy(value[k])
        return layer

    def config(self) -> dict[str, Any]:
        return {
            "type": "PackedEmbedColumns",
            "members": self.members,
            **{k: v for k, v in super().config().items() if k != "type"},
        }

    def __repr__(self) -> str:
        return f"Packed{super().__repr__()[:-1]}, members={self.members})"


def member_mask_bits(seeds: np.ndarray, n: int, xp=np):
    """:func:`~deepfit.nn.dropout.mask_bits` for several seeds at once: row ``j`` holds the
    ``n`` uint32 of ``seeds[j]``, bit for bit (the same SplitMix64 counter stream,
    ``mix(seed + (i//2 + 1) * golden)``, broadcast over the seeds)."""
    from deepfit.nn.dropout import _GOLDEN, _MIX1, _MIX2

    u64 = xp.uint64
    blocks = (n + 1) // 2
    h = xp.arange(1, blocks + 1, dtype=u64)[None, :] * u64(_GOLDEN)
    h = h + xp.asarray(seeds, dtype=u64)[:, None]
    h ^= h >> u64(30)
    h *= u64(_MIX1)
    h ^= h >> u64(27)
    h *= u64(_MIX2)
    h ^= h >> u64(31)
    bits = xp.empty((seeds.shape[0], 2 * blocks), dtype=xp.uint32)
    bits[:, 0::2] = h & u64(0xFFFFFFFF)
    bits[:, 1::2] = h >> u64(32)
    return bits[:, :n]


class PackedDropout(Dropout):
    """Inverted dropout with a keep probability per member, on ``(K, m, n)`` activations.

    Member ``k`` keeps each unit with probability ``keep_prob[k]`` and scales by
    ``1 / keep_prob[k]``; its mask is drawn exactly as :class:`~deepfit.nn.dropout.Dropout`
    draws one (one 64-bit seed from its own generator ``rngs[k]``, expanded by
    :func:`~deepfit.nn.dropout.mask_bits`), so member ``k`` drops the units its own run
    would. A member with ``keep_prob = 1`` draws nothing. Inference is the identity.
    """

    def __init__(
        self,
        members: int,
        keep_prob: float | Sequence[float] = 0.5,
        *,
        rng: RNGLike | Sequence[RNGLike] = None,
    ) -> None:
        Layer.__init__(self)
        self.members = _check_members(members, "PackedDropout")
        self.keep_prob = keep_prob
        self.rngs = _generators(rng, self.members, "PackedDropout")
        self._fixed_mask = None
        self._mask = None
        self._cached: tuple | None = None

    @property
    def keep_prob(self) -> np.ndarray:
        """The members' keep probabilities, shape ``(K,)``."""
        return self._keep

    @keep_prob.setter
    def keep_prob(self, value: float | Sequence[float]) -> None:
        self._keep = member_values(
            "PackedDropout keep_prob", value, self.members, low=0.0, high=1.0, low_open=True
        )

    @property
    def rng(self) -> np.random.Generator:
        """Member 0's generator (the checkpoint saves every member's: see ``rngs``)."""
        return self.rngs[0]

    @property
    def active(self) -> bool:
        return bool((self._keep < 1.0).any())

    def forward(self, a, training: bool = False, *, mask: Any = None):
        if mask is not None or self._fixed_mask is not None:
            raise DeepfitError("PackedDropout draws its masks; fixed masks are for Dropout")
        if not training or not self.active:
            self._mask = None if not training else 1
            return a
        if a.ndim != 3 or a.shape[0] != self.members:
            raise ShapeError(
                f"{self!r} expects activations of shape ({self.members}, batch, units), got "
                f"{tuple(a.shape)}"
            )
        xp = array_module(a)
        dropping, thresholds, scales = self._constants(a.dtype)
        seeds = self.draw_seeds(dropping)
        bits = member_mask_bits(seeds, a[0].size, xp)
        thresholds, scales = thresholds[dropping].astype(np.uint32), scales[dropping]
        keep = bits < xp.asarray(thresholds)[:, None]
        if dropping.size == self.members:
            mask = keep.reshape(a.shape).astype(a.dtype)
            mask *= xp.asarray(scales)[:, None, None]
        else:
            mask = xp.ones(a.shape, dtype=a.dtype)
            mask[dropping] = keep.reshape((dropping.size, *a.shape[1:])).astype(a.dtype)
            mask[dropping] *= xp.asarray(scales)[:, None, None]
        self._mask = mask
        return a * mask

    def _constants(self, dtype: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The dropping members' indices and, for every member, the threshold of
        :func:`~deepfit.nn.dropout.keep_threshold` (uint64; 0 for a member that keeps every
        unit) and the scale ``1 / keep_prob`` (rounded once to ``dtype``), cached."""
        key = (id(self._keep), np.dtype(dtype))
        hit = self._cached
        if hit is None or hit[0] != key or hit[1] is not self._keep:
            dropping = np.flatnonzero(self._keep < 1.0)
            thresholds = np.zeros(self.members, dtype=np.uint64)
            scales = np.ones(self.members, dtype=dtype)
            for k in dropping:
                thresholds[k] = keep_threshold(float(self._keep[k]))
                scales[k] = np.array(1.0 / float(self._keep[k])).astype(dtype)
            hit = self._cached = (key, self._keep, dropping, thresholds, scales)
        return hit[2], hit[3], hit[4]

    def draw_seeds(self, dropping: np.ndarray) -> np.ndarray:
        """One 64-bit seed for each member listed, from its own generator, as
        :class:`~deepfit.nn.dropout.Dropout` draws one per mask
        (``integers(0, 2**64, dtype=np.uint64)``, which over the full range returns the bit
        generator's next 64-bit output as it is: read here with ``random_raw``, the same
        number at a twentieth of the cost)."""
        rngs = self.rngs
        return np.array([rngs[k].bit_generator.random_raw() for k in dropping], dtype=np.uint64)

    def config(self) -> dict:
        return {
            "type": "PackedDropout",
            "members": self.members,
            # one number when the members agree (a model file's layers hold plain values)
            "keep_prob": float(self._keep[0])
            if (self._keep == self._keep[0]).all()
            else [float(v) for v in self._keep],
        }

    def __repr__(self) -> str:
        return f"PackedDropout({self.members}, keep_prob={[float(v) for v in self._keep]})"


class PackedBatchNorm(BatchNorm):
    """Batch normalization of each member on its own batch statistics, ``(K, m, n)`` inputs.

    Member ``k``, as :class:`~deepfit.nn.batchnorm.BatchNorm`::

        mu_k = mean_i z_k,i      var_k = mean_i (z_k,i - mu_k)^2
        z_hat = (z - mu_k) / sqrt(var_k + eps)      y = gamma_k * z_hat + beta_k
        dz = gamma_k / (m sigma_k) * (m dy - sum_i dy_i - z_hat * sum_i dy_i z_hat_i)

    with running statistics per member (the EWA with ``beta = momentum``, unbiased variance),
    ``gamma``, ``beta`` and the statistics of shape ``(K, n)``. A ``BatchNorm`` subclass, so
    what treats batch norm specially (the trainer's one-row batches, ``update_bn``) treats
    this one alike.
    """

    def __init__(
        self, members: int, n: int, momentum: float = 0.9, eps: float = 1e-5, *, dtype: Any = None
    ) -> None:
        BatchNorm.__init__(self, n, momentum, eps)  # the same checks of n, momentum and eps
        self.members = k = _check_members(members, "PackedBatchNorm")
        self.n, self.momentum, self.eps = n, float(momentum), float(eps)
        dt = resolve_dtype(dtype)
        self.params["gamma"], self.params["beta"] = np.ones((k, n), dt), np.zeros((k, n), dt)
        self.grads["gamma"], self.grads["beta"] = np.zeros((k, n), dt), np.zeros((k, n), dt)
        self.buffers["running_mean"] = np.zeros((k, n), dt)
        self.buffers["running_var"] = np.ones((k, n), dt)
        self._z_hat = self._inv_std = None

    def forward(self, z, training: bool = False):
        gamma, beta = self.params["gamma"][:, None, :], self.params["beta"][:, None, :]
        xp = array_module(z, gamma)
        if z.ndim != 3 or z.shape[0] != self.members or z.shape[2] != self.n:
            raise ShapeError(
                f"{self!r} expects input of shape ({self.members}, batch, {self.n}), got "
                f"{tuple(z.shape)}"
            )
        if not training:
            rv, rm = self.buffers["running_var"][:, None, :], self.buffers["running_mean"]
            scale = gamma / xp.sqrt(rv + self.eps)
            return (z - rm[:, None, :]) * scale + beta
        m = z.shape[1]
        if m < 2:
            raise ShapeError(f"{self!r} needs at least 2 rows per batch in training, got {m}")
        mu = z.mean(axis=1)
        centered = z - mu[:, None, :]
        var = (centered * centered).mean(axis=1)
        inv_std = 1.0 / xp.sqrt(var + self.eps)
        z_hat = centered
        z_hat *= inv_std[:, None, :]
        y = z_hat * gamma + beta
        ewa_update_(self.buffers["running_mean"], mu, self.momentum)
        ewa_update_(self.buffers["running_var"], var * (m / (m - 1)), self.momentum)
        self._z_hat, self._inv_std = z_hat, inv_std
        return y

    def backward(self, dy):
        z_hat, inv_std = self._z_hat, self._inv_std
        if z_hat is None:
            raise self._missing_cache()
        m = dy.shape[1]
        dgamma, dbeta = self.grads["gamma"], self.grads["beta"]
        scale = self.params["gamma"] * inv_std / m
        (dy * z_hat).sum(axis=1, out=dgamma)
        dy.sum(axis=1, out=dbeta)
        dz = dy * m
        dz -= dbeta[:, None, :]
        dz -= z_hat * dgamma[:, None, :]
        dz *= scale[:, None, :]
        return dz

    def member(self, k: int) -> BatchNorm:
        """Member ``k`` as a plain :class:`BatchNorm` holding copies of its arrays."""
        layer = BatchNorm(self.n, self.momentum, self.eps, dtype=self.dtype)
        for store, own in ((layer.params, self.params), (layer.buffers, self.buffers)):
            for key, value in own.items():
                store[key][...] = to_numpy(value[k])
        return layer

    def _clear_cache(self) -> None:
        self._z_hat = self._inv_std = None

    def config(self) -> dict[str, Any]:
        return {
            "type": "PackedBatchNorm",
            "members": self.members,
            "n": self.n,
            "momentum": self.momentum,
            "eps": self.eps,
        }

    def __repr__(self) -> str:
        return f"PackedBatchNorm({self.members}, {self.n}, momentum={self.momentum})"


# -- losses -----------------------------------------------------------------------------------
class PackedLoss(Loss):
    """A fused loss applied to each member's outputs, summed over the members.

    ``forward(logits, y, weight)`` takes logits of shape ``(K, m, c)`` and the batch's targets
    ``y`` (shared by the members, shaped as the single loss takes them) and returns
    ``L = sum_k L_k`` where ``L_k`` is the single loss's mean over member ``k``'s batch
    (example weights as there); ``values`` holds the ``L_k`` (float64, shape ``(K,)``). The
    gradient is ``dL/dz_k = dL_k/dz_k``, each member's own. The arithmetic is the single
    loss's, entry for entry (the last axis is the class axis), so a member's loss and gradient
    equal its own run's.

    ``PackedLoss(base)`` is an instance of the base loss's class too (``PackedLoss("mse")`` is a
    ``MeanSquaredError``), so code that asks which loss it has gets the right answer.

    Parameters
    ----------
    base : Loss or str
        The single-network loss: softmax cross-entropy, sigmoid binary cross-entropy or MSE.
    """

    def __new__(cls, base: Loss | str) -> PackedLoss:
        if cls is PackedLoss:
            from deepfit.nn.losses import get_loss

            kind = type(get_loss(base) if isinstance(base, str) else base)
            if kind not in _PACKED_LOSSES:
                raise DeepfitError(f"PackedLoss cannot pack {base!r}")
            cls = _PACKED_LOSSES[kind]
        return super().__new__(cls)

    def __getnewargs__(self) -> tuple[Loss]:
        return (self.base,)  # pickle calls __new__ with these (a Trainer, an estimator)

    def __init__(self, base: Loss | str) -> None:
        Loss.__init__(self)
        from deepfit.nn.losses import get_loss

        self.base = get_loss(base) if isinstance(base, str) else base
        self.task = self.base.task
        self.label_smoothing = _check_smoothing(
            "PackedLoss", getattr(self.base, "label_smoothing", 0.0)
        )
        self.values = np.zeros(0)

    def forward(self, logits, y, weight=None) -> float:
        from deepfit.nn.losses import _row_scale

        xp = array_module(logits)
        if logits.ndim == 2:  # one prediction (an ensemble's mean): the single loss
            value = self.base.forward(logits, y, weight)
            self._dlogits = self.base.backward()
            self.values = np.array([value])
            return value
        if logits.ndim != 3:
            raise ShapeError(
                f"{self!r}: logits must have shape (members, batch, outputs), "
                f"got {tuple(logits.shape)}"
            )
        k_members, m, c = logits.shape
        y = xp.asarray(y)
        if y.shape[0] != m:
            raise ShapeError(f"{self!r}: {m} rows of logits but {y.shape[0]} labels")
        softmax = isinstance(self.base, SoftmaxCrossEntropy)
        squared = isinstance(self.base, MeanSquaredError)
        per_row = 1 if softmax else c  # entries averaged per example
        scale, total = _row_scale(logits[0], weight, repr(self), per_row)
        if softmax:
            per_example, grad = self._softmax(logits, y)
        else:
            if y.ndim == 1:
                y = y.reshape(-1, 1)
            if y.shape != (m, c):
                raise ShapeError(f"{self!r}: y of shape {y.shape} does not match outputs {(m, c)}")
            per_example, grad = self._squared(logits, y) if squared else self._binary(logits, y)
        # a member's row of losses is summed as one contiguous vector, as the single loss sums
        per_example = xp.ascontiguousarray(per_example)
        n = m * per_row
        if weight is None:
            if squared:
                grad *= 2.0 / max(n, 1)
            else:
                grad /= max(n, 1)
            sums = per_example.reshape(k_members, -1).sum(axis=1).astype(np.float64)
            values = sums / n if n else xp.zeros(k_members)
        else:
            if squared:
                grad *= 2.0
            grad *= scale
            if not softmax:
                per_example = per_example.mean(axis=2)
            if total == 0:
                values = xp.zeros(k_members)
            else:
                w = xp.asarray(weight).astype(np.float64)
                values = (w * per_example.astype(np.float64)).sum(axis=1) / total
        self._dlogits = grad
        self.values = to_numpy(xp.asarray(values, dtype=np.float64))
        return float(self.values.sum())

    def _softmax(self, logits, y):
        xp = array_module(logits)
        _, m, k = logits.shape
        eps = self.label_smoothing
        if k == 2:
            # two classes: each reduction over the class axis is one binary operation (the
            # same numbers: max is exact, and a two-term sum is a0 + a1 however NumPy
            # reduces), without NumPy's slow reductions along an axis of length 2
            shifted = logits - xp.maximum(logits[:, :, :1], logits[:, :, 1:])
            e = xp.exp(shifted)
            logp = shifted - xp.log(e[:, :, :1] + e[:, :, 1:])
        else:
            shifted = logits - logits.max(axis=2, keepdims=True)
            logp = shifted - xp.log(xp.exp(shifted).sum(axis=2, keepdims=True))
        grad = xp.exp(logp)
        if y.ndim == 1:
            if y.dtype.kind not in "iu":
                if y.dtype.kind == "f" and bool(xp.all(y == xp.round(y))):
                    y = y.astype(np.int64)
                else:
                    raise DeepfitError(f"{self!r}: labels must be class indices, got {y.dtype}")
            if m and (int(y.min()) < 0 or int(y.max()) >= k):
                bad = int(y.min()) if int(y.min()) < 0 else int(y.max())
                raise DeepfitError(f"{self!r}: label {bad} is outside the {k} classes")
            rows = xp.arange(m)
            per_example = -logp[:, rows, y]
            if eps:
                per_example = (1.0 - eps) * per_example - (eps / k) * logp.sum(axis=2)
                grad -= eps / k
            grad[:, rows, y] -= 1.0 - eps
        elif y.shape == (m, k):
            target = y.astype(logits.dtype)
            if eps:
                target = (1.0 - eps) * target + eps / k
            per_example = -(target * logp).sum(axis=2)
            grad *= target.sum(axis=1, keepdims=True)
            grad -= target
        else:
            raise ShapeError(f"{self!r}: y must have shape ({m},) or ({m}, {k}), got {y.shape}")
        return per_example, grad

    def _binary(self, logits, y):
        xp = array_module(logits)
        if y.size and bool(xp.any((y < 0) | (y > 1))):
            raise DeepfitError(f"{self!r}: labels must lie in [0, 1]")
        y = y.astype(logits.dtype)
        if self.label_smoothing:
            y = y * (1.0 - self.label_smoothing) + self.label_smoothing / 2
        per_entry = xp.maximum(logits, 0) - logits * y + xp.log1p(xp.exp(-xp.abs(logits)))
        grad = sigmoid(logits)
        grad -= y
        return per_entry, grad

    def _squared(self, logits, y):
        diff = logits - y.astype(logits.dtype)
        return diff * diff, diff

    def output(self, logits):
        """Each member's predictions (probabilities or values), shape ``(K, m, c)``; for
        logits ``(m, c)`` of one prediction, the single loss's output."""
        if logits.ndim == 2:
            return self.base.output(logits)
        if isinstance(self.base, SoftmaxCrossEntropy):
            xp = array_module(logits)
            e = xp.exp(logits - logits.max(axis=-1, keepdims=True))
            e /= e.sum(axis=-1, keepdims=True)
            return e
        return self.base.output(logits)

    def config(self) -> dict[str, Any]:
        return self.base.config()

    def __repr__(self) -> str:
        return f"PackedLoss({self.base!r})"


class PackedSoftmaxCrossEntropy(PackedLoss, SoftmaxCrossEntropy):
    """:class:`PackedLoss` of :class:`~deepfit.nn.losses.SoftmaxCrossEntropy`."""


class PackedSigmoidBinaryCrossEntropy(PackedLoss, SigmoidBinaryCrossEntropy):
    """:class:`PackedLoss` of :class:`~deepfit.nn.losses.SigmoidBinaryCrossEntropy`."""


class PackedMeanSquaredError(PackedLoss, MeanSquaredError):
    """:class:`PackedLoss` of :class:`~deepfit.nn.losses.MeanSquaredError`."""


_PACKED_LOSSES: dict[type, type[PackedLoss]] = {
    SoftmaxCrossEntropy: PackedSoftmaxCrossEntropy,
    SigmoidBinaryCrossEntropy: PackedSigmoidBinaryCrossEntropy,
    MeanSquaredError: PackedMeanSquaredError,
}


# -- penalties --------------------------------------------------------------------------------
class PackedPenalty(Penalty):
    """L2 or L1 with one lambda per member, on packed weights ``W`` of shape ``(K, ., .)``::

        L2:  J_k += lambda_k/(2m) ||W_k||^2      dW_k += (lambda_k/m) W_k
        L1:  J_k += lambda_k/m ||W_k||_1         dW_k += (lambda_k/m) sign(W_k)

    A weight shared by the members (BatchEnsemble's ``W``, 2-D) takes one lambda: the
    members' lambdas must then be equal. ``value`` returns ``sum_k J_k``; ``values`` each
    ``J_k``.
    """

    def __init__(self, kind: str, lam: float | Sequence[float], members: int) -> None:
        if kind not in ("l2", "l1"):
            raise DeepfitError(f"PackedPenalty kind must be 'l2' or 'l1', got {kind!r}")
        self.kind = kind
        self.members = _check_members(members, "PackedPenalty")
        self.lams = member_values(f"packed {kind} lambda", lam, self.members, low=0.0)
        self.lam = float(self.lams.max())
        self._scale_cache: tuple | None = None

    def _shared_lam(self) -> float:
        if not np.all(self.lams == self.lams[0]):
            raise DeepfitError(
                f"{self.kind} differs between members but the ensemble shares its weights; "
                f"give one value"
            )
        return float(self.lams[0])

    def values(self, weights, m: int) -> np.ndarray:
        out = np.zeros(self.members)
        for W in weights:
            xp = array_module(W)
            if self.kind == "l2":
                norms = (
                    (W * W).reshape(W.shape[0], -1).sum(axis=1) if W.ndim == 3 else (W * W).sum()
                )
                factor = 1.0 / (2 * m)
            else:
                norms = abs(W).reshape(W.shape[0], -1).sum(axis=1) if W.ndim == 3 else abs(W).sum()
                factor = 1.0 / m
            if W.ndim == 3:
                out += self.lams * factor * to_numpy(xp.asarray(norms)).astype(np.float64)
            else:
                # a shared weight's penalty counts once, split evenly over the members
                out += self._shared_lam() * factor * float(norms) / self.members
        return out

    def value(self, weights, m):
        return float(self.values(list(weights), m).sum())

    def add_grad(self, weights, grads, m):
        for W, dW in zip(weights, grads, strict=True):
            if W.ndim == 3 and self.kind == "l2" and kernels.usable(W, dW):
                from deepfit.kernels._packed import add_scaled

                k = W.shape[0]
                add_scaled(dW.reshape(k, -1), W.reshape(k, -1), self._scale(m, W).reshape(k))
                continue
            xp = array_module(W)
            term = W if self.kind == "l2" else xp.sign(W)
            if W.ndim == 3:
                dW += self._scale(m, W) * term
            else:
                dW += (self._shared_lam() / m) * term

    def _scale(self, m: int, like: Any) -> Any:
        """``lambda_k / m`` shaped ``(K, 1, 1)`` in ``like``'s dtype, cached (a batch size
        and dtype at a time: every step of an epoch but the last uses the same)."""
        key = (m, like.ndim, like.dtype, type(like), id(self.lams))
        hit = self._scale_cache
        if hit is None or hit[0] != key or hit[1] is not self.lams:
            hit = self._scale_cache = (key, self.lams, member_view(self.lams / m, like))
        return hit[2]

    def __repr__(self) -> str:
        return f"PackedPenalty({self.kind!r}, {[float(v) for v in self.lams]})"


def packed_penalties(l2: Any = 0.0, l1: Any = 0.0, members: int = 1) -> list[PackedPenalty]:
    """The packed penalties asked for, skipping those whose lambdas are all 0."""
    found = [PackedPenalty("l2", l2, members), PackedPenalty("l1", l1, members)]
    return [p for p in found if p.lams.any()]


class EnsembleMean(Layer):
    """The ensemble's prediction from its members' logits: the mean of their probabilities
    (classification) or values (regression), returned as logits of the single loss.

    Inference, for member logits ``z`` of shape ``(K, m, c)``::

        softmax:   out = log((1/K) sum_k softmax(z_k))
                       = logsumexp_k(log_softmax(z_k)) - log K
        sigmoid:   out = log p - log(1 - p),  p = (1/K) sum_k sigmoid(z_k), with
                   log p = logsumexp_k(-softplus(-z_k)) - log K,
                   log(1 - p) = logsumexp_k(-softplus(z_k)) - log K
        identity:  out = (1/K) sum_k z_k

    so that the single loss's ``output`` (softmax, sigmoid, identity) of ``out`` is exactly the
    mean prediction, and every consumer of a single network's logits (evaluation, accuracy,
    the model file, ``predict``) sees the ensemble as one network. In training the layer is
    the identity (``(K, m, c)`` passes through, and so does its gradient): each member learns
    from its own loss (:class:`PackedLoss`), as in a deep ensemble.
    """

    OUTPUTS = ("softmax", "sigmoid", "identity")

    def __init__(self, output: str = "softmax") -> None:
        super().__init__()
        if output not in self.OUTPUTS:
            raise DeepfitError(
                f"EnsembleMean output must be one of {', '.join(self.OUTPUTS)}, got {output!r}"
            )
        self.output = output
        self._seen = False

    def forward(self, z, training: bool = False):
        if training:
            self._seen = True
            return z
        if z.ndim != 3:
            raise ShapeError(f"{self!r} expects member outputs (K, m, c), got {tuple(z.shape)}")
        return combine_members(z, self.output)

    def backward(self, dy):
        if not self._seen:
            raise self._missing_cache()
        return dy

    def _clear_cache(self) -> None:
        self._seen = False

    def config(self) -> dict[str, Any]:
        return {"type": "EnsembleMean", "output": self.output}

    def __repr__(self) -> str:
        return f"EnsembleMean({self.output!r})"


def _logsumexp0(a):
    xp = array_module(a)
    top = a.max(axis=0)
    return top + xp.log(xp.exp(a - top).sum(axis=0))


def combine_members(z, output: str):
    """The mean prediction of member logits ``z`` ``(K, m, c)`` as logits (see
    :class:`EnsembleMean`)."""
    xp = array_module(z)
    log_k = np.log(z.shape[0])
    if output == "identity":
        return z.mean(axis=0)
    if output == "softmax":
        shifted = z - z.max(axis=2, keepdims=True)
        logp = shifted - xp.log(xp.exp(shifted).sum(axis=2, keepdims=True))
        return _logsumexp0(logp) - log_k

    def log_sigmoid(v):  # -softplus(-v), stable
        return xp.minimum(v, 0) - xp.log1p(xp.exp(-xp.abs(v)))

    log_p = _logsumexp0(log_sigmoid(z)) - log_k
    log_q = _logsumexp0(log_sigmoid(-z)) - log_k
    return (log_p - log_q).astype(z.dtype)


# -- the model --------------------------------------------------------------------------------
PACKED_LAYER_TYPES: dict[str, type[Layer]] = {
    cls.__name__: cls
    for cls in (
        PackedDense,
        BatchEnsembleDense,
        PackedDropout,
        PackedBatchNorm,
        PackedEmbedColumns,
        EnsembleMean,
    )
}


def is_packed_config(config: Any) -> bool:
    """Whether an architecture (a list of layer configs) holds packed layers."""
    return isinstance(config, list) and any(
        isinstance(c, dict) and c.get("type") in PACKED_LAYER_TYPES for c in config
    )


class PackedSequential(Sequential):
    """A :class:`~deepfit.nn.Sequential` of packed layers: ``K`` networks as one.

    Outputs have shape ``(K, m, c)``. Everything of ``Sequential`` applies (qualified names,
    state dicts, ``astype``, ``to``); the arrays carry the member axis first, except the
    weights the members share (BatchEnsemble's ``W``, listed by :meth:`shared_names`).
    ``kind`` is ``"deep"`` or ``"batch"``.
    """

    def __init__(self, layers: Sequence[Layer], members: int, kind: str = "deep") -> None:
        super().__init__(layers)
        self.members = _check_members(members, "PackedSequential")
        if kind not in ENSEMBLE_KINDS:
            raise DeepfitError(
                f"ensemble kind must be one of {', '.join(ENSEMBLE_KINDS)}, got {kind!r}"
            )
        self.kind = kind
        for i, layer in enumerate(self.layers):
            k = getattr(layer, "members", None)
            if k is not None and k != self.members:
                raise DeepfitError(f"layer {i} has {k} members, the model {self.members}")

    # -- computation --------------------------------------------------------------------
    #: Whether a PackedDense -> ReLU (-> PackedDropout) run of layers is one fused kernel per
    #: direction when the JIT is on (off: the layers one by one; the same numbers). A class
    #: attribute so that ``bench/packed.py --ab`` can compare both in one process.
    fuse: ClassVar[bool] = True

    def forward(self, x: Any, training: bool = False) -> Any:
        """Every layer on ``x``, as :meth:`Sequential.forward`; with the JIT on, each
        ``PackedDense -> ReLU [-> PackedDropout]`` run is one batched product and one fused
        pass ``z = max(x W_k + b_k, 0) * mask_k`` (the same numbers and caches as the layers
        one by one)."""
        if not (self.fuse and kernels.enabled()):
            return super().forward(x, training)
        first = self._first_param()
        if first is not None:
            xp = np if type(first) is np.ndarray else array_module(first)
            x = xp.asarray(x, dtype=first.dtype)
        layers = self.layers
        i, n = 0, len(layers)
        while i < n:
            layer = layers[i]
            if (
                type(layer) is PackedDense
                and i + 1 < n
                and type(layers[i + 1]) is ReLU
                and "b" in layer.params
            ):
                drop = layers[i + 2] if i + 2 < n and type(layers[i + 2]) is PackedDropout else None
                z = layer.forward_linear(x, training)
                b = layer.params["b"]
                if kernels.usable(z, b):
                    x = _bias_relu_dropout(z, b, layers[i + 1], drop, training)
                    i += 2 if drop is None else 3
                else:
                    z += b[:, None, :]
                    x, i = z, i + 1
                continue
            x = layer.forward(x, training)
            i += 1
        return x

    def backward(self, dy: Any, *, input_grad: bool = True) -> Any:
        """Backpropagate ``dy`` as :meth:`Sequential.backward`; with the JIT on, each run
        fused in :meth:`forward` goes back in one fused pass (dropout mask, ReLU's gate and
        the bias gradient) before its product."""
        if not (self.fuse and kernels.enabled()):
            return super().backward(dy, input_grad=input_grad)
        layers = self.layers
        i = len(layers) - 1
        while i >= 0:
            layer = layers[i]
            start = -1
            if type(layer) is PackedDropout and i >= 2:
                if type(layers[i - 1]) is ReLU and type(layers[i - 2]) is PackedDense:
                    start = i - 2
            elif type(layer) is ReLU and i >= 1 and type(layers[i - 1]) is PackedDense:
                start = i - 1
            if start >= 0:
                dense = layers[start]
                drop = layer if layer is not layers[start + 1] else None
                dz = _relu_dropout_backward(dy, dense, layers[start + 1], drop)
                if dz is not None:
                    need = input_grad or start > 0
                    dy = dense.backward_fused(dz, bias_done=True, input_grad=need)
                    i = start - 1
                    continue
            if i == 0 and not input_grad:
                layer.backward_params(dy)
                return None
            dy = layer.backward(dy)
            i -= 1
        return dy if input_grad else None

    # -- members --------------------------------------------------------------------------
    def take(self, members: Sequence[int]) -> PackedSequential:
        """A deep ensemble of the ``members`` listed only (in that order): copies of their
        parameters and buffers, fresh gradients, their keep probabilities, and their dropout
        generators themselves (a mask drawn by the copy advances the member's own stream).
        Member ``j`` of the copy computes exactly what member ``members[j]`` computes here;
        :meth:`put` writes it back. A trainer uses this to stop spending work on members
        that have stopped. Ensembles whose members share weights (``kind="batch"``) cannot
        be split."""
        idx = np.asarray(members, dtype=np.int64)
        if self.kind != "deep" or self.shared_names():
            raise DeepfitError("only a deep ensemble without shared weights can take members")
        if idx.ndim != 1 or not idx.size or idx.min() < 0 or idx.max() >= self.members:
            raise DeepfitError(f"take needs member indices in 0..{self.members - 1}, got {members}")
        layers: list[Layer] = []
        for layer in self.layers:
            part = copy.copy(layer)
            if hasattr(layer, "members"):
                part.members = idx.size
                for store in ("params", "grads", "buffers"):
                    setattr(part, store, {k: v[idx] for k, v in getattr(layer, store).items()})
                if isinstance(layer, PackedDropout):
                    part._keep = layer._keep[idx]
                    part.rngs = [layer.rngs[k] for k in idx]
                    part._cached = None
            else:
                part.params, part.grads, part.buffers = {}, {}, {}
            part._clear_cache()
            layers.append(part)
        return PackedSequential(layers, idx.size, self.kind)

    def put(self, members: Sequence[int], part: PackedSequential) -> None:
        """Write the parameters and buffers of ``part`` (:meth:`take` of ``members``) back
        into the members' rows."""
        idx = np.asarray(members, dtype=np.int64)
        for layer, piece in zip(self.layers, part.layers, strict=True):
            if hasattr(layer, "members"):
                for store in ("params", "buffers"):
                    own = getattr(layer, store)
                    for key, value in getattr(piece, store).items():
                        own[key][idx] = value

    def shared_names(self) -> set[str]:
        """Qualified names of the parameters and buffers without a member axis: those a
        packed layer shares (BatchEnsemble's ``W``) and every array of a plain layer (a
        category embedding in front of the members)."""
        names = set()
        for i, layer in enumerate(self.layers):
            if hasattr(layer, "members"):
                names.update(f"{i}.{key}" for key in getattr(layer, "shared_keys", ()))
            else:
                names.update(f"{i}.{key}" for key in (*layer.params, *layer.buffers))
        return names

    def combine(self, logits: Any) -> Any:
        """The ensemble's logits ``(m, c)`` from member logits ``(K, m, c)``, as the model's
        :class:`EnsembleMean` forms them (the mean prediction of softmax without one)."""
        head = next((la for la in self.layers if isinstance(la, EnsembleMean)), None)
        return combine_members(logits, head.output if head is not None else "softmax")

    def predict(self, x: Any, batch_size: int = 4096) -> np.ndarray:
        """Logits in inference mode: every member's, shape ``(K, m, c)``, or the ensemble's,
        ``(m, c)``, when the model ends in :class:`EnsembleMean`."""
        x = np.asarray(x) if array_module(x) is np else x
        if x.ndim != 2:
            raise ShapeError(f"predict expects a 2-D array (rows, features), got shape {x.shape}")
        chunks = [
            to_numpy(self.forward(x[i : i + batch_size], training=False))
            for i in range(0, x.shape[0], batch_size)
        ]
        combined = isinstance(self.layers[-1], EnsembleMean)
        if not chunks:
            shape = (0,) if combined else (self.members, 0)
            return np.zeros((*shape, self.n_outputs or 0), dtype=self.dtype)
        return np.concatenate(chunks, axis=0 if combined else 1)

    def predict_members(self, x: Any, batch_size: int = 4096) -> np.ndarray:
        """Every member's logits in inference mode, shape ``(K, m, c)`` (before an
        :class:`EnsembleMean`)."""
        layers = self.layers
        if isinstance(layers[-1], EnsembleMean):
            self.layers = layers[:-1]
        try:
            return self.predict(x, batch_size)
        finally:
            self.layers = layers

    def member(self, k: int) -> Sequential:
        """Member ``k`` as a plain :class:`Sequential` (copies of its arrays; a BatchEnsemble
        member with its scalings folded into ``W``)."""
        if not 0 <= k < self.members:
            raise DeepfitError(f"member {k} is outside 0..{self.members - 1}")
        layers = []
        for layer in self.layers:
            if isinstance(layer, EnsembleMean):
                continue
            if hasattr(layer, "member"):
                layers.append(layer.member(k))
            elif isinstance(layer, PackedDropout):
                layers.append(Dropout(float(layer.keep_prob[k]), rng=layer.rngs[k]))
            else:
                layers.append(copy.deepcopy(layer))
        return Sequential(layers)

    def config(self) -> list[dict[str, Any]]:
        return [layer.config() for layer in self.layers]

    @classmethod
    def from_config(
        cls,
        config: Sequence[dict[str, Any]],
        *,
        dtype: Any = None,
        rng: RNGLike = None,
    ) -> PackedSequential:
        """Rebuild a packed model from :meth:`config` (fresh weights: load a state dict); a
        BatchEnsemble layer makes it of kind ``"batch"``."""
        gen = as_generator(rng)
        layers: list[Layer] = []
        members = None
        for i, c in enumerate(config):
            name = c.get("type") if isinstance(c, dict) else None
            if name in PACKED_LAYER_TYPES:
                kwargs = {k: v for k, v in c.items() if k != "type"}
                members = kwargs.get("members", members)
                if name in ("PackedDense", "BatchEnsembleDense", "PackedEmbedColumns"):
                    kwargs.update(dtype=dtype, rng=gen)
                elif name == "PackedBatchNorm":
                    kwargs["dtype"] = dtype
                elif name == "PackedDropout":
                    kwargs["rng"] = gen
                try:
                    layers.append(PACKED_LAYER_TYPES[name](**kwargs))
                except TypeError as exc:
                    raise DeepfitError(f"layer {i} ({name}): {exc}") from None
            elif name in LAYER_TYPES and name not in ("Dense", "BatchNorm", "Dropout"):
                layers.append(layer_from_config(c, i, dtype=dtype, rng=gen))
            else:
                raise DeepfitError(f"layer {i}: {name!r} is not a layer of a packed model")
        if members is None:
            raise DeepfitError("a packed model's config has no packed layer")
        kind = "batch" if any(isinstance(la, BatchEnsembleDense) for la in layers) else "deep"
        return cls(layers, members, kind)

    def __repr__(self) -> str:
        inner = ",\n".join(f"  ({i}) {layer!r}" for i, layer in enumerate(self.layers))
        return f"PackedSequential(members={self.members}, kind={self.kind!r},\n{inner}\n)"


_EMPTY_U64 = np.zeros(0, dtype=np.uint64)


def _bias_relu_dropout(z, b, relu: ReLU, drop: PackedDropout | None, training: bool):
    """``max(z + b_k, 0)``, then ``drop``'s inverted dropout in training, in place on ``z`` in
    one kernel (:func:`deepfit.kernels._packed.bias_relu_dropout_forward`); leaves the caches
    of the ReLU and the dropout layer as their own forward passes would."""
    from deepfit.kernels._packed import bias_relu_dropout_forward

    positive = np.empty(z.shape, dtype=np.bool_)
    dropping = training and drop is not None and drop.active
    if dropping:
        if z.shape[0] != drop.members:
            raise ShapeError(
                f"{drop!r} expects activations of shape ({drop.members}, batch, units), got "
                f"{tuple(z.shape)}"
            )
        members, thresholds, scales = drop._constants(z.dtype)
        seeds = np.zeros(drop.members, dtype=np.uint64)
        seeds[members] = drop.draw_seeds(members)
        mask = np.empty_like(z)
    else:
        seeds = thresholds = _EMPTY_U64
        scales, mask = np.zeros(0, dtype=z.dtype), np.zeros((0, 0, 0), dtype=z.dtype)
    bias_relu_dropout_forward(z, b, positive, seeds, thresholds, scales, mask)
    relu._positive = positive if training else None
    if drop is not None:
        drop._mask = (mask if dropping else 1) if training else None
    return z


def _relu_dropout_backward(dy, dense: PackedDense, relu: ReLU, drop: PackedDropout | None):
    """``dz`` of the fused run ``dense -> relu [-> drop]`` from its output gradient ``dy``, with
    ``dense``'s bias gradient filled, in one kernel
    (:func:`deepfit.kernels._packed.relu_dropout_backward`); ``None`` when the caches or
    arrays do not suit it (the caller then goes layer by layer)."""
    positive = relu._positive
    grad_b = dense.grads.get("b")
    if (
        grad_b is None
        or not _sequential_sum_ok(dy, grad_b)
        or type(positive) is not np.ndarray
        or positive.shape != dy.shape
        or not positive.flags.c_contiguous
        or not kernels.usable(dy, grad_b)
    ):
        return None
    mask = None if drop is None else drop._mask
    if mask is None or isinstance(mask, int):
        if drop is not None and mask is None:
            return None  # no training forward: the dropout layer raises as it should
        mask = np.zeros((0, 0, 0), dtype=dy.dtype)
    elif mask.shape != dy.shape or not kernels.usable(dy, mask):
        return None
    from deepfit.kernels._packed import relu_dropout_backward

    dz = np.empty_like(dy)
    relu_dropout_backward(dy, positive, mask, dz, grad_b)
    return dz


def packed_mlp(
    n_in: int,
    hidden: Sequence[int],
    n_out: int,
    members: int,
    activation: str = "relu",
    init: str | Initializer = "he",
    batchnorm: bool = False,
    keep_prob: float | Sequence[Any] = 1.0,
    rng: RNGLike | Sequence[RNGLike] = None,
    *,
    kind: str = "deep",
    dtype: Any = None,
    bn_momentum: float = 0.9,
    output: str | None = None,
    embed: Mapping[str, Sequence[int]] | None = None,
) -> PackedSequential:
    """``members`` fully connected networks of one architecture, packed.

    ``kind="deep"``: member ``k`` is, weight for weight and dropout mask for dropout mask,
    ``mlp(n_in, hidden, n_out, ..., keep_prob=keep_prob_k, rng=rng_k)``: ``rng`` is one seed
    or Generator per member, or one seed or Generator that is split into ``members``
    children (``Generator.spawn``). ``keep_prob`` is one value for every member and layer,
    one per hidden layer (a list of numbers), or one per hidden layer of per-member values
    (a list whose entries are lists of ``members`` numbers).

    ``kind="batch"``: BatchEnsemble / TabM-mini: each hidden layer is one
    :class:`BatchEnsembleDense` (shared ``W``; the first layer's ``r`` with random signs),
    then one output :class:`PackedDense` head per member; one generator draws everything.

    ``output`` (``"softmax"``, ``"sigmoid"``, ``"identity"``) ends the model in
    :class:`EnsembleMean`: in inference it predicts the mean of the members' probabilities or
    values as one network's logits; without it every member's logits come out.

    ``embed`` (as :func:`~deepfit.nn.sequential.mlp` takes it) puts category embeddings
    first: deep, a :class:`PackedEmbedColumns` (each member its own tables, drawn first from
    its generator, so member ``k`` is still ``mlp(..., embed=embed, rng=rng_k)``); batch, one
    :class:`~deepfit.nn.embedding.EmbedColumns` shared by the members (as TabM shares its
    feature embeddings), whose output the first layer takes as a shared input.
    """
    k = _check_members(members, "packed_mlp")
    if kind not in ENSEMBLE_KINDS:
        raise DeepfitError(
            f"ensemble kind must be one of {', '.join(ENSEMBLE_KINDS)}, got {kind!r}"
        )
    hidden = [int(h) for h in hidden]
    for i, width in enumerate(hidden):
        if width < 1:
            raise DeepfitError(f"packed_mlp hidden[{i}] must be a positive integer, got {width}")
    if isinstance(keep_prob, (int, float, np.floating)):
        keeps: list[Any] = [float(keep_prob)] * len(hidden)
    else:
        keeps = list(keep_prob)
        if len(keeps) != len(hidden):
            raise DeepfitError(
                f"packed_mlp keep_prob has {len(keeps)} values for {len(hidden)} hidden layers"
            )
    keeps = [
        member_values("packed_mlp keep_prob", kp, k, low=0.0, high=1.0, low_open=True)
        for kp in keeps
    ]
    dt = resolve_dtype(dtype)
    if kind == "deep":
        gens: Any = _generators(rng, k, "packed_mlp")
    else:
        if isinstance(rng, (list, tuple)):
            raise DeepfitError("packed_mlp kind='batch' takes one seed (its members share W)")
        gens = as_generator(rng)
    layers: list[Layer] = []
    width_in = n_in
    if embed is not None and kind == "batch":  # one embedding, shared as in TabM
        from deepfit.nn.sequential import _embed_columns

        layers.append(_embed_columns(n_in, embed, gens, dt))
        width_in = layers[0].n_out
    elif embed is not None:  # each member its own tables, drawn first as mlp draws them
        layers.append(PackedEmbedColumns(k, n_in, **_embed_spec(embed), rng=gens, dtype=dt))
        width_in = layers[0].n_out
    for i, (width, kp) in enumerate(zip(hidden, keeps, strict=True)):
        bias = not batchnorm
        if kind == "deep":
            layers.append(PackedDense(k, width_in, width, init, bias=bias, rng=gens, dtype=dt))
        else:
            layers.append(
                BatchEnsembleDense(
                    k, width_in, width, init, bias=bias, random_signs=i == 0, rng=gens, dtype=dt
                )
            )
        if batchnorm:
            layers.append(PackedBatchNorm(k, width, momentum=bn_momentum, dtype=dt))
        layers.append(get_activation(activation))
        if (kp < 1.0).any():
            layers.append(PackedDropout(k, kp, rng=gens if kind == "deep" else gens.spawn(k)))
        width_in = width
    layers.append(
        PackedDense(
            k, width_in, n_out, init, rng=gens if kind == "deep" else gens.spawn(k), dtype=dt
        )
    )
    if output is not None:
        layers.append(EnsembleMean(output))
    return PackedSequential(layers, k, kind)


def _embed_spec(embed: Any) -> dict[str, Any]:
    from deepfit.nn.sequential import EMBED_KEYS

    if not isinstance(embed, Mapping) or set(embed) != set(EMBED_KEYS):
        raise DeepfitError(f"mlp embed must be a mapping with keys {', '.join(EMBED_KEYS)}")
    return {key: list(embed[key]) for key in EMBED_KEYS}


def pack(models: Sequence[Sequential]) -> PackedSequential:
    """Stack ``K`` plain networks of one architecture into a deep ensemble (copies).

    Dense, BatchNorm and Dropout layers become their packed versions (dropout members keep
    their own generators); activations are shared as they are.
    """
    models = list(models)
    if not models:
        raise DeepfitError("pack needs at least one model")
    first = models[0].config()
    for i, model in enumerate(models[1:], 1):
        if [{**c, "keep_prob": None} if c["type"] == "Dropout" else c for c in model.config()] != [
            {**c, "keep_prob": None} if c["type"] == "Dropout" else c for c in first
        ]:
            raise DeepfitError(f"pack: model {i} has a different architecture than model 0")
    k = len(models)
    layers: list[Layer] = []
    for j, layer in enumerate(models[0].layers):
        column = [m.layers[j] for m in models]
        if isinstance(layer, Dense):
            packed: Layer = PackedDense(
                k,
                layer.n_in,
                layer.n_out,
                "zeros",
                bias="b" in layer.params,
                rng=0,
                dtype=layer.dtype,
            )
        elif isinstance(layer, BatchNorm):
            packed = PackedBatchNorm(k, layer.n, layer.momentum, layer.eps, dtype=layer.dtype)
        elif isinstance(layer, Dropout):
            packed = PackedDropout(k, [c.keep_prob for c in column], rng=[c.rng for c in column])
        elif type(layer).__name__ in ("ReLU", "LeakyReLU", "Tanh", "Sigmoid"):
            packed = layer_from_config(layer.config())
        else:
            raise DeepfitError(f"pack: layer {j} ({type(layer).__name__}) has no packed version")
        for store in ("params", "buffers"):
            for key, value in getattr(packed, store).items():
                value[...] = np.stack([to_numpy(getattr(c, store)[key]) for c in column])
        layers.append(packed)
    return PackedSequential(layers, k, "deep")


def ensemble_mlp(
    n_in: int,
    hidden: Sequence[int],
    n_out: int,
    members: int,
    *,
    kind: str = "deep",
    output: str = "softmax",
    activation: str = "relu",
    init: str | Initializer = "he",
    batchnorm: bool = False,
    keep_prob: float | Sequence[float] = 1.0,
    rng: RNGLike = None,
    dtype: Any = None,
    bn_momentum: float = 0.9,
    norm: str | None = None,
    residual: bool = False,
    embed: Any = None,
) -> PackedSequential:
    """What ``mlp(..., ensemble=members)`` builds: :func:`packed_mlp` ending in
    :class:`EnsembleMean` (``output``), from one seed (a deep ensemble's members get the
    ``spawn`` children of ``rng``). Layer norm and residual blocks have no packed version and
    are refused."""
    members = _check_members(members, "mlp ensemble")
    if norm == "batchnorm":
        batchnorm, norm = True, None
    for what, used in (
        ("norm='layernorm'", norm == "layernorm"),
        ("residual=True", residual),
    ):
        if used:
            raise DeepfitError(f"mlp ensemble={members} does not support {what}; use ensemble=1")
    if isinstance(rng, (list, tuple)):
        raise DeepfitError("mlp ensemble takes one seed or Generator; members get its children")
    gen = as_generator(rng)
    if output not in EnsembleMean.OUTPUTS:
        raise DeepfitError(
            f"mlp ensemble_output must be one of {', '.join(EnsembleMean.OUTPUTS)}, got {output!r}"
        )
    return packed_mlp(
        n_in,
        hidden,
        n_out,
        members,
        activation,
        init,
        batchnorm,
        keep_prob,
        gen,
        kind=kind,
        dtype=dtype,
        bn_momentum=bn_momentum,
        output=output,
        embed=embed,
    )

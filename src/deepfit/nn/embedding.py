"""Learned embeddings of category codes: :class:`Embedding` (a lookup table) and
:class:`EmbedColumns` (the first layer of a tabular network, embedding its code columns).

Initial scale, shared by both: every entry is drawn from ``N(0, 1/dim)``, so a row (one
category's vector) has ``E||e||^2 = 1``. A categorical feature then enters the next ``Dense``
layer with the same total variance as one standardized numeric column (variance 1), or as a
one-hot block (whose squared norm is 1), whatever its embedding width; PyTorch's
``N(0, 1)`` would weigh it ``dim`` times as much as a numeric column at initialization (the
tabular models of Gorishniy et al. 2021, ``rtdl``, draw ``U(-1/sqrt(dim), 1/sqrt(dim))`` for
the same reason). ``scale=1.0`` gives PyTorch's initialization.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from deepfit.backend import RNGLike, array_module, as_generator, normal, resolve_dtype
from deepfit.errors import DataError, DeepfitError, ShapeError
from deepfit.nn.layer import Layer


def _positive_int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise DeepfitError(f"{what} must be a positive integer, got {value!r}")
    return int(value)


def category_codes(values: Any, n_categories: int, where: str) -> Any:
    """Integer codes (int64) from ``values``, refused unless each is an integer in
    ``0..n_categories-1`` (floats holding whole numbers are accepted: a model's input matrix
    is float). ``where`` names the culprit in the error, e.g. ``"EmbedColumns column 3"``."""
    xp = array_module(values)
    values = xp.asarray(values)
    if values.dtype.kind in "iub":
        codes = values.astype(xp.int64)
    elif values.dtype.kind == "f":
        bad = ~xp.isfinite(values) | (values != xp.round(values))
        if bool(bad.any()):
            value = values.reshape(-1)[int(xp.argmax(bad.reshape(-1)))].item()
            raise DataError(f"{where}: category code {value!r} is not an integer")
        codes = values.astype(xp.int64)
    else:
        raise DataError(f"{where}: category codes must be numbers, got dtype {values.dtype}")
    bad = (codes < 0) | (codes >= n_categories)
    if bool(bad.any()):
        value = codes.reshape(-1)[int(xp.argmax(bad.reshape(-1)))].item()
        raise DataError(
            f"{where}: category code {value} is outside 0..{n_categories - 1} "
            f"({n_categories} categories)"
        )
    return codes


def scatter_add_rows(out: Any, codes: Any, rows: Any) -> None:
    """``out[codes[i]] += rows[i]`` for every ``i``, repeated codes summing (``out`` is
    zeroed first): the gradient of a table lookup."""
    out[...] = 0
    if array_module(out) is np:
        np.add.at(out, codes, rows)
    else:
        import cupyx

        cupyx.scatter_add(out, codes, rows)


def _embedding_table(
    n: int, dim: int, scale: float | None, rng: np.random.Generator, dtype: np.dtype
) -> np.ndarray:
    std = 1.0 / np.sqrt(dim) if scale is None else scale
    return normal(rng, (n, dim), dtype, std)


def _checked_scale(scale: Any, what: str) -> float | None:
    if scale is None:
        return None
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not scale > 0:
        raise DeepfitError(f"{what} scale must be a positive number or None, got {scale!r}")
    return float(scale)


class Embedding(Layer):
    """A lookup table: row ``i`` of ``W`` (shape ``(n_categories, dim)``) is category ``i``'s
    vector, as ``torch.nn.Embedding(n_categories, dim).weight``.

    Forward on integer indices of any shape ``S`` gives ``y = W[idx]`` of shape ``S + (dim,)``;
    backward accumulates (a scatter-add, repeated indices summing)::

        dW[c] = sum_{i : idx_i = c} dy_i

    and returns zeros for the input: indices are not differentiable. Indices may be
    integers or floats holding whole numbers; anything else, or an index outside
    ``0..n_categories-1``, is refused naming the value.

    Parameters
    ----------
    n_categories, dim : int
        Rows and width of the table.
    scale : float, optional
        Standard deviation of the initial entries; default ``1/sqrt(dim)`` (see the module
        docstring; ``1.0`` is PyTorch's ``N(0, 1)``).
    rng : Generator, RandomState or int, optional
        Source of the initial weights.
    dtype : "float32" (default) or "float64".
    """

    decay_keys: ClassVar[tuple[str, ...]] = ("W",)

    def __init__(
        self,
        n_categories: int,
        dim: int,
        *,
        scale: float | None = None,
        rng: RNGLike = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        self.n_categories = _positive_int(n_categories, "Embedding n_categories")
        self.dim = _positive_int(dim, "Embedding dim")
        self.scale = _checked_scale(scale, "Embedding")
        W = _embedding_table(
            self.n_categories, self.dim, self.scale, as_generator(rng), resolve_dtype(dtype)
        )
        self.params["W"] = W
        self.grads["W"] = np.zeros_like(W)
        self._idx = None

    def forward(self, idx, training: bool = False):
        W = self.params["W"]
        xp = array_module(idx, W)
        codes = category_codes(xp.asarray(idx), self.n_categories, repr(self))
        self._idx = codes if training else None
        return W[codes]

    def backward(self, dy):
        codes = self._idx
        if codes is None:
            raise self._missing_cache()
        scatter_add_rows(self.grads["W"], codes.reshape(-1), dy.reshape(-1, self.dim))
        return array_module(dy).zeros(codes.shape, dtype=dy.dtype)

    def backward_params(self, dy) -> None:
        codes = self._idx
        if codes is None:
            raise self._missing_cache()
        scatter_add_rows(self.grads["W"], codes.reshape(-1), dy.reshape(-1, self.dim))

    def _clear_cache(self) -> None:
        self._idx = None

    def config(self) -> dict[str, Any]:
        return {
            "type": "Embedding",
            "n_categories": self.n_categories,
            "dim": self.dim,
            "scale": self.scale,
        }

    def __repr__(self) -> str:
        return f"Embedding({self.n_categories}, {self.dim})"


class EmbedColumns(Layer):
    """First layer of a tabular network: replaces category-code columns by learned embeddings.

    Input ``x`` of shape ``(m, n_in)``; column ``columns[k]`` holds integer codes
    ``0..cardinalities[k]-1`` (stored as floats), embedded by table ``E_k`` of shape
    ``(cardinalities[k], dims[k])``; the other columns pass through. The output::

        y = [x[:, passthrough], E_0[x[:, columns[0]]], E_1[x[:, columns[1]]], ...]

    has ``n_out = n_in - len(columns) + sum(dims)`` columns: the pass-through columns in their
    original order, then the embeddings in the order of ``columns``. Backward::

        dE_k[c] = sum_{i : x_i,columns[k] = c} dy_i,block k        (scatter-add)
        dx[:, passthrough] = dy[:, :n_passthrough]        dx[:, columns] = 0

    (codes are not differentiable, so their gradient is zero).

    Code ``0`` is reserved for "unknown": a category not seen in training (what
    :class:`deepfit.data.preprocess.TablePreprocessor` writes for it). Its row of every table
    starts at zero, so an unseen category contributes nothing at first; it receives gradient
    only from rows that carry code 0, so when the training data has none it stays zero (and an
    unseen category at prediction falls back on the other columns), and when it has some it is
    trained like any other row. The other rows are drawn from ``N(0, 1/dims[k])`` (see the
    module docstring). The tables are weight matrices (``decay_keys``): the L2/L1 penalties act
    on them, shrinking a rare category towards the "unknown" vector. Decoupled weight decay's
    default filter (:func:`deepfit.optim.optimizers.decays_weight_matrices`, names ending in
    ``W``) leaves them alone, as the tabular recipes that exclude embeddings from weight decay
    do; pass a ``decay_filter`` to change that.

    Codes that are not whole numbers, or outside ``0..cardinalities[k]-1``, are refused with
    a :class:`~deepfit.errors.DataError` naming the column and the value.

    Parameters
    ----------
    n_in : int
        Width of the raw input (code columns included).
    columns : sequence of int
        Indices of the code columns, distinct, in ``0..n_in-1``.
    cardinalities : sequence of int
        Number of codes of each column, the reserved 0 included (``>= 2``).
    dims : sequence of int
        Embedding width of each column.
    rng : Generator, RandomState or int, optional
    dtype : "float32" (default) or "float64".

    Attributes
    ----------
    n_in, n_out : int
        Input and output widths (as :class:`~deepfit.nn.dense.Dense`).
    """

    def __init__(
        self,
        n_in: int,
        columns: Sequence[int],
        cardinalities: Sequence[int],
        dims: Sequence[int],
        *,
        rng: RNGLike = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        self.n_in = _positive_int(n_in, "EmbedColumns n_in")
        columns, cardinalities, dims = list(columns), list(cardinalities), list(dims)
        if not columns:
            raise DeepfitError("EmbedColumns needs at least one code column")
        if not len(columns) == len(cardinalities) == len(dims):
            raise DeepfitError(
                f"EmbedColumns got {len(columns)} columns, {len(cardinalities)} cardinalities "
                f"and {len(dims)} dims; give one of each per code column"
            )
        for k, c in enumerate(columns):
            if isinstance(c, bool) or not isinstance(c, (int, np.integer)) or not 0 <= c < n_in:
                raise DeepfitError(
                    f"EmbedColumns columns[{k}] = {c!r} is not a column index in 0..{n_in - 1}"
                )
        if len(set(columns)) != len(columns):
            dup = next(c for c in columns if columns.count(c) > 1)
            raise DeepfitError(f"EmbedColumns column {dup} is listed twice")
        for k, card in enumerate(cardinalities):
            if isinstance(card, bool) or not isinstance(card, (int, np.integer)) or card < 2:
                raise DeepfitError(
                    f"EmbedColumns cardinalities[{k}] must be an integer >= 2 (code 0 is "
                    f"reserved for 'unknown'), got {card!r}"
                )
        self.columns = [int(c) for c in columns]
        self.cardinalities = [int(c) for c in cardinalities]
        self.dims = [_positive_int(d, f"EmbedColumns dims[{k}]") for k, d in enumerate(dims)]
        code_set = set(self.columns)
        self.passthrough = [j for j in range(self.n_in) if j not in code_set]
        self.n_out = len(self.passthrough) + sum(self.dims)
        gen, dt = as_generator(rng), resolve_dtype(dtype)
        for k, (card, dim) in enumerate(zip(self.cardinalities, self.dims, strict=True)):
            E = _embedding_table(card, dim, None, gen, dt)
            E[0] = 0  # the reserved "unknown" code starts as the zero vector
            self.params[f"E{k}"] = E
            self.grads[f"E{k}"] = np.zeros_like(E)
        self._codes = None

    @property
    def decay_keys(self) -> tuple[str, ...]:  # type: ignore[override]
        return tuple(self.params)

    def _lookup_codes(self, x) -> list[Any]:
        return [
            category_codes(x[:, col], card, f"EmbedColumns column {col}")
            for col, card in zip(self.columns, self.cardinalities, strict=True)
        ]

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
        y = xp.empty((m, self.n_out), dtype=E0.dtype)
        y[:, :n_pass] = x[:, self.passthrough]
        start = n_pass
        for k, c in enumerate(codes):
            stop = start + self.dims[k]
            y[:, start:stop] = self.params[f"E{k}"][c]
            start = stop
        self._codes = codes if training else None
        return y

    def backward_params(self, dy) -> None:
        codes = self._codes
        if codes is None:
            raise self._missing_cache()
        start = len(self.passthrough)
        for k, c in enumerate(codes):
            stop = start + self.dims[k]
            scatter_add_rows(self.grads[f"E{k}"], c, dy[:, start:stop])
            start = stop

    def backward(self, dy):
        self.backward_params(dy)
        xp = array_module(dy)
        dx = xp.zeros((dy.shape[0], self.n_in), dtype=dy.dtype)
        dx[:, self.passthrough] = dy[:, : len(self.passthrough)]
        return dx

    def _clear_cache(self) -> None:
        self._codes = None

    def config(self) -> dict[str, Any]:
        return {
            "type": "EmbedColumns",
            "n_in": self.n_in,
            "columns": list(self.columns),
            "cardinalities": list(self.cardinalities),
            "dims": list(self.dims),
        }

    def __repr__(self) -> str:
        return (
            f"EmbedColumns({self.n_in}, columns={self.columns}, "
            f"cardinalities={self.cardinalities}, dims={self.dims})"
        )

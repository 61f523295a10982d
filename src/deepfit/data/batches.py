"""Mini-batches: shuffled index arrays, one new permutation per epoch.

Batch sizes that are powers of two (32, 64, 128, 256, 512) are the usual choice: they fit
memory and vectorized hardware well. Any size >= 1 works; the last, smaller batch of an
epoch is kept, so every example is seen exactly once per epoch.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from deepfit.backend import RNGLike, as_generator
from deepfit.errors import DataError


def _check_batch_size(batch_size: int) -> int:
    if (
        isinstance(batch_size, bool)
        or not isinstance(batch_size, (int, np.integer))
        or batch_size < 1
    ):
        raise DataError(
            f"batch_size must be an integer >= 1, got {batch_size!r} "
            "(powers of two such as 64 or 256 are the usual choice)"
        )
    return int(batch_size)


def check_sample_weight(sample_weight: Any, n: int, name: str = "sample_weight") -> np.ndarray:
    """``sample_weight`` as a float64 array of ``n`` finite numbers >= 0 (one per row), or a
    :class:`~deepfit.errors.DataError` naming the first bad row."""
    w = np.asarray(sample_weight)
    if w.ndim != 1 or w.shape[0] != n:
        raise DataError(f"{name} must have one value per row ({n}), got shape {w.shape}")
    if w.dtype.kind not in "biuf":
        raise DataError(f"{name} must be numeric, got dtype {w.dtype}")
    w = w.astype(np.float64)
    bad = ~np.isfinite(w) | (w < 0)
    if bad.any():
        row = int(np.argmax(bad))
        raise DataError(f"{name} row {row} is {w[row]}; weights must be finite and >= 0")
    return w


def minibatches(
    n: int, batch_size: int, rng: RNGLike = None, *, shuffle: bool = True
) -> Iterator[np.ndarray]:
    """Yield the index arrays of one epoch's mini-batches over ``n`` examples.

    Parameters
    ----------
    n : int
        Number of examples.
    batch_size : int
        Examples per batch, >= 1; powers of two are recommended. The last batch holds the
        ``n % batch_size`` examples left over, if any.
    rng : numpy.random.Generator or int, optional
        Source of the permutation. Pass the *same* Generator every epoch to get a new
        permutation each epoch (an int seed gives the same permutation every time).
    shuffle : bool, optional
        When False, batches follow the order ``0, 1, ..., n-1``.

    Returns
    -------
    iterator of numpy.ndarray
        int64 indices into the data, one array per batch. Arguments are checked and the
        permutation is drawn when the function is called, not on the first ``next``.
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise DataError(f"n must be an integer >= 0, got {n!r}")
    size = _check_batch_size(batch_size)
    order = as_generator(rng).permutation(int(n)) if shuffle else np.arange(int(n))
    return (order[start : start + size] for start in range(0, int(n), size))


class RowGather:
    """Mini-batches of ``X``'s rows gathered into one reused array: ``out[i] = X[idx[i]]``.

    ``gather(idx)`` returns a view of the first ``len(idx)`` rows of a buffer of
    ``batch_size`` rows, overwritten by the next call: use it before asking for the next
    batch (a training step does). Same values as ``X[idx]``, without allocating a new array
    each step (and NumPy's ``take`` into a given array copies rows faster than fancy indexing
    allocates and fills one). ``idx`` holds valid row indices, as :func:`minibatches` yields
    them (they are not checked again).

    Parameters
    ----------
    X : numpy.ndarray
        The rows, first axis the examples.
    batch_size : int
        The largest batch asked for.
    """

    def __init__(self, X: np.ndarray, batch_size: int) -> None:
        self.X = X
        self.buffer = np.empty((_check_batch_size(batch_size), *X.shape[1:]), dtype=X.dtype)

    def __call__(self, idx: np.ndarray) -> np.ndarray:
        out = self.buffer[: idx.shape[0]]
        if idx.shape[0] > self.buffer.shape[0]:
            raise DataError(
                f"a batch of {idx.shape[0]} rows does not fit the {self.buffer.shape[0]} rows "
                "of the gather buffer"
            )
        # mode="clip": take writes straight into out (mode="raise" goes through a buffer);
        # the indices are minibatches', all in range
        self.X.take(idx, axis=0, out=out, mode="clip")
        return out


def iterate_minibatches(
    X: np.ndarray,
    y: np.ndarray,
    batch_size: int,
    rng: RNGLike = None,
    *,
    shuffle: bool = True,
    augment: Callable[[np.ndarray, np.random.Generator], np.ndarray] | None = None,
    sample_weight: Any = None,
) -> Iterator[tuple[np.ndarray, ...]]:
    """Yield one epoch of ``(X[idx], y[idx])`` mini-batches (``(X[idx], y[idx], w[idx])`` with
    ``sample_weight``: the weights are shuffled with their rows).

    Parameters
    ----------
    X : numpy.ndarray
        Features, first axis the examples.
    y : numpy.ndarray
        Targets, same first axis as ``X``.
    batch_size : int
        Examples per batch, >= 1; powers of two are recommended.
    rng : numpy.random.Generator or int, optional
        Drives the shuffle and the augmentation; pass one Generator across epochs.
    shuffle : bool, optional
        Shuffle the examples (a new permutation each epoch).
    augment : callable, optional
        ``(X_batch, rng) -> X_batch_new`` applied to each batch of features, e.g. a
        :class:`~deepfit.data.augment.Compose`; use it for training batches only.
    sample_weight : array of shape (n,), optional
        One weight >= 0 per example.

    Returns
    -------
    iterator of (numpy.ndarray, numpy.ndarray[, numpy.ndarray])
        Batches of features and the matching targets (and weights).
    """
    X = np.asarray(X)
    y = np.asarray(y)
    if X.ndim < 1 or y.ndim < 1 or X.shape[0] != y.shape[0]:
        raise DataError(
            f"X has shape {X.shape} and y has shape {y.shape}; they need the same number of rows"
        )
    if augment is not None and not callable(augment):
        raise DataError(f"augment must be a callable (X_batch, rng) -> X_batch, got {augment!r}")
    w = None if sample_weight is None else check_sample_weight(sample_weight, X.shape[0])
    gen = as_generator(rng)
    batches = minibatches(X.shape[0], batch_size, gen, shuffle=shuffle)

    def epoch() -> Iterator[tuple[np.ndarray, ...]]:
        for idx in batches:
            Xb = X[idx]
            if augment is not None:
                Xb = augment(Xb, gen)
            yield (Xb, y[idx]) if w is None else (Xb, y[idx], w[idx])

    return epoch()


class BatchSource(ABC):
    """Training rows that are not one array in memory (a table streamed from disk,
    :class:`deepfit.data.streaming.TableStream`), given to
    :meth:`deepfit.training.trainer.Trainer.fit` in place of ``X``.

    An epoch is one call of :meth:`batches`: ``(x, y, w)`` mini-batches (``w`` None without
    example weights) covering each of the :attr:`n_rows` rows once, the last batch short, as
    :func:`iterate_minibatches` gives them; every random draw comes from the ``rng`` passed.
    """

    n_rows: int
    n_features: int
    weighted: bool

    @property
    def shape(self) -> tuple[int, int]:
        return (self.n_rows, self.n_features)

    @abstractmethod
    def batches(self, batch_size: int, rng: np.random.Generator) -> Iterator[tuple[Any, ...]]:
        """One epoch of ``(x, y, w)`` batches."""

    @abstractmethod
    def digest(self) -> str:
        """A fingerprint of the rows (a checkpoint resumes only on the same ones)."""

    def rows(self) -> Any:
        """The rows' features in a fixed order, sliceable as ``rows[i:j]`` (batch norm's
        statistics after weight averaging), or None when they cannot be read again."""
        return None

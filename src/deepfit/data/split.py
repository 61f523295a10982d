"""Train / dev / test splitting, stratified by class and sized to the data.

The ``"auto"`` rule (the course notes' advice: 60/20/20 for small data, dev and test
shrinking toward 1% each for big data) gives the dev and the test set the same size

    h(n) = round(max(0.01 * n, min(0.2 * n, 2000)))     (at least 1)

and the training set the rest, ``n - 2 h(n)``:

=========== ============== ==========================
n           dev = test     train / dev / test
=========== ============== ==========================
100         20             60 / 20 / 20 %
10,000      2,000          60 / 20 / 20 %
100,000     2,000          96 / 2 / 2 %
1,000,000   10,000         98 / 1 / 1 %
10,000,000  100,000        98 / 1 / 1 %
=========== ============== ==========================

``h`` is continuous and never decreases as ``n`` grows, while the fraction ``h(n) / n``
never increases: 20% up to 10,000 examples, then a floor of 2,000 examples each (so an
error rate is still measured to about +-1%), until 1% of the data exceeds that floor at
200,000 examples.

**Cross-validation folds** (``fold=(i, k)``, what ``tune.cv = k`` trains on): the test rows are
drawn exactly as without folds; the remaining rows (train + dev) are divided into ``k`` folds by
:func:`kfold_indices` (stratified for class labels, shuffled by the same generator, so the same
seed gives the same folds), and fold ``i`` becomes the dev set, the other ``k - 1`` the
training set, as scikit-learn's ``StratifiedKFold(shuffle=True)`` / ``KFold(shuffle=True)``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from deepfit.backend import RNGLike, as_generator
from deepfit.errors import DataError

AUTO_SMALL_FRACTION = 0.2
AUTO_FLOOR = 2000
AUTO_BIG_FRACTION = 0.01

Pair = tuple[np.ndarray, np.ndarray]


@dataclass(frozen=True, eq=False)
class Split:
    """The three ``(X, y)`` pairs of a split; iterating yields ``train, dev, test``.

    Attributes
    ----------
    train, dev, test : tuple of numpy.ndarray
        ``(X, y)`` pairs. A split of size 0 holds empty arrays with the right columns.
    train_index, dev_index, test_index : numpy.ndarray or None
        Rows of the main data each split was drawn from; None for a split the caller
        supplied.
    """

    train: Pair
    dev: Pair
    test: Pair
    train_index: np.ndarray
    dev_index: np.ndarray | None
    test_index: np.ndarray | None

    def __iter__(self) -> Iterator[Pair]:
        return iter((self.train, self.dev, self.test))

    @property
    def sizes(self) -> tuple[int, int, int]:
        """Number of examples in train, dev and test."""
        return (len(self.train[1]), len(self.dev[1]), len(self.test[1]))


def _round(x: float) -> int:
    return math.floor(x + 0.5)


def auto_holdout_size(n: int) -> int:
    """Size of the dev set (and of the test set) the ``"auto"`` rule gives ``n`` examples.

    ``h(n) = round(max(0.01 n, min(0.2 n, 2000)))``, and at least 1; see the module
    docstring.
    """
    return max(
        1, _round(max(AUTO_BIG_FRACTION * n, min(AUTO_SMALL_FRACTION * n, float(AUTO_FLOOR))))
    )


def auto_split_sizes(n: int) -> tuple[int, int, int]:
    """Return ``(train, dev, test)`` sizes of the ``"auto"`` rule for ``n`` examples."""
    h = auto_holdout_size(n)
    return (n - 2 * h, h, h)


def _check_fractions(fractions: Sequence[float]) -> tuple[float, float, float]:
    try:
        fr = tuple(float(f) for f in fractions)
    except (TypeError, ValueError) as exc:
        raise DataError(
            f"fractions must be 'auto' or three numbers (train, dev, test), got {fractions!r}"
        ) from exc
    if len(fr) != 3:
        raise DataError(f"fractions must be three numbers (train, dev, test), got {fractions!r}")
    names = ("train", "dev", "test")
    for name, f in zip(names, fr, strict=True):
        if not math.isfinite(f) or f < 0 or (f >= 1 and not (name == "train" and f == 1)):
            raise DataError(f"fractions: {name} fraction {f} must be in [0, 1)")
    if fr[0] <= 0:
        raise DataError(f"fractions: train fraction {fr[0]} must be > 0")
    if abs(sum(fr) - 1.0) > 1e-6:
        raise DataError(f"fractions {fractions!r} sum to {sum(fr):g}; they must sum to 1")
    return fr  # type: ignore[return-value]


def _largest_remainder(n: int, fractions: Sequence[float]) -> list[int]:
    exact = [n * f for f in fractions]
    counts = [math.floor(e) for e in exact]
    left = n - sum(counts)
    order = sorted(range(len(exact)), key=lambda s: (-(exact[s] - counts[s]), s))
    for s in order[:left]:
        counts[s] += 1
    return counts


def _stratified_counts(class_sizes: Sequence[int], targets: Sequence[int]) -> np.ndarray:
    """Per-class, per-split counts: each within 1 of ``n_c * T_s / n``, columns summing to T.

    Each class first gets ``floor(n_c T_s / n)`` in every split; the few examples left
    (at most 2 per class) go one per split to the splits still furthest below their target
    (Ryser's greedy construction, which always succeeds here).
    """
    n = int(sum(class_sizes))
    k = len(targets)
    base = np.array([[(nc * t) // n for t in targets] for nc in class_sizes], dtype=np.int64)
    frac = np.array([[(nc * t) % n for t in targets] for nc in class_sizes], dtype=np.int64)
    demand = np.asarray(targets, dtype=np.int64) - base.sum(axis=0)
    extra = np.asarray(class_sizes, dtype=np.int64) - base.sum(axis=1)
    for c in np.argsort(-extra, kind="stable"):
        r = int(extra[c])
        if r == 0:
            continue
        order = sorted(range(k), key=lambda s: (-demand[s], -frac[c, s], s))[:r]
        for s in order:
            if demand[s] <= 0:
                raise AssertionError("stratified allocation failed")  # pragma: no cover
            base[c, s] += 1
            demand[s] -= 1
    return base


def kfold_indices(
    y: np.ndarray, k: int, *, stratify: bool | None = None, rng: RNGLike = 0
) -> list[np.ndarray]:
    """Divide the positions ``0..n-1`` of ``y`` into ``k`` disjoint folds covering them once.

    Fold ``j`` holds ``n_j`` rows, ``n_j = floor(n / k)`` or one more (the first ``n mod k``
    folds are the larger), drawn by a permutation from ``rng``. Stratified, every class ``c``
    puts ``n_c n_j / n`` of its rows into fold ``j``, within one row (the allocation of
    :func:`train_dev_test_split`), so each fold keeps the class proportions of ``y``.

    Parameters
    ----------
    y : numpy.ndarray
        Targets, the first axis the rows; class labels when stratified.
    k : int
        Number of folds, ``2 <= k <= n``.
    stratify : bool, optional
        As in :func:`train_dev_test_split` (default: for integer, bool or string labels).
    rng : numpy.random.Generator or int, optional
        Seed or generator; the same seed gives the same folds.

    Returns
    -------
    list of numpy.ndarray
        ``k`` arrays of positions into ``y``, each sorted.

    Raises
    ------
    DataError
        For ``k < 2`` or more folds than rows.
    """
    y = np.asarray(y)
    n = int(y.shape[0])
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 2:
        raise DataError(f"cross-validation needs a whole number of folds >= 2, got {k!r}")
    if k > n:
        raise DataError(f"{n} rows are too few for {k} cross-validation folds (one row each)")
    sizes = _largest_remainder(n, [1.0 / k] * k)
    if stratify is None:
        stratify = y.ndim == 1 and y.dtype.kind in "biuUS"
    gen = as_generator(rng)
    folds: list[list[np.ndarray]] = [[] for _ in range(k)]
    if stratify:
        if y.ndim != 1:
            raise DataError(f"stratify needs 1-D class labels, y has shape {y.shape}")
        _, inverse, class_sizes = np.unique(y, return_inverse=True, return_counts=True)
        counts = _stratified_counts(class_sizes.tolist(), sizes)
        for c in range(len(class_sizes)):
            members = gen.permutation(np.flatnonzero(inverse == c))
            for j, chunk in enumerate(np.split(members, np.cumsum(counts[c])[:-1])):
                folds[j].append(chunk)
    else:
        for j, chunk in enumerate(np.split(gen.permutation(n), np.cumsum(sizes)[:-1])):
            folds[j].append(chunk)
    return [np.sort(np.concatenate(f)) for f in folds]


def _check_fold(fold: Sequence[int]) -> tuple[int, int]:
    try:
        i, k = (int(v) for v in fold)
    except (TypeError, ValueError) as exc:
        raise DataError(f"fold must be a pair (i, k) of whole numbers, got {fold!r}") from exc
    if k < 2 or not 0 <= i < k:
        raise DataError(f"fold ({i}, {k}): need k >= 2 folds and 0 <= i < k")
    return i, k


def _as_pair(name: str, pair: Pair, n_features: int) -> Pair:
    try:
        Xs, ys = pair
    except (TypeError, ValueError) as exc:
        raise DataError(f"{name} must be an (X, y) pair of arrays") from exc
    Xs, ys = np.asarray(Xs), np.asarray(ys)
    if Xs.ndim != 2 or Xs.shape[1] != n_features:
        raise DataError(f"supplied {name} X has shape {Xs.shape}; expected (m, {n_features})")
    if ys.shape[:1] != Xs.shape[:1]:
        raise DataError(f"supplied {name} y has shape {ys.shape} but its X has {Xs.shape[0]} rows")
    return Xs, ys


def train_dev_test_split(
    X: np.ndarray,
    y: np.ndarray,
    fractions: str | Sequence[float] = "auto",
    *,
    stratify: bool | None = None,
    rng: RNGLike = 0,
    dev: Pair | None = None,
    test: Pair | None = None,
    fold: Sequence[int] | None = None,
) -> Split:
    """Split ``(X, y)`` into training, dev (validation) and test sets.

    Parameters
    ----------
    X : numpy.ndarray
        Features, shape ``(n, features)``.
    y : numpy.ndarray
        Targets, shape ``(n,)`` (or ``(n, ...)``; the first axis is the example axis).
    fractions : "auto" or (float, float, float), optional
        ``(train, dev, test)`` fractions summing to 1, each in [0, 1) (train in (0, 1]);
        dev or test may be 0. ``"auto"`` sizes dev and test by the rule in the module
        docstring: 60/20/20 up to 10,000 examples, shrinking to 98/1/1 from 1,000,000.
    stratify : bool, optional
        Keep every class's proportion in every split (to within one example). By default
        True when ``y`` holds class labels (integer, bool or string dtype) and False for
        float (regression) targets.
    rng : numpy.random.Generator or int, optional
        Seed or generator; the same seed gives the same split.
    dev, test : (X, y) pair, optional
        An existing dev or test set. It is returned as it is, and only the remaining splits
        are drawn from ``(X, y)``. With explicit ``fractions`` its fraction must be 0;
        with ``"auto"`` the rule is applied to the total number of examples.
    fold : (int, int), optional
        ``(i, k)``: cross-validation fold ``i`` of ``k`` (``0 <= i < k``). The test set is
        drawn as without it; the other rows (train and dev) are divided into ``k`` folds by
        :func:`kfold_indices` (stratified as the split is) and fold ``i`` is the dev set, the
        rest the training set. Not with a supplied ``dev`` set.

    Returns
    -------
    Split
        Unpacks as ``(X_train, y_train), (X_dev, y_dev), (X_test, y_test)``.

    Raises
    ------
    DataError
        For bad fractions, mismatched shapes, or too little data to fill the splits.
    """
    X = np.asarray(X)
    y = np.asarray(y)
    if X.ndim != 2:
        raise DataError(f"X must be 2-D (n, features), got shape {X.shape}")
    if y.ndim < 1 or y.shape[0] != X.shape[0]:
        raise DataError(f"y has shape {y.shape} but X has {X.shape[0]} rows")
    n = X.shape[0]
    supplied = {
        "dev": None if dev is None else _as_pair("dev", dev, X.shape[1]),
        "test": None if test is None else _as_pair("test", test, X.shape[1]),
    }
    n_extra = sum(len(p[1]) for p in supplied.values() if p is not None)
    if fold is not None:
        fold = _check_fold(fold)
        if supplied["dev"] is not None:
            raise DataError(
                "cross-validation folds are drawn from the training rows; a supplied dev set "
                "cannot be one of them"
            )

    if isinstance(fractions, str):
        if fractions != "auto":
            raise DataError(f"fractions must be 'auto' or (train, dev, test), got {fractions!r}")
        h = auto_holdout_size(n + n_extra)
        sizes = [
            0,
            0 if supplied["dev"] is not None else h,
            0 if supplied["test"] is not None else h,
        ]
        sizes[0] = n - sizes[1] - sizes[2]
    else:
        fr = _check_fractions(fractions)
        for s, name in ((1, "dev"), (2, "test")):
            if supplied[name] is not None and fr[s] != 0:
                raise DataError(
                    f"a {name} set was supplied, so its fraction must be 0; "
                    f"got fractions={tuple(fractions)!r}"
                )
        sizes = _largest_remainder(n, fr)
    if sizes[0] < 1:
        raise DataError(
            f"{n} examples are too few to split {tuple(sizes)} with at least one training example"
        )

    if stratify is None:
        stratify = y.ndim == 1 and y.dtype.kind in "biuUS"
    gen = as_generator(rng)
    if stratify:
        if y.ndim != 1:
            raise DataError(f"stratify needs 1-D class labels, y has shape {y.shape}")
        _, inverse, class_sizes = np.unique(y, return_inverse=True, return_counts=True)
        counts = _stratified_counts(class_sizes.tolist(), sizes)
        parts: list[list[np.ndarray]] = [[], [], []]
        for c in range(len(class_sizes)):
            members = gen.permutation(np.flatnonzero(inverse == c))
            cuts = np.cumsum(counts[c])[:-1]
            for s, chunk in enumerate(np.split(members, cuts)):
                parts[s].append(chunk)
        index = [gen.permutation(np.concatenate(p)) for p in parts]
    else:
        perm = gen.permutation(n)
        index = np.split(perm, np.cumsum(sizes)[:-1])
    if fold is not None:
        pool = np.sort(np.concatenate([index[0], index[1]]))
        i, k = fold
        if k > len(pool):
            raise DataError(f"{len(pool)} training rows are too few for {k} cross-validation folds")
        held = kfold_indices(y[pool], k, stratify=stratify, rng=gen)
        index = [
            pool[np.concatenate([held[j] for j in range(k) if j != i])],
            pool[held[i]],
            index[2],
        ]

    def take(ix: np.ndarray) -> Pair:
        return X[ix], y[ix]

    return Split(
        train=take(index[0]),
        dev=supplied["dev"] if supplied["dev"] is not None else take(index[1]),
        test=supplied["test"] if supplied["test"] is not None else take(index[2]),
        train_index=index[0],
        dev_index=None if supplied["dev"] is not None else index[1],
        test_index=None if supplied["test"] is not None else index[2],
    )

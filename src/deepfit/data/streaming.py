"""Training from a table larger than memory: Parquet row groups or a memory-mapped ``.npy``
file, streamed through a shuffle buffer.

The in-memory path (:mod:`deepfit.data.pipeline`) reads the whole table, splits it, fits the
preprocessing on the training split and hands the trainer arrays. Here the file is read one
*chunk* at a time (a Parquet row group, or ``chunk_rows`` rows of a ``.npy`` file opened with
``np.load(mmap_mode="r")``), and only three things are held in memory: one chunk, the shuffle
buffer, and the dev and test hold-outs.

1. **Split by a hash of the row index.** Row ``i`` (0-based, in the file) goes to train, dev or
   test by ``u_i = splitmix64(seed + (i + 1) * golden) / 2^64`` (the counter-based hash of
   :func:`deepfit.nn.dropout.mask_bits`): train when ``u_i < f_train``, dev when
   ``u_i < f_train + f_dev``, test otherwise. The rule needs no pass over the data, gives every
   pass the same rows, and the same seed the same split. Fractions are the config's, or for
   ``"auto"`` those of :func:`deepfit.data.split.auto_split_sizes` for the file's row count.
   *Where this differs from* :func:`deepfit.data.split.train_dev_test_split`: each row is a
   Bernoulli draw, so the sizes are the expected ones within a few standard deviations
   (``sqrt(n f (1 - f))``), not exact; and the split is not stratified by class. A
   ``data.max_examples`` subsample is a second hash threshold (about that many rows, not
   exactly). Rows without a target are left out, as in memory.
2. **Statistics in one streaming pass** over the file, read into a fitted
   :class:`~deepfit.data.preprocess.TablePreprocessor` through its saved state format (so the
   model file, ``deepfit predict`` and ``deepfit evaluate`` work unchanged):

   - column roles by the rules of :func:`deepfit.data.columns.infer_roles`, on every row with
     a target: row numbers, constant and ID-like columns (a whole-number column is a
     permutation of ``min..max`` when the sum of its values' hashes equals that of
     ``min..max``: exact up to a 64-bit hash collision). A text column with more than
     :data:`LEVEL_CAP` distinct values is dropped with a warning unless named in
     ``data.categorical`` (in memory it would get an embedding);
   - means and standard deviations **exact**: per-chunk float64 means and sums of squared
     deviations merged by Chan et al.'s formula
     ``M2 = M2_a + M2_b + delta^2 n_a n_b / n`` (then the imputed cells added, each at the
     median); the regression target's mean and standard deviation the same way;
   - category vocabularies and class names **exact**, from streamed counts;
   - medians (imputation), quartiles (``robust``) and quantiles (``quantile``) **approximate**:
     they are those of a uniform sample of at most ``sample_rows`` training rows, kept as the
     rows with the smallest of a seeded uniform key (bottom-k sampling, which is reservoir
     sampling without replacement). A sample quantile ``q`` lies, with probability about
     99.7%, between the population quantiles ``q +- 3 sqrt(q (1 - q) / k)`` (``k`` the sample
     size): ``+-0.0047`` in rank for a median of ``k = 100,000``. When the training split has at
     most ``sample_rows`` rows the sample is the whole split and these are exact too.
3. **Mini-batches through a shuffle buffer** (:class:`ShuffleBuffer`): each epoch reads the
   chunks in a new random order, and each batch is drawn without replacement from a buffer of
   at most ``data.shuffle_buffer`` rows, the freed slots refilled from the stream. Every
   training row is in exactly one batch per epoch, every batch holds ``batch_size`` rows but
   the last (``n % batch_size``), and the same seed gives the same batches. With a buffer at
   least as large as the training split, an epoch is one uniform permutation, as in memory.
   The next chunks are read and preprocessed by a background thread while the trainer works
   (:func:`prefetched`); with ``data.stream_cache`` the preprocessed chunks are kept on disk
   after the first epoch (:class:`ChunkCache`) and later epochs read them back.

Sample weights (``data.weight``, ``data.class_weight``) travel with their rows;
``class_weight = "balanced"`` counts the classes of the whole training split. Text columns of
a ``.npy`` file (a structured array's string fields) stay text even when they hold numbers.
"""

from __future__ import annotations

import hashlib
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from deepfit.backend import RNGLike, as_generator
from deepfit.data.batches import BatchSource, _check_batch_size
from deepfit.data.columns import _ROW_NUMBER_NAMES, ColumnRoles, id_warning
from deepfit.data.dataset import label_key, sort_class_names
from deepfit.data.pipeline import MAX_AUTO_CLASSES, class_weights, table_scaling
from deepfit.data.preprocess import (
    MISSING_LEVEL,
    TablePreprocessor,
    TargetEncoder,
    TransformReport,
    _level_codes,
)
from deepfit.data.split import _check_fractions, auto_split_sizes
from deepfit.data.tables import DEFAULT_NA_VALUES, PARQUET_SUFFIXES, Table
from deepfit.data.tabular import _is_number
from deepfit.errors import DataError

#: Suffixes of the files that can be streamed.
NPY_SUFFIXES = (".npy",)
STREAM_SUFFIXES = (*PARQUET_SUFFIXES, *NPY_SUFFIXES)
#: Rows per chunk of a ``.npy`` file (a Parquet file's chunks are its row groups).
NPY_CHUNK_ROWS = 65536
#: Rows of the shuffle buffer (config key ``data.shuffle_buffer``).
DEFAULT_SHUFFLE_BUFFER = 65536
#: Training rows sampled for the medians and quantiles.
DEFAULT_SAMPLE_ROWS = 100_000
#: Distinct values counted per text column before it counts as an identifier.
LEVEL_CAP = 1 << 17
#: ``data.stream = "auto"`` streams when the table would take more than this fraction of the
#: memory available in memory.
AUTO_MEMORY_FRACTION = 0.25
#: Bytes one cell of a table takes along the in-memory path, roughly: a float64 (or a pointer)
#: in the table, again in the split's copy, the float32 matrix and its one-hot columns, and the
#: reader's buffers. Measured (bench/streaming.md): diamonds replicated to 2,000,000 rows of 10
#: columns peaks at 1.16 GB, about 50 bytes per cell beyond the interpreter's 150 MB.
IN_MEMORY_BYTES_PER_CELL = 48

# SplitMix64's constants (Steele, Lea and Flood 2014), as deepfit.nn.dropout.mask_bits uses them
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_PERMUTATION_SEED = 0x5EED_0F_1D5


def splitmix64(seed: int, k: np.ndarray) -> np.ndarray:
    """SplitMix64 of the counters ``k``: ``mix(seed + (k + 1) * golden)``, as uint64.

    ``mix(h)``: ``h ^= h >> 30; h *= m1; h ^= h >> 27; h *= m2; h ^= h >> 31`` (all modulo
    ``2^64``). The same construction as :func:`deepfit.nn.dropout.mask_bits`, for any counters.
    """
    h = np.asarray(k).astype(np.uint64) + np.uint64(1)
    h *= _GOLDEN
    h += np.uint64(seed % 2**64)
    h ^= h >> np.uint64(30)
    h *= _MIX1
    h ^= h >> np.uint64(27)
    h *= _MIX2
    h ^= h >> np.uint64(31)
    return h


def row_uniform(seed: int, rows: np.ndarray) -> np.ndarray:
    """A uniform number in ``[0, 1)`` per row index: the top 53 bits of
    :func:`splitmix64` times ``2^-53``."""
    return (splitmix64(seed, rows) >> np.uint64(11)).astype(np.float64) * 2.0**-53


# -- reading chunks ----------------------------------------------------------------------------
class ChunkedFile(ABC):
    """A table file read one chunk of rows at a time.

    Attributes
    ----------
    path : str
    names : list of str
        Column names, in file order.
    chunk_sizes : numpy.ndarray
        Rows of each chunk; chunk ``k`` holds rows ``offsets[k] .. offsets[k] + size - 1``.
    kinds : dict of str to str
        ``"numeric"``, ``"text"`` or ``"string"`` (text that may turn out all numbers,
        decided by :func:`first_pass`).
    """

    path: str
    names: list[str]
    chunk_sizes: np.ndarray
    kinds: dict[str, str]

    @property
    def n_rows(self) -> int:
        return int(self.chunk_sizes.sum())

    @property
    def n_chunks(self) -> int:
        return len(self.chunk_sizes)

    @property
    def offsets(self) -> np.ndarray:
        return np.concatenate([[0], np.cumsum(self.chunk_sizes)[:-1]]).astype(np.int64)

    def in_memory_bytes(self) -> int:
        """About how many bytes the in-memory path would need for this table."""
        return self.n_rows * len(self.names) * IN_MEMORY_BYTES_PER_CELL

    @abstractmethod
    def read(self, k: int, names: Sequence[str]) -> Any:
        """The columns ``names`` of chunk ``k``, raw (what :meth:`cells` converts)."""

    @abstractmethod
    def take(self, raw: Any, rows: np.ndarray) -> Any:
        """The rows ``rows`` of a raw chunk."""

    @abstractmethod
    def concat(self, raws: list[Any], names: Sequence[str]) -> Any:
        """Raw chunks as one (an empty list gives no rows)."""

    @abstractmethod
    def cells(self, raw: Any, name: str, kind: str, na: tuple[str, ...]) -> np.ndarray:
        """One column of a raw chunk as a :class:`~deepfit.data.tables.Table` holds it:
        float64 (NaN missing) for ``kind="numeric"``, object text (None missing) for
        ``"text"``."""

    def undecided(
        self, raw: Any, name: str, na: tuple[str, ...], numbers: bool = True
    ) -> tuple[np.ndarray, Any]:
        """A ``"string"`` column's cells as text (stripped, missing tokens None) and, when
        ``numbers`` and every present cell is a number, as float64 (else None)."""
        raise AssertionError(f"{self.path}: column {name!r} has a decided kind")

    def table(self, raw: Any, names: Sequence[str], kinds: Mapping[str, str], na, rows) -> Table:
        """Chunk columns as a :class:`Table` whose ``row_ids`` are the file's rows."""
        return Table(
            {n: self.cells(raw, n, kinds[n], na) for n in names}, self.path, np.asarray(rows)
        )


class ParquetChunks(ChunkedFile):
    """A Parquet file, one row group per chunk (``pyarrow.parquet.ParquetFile``)."""

    def __init__(self, path: str | Path) -> None:
        from deepfit.data.tables import _check_names, _require_pyarrow

        pa = _require_pyarrow()
        import pyarrow.parquet as pq

        p = _existing(path)
        try:
            self._file = pq.ParquetFile(p)
        except (pa.ArrowException, OSError) as exc:
            raise DataError(
                f"{p}: not a readable Parquet file ({str(exc).splitlines()[0]})"
            ) from None
        self.path = str(p)
        schema = self._file.schema_arrow
        self.names = [str(n).strip() for n in schema.names]
        _check_names(p, self.names)
        meta = self._file.metadata
        self.chunk_sizes = np.array(
            [meta.row_group(k).num_rows for k in range(meta.num_row_groups)], dtype=np.int64
        )
        if self.n_rows == 0:
            raise DataError(f"{p}: the file has no rows")
        self._raw_names = list(schema.names)
        self.kinds = {n: _arrow_kind(schema.field(j).type) for j, n in enumerate(self.names)}

    def read(self, k: int, names: Sequence[str]) -> Any:
        raw = [self._raw_names[self.names.index(n)] for n in names]
        return self._file.read_row_group(k, columns=raw).rename_columns(list(names))

    def take(self, raw: Any, rows: np.ndarray) -> Any:
        return raw.take(rows)

    def concat(self, raws: list[Any], names: Sequence[str]) -> Any:
        import pyarrow as pa

        if not raws:
            schema = self._file.schema_arrow
            fields = [schema.field(self._raw_names[self.names.index(n)]) for n in names]
            return pa.schema(fields).empty_table().rename_columns(list(names))
        return pa.concat_tables(raws)

    def cells(self, raw: Any, name: str, kind: str, na: tuple[str, ...]) -> np.ndarray:
        import pyarrow as pa
        import pyarrow.compute as pc

        col = raw.column(name)
        t = col.type
        if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t):
            return col.cast(pa.float64()).to_numpy(zero_copy_only=False).astype(np.float64)
        if pa.types.is_null(t):
            return np.full(len(col), np.nan) if kind == "numeric" else np.full(len(col), None)
        if pa.types.is_boolean(t):
            return np.array([None if v is None else str(v) for v in col.to_pylist()], object)
        text = _trimmed(col, na)
        if kind == "numeric":
            return pc.cast(text, pa.float64()).to_numpy(zero_copy_only=False).astype(np.float64)
        return _objects(text)

    def undecided(
        self, raw: Any, name: str, na: tuple[str, ...], numbers: bool = True
    ) -> tuple[np.ndarray, Any]:
        import pyarrow as pa
        import pyarrow.compute as pc

        text = _trimmed(raw.column(name), na)
        if not numbers:
            return _objects(text), None
        try:
            values = pc.cast(text, pa.float64()).to_numpy(zero_copy_only=False)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            values = None
        return _objects(text), None if values is None else values.astype(np.float64)


def _trimmed(col: Any, na: tuple[str, ...]) -> Any:
    """Text cells stripped of spaces, the missing tokens null (as tables._arrow_column)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if not (pa.types.is_string(col.type) or pa.types.is_large_string(col.type)):
        col = col.cast(pa.string())
    text = pc.utf8_trim_whitespace(col)
    return pc.if_else(pc.is_in(text, value_set=pa.array(list(na), pa.string())), None, text)


def _objects(text: Any) -> np.ndarray:
    """Arrow text as an object array of str / None, one Python string per distinct value."""
    import pyarrow.compute as pc

    encoded = pc.fill_null(pc.dictionary_encode(text), None).combine_chunks()
    levels = np.asarray([*encoded.dictionary.to_pylist(), None], dtype=object)
    index = pc.fill_null(encoded.indices, len(levels) - 1).to_numpy(zero_copy_only=False)
    return levels[index]


def _arrow_kind(t: Any) -> str:
    import pyarrow as pa

    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t):
        return "numeric"
    if pa.types.is_null(t):
        return "numeric"
    if pa.types.is_boolean(t):
        return "text"
    return "string"


class NpyChunks(ChunkedFile):
    """A ``.npy`` file opened with ``np.load(mmap_mode="r")``, ``chunk_rows`` rows per chunk.

    A 2-D numeric array's columns are named ``x0, x1, ...`` (as
    :func:`deepfit.data.tables.from_arrays` names them); a structured array's fields keep their
    names (numbers are numeric, booleans and strings text).
    """

    def __init__(self, path: str | Path, chunk_rows: int = NPY_CHUNK_ROWS) -> None:
        p = _existing(path)
        try:
            self._array = np.load(p, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise DataError(f"{p}: not a readable .npy file ({exc})") from None
        a = self._array
        self.path = str(p)
        if a.dtype.names:
            if a.ndim != 1:
                raise DataError(f"{p}: a structured .npy table must be 1-D, got shape {a.shape}")
            self.names = [str(n) for n in a.dtype.names]
            self.kinds = {n: _numpy_kind(a.dtype[n], p, n) for n in self.names}
        else:
            if a.ndim != 2 or a.dtype.kind not in "biuf":
                raise DataError(
                    f"{p}: a .npy table is a 2-D numeric array or a structured array, got "
                    f"shape {a.shape} and dtype {a.dtype}"
                )
            self.names = [f"x{j}" for j in range(a.shape[1])]
            self.kinds = dict.fromkeys(self.names, "text" if a.dtype.kind == "b" else "numeric")
        n, size = a.shape[0], _check_batch_size(chunk_rows)
        if n == 0:
            raise DataError(f"{p}: the file has no rows")
        self.chunk_sizes = np.array([min(size, n - s) for s in range(0, n, size)], np.int64)
        self._chunk_rows = size

    def read(self, k: int, names: Sequence[str]) -> Any:
        start = k * self._chunk_rows
        block = self._array[start : start + int(self.chunk_sizes[k])]
        if self._array.dtype.names:
            return {n: np.array(block[n]) for n in names}
        return {n: np.array(block[:, self.names.index(n)]) for n in names}

    def take(self, raw: Any, rows: np.ndarray) -> Any:
        return {n: v[rows] for n, v in raw.items()}

    def concat(self, raws: list[Any], names: Sequence[str]) -> Any:
        if not raws:
            empty = self.read(0, names)
            return {n: v[:0] for n, v in empty.items()}
        return {n: np.concatenate([r[n] for r in raws]) for n in names}

    def cells(self, raw: Any, name: str, kind: str, na: tuple[str, ...]) -> np.ndarray:
        v = raw[name]
        if v.dtype.kind in "iuf":
            return v.astype(np.float64)
        if v.dtype.kind == "b":
            return np.array([str(bool(x)) for x in v], dtype=object)
        text = np.char.strip(v.astype(str)).astype(object)
        text[np.isin(text, list(na))] = None
        return text


def _numpy_kind(dtype: np.dtype, p: Path, name: str) -> str:
    if dtype.kind in "iuf":
        return "numeric"
    if dtype.kind in "bUS":
        return "text"
    raise DataError(f"{p}: field {name!r} has dtype {dtype}; use numbers, booleans or strings")


def _existing(path: str | Path) -> Path:
    p = Path(path).expanduser()
    if not p.exists():
        raise DataError(f"{p}: no such file")
    if p.is_dir():
        raise DataError(f"{p}: is a directory; expected a Parquet or .npy file")
    return p


def open_chunked(path: str | Path, *, chunk_rows: int = NPY_CHUNK_ROWS) -> ChunkedFile:
    """The streaming reader of ``path``: Parquet (``.parquet``, ``.pq``) or ``.npy``."""
    suffix = Path(path).suffix.lower()
    if suffix in PARQUET_SUFFIXES:
        return ParquetChunks(path)
    if suffix in NPY_SUFFIXES:
        return NpyChunks(path, chunk_rows)
    raise DataError(
        f"{path}: only Parquet (.parquet, .pq) and .npy tables can be streamed (config key "
        f"data.stream); convert it, e.g. pandas.read_csv(...).to_parquet(...)"
    )


def read_npy_table(path: str | Path, na_values: Iterable[str] = DEFAULT_NA_VALUES) -> Table:
    """A whole ``.npy`` table in memory, with the columns :class:`NpyChunks` streams."""
    f = NpyChunks(path, chunk_rows=max(1, int(np.load(path, mmap_mode="r").shape[0])))
    na = tuple(dict.fromkeys(["", *na_values]))
    return f.table(f.read(0, f.names), f.names, f.kinds, na, np.arange(f.n_rows))


def should_stream(cfg: Mapping[str, Any]) -> bool:
    """Whether the ``[data]`` section ``cfg`` trains from a stream: ``data.stream = true``, or
    ``"auto"`` and a Parquet / ``.npy`` file that would take more than
    :data:`AUTO_MEMORY_FRACTION` of :func:`deepfit.io.memory_limit` in memory."""
    choice = cfg.get("stream", False)
    if choice is True:
        return True
    if choice != "auto" or Path(cfg["path"]).suffix.lower() not in STREAM_SUFFIXES:
        return False
    from deepfit.io import memory_limit

    return open_chunked(cfg["path"]).in_memory_bytes() > AUTO_MEMORY_FRACTION * memory_limit()


# -- the split ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class HashSplit:
    """Train / dev / test membership of a row from a hash of its index (module docstring).

    ``bounds`` are the cumulative fractions ``(f_train, f_train + f_dev)``; ``keep`` the
    fraction of rows used at all (``data.max_examples``), judged on a second hash.
    """

    seed: int
    bounds: tuple[float, float]
    keep: float = 1.0

    PARTS = ("train", "dev", "test")

    def assign(self, rows: np.ndarray) -> np.ndarray:
        """0 (train), 1 (dev), 2 (test) or -1 (not used) for each row index."""
        u = row_uniform(self.seed, rows)
        part = np.where(u < self.bounds[0], 0, np.where(u < self.bounds[1], 1, 2)).astype(np.int8)
        if self.keep < 1.0:
            part[row_uniform(self.seed ^ 0xA5A5A5A5, rows) >= self.keep] = -1
        return part

    def to_dict(self) -> dict[str, Any]:
        return {"seed": self.seed, "bounds": list(self.bounds), "keep": self.keep}


def hash_split(cfg: Mapping[str, Any], n_rows: int, seed: int, extra: Iterable[str]) -> HashSplit:
    """The :class:`HashSplit` of ``data.split`` for a file of ``n_rows`` rows; a part in
    ``extra`` (a separate dev or test file) gets no rows, its fraction going where
    :func:`deepfit.data.pipeline.prepare_table` sends it."""
    keep = 1.0
    n = n_rows
    if cfg.get("max_examples") and n_rows > cfg["max_examples"]:
        keep, n = cfg["max_examples"] / n_rows, cfg["max_examples"]
    if cfg["split"] == "auto":
        sizes = auto_split_sizes(n)
        extra = set(extra)
        if "dev" in extra:
            sizes = (sizes[0] + sizes[1], 0, sizes[2])
        if "test" in extra:
            sizes = (sizes[0] + sizes[2], sizes[1], 0)
        fr = [s / n for s in sizes]
    else:
        fr = list(_check_fractions(cfg["split"]))
        if "dev" in extra:
            fr = [fr[0] + fr[1], 0.0, fr[2]]
        if "test" in extra:
            fr = [fr[0] + fr[2], fr[1], 0.0]
    return HashSplit(int(seed), (fr[0], fr[0] + fr[1]), keep)


# -- the first pass ----------------------------------------------------------------------------
class _Moments:
    """Count, mean and sum of squared deviations per column, merged chunk by chunk in float64
    (Chan, Golub and LeVeque 1979): ``n = n_a + n_b``, ``delta = mean_b - mean_a``,
    ``mean = mean_a + delta n_b / n``, ``M2 = M2_a + M2_b + delta^2 n_a n_b / n``.
    NaN cells are not counted."""

    def __init__(self, width: int) -> None:
        self.n = np.zeros(width)
        self.mean = np.zeros(width)
        self.m2 = np.zeros(width)

    def add(self, X: np.ndarray) -> None:
        present = ~np.isnan(X)
        nb = present.sum(axis=0).astype(np.float64)
        if not nb.any():
            return
        mb = np.where(present, X, 0.0).sum(axis=0) / np.maximum(nb, 1)
        m2b = (np.where(present, X - mb, 0.0) ** 2).sum(axis=0)
        n = self.n + nb
        delta = mb - self.mean
        self.mean = np.where(n > 0, self.mean + delta * nb / np.maximum(n, 1), 0.0)
        self.m2 = self.m2 + m2b + delta**2 * self.n * nb / np.maximum(n, 1)
        self.n = n

    def with_constant(self, count: np.ndarray, value: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean and population standard deviation once ``count`` copies of ``value`` join
        each column (the imputed cells): the same merge with ``M2_b = 0``."""
        n = self.n + count
        mean = (self.n * self.mean + count * value) / np.maximum(n, 1)
        m2 = self.m2 + self.n * (self.mean - mean) ** 2 + count * (value - mean) ** 2
        return mean, np.sqrt(np.maximum(m2, 0.0) / np.maximum(n, 1))


class _Levels:
    """Distinct cells of a column (their text, None for missing) with their counts on every
    row with a target and on the training rows, and their training weight; at most
    :data:`LEVEL_CAP` distinct values unless ``unbounded``."""

    def __init__(self, unbounded: bool = False) -> None:
        self.counts: dict[str | None, list[float]] = {}
        self.unbounded = unbounded
        self.overflow = False

    def add(self, cells: np.ndarray, train: np.ndarray, weight: np.ndarray | None = None) -> None:
        texts, index = _level_codes(cells)
        k = len(texts)
        total = np.bincount(index, minlength=k)
        in_train = np.bincount(index[train], minlength=k)
        w = in_train if weight is None else np.bincount(index[train], weight, minlength=k)
        for j in np.flatnonzero(total):
            entry = self.counts.get(texts[j])
            if entry is None:
                if len(self.counts) >= LEVEL_CAP and not self.unbounded:
                    self.overflow = True
                    continue
                entry = self.counts[texts[j]] = [0, 0, 0.0]
            entry[0] += int(total[j])
            entry[1] += int(in_train[j])
            entry[2] += float(w[j])

    def rekeyed(self, key: Callable[[str], str]) -> dict[str | None, list[float]]:
        """The counts with every present text mapped through ``key`` (merging equal keys)."""
        out: dict[str | None, list[float]] = {}
        for text, entry in self.counts.items():
            merged = out.setdefault(None if text is None else key(text), [0, 0, 0.0])
            for i in range(3):
                merged[i] += entry[i]
        return out


@dataclass
class StreamStatistics:
    """What :func:`first_pass` learned: decided column kinds, roles, the task, the fitted
    preprocessing and target encoding, row counts, and the dev / test rows as tables."""

    file: ChunkedFile
    kinds: dict[str, str]
    n_with_target: int
    part_rows: np.ndarray  # (chunks, 3): train / dev / test rows of each chunk
    roles: ColumnRoles
    task: str
    preprocessor: TablePreprocessor
    target: TargetEncoder
    class_weights: np.ndarray | None
    holdouts: dict[str, Table]
    notes: list[str]
    train_report: dict[str, Any]


def _string_key(kind: str) -> Callable[[str], str]:
    """How a ``"string"`` column's texts become the keys the in-memory path uses: the number's
    :func:`label_key` when the column is numeric, the text itself otherwise."""
    return (lambda t: label_key(float(t))) if kind == "numeric" else (lambda t: t)


class _FirstPass:
    """The one pass of :func:`first_pass`, column facts gathered chunk by chunk."""

    def __init__(self, cfg, file: ChunkedFile, split: HashSplit, sample_rows: int, gen) -> None:
        self.cfg, self.file, self.split, self.gen = cfg, file, split, gen
        self.sample_rows = int(sample_rows)
        self.na = tuple(dict.fromkeys(["", *cfg["na_values"]]))
        self.target, self.weight = cfg["target"], cfg["weight"] or None
        for key, names in (
            ("target", [self.target]),
            ("weight", [self.weight] if self.weight else []),
        ):
            for name in names:
                _check_column(file, name, f"data.{key}")
        for key in ("numeric", "categorical", "drop"):
            for name in cfg[key]:
                _check_column(file, name, f"data.{key}")
        excluded = {self.target, self.weight}
        self.candidates = [n for n in file.names if n not in excluded]
        self.kinds = dict(file.kinds)
        self.castable = {n: True for n, k in self.kinds.items() if k == "string"}
        self.any_present = dict.fromkeys(self.castable, False)
        self.numeric_like = [
            n
            for n in self.candidates
            if self.kinds[n] in ("numeric", "string") and n not in cfg["categorical"]
        ]
        self.level_cols = [
            n for n in self.candidates if self.kinds[n] != "numeric" or n in cfg["categorical"]
        ]
        w = len(self.numeric_like)
        self.missing_all = np.zeros(w, np.int64)
        self.missing_train = np.zeros(w, np.int64)
        self.lo, self.hi = np.full(w, np.inf), np.full(w, -np.inf)
        self.lo_train, self.hi_train = np.full(w, np.inf), np.full(w, -np.inf)
        self.whole = np.ones(w, bool)
        self.hash_sum = np.zeros(w, np.uint64)
        self.moments = _Moments(w)
        self.first_missing: dict[str, int] = {}
        self.first_inf: dict[str, tuple[int, float]] = {}
        self.levels = {n: _Levels(unbounded=n in cfg["categorical"]) for n in self.level_cols}
        self.target_levels = _Levels()
        self.target_moments = _Moments(1)
        self.target_whole = True
        self.target_many = False
        first = file.names[0]
        self.row_numbers = first in self.candidates and first in _ROW_NUMBER_NAMES
        self.sample = np.empty((0, w))
        self.sample_keys = np.empty(0)
        self.part_rows = np.zeros((file.n_chunks, 3), np.int64)
        self.kept: dict[str, list[tuple[Any, np.ndarray]]] = {"dev": [], "test": []}
        self.bad_weight: tuple[int, float] | None = None
        self.seen = 0
        self.needed = [*self.candidates, self.target, *([self.weight] if self.weight else [])]

    def column(self, raw: Any, name: str) -> tuple[np.ndarray, np.ndarray | None]:
        """A chunk's column as cells (what the level counts see) and as float64 values (None
        for text); a ``"string"`` column's kind is narrowed on the way."""
        kind = self.kinds[name]
        if kind == "string":
            cells, values = self.file.undecided(raw, name, self.na, self.castable[name])
            self.castable[name] &= values is not None
            self.any_present[name] |= bool(_not_none(cells).any())
            return cells, values
        cells = self.file.cells(raw, name, kind, self.na)
        return cells, cells if kind == "numeric" else None

    def run(self) -> None:
        for k, offset in enumerate(self.file.offsets):
            self.chunk(
                k, self.file.read(k, self.needed), offset + np.arange(self.file.chunk_sizes[k])
            )
        for name, ok in self.castable.items():
            self.kinds[name] = "numeric" if ok and self.any_present[name] else "text"

    def chunk(self, k: int, raw: Any, rows: np.ndarray) -> None:
        t_cells, t_values = self.column(raw, self.target)
        has = _not_none(t_cells) if t_cells.dtype.kind == "O" else ~np.isnan(t_cells)
        part = self.split.assign(rows)
        part[~has] = -1
        use, train = part >= 0, part == 0
        for code in range(3):
            self.part_rows[k, code] = np.count_nonzero(part == code)
        positions = self.seen + np.arange(int(has.sum()), dtype=np.float64)
        self.seen += int(has.sum())
        w_train = None
        if self.weight:
            _, wv = self.column(raw, self.weight)
            if wv is None:
                raise DataError(f"{self.file.path}: weight column {self.weight!r} holds text")
            bad = (~np.isfinite(wv) | (wv < 0)) & ((part == 0) | (part == 1))
            if bad.any() and self.bad_weight is None:
                i = int(np.argmax(bad))
                self.bad_weight = (int(rows[i]), float(wv[i]))
            w_train = wv[train]
        # the target: labels counted on every row with one, values' moments on training rows
        if not self.target_many:
            self.target_levels.add(t_cells[has], train[has], w_train)
            if self.kinds[self.target] == "numeric" and self.cfg["task"] != "classification":
                # a number target with more distinct values than classes is a regression
                self.target_many = len(self.target_levels.counts) > MAX_AUTO_CLASSES + 1
        if t_values is not None:
            v = t_values[has]
            self.target_whole &= bool(np.all(v == np.round(v)))
            self.target_moments.add(t_values[train][:, None])
        cols = {
            n: self.column(raw, n) for n in dict.fromkeys([*self.numeric_like, *self.level_cols])
        }
        if self.row_numbers:
            values = cols[self.file.names[0]][1]
            v = None if values is None else values[has]
            self.row_numbers = v is not None and bool(
                np.array_equal(v, positions) or np.array_equal(v, positions + 1)
            )
        if self.numeric_like:
            block = np.column_stack(
                [
                    cols[n][1] if cols[n][1] is not None else np.full(len(rows), np.nan)
                    for n in self.numeric_like
                ]
            )
            self.numeric(block, rows, has, use, train)
        for name in self.level_cols:
            cells = cols[name][0]
            self.levels[name].add(cells[has], train[has])
            if name not in self.first_missing:
                holes = (
                    use & ~_not_none(cells) if cells.dtype.kind == "O" else use & np.isnan(cells)
                )
                if holes.any():
                    self.first_missing[name] = int(rows[np.argmax(holes)])
        for p, code in (("dev", 1), ("test", 2)):
            at = np.flatnonzero(part == code)
            if at.size:
                self.kept[p].append((self.file.take(raw, at), rows[at]))

    def numeric(self, block, rows, has, use, train) -> None:
        """Role facts (every row with a target) and statistics (training rows) of the
        numeric candidates' ``block`` of one chunk."""
        mine = block[has]
        holes = np.isnan(mine)
        self.missing_all += holes.sum(axis=0)
        if mine.shape[0]:
            self.lo = np.fmin(self.lo, np.where(holes, np.inf, mine).min(axis=0))
            self.hi = np.fmax(self.hi, np.where(holes, -np.inf, mine).max(axis=0))
            filled = np.where(holes, 0.0, mine)
            self.whole &= ~holes.any(axis=0) & np.all(filled == np.round(filled), axis=0)
            self.whole &= np.all(np.abs(filled) < 2.0**62, axis=0)
            for j in np.flatnonzero(self.whole):  # sums modulo 2^64
                h = splitmix64(_PERMUTATION_SEED, mine[:, j].astype(np.int64).view(np.uint64))
                self.hash_sum[j : j + 1] += h.sum(dtype=np.uint64, keepdims=True)
        used = block[use]
        for j in np.flatnonzero(np.isnan(used).any(axis=0) | np.isinf(used).any(axis=0)):
            name = self.numeric_like[j]
            if name not in self.first_missing and np.isnan(used[:, j]).any():
                self.first_missing[name] = int(rows[use][np.argmax(np.isnan(used[:, j]))])
            if name not in self.first_inf and np.isinf(used[:, j]).any():
                i = int(np.argmax(np.isinf(used[:, j])))
                self.first_inf[name] = (int(rows[use][i]), float(used[i, j]))
        tr = block[train]
        if not tr.shape[0]:
            return
        t_holes = np.isnan(tr)
        self.missing_train += t_holes.sum(axis=0)
        self.lo_train = np.fmin(self.lo_train, np.where(t_holes, np.inf, tr).min(axis=0))
        self.hi_train = np.fmax(self.hi_train, np.where(t_holes, -np.inf, tr).max(axis=0))
        self.moments.add(tr)
        # bottom-k sample: the rows with the smallest uniform keys are a uniform sample
        self.sample = np.concatenate([self.sample, tr])
        self.sample_keys = np.concatenate([self.sample_keys, self.gen.random(tr.shape[0])])
        if self.sample.shape[0] > self.sample_rows:
            keep = np.argpartition(self.sample_keys, self.sample_rows - 1)[: self.sample_rows]
            self.sample, self.sample_keys = self.sample[keep], self.sample_keys[keep]

    # -- after the pass ------------------------------------------------------------------------
    def is_permutation(self, j: int) -> bool:
        """Whether whole-number column ``j`` holds each of ``lo..hi`` once (n = hi - lo + 1):
        its hash sum against that of ``lo..hi``, computed in pieces."""
        lo, hi = int(self.lo[j]), int(self.hi[j])
        total = np.zeros(1, np.uint64)  # an array: sums modulo 2^64 without overflow warnings
        for start in range(lo, hi + 1, 1 << 20):
            v = np.arange(start, min(start + (1 << 20), hi + 1), dtype=np.int64)
            total += splitmix64(_PERMUTATION_SEED, v.view(np.uint64)).sum(dtype=np.uint64)
        return bool(total[0] == self.hash_sum[j])

    def roles(self) -> ColumnRoles:
        """:func:`deepfit.data.columns.infer_roles`' rules, from the streamed facts."""
        cfg, n = self.cfg, self.seen
        roles: dict[str, str] = {}
        reasons: dict[str, str] = {}
        warnings: list[str] = []
        index = {name: j for j, name in enumerate(self.numeric_like)}
        for j, name in enumerate(self.file.names):
            if name not in self.candidates:
                continue
            kind = self.kinds[name]
            if name in cfg["drop"]:
                roles[name], reasons[name] = "drop", "data.drop"
            elif name in cfg["numeric"]:
                if kind != "numeric":
                    bad = next(
                        t for t in self.levels[name].counts if t is not None and not _is_number(t)
                    )
                    raise DataError(
                        f"config key 'data.numeric': column {name!r} holds text ({bad!r}); it "
                        "cannot be numeric"
                    )
                roles[name] = "numeric"
            elif name in cfg["categorical"]:
                roles[name] = "categorical"
            elif j == 0 and self.row_numbers and kind == "numeric":
                roles[name], reasons[name] = "drop", "row numbers"
            elif kind == "numeric":
                c = index[name]
                if self.missing_all[c] == n or (
                    self.missing_all[c] == 0 and self.lo[c] == self.hi[c]
                ):
                    roles[name], reasons[name] = "drop", "constant"
                elif (
                    n >= 20
                    and self.whole[c]
                    and self.hi[c] - self.lo[c] == n - 1
                    and self.is_permutation(c)
                ):
                    roles[name], reasons[name] = "drop", "ID-like"
                    warnings.append(id_warning(name, n))
                else:
                    roles[name] = "numeric"
            else:
                levels = self.levels[name]
                present = set(levels.counts)
                if levels.overflow:
                    roles[name], reasons[name] = "drop", "too many levels"
                    warnings.append(
                        f"column {name!r} has more than {LEVEL_CAP} distinct values and is not "
                        "used when streaming; name it in data.categorical to use it"
                    )
                elif present == {None} or (len(present) == 1 and None not in present):
                    roles[name], reasons[name] = "drop", "constant"
                elif n >= 20 and None not in present and len(present) == n:
                    roles[name], reasons[name] = "drop", "ID-like"
                    warnings.append(id_warning(name, n))
                else:
                    roles[name] = "categorical"
        if not any(r != "drop" for r in roles.values()):
            raise DataError(f"{self.file.path}: no feature columns left besides the target")
        return ColumnRoles(roles, reasons, warnings)

    def preprocessor(self, roles: ColumnRoles) -> tuple[TablePreprocessor, dict[str, Any]]:
        """The fitted :class:`TablePreprocessor`, built through its saved state, and the
        training rows' missing cells."""
        cfg, path = self.cfg, self.file.path
        scaling = table_scaling(cfg)
        numeric, categorical = roles.of("numeric"), roles.of("categorical")
        used = numeric + categorical
        if cfg["missing"] == "error":
            found = [(self.first_missing[n], n) for n in used if n in self.first_missing]
            if found:
                row, name = min(found)
                raise DataError(
                    f"{path}: row {row + 1}, column {name!r}: missing cell (data.missing = "
                    "'error'; set it to 'impute' to fill missing cells)"
                )
        infinite = [(*self.first_inf[n], n) for n in numeric if n in self.first_inf]
        if infinite:
            row, value, name = min(infinite)
            raise DataError(
                f"{path}: row {row + 1}, column {name!r}: infinite value {value}; fix or "
                "remove it in the source data"
            )
        cols = [self.numeric_like.index(n) for n in numeric]
        sample = self.sample[:, cols]
        moments_n = self.moments.n[cols]
        with np.errstate(all="ignore"):
            medians = np.array(
                [
                    np.nanmedian(sample[:, j])
                    if (~np.isnan(sample[:, j])).any()
                    else (self.moments.mean[c] if moments_n[j] else 0.0)
                    for j, c in enumerate(cols)
                ]
            ).reshape(-1)
        missing_train = self.missing_train[cols]
        arrays: dict[str, np.ndarray] = {"medians": medians}
        if numeric and scaling != "none":
            arrays.update(self.scaler_state(scaling, cols, medians, sample))
        # the preprocessor's own rules for missing cells (a threshold, a most frequent level),
        # read from an unfitted one so that both paths follow the same settings
        blank = TablePreprocessor(
            roles, scaling=scaling, max_onehot=cfg["max_onehot"], missing=cfg["missing"]
        )
        min_missing = int(getattr(blank, "min_missing", 1))
        vocab: dict[str, list[str]] = {}
        modes: dict[str, str] = {}
        report_missing = {n: int(m) for n, m in zip(numeric, missing_train, strict=True) if m}
        for name in categorical:
            counts = self.levels[name].counts
            if self.file.kinds[name] == "string":
                counts = self.levels[name].rekeyed(_string_key(self.kinds[name]))
            train = {t: int(c[1]) for t, c in counts.items() if c[1]}
            present = list(sort_class_names(t for t in train if t is not None))
            holes = train.get(None, 0)
            vocab[name] = present
            if present:
                modes[name] = max(present, key=lambda v: train[v])
            if holes and (holes >= min_missing or not present):
                vocab[name].append(MISSING_LEVEL)
            if holes:
                report_missing[name] = holes
        meta = {
            "roles": roles.to_dict(),
            "numeric": numeric,
            "categorical": categorical,
            "indicators": [
                n for n, m in zip(numeric, missing_train, strict=True) if m >= min_missing
            ],
            "vocab": vocab,
            "scaling": scaling,
            "max_onehot": cfg["max_onehot"],
            "missing": cfg["missing"],
        }
        if hasattr(blank, "min_missing"):
            meta.update(min_missing=min_missing, modes=modes)
        pre = TablePreprocessor.from_state(arrays, meta, where=f"{path} (streamed statistics)")
        report = TransformReport(missing=report_missing).to_dict()
        return pre, report

    def scaler_state(self, scaling, cols, medians, sample) -> dict[str, np.ndarray]:
        """The scaler's state dict (``scaler.*`` keys), from the exact moments (standardize)
        or the imputed sample (robust, quantile)."""
        holes = self.missing_train[cols].astype(np.float64)
        lo = np.where(holes > 0, np.fmin(self.lo_train[cols], medians), self.lo_train[cols])
        hi = np.where(holes > 0, np.fmax(self.hi_train[cols], medians), self.hi_train[cols])
        lo, hi = np.where(np.isfinite(lo), lo, medians), np.where(np.isfinite(hi), hi, medians)
        if scaling == "standardize":
            present = _Moments(len(cols))
            present.n, present.mean, present.m2 = (
                self.moments.n[cols],
                self.moments.mean[cols],
                self.moments.m2[cols],
            )
            mean, std = present.with_constant(holes, medians)
            constant = lo == hi  # Standardizer: ptp 0 -> mean = the value, std = 1
            mean[constant], std[constant] = lo[constant], 1.0
            return {"scaler.mean": mean, "scaler.std": std}
        imputed = np.where(np.isnan(sample), medians, sample)
        if scaling == "robust":
            q25, q50, q75 = np.quantile(imputed, [0.25, 0.5, 0.75], axis=0)
            scale, half = q75 - q25, (hi - lo) / 2
            scale = np.where(scale > 0, scale, np.where(half > 0, half, 1.0))
            return {"scaler.center": q50, "scaler.scale": scale}
        from deepfit.data.scaling import QuantileScaler

        k = max(min(QuantileScaler().n_quantiles, int(self.part_rows[:, 0].sum())), 2)
        refs = np.linspace(0.0, 1.0, k)
        return {
            "scaler.quantiles": np.quantile(imputed, refs, axis=0).T.copy(),
            "scaler.references": refs,
        }

    def task_and_target(self) -> tuple[str, TargetEncoder]:
        """The task (``data.task``, or :func:`deepfit.data.pipeline.infer_task`'s rule on every
        row with a target) and the target encoder (class names from every such row, as in
        memory; a regression target's mean and std from the training rows)."""
        cfg, path, name = self.cfg, self.file.path, self.target
        kind = self.kinds[name]
        counts = self.target_levels.counts
        if self.file.kinds[name] == "string":
            counts = self.target_levels.rekeyed(_string_key(kind))
        present = [t for t in counts if t is not None]
        if not present:
            raise DataError(f"{path}: the target column {name!r} is empty")
        task = cfg["task"]
        if task == "auto":
            few = not self.target_many and len(present) <= MAX_AUTO_CLASSES
            numeric = kind == "numeric"
            task = "classification" if not numeric or (self.target_whole and few) else "regression"
        if task == "regression":
            if kind != "numeric":
                bad = next(t for t in present if not _is_number(t))
                raise DataError(
                    f"{path}: column {name!r}: non-numeric value {bad!r} in a regression "
                    "target (set data.task = 'classification'?)"
                )
            if cfg["class_weight"] not in ("none", None):
                raise DataError("config key 'data.class_weight' applies to classification only")
            std = np.sqrt(self.target_moments.m2[0] / self.target_moments.n[0])
            state = {
                "mean": np.asarray(self.target_moments.mean[0]),
                "std": np.asarray(std if std > 0 else 1.0),
            }
            return task, TargetEncoder.from_state(state, {"task": task}, where=path)
        if self.target_levels.overflow:
            raise DataError(
                f"{path}: column {name!r} has more than {LEVEL_CAP} distinct labels; a "
                "classification target needs fewer (set data.task = 'regression'?)"
            )
        names = list(sort_class_names(label_key(t) for t in present))
        if len(names) < 2:
            raise DataError(
                f"{path}: column {name!r}: a single class ({names[0]!r}); classification needs "
                "at least 2"
            )
        meta = {"task": task, "class_names": names}
        return task, TargetEncoder.from_state({}, meta, where=path)

    def class_weights(self, target: TargetEncoder) -> np.ndarray | None:
        """Per-class weights of ``data.class_weight`` (``"balanced"`` on the training rows), and
        the refusal of training weights that sum to zero."""
        cfg, names = self.cfg, target.class_names or []
        per_class = None
        counts = np.zeros(len(names))
        weight = np.zeros(len(names))
        if target.task == "classification":
            rekey = (
                _string_key(self.kinds[self.target])
                if self.file.kinds[self.target] == "string"
                else (lambda t: t)
            )
            index = {n: i for i, n in enumerate(names)}
            for text, entry in self.target_levels.counts.items():
                if text is not None:
                    i = index[label_key(rekey(text))]
                    counts[i] += entry[1]
                    weight[i] += entry[2]
        cw = cfg["class_weight"]
        if cw not in (None, "none") and target.task == "classification":
            per_class = class_weights(cw, names, counts)
        if self.bad_weight is not None:
            row, value = self.bad_weight
            raise DataError(
                f"{self.file.path}: row {row + 1}, column {self.weight!r}: weight {value} must "
                "be a finite number >= 0"
            )
        if (self.weight or per_class is not None) and target.task == "classification":
            total = float(np.dot(weight, per_class if per_class is not None else 1.0))
            if not total > 0:
                raise DataError(f"{self.file.path}: every sample weight is zero")
        return per_class

    def holdout(self, part: str) -> Table:
        raws = [r for r, _ in self.kept[part]]
        rows = np.concatenate([np.zeros(0, np.int64), *(i for _, i in self.kept[part])])
        raw = self.file.concat(raws, self.needed)
        return self.file.table(raw, self.needed, self.kinds, self.na, rows)


def _not_none(cells: np.ndarray) -> np.ndarray:
    """Which cells of an object column are present (not None)."""
    return np.asarray(cells != None, dtype=bool)  # noqa: E711 (elementwise)


def _check_column(file: ChunkedFile, name: str, key: str) -> None:
    if name not in file.names:
        import difflib

        close = difflib.get_close_matches(name, file.names, n=1, cutoff=0.0)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise DataError(
            f"config key '{key}' names column {name!r}, which {file.path} does not have "
            f"({', '.join(file.names)}){hint}"
        )


def first_pass(
    cfg: Mapping[str, Any],
    file: ChunkedFile,
    split: HashSplit,
    *,
    sample_rows: int = DEFAULT_SAMPLE_ROWS,
    rng: RNGLike = 0,
) -> StreamStatistics:
    """One pass over ``file``: column roles, the task, the fitted preprocessing and target
    encoding (from the training rows of ``split``), and the dev / test rows as tables.

    Which statistics are exact and which approximate is in the module docstring;
    ``sample_rows`` bounds the sample of the medians and quantiles, drawn with ``rng``.
    """
    fp = _FirstPass(cfg, file, split, sample_rows, as_generator(rng))
    fp.run()
    notes: list[str] = []
    if fp.seen < file.n_rows:
        notes.append(f"{file.n_rows - fp.seen} rows without a target value are not used")
    task, target = fp.task_and_target()
    if not fp.part_rows[:, 0].sum():
        raise DataError(
            f"{file.path}: data.split leaves no training rows among the {fp.seen} with a target"
        )
    class_weights = fp.class_weights(target)
    roles = fp.roles()
    pre, report = fp.preprocessor(roles)
    return StreamStatistics(
        file=file,
        kinds=fp.kinds,
        n_with_target=fp.seen,
        part_rows=fp.part_rows,
        roles=roles,
        task=task,
        preprocessor=pre,
        target=target,
        class_weights=class_weights,
        holdouts={p: fp.holdout(p) for p in ("dev", "test")},
        notes=notes + roles.warnings,
        train_report=report,
    )


# -- the shuffle buffer ------------------------------------------------------------------------
class ShuffleBuffer:
    """Mini-batches drawn from a bounded buffer of rows that the stream keeps refilling.

    The buffer fills from the stream until it holds ``capacity`` rows; then, while rows keep
    coming, each batch is ``batch_size`` rows drawn uniformly without replacement from the
    full buffer (``rng.choice(capacity, batch_size, replace=False)``), and the next rows of
    the stream take their places. When the stream ends, what is left is permuted and cut into
    batches, the last holding the ``n % batch_size`` rows left over. So every row of the stream
    is in exactly one batch, and only the last batch is short, as :func:`minibatches`' are.

    A batch is a view of a reused array, overwritten by the next one (as
    :class:`~deepfit.data.batches.RowGather`'s): use it before asking for the next.

    Parameters
    ----------
    capacity : int
        Rows the buffer holds, at least ``batch_size`` (config key ``data.shuffle_buffer``).
        The larger, the closer a batch is to a uniform sample of the whole stream; one at least
        as large as the stream gives a uniform permutation.
    batch_size : int
    """

    def __init__(self, capacity: int, batch_size: int) -> None:
        self.batch_size = _check_batch_size(batch_size)
        if (
            isinstance(capacity, bool)
            or not isinstance(capacity, (int, np.integer))
            or capacity < self.batch_size
        ):
            raise DataError(
                f"the shuffle buffer (config key data.shuffle_buffer = {capacity!r} rows) must "
                f"hold at least one batch ({self.batch_size} rows)"
            )
        self.capacity = int(capacity)

    def batches(
        self, chunks: Iterable[tuple[np.ndarray, ...]], rng: np.random.Generator
    ) -> Iterator[tuple[np.ndarray, ...]]:
        """The batches of one pass over ``chunks`` (tuples of arrays sharing their first
        axis, e.g. ``(X, y)`` or ``(X, y, w)``), drawn with ``rng``."""
        cap, size = self.capacity, self.batch_size
        bufs: list[np.ndarray] = []
        outs: list[np.ndarray] = []
        count = 0
        for chunk in chunks:
            m = len(chunk[0])
            if not bufs and m:
                bufs = [np.empty((cap, *a.shape[1:]), a.dtype) for a in chunk]
                outs = [np.empty((size, *a.shape[1:]), a.dtype) for a in chunk]
            pos = 0
            while pos < m:
                if count < cap:
                    take = min(cap - count, m - pos)
                    for b, a in zip(bufs, chunk, strict=True):
                        b[count : count + take] = a[pos : pos + take]
                    count, pos = count + take, pos + take
                    if count < cap:
                        continue
                idx = rng.choice(cap, size, replace=False)
                yield tuple(_gather(b, idx, o) for b, o in zip(bufs, outs, strict=True))
                if m - pos >= size:  # the next rows of the chunk take the freed slots
                    for b, a in zip(bufs, chunk, strict=True):
                        b[idx] = a[pos : pos + size]
                    pos += size
                else:
                    _remove(bufs, idx, cap)
                    count = cap - size
        if count:
            order = rng.permutation(count)
            for start in range(0, count, size):
                idx = order[start : start + size]
                yield tuple(_gather(b, idx, o) for b, o in zip(bufs, outs, strict=True))


def _gather(buf: np.ndarray, idx: np.ndarray, out: np.ndarray) -> np.ndarray:
    view = out[: len(idx)]
    buf.take(idx, axis=0, out=view, mode="clip")
    return view


def _remove(bufs: list[np.ndarray], idx: np.ndarray, cap: int) -> None:
    """Drop the rows ``idx`` from full buffers of ``cap`` rows: the rows after
    ``cap - len(idx)`` that stay move into the holes before it."""
    keep = cap - len(idx)
    holes = idx[idx < keep]
    tail = np.ones(len(idx), dtype=bool)
    tail[idx[idx >= keep] - keep] = False
    movers = keep + np.flatnonzero(tail)
    for b in bufs:
        b[holes] = b[movers]


class _Raised:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


def prefetched(items: Iterator[Any], depth: int = 2) -> Iterator[Any]:
    """The items of ``items``, computed ahead by a background thread with at most ``depth``
    waiting: the next chunks are read and preprocessed while the trainer works on this one
    (pyarrow and most of NumPy release the GIL). The items and their order are those of
    ``items``; an exception there is raised here, at the item it replaced; closing this
    generator stops the thread."""
    import queue
    import threading

    waiting: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                waiting.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            for item in items:
                if not put(item):
                    return
        except BaseException as exc:  # handed to the consumer, raised there
            put(_Raised(exc))
            return
        put(done)

    thread = threading.Thread(target=work, name="deepfit-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item = waiting.get()
            if item is done:
                return
            if isinstance(item, _Raised):
                raise item.exc
            yield item
    finally:
        stop.set()
        thread.join()


class ChunkCache:
    """Preprocessed chunks kept on disk (``data.stream_cache``): the first epoch writes each
    chunk's arrays as ``.npy`` files in a temporary folder, later epochs read them back
    memory-mapped instead of reading and preprocessing the file again. The arrays are the same
    bit for bit, so the batches are too. The folder is removed when the cache is collected
    (or the process exits).

    Parameters
    ----------
    nbytes : int
        What the cache will hold; refused up front when the folder's disk has less free.
    folder : str, optional
        Where to make the temporary folder (default: the system's, ``$TMPDIR``).
    """

    def __init__(self, nbytes: int, folder: str | None = None) -> None:
        import shutil
        import tempfile
        import weakref

        from deepfit.io import format_bytes

        base = folder or tempfile.gettempdir()
        free = shutil.disk_usage(base).free
        if nbytes > free:
            raise DataError(
                f"config key data.stream_cache: the preprocessed rows need about "
                f"{format_bytes(nbytes)} on disk, {base} has {format_bytes(free)} free; set "
                "data.stream_cache = false or TMPDIR to a larger disk"
            )
        self.path = Path(tempfile.mkdtemp(prefix="deepfit-stream-", dir=base))
        self._cleanup = weakref.finalize(self, shutil.rmtree, str(self.path), True)

    def get(self, k: int) -> tuple[np.ndarray, ...] | None:
        done = self.path / f"{k}.done"
        if not done.exists():
            return None
        n = int(done.read_text())
        # plain views of the mapped files: slicing a numpy.memmap costs a Python call per view
        return tuple(
            np.load(self.path / f"{k}.{i}.npy", mmap_mode="r").view(np.ndarray) for i in range(n)
        )

    def put(self, k: int, arrays: tuple[np.ndarray, ...]) -> None:
        for i, a in enumerate(arrays):  # each file whole, or not there
            part = self.path / f"{k}.{i}.npy"
            with open(part.with_suffix(".tmp"), "wb") as fh:
                np.save(fh, np.ascontiguousarray(a))
            os.replace(part.with_suffix(".tmp"), part)
        (self.path / f"{k}.done").write_text(str(len(arrays)))


# -- the training stream -----------------------------------------------------------------------
class TableStream(BatchSource):
    """The rows of some parts of a hash-split table file, preprocessed chunk by chunk, as
    mini-batches through a :class:`ShuffleBuffer` (a :class:`BatchSource` for
    :meth:`deepfit.training.trainer.Trainer.fit`).

    Parameters
    ----------
    stats : StreamStatistics
        The first pass (kinds, fitted preprocessing and target encoding, row counts).
    cfg : mapping
        The ``[data]`` section (target, weight, missing tokens, shuffle buffer).
    split : HashSplit
    parts : tuple of str
        The parts of the hash split streamed: ``("train",)``.
    extra : tuple of arrays, optional
        ``(X, y)`` or ``(X, y, w)`` rows in memory streamed with the file's as one more chunk
        (:meth:`with_dev`: the dev split joining the training rows for a refit).
    cache : ChunkCache, optional
        Where preprocessed chunks are kept after their first read (``data.stream_cache``
        makes one).
    """

    def __init__(
        self,
        stats: StreamStatistics,
        cfg: Mapping[str, Any],
        split: HashSplit,
        parts: Sequence[str] = ("train",),
        extra: tuple[np.ndarray, ...] | None = None,
        cache: ChunkCache | None = None,
    ) -> None:
        self.stats, self.cfg, self.split = stats, cfg, split
        self.extra = extra if extra is not None and len(extra[1]) else None
        self.parts = tuple(parts)
        self.codes = [HashSplit.PARTS.index(p) for p in self.parts]
        self.file = stats.file
        self.na = tuple(dict.fromkeys(["", *cfg["na_values"]]))
        self.shuffle_buffer = int(cfg.get("shuffle_buffer", DEFAULT_SHUFFLE_BUFFER))
        self.chunk_rows = stats.part_rows[:, self.codes].sum(axis=1)
        if self.extra is not None:
            self.chunk_rows = np.append(self.chunk_rows, len(self.extra[1]))
        self.n_rows = int(self.chunk_rows.sum())
        self.n_features = stats.preprocessor.n_features
        self.weighted = bool(cfg["weight"]) or stats.class_weights is not None
        self.target_name = cfg["target"]
        pre = stats.preprocessor
        self.columns = list(
            dict.fromkeys(
                [*pre.input_columns, self.target_name, *([cfg["weight"]] if cfg["weight"] else [])]
            )
        )
        if stats.task == "classification":
            self._class_index = {n: i for i, n in enumerate(stats.target.class_names)}
        if cache is None and cfg.get("stream_cache"):
            row_bytes = 4 * self.n_features + 8 + (8 if self.weighted else 0)
            cache = ChunkCache(self.n_rows * row_bytes)
        self.cache = cache

    def with_dev(self, X: np.ndarray, y: np.ndarray, w: np.ndarray | None) -> TableStream:
        """This stream with the dev split's rows (preprocessed, in memory) as one more chunk,
        as a refit on train + dev concatenates them (weights 1 where dev has none)."""
        extra: tuple[np.ndarray, ...] = (X, y)
        if self.weighted:
            extra = (X, y, np.ones(len(y)) if w is None else np.asarray(w, np.float64))
        return TableStream(self.stats, self.cfg, self.split, self.parts, extra, self.cache)

    def chunk(self, k: int) -> tuple[np.ndarray, ...]:
        """``(X, y)`` or ``(X, y, w)`` of chunk ``k``'s rows in :attr:`parts`, file order
        (chunk ``n_chunks``: the extra rows)."""
        if k == self.file.n_chunks:
            return self.extra
        if self.cache is not None:
            cached = self.cache.get(k)
            if cached is not None:
                return cached
            arrays = self._read_chunk(k)
            self.cache.put(k, arrays)
            return arrays
        return self._read_chunk(k)

    def _read_chunk(self, k: int) -> tuple[np.ndarray, ...]:
        f = self.file
        raw = f.read(k, self.columns)
        rows = f.offsets[k] + np.arange(f.chunk_sizes[k])
        t = f.cells(raw, self.target_name, self.stats.kinds[self.target_name], self.na)
        has = ~np.isnan(t) if t.dtype.kind == "f" else _not_none(t)
        at = np.flatnonzero(np.isin(self.split.assign(rows), self.codes) & has)
        table = f.table(f.take(raw, at), self.columns, self.stats.kinds, self.na, rows[at])
        X, _ = self.stats.preprocessor.transform(table)
        y = self._encode(table[self.target_name], table)
        if not self.weighted:
            return X, y
        w = (
            np.ones(len(y))
            if not self.cfg["weight"]
            else table[self.cfg["weight"]].astype(np.float64)
        )
        if self.stats.class_weights is not None:
            w = w * self.stats.class_weights[y]
        return X, y, w

    def _encode(self, values: np.ndarray, table: Table) -> np.ndarray:
        """The target as :meth:`TargetEncoder.encode` gives it: class indices (by each distinct
        label's :func:`label_key`, one lookup per distinct label), or standardized values."""
        target = self.stats.target
        if target.task == "regression":
            return target.encode(values, where=self.file.path, rows=table)
        texts, index = _level_codes(values)
        lookup = np.array([self._class_index.get(label_key(t), -1) for t in texts] + [-1])
        codes = lookup[index]
        if (codes < 0).any():
            i = int(np.argmax(codes < 0))
            raise DataError(
                f"{self.file.path}: row {table.row(i)}, column {self.target_name!r}: label "
                f"{values[i]!r} was not seen in the first pass (did the file change?)"
            )
        return codes.astype(np.int64)

    def chunks(self, order: Iterable[int] | None = None) -> Iterator[tuple[np.ndarray, ...]]:
        """The preprocessed chunks holding rows of :attr:`parts`, in file order or ``order``."""
        for k in range(len(self.chunk_rows)) if order is None else order:
            if self.chunk_rows[k]:
                yield self.chunk(int(k))

    def batches(self, batch_size: int, rng: np.random.Generator) -> Iterator[tuple[Any, ...]]:
        """One epoch: the chunks in a random order, through a shuffle buffer; ``(x, y, w)``
        batches (``w`` None without weights)."""
        order = rng.permutation(len(self.chunk_rows))
        buffer = ShuffleBuffer(self.shuffle_buffer, batch_size)
        for batch in buffer.batches(prefetched(self.chunks(order)), rng):
            yield batch if self.weighted else (*batch, None)

    def digest(self) -> str:
        """The file (path, size, modification time), the split and the fitted preprocessing:
        a checkpoint resumes only on the same stream."""
        import json

        st = os.stat(self.file.path)
        arrays, meta = self.stats.preprocessor.state()
        h = hashlib.blake2b(digest_size=12)
        about = [self.file.path, st.st_size, st.st_mtime_ns, self.split.to_dict(), self.parts]
        h.update(json.dumps([about, meta], sort_keys=True, default=str).encode())
        for key in sorted(arrays):
            h.update(np.ascontiguousarray(arrays[key]).tobytes())
        for a in self.extra or ():
            h.update(np.ascontiguousarray(a).tobytes())
        return h.hexdigest()

    def rows(self) -> StreamRows:
        return StreamRows(self)

    @property
    def target_ndim(self) -> int:
        return 1


class StreamRows:
    """The preprocessed rows of a :class:`TableStream` in file order, sliceable as an array
    (``rows[i:j]``) one chunk at a time: what batch norm's statistics are recomputed from
    after weight averaging (:func:`deepfit.optim.averaging.update_bn`)."""

    def __init__(self, stream: TableStream) -> None:
        self.stream = stream
        self.ends = np.cumsum(stream.chunk_rows)
        self._cached: tuple[int, np.ndarray] | None = None

    def __len__(self) -> int:
        return self.stream.n_rows

    @property
    def shape(self) -> tuple[int, int]:
        return (self.stream.n_rows, self.stream.n_features)

    def _chunk_x(self, k: int) -> np.ndarray:
        if self._cached is None or self._cached[0] != k:
            self._cached = (k, self.stream.chunk(k)[0])
        return self._cached[1]

    def __getitem__(self, s: slice) -> np.ndarray:
        if not isinstance(s, slice):
            raise DataError("streamed rows are read by slices, rows[i:j]")
        start, stop, step = s.indices(len(self))
        if step != 1:
            raise DataError("streamed rows are read by contiguous slices")
        pieces = [np.zeros((0, self.stream.n_features), np.float32)]
        k = int(np.searchsorted(self.ends, start, side="right"))
        while start < stop:
            begin = int(self.ends[k] - self.stream.chunk_rows[k])
            x = self._chunk_x(k)
            end = min(stop, int(self.ends[k]))
            pieces.append(x[start - begin : end - begin])
            start, k = end, k + 1
        return np.concatenate(pieces)


def evaluate_stream(trainer: Any, stream: TableStream) -> dict[str, float]:
    """Mean loss, and accuracy (classification) or R^2 (regression) of ``trainer``'s model
    over every row of ``stream``, one chunk at a time, in inference mode (unweighted, as
    :func:`deepfit.experiment.evaluate`).

    Chunk means are combined by their row counts; ``R^2 = 1 - SS_res / SS_tot`` with
    ``SS_tot`` from the merged moments of the targets (scikit-learn's convention for a
    constant target: 1 when predicted exactly, else 0).
    """
    total, loss, hits = 0, 0.0, 0.0
    ss_res = 0.0
    moments = _Moments(1)
    for X, y, *_ in stream.chunks():
        result = trainer.evaluate(X, y)
        n = len(y)
        total += n
        loss += result["loss"] * n
        if "accuracy" in result:
            hits += result["accuracy"] * n
        if trainer.task == "regression":
            pred = np.asarray(trainer.predict(X), dtype=np.float64).reshape(y.shape)
            ss_res += float(((y.astype(np.float64) - pred) ** 2).sum())
            moments.add(y.astype(np.float64).reshape(-1, 1))
    if not total:
        return {}
    out = {"loss": loss / total}
    if trainer.task == "classification":
        out["accuracy"] = hits / total
    else:
        ss_tot = float(moments.m2[0])
        out["r2"] = 1.0 - ss_res / ss_tot if ss_tot > 0 and total > 1 else float(ss_res == 0)
    return out


# -- the tabular path, streamed ----------------------------------------------------------------
@dataclass
class StreamedTable:
    """As :class:`~deepfit.data.pipeline.TableSplits`, with the training split a stream."""

    train: TableStream
    dev: tuple[np.ndarray, np.ndarray]
    test: tuple[np.ndarray, np.ndarray]
    dev_weight: np.ndarray | None
    task: str
    preprocessor: TablePreprocessor
    target: TargetEncoder
    roles: ColumnRoles
    name: str
    notes: list[str] = field(default_factory=list)
    reports: dict[str, dict[str, Any]] = field(default_factory=dict)


def prepare_stream(
    cfg: Mapping[str, Any], *, seed: int, sample_rows: int = DEFAULT_SAMPLE_ROWS
) -> StreamedTable:
    """The tabular path of :func:`deepfit.data.pipeline.prepare_table` for a file read as a
    stream (see the module docstring): one statistics pass, the dev and test rows
    preprocessed in memory, the training rows left on disk."""
    from deepfit.data.pipeline import encode_target, load_table, sample_weights
    from deepfit.io import check_size

    file = open_chunked(cfg["path"])
    extra = {p: load_table(cfg[f"{p}_path"], cfg) for p in ("dev", "test") if cfg[f"{p}_path"]}
    split = hash_split(cfg, file.n_rows, seed, extra)
    held_out = file.in_memory_bytes() * (1.0 - split.bounds[0]) * split.keep
    check_size(int(held_out), f"{file.path}: the dev and test rows (config key data.split)")
    stats = first_pass(cfg, file, split, sample_rows=sample_rows, rng=seed)
    pre, target, task = stats.preprocessor, stats.target, stats.task
    arrays: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    reports: dict[str, dict[str, Any]] = {"train": stats.train_report}
    dev_weight = None
    for part in ("dev", "test"):
        t = extra.get(part, stats.holdouts[part])
        if t.n_rows:
            X, report = pre.transform(t)
            y = encode_target(t, cfg["target"], target)
        else:
            X, report = np.zeros((0, pre.n_features), np.float32), TransformReport()
            y = np.zeros(0, dtype=np.int64 if task == "classification" else np.float32)
        arrays[part], reports[part] = (X, y), report.to_dict()
        if part == "dev" and t.n_rows:
            dev_weight = sample_weights(
                t,
                cfg["weight"],
                y if task == "classification" else None,
                cfg["class_weight"] if task == "classification" else "none",
                target,
            )
    n = stats.part_rows.sum(axis=0)
    notes = [
        *stats.notes,
        f"streamed from {Path(file.path).name}: {file.n_chunks} chunk"
        f"{'s' if file.n_chunks != 1 else ''}, rows split by a hash "
        f"of their index: {n[0]} train / {n[1]} dev / {n[2]} test",
    ]
    return StreamedTable(
        train=TableStream(stats, cfg, split),
        dev=arrays["dev"],
        test=arrays["test"],
        dev_weight=dev_weight,
        task=task,
        preprocessor=pre,
        target=target,
        roles=stats.roles,
        name=Path(file.path).name.split(".")[0],
        notes=notes,
        reports=reports,
    )

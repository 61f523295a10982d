"""Safe files: atomic writes, locks, size limits, and model files that never execute code.

A deepfit file is a ``.npz`` archive of plain numeric arrays plus one array ``__meta__``
holding a JSON document (format name, format version, deepfit version and whatever the
writer describes). It is read with ``allow_pickle=False``, so loading a file cannot run
code, and the sizes its zip directory and ``.npy`` headers declare are checked against
:func:`memory_limit` before anything is decompressed, so a small file cannot claim gigabytes.
Every write goes to a temporary file in the same folder, is flushed and fsync'ed, then
renamed over the target: a crash leaves either the old file or the new one, never half of one.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import secrets
import socket
import sys
import time
import zipfile
import zlib
from collections.abc import Callable, Collection, Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np

from deepfit.bundle import ModelBundle, check_metadata
from deepfit.errors import DeepfitError

META_KEY = "__meta__"
MODEL_FORMAT = "deepfit-model"
MODEL_FORMAT_VERSION = 1
MAX_BYTES_ENV = "DEEPFIT_MAX_BYTES"
MAX_META_CHARS = 16 << 20
MAX_JSON_DEPTH = 32
_NPY_MAGIC = b"\x93NUMPY"


# -- sizes --------------------------------------------------------------------------------------
def format_bytes(n: float) -> str:
    """``1536`` -> ``"1.5 KiB"``: a byte count for people."""
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{int(n)} bytes" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError  # pragma: no cover


def available_memory() -> int | None:
    """Bytes of memory the system can still give (Linux ``MemAvailable``), or None."""
    with contextlib.suppress(OSError, ValueError):
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    with contextlib.suppress(AttributeError, ValueError, OSError):
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    return None


def memory_limit() -> int:
    """The most bytes one file, array or model may take in memory: ``$DEEPFIT_MAX_BYTES``
    when set, otherwise the memory available now (no limit when that is unknown)."""
    raw = os.environ.get(MAX_BYTES_ENV, "").strip()
    if raw:
        try:
            value = int(float(raw))
        except ValueError:
            raise DeepfitError(f"{MAX_BYTES_ENV}={raw!r} is not a number of bytes") from None
        if value < 1:
            raise DeepfitError(f"{MAX_BYTES_ENV}={raw!r} must be a positive number of bytes")
        return value
    available = available_memory()
    return available if available is not None else sys.maxsize


def check_size(nbytes: int, what: str, limit: int | None = None) -> None:
    """Refuse, before allocating, ``what`` needing ``nbytes`` when that exceeds ``limit``
    (default :func:`memory_limit`). ``what`` names the culprit (file, array, layer)."""
    limit = memory_limit() if limit is None else limit
    if nbytes > limit:
        source = f"${MAX_BYTES_ENV}" if os.environ.get(MAX_BYTES_ENV) else "memory available"
        raise DeepfitError(
            f"{what} needs {format_bytes(nbytes)} in memory, more than the "
            f"{format_bytes(limit)} allowed ({source}; set {MAX_BYTES_ENV} to change the limit)"
        )


def check_file_size(path: str | Path, what: str = "", limit: int | None = None) -> int:
    """Refuse a file larger than ``limit`` before reading it; returns its size in bytes."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise DeepfitError(f"{path}: no such file") from None
    check_size(size, f"{path}{': ' + what if what else ''}", limit)
    return size


# -- atomic writes --------------------------------------------------------------------------
def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _create_temp(path: Path, suffix: str) -> tuple[int, Path]:
    """A new, empty file next to ``path``: ``.<name>.<random><suffix>``, created with mode
    0666 so that the kernel applies the umask (the process-wide umask is never touched)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}{suffix}"
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"{path.parent}: could not create a temporary file")


def atomic_write(
    path: str | Path,
    write: Callable[[IO[bytes]], None],
    *,
    verify: Callable[[Path], None] | None = None,
    suffix: str = ".tmp",
) -> Path:
    """Write ``path`` through ``write(file)`` atomically (temp file, fsync, rename).

    The file gets the mode a plain ``open()`` would give (0666 less the umask).
    ``verify(temp_path)``, when given, runs on the complete temporary file before the rename;
    if it raises, the temporary file is removed, ``path`` is left as it was, and the
    exception propagates (downloads check their SHA-256 this way). An ``OSError`` (a full
    disk, say) names ``path``.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = _create_temp(path, suffix)
    except OSError as exc:
        if exc.filename is None:
            exc.filename = str(path)
        raise
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        if verify is not None:
            verify(tmp)
        os.replace(tmp, path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.filename in (None, str(tmp)):
            exc.filename = str(path)
        raise
    _fsync_dir(path.parent)
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def remove_stale_temporaries(path: str | Path, suffix: str = ".tmp") -> list[Path]:
    """Delete the temporary files :func:`atomic_write` left next to ``path`` when its
    process was killed mid-write (``.<name>.<random><suffix>``); returns what was removed.

    Call it only where no other process writes ``path`` (a locked run directory, the one
    trainer of a checkpoint): a live writer's temporary file looks the same.
    """
    path = Path(path)
    removed = []
    with contextlib.suppress(FileNotFoundError):
        for stale in path.parent.glob(f".{path.name}.*{suffix}"):
            with contextlib.suppress(FileNotFoundError):
                stale.unlink()
                removed.append(stale)
    return removed


# -- CSV cells -------------------------------------------------------------------------------
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(cell: str) -> str:
    """A text cell that a spreadsheet will not run as a formula (CSV injection).

    As OWASP advises, a cell starting with ``=``, ``+``, ``-``, ``@``, tab or carriage return
    gets a leading single quote, so ``=HYPERLINK(...)`` shows as text; the CSV writer then
    quotes it as needed. Numbers (``-1.5``, ``+3``, ``-inf``) are left alone: they are data,
    not formulas.
    """
    if not cell.startswith(_FORMULA_STARTS):
        return cell
    try:
        float(cell)
    except ValueError:
        return "'" + cell
    return cell


# -- locks ------------------------------------------------------------------------------------
class FileLock:
    """An exclusive, non-blocking lock on ``path`` (``flock``: the kernel releases it when
    the process dies, even by ``kill -9``).

    The holder writes its process id, host, start time and command line into the file, so a
    refused process names it: ``"{what} is in use by another {command} (pid 123 on host,
    since ...; lock file path)"``. Use as a context manager or call :meth:`release`.
    """

    def __init__(self, path: str | Path, what: str, command: str = "deepfit") -> None:
        import fcntl

        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            self.file = open(self.path, "a+")
            try:
                fcntl.flock(self.file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES):
                    self.file.close()
                    raise DeepfitError(
                        f"{self.path}: cannot lock {what} ({exc.strerror}); the file system "
                        f"may not support locks"
                    ) from None
                self.file.seek(0)
                holder = self.file.read(500).strip().splitlines()
                self.file.close()
                who = f"{holder[0]}; " if holder else ""
                raise DeepfitError(
                    f"{what} is in use by another {command} ({who}lock file {self.path})"
                ) from None
            # a holder that released and deleted the file between our open and our lock
            # leaves us locking a name nobody else sees: start again on the current file
            try:
                if os.stat(self.path).st_ino == os.fstat(self.file.fileno()).st_ino:
                    break
            except FileNotFoundError:
                pass
            self.file.close()
        self.file.seek(0)
        self.file.truncate()
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime())
        self.file.write(
            f"pid {os.getpid()} on {socket.gethostname()}, since {stamp}: "
            f"{' '.join(sys.argv)[:300]}\n"
        )
        self.file.flush()

    def release(self) -> None:
        """Unlock and delete the lock file (nothing is left behind)."""
        if self.file.closed:
            return
        with contextlib.suppress(OSError):
            self.path.unlink()
        self.file.close()

    def __enter__(self) -> FileLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


# -- npz archives -------------------------------------------------------------------------------
def _reason(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    # NumPy's advice to "load it unsafely using allow_pickle" is never ours to give
    if "pickle" in text:
        return "not a numeric array (pickled data is never loaded)"
    return text


def _a(kind: str) -> str:
    return f"{'an' if kind[:1] in 'aeiou.' else 'a'} {kind}"


def _npy_header(f: IO[bytes]) -> tuple[tuple[int, ...], np.dtype]:
    version = np.lib.format.read_magic(f)
    if version == (1, 0):
        shape, _, dtype = np.lib.format.read_array_header_1_0(f)
    else:
        shape, _, dtype = np.lib.format.read_array_header_2_0(f)
    return tuple(int(n) for n in shape), np.dtype(dtype)


def iter_npz(
    path: str | Path,
    *,
    limit: int | None = None,
    kind: str = ".npz archive",
    only: Collection[str] | None = None,
) -> Iterator[tuple[str, np.ndarray]]:
    """Yield ``(name, array)`` for each array of an ``.npz`` archive, safely.

    Before anything is decompressed, the sizes the zip directory declares (all members
    together) and each ``.npy`` header's ``shape x itemsize`` are checked against ``limit``
    (default :func:`memory_limit`); object arrays (pickles) are refused, never loaded.
    A missing, truncated, CRC-damaged or foreign file raises one :class:`DeepfitError` naming
    ``path``; NumPy's advice to load pickles is never repeated. With ``only``, the other
    arrays are not decompressed.
    """
    path = Path(path)
    if path.is_dir():
        raise DeepfitError(f"{path}: is a directory, not {_a(kind)}")
    if not path.is_file():
        raise DeepfitError(f"{path}: no such file")
    limit = memory_limit() if limit is None else limit
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        with contextlib.suppress(OSError), open(path, "rb") as f:
            if f.read(len(_NPY_MAGIC)) == _NPY_MAGIC:
                raise DeepfitError(
                    f"{path}: holds a single array (.npy), not {_a(kind)} of named arrays"
                ) from None
        raise DeepfitError(
            f"{path}: not a readable {kind} (truncated or corrupted: {_reason(exc)})"
        ) from None
    with archive:
        try:
            members = [m for m in archive.infolist() if not m.is_dir()]
            if only is not None:
                members = [m for m in members if m.filename.removesuffix(".npy") in only]
            check_size(sum(m.file_size for m in members), f"{path} (decompressed)", limit)
            for member in members:
                name = member.filename.removesuffix(".npy")
                with archive.open(member) as f:
                    shape, dtype = _npy_header(f)
                    if dtype.hasobject:
                        raise DeepfitError(
                            f"{path}: array {name!r} holds Python objects; only numbers are "
                            f"read (pickles are never loaded)"
                        )
                    nbytes = math.prod(shape) * dtype.itemsize
                    check_size(nbytes, f"{path}: array {name!r} of shape {shape}", limit)
                    if nbytes > member.file_size:
                        raise DeepfitError(
                            f"{path}: array {name!r} declares shape {shape} "
                            f"({format_bytes(nbytes)}) but the archive holds "
                            f"{format_bytes(member.file_size)} for it (truncated or corrupted)"
                        )
                with archive.open(member) as f:
                    yield name, np.lib.format.read_array(f, allow_pickle=False)
        except DeepfitError:
            raise
        except (zipfile.BadZipFile, EOFError, OSError, ValueError, zlib.error) as exc:
            raise DeepfitError(
                f"{path}: not a readable {kind} (truncated or corrupted: {_reason(exc)})"
            ) from None


def read_npz(
    path: str | Path,
    *,
    limit: int | None = None,
    kind: str = ".npz archive",
    only: Collection[str] | None = None,
) -> dict[str, np.ndarray]:
    """The arrays of an ``.npz`` archive by name (all, or those in ``only``), read as
    :func:`iter_npz` does."""
    return dict(iter_npz(path, limit=limit, kind=kind, only=only))


def npz_names(path: str | Path) -> list[str]:
    """Names of the arrays of an ``.npz`` archive (none are read)."""
    try:
        with zipfile.ZipFile(path) as archive:
            return [n.removesuffix(".npy") for n in archive.namelist() if not n.endswith("/")]
    except (zipfile.BadZipFile, OSError, ValueError):
        return []


# -- deepfit files ------------------------------------------------------------------------------
def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serializable")


def json_depth(text: str) -> int:
    """The deepest nesting of ``[`` and ``{`` in a JSON text (brackets inside strings
    excluded), found without parsing, so that a hostile document cannot exhaust the stack."""
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest


def parse_meta(text: str, path: str | Path) -> dict[str, Any]:
    """The metadata JSON of a deepfit file: bounded in size and nesting depth, a table."""
    if len(text) > MAX_META_CHARS:
        raise DeepfitError(
            f"{path}: metadata of {len(text)} characters (at most {MAX_META_CHARS} are read)"
        )
    if json_depth(text) > MAX_JSON_DEPTH:
        raise DeepfitError(f"{path}: metadata nested deeper than {MAX_JSON_DEPTH} levels")
    try:
        meta = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise DeepfitError(f"{path}: damaged metadata (not JSON: {_reason(exc)})") from None
    if not isinstance(meta, dict):
        raise DeepfitError(f"{path}: metadata is a {type(meta).__name__}, not a table")
    return meta


def save_arrays(path: str | Path, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> Path:
    """Atomically write ``arrays`` and the JSON ``meta`` to the ``.npz`` file ``path``."""
    for name, arr in arrays.items():
        if name == META_KEY:
            raise DeepfitError(f"array name {META_KEY!r} is reserved")
        if np.asarray(arr).dtype.hasobject:
            raise DeepfitError(f"array {name!r} holds Python objects; only numbers can be saved")
    payload = {name: np.asarray(arr) for name, arr in arrays.items()}
    payload[META_KEY] = np.array(json.dumps(meta, default=_json_default))
    return atomic_write(path, lambda f: np.savez(f, **payload))


def _check_meta(meta_array: np.ndarray | None, path: Path, expected_format: str) -> dict:
    if meta_array is None:
        raise DeepfitError(f"{path}: not a deepfit file (no {META_KEY} entry)")
    if meta_array.dtype.kind != "U" or meta_array.ndim != 0:
        raise DeepfitError(f"{path}: damaged metadata ({META_KEY} is not one string)")
    meta = parse_meta(str(meta_array), path)
    if meta.get("format") != expected_format:
        raise DeepfitError(
            f"{path}: expected a {expected_format} file, found {meta.get('format')!r}"
        )
    return meta


def read_meta(path: str | Path, expected_format: str) -> dict[str, Any]:
    """Only the metadata of a deepfit file (its arrays are not read)."""
    path = Path(path)
    for name, array in iter_npz(path, kind="deepfit file", only=(META_KEY,)):
        if name == META_KEY:
            return _check_meta(array, path, expected_format)
    return _check_meta(None, path, expected_format)


def load_arrays(path: str | Path, expected_format: str) -> tuple[dict[str, np.ndarray], dict]:
    """Read a file written by :func:`save_arrays`; refuse anything else with one clear line.

    The metadata must name ``expected_format``; a missing, truncated, corrupted, oversized
    or foreign file raises :class:`DeepfitError` naming the file.
    """
    path = Path(path)
    arrays = read_npz(path, kind="deepfit file")
    meta = _check_meta(arrays.pop(META_KEY, None), path, expected_format)
    return arrays, meta


def save(bundle: ModelBundle, path: str | Path) -> Path:
    """Write ``bundle`` to ``path`` (a ``.npz`` file, atomically, no pickle)."""
    from deepfit import __version__
    from deepfit.nn.losses import LOSSES

    if bundle.loss not in LOSSES:
        raise DeepfitError(f"unknown loss {bundle.loss!r}; choose one of {', '.join(LOSSES)}")
    arrays = {f"model/{k}": v for k, v in bundle.model.state_dict().items()}
    standardizer_meta = None
    if bundle.standardizer is not None:
        standardizer_meta = {}
        for k, v in bundle.standardizer.items():
            if isinstance(v, np.ndarray):
                arrays[f"standardizer/{k}"] = v
            else:
                standardizer_meta[k] = v
    meta = {
        "format": MODEL_FORMAT,
        "format_version": MODEL_FORMAT_VERSION,
        "deepfit_version": __version__,
        "architecture": bundle.model.config(),
        "dtype": str(bundle.model.dtype),
        "loss": bundle.loss,
        "standardizer": standardizer_meta,
        "class_names": bundle.class_names,
        "feature_names": bundle.feature_names,
        "image_shape": list(bundle.image_shape) if bundle.image_shape else None,
        "config": bundle.config,
    }
    table_arrays, meta["preprocessor"] = bundle.preprocessing_state()
    arrays.update({f"preprocessor/{k}": v for k, v in table_arrays.items()})
    return save_arrays(path, arrays, meta)


def load(path: str | Path) -> ModelBundle:
    """Read a model file written by :func:`save`.

    Refused with one line naming the file: missing, a directory, truncated, corrupted,
    foreign, written by an incompatible format version, metadata that does not follow the
    schema (:func:`deepfit.bundle.check_metadata`), an architecture too large for memory,
    arrays that do not fit the architecture, or non-finite weights and non-positive
    standard deviations (:meth:`ModelBundle.check`).
    """
    from deepfit.memory import architecture_bytes
    from deepfit.nn.sequential import Sequential

    path = Path(path)
    arrays, meta = load_arrays(path, MODEL_FORMAT)
    version = meta.get("format_version")
    if version != MODEL_FORMAT_VERSION:
        raise DeepfitError(
            f"{path}: model format version {version} (deepfit {meta.get('deepfit_version')}) "
            f"cannot be read by this deepfit, which reads version {MODEL_FORMAT_VERSION}"
        )
    try:
        check_metadata(meta, arrays)
    except DeepfitError as exc:
        raise DeepfitError(f"{path}: damaged model file: {exc}") from None
    try:
        declared = architecture_bytes(meta["architecture"], meta["dtype"])
    except (DeepfitError, TypeError, ValueError) as exc:
        raise DeepfitError(f"{path}: damaged model file: {_reason(exc)}") from None
    check_size(declared, f"{path}: the architecture it declares")
    try:
        from deepfit.nn.packed import PackedSequential, is_packed_config

        packed = is_packed_config(meta["architecture"])
        model = (PackedSequential if packed else Sequential).from_config(
            meta["architecture"], dtype=meta["dtype"]
        )
        model.load_state_dict(
            {k.removeprefix("model/"): v for k, v in arrays.items() if k.startswith("model/")}
        )
    except (DeepfitError, KeyError, TypeError, ValueError) as exc:
        raise DeepfitError(f"{path}: damaged model file: {_reason(exc)}") from None
    standardizer = None
    if meta.get("standardizer") is not None:
        standardizer = dict(meta["standardizer"])
        standardizer.update(
            {
                k.removeprefix("standardizer/"): v
                for k, v in arrays.items()
                if k.startswith("standardizer/")
            }
        )
    bundle = ModelBundle(
        model=model,
        loss=meta["loss"],
        standardizer=standardizer,
        class_names=meta.get("class_names"),
        feature_names=meta.get("feature_names"),
        config=meta.get("config") or {},
        image_shape=tuple(meta["image_shape"]) if meta.get("image_shape") else None,
        version=meta.get("deepfit_version", ""),
    )
    try:
        bundle.attach_preprocessing(
            {
                k.removeprefix("preprocessor/"): v
                for k, v in arrays.items()
                if k.startswith("preprocessor/")
            },
            meta.get("preprocessor"),
        )
        bundle.check()
    except DeepfitError as exc:
        raise DeepfitError(f"{path}: unusable model: {exc}") from None
    return bundle

"""Safe files: atomic writes, and model files that never execute code when loaded.

A deepfit file is a ``.npz`` archive of plain numeric arrays plus one array ``__meta__``
holding a JSON document (format name, format version, deepfit version and whatever the
writer describes). It is read with ``allow_pickle=False``, so loading a file cannot run
code. Every write goes to a temporary file in the same folder, is flushed and fsync'ed,
then renamed over the target: a crash leaves either the old file or the new one, never
half of one.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import numpy as np

from deepfit.bundle import ModelBundle
from deepfit.errors import DeepfitError

META_KEY = "__meta__"
MODEL_FORMAT = "deepfit-model"
MODEL_FORMAT_VERSION = 1


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


def atomic_write(
    path: str | Path,
    write: Callable[[IO[bytes]], None],
    *,
    verify: Callable[[Path], None] | None = None,
    suffix: str = ".tmp",
) -> Path:
    """Write ``path`` through ``write(file)`` atomically (temp file, fsync, rename).

    ``verify(temp_path)``, when given, runs on the complete temporary file before the rename;
    if it raises, the temporary file is removed, ``path`` is left as it was, and the
    exception propagates (downloads check their SHA-256 this way).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    try:
        # mkstemp creates the file 0600; give it the mode a plain open() would
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        if verify is not None:
            verify(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write(path, lambda f: f.write(text.encode("utf-8")))


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


def load_arrays(path: str | Path, expected_format: str) -> tuple[dict[str, np.ndarray], dict]:
    """Read a file written by :func:`save_arrays`; refuse anything else with one clear line.

    The metadata must name ``expected_format``; a missing, truncated, corrupted or foreign
    file raises :class:`DeepfitError` naming the file.
    """
    path = Path(path)
    if not path.is_file():
        raise DeepfitError(f"{path}: no such file")
    try:
        with np.load(path, allow_pickle=False) as archive:
            if not isinstance(archive, np.lib.npyio.NpzFile):
                raise DeepfitError(f"{path}: not a deepfit file (a bare .npy array)")
            if META_KEY not in archive.files:
                raise DeepfitError(f"{path}: not a deepfit file (no {META_KEY} entry)")
            meta = json.loads(str(archive[META_KEY]))
            arrays = {name: archive[name] for name in archive.files if name != META_KEY}
    except DeepfitError:
        raise
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DeepfitError(
            f"{path}: not a readable deepfit file (truncated or corrupted: {reason})"
        ) from None
    if not isinstance(meta, dict) or meta.get("format") != expected_format:
        found = meta.get("format") if isinstance(meta, dict) else None
        raise DeepfitError(f"{path}: expected a {expected_format} file, found {found!r}")
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
    return save_arrays(path, arrays, meta)


def load(path: str | Path) -> ModelBundle:
    """Read a model file written by :func:`save`.

    Refused with one line naming the file: missing, truncated, corrupted, foreign, written by
    an incompatible format version, or with arrays that do not fit the architecture.
    """
    from deepfit.nn.sequential import Sequential

    arrays, meta = load_arrays(path, MODEL_FORMAT)
    version = meta.get("format_version")
    if version != MODEL_FORMAT_VERSION:
        raise DeepfitError(
            f"{path}: model format version {version} (deepfit {meta.get('deepfit_version')}) "
            f"cannot be read by this deepfit, which reads version {MODEL_FORMAT_VERSION}"
        )
    try:
        model = Sequential.from_config(meta["architecture"], dtype=meta.get("dtype"))
        model.load_state_dict(
            {k.removeprefix("model/"): v for k, v in arrays.items() if k.startswith("model/")}
        )
    except (DeepfitError, KeyError) as exc:
        raise DeepfitError(f"{path}: damaged model file: {exc}") from None
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
    return ModelBundle(
        model=model,
        loss=meta["loss"],
        standardizer=standardizer,
        class_names=meta.get("class_names"),
        feature_names=meta.get("feature_names"),
        config=meta.get("config") or {},
        image_shape=tuple(meta["image_shape"]) if meta.get("image_shape") else None,
        version=meta.get("deepfit_version", ""),
    )

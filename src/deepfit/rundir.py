"""The run directory: one writer at a time, and nobody's files overwritten.

:func:`claim` is called by :func:`deepfit.experiment.run` after the config, the data and the
model have been checked and before anything is written. It locks the directory (a second
``deepfit train`` into it is refused, naming the holder) and decides whether the run may
write there:

- a missing or empty directory: yes;
- ``resume``: a run directory (or an empty one) whose checkpoint was written by the same
  model, data and optimizer: the config keys that fix them (:data:`RESUME_IDENTITY`) must not
  have changed; others (``train.epochs``, the learning rate, the schedule, ...) may, and so
  may the keys of the initial weights (:data:`RESUME_FREE`: the checkpoint's weights replace
  them), unless ``train.refit`` trains again from newly drawn initial weights;
- a finished run of the same config: yes (training again gives the same run);
- anything else only with ``overwrite``, which deletes the previous run's files first and
  never a file that no deepfit run wrote.

Temporary files left by a process killed in the middle of an atomic write are deleted.

A run that ends without a model to keep (training diverged before any epoch ended with finite
weights) leaves nothing behind: :func:`discard` removes the run files it wrote, and the
directory when the run created it; what was there before the run started stays.
"""

from __future__ import annotations

import contextlib
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from deepfit.config import dumps, flatten
from deepfit.errors import DeepfitError
from deepfit.io import FileLock, remove_stale_temporaries

LOCK_FILE = ".deepfit.lock"
CONFIG_FILE = "config.toml"
METRICS_FILE = "metrics.csv"
CHECKPOINT_FILE = "checkpoint.npz"
MODEL_FILE = "model.npz"
SUMMARY_FILE = "summary.json"
RUN_FILES = (
    CONFIG_FILE,
    METRICS_FILE,
    CHECKPOINT_FILE,
    MODEL_FILE,
    SUMMARY_FILE,
    "learning_curves.png",
    "learning_rate.png",
    "learning_curve.json",
    "learning_curve.png",
)
# config keys (and tables, by prefix) that fix what a checkpoint holds: changing one of them
# and resuming would continue another model, on other data, with another optimizer
RESUME_IDENTITY = (
    "data.",
    "model.",
    "train.optimizer",
    "train.batch_size",
    "train.seed",
    "train.dtype",
    "train.early_stopping.enabled",
)
# the initial weights' keys: a resume loads the checkpoint's weights over them (the course_*
# initializers draw from their own np.random.seed(init_seed), no stream other draws share);
# but train.refit draws them again after the selection run, so with refit they fix the run
INITIAL_WEIGHTS = ("model.init", "model.init_scale", "model.init_seed")
RESUME_FREE = ("data.cache_dir", *INITIAL_WEIGHTS)


def _flat(config: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in flatten(config) if not k.startswith("tune.")}


def _identity(key: str, refit: bool = False) -> bool:
    if key in RESUME_FREE and not (refit and key in INITIAL_WEIGHTS):
        return False
    return any(key == p or (p.endswith(".") and key.startswith(p)) for p in RESUME_IDENTITY)


def _previous_config(out: Path) -> dict[str, Any] | None:
    try:
        return tomllib.loads((out / CONFIG_FILE).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None


def changed_keys(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """Dotted keys whose values differ between two configs (as written to ``config.toml``).

    Keys only one of them has are not compared: a run written by an older deepfit lacks the
    keys added since, which hold their defaults."""
    a, b = _flat(old), _flat(tomllib.loads(dumps(new)))
    return sorted(k for k in a.keys() & b.keys() if a[k] != b[k])


def _describe(keys: list[str], old: Mapping[str, Any], new: Mapping[str, Any]) -> str:
    a, b = _flat(old), _flat(tomllib.loads(dumps(new)))
    shown = [f"{k} ({a.get(k)!r} there, {b.get(k)!r} here)" for k in keys[:3]]
    more = f" and {len(keys) - 3} more" if len(keys) > 3 else ""
    return ", ".join(shown) + more


def _remove_stale_temporaries(out: Path) -> None:
    for name in RUN_FILES:
        remove_stale_temporaries(out / name)
        remove_stale_temporaries(out / name, ".part")


def claim(
    out: str | Path, config: Mapping[str, Any], *, resume: bool = False, overwrite: bool = False
) -> FileLock:
    """Lock the run directory ``out`` for ``config`` and check that the run may write there
    (see the module docstring). Returns the lock, to :meth:`~deepfit.io.FileLock.release`
    when the run ends; on refusal nothing is left behind (not even the directory, when this
    call created it) and :class:`DeepfitError` says why and what to do."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise DeepfitError(f"{out}: is a file, not a run directory")
    created = not out.exists()
    lock = FileLock(out / LOCK_FILE, f"run directory {out}", "deepfit train")
    try:
        _remove_stale_temporaries(out)
        _check(out, config, resume=resume, overwrite=overwrite)
    except BaseException:
        lock.release()
        if created:
            with contextlib.suppress(OSError):
                out.rmdir()
        raise
    return lock


def _check(out: Path, config: Mapping[str, Any], *, resume: bool, overwrite: bool) -> None:
    entries = sorted(p.name for p in out.iterdir() if p.name != LOCK_FILE)
    if not entries:
        return
    ours = [name for name in entries if name in RUN_FILES]
    previous = _previous_config(out)
    is_run = previous is not None and any(name != CONFIG_FILE for name in ours)
    again = "choose another --out"
    if resume:
        if not is_run:
            held = ", ".join(entries[:3]) + (", ..." if len(entries) > 3 else "")
            raise DeepfitError(
                f"{out}: not a deepfit run directory (it holds {held}); --resume continues "
                f"a run written by deepfit train: {again}"
            )
        if (out / CHECKPOINT_FILE).exists():
            refit = bool(config.get("train", {}).get("refit"))
            changed = [k for k in changed_keys(previous, config) if _identity(k, refit)]
            if changed:
                why = (
                    " (train.refit draws the initial weights again)"
                    if any(k in INITIAL_WEIGHTS for k in changed)
                    else ""
                )
                raise DeepfitError(
                    f"{out}: --resume with changed config keys "
                    f"{_describe(changed, previous, config)}{why}; a checkpoint continues the "
                    f"same model, data, optimizer and callbacks: {again}, or --overwrite to "
                    f"start again"
                )
        return
    finished = is_run and (out / SUMMARY_FILE).exists()
    changed = changed_keys(previous, config) if is_run else []
    if finished and not changed:
        return  # the same config again: training replaces the run with the same run
    if overwrite:
        if not is_run and ours:
            raise DeepfitError(
                f"{out / ours[0]}: not written by a deepfit run; --overwrite replaces a "
                f"previous run's files only: {again}"
            )
        for name in ours:
            (out / name).unlink(missing_ok=True)
        return
    if is_run and not finished:
        raise DeepfitError(
            f"{out}: holds an unfinished run; --resume continues it, --overwrite starts it "
            f"again, or {again}"
        )
    if is_run and changed:
        raise DeepfitError(
            f"{out}: holds a run of another config (changed: "
            f"{_describe(changed, previous, config)}); --overwrite replaces it, or {again}"
        )
    held = ", ".join(entries[:3]) + (", ..." if len(entries) > 3 else "")
    raise DeepfitError(
        f"{out}: not empty and not a deepfit run directory (it holds {held}); {again} "
        f"(--overwrite writes the run next to these files, never over them)"
    )


def entries(out: str | Path) -> set[str] | None:
    """The names in ``out`` other than the lock (None when ``out`` does not exist): what a run
    found there, for :func:`discard`."""
    out = Path(out)
    if not out.is_dir():
        return None
    return {p.name for p in out.iterdir() if p.name != LOCK_FILE}


def discard(out: str | Path, before: set[str] | None) -> None:
    """Remove what a run without a model wrote into ``out``: the run files (and their stale
    temporaries) that were not among ``before`` (from :func:`entries` after the claim), then
    the directory itself when ``before`` is None (the run created it) and it is empty. Call
    it after the lock is released. Never touches a file the run did not write."""
    out = Path(out)
    if not out.is_dir():
        return
    _remove_stale_temporaries(out)
    for name in RUN_FILES:
        if before is None or name not in before:
            (out / name).unlink(missing_ok=True)
    if before is None:
        with contextlib.suppress(OSError):  # not empty: something else was put there meanwhile
            out.rmdir()

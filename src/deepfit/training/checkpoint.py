"""Checkpoint files: everything a Trainer needs to continue a run exactly.

A checkpoint is a deepfit ``.npz`` file (see :mod:`deepfit.io`): parameters and buffers,
optimizer state arrays and the callbacks' arrays (early stopping's best weights), with a
JSON document holding the epoch, the history, the optimizer's step count and learning rate,
the bit-generator states of the shuffling stream and of every dropout layer, the callbacks'
state (plateau, weight averages, snapshots included), and a fingerprint of the run that a
resume must match. The optimizer's state includes a Lookahead's slow weights. The training
techniques (label smoothing, Lookahead's inner optimizer, clipping, mixup, example weights)
enter the fingerprint only when they are on, so checkpoints written before they existed still
resume.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from deepfit.errors import DeepfitError
from deepfit.io import load_arrays, remove_stale_temporaries, save_arrays
from deepfit.training.history import History

if TYPE_CHECKING:
    from deepfit.training.trainer import Trainer

CHECKPOINT_FORMAT = "deepfit-checkpoint"
CHECKPOINT_FORMAT_VERSION = 1


def _fingerprint(trainer: Trainer) -> dict[str, Any]:
    found = {
        "architecture": trainer.model.config(),
        "dtype": str(trainer.model.dtype),
        "loss": type(trainer.loss).__name__,
        "optimizer": type(trainer.optimizer).__name__,
        "batch_size": trainer.batch_size,
        "seed": trainer.seed,
        "n_train": trainer.n_train,
        "l2": trainer.l2,
        "l1": trainer.l1,
    }
    # techniques enter only when on, so checkpoints written without them still resume
    inner = getattr(trainer.optimizer, "inner", None)
    optional = {
        "loss_options": trainer.loss.config() or None,
        "inner_optimizer": type(inner).__name__ if inner is not None else None,
        "clip_norm": trainer.clip_norm,
        "mixup": trainer.mixup.config() if trainer.mixup is not None else None,
        "weighted": trainer.weighted or None,
        "data": getattr(trainer, "data_digest", "") or None,
    }
    found.update({k: v for k, v in optional.items() if v is not None})
    return found


def _layer_rngs(trainer: Trainer) -> dict[str, np.random.Generator]:
    found = {
        name: layer.rng
        for name, layer in trainer.model.named_layers()
        if isinstance(getattr(layer, "rng", None), np.random.Generator)
    }
    for name, layer in trainer.model.named_layers():  # a packed dropout: one per member
        for k, gen in enumerate(getattr(layer, "rngs", ())):
            if k:  # member 0's is the layer's rng
                found[f"{name}/{k}"] = gen
    return found


def save_checkpoint(trainer: Trainer, path: str | Path) -> Path:
    """Atomically write the state of ``trainer`` at the end of its last finished epoch."""
    from deepfit import __version__

    arrays: dict[str, np.ndarray] = {f"model/{k}": v for k, v in trainer.model.state_dict().items()}
    optimizer_scalars: dict[str, Any] = {}
    for key, value in trainer.optimizer.state_dict().items():
        if isinstance(value, np.ndarray):
            arrays[f"optim/{key}"] = value
        else:
            optimizer_scalars[key] = value
    callbacks = []
    for i, cb in enumerate(trainer.callbacks):
        data, cb_arrays = cb.state_dict()
        callbacks.append({"type": type(cb).__name__, "data": data})
        arrays.update({f"callback{i}/{k}": v for k, v in cb_arrays.items()})
    meta = {
        "format": CHECKPOINT_FORMAT,
        "format_version": CHECKPOINT_FORMAT_VERSION,
        "deepfit_version": __version__,
        "fingerprint": _fingerprint(trainer),
        "epoch": trainer.epoch,
        "stopped": trainer.stop_reason if trainer.stop_training else None,
        "history": trainer.history.to_dict(),
        "optimizer": optimizer_scalars,
        "rng": trainer.rng.bit_generator.state,
        "layer_rngs": {k: g.bit_generator.state for k, g in _layer_rngs(trainer).items()},
        "callbacks": callbacks,
    }
    # a process killed mid-write leaves its temporary file (as large as the checkpoint)
    remove_stale_temporaries(path)
    return save_arrays(path, arrays, meta)


def load_checkpoint(trainer: Trainer, path: str | Path) -> None:
    """Restore ``trainer`` (model, optimizer, RNGs, history, callbacks) from ``path``.

    The checkpoint must come from the same run: same architecture, loss, optimizer type,
    batch size, seed, penalties and number of training examples; otherwise it is refused,
    naming the first difference.
    """
    remove_stale_temporaries(path)
    arrays, meta = load_arrays(path, CHECKPOINT_FORMAT)
    if meta.get("format_version") != CHECKPOINT_FORMAT_VERSION:
        raise DeepfitError(
            f"{path}: checkpoint format version {meta.get('format_version')} cannot be "
            f"resumed by this deepfit (reads version {CHECKPOINT_FORMAT_VERSION})"
        )
    expected, found = _fingerprint(trainer), meta.get("fingerprint", {})
    for key in [*expected, *(k for k in found if k not in expected)]:
        value = expected.get(key)
        if found.get(key) != value:
            shown = (
                "differs"
                if key in ("architecture", "data")
                else f"{found.get(key)!r} there, {value!r} here"
            )
            raise DeepfitError(
                f"{path}: checkpoint belongs to a different run ({key} {shown}); start a new "
                f"output directory or train without resume"
            )
    saved_callbacks = meta["callbacks"]
    names = [type(cb).__name__ for cb in trainer.callbacks]
    if [c["type"] for c in saved_callbacks] != names:
        raise DeepfitError(
            f"{path}: checkpoint was written with callbacks "
            f"{[c['type'] for c in saved_callbacks]}, this run has {names}"
        )
    try:
        trainer.model.load_state_dict(
            {k[len("model/") :]: v for k, v in arrays.items() if k.startswith("model/")}
        )
        optim_state = dict(meta["optimizer"])
        optim_state.update(
            {k[len("optim/") :]: v for k, v in arrays.items() if k.startswith("optim/")}
        )
        trainer.optimizer.load_state_dict(optim_state)
    except DeepfitError as exc:
        raise DeepfitError(f"{path}: damaged checkpoint: {exc}") from None
    for i, (cb, saved) in enumerate(zip(trainer.callbacks, saved_callbacks, strict=True)):
        prefix = f"callback{i}/"
        cb_arrays = {k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)}
        cb.load_state_dict(saved["data"], cb_arrays)
    trainer.rng.bit_generator.state = meta["rng"]
    layer_rngs = _layer_rngs(trainer)
    for key, state in meta["layer_rngs"].items():
        layer_rngs[key].bit_generator.state = state
    trainer.history = History.from_dict(meta["history"])
    trainer.epoch = int(meta["epoch"])
    if meta.get("stopped"):
        trainer.stop_training, trainer.stop_reason = True, meta["stopped"]

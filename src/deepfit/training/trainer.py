"""The training loop: mini-batches, loss plus penalties, optimizer steps, callbacks."""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from deepfit.backend import to_numpy
from deepfit.data.batches import minibatches
from deepfit.errors import DataError, DeepfitError
from deepfit.nn.batchnorm import BatchNorm
from deepfit.nn.losses import Loss, MeanSquaredError, SigmoidBinaryCrossEntropy, get_loss
from deepfit.nn.objective import forward_backward, make_penalties
from deepfit.nn.sequential import Sequential
from deepfit.optim.optimizers import Adam, Optimizer
from deepfit.optim.schedules import Schedule
from deepfit.training.callbacks import Callback, Checkpoint
from deepfit.training.history import History

Augment = Callable[[np.ndarray, np.random.Generator], np.ndarray]


def _as_features(X: Any, name: str) -> np.ndarray:
    X = np.asarray(X)
    if X.ndim != 2:
        raise DataError(f"{name} must be a 2-D array (examples, features), got shape {X.shape}")
    if X.dtype.kind not in "biuf":
        raise DataError(f"{name} must be numeric, got dtype {X.dtype}")
    if X.dtype.kind == "f" and not np.isfinite(X).all():
        row, col = np.argwhere(~np.isfinite(X))[0]
        raise DataError(f"{name} row {row}, column {col} is {X[row, col]}; clean the data first")
    return X


class Trainer:
    """Fit a :class:`~deepfit.nn.Sequential` model with mini-batch optimization.

    Parameters
    ----------
    model : Sequential
    loss : str or Loss
        ``"softmax_cross_entropy"`` (default), ``"sigmoid_binary_cross_entropy"``, ``"mse"``.
    optimizer : Optimizer, optional
        Defaults to ``Adam(lr=0.001)``.
    batch_size : int
        Mini-batch size (powers of two are customary); the last, smaller batch is kept
        (except a batch of one row in front of batch norm, which cannot be normalized).
    l2, l1 : float
        Penalty strengths: ``lambda/(2m) sum ||W||^2`` and ``lambda/m sum |W|``.
    schedule : Schedule, optional
        Sets ``optimizer.lr = schedule(epoch)`` at the start of each epoch (0-based).
    callbacks : sequence of Callback
    seed : int
        Seeds the shuffling and augmentation stream (the model's dropout masks come from the
        generator it was built with).
    augment : callable ``(X_batch, rng) -> X_batch``, optional
        Applied on the fly to training batches only.
    terminate_on_nan : bool
        On by default: a non-finite loss stops training with a clear reason, puts back the
        weights of the last finished epoch, and leaves the last checkpoint as it was.
    """

    def __init__(
        self,
        model: Sequential,
        loss: str | Loss = "softmax_cross_entropy",
        optimizer: Optimizer | None = None,
        batch_size: int = 64,
        l2: float = 0.0,
        l1: float = 0.0,
        schedule: Schedule | Callable[[int], float] | None = None,
        callbacks: Sequence[Callback] = (),
        seed: int = 0,
        *,
        augment: Augment | None = None,
        terminate_on_nan: bool = True,
    ) -> None:
        if not isinstance(model, Sequential):
            raise DeepfitError(f"Trainer needs a deepfit Sequential model, got {type(model)}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise DeepfitError(f"batch_size must be a positive integer, got {batch_size!r}")
        self.model = model
        self.loss = get_loss(loss)
        self.optimizer = optimizer if optimizer is not None else Adam(lr=0.001)
        self.batch_size = batch_size
        self.l2, self.l1 = float(l2), float(l1)
        self.penalties = make_penalties(l2=l2, l1=l1)
        self.schedule = schedule
        self.callbacks = sorted(callbacks, key=lambda c: c.order)
        self.seed = seed
        self.augment = augment
        self.terminate_on_nan = terminate_on_nan
        self.rng = np.random.default_rng(seed)
        self.history = History()
        self.epoch = 0
        self.epochs = 0
        self.batches_per_epoch = 0
        self.n_train = 0
        self.stop_training = False
        self.stop_reason: str | None = None
        self.resumed = False
        # the NaN guard reports a diverging run once, in words; numpy's overflow warnings
        # on the way there would only repeat it
        self._errstate = {"over": "ignore", "invalid": "ignore"} if terminate_on_nan else {}

    # -- helpers -------------------------------------------------------------------------
    @property
    def task(self) -> str:
        return self.loss.task

    def _check_xy(self, X: Any, y: Any, name: str) -> tuple[np.ndarray, np.ndarray]:
        X = _as_features(X, f"{name} X")
        y = np.asarray(y)
        if y.shape[0] != X.shape[0]:
            raise DataError(
                f"{name}: X has {X.shape[0]} rows but y has {y.shape[0]} (shapes {X.shape}, "
                f"{y.shape})"
            )
        n_in = self.model.n_inputs
        if n_in is not None and X.shape[1] != n_in:
            raise DataError(
                f"{name} X has {X.shape[1]} features but the model's input layer expects {n_in}"
            )
        if self.task == "classification" and y.ndim == 1 and y.size:
            if y.dtype.kind not in "iub":
                if y.dtype.kind == "f" and np.all(y == np.round(y)):
                    y = y.astype(np.int64)
                else:
                    raise DataError(f"{name} y must hold class indices 0..K-1, got dtype {y.dtype}")
            n_out = self.model.n_outputs or 0
            n_classes = 2 if isinstance(self.loss, SigmoidBinaryCrossEntropy) else n_out
            bad = (y < 0) | (y >= n_classes)
            if bad.any():
                row = int(np.argmax(bad))
                raise DataError(
                    f"{name} y row {row} is class {y[row]}, outside the model's {n_classes} "
                    f"classes 0..{n_classes - 1}"
                )
        return X, y

    def _accuracy_hits(self, logits: np.ndarray, y: np.ndarray) -> int | None:
        if isinstance(self.loss, MeanSquaredError) or y.ndim != 1:
            return None
        if isinstance(self.loss, SigmoidBinaryCrossEntropy):
            predicted = (logits[:, 0] > 0).astype(np.int64)
        else:
            predicted = logits.argmax(axis=1)
        return int((to_numpy(predicted) == y).sum())

    def _lr_for(self, epoch: int) -> float:
        if self.schedule is not None:
            self.optimizer.lr = self.schedule(epoch)
        return self.optimizer.lr

    # -- training --------------------------------------------------------------------------
    def fit(
        self,
        X: Any,
        y: Any,
        epochs: int,
        validation_data: tuple[Any, Any] | None = None,
        *,
        resume: bool = False,
    ) -> History:
        """Train for ``epochs`` epochs in all (a resumed run trains the remaining ones).

        ``resume=True`` continues from the file of the :class:`Checkpoint` callback when it
        exists (and starts afresh when it does not), so the same call works the first time
        and after a crash.
        """
        if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
            raise DeepfitError(f"epochs must be a positive integer, got {epochs!r}")
        X, y = self._check_xy(X, y, "training data")
        if X.shape[0] == 0:
            raise DataError("training data has no rows")
        dev = None
        if validation_data is not None:
            dev = self._check_xy(*validation_data, "validation data")
        self.epochs, self.n_train = epochs, X.shape[0]
        self.batches_per_epoch = math.ceil(self.n_train / self.batch_size)
        self.rng = np.random.default_rng(self.seed)
        self.history = History()
        self.epoch = 0
        self.stop_training, self.stop_reason, self.resumed = False, None, False
        checkpoint = next((c for c in self.callbacks if isinstance(c, Checkpoint)), None)
        if resume:
            if checkpoint is None:
                raise DeepfitError("resume=True needs a Checkpoint callback to resume from")
            if checkpoint.path.exists():
                self.load_checkpoint(checkpoint.path)
                self.resumed = True
        has_batchnorm = any(isinstance(layer, BatchNorm) for _, layer in self.model.named_layers())
        last_good = self.model.state_dict() if self.terminate_on_nan else None

        for cb in self.callbacks:
            cb.on_train_begin(self)
        epoch = self.epoch
        while epoch < epochs and not self.stop_training:
            start = time.perf_counter()
            lr = self._lr_for(epoch)
            for cb in self.callbacks:
                cb.on_epoch_begin(self, epoch)
            total_loss, hits, seen = 0.0, 0, 0
            params, grads = self.model.params, self.model.grads  # the arrays, not copies
            for b, idx in enumerate(minibatches(self.n_train, self.batch_size, self.rng)):
                if has_batchnorm and idx.size < 2:
                    continue
                xb, yb = X[idx], y[idx]
                if self.augment is not None:
                    xb = self.augment(xb, self.rng)
                with np.errstate(**self._errstate):
                    step = forward_backward(self.model, self.loss, xb, yb, self.penalties)
                if self.terminate_on_nan and not math.isfinite(step.total):
                    self._stop_on_nan(step.total, epoch, b, last_good)
                    break
                self.optimizer.step(params, grads)
                total_loss += step.data_loss * idx.size
                hits += self._accuracy_hits(step.outputs, yb) or 0
                seen += idx.size
                for cb in self.callbacks:
                    cb.on_batch_end(self, b, step.data_loss)
            if self.stop_training and self.stop_reason and "non-finite" in self.stop_reason:
                break
            logs: dict[str, Any] = {"epoch": epoch + 1, "lr": lr}
            logs["train_loss"] = total_loss / max(seen, 1)
            if self.task == "classification" and y.ndim == 1:
                logs["train_accuracy"] = hits / max(seen, 1)
            if dev is not None:
                for key, value in self.evaluate(*dev).items():
                    logs[f"dev_{key}"] = value
            logs["seconds"] = time.perf_counter() - start
            self.history.append(logs)
            self.epoch = epoch + 1
            if last_good is not None:
                last_good = self.model.state_dict()
            for cb in self.callbacks:
                cb.on_epoch_end(self, epoch, logs)
            epoch += 1
        if self.stop_reason is None:
            self.stop_reason = "completed all epochs"
        self.history.stop_reason = self.stop_reason
        for cb in self.callbacks:
            cb.on_train_end(self)
        return self.history

    def _stop_on_nan(self, value: float, epoch: int, batch: int, last_good) -> None:
        self.stop_training = True
        self.stop_reason = (
            f"non-finite loss ({value}) at epoch {epoch + 1}, batch {batch + 1}: training "
            f"stopped and the weights of epoch {self.epoch} restored (try a smaller learning "
            f"rate or stronger input normalization)"
        )
        if last_good is not None:
            self.model.load_state_dict(last_good)
        warnings.warn(self.stop_reason, RuntimeWarning, stacklevel=3)

    # -- inference ---------------------------------------------------------------------------
    def evaluate(self, X: Any, y: Any, batch_size: int = 4096) -> dict[str, float]:
        """Mean data loss (no penalty) and, for classification, accuracy, in inference mode
        (dropout off, batch norm on running statistics)."""
        X, y = self._check_xy(X, y, "evaluation data")
        logits = self.model.predict(X, batch_size=batch_size)
        result = {"loss": self.loss.forward(logits, y) if X.shape[0] else math.nan}
        hits = self._accuracy_hits(logits, y)
        if hits is not None:
            result["accuracy"] = hits / max(X.shape[0], 1)
        return result

    def predict(self, X: Any, batch_size: int = 4096) -> np.ndarray:
        """Predictions in inference mode: class probabilities for classification (softmax
        rows, or the positive-class probability column for binary), values for regression."""
        X = _as_features(X, "X")
        return self.loss.output(self.model.predict(X, batch_size=batch_size))

    def predict_classes(self, X: Any, batch_size: int = 4096) -> np.ndarray:
        """Class indices ``0..K-1`` (classification only)."""
        if self.task != "classification":
            raise DeepfitError("predict_classes is for classification; use predict")
        logits = self.model.predict(_as_features(X, "X"), batch_size=batch_size)
        if isinstance(self.loss, SigmoidBinaryCrossEntropy):
            return (logits[:, 0] > 0).astype(np.int64)
        return logits.argmax(axis=1)

    # -- checkpoints -------------------------------------------------------------------------
    def save_checkpoint(self, path: str | Path) -> Path:
        """Write everything needed to continue this run to ``path`` (atomically)."""
        from deepfit.training.checkpoint import save_checkpoint

        return save_checkpoint(self, path)

    def load_checkpoint(self, path: str | Path) -> None:
        """Restore a run saved by :meth:`save_checkpoint` into this trainer."""
        from deepfit.training.checkpoint import load_checkpoint

        load_checkpoint(self, path)

    def __repr__(self) -> str:
        return (
            f"Trainer(loss={self.loss!r}, optimizer={self.optimizer!r}, "
            f"batch_size={self.batch_size}, l2={self.l2}, l1={self.l1})"
        )

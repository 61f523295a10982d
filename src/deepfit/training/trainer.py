"""The training loop: mini-batches, loss plus penalties, optimizer steps, callbacks."""

from __future__ import annotations

import hashlib
import math
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from deepfit.backend import array_module, to_numpy
from deepfit.data.batches import BatchSource, RowGather, check_sample_weight, minibatches
from deepfit.data.mixup import Mixup
from deepfit.errors import DataError, DeepfitError
from deepfit.nn.batchnorm import BatchNorm
from deepfit.nn.losses import (
    ClassWeight,
    Loss,
    MeanSquaredError,
    SigmoidBinaryCrossEntropy,
    SoftmaxCrossEntropy,
    example_weights,
    get_loss,
)
from deepfit.nn.objective import forward_backward, make_penalties
from deepfit.nn.sequential import Sequential
from deepfit.optim.clipping import clip_grad_norm_
from deepfit.optim.optimizers import Adam, Optimizer
from deepfit.optim.schedules import Schedule
from deepfit.threads import check_threads, limit_blas
from deepfit.training.callbacks import Callback, Checkpoint
from deepfit.training.history import History

Augment = Callable[[np.ndarray, np.random.Generator], np.ndarray]


class TrainingDiverged(DeepfitError):
    """Training produced a non-finite loss or non-finite weights before any epoch finished
    with finite weights: there is nothing sound to keep."""


def _all_finite(model: Sequential) -> bool:
    for value in (*model.params.values(), *model.buffers.values()):
        if not bool(array_module(value).isfinite(value).all()):
            return False
    return True


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


def data_digest(*arrays: Any) -> str:
    """A short BLAKE2b digest of the training arrays: a checkpoint resumes only on the data
    it was written for (same rows, same values, same column layout)."""
    h = hashlib.blake2b(digest_size=12)
    for a in arrays:
        if a is None:
            continue
        a = np.ascontiguousarray(to_numpy(a))
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.data)
    return h.hexdigest()


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
        On by default: a non-finite loss, or non-finite weights at the end of an epoch, stop
        training with a clear reason and put back the weights of the last epoch that ended
        with finite weights; the checkpoint keeps that epoch (non-finite weights are never
        saved, restored or kept as "best"). When no epoch ended with finite weights,
        :class:`TrainingDiverged` is raised (one line) after the callbacks' ``on_train_end``.
    class_weight : "balanced", mapping {class index: weight} or None
        Multiplies each training example's loss by its class's weight (``"balanced"``:
        ``n_samples / (n_classes * bincount(y))`` as scikit-learn). Training only: evaluation
        takes explicit ``sample_weight``.
    clip_norm : float, optional
        Clip the gradient (penalties included) to this global L2 norm before each step, as
        ``torch.nn.utils.clip_grad_norm_``.
    mixup : Mixup, optional
        Mix every training batch (mixup or cutmix, see :class:`deepfit.data.mixup.Mixup`);
        ``train_accuracy`` is then not recorded (the targets are mixtures).
    threads : int
        BLAS threads while :meth:`fit` runs: ``0`` (default) one thread when the network's
        products are small and BLAS's own setting otherwise, ``n`` at most ``n`` (see
        :mod:`deepfit.threads`).

    With example weights (``fit(..., sample_weight=)``, ``class_weight``) the loss is the
    weighted mean ``sum w_i l_i / sum w_i`` on every batch, and the recorded ``train_loss``
    and ``train_accuracy`` are weighted means over the epoch; penalties keep their meaning
    ``lambda / (2 m)`` with ``m`` the batch size.
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
        class_weight: ClassWeight = None,
        clip_norm: float | None = None,
        mixup: Mixup | None = None,
        threads: int = 0,
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
        if clip_norm is not None and (
            isinstance(clip_norm, bool)
            or not isinstance(clip_norm, (int, float))
            or not (clip_norm > 0 and math.isfinite(clip_norm))
        ):
            raise DeepfitError(f"clip_norm must be a finite number > 0, got {clip_norm!r}")
        self.clip_norm = None if clip_norm is None else float(clip_norm)
        if mixup is not None and not isinstance(mixup, Mixup):
            raise DeepfitError(f"mixup must be a deepfit Mixup, got {mixup!r}")
        self.mixup = mixup
        self.threads = check_threads(threads)
        self.class_weight = class_weight
        self.weighted = False
        self.train_inputs: np.ndarray | None = None
        self.rng = np.random.default_rng(seed)
        self.history = History()
        self.epoch = 0
        self.epochs = 0
        self.batches_per_epoch = 0
        self.n_train = 0
        self.feature_names: list[str] | None = None  # a DataFrame's columns, set by fit
        self._digest = ""
        self._digest_of: Any = None  # what data_digest hashes, the first time it is asked
        self.stop_training = False
        self.stop_reason: str | None = None
        self.resumed = False
        # the NaN guard reports a diverging run once, in words; numpy's overflow warnings
        # on the way there would only repeat it
        self._errstate = {"over": "ignore", "invalid": "ignore"} if terminate_on_nan else {}

    # -- helpers -------------------------------------------------------------------------
    @property
    def data_digest(self) -> str:
        """The training data's :func:`data_digest` (a stream's own), computed when a checkpoint
        first asks for it during :meth:`fit` (hashing a large training set costs as much as a
        step or two), then kept; ``""`` before :meth:`fit`, and after it when no checkpoint
        asked (the arrays are not held past :meth:`fit`)."""
        if not self._digest and self._digest_of is not None:
            of = self._digest_of
            self._digest = data_digest(*of) if isinstance(of, tuple) else of.digest()
        return self._digest

    @property
    def task(self) -> str:
        return self.loss.task

    def _features(self, X: Any, name: str, *, fitting: bool = False) -> np.ndarray:
        """``X`` as a numeric array. A DataFrame's columns are matched *by name* to those it
        was fitted on (any order; a missing column is refused naming it); text columns are
        refused: encode them first, or use the table path (``deepfit train --data``, the
        scikit-learn estimators), which encodes categories."""
        columns = getattr(X, "columns", None)
        if columns is not None and hasattr(X, "iloc"):
            names = [str(c) for c in columns]
            if fitting:
                self.feature_names = names
            elif self.feature_names is not None:
                missing = [n for n in self.feature_names if n not in names]
                if missing:
                    raise DataError(
                        f"{name}: no column {missing[0]!r}; the model was fitted on columns "
                        f"{', '.join(self.feature_names)}"
                    )
                order = [names.index(n) for n in self.feature_names]
                X, names = X.iloc[:, order], list(self.feature_names)
            for column_name, dtype in zip(names, X.dtypes, strict=True):
                if getattr(dtype, "kind", "O") not in "iufb":
                    raise DataError(
                        f"{name}: column {column_name!r} holds text ({dtype}); the Trainer takes "
                        "numbers: encode it, or use deepfit train --data / deepfit.sklearn, "
                        "which encode categories"
                    )
            X = X.to_numpy()
        return _as_features(X, name)

    def _check_xy(self, X: Any, y: Any, name: str) -> tuple[np.ndarray, np.ndarray]:
        X = self._features(X, f"{name} X", fitting=name == "training data")
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

    def _accuracy_hits(self, logits: np.ndarray, y: np.ndarray, weight=None) -> float | None:
        """Correct predictions: a count, or the sum of the correct examples' weights."""
        if isinstance(self.loss, MeanSquaredError) or y.ndim != 1:
            return None
        if weight is None:
            counted = self.loss.counted_hits(logits, y)  # by the loss's fused pass
            if counted is not None:
                return counted
        if logits.ndim == 3:  # a packed ensemble's members in training: their mean prediction
            logits = self.model.combine(logits)
        if isinstance(self.loss, SigmoidBinaryCrossEntropy):
            predicted = (logits[:, 0] > 0).astype(np.int64)
        else:
            predicted = logits.argmax(axis=1)
        correct = to_numpy(predicted) == y
        if weight is None:
            return int(np.count_nonzero(correct))
        return float(np.dot(correct, weight))

    def _lr_for(self, epoch: int) -> float:
        if self.schedule is not None:
            self.optimizer.lr = self.schedule(epoch)
        return self.optimizer.lr

    def _n_classes(self) -> int:
        n_out = self.model.n_outputs or 0
        return 2 if isinstance(self.loss, SigmoidBinaryCrossEntropy) and n_out == 1 else n_out

    def _weights_for(self, y: np.ndarray, sample_weight: Any, name: str, classes: bool):
        if sample_weight is not None:
            sample_weight = check_sample_weight(sample_weight, y.shape[0], name)
        class_weight = self.class_weight if classes and self.task == "classification" else None
        if class_weight is not None and y.ndim != 1:
            raise DataError(f"class_weight needs class labels in {name} y, got shape {y.shape}")
        w = example_weights(y, self._n_classes(), class_weight, sample_weight)
        if w is not None and y.shape[0] and not w.sum() > 0:
            raise DataError(f"{name}: the example weights sum to 0; nothing would be learned")
        return w

    # -- training --------------------------------------------------------------------------
    def fit(
        self,
        X: Any,
        y: Any,
        epochs: int,
        validation_data: tuple[Any, ...] | None = None,
        *,
        sample_weight: Any = None,
        resume: bool = False,
    ) -> History:
        """Train for ``epochs`` epochs in all (a resumed run trains the remaining ones).

        ``sample_weight`` (one number >= 0 per row) weights each example's loss; it is
        shuffled with the rows. ``validation_data`` is ``(X, y)`` or ``(X, y, sample_weight)``
        (then the dev metrics are weighted means, as Keras'). ``resume=True`` continues from
        the file of the :class:`Checkpoint` callback when it exists (and starts afresh when it
        does not), so the same call works the first time and after a crash.

        ``X`` may be a :class:`~deepfit.data.batches.BatchSource` (a table streamed from disk;
        ``y`` None, the weights its own): an epoch is then one pass over the source's batches.
        BLAS runs on the threads that ``threads`` says (:mod:`deepfit.threads`).
        """
        with limit_blas(self.threads, self.model, self.batch_size):
            return self._fit(X, y, epochs, validation_data, sample_weight, resume)

    def _fit(self, X, y, epochs, validation_data, sample_weight, resume) -> History:
        if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
            raise DeepfitError(f"epochs must be a positive integer, got {epochs!r}")
        source = X if isinstance(X, BatchSource) else None
        if source is not None:
            X, y, w = self._check_source(source, y, sample_weight)
        else:
            X, y = self._check_xy(X, y, "training data")
            if X.shape[0] == 0:
                raise DataError("training data has no rows")
            w = self._weights_for(y, sample_weight, "training data sample_weight", classes=True)
        dev = None
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (
                2,
                3,
            ):
                raise DataError("validation_data must be (X, y) or (X, y, sample_weight)")
            dev_x, dev_y = self._check_xy(*validation_data[:2], "validation data")
            dev_w = validation_data[2] if len(validation_data) == 3 else None
            if dev_w is not None:
                dev_w = check_sample_weight(dev_w, dev_y.shape[0], "validation data sample_weight")
            dev = (dev_x, dev_y, dev_w)
        self.weighted = w is not None if source is None else source.weighted
        self.epochs, self.n_train = epochs, X.shape[0]
        self._digest, self._digest_of = "", source if source is not None else (X, y, w)
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
        last_good = None
        if self.terminate_on_nan and _all_finite(self.model):
            last_good = self.model.state_dict()
        diverged = False
        mixup, n_classes = self.mixup, None
        # columns of category codes (an EmbedColumns first layer) are not blended by mixup
        codes = getattr(self.model.layers[0], "columns", ()) if self.model.layers else ()
        if mixup is not None and isinstance(self.loss, SoftmaxCrossEntropy) and y.ndim == 1:
            n_classes = self._n_classes()
        track_accuracy = self.task == "classification" and y.ndim == 1 and mixup is None
        self.train_inputs = X if source is None else source.rows()
        # every parameter in one buffer, every gradient in another: one optimizer pass per
        # step (a no-op when the model is already flat)
        self.model.flatten_parameters()
        # each batch's rows, in one reused array
        gather = RowGather(X, self.batch_size) if source is None else None

        try:
            for cb in self.callbacks:
                cb.on_train_begin(self)
            # only the callbacks that do something per batch are called per batch (a disabled
            # progress bar costs nothing)
            batch_callbacks = [cb for cb in self.callbacks if cb.wants_batches()]
            epoch = self.epoch
            while epoch < epochs and not self.stop_training:
                start = time.perf_counter()
                self._lr_for(epoch)
                for cb in self.callbacks:
                    cb.on_epoch_begin(self, epoch)
                lr = self.optimizer.lr  # as the callbacks left it (ReduceLROnPlateau)
                total_loss, hits, seen = 0.0, 0.0, 0.0
                params, grads = self.model.params, self.model.grads  # the arrays, not copies
                for b, batch in enumerate(self._epoch_batches(source, gather, y, w)):
                    if has_batchnorm and batch[1].shape[0] < 2:
                        continue
                    xb, yb, wb = batch
                    if self.augment is not None:
                        xb = self.augment(xb, self.rng)
                    target = yb
                    if mixup is not None:
                        xb, target, wb = mixup(
                            xb, yb, self.rng, n_classes=n_classes, weight=wb, discrete=codes
                        )
                    with np.errstate(**self._errstate):
                        step = forward_backward(
                            self.model, self.loss, xb, target, self.penalties, wb
                        )
                    if self.terminate_on_nan and not math.isfinite(step.total):
                        diverged = True
                        self._stop_on_nan(f"non-finite loss ({step.total})", epoch, b, last_good)
                        break
                    if self.clip_norm is not None:
                        clip_grad_norm_(grads, self.clip_norm)
                    self.optimizer.step(params, grads)
                    size = yb.shape[0] if wb is None else float(wb.sum())
                    total_loss += step.data_loss * size
                    if track_accuracy:
                        hits += self._accuracy_hits(step.outputs, yb, wb) or 0
                    seen += size
                    for cb in batch_callbacks:
                        cb.on_batch_end(self, b, step.data_loss)
                if not diverged and self.terminate_on_nan and seen:
                    problem = self._divergence(xb, target, wb)
                    if problem:
                        diverged = True
                        self._stop_on_nan(problem, epoch, None, last_good)
                if diverged:
                    break
                logs: dict[str, Any] = {"epoch": epoch + 1, "lr": lr}
                logs["train_loss"] = total_loss / seen if seen else 0.0
                if track_accuracy:
                    logs["train_accuracy"] = hits / seen if seen else 0.0
                if dev is not None:
                    for key, value in self.evaluate(*dev).items():
                        logs[f"dev_{key}"] = value
                    dev_loss = logs["dev_loss"]
                    if self.terminate_on_nan and dev[0].shape[0] and not math.isfinite(dev_loss):
                        diverged = True
                        self._stop_on_nan("non-finite dev loss", epoch, None, last_good)
                        break
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
        finally:
            # the training arrays are not held past fit (a checkpoint hashed them already)
            self.train_inputs, self._digest_of = None, None
            for cb in self.callbacks:
                cb.close(self)
        if diverged and self.epoch == 0:
            raise TrainingDiverged(self.stop_reason)
        return self.history

    def _check_source(self, source: BatchSource, y: Any, sample_weight: Any):
        """``(source, y, w)`` stand-ins for a batch source: its rows' count and width are
        checked, ``y`` is an empty array of the labels' kind, ``w`` None (the source weights
        its own rows)."""
        if y is not None or sample_weight is not None or self.class_weight is not None:
            raise DataError(
                "a batch source brings its own targets and weights: pass y=None and no "
                "sample_weight or class_weight"
            )
        if source.n_rows == 0:
            raise DataError("training data has no rows")
        n_in = self.model.n_inputs
        if n_in is not None and source.n_features != n_in:
            raise DataError(
                f"training data has {source.n_features} features but the model's input layer "
                f"expects {n_in}"
            )
        labels = np.int64 if self.task == "classification" else np.float32
        return source, np.zeros(0, dtype=labels), None

    def _epoch_batches(self, source: BatchSource | None, gather: Any, y: Any, w: Any):
        """One epoch's ``(x, y, w)`` mini-batches: the source's, or the arrays' rows in the
        order :func:`minibatches` draws (``w`` None without example weights)."""
        if source is not None:
            yield from source.batches(self.batch_size, self.rng)
            return
        for idx in minibatches(self.n_train, self.batch_size, self.rng):
            yield gather(idx), y[idx], None if w is None else w[idx]

    def _divergence(self, x: Any, target: Any, weight: Any) -> str | None:
        """Whether the epoch ended with unusable weights: non-finite parameters or buffers, or
        non-finite outputs or loss (inference mode) on the epoch's last batch, as weights that
        are finite but huge give. Costs one forward pass of one batch per epoch."""
        if not _all_finite(self.model):
            return "non-finite weights"
        with np.errstate(over="ignore", invalid="ignore"):
            outputs = self.model.forward(x, training=False)
            finite = bool(array_module(outputs).isfinite(outputs).all())
            if finite:
                finite = math.isfinite(self.loss.forward(outputs, target, weight))
        return None if finite else "non-finite outputs"

    def _stop_on_nan(self, what: str, epoch: int, batch: int | None, last_good) -> None:
        """Stop a diverging run and put back the weights it started the epoch with (the last
        finite ones). Without a finished epoch there is nothing to keep: ``fit`` raises."""
        self.stop_training = True
        where = f"epoch {epoch + 1}" + (f", batch {batch + 1}" if batch is not None else "")
        advice = "try a smaller learning rate or stronger input normalization"
        if last_good is not None:
            self.model.load_state_dict(last_good)
        if self.epoch == 0:
            self.stop_reason = (
                f"training diverged: {what} at {where}, before any epoch ended with finite "
                f"weights; no model is kept ({advice})"
            )
            return
        self.stop_reason = (
            f"{what} at {where}: training stopped and the weights of epoch {self.epoch} "
            f"restored ({advice})"
        )
        warnings.warn(self.stop_reason, RuntimeWarning, stacklevel=3)

    # -- inference ---------------------------------------------------------------------------
    def evaluate(
        self, X: Any, y: Any, sample_weight: Any = None, batch_size: int = 4096
    ) -> dict[str, float]:
        """Mean data loss (no penalty) and, for classification, accuracy, in inference mode
        (dropout off, batch norm on running statistics). With ``sample_weight`` both are
        weighted means (``sum w_i l_i / sum w_i``, as scikit-learn's ``score``)."""
        X, y = self._check_xy(X, y, "evaluation data")
        w = None
        if sample_weight is not None:
            w = check_sample_weight(sample_weight, y.shape[0], "evaluation data sample_weight")
        logits = self.model.predict(X, batch_size=batch_size)
        result = {"loss": self.loss.forward(logits, y, w) if X.shape[0] else math.nan}
        hits = self._accuracy_hits(logits, y, w)
        if hits is not None:
            total = float(w.sum()) if w is not None else X.shape[0]
            result["accuracy"] = hits / total if total else math.nan
        return result

    def predict(self, X: Any, batch_size: int = 4096) -> np.ndarray:
        """Predictions in inference mode: class probabilities for classification (softmax
        rows, or the positive-class probability column for binary), values for regression."""
        X = self._features(X, "X")
        return self.loss.output(self.model.predict(X, batch_size=batch_size))

    def predict_classes(self, X: Any, batch_size: int = 4096) -> np.ndarray:
        """Class indices ``0..K-1`` (classification only)."""
        if self.task != "classification":
            raise DeepfitError("predict_classes is for classification; use predict")
        logits = self.model.predict(self._features(X, "X"), batch_size=batch_size)
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

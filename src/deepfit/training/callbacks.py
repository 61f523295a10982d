"""Callbacks: hooks into the training loop (Keras-like), each reusable across runs.

A callback sees the :class:`~deepfit.training.trainer.Trainer` at five moments:
``on_train_begin``, ``on_epoch_begin``, ``on_batch_end``, ``on_epoch_end`` and
``on_train_end`` (and ``close`` when ``fit`` ends, normally or by an exception). Only the
callbacks whose ``wants_batches()`` is true (asked once, after ``on_train_begin``) are called
per batch, so a callback with nothing to do per batch costs nothing there. A callback asks
training to stop by setting ``trainer.stop_training = True`` and ``trainer.stop_reason``.
State that must survive a crash is returned by ``state_dict()`` as ``(json_data, arrays)``
and put back by ``load_state_dict``; ``on_train_begin`` resets everything unless
``trainer.resumed`` is true (then the state was just loaded).

Callbacks run in ascending ``order``; :class:`Checkpoint` runs last, so it saves the state
the others left at the end of the epoch.
"""

from __future__ import annotations

import csv
import io
import math
import os
import sys
import time
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, ClassVar

import numpy as np

from deepfit.errors import DeepfitError
from deepfit.io import atomic_write_text, load_arrays, save_arrays
from deepfit.optim.averaging import WeightAverage, update_bn
from deepfit.optim.ewa import EWA

if TYPE_CHECKING:
    from deepfit.training.trainer import Trainer


class Callback:
    """Base class: every hook does nothing."""

    order = 0

    def on_train_begin(self, trainer: Trainer) -> None: ...

    def on_epoch_begin(self, trainer: Trainer, epoch: int) -> None: ...

    def on_batch_end(self, trainer: Trainer, batch: int, loss: float) -> None: ...

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict[str, Any]) -> None: ...

    def on_train_end(self, trainer: Trainer) -> None: ...

    def close(self, trainer: Trainer) -> None:
        """Release what the callback holds (a live progress display); called last by ``fit``,
        also when training ends by an exception."""

    def wants_batches(self) -> bool:
        """Whether ``on_batch_end`` does anything (asked after ``on_train_begin``)."""
        return type(self).on_batch_end is not Callback.on_batch_end

    def state_dict(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        return {}, {}

    def load_state_dict(self, data: dict[str, Any], arrays: dict[str, np.ndarray]) -> None: ...

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def _finite(state: dict[str, Any]) -> bool:
    return all(bool(np.isfinite(v).all()) for v in state.values())


class EarlyStopping(Callback):
    """Stop when the monitored metric stops improving; restore the best weights at the end.

    Criteria (``criterion``):

    - ``"patience"`` (default): stop after ``patience`` epochs without an improvement larger
      than ``min_delta``.
    - ``"GL"``: Prechelt's generalization loss ``GL(t) = 100 (E_dev(t) / E_opt(t) - 1)``;
      stop when ``GL > alpha`` (default 5).
    - ``"PQ"``: stop when ``GL(t) / P_k(t) > alpha`` (default 0.5) at the end of a strip of
      ``k = strip`` epochs, with training progress
      ``P_k(t) = 1000 (sum_{strip} E_train / (k min_{strip} E_train) - 1)``.
    - ``"UP"``: stop when the dev error rose at the end of ``alpha`` (default 3) successive
      strips.

    ``E`` is the monitored dev loss (or error); the Prechelt criteria need a metric to
    minimize. With ``restore_best`` (default) the weights of the best epoch are put back when
    training ends, whatever ended it (all epochs done, this callback, another callback, or the
    NaN guard; Keras only does it when it fires). Weights that are not finite are never kept
    as the best.

    As Keras' ``EarlyStopping``: ``start_from_epoch`` epochs are ignored entirely (no best,
    no patience counted) before monitoring starts, e.g. while a warm-up or a large learning
    rate makes the metric meaningless; with ``baseline`` (patience criterion) an epoch resets
    the patience only if it also beats the baseline, so a run that stays worse than
    ``baseline`` stops at its first non-improving epoch once ``patience`` epochs have passed
    (an improving epoch never stops a run, as in Keras).

    References
    ----------
    Prechelt, "Early stopping — but when?", in Neural Networks: Tricks of the Trade, 1998.
    """

    CRITERIA: ClassVar[dict[str, float | None]] = {"patience": None, "GL": 5.0, "PQ": 0.5, "UP": 3}

    def __init__(
        self,
        monitor: str = "dev_loss",
        patience: int = 10,
        min_delta: float = 0.0,
        restore_best: bool = True,
        *,
        mode: str = "auto",
        criterion: str = "patience",
        alpha: float | None = None,
        strip: int = 5,
        start_from_epoch: int = 0,
        baseline: float | None = None,
    ) -> None:
        if (
            isinstance(start_from_epoch, bool)
            or not isinstance(start_from_epoch, int)
            or (start_from_epoch < 0)
        ):
            raise DeepfitError(
                f"EarlyStopping start_from_epoch must be an integer >= 0, got {start_from_epoch!r}"
            )
        if baseline is not None and (
            isinstance(baseline, bool)
            or not isinstance(baseline, (int, float))
            or not math.isfinite(baseline)
        ):
            raise DeepfitError(f"EarlyStopping baseline must be a finite number, got {baseline!r}")
        if baseline is not None and criterion != "patience":
            raise DeepfitError(
                f"EarlyStopping baseline applies to criterion 'patience', not {criterion!r}"
            )
        self.start_from_epoch = start_from_epoch
        self.baseline = None if baseline is None else float(baseline)
        if not isinstance(patience, int) or patience < 0:
            raise DeepfitError(f"EarlyStopping patience must be an integer >= 0, got {patience!r}")
        if not isinstance(min_delta, (int, float)) or min_delta < 0:
            raise DeepfitError(f"EarlyStopping min_delta must be >= 0, got {min_delta!r}")
        if criterion not in self.CRITERIA:
            raise DeepfitError(
                f"EarlyStopping criterion {criterion!r} unknown; choose one of "
                f"{', '.join(self.CRITERIA)}"
            )
        if mode == "auto":
            mode = "max" if "accuracy" in monitor else "min"
        if mode not in ("min", "max"):
            raise DeepfitError(f"EarlyStopping mode must be 'auto', 'min' or 'max', got {mode!r}")
        if criterion != "patience" and mode != "min":
            raise DeepfitError(
                f"EarlyStopping criterion {criterion} needs a metric to minimize (a loss), "
                f"not {monitor!r}"
            )
        if not isinstance(strip, int) or strip < 1:
            raise DeepfitError(f"EarlyStopping strip must be a positive integer, got {strip!r}")
        self.monitor, self.patience, self.min_delta = monitor, patience, float(min_delta)
        self.restore_best, self.mode, self.criterion, self.strip = (
            restore_best,
            mode,
            criterion,
            strip,
        )
        self.alpha = self.CRITERIA[criterion] if alpha is None else alpha
        self._reset()

    def _reset(self) -> None:
        self.best: float | None = None
        self.best_epoch: int | None = None
        self.wait = 0
        self.best_weights: dict[str, np.ndarray] | None = None
        self.train_losses: list[float] = []
        self.strip_end_value: float | None = None
        self.up_strips = 0

    def on_train_begin(self, trainer: Trainer) -> None:
        if not trainer.resumed:
            self._reset()

    def _improved(self, value: float, reference: float | None = None) -> bool:
        reference = self.best if reference is None else reference
        if reference is None:
            return True
        if self.mode == "min":
            return value < reference - self.min_delta
        return value > reference + self.min_delta

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict[str, Any]) -> None:
        if self.monitor not in logs:
            raise DeepfitError(
                f"EarlyStopping monitors {self.monitor!r}, which this run does not record "
                f"(recorded: {', '.join(logs)}); pass validation_data for dev metrics"
            )
        value = float(logs[self.monitor])
        if not math.isfinite(value) or epoch < self.start_from_epoch:
            return
        improved = self._improved(value)
        if improved:
            self.best, self.best_epoch = value, int(logs["epoch"])
            beats_baseline = self.baseline is None or self._improved(value, self.baseline)
            self.wait = 0 if beats_baseline else self.wait + 1
            if self.restore_best:
                state = trainer.model.state_dict()
                if _finite(state):
                    self.best_weights = state
        else:
            self.wait += 1
        self.train_losses.append(float(logs.get("train_loss", math.nan)))
        if improved and self.criterion == "patience":
            return  # as Keras: an improving epoch never stops the run
        reason = self._should_stop(value, len(self.train_losses))
        if reason:
            trainer.stop_training = True
            trainer.stop_reason = f"early stopping ({reason})"

    def _should_stop(self, value: float, t: int) -> str | None:
        if self.criterion == "patience":
            if self.wait >= self.patience:
                return f"no improvement of {self.monitor} for {self.wait} epochs"
            return None
        gl = 100.0 * (value / self.best - 1.0) if self.best else 0.0
        if self.criterion == "GL":
            return f"GL {gl:.2f} > {self.alpha}" if gl > self.alpha else None
        if t % self.strip:
            return None
        if self.criterion == "PQ":
            window = self.train_losses[-self.strip :]
            progress = 1000.0 * (sum(window) / (self.strip * min(window)) - 1.0)
            if progress > 0 and gl / progress > self.alpha:
                return f"PQ {gl / progress:.3f} > {self.alpha}"
            return None
        previous, self.strip_end_value = self.strip_end_value, value
        self.up_strips = self.up_strips + 1 if previous is not None and value > previous else 0
        if self.up_strips >= self.alpha:
            return f"UP: {self.monitor} rose in {self.up_strips} successive strips"
        return None

    def on_train_end(self, trainer: Trainer) -> None:
        trainer.history.best_epoch = self.best_epoch
        if self.restore_best and self.best_weights is not None:
            trainer.model.load_state_dict(self.best_weights)

    def state_dict(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        data = {
            "best": self.best,
            "best_epoch": self.best_epoch,
            "wait": self.wait,
            "train_losses": self.train_losses,
            "strip_end_value": self.strip_end_value,
            "up_strips": self.up_strips,
        }
        return data, dict(self.best_weights or {})

    def load_state_dict(self, data: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        self.best, self.best_epoch, self.wait = data["best"], data["best_epoch"], data["wait"]
        self.train_losses = list(data["train_losses"])
        self.strip_end_value, self.up_strips = data["strip_end_value"], data["up_strips"]
        self.best_weights = dict(arrays) if arrays else None

    def __repr__(self) -> str:
        extra = f", start_from_epoch={self.start_from_epoch}" if self.start_from_epoch else ""
        extra += f", baseline={self.baseline}" if self.baseline is not None else ""
        return (
            f"EarlyStopping(monitor={self.monitor!r}, criterion={self.criterion!r}, "
            f"patience={self.patience}, min_delta={self.min_delta}{extra})"
        )


class MetricsLog(Callback):
    """Write ``metrics.csv``: one header, one row per epoch, flushed and fsync'ed each epoch.

    On resume the file is rewritten (atomically) from the restored history first, so rows
    of epochs lost in the crash disappear and none is duplicated.
    """

    order = 50

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._columns: list[str] | None = None

    def on_train_begin(self, trainer: Trainer) -> None:
        records = trainer.history.records if trainer.resumed else []
        self._columns = list(records[0]) if records else None
        buffer = io.StringIO()
        if records:
            writer = csv.DictWriter(buffer, fieldnames=self._columns, lineterminator="\n")
            writer.writeheader()
            writer.writerows(records)
        atomic_write_text(self.path, buffer.getvalue())

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict[str, Any]) -> None:
        try:
            with open(self.path, "a", newline="") as f:
                if self._columns is None:
                    self._columns = list(logs)
                    csv.DictWriter(f, fieldnames=self._columns, lineterminator="\n").writeheader()
                csv.DictWriter(f, fieldnames=self._columns, lineterminator="\n").writerow(logs)
                f.flush()
                os.fsync(f.fileno())
        except OSError as exc:  # a full disk fails in write/flush/close, naming no file
            if exc.filename is None:
                exc.filename = str(self.path)
            raise

    def __repr__(self) -> str:
        return f"MetricsLog({str(self.path)!r})"


class Progress(Callback):
    """A ``rich`` progress bar per epoch (batches done, time remaining, EWA-smoothed
    bias-corrected mini-batch loss), then one summary line per epoch.

    Drawn on ``stream`` (default: standard error) and on by default only when that stream is
    a terminal; ``enabled`` forces it on or off. When off, or when ``rich`` (the ``cli``
    extra) is not installed, it does nothing at all: the trainer does not even call it per
    batch. The display is redrawn at most every 0.1 s, from the training thread (no
    background thread).
    """

    order = 90

    def __init__(
        self, stream: IO[str] | None = None, enabled: bool | None = None, beta: float = 0.98
    ) -> None:
        self.stream = stream
        self.enabled = enabled
        self.beta = beta
        self._on = False
        self._bar: Any = None

    def _out(self) -> IO[str]:
        return self.stream if self.stream is not None else sys.stderr

    def _active(self) -> bool:
        if self.enabled is not None:
            return self.enabled
        isatty = getattr(self._out(), "isatty", None)
        return bool(isatty and isatty())

    def wants_batches(self) -> bool:
        return self._on

    def on_train_begin(self, trainer: Trainer) -> None:
        self._on = self._active()
        if not self._on:
            return
        try:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                TextColumn,
                TimeRemainingColumn,
            )
            from rich.progress import Progress as RichProgress
        except ImportError:
            self._on = False
            return
        console = Console(file=self._out(), force_terminal=True if self.enabled else None)
        self._bar = RichProgress(
            TextColumn("epoch {task.fields[epoch]}/{task.fields[epochs]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            TextColumn("loss {task.fields[loss]}"),
            console=console,
            auto_refresh=False,
            transient=True,
            redirect_stdout=False,
            redirect_stderr=False,
        )
        self._task = self._bar.add_task(
            "train",
            total=max(trainer.batches_per_epoch, 1),
            epoch=1,
            epochs=trainer.epochs,
            loss="-",
        )
        self._bar.start()

    def on_epoch_begin(self, trainer: Trainer, epoch: int) -> None:
        if not self._on:
            return
        self._smooth = EWA(self.beta)
        self._last_draw = time.perf_counter()
        self._bar.reset(
            self._task,
            total=max(trainer.batches_per_epoch, 1),
            epoch=epoch + 1,
            epochs=trainer.epochs,
            loss="-",
        )

    def on_batch_end(self, trainer: Trainer, batch: int, loss: float) -> None:
        smoothed = self._smooth.update(loss)
        self._bar.update(self._task, advance=1, loss=f"{smoothed:.4f}")
        now = time.perf_counter()
        if now - self._last_draw >= 0.1 or batch + 1 >= trainer.batches_per_epoch:
            self._last_draw = now
            self._bar.refresh()

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict[str, Any]) -> None:
        if not self._on:
            return
        parts = [f"epoch {logs['epoch']}/{trainer.epochs}"]
        for key, value in logs.items():
            if key != "epoch":
                parts.append(f"{key} {value:.4g}")
        self._bar.console.print("  ".join(parts), markup=False, highlight=False)

    def on_train_end(self, trainer: Trainer) -> None:
        if self._on and trainer.stop_reason:
            self._bar.console.print(
                f"stopped: {trainer.stop_reason}", markup=False, highlight=False
            )

    def close(self, trainer: Trainer) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
        self._on = False


class ReduceLROnPlateau(Callback):
    """Multiply the learning rate by ``factor`` when the monitored metric stops improving, with
    PyTorch's ``ReduceLROnPlateau`` semantics.

    After each epoch the metric ``a`` is compared with the best so far: better means
    ``a < best (1 - threshold)`` (``threshold_mode="rel"``, mode ``"min"``), ``a < best -
    threshold`` (``"abs"``), and mirrored for ``"max"``. After more than ``patience`` epochs
    without a better value the rate is reduced, ``lr := max(lr * factor, min_lr)`` (skipped
    when that changes it by less than ``eps``), the count restarts, and ``cooldown`` epochs
    follow in which bad epochs are not counted.

    With a schedule: the reductions are kept as one factor ``s`` (the product of the
    ``factor`` s applied) on top of the schedule, ``lr(epoch) = max(schedule(epoch) * s,
    min(min_lr, schedule(epoch)))``, so the schedule keeps its shape and the plateau lowers
    it. Without one, the base rate is the optimizer's at the start of training. The epoch's
    rate is set in ``on_epoch_begin`` and recorded in the history's ``lr``; the state (best,
    counts, ``s``) is checkpointed.

    With early stopping: both watch the metric independently; give this a smaller
    ``patience`` than early stopping so the rate drops (possibly several times) before the run
    is abandoned, as in Keras' usual pairing. ``deepfit.build`` refuses the opposite.
    """

    order = 5

    def __init__(
        self,
        monitor: str = "dev_loss",
        *,
        mode: str = "auto",
        factor: float = 0.1,
        patience: int = 10,
        threshold: float = 1e-4,
        threshold_mode: str = "rel",
        cooldown: int = 0,
        min_lr: float = 0.0,
        eps: float = 1e-8,
    ) -> None:
        if mode == "auto":
            mode = "max" if "accuracy" in monitor or "r2" in monitor else "min"
        if mode not in ("min", "max"):
            raise DeepfitError(f"ReduceLROnPlateau mode must be 'min' or 'max', got {mode!r}")
        if threshold_mode not in ("rel", "abs"):
            raise DeepfitError(
                f"ReduceLROnPlateau threshold_mode must be 'rel' or 'abs', got {threshold_mode!r}"
            )
        if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not 0 < factor < 1:
            raise DeepfitError(f"ReduceLROnPlateau factor must be in (0, 1), got {factor!r}")
        for name, value in (("patience", patience), ("cooldown", cooldown)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise DeepfitError(
                    f"ReduceLROnPlateau {name} must be an integer >= 0, got {value!r}"
                )
        for name, value in (("threshold", threshold), ("min_lr", min_lr), ("eps", eps)):
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not (value >= 0 and math.isfinite(value))
            ):
                raise DeepfitError(f"ReduceLROnPlateau {name} must be a number >= 0, got {value!r}")
        self.monitor, self.mode, self.factor = monitor, mode, float(factor)
        self.patience, self.threshold, self.threshold_mode = (
            patience,
            float(threshold),
            threshold_mode,
        )
        self.cooldown, self.min_lr, self.eps = cooldown, float(min_lr), float(eps)
        self._reset(None)

    def _reset(self, base_lr: float | None) -> None:
        self.best = math.inf if self.mode == "min" else -math.inf
        self.num_bad_epochs = 0
        self.cooldown_counter = 0
        self.scale = 1.0
        self.base_lr = base_lr
        self.reductions = 0

    def on_train_begin(self, trainer: Trainer) -> None:
        if not trainer.resumed:
            self._reset(trainer.optimizer.lr)

    def is_better(self, a: float, best: float) -> bool:
        if self.mode == "min" and self.threshold_mode == "rel":
            return a < best * (1.0 - self.threshold)
        if self.mode == "min":
            return a < best - self.threshold
        if self.threshold_mode == "rel":
            return a > best * (self.threshold + 1.0)
        return a > best + self.threshold

    def lr_for(self, base: float) -> float:
        """The rate for an epoch whose un-reduced (scheduled) rate is ``base``."""
        if self.scale == 1.0:
            return base
        return max(base * self.scale, min(self.min_lr, base))

    def on_epoch_begin(self, trainer: Trainer, epoch: int) -> None:
        base = trainer.optimizer.lr if trainer.schedule is not None else self.base_lr
        if base is None:
            base = self.base_lr = trainer.optimizer.lr
        trainer.optimizer.lr = self.lr_for(base)

    def step(self, current: float, lr: float) -> float:
        """One epoch's decision (PyTorch's ``scheduler.step(metric)``): returns the new rate
        for an epoch that ran at ``lr``."""
        if self.is_better(current, self.best):
            self.best = current
            self.num_bad_epochs = 0
        else:
            self.num_bad_epochs += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0
        if self.num_bad_epochs > self.patience:
            new_lr = max(lr * self.factor, self.min_lr)
            if lr - new_lr > self.eps:
                self.scale *= self.factor
                self.reductions += 1
                lr = new_lr
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0
        return lr

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict[str, Any]) -> None:
        if self.monitor not in logs:
            raise DeepfitError(
                f"ReduceLROnPlateau monitors {self.monitor!r}, which this run does not record "
                f"(recorded: {', '.join(logs)}); pass validation_data for dev metrics"
            )
        self.step(float(logs[self.monitor]), float(logs["lr"]))

    def state_dict(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        best = self.best if math.isfinite(self.best) else None
        return {
            "best": best,
            "num_bad_epochs": self.num_bad_epochs,
            "cooldown_counter": self.cooldown_counter,
            "scale": self.scale,
            "base_lr": self.base_lr,
            "reductions": self.reductions,
        }, {}

    def load_state_dict(self, data: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        self._reset(data["base_lr"])
        if data["best"] is not None:
            self.best = float(data["best"])
        self.num_bad_epochs = int(data["num_bad_epochs"])
        self.cooldown_counter = int(data["cooldown_counter"])
        self.scale = float(data["scale"])
        self.reductions = int(data["reductions"])

    def __repr__(self) -> str:
        return (
            f"ReduceLROnPlateau(monitor={self.monitor!r}, factor={self.factor}, "
            f"patience={self.patience}, min_lr={self.min_lr})"
        )


class WeightAveraging(Callback):
    """Average the weights along training (SWA or EMA, :mod:`deepfit.optim.averaging`) and
    put the average into the model when training ends.

    ``every="epoch"`` folds in the weights at the end of every epoch after the first
    ``start`` ones (SWA's usual use); ``every="batch"`` after every optimizer step of those
    epochs (an EMA's). At the end the averaged parameters replace the model's (after early
    stopping's restore, which runs before: the average wins) and, when the model has batch
    norm, its running statistics are recomputed with one pass over the training inputs
    (:func:`~deepfit.optim.averaging.update_bn`, as ``torch.optim.swa_utils.update_bn``). A
    non-finite average is never installed: the average of the last finished epoch is used,
    or the model is left as it is. The average is checkpointed.
    """

    order = 10

    def __init__(self, average: WeightAverage, *, start: int = 0, every: str = "epoch") -> None:
        if not isinstance(average, WeightAverage):
            raise DeepfitError(f"WeightAveraging needs an SWA or EMA, got {average!r}")
        if isinstance(start, bool) or not isinstance(start, int) or start < 0:
            raise DeepfitError(f"WeightAveraging start must be an integer >= 0, got {start!r}")
        if every not in ("epoch", "batch"):
            raise DeepfitError(f"WeightAveraging every must be 'epoch' or 'batch', got {every!r}")
        self.average, self.start, self.every = average, start, every
        self._last_epoch_state: tuple[dict[str, Any], dict[str, np.ndarray]] | None = None

    def wants_batches(self) -> bool:
        return self.every == "batch"

    def on_train_begin(self, trainer: Trainer) -> None:
        if not trainer.resumed:
            self.average.reset()
        self._last_epoch_state = None

    def on_batch_end(self, trainer: Trainer, batch: int, loss: float) -> None:
        if trainer.epoch >= self.start:
            self.average.update(trainer.model.params)

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict[str, Any]) -> None:
        if self.every == "epoch" and epoch + 1 > self.start:
            self.average.update(trainer.model.params)
        if self.average.n:
            self._last_epoch_state = self.average.state_dict()

    def on_train_end(self, trainer: Trainer) -> None:
        if not self.average.n:
            return
        if not self.average.is_finite():
            if self._last_epoch_state is None or not _finite(self._last_epoch_state[1]):
                return
            self.average.load_state_dict(*self._last_epoch_state)
        self.average.copy_to(trainer.model.params)
        inputs = trainer.train_inputs
        if inputs is not None:
            size = trainer.batch_size
            update_bn(trainer.model, (inputs[i : i + size] for i in range(0, len(inputs), size)))

    def state_dict(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        return self.average.state_dict()

    def load_state_dict(self, data: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        self.average.load_state_dict(data, arrays)

    def __repr__(self) -> str:
        return f"WeightAveraging({self.average!r}, start={self.start}, every={self.every!r})"


SNAPSHOT_FORMAT = "deepfit-snapshots"


class SnapshotEnsemble(Callback):
    """Snapshot ensembles: keep the weights at the end of every cycle of a warm-restart
    schedule (SGDR), and predict with the mean of the snapshots' predictions::

        p(x) = (1/M) sum_{i=1..M} output(f(x; theta_i))

    where ``output`` is the loss's output (class probabilities, or values for regression). The
    cycle ends come from ``schedule`` (default: the trainer's, which must have cycles:
    ``schedules.sgdr``, possibly after a warm-up). ``keep`` > 0 keeps only the last ``keep``
    snapshots (Huang et al. use the last M). The snapshots are checkpointed, exportable with
    :meth:`save` and reloadable with :meth:`load`; the trained model itself is left as the
    run ends it.

    References
    ----------
    Huang, Li, Pleiss, Liu, Hopcroft and Weinberger, "Snapshot ensembles: train 1, get M for
    free", ICLR 2017.
    """

    order = 20

    def __init__(self, schedule: Any = None, keep: int = 0) -> None:
        if isinstance(keep, bool) or not isinstance(keep, int) or keep < 0:
            raise DeepfitError(f"SnapshotEnsemble keep must be an integer >= 0, got {keep!r}")
        self.schedule, self.keep = schedule, keep
        self.snapshots: list[dict[str, np.ndarray]] = []
        self.epochs: list[int] = []
        self.architecture: list[dict[str, Any]] | None = None
        self.dtype: str | None = None
        self.loss: Any = None

    def _cycles(self, trainer: Trainer) -> Any:
        schedule = self.schedule if self.schedule is not None else trainer.schedule
        if not callable(getattr(schedule, "cycle_end", None)):
            raise DeepfitError(
                "SnapshotEnsemble needs a schedule with warm restarts (schedules.sgdr), got "
                f"{schedule!r}"
            )
        return schedule

    def on_train_begin(self, trainer: Trainer) -> None:
        self._schedule = self._cycles(trainer)
        if not trainer.resumed:
            self.snapshots, self.epochs = [], []
        self.architecture = trainer.model.config()
        self.dtype = str(trainer.model.dtype)
        self.loss = trainer.loss

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict[str, Any]) -> None:
        if not self._schedule.cycle_end(epoch):
            return
        self.snapshots.append(trainer.model.state_dict())
        self.epochs.append(epoch + 1)
        if self.keep and len(self.snapshots) > self.keep:
            del self.snapshots[0], self.epochs[0]

    def _model(self):
        from deepfit.nn.sequential import Sequential

        if not self.snapshots or self.architecture is None:
            raise DeepfitError("SnapshotEnsemble has no snapshots (no warm-restart cycle finished)")
        return Sequential.from_config(self.architecture, dtype=self.dtype)

    def predict(self, X: Any, batch_size: int = 4096) -> np.ndarray:
        """The mean of the snapshots' outputs: class probabilities, or values (regression)."""
        model = self._model()
        total = None
        for state in self.snapshots:
            model.load_state_dict(state)
            out = np.asarray(
                self.loss.output(model.predict(np.asarray(X), batch_size)), dtype=np.float64
            )
            total = out if total is None else total + out
        return total / len(self.snapshots)

    def predict_proba(self, X: Any, batch_size: int = 4096) -> np.ndarray:
        """Class probabilities averaged over the snapshots (classification)."""
        if getattr(self.loss, "task", "") != "classification":
            raise DeepfitError("predict_proba is for classification; use predict")
        return self.predict(X, batch_size)

    def state_dict(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        arrays = {f"{i}/{k}": v for i, s in enumerate(self.snapshots) for k, v in s.items()}
        return {"epochs": list(self.epochs)}, arrays

    def load_state_dict(self, data: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        self.epochs = [int(e) for e in data["epochs"]]
        self.snapshots = [
            {k.split("/", 1)[1]: v for k, v in arrays.items() if k.split("/", 1)[0] == str(i)}
            for i in range(len(self.epochs))
        ]

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the snapshots (and what :meth:`load` needs to predict) to a deepfit file."""
        from deepfit.nn.losses import LOSSES

        self._model()
        names = {cls: name for name, cls in LOSSES.items()}
        data, arrays = self.state_dict()
        meta = {
            "format": SNAPSHOT_FORMAT,
            "format_version": 1,
            "architecture": self.architecture,
            "dtype": self.dtype,
            "loss": names[type(self.loss)],
            **data,
        }
        return save_arrays(path, arrays, meta)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> SnapshotEnsemble:
        """Read a file written by :meth:`save`; ``predict`` works right away."""
        from deepfit.nn.losses import get_loss

        arrays, meta = load_arrays(path, SNAPSHOT_FORMAT)
        ensemble = cls()
        try:
            ensemble.architecture = list(meta["architecture"])
            ensemble.dtype = str(meta["dtype"])
            ensemble.loss = get_loss(str(meta["loss"]))
            ensemble.load_state_dict({"epochs": meta["epochs"]}, arrays)
        except (KeyError, TypeError, ValueError) as exc:
            raise DeepfitError(f"{path}: damaged snapshot file ({exc})") from None
        return ensemble

    def __repr__(self) -> str:
        return f"SnapshotEnsemble(keep={self.keep}, snapshots={len(self.snapshots)})"


class Checkpoint(Callback):
    """Save everything needed to continue training, atomically, every ``every`` epochs:
    parameters, buffers, optimizer state, the epoch (hence the schedule's position), the RNG
    states, the history and the other callbacks' state (early stopping's best weights
    included). ``Trainer.fit(..., resume=True)`` continues from it.
    """

    order = 100

    def __init__(self, path: str | os.PathLike[str], every: int = 1) -> None:
        if not isinstance(every, int) or every < 1:
            raise DeepfitError(f"Checkpoint every must be a positive integer, got {every!r}")
        self.path = Path(path)
        self.every = every

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict[str, Any]) -> None:
        if (epoch + 1) % self.every == 0 or trainer.stop_training or epoch + 1 == trainer.epochs:
            trainer.save_checkpoint(self.path)

    def __repr__(self) -> str:
        return f"Checkpoint({str(self.path)!r}, every={self.every})"

"""Callbacks: hooks into the training loop (Keras-like), each reusable across runs.

A callback sees the :class:`~deepfit.training.trainer.Trainer` at five moments:
``on_train_begin``, ``on_epoch_begin``, ``on_batch_end``, ``on_epoch_end`` and
``on_train_end``. It asks training to stop by setting ``trainer.stop_training = True`` and
``trainer.stop_reason``. State that must survive a crash is returned by ``state_dict()`` as
``(json_data, arrays)`` and put back by ``load_state_dict``; ``on_train_begin`` resets
everything unless ``trainer.resumed`` is true (then the state was just loaded).

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
from deepfit.io import atomic_write_text
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

    def state_dict(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        return {}, {}

    def load_state_dict(self, data: dict[str, Any], arrays: dict[str, np.ndarray]) -> None: ...

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


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
    training ends, whether or not this callback fired (Keras only does it when it fires).

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
    ) -> None:
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

    def _improved(self, value: float) -> bool:
        if self.best is None:
            return True
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict[str, Any]) -> None:
        if self.monitor not in logs:
            raise DeepfitError(
                f"EarlyStopping monitors {self.monitor!r}, which this run does not record "
                f"(recorded: {', '.join(logs)}); pass validation_data for dev metrics"
            )
        value = float(logs[self.monitor])
        if not math.isfinite(value):
            return
        if self._improved(value):
            self.best, self.best_epoch, self.wait = value, int(logs["epoch"]), 0
            if self.restore_best:
                self.best_weights = trainer.model.state_dict()
        else:
            self.wait += 1
        self.train_losses.append(float(logs.get("train_loss", math.nan)))
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
        return (
            f"EarlyStopping(monitor={self.monitor!r}, criterion={self.criterion!r}, "
            f"patience={self.patience}, min_delta={self.min_delta})"
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
        with open(self.path, "a", newline="") as f:
            if self._columns is None:
                self._columns = list(logs)
                csv.DictWriter(f, fieldnames=self._columns, lineterminator="\n").writeheader()
            csv.DictWriter(f, fieldnames=self._columns, lineterminator="\n").writerow(logs)
            f.flush()
            os.fsync(f.fileno())

    def __repr__(self) -> str:
        return f"MetricsLog({str(self.path)!r})"


class Progress(Callback):
    """A progress bar with ETA and the EWA-smoothed (bias-corrected) mini-batch loss, then
    one summary line per epoch. Off when ``stream`` is not a terminal, unless ``enabled``.
    """

    order = 90

    def __init__(
        self, stream: IO[str] | None = None, enabled: bool | None = None, beta: float = 0.98
    ) -> None:
        self.stream = stream
        self.enabled = enabled
        self.beta = beta

    def _out(self) -> IO[str]:
        return self.stream if self.stream is not None else sys.stderr

    def _active(self) -> bool:
        if self.enabled is not None:
            return self.enabled
        isatty = getattr(self._out(), "isatty", None)
        return bool(isatty and isatty())

    def on_train_begin(self, trainer: Trainer) -> None:
        self._on = self._active()

    def on_epoch_begin(self, trainer: Trainer, epoch: int) -> None:
        self._smooth = EWA(self.beta)
        self._start = self._last_draw = time.perf_counter()
        self._epoch = epoch

    def on_batch_end(self, trainer: Trainer, batch: int, loss: float) -> None:
        smoothed = self._smooth.update(loss)
        if not self._on:
            return
        total = max(trainer.batches_per_epoch, 1)
        done = batch + 1
        now = time.perf_counter()
        if now - self._last_draw < 0.1 and done < total:
            return
        self._last_draw = now
        elapsed = now - self._start
        eta = elapsed / done * (total - done)
        filled = int(24 * done / total)
        self._out().write(
            f"\repoch {self._epoch + 1}/{trainer.epochs} [{'#' * filled}{'.' * (24 - filled)}] "
            f"{done}/{total} ETA {eta:4.1f}s loss {smoothed:.4f}"
        )
        self._out().flush()

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict[str, Any]) -> None:
        if not self._on:
            return
        parts = [f"epoch {logs['epoch']}/{trainer.epochs}"]
        for key, value in logs.items():
            if key != "epoch":
                parts.append(f"{key} {value:.4g}")
        self._out().write("\r" + "  ".join(parts) + " " * 8 + "\n")
        self._out().flush()

    def on_train_end(self, trainer: Trainer) -> None:
        if self._on and trainer.stop_reason:
            self._out().write(f"stopped: {trainer.stop_reason}\n")


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

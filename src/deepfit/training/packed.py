"""Training a packed model: ``K`` members in lockstep, each stopping on its own.

One loop trains every member of a :class:`~deepfit.nn.packed.PackedSequential` on the same
mini-batches (one shuffling stream, no per-member copy of the data). Each member has its own
learning rate (and schedule), penalties and optimizer scalars (see
:mod:`deepfit.optim.packed`), and its own fate:

- **early stopping per member**: a member whose monitored dev loss has not improved by
  ``min_delta`` for ``patience`` epochs is frozen (its parameters stop moving) and, with
  ``restore_best_weights``, gets back the weights of its best epoch at the end of training
  (Keras' ``EarlyStopping(restore_best_weights=True)``, member by member);
- **NaN guard per member**: a member whose loss or weights turn non-finite is frozen, its
  weights of the last epoch that ended finite are put back, and the reason is recorded in
  ``status``; the other members go on. Training ends when every member has stopped or the
  epochs run out.

A BatchEnsemble (``kind="batch"``) shares its weights, so its members stop together, on the
loss of the ensemble's mean prediction.

A stopped member costs nothing from the next epoch on: the epochs train a compact copy of
the running members (:meth:`~deepfit.nn.packed.PackedSequential.take`, with the optimizer's
:meth:`~deepfit.optim.packed.PackedOptimizer.take`), written back into the model at each
epoch's end, and the dev set is predicted by the running members only (a stopped member's
weights, and so its dev numbers, no longer change). A running member computes exactly what it
computed in the full network. In the history, a stopped member's ``train_loss`` and
``train_accuracy`` are NaN (it no longer trains) and its dev numbers are those of its
final weights.

The ensemble predicts the mean of its members' probabilities (classification) or values
(regression)::

    p(x) = (1/K) sum_k p_k(x)

Checkpoints (``checkpoint=PATH``, written at the end of every epoch) and model files are
deepfit ``.npz`` files without pickle (:func:`deepfit.io.save_arrays`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from deepfit.backend import array_module, to_numpy
from deepfit.data.batches import check_sample_weight, minibatches
from deepfit.errors import DataError, DeepfitError
from deepfit.io import load_arrays, remove_stale_temporaries, save_arrays
from deepfit.nn.losses import Loss, SigmoidBinaryCrossEntropy, get_loss
from deepfit.nn.packed import (
    PackedBatchNorm,
    PackedDropout,
    PackedLoss,
    PackedPenalty,
    PackedSequential,
    packed_penalties,
)
from deepfit.optim.packed import PackedAdam, PackedOptimizer, member_values
from deepfit.threads import check_threads, limit_blas

CHECKPOINT_FORMAT = "deepfit-packed-checkpoint"
MODEL_FORMAT = "deepfit-packed-model"


class _Running:
    """What trains the running members in an epoch: the trainer's own model, optimizer and
    penalties (``rows`` is ``None``) or compact copies of the members ``rows``."""

    def __init__(
        self,
        model: PackedSequential,
        optimizer: PackedOptimizer,
        penalties: list[PackedPenalty],
        rows: np.ndarray | None,
    ) -> None:
        self.model, self.optimizer, self.penalties, self.rows = model, optimizer, penalties, rows


class PackedTrainer:
    """Fit a packed model, every member on the same mini-batches.

    Parameters
    ----------
    model : PackedSequential
    loss : str or Loss
        The single-network loss (packed here): ``"softmax_cross_entropy"``,
        ``"sigmoid_binary_cross_entropy"`` or ``"mse"``.
    optimizer : PackedOptimizer, optional
        Defaults to ``PackedAdam(K, 0.001)``.
    batch_size : int
    l2, l1 : float or K floats
        Per-member penalty strengths (``lambda/(2m) ||W_k||^2``, ``lambda/m |W_k|``).
    schedules : callable or sequence of K callables, optional
        ``epoch -> learning rate``: one for every member, or one per member.
    seed : int
        Seeds the shuffling stream shared by the members.
    patience : int, optional
        Early stopping per member after this many epochs without improvement of the
        monitored loss (dev loss with validation data, else train loss); ``None``: off.
    min_delta : float
        An improvement is a decrease by more than ``min_delta``.
    restore_best_weights : bool
        Put back each member's weights of its best epoch at the end.
    terminate_on_nan : bool
        The per-member NaN guard (on by default).
    checkpoint : path, optional
        Written at the end of every epoch; ``fit(..., resume=True)`` continues from it.
    threads : int
        BLAS threads while :meth:`fit` runs, as :class:`~deepfit.training.trainer.Trainer`'s
        (``0``: automatic, see :mod:`deepfit.threads`).
    """

    #: Whether stopped members leave the computation (a compact copy of the running ones
    #: trains; off: they stay in it, frozen). A class attribute so that
    #: ``bench/packed.py --ab`` can compare both in one process; the running members'
    #: numbers are the same either way.
    compact: ClassVar[bool] = True

    def __init__(
        self,
        model: PackedSequential,
        loss: str | Loss = "softmax_cross_entropy",
        optimizer: PackedOptimizer | None = None,
        batch_size: int = 64,
        l2: Any = 0.0,
        l1: Any = 0.0,
        schedules: Callable[[int], float] | Sequence[Callable[[int], float]] | None = None,
        seed: int = 0,
        *,
        patience: int | None = None,
        min_delta: float = 0.0,
        restore_best_weights: bool = True,
        terminate_on_nan: bool = True,
        checkpoint: str | Path | None = None,
        threads: int = 0,
    ) -> None:
        if not isinstance(model, PackedSequential):
            raise DeepfitError(f"PackedTrainer needs a PackedSequential, got {type(model)}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise DeepfitError(f"batch_size must be a positive integer, got {batch_size!r}")
        if patience is not None and (
            isinstance(patience, bool) or not isinstance(patience, int) or patience < 0
        ):
            raise DeepfitError(f"patience must be an integer >= 0 or None, got {patience!r}")
        k = model.members
        self.model, self.members = model, k
        base = loss.base if isinstance(loss, PackedLoss) else get_loss(loss)
        self.loss = PackedLoss(base)
        self.optimizer = (
            optimizer
            if optimizer is not None
            else PackedAdam(k, 0.001, shared=model.shared_names())
        )
        if self.optimizer.members != k:
            raise DeepfitError(f"the optimizer has {self.optimizer.members} members, the model {k}")
        self.optimizer.shared |= model.shared_names()
        self.batch_size = batch_size
        self.l2 = member_values("l2", l2, k, low=0.0)
        self.l1 = member_values("l1", l1, k, low=0.0)
        self.penalties = packed_penalties(self.l2, self.l1, k)
        if schedules is not None and callable(schedules):
            schedules = [schedules] * k
        if schedules is not None and len(schedules) != k:
            raise DeepfitError(f"{len(schedules)} schedules for {k} members")
        self.schedules = list(schedules) if schedules is not None else None
        self.seed = seed
        self.patience, self.min_delta = patience, float(min_delta)
        self.restore_best_weights = restore_best_weights
        self.terminate_on_nan = terminate_on_nan
        self.checkpoint = Path(checkpoint) if checkpoint is not None else None
        self.threads = check_threads(threads)
        self._reset()

    def _reset(self) -> None:
        k = self.members
        self.rng = np.random.default_rng(self.seed)
        self.history: list[dict[str, Any]] = []
        self.epoch = 0
        self.n_train = 0
        self.status: list[str | None] = [None] * k  # why each member stopped; None: running
        self.best = np.full(k, math.inf)
        self.best_epoch = np.zeros(k, dtype=np.int64)
        self.epochs_run = np.zeros(k, dtype=np.int64)  # each member's, set when it stops
        self.wait = np.zeros(k, dtype=np.int64)
        self.best_state: dict[str, np.ndarray] | None = None
        self.good_state: dict[str, np.ndarray] | None = None
        self.optimizer.active[...] = True
        # the dev predictions and losses of every member, and which are out of date
        self._dev_cache: tuple[np.ndarray, np.ndarray] | None = None
        self._dev_stale = np.ones(k, dtype=bool)

    # -- helpers ------------------------------------------------------------------------------
    @property
    def task(self) -> str:
        return self.loss.task

    def _check_xy(self, X: Any, y: Any, name: str) -> tuple[np.ndarray, np.ndarray]:
        X = np.asarray(X, dtype=self.model.dtype)
        y = np.asarray(y)
        if X.ndim != 2:
            raise DataError(f"{name}: X must be 2-D (rows, features), got shape {X.shape}")
        if y.shape[0] != X.shape[0]:
            raise DataError(f"{name}: {X.shape[0]} rows of X but {y.shape[0]} of y")
        n_in = self.model.n_inputs
        if n_in is not None and X.shape[1] != n_in:
            raise DataError(f"{name}: X has {X.shape[1]} columns, the model takes {n_in}")
        if not np.isfinite(X).all():
            row = int(np.argwhere(~np.isfinite(X))[0][0])
            raise DataError(f"{name}: X row {row} holds a non-finite value")
        return X, y

    def _accuracy(self, probs: np.ndarray, y: np.ndarray, w: Any) -> np.ndarray | float:
        """Accuracy of ``probs`` (members ``(K, m, c)`` or one ``(m, c)``) against ``y``."""
        if self.task != "classification" or y.ndim != 1:
            return math.nan
        if isinstance(self.loss.base, SigmoidBinaryCrossEntropy):
            predicted = (probs[..., 0] > 0.5).astype(np.int64)
        else:
            predicted = probs.argmax(axis=-1)
        hits = (predicted == y).astype(np.float64)
        if w is None:
            return hits.mean(axis=-1)
        return (hits * w).sum(axis=-1) / w.sum()

    def _lr_for(self, epoch: int) -> None:
        if self.schedules is not None:
            self.optimizer.lr = [float(s(epoch)) for s in self.schedules]

    def _member_finite(self) -> np.ndarray:
        finite = np.ones(self.members, dtype=bool)
        shared = self.model.shared_names()
        state = {**self.model.params, **self.model.buffers}
        for name, value in state.items():
            xp = array_module(value)
            if name in shared:
                finite &= bool(xp.isfinite(value).all())
            else:
                ok = xp.isfinite(value).reshape(value.shape[0], -1).all(axis=1)
                finite &= to_numpy(ok)
        return finite

    def _copy_members(self, target: dict[str, np.ndarray], members: np.ndarray) -> None:
        """``target[name][k] = current[name][k]`` for the members listed (shared arrays
        whole)."""
        if not members.size:
            return
        shared = self.model.shared_names()
        for name, value in self.model.state_dict().items():
            if name in shared:
                target[name][...] = value
            else:
                target[name][members] = value[members]

    def _restore_members(
        self,
        source: dict[str, np.ndarray],
        members: np.ndarray,
        model: PackedSequential | None = None,
        rows: np.ndarray | None = None,
    ) -> None:
        """``model``'s rows ``rows`` (default: the trainer's model, rows ``members``) get the
        members' arrays of ``source`` (shared arrays whole)."""
        if not members.size:
            return
        model = self.model if model is None else model
        rows = members if rows is None else rows
        shared = model.shared_names()
        state = model.state_dict()
        for name in state:
            if name in shared:
                state[name] = source[name]
            else:
                state[name][rows] = source[name][members]
        model.load_state_dict(state)

    def _running(self) -> _Running:
        """The model, optimizer and penalties that train the running members this epoch:
        the trainer's own while every member runs (or its members share weights), else
        compact copies of the running members."""
        live = np.flatnonzero(self.optimizer.active)
        if (
            not self.compact
            or live.size == self.members
            or self.model.kind != "deep"
            or self.model.shared_names()
            or self.optimizer.shared
        ):
            return _Running(self.model, self.optimizer, self.penalties, None)
        return _Running(
            self.model.take(live),
            self.optimizer.take(live),
            packed_penalties(self.l2[live], self.l1[live], live.size),
            live,
        )

    def _write_back(self, run: _Running) -> None:
        """Put what the compact copies learned back into the trainer's model and optimizer."""
        if run.rows is not None:
            self.model.put(run.rows, run.model)
            self.optimizer.put(run.rows, run.optimizer)

    def _stop(self, members: np.ndarray, reason: str) -> None:
        for k in members:
            if self.status[k] is None:
                self.status[k] = reason
                self.epochs_run[k] = self.epoch
        self.optimizer.active[members] = False

    def stop_members(self, members: Sequence[int], reason: str) -> None:
        """Freeze ``members`` from now on (pruning in a search), recording ``reason``; their
        best weights come back at the end as an early-stopped member's do."""
        self._stop(np.asarray(members, dtype=np.int64), reason)

    # -- training -----------------------------------------------------------------------------
    def fit(
        self,
        X: Any,
        y: Any,
        epochs: int,
        validation_data: tuple[Any, ...] | None = None,
        *,
        sample_weight: Any = None,
        resume: bool = False,
        epoch_hook: Callable[[PackedTrainer, dict[str, Any]], None] | None = None,
    ) -> list[dict[str, Any]]:
        """Train every member for up to ``epochs`` epochs; returns the history (one record per
        epoch, per-member values as lists of ``K``, ``ensemble_*`` for the mean prediction).
        ``epoch_hook(trainer, logs)`` runs after each epoch's early stopping (a search prunes
        members there with :meth:`stop_members`)."""
        with limit_blas(self.threads, self.model, self.batch_size):
            return self._fit(X, y, epochs, validation_data, sample_weight, resume, epoch_hook)

    def _fit(
        self, X, y, epochs, validation_data, sample_weight, resume, epoch_hook
    ) -> list[dict[str, Any]]:
        if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
            raise DeepfitError(f"epochs must be a positive integer, got {epochs!r}")
        X, y = self._check_xy(X, y, "training data")
        if X.shape[0] == 0:
            raise DataError("training data has no rows")
        w = None
        if sample_weight is not None:
            w = check_sample_weight(sample_weight, y.shape[0], "training data sample_weight")
        dev = None
        if validation_data is not None:
            dev_x, dev_y = self._check_xy(*validation_data[:2], "validation data")
            dev_w = validation_data[2] if len(validation_data) == 3 else None
            if dev_w is not None:
                dev_w = check_sample_weight(dev_w, dev_y.shape[0], "validation data sample_weight")
            dev = (dev_x, dev_y, dev_w)
        self._reset()
        self.n_train = X.shape[0]
        if resume:
            if self.checkpoint is None:
                raise DeepfitError("resume=True needs the trainer's checkpoint path")
            if self.checkpoint.exists():
                self.load_checkpoint(self.checkpoint)
        k = self.members
        batch_kind = self.model.kind == "batch"
        has_bn = any(isinstance(layer, PackedBatchNorm) for layer in self.model.layers)
        if self.good_state is None:
            self.good_state = self.model.state_dict()
            self.best_state = self.model.state_dict()
        track_accuracy = self.task == "classification" and y.ndim == 1
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            while self.epoch < epochs and self.optimizer.active.any():
                epoch, start = self.epoch, time.perf_counter()
                self._lr_for(epoch)
                lr = [float(v) for v in self.optimizer.lr]
                run = self._running()
                rows = np.arange(k) if run.rows is None else run.rows
                if run.rows is not None:
                    run.optimizer.lr = self.optimizer.lr[rows]
                params, grads, opt = run.model.params, run.model.grads, run.optimizer
                decay = run.model.decay_names()
                penalized = ([params[n] for n in decay], [grads[n] for n in decay])
                totals, hits, seen = np.zeros(rows.size), np.zeros(rows.size), 0.0
                for idx in minibatches(self.n_train, self.batch_size, self.rng):
                    if has_bn and idx.size < 2:
                        continue
                    xb, yb = X[idx], y[idx]
                    wb = None if w is None else w[idx]
                    outputs = _train_step(run.model, self.loss, xb, yb, wb)
                    for penalty in run.penalties:
                        penalty.add_grad(*penalized, idx.size)
                    values = self.loss.values
                    if self.terminate_on_nan:
                        bad = np.flatnonzero(~np.isfinite(values) & opt.active)
                        if bad.size:
                            if batch_kind:
                                bad = np.arange(k)
                            self._diverged(rows[bad], epoch, "non-finite loss", run, bad)
                            if not opt.active.any():
                                break
                    opt.step(params, grads)
                    size = idx.size if wb is None else float(wb.sum())
                    totals += values * size
                    if track_accuracy:
                        probs = to_numpy(outputs)
                        hits += (
                            np.asarray(
                                self._accuracy(
                                    probs if probs.shape[-1] > 1 else _sigmoid_np(probs), yb, wb
                                )
                            )
                            * size
                        )
                    seen += size
                self._write_back(run)
                if self.terminate_on_nan:
                    bad = np.flatnonzero(~self._member_finite() & self.optimizer.active)
                    if bad.size:
                        self._diverged(
                            bad if not batch_kind else np.arange(k), epoch, "non-finite weights"
                        )
                logs: dict[str, Any] = {"epoch": epoch + 1, "lr": lr}
                trained = np.full(k, math.nan)  # a member that no longer trains: NaN
                trained[rows] = totals / max(seen, 1e-300)
                logs["train_loss"] = [float(v) for v in trained]
                if track_accuracy:
                    trained[rows] = hits / max(seen, 1e-300)
                    logs["train_accuracy"] = [float(v) for v in trained]
                if dev is not None:
                    scores = self._dev_scores(dev, run.rows)
                    logs.update({f"dev_{key}": v for key, v in scores.items()})
                monitor = np.asarray(logs["dev_loss"] if dev is not None else logs["train_loss"])
                if batch_kind:
                    ens = logs.get("dev_ensemble_loss", float(np.mean(monitor)))
                    monitor = np.full(k, ens)
                if self.terminate_on_nan:
                    bad = np.flatnonzero(~np.isfinite(monitor) & self.optimizer.active)
                    if bad.size:
                        self._diverged(
                            bad if not batch_kind else np.arange(k), epoch, "non-finite dev loss"
                        )
                active = self.optimizer.active.copy()
                self.epoch = epoch + 1
                self._copy_members(self.good_state, np.flatnonzero(active))
                improved = active & (monitor < self.best - self.min_delta)
                self.best[improved] = monitor[improved]
                self.best_epoch[improved] = self.epoch
                self.wait[improved] = 0
                self.wait[active & ~improved] += 1
                self._copy_members(self.best_state, np.flatnonzero(improved))
                if self.patience is not None:
                    # as Keras: an improving epoch never stops a member
                    tired = np.flatnonzero(active & ~improved & (self.wait >= self.patience))
                    if tired.size:
                        self._stop(tired, f"early stopping at epoch {self.epoch}")
                if epoch_hook is not None:
                    epoch_hook(self, logs)
                logs["active"] = [bool(a) for a in active]
                logs["seconds"] = time.perf_counter() - start
                self.history.append(logs)
                if self.checkpoint is not None:
                    self.save_checkpoint(self.checkpoint)
        running = np.flatnonzero(self.optimizer.active)
        self._stop(running, "completed all epochs")
        if self.restore_best_weights:
            chosen = np.flatnonzero(np.isfinite(self.best))
            self._restore_members(self.best_state, chosen)
        return self.history

    def _diverged(
        self,
        members: np.ndarray,
        epoch: int,
        what: str,
        run: _Running | None = None,
        rows: np.ndarray | None = None,
    ) -> None:
        """Freeze ``members`` and put back their weights of the last epoch that ended finite
        (in the compact copy ``run``, rows ``rows``, while one trains)."""
        self._stop(
            members,
            f"diverged: {what} in epoch {epoch + 1}; frozen with the weights of epoch {self.epoch}",
        )
        self._dev_stale[members] = True
        if run is not None and run.rows is not None:
            run.optimizer.active[rows] = False
            self._restore_members(self.good_state, members, run.model, rows)
        else:
            self._restore_members(self.good_state, members)

    # -- inference ----------------------------------------------------------------------------
    def predict_members(self, X: Any, batch_size: int = 4096) -> np.ndarray:
        """Each member's probabilities (classification) or values, shape ``(K, m, c)``."""
        X = np.asarray(X, dtype=self.model.dtype)
        return to_numpy(self.loss.output(self.model.predict_members(X, batch_size=batch_size)))

    def predict(self, X: Any, batch_size: int = 4096) -> np.ndarray:
        """The ensemble's prediction: the mean of the members' probabilities or values."""
        return self.predict_members(X, batch_size).mean(axis=0)

    def evaluate(
        self, X: Any, y: Any, sample_weight: Any = None, batch_size: int = 4096
    ) -> dict[str, Any]:
        """Per-member ``loss`` (and ``accuracy``) as lists of ``K``, and the ensemble's
        ``ensemble_loss`` / ``ensemble_accuracy`` of the mean prediction, inference mode."""
        X, y = self._check_xy(X, y, "evaluation data")
        w = None
        if sample_weight is not None:
            w = check_sample_weight(sample_weight, y.shape[0], "evaluation data sample_weight")
        probs, values = self._member_predictions(self.model, X, y, w, batch_size)
        return self._scores(probs, values, y, w)

    def _member_predictions(
        self, model: PackedSequential, X: np.ndarray, y: np.ndarray, w: Any, batch_size: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """``model``'s members' probabilities (or values) ``(K, m, c)`` and losses ``(K,)``."""
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            logits = model.predict_members(X, batch_size=batch_size)
            self.loss.forward(logits, y, w)
            return to_numpy(self.loss.output(logits)), np.array(self.loss.values, np.float64)

    def _scores(
        self, probs: np.ndarray, values: np.ndarray, y: np.ndarray, w: Any
    ) -> dict[str, Any]:
        """What :meth:`evaluate` returns, from every member's predictions and losses."""
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            mean = probs.mean(axis=0)
            result: dict[str, Any] = {"loss": [float(v) for v in values]}
            result["ensemble_loss"] = _prediction_loss(self.loss.base, mean, y, w)
        if self.task == "classification" and y.ndim == 1:
            result["accuracy"] = [float(v) for v in self._accuracy(probs, y, w)]
            result["ensemble_accuracy"] = float(self._accuracy(mean, y, w))
        return result

    def _dev_scores(self, dev: tuple[Any, ...], rows: np.ndarray | None) -> dict[str, Any]:
        """:meth:`evaluate` on the dev set after an epoch that trained ``rows`` (``None``:
        every member): only those members, and the members whose weights changed since
        they were last predicted, are predicted again; the others' weights are frozen, so
        their kept predictions are what predicting them again would give."""
        X, y, w = dev
        cache = self._dev_cache
        if rows is None or cache is None:
            probs, values = self._member_predictions(self.model, X, y, w, 4096)
            self._dev_cache = (probs, values)
        else:
            probs, values = cache
            again = np.union1d(rows, np.flatnonzero(self._dev_stale))
            part = self.model.take(again)
            probs[again], values[again] = self._member_predictions(part, X, y, w, 4096)
        self._dev_stale[...] = False
        return self._scores(probs, values, y, w)

    # -- files --------------------------------------------------------------------------------
    def _fingerprint(self) -> dict[str, Any]:
        return {
            "architecture": self.model.config(),
            "kind": self.model.kind,
            "dtype": str(self.model.dtype),
            "loss": type(self.loss.base).__name__,
            "loss_options": self.loss.config(),
            "optimizer": type(self.optimizer).__name__,
            "batch_size": self.batch_size,
            "seed": self.seed,
            "n_train": self.n_train,
            "l2": [float(v) for v in self.l2],
            "l1": [float(v) for v in self.l1],
        }

    def save_checkpoint(self, path: str | Path) -> Path:
        """Atomically write everything needed to continue (model, optimizer, each member's
        best and last finite weights, early-stopping counters, statuses, RNG states)."""
        from deepfit import __version__

        arrays: dict[str, np.ndarray] = {
            f"model/{n}": v for n, v in self.model.state_dict().items()
        }
        scalars: dict[str, Any] = {}
        for key, value in self.optimizer.state_dict().items():
            if isinstance(value, np.ndarray):
                arrays[f"optim/{key}"] = value
            else:
                scalars[key] = value
        for prefix, state in (("best", self.best_state), ("good", self.good_state)):
            arrays.update({f"{prefix}/{n}": v for n, v in (state or {}).items()})
        arrays["members/best"] = self.best
        arrays["members/best_epoch"] = self.best_epoch
        arrays["members/wait"] = self.wait
        arrays["members/epochs_run"] = self.epochs_run
        dropout_rngs = {
            f"{i}.{j}": g.bit_generator.state
            for i, layer in enumerate(self.model.layers)
            if isinstance(layer, PackedDropout)
            for j, g in enumerate(layer.rngs)
        }
        meta = {
            "format": CHECKPOINT_FORMAT,
            "deepfit_version": __version__,
            "fingerprint": self._fingerprint(),
            "epoch": self.epoch,
            "status": self.status,
            "history": self.history,
            "optimizer": scalars,
            "rng": self.rng.bit_generator.state,
            "dropout_rngs": dropout_rngs,
        }
        remove_stale_temporaries(path)
        return save_arrays(path, arrays, meta)

    def load_checkpoint(self, path: str | Path) -> None:
        """Restore a run written by :meth:`save_checkpoint`; a checkpoint of another run
        (architecture, loss, optimizer, batch size, seed, penalties, data size) is refused,
        naming the first difference."""
        remove_stale_temporaries(path)
        arrays, meta = load_arrays(path, CHECKPOINT_FORMAT)
        expected, found = self._fingerprint(), meta.get("fingerprint", {})
        for key, value in expected.items():
            if found.get(key) != value:
                raise DeepfitError(
                    f"{path}: checkpoint belongs to a different run ({key} differs); start a new "
                    f"checkpoint or train without resume"
                )

        def part(prefix: str) -> dict[str, np.ndarray]:
            return {
                n[len(prefix) + 1 :]: v for n, v in arrays.items() if n.startswith(prefix + "/")
            }

        try:
            self.model.load_state_dict(part("model"))
            self.optimizer.load_state_dict({**meta["optimizer"], **part("optim")})
            self.best_state, self.good_state = part("best"), part("good")
            members = part("members")
            self.best = members["best"].astype(np.float64)
            self.best_epoch = members["best_epoch"].astype(np.int64)
            self.wait = members["wait"].astype(np.int64)
            self.epochs_run = members["epochs_run"].astype(np.int64)
            self.rng.bit_generator.state = meta["rng"]
            for i, layer in enumerate(self.model.layers):
                if isinstance(layer, PackedDropout):
                    for j, g in enumerate(layer.rngs):
                        g.bit_generator.state = meta["dropout_rngs"][f"{i}.{j}"]
        except (KeyError, ValueError, DeepfitError) as exc:
            raise DeepfitError(f"{path}: damaged checkpoint: {exc}") from None
        self.history = list(meta["history"])
        self.epoch = int(meta["epoch"])
        self.status = list(meta["status"])

    def save_model(self, path: str | Path) -> Path:
        """Write the packed model (architecture, kind, loss, weights) to a ``.npz`` file."""
        meta = {
            "format": MODEL_FORMAT,
            "architecture": self.model.config(),
            "kind": self.model.kind,
            "members": self.members,
            "dtype": str(self.model.dtype),
            "loss": type(self.loss.base).__name__,
            "loss_options": self.loss.config(),
            "status": self.status,
        }
        return save_arrays(path, self.model.state_dict(), meta)

    def __repr__(self) -> str:
        return (
            f"PackedTrainer(members={self.members}, loss={self.loss!r}, "
            f"optimizer={self.optimizer!r}, batch_size={self.batch_size})"
        )


def load_packed_model(path: str | Path) -> tuple[PackedSequential, PackedLoss]:
    """Read a file written by :meth:`PackedTrainer.save_model`: the model and its loss."""
    from deepfit.nn.losses import LOSSES

    arrays, meta = load_arrays(path, MODEL_FORMAT)
    names = {cls.__name__: key for key, cls in LOSSES.items()}
    if meta.get("loss") not in names:
        raise DeepfitError(f"{path}: unknown loss {meta.get('loss')!r}")
    model = PackedSequential.from_config(meta["architecture"], dtype=meta["dtype"], rng=0)
    try:
        model.load_state_dict(arrays)
    except DeepfitError as exc:
        raise DeepfitError(f"{path}: {exc}") from None
    return model, PackedLoss(get_loss(names[meta["loss"]], **meta.get("loss_options", {})))


def _train_step(model: PackedSequential, loss: PackedLoss, x: Any, y: Any, weight: Any) -> Any:
    """Training-mode forward, loss and backward (the gradients of the data loss land in
    ``model.grads``; the caller adds the penalties' gradients): what
    :func:`~deepfit.nn.objective.forward_backward` does, without the penalties' values, which
    the trainer does not log. Returns the outputs."""
    outputs = model.forward(x, training=True)
    loss.forward(outputs, y, weight)
    model.backward(loss.backward(), input_grad=False)
    return outputs


def _sigmoid_np(logits: np.ndarray) -> np.ndarray:
    from deepfit.nn.activations import sigmoid

    return sigmoid(logits)


def _prediction_loss(base: Loss, pred: np.ndarray, y: np.ndarray, w: Any) -> float:
    """The loss of a prediction given as probabilities (or values): cross-entropy
    ``-mean log p_y`` (probabilities clipped at 1e-12), binary cross-entropy, or MSE; example
    weights as the losses take them."""
    y = np.asarray(y)
    if isinstance(base, SigmoidBinaryCrossEntropy):
        p = np.clip(pred.astype(np.float64), 1e-12, 1 - 1e-12)
        t = y.reshape(p.shape).astype(np.float64)
        per = -(t * np.log(p) + (1 - t) * np.log(1 - p)).mean(axis=1)
    elif base.task == "regression":
        per = ((pred.astype(np.float64) - y.reshape(pred.shape)) ** 2).mean(axis=1)
    else:
        p = np.clip(pred.astype(np.float64), 1e-12, None)
        if y.ndim == 1:
            per = -np.log(p[np.arange(y.shape[0]), y.astype(np.int64)])
        else:
            per = -(y * np.log(p)).sum(axis=1)
    if w is None:
        return float(per.mean()) if per.size else math.nan
    return float((per * w).sum() / w.sum()) if w.sum() else 0.0

"""scikit-learn estimators: :class:`DeepFitClassifier` and :class:`DeepFitRegressor`.

Fully connected networks from :func:`deepfit.mlp`, trained by :class:`deepfit.Trainer`,
behind scikit-learn's estimator contract, so they work in ``Pipeline``, ``GridSearchCV``,
``cross_val_score`` and pass scikit-learn's ``parametrize_with_checks``:

- ``__init__`` only stores hyperparameters; they are validated in ``fit`` and
  ``partial_fit`` from the ``_parameter_constraints`` table (an invalid value raises
  ``InvalidParameterError``, a ``ValueError`` that names the parameter).
- Everything learned ends in ``_``: ``model_``, ``classes_``, ``n_features_in_``,
  ``feature_names_in_``, ``loss_curve_``, ``validation_scores_``, ``best_epoch_``,
  ``n_iter_``, ``history_``.
- ``random_state`` (``None``, an int or a ``RandomState``) fixes the initial weights,
  dropout masks, shuffling, mixup draws and the validation split: the same int gives the
  same predictions.
- The hyperparameters are translated into a deepfit config (the ``[train]`` table of
  ``deepfit train``: ``plateau_patience`` is ``train.plateau.patience``, ``mixup_alpha`` is
  ``train.mixup.alpha``), validated by :func:`deepfit.config.validate`, and the loss,
  optimizer, schedule, early stopping, technique callbacks and trainer options are built from
  it by :mod:`deepfit.build`, as for the command line and tuning: the same hyperparameters
  train the same network either way.

Numeric arrays are not standardized here: put a ``StandardScaler`` in front, as
scikit-learn does for its own MLP::

    make_pipeline(StandardScaler(), DeepFitClassifier(hidden_layer_sizes=(128, 64)))

A pandas DataFrame with text or category columns (``preprocess="auto"``, or any input with
``preprocess="table"``) goes through deepfit's own table preprocessing, fitted in ``fit``:
column roles, median imputation with missing indicators, one-hot or embedded categories
(unseen levels map to "unknown"), standardized numbers; columns are matched by name at
prediction. The regressor always standardizes its targets and predicts in their units.

This module imports scikit-learn (``pip install 'deepfit[sklearn]'``, scikit-learn >= 1.6);
nothing else in deepfit imports it.
"""

from __future__ import annotations

import copy
import math
import re
from numbers import Integral, Real
from typing import Any, ClassVar

import numpy as np
import sklearn

if tuple(map(int, re.findall(r"\d+", sklearn.__version__)[:2])) < (1, 6):
    raise ImportError(
        f"deepfit.sklearn needs scikit-learn >= 1.6 (validate_data, __sklearn_tags__); "
        f"found {sklearn.__version__}: pip install -U 'scikit-learn>=1.6'"
    )

from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, _fit_context
from sklearn.metrics import r2_score
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data

from deepfit.build import (
    ENSEMBLE_OUTPUTS,
    build_callbacks,
    build_early_stopping,
    build_loss,
    build_optimizer,
    build_schedule,
    build_trainer_options,
)
from deepfit.config import SCHEDULE_KINDS, SCHEMA, ConfigError, validate
from deepfit.data.columns import infer_roles
from deepfit.data.preprocess import TablePreprocessor
from deepfit.data.split import train_dev_test_split
from deepfit.data.tables import from_arrays
from deepfit.errors import DeepfitError
from deepfit.nn.activations import ACTIVATIONS
from deepfit.nn.init import INITIALIZERS
from deepfit.nn.sequential import Sequential, mlp
from deepfit.training.callbacks import Callback, Progress, SnapshotEnsemble
from deepfit.training.history import History
from deepfit.training.trainer import Trainer

__all__ = ["DeepFitClassifier", "DeepFitRegressor"]

SCHEDULE_NAMES = SCHEDULE_KINDS
_SEED_MAX = np.iinfo(np.int32).max
_TECHNIQUES = ("plateau", "averaging", "lookahead", "mixup", "snapshots")

# The estimator parameter behind each config key, so that a config error names it (the key
# "train.beta" depends on the optimizer and is added per call).
_PARAMETER_OF = {
    "model.residual": "residual",
    "model.norm": "norm",
    "model.ensemble": "ensemble",
    "model.ensemble_kind": "ensemble_kind",
    "train.optimizer": "optimizer",
    "train.lr": "learning_rate",
    "train.beta1": "beta1",
    "train.beta2": "beta2",
    "train.eps": "eps",
    "train.weight_decay": "weight_decay",
    "train.batch_size": "batch_size",
    "train.epochs": "max_epochs",
    "train.dtype": "dtype",
    "train.clip_norm": "clip_norm",
    "train.label_smoothing": "label_smoothing",
    "train.early_stopping": "early_stopping",
    "train.early_stopping.enabled": "early_stopping",
    "train.early_stopping.patience": "patience",
    "train.early_stopping.min_delta": "min_delta",
    "train.early_stopping.start_from_epoch": "start_from_epoch",
    "train.early_stopping.baseline": "baseline",
    **{f"train.{table}": table for table in _TECHNIQUES},
    **{
        f"train.{table}.{key}": table if key in ("enabled", "kind") else f"{table}_{key}"
        for table in _TECHNIQUES
        for key in SCHEMA["train"][table]
    },
}

# Named schedules: the [train.schedule] key each schedule parameter sets.
_SCHEDULE_KEYS = {
    "inverse_time": {"rate": "decay_rate", "interval": "decay_steps"},
    "inverse_sqrt": {"rate": "decay_rate"},
    "exponential": {"k": "decay_rate"},
    "step": {"every": "decay_steps", "factor": "decay_rate"},
    "cosine": {"total": "decay_steps", "lr_min": "min_learning_rate"},
    "sgdr": {"period": "decay_steps", "mult": "restart_mult", "lr_min": "min_learning_rate"},
}


class _ShiftedSchedule:
    """``epoch -> schedule(epoch + offset)``: continues a schedule across ``partial_fit``
    calls, each of which is a one-epoch ``Trainer.fit`` that counts from epoch 0."""

    def __init__(self, schedule: Any, offset: int) -> None:
        self.schedule, self.offset = schedule, offset

    def __call__(self, epoch: int) -> float:
        return self.schedule(epoch + self.offset)

    def __repr__(self) -> str:
        return f"_ShiftedSchedule({self.schedule!r}, offset={self.offset})"


class _ValidationScore(Callback):
    """Records the estimator's ``score`` (accuracy or R^2) on the validation set each epoch."""

    order = -10  # before EarlyStopping, so a score is there even in the epoch it stops

    def __init__(self, score: Any, X: np.ndarray, y: np.ndarray) -> None:
        self.score, self.X, self.y = score, X, y
        self.scores: list[float] = []

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict[str, Any]) -> None:
        self.scores.append(float(self.score(trainer.model, self.X, self.y)))


class _DeepFitBase(BaseEstimator):
    """Shared hyperparameters, validation and training loop of the two estimators."""

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "hidden_layer_sizes": ["array-like", Interval(Integral, 1, None, closed="left")],
        "activation": [StrOptions(set(ACTIVATIONS))],
        "init": [StrOptions(set(INITIALIZERS)), callable],
        "batchnorm": ["boolean"],
        "bn_momentum": [Interval(Real, 0, 1, closed="left")],
        "norm": [StrOptions({"batchnorm", "layernorm"}), None],
        "residual": ["boolean"],
        "ensemble": [Interval(Integral, 1, 256, closed="both")],
        "ensemble_kind": [StrOptions({"deep", "batch"})],
        "keep_prob": [Interval(Real, 0, 1, closed="right"), "array-like"],
        "l2": [Interval(Real, 0, None, closed="left")],
        "l1": [Interval(Real, 0, None, closed="left")],
        "label_smoothing": [Interval(Real, 0, 1, closed="left")],
        "clip_norm": [Interval(Real, 0, None, closed="neither"), None],
        "mixup": [StrOptions({"mixup", "cutmix"}), None],
        "mixup_alpha": [Interval(Real, 0, None, closed="neither")],
        "mixup_prob": [Interval(Real, 0, 1, closed="both")],
        "optimizer": [StrOptions({"sgd", "momentum", "rmsprop", "adam"})],
        "learning_rate": [Interval(Real, 0, None, closed="neither")],
        "beta1": [Interval(Real, 0, 1, closed="left")],
        "beta2": [Interval(Real, 0, 1, closed="left"), None],
        "eps": [Interval(Real, 0, None, closed="neither")],
        "weight_decay": [Interval(Real, 0, None, closed="left")],
        "lookahead": ["boolean"],
        "lookahead_k": [Interval(Integral, 1, None, closed="left")],
        "lookahead_alpha": [Interval(Real, 0, 1, closed="right")],
        "schedule": [StrOptions(set(SCHEDULE_NAMES)), dict, callable, None],
        "decay_rate": [Interval(Real, 0, None, closed="neither"), None],
        "decay_steps": [Interval(Integral, 1, None, closed="left"), None],
        "min_learning_rate": [Interval(Real, 0, None, closed="left")],
        "restart_mult": [Interval(Integral, 1, None, closed="left")],
        "plateau": ["boolean"],
        "plateau_factor": [Interval(Real, 0, 1, closed="neither")],
        "plateau_patience": [Interval(Integral, 0, None, closed="left")],
        "plateau_threshold": [Interval(Real, 0, None, closed="left")],
        "plateau_cooldown": [Interval(Integral, 0, None, closed="left")],
        "plateau_min_lr": [Interval(Real, 0, None, closed="left")],
        "averaging": [StrOptions({"swa", "ema"}), None],
        "averaging_start": [Interval(Integral, 0, None, closed="left")],
        "averaging_decay": [Interval(Real, 0, 1, closed="left")],
        "snapshots": ["boolean"],
        "snapshots_keep": [Interval(Integral, 0, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "max_epochs": [Interval(Integral, 1, None, closed="left")],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
        "patience": [Interval(Integral, 0, None, closed="left")],
        "min_delta": [Interval(Real, 0, None, closed="left")],
        "start_from_epoch": [Interval(Integral, 0, None, closed="left")],
        "baseline": [Interval(Real, None, None, closed="neither"), None],
        "warm_start": ["boolean"],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
        "dtype": [StrOptions({"float32", "float64"})],
        "preprocess": [StrOptions({"auto", "table", "none"})],
        "class_weight": [StrOptions({"balanced"}), dict, None],
    }

    _loss: str = ""

    def __init__(
        self,
        hidden_layer_sizes=(100,),
        activation="relu",
        init="he",
        batchnorm=False,
        bn_momentum=0.9,
        norm=None,
        residual=False,
        ensemble=1,
        ensemble_kind="deep",
        keep_prob=1.0,
        l2=0.0,
        l1=0.0,
        label_smoothing=0.0,
        clip_norm=None,
        mixup=None,
        mixup_alpha=0.2,
        mixup_prob=1.0,
        optimizer="adam",
        learning_rate=0.001,
        beta1=0.9,
        beta2=None,
        eps=1e-8,
        weight_decay=0.0,
        lookahead=False,
        lookahead_k=5,
        lookahead_alpha=0.5,
        schedule=None,
        decay_rate=None,
        decay_steps=None,
        min_learning_rate=0.0,
        restart_mult=1,
        plateau=False,
        plateau_factor=0.1,
        plateau_patience=5,
        plateau_threshold=1e-4,
        plateau_cooldown=0,
        plateau_min_lr=0.0,
        averaging=None,
        averaging_start=0,
        averaging_decay=0.999,
        snapshots=False,
        snapshots_keep=0,
        batch_size=64,
        max_epochs=200,
        early_stopping=False,
        validation_fraction=0.1,
        patience=10,
        min_delta=0.0,
        start_from_epoch=0,
        baseline=None,
        warm_start=False,
        random_state=None,
        verbose=False,
        dtype="float32",
        preprocess="auto",
        class_weight=None,
    ):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.init = init
        self.batchnorm = batchnorm
        self.bn_momentum = bn_momentum
        self.norm = norm
        self.residual = residual
        self.ensemble = ensemble
        self.ensemble_kind = ensemble_kind
        self.keep_prob = keep_prob
        self.l2 = l2
        self.l1 = l1
        self.label_smoothing = label_smoothing
        self.clip_norm = clip_norm
        self.mixup = mixup
        self.mixup_alpha = mixup_alpha
        self.mixup_prob = mixup_prob
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.beta1 = beta1
        self.beta2 = beta2
        self.eps = eps
        self.weight_decay = weight_decay
        self.lookahead = lookahead
        self.lookahead_k = lookahead_k
        self.lookahead_alpha = lookahead_alpha
        self.schedule = schedule
        self.decay_rate = decay_rate
        self.decay_steps = decay_steps
        self.min_learning_rate = min_learning_rate
        self.restart_mult = restart_mult
        self.plateau = plateau
        self.plateau_factor = plateau_factor
        self.plateau_patience = plateau_patience
        self.plateau_threshold = plateau_threshold
        self.plateau_cooldown = plateau_cooldown
        self.plateau_min_lr = plateau_min_lr
        self.averaging = averaging
        self.averaging_start = averaging_start
        self.averaging_decay = averaging_decay
        self.snapshots = snapshots
        self.snapshots_keep = snapshots_keep
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.min_delta = min_delta
        self.start_from_epoch = start_from_epoch
        self.baseline = baseline
        self.warm_start = warm_start
        self.random_state = random_state
        self.verbose = verbose
        self.dtype = dtype
        self.preprocess = preprocess
        self.class_weight = class_weight

    # -- hyperparameters -> deepfit objects --------------------------------------------------
    def _hidden(self) -> list[int]:
        sizes = self.hidden_layer_sizes
        sizes = [sizes] if isinstance(sizes, Integral) else list(sizes)
        for i, width in enumerate(sizes):
            if isinstance(width, bool) or not isinstance(width, Integral) or width < 1:
                raise ValueError(
                    f"hidden_layer_sizes[{i}] must be a positive integer, got {width!r} "
                    f"(hidden_layer_sizes={self.hidden_layer_sizes!r})"
                )
        return [int(w) for w in sizes]

    def _keep_probs(self, n_hidden: int) -> list[float]:
        kp = self.keep_prob
        probs = [kp] * n_hidden if isinstance(kp, Real) else list(kp)
        if len(probs) != n_hidden:
            raise ValueError(
                f"keep_prob has {len(probs)} values for {n_hidden} hidden layers "
                f"(hidden_layer_sizes={self.hidden_layer_sizes!r}); give one per hidden layer "
                "or a single float"
            )
        for i, p in enumerate(probs):
            if isinstance(p, bool) or not isinstance(p, Real) or not 0 < p <= 1:
                raise ValueError(f"keep_prob[{i}] must be a float in (0, 1], got {p!r}")
        return [float(p) for p in probs]

    def _schedule_table(self) -> tuple[dict[str, Any], dict[str, str]]:
        """``[train.schedule]`` of the ``schedule`` hyperparameter (constant for a callable,
        which the trainer gets as it is), and the parameter behind each of its keys."""
        s = self.schedule
        if s is None or callable(s):
            return {"kind": "constant"}, {"train.schedule.kind": "schedule"}
        if isinstance(s, dict):
            table = _schedule_table_of(s)
            keys = (*SCHEMA["train"]["schedule"], *table)
            names = {f"train.schedule.{k}": f"schedule[{k!r}]" for k in keys}
            if "lr0" in table:
                names["train.lr"] = "schedule['lr0']"
            return table, {"train.schedule": f"schedule={s!r}", **names}
        if s in ("cosine", "sgdr") and self.min_learning_rate > self.learning_rate:
            raise ValueError(
                f"min_learning_rate={self.min_learning_rate!r} must not exceed "
                f"learning_rate={self.learning_rate!r} for schedule={s!r}"
            )
        table: dict[str, Any] = {"kind": s}
        names = {"train.schedule": "schedule", "train.schedule.kind": "schedule"}
        for key, name in _SCHEDULE_KEYS.get(s, {}).items():
            value = getattr(self, name)
            if value is not None:
                table[key] = int(value) if isinstance(value, Integral) else float(value)
            names[f"train.schedule.{key}"] = f"{name} (schedule={s!r})"
        return table, names

    def _config(self, has_dev: bool) -> tuple[dict[str, Any], dict[str, str]]:
        """The deepfit config these hyperparameters mean (its ``[train]`` table, and the
        ``[model]`` keys that decide the loss and what may be combined with an ensemble; the
        network is built from the hyperparameters directly), and the parameter behind each
        config key."""
        schedule, names = self._schedule_table()
        momentum = self.optimizer == "momentum"
        names = {**_PARAMETER_OF, "train.beta": "beta1" if momentum else "beta2", **names}
        beta2 = self.beta2
        train = {
            "optimizer": self.optimizer,
            "lr": schedule.pop("lr0", float(self.learning_rate)),
            "beta": float(self.beta1 if momentum else 0.9 if beta2 is None else beta2),
            "beta1": float(self.beta1),
            "beta2": 0.999 if beta2 is None else float(beta2),
            "eps": float(self.eps),
            "weight_decay": float(self.weight_decay),
            "batch_size": int(self.batch_size),
            "epochs": int(self.max_epochs),
            "dtype": self.dtype,
            "clip_norm": 0.0 if self.clip_norm is None else float(self.clip_norm),
            "label_smoothing": float(self.label_smoothing),
            "schedule": schedule,
            "early_stopping": {
                "enabled": bool(self.early_stopping),
                "patience": int(self.patience),
                "min_delta": float(self.min_delta),
                "start_from_epoch": int(self.start_from_epoch),
                "baseline": 0.0 if self.baseline is None else float(self.baseline),
            },
            "plateau": {
                "enabled": bool(self.plateau),
                "monitor": "dev_loss" if has_dev else "train_loss",
                "factor": float(self.plateau_factor),
                "patience": int(self.plateau_patience),
                "threshold": float(self.plateau_threshold),
                "cooldown": int(self.plateau_cooldown),
                "min_lr": float(self.plateau_min_lr),
            },
            "averaging": {
                "kind": self.averaging or "none",
                "start": int(self.averaging_start),
                "decay": float(self.averaging_decay),
            },
            "lookahead": {
                "enabled": bool(self.lookahead),
                "k": int(self.lookahead_k),
                "alpha": float(self.lookahead_alpha),
            },
            "mixup": {
                "kind": self.mixup or "none",
                "alpha": float(self.mixup_alpha),
                "prob": float(self.mixup_prob),
            },
            "snapshots": {"enabled": bool(self.snapshots), "keep": int(self.snapshots_keep)},
        }
        model = {
            "loss": self._loss,
            "residual": bool(self.residual),
            "norm": self.norm or "none",
            "ensemble": int(self.ensemble),
            "ensemble_kind": self.ensemble_kind,
        }
        return {"model": model, "train": train}, names

    def _build(self, has_dev: bool) -> dict[str, Any]:
        """Loss, optimizer, schedule, early stopping, technique callbacks and trainer options,
        built by :mod:`deepfit.build` from the config of the hyperparameters. Checks what the
        constraint table cannot say; raises ``ValueError`` naming the parameter before
        anything is changed. ``has_dev``: the fit has a validation set (the plateau then
        watches the validation loss, else the training loss)."""
        self._keep_probs(len(self._hidden()))
        if self.label_smoothing and self._loss == "mse":
            raise ValueError("label_smoothing applies to DeepFitClassifier only")
        if self.baseline == 0:
            raise ValueError(
                "baseline=0.0: no validation loss is below 0, so no epoch would reset the "
                "patience; use baseline=None for no baseline"
            )
        if self.batchnorm and self.norm not in (None, "batchnorm"):
            raise ValueError(
                f"batchnorm=True and norm={self.norm!r} ask for two normalizations; choose one "
                "(batchnorm=True is norm='batchnorm')"
            )
        raw, names = self._config(has_dev)
        try:
            config = validate(raw)
            parts = {
                "loss": build_loss(config, self._loss),
                "optimizer": build_optimizer(config),
                "schedule": self.schedule if callable(self.schedule) else build_schedule(config),
                "early_stopping": build_early_stopping(config),
                "callbacks": build_callbacks(config, has_dev=has_dev),
                "options": build_trainer_options(config),
            }
        except ConfigError as exc:
            raise ValueError(_in_parameters(str(exc), names)) from None
        if self.snapshots and not any(
            parts["schedule"].cycle_end(e) for e in range(int(self.max_epochs))
        ):
            raise ValueError(
                f"snapshots=True: no warm-restart cycle of schedule={self.schedule!r} ends "
                f"within max_epochs={self.max_epochs} (decay_steps is the first cycle's "
                "length); raise max_epochs or shorten the cycle"
            )
        return parts

    def _seeds(self) -> tuple[np.random.Generator, np.random.Generator, int]:
        """Generators for the initial weights and dropout masks, and for shuffling, and the
        seed of the validation split, all derived from ``random_state``."""
        master = int(check_random_state(self.random_state).randint(_SEED_MAX))
        init_ss, shuffle_ss, split_ss = np.random.SeedSequence(master).spawn(3)
        return (
            np.random.default_rng(init_ss),
            np.random.default_rng(shuffle_ss),
            int(split_ss.generate_state(1)[0]),
        )

    def _new_trainer(self, model: Sequential, seed: Any, parts: dict[str, Any]) -> Trainer:
        return Trainer(
            model,
            loss=parts["loss"],
            optimizer=parts["optimizer"],
            batch_size=int(self.batch_size),
            l2=float(self.l2),
            l1=float(self.l1),
            schedule=parts["schedule"],
            seed=seed,
            **parts["options"],
        )

    def _start(self, n_features: int, n_outputs: int, parts: dict[str, Any], seeds=None) -> None:
        """Build a fresh network and trainer and reset every fitted attribute."""
        hidden = self._hidden()
        keep = self._keep_probs(len(hidden))
        init_rng, shuffle_rng, split_seed = self._seeds() if seeds is None else seeds
        spec = self.preprocessor_.embed_spec() if getattr(self, "preprocessor_", None) else None
        self.model_ = mlp(
            n_features,
            hidden,
            n_outputs,
            activation=self.activation,
            init=self.init,
            batchnorm=bool(self.batchnorm),
            keep_prob=keep if keep else 1.0,
            rng=init_rng,
            dtype=self.dtype,
            bn_momentum=float(self.bn_momentum),
            norm=self.norm,
            residual=bool(self.residual),
            ensemble=int(self.ensemble),
            ensemble_kind=self.ensemble_kind,
            ensemble_output=ENSEMBLE_OUTPUTS[self._loss],
            **({"embed": spec} if spec else {}),
        )
        # Trainer.fit starts its shuffling stream from np.random.default_rng(seed), which
        # returns a Generator unchanged: passing one makes the stream continue across
        # partial_fit calls and warm starts, so k one-epoch calls shuffle as one k-epoch fit.
        self._shuffle_rng = shuffle_rng
        self._trainer = self._new_trainer(self.model_, shuffle_rng, parts)
        self._split_seed = split_seed
        self._optimizer_epochs = 0
        self.n_iter_ = 0
        self.loss_curve_: list[float] = []
        self.validation_scores_: list[float] | None = None
        self.best_epoch_: int | None = None
        self.snapshot_ensemble_: SnapshotEnsemble | None = None
        self.history_ = History()

    # -- tables ----------------------------------------------------------------------------
    def _table_matrix(self, X, reset: bool) -> np.ndarray | None:
        """The network inputs of a table ``X`` (a DataFrame with text or category columns, or
        anything with ``preprocess="table"``) through the preprocessing fitted in ``fit``;
        None when ``X`` takes the plain numeric path."""
        if reset:
            self.preprocessor_ = None
            wanted = self.preprocess == "table" or (
                self.preprocess == "auto" and _has_text_columns(X)
            )
            if not wanted:
                return None
            table = _as_table(X)
            self.preprocessor_ = TablePreprocessor(infer_roles(table, None)).fit(table)
        elif getattr(self, "preprocessor_", None) is None:
            return None
        else:
            table = _as_table(X)
        return self.preprocessor_.transform(table)[0]

    def _validated(self, X, y, reset: bool):
        """``(X, y)`` validated, tables preprocessed; ``feature_names_in_`` and
        ``n_features_in_`` describe the columns given, not the network's inputs."""
        X_table = self._table_matrix(X, reset)
        if X_table is None:
            return self._validate_xy(X, y, reset=reset)
        names = list(_as_table(X).names) if reset else None
        X_out, y_out = self._validate_xy(X_table, y, reset=True)
        if reset:
            self._table_columns = names
        self.n_features_in_ = len(self._table_columns)
        self.feature_names_in_ = np.asarray(self._table_columns, dtype=object)
        return X_out, y_out

    def _weights(self, X: np.ndarray, y_index: np.ndarray, sample_weight) -> np.ndarray | None:
        """``sample_weight`` times the class weight of each row (``class_weight``)."""
        w = None if sample_weight is None else _check_sample_weight(sample_weight, X)
        if self.class_weight is None:
            return w
        if self._loss == "mse":
            raise ValueError("class_weight applies to DeepFitClassifier only")
        if self.class_weight == "balanced":
            counts = np.bincount(y_index, minlength=len(self.classes_)).astype(np.float64)
            per_class = len(y_index) / (len(self.classes_) * np.maximum(counts, 1))
        else:
            unknown = [k for k in self.class_weight if k not in self.classes_]
            if unknown:
                raise ValueError(
                    f"class_weight names {unknown[0]!r}, which is not among the classes "
                    f"{self.classes_!r}"
                )
            per_class = np.array([float(self.class_weight.get(c, 1.0)) for c in self.classes_])
        cw = per_class[y_index]
        return cw if w is None else w * cw

    # -- the two training entry points ---------------------------------------------------
    def _fit(self, X, y, validation_data, sample_weight=None) -> _DeepFitBase:
        parts = self._build(has_dev=validation_data is not None or bool(self.early_stopping))
        warm = bool(self.warm_start) and hasattr(self, "model_")
        if warm:
            self._check_same_ensemble("warm_start=True")
        X, y = self._validated(X, y, reset=not warm)
        y_train = self._encode_y(X, y, classes=None, first=not warm, where="fit")
        weight = self._weights(X, y_train, sample_weight)
        # everything that can refuse the data runs before the model is touched
        seeds = None if warm else self._seeds()
        dtype = self.model_.dtype if warm else np.dtype(self.dtype)
        X = X.astype(dtype, copy=False)
        dev = None
        if validation_data is not None:
            dev = self._validation_pair(validation_data, dtype)
        elif self.early_stopping:
            split_seed = self._split_seed if warm else seeds[2]
            X, y_train, weight, dev = self._holdout(X, y_train, split_seed, weight)
        if warm:
            self._trainer = self._new_trainer(self.model_, self._shuffle_rng, parts)
            self._optimizer_epochs = 0
        else:
            self._start(X.shape[1], self._n_outputs(), parts, seeds)

        trainer = self._trainer
        scorer = None if dev is None else _ValidationScore(self._dev_score, *dev)
        stopper = parts["early_stopping"]
        callbacks = [cb for cb in (scorer, stopper) if cb is not None] + parts["callbacks"]
        if self.verbose:
            callbacks.append(Progress(enabled=True))
        trainer.callbacks = sorted(callbacks, key=lambda c: c.order)
        try:
            history = trainer.fit(
                X,
                y_train,
                epochs=int(self.max_epochs),
                validation_data=dev,
                sample_weight=weight,
            )
        finally:
            trainer.callbacks = []  # drop references to the validation data
        self._record(history, scorer)
        if stopper is not None and stopper.best_epoch is not None:
            self.best_epoch_ = self.n_iter_ - len(history) + int(stopper.best_epoch)
        ensemble = next((c for c in callbacks if isinstance(c, SnapshotEnsemble)), None)
        self.snapshot_ensemble_ = ensemble if ensemble and ensemble.snapshots else None
        return self

    def _partial_fit(self, X, y, classes, sample_weight=None) -> _DeepFitBase:
        parts = self._build(has_dev=False)
        first = not hasattr(self, "model_")
        if not first:
            self._check_same_ensemble("partial_fit")
        X, y = self._validated(X, y, reset=first)
        y_train = self._encode_y(X, y, classes=classes, first=first, where="partial_fit")
        if first:
            self._start(X.shape[1], self._n_outputs(), parts)
        trainer = self._trainer
        schedule = parts["schedule"]
        trainer.schedule = (
            None if schedule is None else _ShiftedSchedule(schedule, self._optimizer_epochs)
        )
        trainer.callbacks = [Progress(enabled=True)] if self.verbose else []
        try:
            history = trainer.fit(
                X.astype(self.model_.dtype, copy=False),
                y_train,
                epochs=1,
                sample_weight=self._weights(X, y_train, sample_weight),
            )
        finally:
            trainer.callbacks = []
        self._record(history, None)
        self.snapshot_ensemble_ = None  # the model has moved on from the snapshots
        return self

    def _check_same_ensemble(self, how: str) -> None:
        """``how`` continues ``model_``: its members must be those ``ensemble`` and
        ``ensemble_kind`` ask for (the loss is built from the parameters)."""
        members = getattr(self.model_, "members", 1)
        kind = getattr(self.model_, "kind", self.ensemble_kind) if members > 1 else None
        wanted = (int(self.ensemble), self.ensemble_kind if self.ensemble > 1 else None)
        if (members, kind) != wanted:
            fitted = f"ensemble={members}" + (f", ensemble_kind={kind!r}" if kind else "")
            raise ValueError(
                f"ensemble={self.ensemble}, ensemble_kind={self.ensemble_kind!r}: {how} "
                f"continues the fitted model_, which has {fitted}; set them back, or fit "
                "afresh (warm_start=False)"
            )

    def _record(self, history: History, scorer: _ValidationScore | None) -> None:
        offset = self.n_iter_
        for record in history.records:
            self.history_.append({**record, "epoch": offset + record["epoch"]})
        self.history_.stop_reason = history.stop_reason
        self.loss_curve_ = self.loss_curve_ + [float(r["train_loss"]) for r in history.records]
        if scorer is not None:
            self.validation_scores_ = (self.validation_scores_ or []) + scorer.scores
        self.n_iter_ = offset + len(history)
        self._optimizer_epochs += len(history)
        self.best_epoch_ = self.n_iter_

    def _holdout(self, X: np.ndarray, y: np.ndarray, seed: int, weight: np.ndarray | None):
        frac = float(self.validation_fraction)
        stratify = self._loss != "mse"
        rows = np.arange(X.shape[0])[:, None]
        try:
            split = train_dev_test_split(
                rows, y, (1.0 - frac, frac, 0.0), stratify=stratify, rng=seed
            )
        except DeepfitError as exc:
            raise ValueError(
                f"early_stopping: cannot hold out validation_fraction={frac} of "
                f"{X.shape[0]} examples: {exc}"
            ) from None
        (i_tr, y_tr), (i_dev, y_dev), _ = split
        if len(y_dev) == 0:
            raise ValueError(
                f"early_stopping: validation_fraction={frac} of {X.shape[0]} examples leaves "
                "no validation example; raise validation_fraction or pass validation_data"
            )
        tr, dv = i_tr[:, 0], i_dev[:, 0]
        if weight is None:
            return X[tr], y_tr, None, (X[dv], y_dev)
        return X[tr], y_tr, weight[tr], (X[dv], y_dev, weight[dv])

    def _validation_pair(self, validation_data, dtype) -> tuple[np.ndarray, np.ndarray]:
        try:
            X_val, y_val = validation_data
        except (TypeError, ValueError):
            raise ValueError("validation_data must be a pair (X_val, y_val)") from None
        X_val, y_val = self._validated(X_val, y_val, reset=False)
        y_val = self._encode_validation_y(y_val, dtype)
        return X_val.astype(dtype, copy=False), y_val

    # -- inference --------------------------------------------------------------------------
    def _outputs(self, X) -> np.ndarray:
        """Predictions of the network (probabilities or values) in float64.

        A float32 network is evaluated on a float64 copy of its parameters: the result of
        each row then does not depend on which other rows share the call (float32 matrix
        products round differently for one row and for many, by about 1e-7), and
        ``predict(X[i:i+1])`` equals ``predict(X)[i]``.
        """
        check_is_fitted(self)
        X_table = self._table_matrix(X, reset=False)
        if X_table is None:
            X = validate_data(self, X, reset=False, dtype=np.float64)
        else:
            X = X_table.astype(np.float64)
        ensemble = getattr(self, "snapshot_ensemble_", None)
        states = [None] if ensemble is None else ensemble.snapshots
        model = self.model_
        if model.dtype != np.float64 or ensemble is not None:
            model = copy.deepcopy(model).astype(np.float64)
        outputs = []
        for state in states:
            if state is not None:
                model.load_state_dict(state)
            outputs.append(np.asarray(self._trainer.loss.output(model.predict(X)), np.float64))
        return outputs[0] if len(outputs) == 1 else np.mean(outputs, axis=0)

    # -- subclass hooks ----------------------------------------------------------------------
    def _validate_xy(self, X, y, reset: bool):
        raise NotImplementedError

    def _encode_y(self, X, y, classes, first: bool, where: str) -> np.ndarray:
        raise NotImplementedError

    def _encode_validation_y(self, y, dtype) -> np.ndarray:
        raise NotImplementedError

    def _n_outputs(self) -> int:
        raise NotImplementedError

    def _dev_score(self, model: Sequential, X: np.ndarray, y: np.ndarray) -> float:
        raise NotImplementedError


def _schedule_table_of(schedule: dict[str, Any]) -> dict[str, Any]:
    """A copy of a ``[train.schedule]`` table (``{"kind": "cosine", "total": 50, "warmup":
    5}``); the form of ``Schedule.config()`` is read too: ``lr0`` (the learning rate) and a
    warm-up ``{"kind": "warmup", "epochs": 5, "after": {...}}`` starting at 0.1 of the rate."""
    if schedule.get("kind") != "warmup":
        return dict(schedule)
    after = schedule.get("after")
    if not isinstance(after, dict) or "epochs" not in schedule or schedule.get("start", 0.1) != 0.1:
        raise ValueError(
            f"schedule={schedule!r}: a warm-up is {{'kind': 'warmup', 'epochs': n, 'after': "
            "{...}} (from 0.1 of the rate), or 'warmup': n in the schedule's own table"
        )
    rest = {k: v for k, v in schedule.items() if k not in ("kind", "after", "epochs", "start")}
    return {**after, **rest, "warmup": schedule["epochs"]}


def _in_parameters(message: str, names: dict[str, str]) -> str:
    """A config error in the estimator's words: each config key becomes the parameter behind
    it (``config key 'train.plateau.patience' = 5`` -> ``plateau_patience = 5``)."""
    for dotted in sorted(names, key=len, reverse=True):
        pattern = rf"(?:config (?:key|table) )?'?{re.escape(dotted)}'?(?![\w.])"
        message = re.sub(pattern, lambda _, name=names[dotted]: name, message)
    return message


def _has_text_columns(X: Any) -> bool:
    """A DataFrame (anything with ``dtypes``) with a column that is not numbers or booleans."""
    dtypes = getattr(X, "dtypes", None)
    if dtypes is None or not hasattr(X, "columns"):
        return False
    return any(getattr(dt, "kind", "O") not in "iufb" for dt in list(dtypes))


def _as_table(X: Any):
    try:
        return from_arrays(X, source="X")
    except DeepfitError as exc:
        raise ValueError(str(exc)) from None


_PARAMS_DOC = """
    Parameters
    ----------
    hidden_layer_sizes : int or sequence of int, default=(100,)
        Width of each hidden layer; ``()`` gives no hidden layer (a linear model).
    activation : {"relu", "leaky_relu", "tanh", "sigmoid"}, default="relu"
    init : {"he", "xavier", "glorot_uniform", "normal", "random", "zeros"} or callable,
        default="he"
        Weight initialization (a callable from :mod:`deepfit.nn.init` works too).
    batchnorm : bool, default=False
        Batch norm after each hidden Dense layer (which then has no bias).
    bn_momentum : float in [0, 1), default=0.9
        EWA beta of batch norm's running statistics (PyTorch's momentum is ``1 - beta``).
    norm : {"batchnorm", "layernorm"} or None, default=None
        Normalization in each hidden layer (residual: at the start of each block and before
        the head); ``norm="batchnorm"`` is ``batchnorm=True``.
    residual : bool, default=False
        Residual blocks ``z + f(z)`` instead of a plain stack (:func:`deepfit.mlp`): a stem
        ``Dense(n_features, d)`` with ``d = hidden_layer_sizes[0]``, one block
        ``[norm] -> Dense(d, h) -> activation -> [dropout] -> Dense(h, d)`` per entry ``h``
        of ``hidden_layer_sizes``, then ``[norm] -> activation -> Dense(d, n_outputs)``.
    ensemble : int in [1, 256], default=1
        ``K > 1`` trains ``K`` networks of this architecture as one packed network
        (:mod:`deepfit.nn.packed`, ``[model] ensemble = K`` of a config), each member on its
        own loss and the same mini-batches, and predicts the mean of the members'
        probabilities (classifier: ``p = (1/K) sum_k softmax(z_k)``) or values (regressor:
        ``(1/K) sum_k z_k``). The penalties, dropout rate and optimizer settings apply to every
        member; early stopping watches the ensemble's validation loss. Not with
        ``residual=True`` or ``norm="layernorm"`` (no packed version).
    ensemble_kind : {"deep", "batch"}, default="deep"
        ``"deep"``: a deep ensemble, the members drawn from independent children of the
        initialization seed; ``"batch"``: BatchEnsemble / TabM-mini, the members share each
        hidden layer's ``W`` and differ by rank-1 scalings ``(x * r_k) @ W * s_k + b_k``
        (Wen et al. 2020; Gorishniy et al. 2025), with one output layer per member.
    keep_prob : float in (0, 1] or sequence of floats, default=1.0
        Inverted-dropout keep probability after each hidden layer (one value, or one per
        hidden layer); 1.0 means no dropout.
    l2 : float >= 0, default=0.0
        L2 penalty ``lambda / (2 m) * sum ||W||^2`` over weight matrices (``m`` = batch
        size); scikit-learn's MLP ``alpha`` is the same penalty.
    l1 : float >= 0, default=0.0
        L1 penalty ``lambda / m * sum |W|``.
    label_smoothing : float in [0, 1), default=0.0
        Classifier only: the softmax loss's targets are ``(1 - eps) onehot + eps / K``, as
        PyTorch's ``CrossEntropyLoss(label_smoothing=eps)``.
    clip_norm : float > 0 or None, default=None
        Clip the gradient (penalties included) to this global L2 norm before each step, as
        ``torch.nn.utils.clip_grad_norm_``; None: no clipping.
    mixup : {"mixup", "cutmix"} or None, default=None
        Mix each training batch with a shuffled copy of itself (Zhang et al. 2018), or swap a
        random share of its columns (cutmix for rows); targets mix in the same proportion
        (see :class:`deepfit.data.mixup.Mixup`).
    mixup_alpha : float > 0, default=0.2
        The mixing weight is drawn from ``Beta(mixup_alpha, mixup_alpha)``.
    mixup_prob : float in [0, 1], default=1.0
        Share of the batches mixed.
    optimizer : {"sgd", "momentum", "rmsprop", "adam"}, default="adam"
    learning_rate : float > 0, default=0.001
        The step size (the schedule's ``lr0`` when a schedule is set).
    beta1 : float in [0, 1), default=0.9
        EWA beta of the gradient (first moment): Momentum's ``beta``, Adam's ``beta1``.
    beta2 : float in [0, 1) or None, default=None
        EWA beta of the squared gradient (second moment): RMSprop's ``beta``, Adam's
        ``beta2``. None means 0.9 for RMSprop and 0.999 for Adam.
    eps : float > 0, default=1e-8
        Added to the RMS denominator (RMSprop, Adam).
    weight_decay : float >= 0, default=0.0
        Decoupled weight decay (AdamW with ``optimizer="adam"``); not the L2 penalty.
    lookahead : bool, default=False
        Wrap the optimizer in Lookahead (Zhang et al. 2019): every ``lookahead_k`` steps the
        slow weights move ``phi += lookahead_alpha * (theta - phi)`` and the fast weights
        restart from them.
    lookahead_k : int >= 1, default=5
    lookahead_alpha : float in (0, 1], default=0.5
    schedule : str, dict, callable or None, default=None
        Learning rate per epoch (epochs count from 0; ``lr0 = learning_rate``):

        - None: constant ``learning_rate``;
        - ``"constant"``;
        - ``"inverse_time"``: ``lr0 / (1 + decay_rate * epoch)`` (decay_rate default 1);
        - ``"inverse_sqrt"``: ``lr0 / sqrt(1 + decay_rate * epoch)`` (default 1);
        - ``"exponential"``: ``lr0 * decay_rate ** epoch`` (decay_rate in (0, 1],
          default 0.95);
        - ``"step"``: ``lr0 * decay_rate ** (epoch // decay_steps)`` (defaults 0.5, 10);
        - ``"inverse_time"`` with ``decay_steps``: the staircase
          ``lr0 / (1 + decay_rate * floor(epoch / decay_steps))``;
        - ``"cosine"``: cosine annealing from ``lr0`` to ``min_learning_rate`` over
          ``decay_steps`` epochs (default ``max_epochs``), then ``min_learning_rate``;
        - ``"sgdr"``: cosine annealing with warm restarts (Loshchilov and Hutter 2017), cycles
          of ``decay_steps`` epochs (default 10), each ``restart_mult`` times longer than the
          last, from ``lr0`` down to ``min_learning_rate``;
        - a ``[train.schedule]`` table of a deepfit config, e.g. ``{"kind": "cosine",
          "total": 50, "warmup": 5}``; the form of ``Schedule.config()`` is read too
          (``{"kind": "warmup", "epochs": 5, "after": {"kind": "cosine", "total": 50}}``;
          ``lr0`` defaults to ``learning_rate``);
        - any callable ``epoch -> lr`` (e.g. a :mod:`deepfit.optim.schedules` object), used
          as it is.

        ``partial_fit`` continues the schedule: its epoch is the number of epochs trained
        since the optimizer was created (by the first ``partial_fit`` or by ``fit``).
    decay_rate : float > 0 or None, default=None
    decay_steps : int >= 1 or None, default=None
    min_learning_rate : float >= 0, default=0.0
    restart_mult : int >= 1, default=1
        Parameters of the named schedules, as above.
    plateau : bool, default=False
        ``ReduceLROnPlateau`` with PyTorch's semantics: multiply the learning rate by
        ``plateau_factor`` (never below ``plateau_min_lr``) after ``plateau_patience`` epochs
        without a relative improvement of ``plateau_threshold``, then wait
        ``plateau_cooldown`` epochs. It watches the validation loss when ``fit`` has a
        validation set (early stopping or ``validation_data``), else the training loss; with
        early stopping ``plateau_patience`` must be below ``patience``.
    plateau_factor : float in (0, 1), default=0.1
    plateau_patience : int >= 0, default=5
    plateau_threshold : float >= 0, default=1e-4
    plateau_cooldown : int >= 0, default=0
    plateau_min_lr : float >= 0, default=0.0
    averaging : {"swa", "ema"} or None, default=None
        Weight averaging, installed in the model when training ends (after early stopping's
        restore: the average wins; batch norm statistics are recomputed): ``"swa"`` the mean
        of the weights at the end of each epoch after the first ``averaging_start``,
        ``"ema"`` an exponential moving average of the weights after every step of those
        epochs, ``phi = decay * phi + (1 - decay) * theta`` (bias-corrected).
    averaging_start : int >= 0, default=0
    averaging_decay : float in [0, 1), default=0.999
        Used by ``averaging="ema"``.
    snapshots : bool, default=False
        Snapshot ensemble (Huang et al. 2017; needs ``schedule="sgdr"``): the weights at the
        end of every warm-restart cycle are kept in ``snapshot_ensemble_``, and predictions
        are the mean of the snapshots' (probabilities or values).
    snapshots_keep : int >= 0, default=0
        Keep only the last ``snapshots_keep`` snapshots (0: all).
    batch_size : int >= 1, default=64
        Mini-batch size (the last, smaller batch of an epoch is kept).
    max_epochs : int >= 1, default=200
        Epochs of ``fit`` (passes over the training data); ``partial_fit`` trains one.
    early_stopping : bool, default=False
        Stop when the validation loss has not improved by more than ``min_delta`` for
        ``patience`` epochs, and restore the weights of the best epoch. The validation
        set is ``fit(..., validation_data=(X_val, y_val))`` or, without it, a
        ``validation_fraction`` held out from the training data (stratified for the
        classifier, drawn from ``random_state``). Ignored by ``partial_fit``.
    validation_fraction : float in (0, 1), default=0.1
    patience : int >= 0, default=10
    min_delta : float >= 0, default=0.0
    start_from_epoch : int >= 0, default=0
        Early stopping ignores the first ``start_from_epoch`` epochs (as Keras).
    baseline : float or None, default=None
        Early stopping: an epoch resets the patience only if its validation loss is also
        below ``baseline`` (as Keras; None: no baseline).

    Early stopping, ``plateau``, ``averaging`` and ``snapshots`` act in ``fit``;
    ``partial_fit`` trains one plain epoch (with the loss, optimizer, schedule, clipping and
    mixup above) and drops ``snapshot_ensemble_``.
    warm_start : bool, default=False
        ``fit`` continues from the current weights (with a new optimizer) instead of
        starting afresh; ``n_iter_``, ``loss_curve_`` and ``history_`` then accumulate.
    random_state : None, int or numpy.random.RandomState, default=None
        Source of the initial weights, dropout masks, shuffling and validation split. An
        int makes ``fit`` reproducible; None draws fresh randomness every ``fit``.
    verbose : bool, default=False
        Print a progress bar and one line per epoch to stderr.
    dtype : {"float32", "float64"}, default="float32"
        Precision of the network's parameters and arithmetic. Predictions are returned as
        float64 either way.
    preprocess : {"auto", "table", "none"}, default="auto"
        ``"auto"``: a DataFrame with text or category columns goes through deepfit's table
        preprocessing (fitted in ``fit``: imputation with missing indicators, one-hot or
        embedded categories, standardized numbers; columns matched by name at prediction);
        numeric input is used as it is. ``"table"``: always; ``"none"``: never.
    class_weight : "balanced", dict or None, default=None
        Classifier only: weights of the classes in the loss (``"balanced"``: ``n / (K n_k)``
        as scikit-learn computes it), multiplied into ``sample_weight``.
"""

_ATTRIBUTES_DOC = """
    Attributes
    ----------
    model_ : deepfit.Sequential
        The trained network (its outputs are logits; save it with :mod:`deepfit.io`). With
        ``ensemble > 1`` a :class:`deepfit.nn.packed.PackedSequential` ending in
        ``EnsembleMean``: its logits are those of the members' mean prediction, and
        ``model_.member(k)`` is member ``k`` as a plain network.
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Only when ``X`` had string column names (a DataFrame).
    n_iter_ : int
        Epochs trained (summed over ``partial_fit`` calls and warm starts).
    loss_curve_ : list of float
        Mean training data loss of each epoch (the penalty is not included; the mean is
        taken over the epoch's mini-batches as the weights move).
    validation_scores_ : list of float or None
        ``score`` ({score}) on the validation set after each epoch; None when ``fit`` had
        no validation set (no ``early_stopping`` and no ``validation_data``). The
        validation *loss* per epoch is in ``history_["dev_loss"]``.
    best_epoch_ : int
        The epoch (1-based, counted as ``n_iter_``) whose weights the model holds: the
        epoch of the lowest validation loss with early stopping, else the last one (with
        ``averaging`` the model holds the average).
    snapshot_ensemble_ : deepfit.SnapshotEnsemble or None
        The snapshots of ``snapshots=True`` (None otherwise, or when no cycle ended);
        ``predict`` averages them.
    history_ : deepfit.History
        Per-epoch records (``lr``, ``train_loss``, ``dev_loss``, ...) and ``stop_reason``.
"""


class DeepFitClassifier(ClassifierMixin, _DeepFitBase):
    __doc__ = (
        """Fully connected network classifier (softmax cross-entropy), trained by deepfit.

    Binary problems use a softmax over two output units rather than one sigmoid unit: the
    two are the same model (``softmax([z1, z0])[1] = sigmoid(z1 - z0)``), one extra row of
    weights is negligible, and one code path gives ``predict_proba`` its scikit-learn shape
    ``(n_samples, 2)`` directly.
"""
        + _PARAMS_DOC
        + _ATTRIBUTES_DOC.format(score="accuracy")
        + """    classes_ : ndarray of shape (n_classes,)
        The sorted class labels; output unit ``k`` is ``classes_[k]``.

    Examples
    --------
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> clf = make_pipeline(StandardScaler(), DeepFitClassifier(random_state=0))
"""
    )

    _loss = "softmax_cross_entropy"

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, validation_data=None, sample_weight=None):
        """Train for up to ``max_epochs`` epochs (from fresh weights unless ``warm_start``).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), or a DataFrame
        y : array-like of shape (n_samples,)
            Class labels (any sortable type).
        sample_weight : array-like of shape (n_samples,), optional
            Per-example weights: the loss is ``sum w_i l_i / sum w_i``.
        validation_data : pair (X_val, y_val), optional
            Validation set for ``validation_scores_`` and early stopping; its labels must
            be among those of ``y``. In a Pipeline it reaches this step untransformed
            (``pipe.fit(X, y, deepfitclassifier__validation_data=...)`` skips the scaler):
            transform it yourself, or let ``early_stopping`` hold out a
            ``validation_fraction``, which is split after the earlier steps.

        Returns
        -------
        self
        """
        return self._fit(X, y, validation_data, sample_weight)

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, classes=None, sample_weight=None):
        """Train one epoch over ``(X, y)``, continuing from the current weights and the
        optimizer's state (moments, step count, schedule position).

        ``classes`` (every label that will ever appear) is required on the first call,
        as in scikit-learn's incremental estimators, and may be left out afterwards.
        """
        return self._partial_fit(X, y, classes, sample_weight)

    def predict_proba(self, X):
        """Class probabilities, shape ``(n_samples, n_classes)``, columns in ``classes_``
        order."""
        proba = self._outputs(X)
        proba /= proba.sum(axis=1, keepdims=True)
        return proba

    def predict_log_proba(self, X):
        """``log(predict_proba(X))``."""
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))

    def predict(self, X):
        """The most probable class of each row."""
        proba = self.predict_proba(X)
        return self.classes_[np.argmax(proba, axis=1)]

    # -- hooks -------------------------------------------------------------------------
    def _validate_xy(self, X, y, reset: bool):
        return validate_data(self, X, y, reset=reset, dtype=(np.float64, np.float32))

    def _encode_y(self, X, y, classes, first: bool, where: str) -> np.ndarray:
        check_classification_targets(y)
        if where == "partial_fit":
            if first:
                if classes is None:
                    raise ValueError(
                        "classes must be passed on the first call to partial_fit "
                        "(every label that will appear, e.g. classes=np.unique(y_all))"
                    )
                self._set_classes(np.unique(classes))
            elif classes is not None and not np.array_equal(self.classes_, np.unique(classes)):
                raise ValueError(
                    f"classes={classes!r} differs from the classes of the first call to "
                    f"partial_fit, {self.classes_!r}"
                )
        elif first:
            self._set_classes(np.unique(y))
        elif not np.isin(y, self.classes_).all():
            raise ValueError(
                "warm_start can only be used where y has the same classes as in the previous "
                f"call to fit ({self.classes_!r}); got {np.unique(y)!r}"
            )
        return self._to_index(y, "y")

    def _set_classes(self, classes: np.ndarray) -> None:
        if len(classes) < 2:
            raise ValueError(
                f"DeepFitClassifier needs samples of at least 2 classes; the data has one "
                f"class: {classes!r}"
            )
        self.classes_ = classes

    def _to_index(self, y: np.ndarray, name: str) -> np.ndarray:
        unseen = ~np.isin(y, self.classes_)
        if unseen.any():
            raise ValueError(
                f"{name} has labels that are not in classes_ {self.classes_!r}: "
                f"{np.unique(y[unseen])!r}"
            )
        return np.searchsorted(self.classes_, y).astype(np.int64)

    def _encode_validation_y(self, y, dtype) -> np.ndarray:
        return self._to_index(np.asarray(y), "validation_data y")

    def _n_outputs(self) -> int:
        return len(self.classes_)

    def _dev_score(self, model: Sequential, X: np.ndarray, y: np.ndarray) -> float:
        return float(np.mean(model.predict(X).argmax(axis=1) == y))


class DeepFitRegressor(RegressorMixin, _DeepFitBase):
    __doc__ = (
        """Fully connected network regressor (mean squared error, linear output), trained by
    deepfit. ``y`` may have several columns (one output unit each).

    The targets are standardized on the training data (``(y - mean) / std`` per column,
    fitted in ``fit`` or the first ``partial_fit``) and predictions are returned in their
    units, so targets in the thousands train as well as targets near 1; ``loss_curve_`` is
    in standardized units.
"""
        + _PARAMS_DOC
        + _ATTRIBUTES_DOC.format(score="R^2")
        + """    n_outputs_ : int
        Number of target columns.

    Examples
    --------
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> reg = make_pipeline(StandardScaler(), DeepFitRegressor(random_state=0))
"""
    )

    _loss = "mse"

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, validation_data=None, sample_weight=None):
        """Train for up to ``max_epochs`` epochs (from fresh weights unless ``warm_start``).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), or a DataFrame
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
        sample_weight : array-like of shape (n_samples,), optional
        validation_data : pair (X_val, y_val), optional
            Validation set for ``validation_scores_`` and early stopping (in a Pipeline it
            reaches this step untransformed; see :meth:`DeepFitClassifier.fit`).

        Returns
        -------
        self
        """
        return self._fit(X, y, validation_data, sample_weight)

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, sample_weight=None):
        """Train one epoch over ``(X, y)``, continuing from the current weights and the
        optimizer's state (moments, step count, schedule position)."""
        return self._partial_fit(X, y, None, sample_weight)

    def predict(self, X):
        """Predicted values, shape ``(n_samples,)`` or ``(n_samples, n_outputs)`` as ``y``
        had in ``fit``."""
        out = self._outputs(X) * self._y_std + self._y_mean
        return out.ravel() if self._y_1d else out

    # -- hooks -------------------------------------------------------------------------
    def _validate_xy(self, X, y, reset: bool):
        return validate_data(
            self,
            X,
            y,
            reset=reset,
            multi_output=True,
            y_numeric=True,
            dtype=(np.float64, np.float32),
        )

    def _encode_y(self, X, y, classes, first: bool, where: str) -> np.ndarray:
        y = np.asarray(y)
        y2 = y.reshape(-1, 1) if y.ndim == 1 else y
        if first:
            self._y_1d = y.ndim == 1
            self.n_outputs_ = y2.shape[1]
            std = y2.std(axis=0)
            self._y_mean = y2.mean(axis=0)
            self._y_std = np.where(std > 0, std, 1.0)
        elif y2.shape[1] != self.n_outputs_:
            raise ValueError(
                f"y has {y2.shape[1]} columns but the model was fitted with {self.n_outputs_}"
            )
        return ((y2 - self._y_mean) / self._y_std).astype(np.dtype(self.dtype), copy=False)

    def _encode_validation_y(self, y, dtype) -> np.ndarray:
        y = np.asarray(y)
        y2 = y.reshape(-1, 1) if y.ndim == 1 else y
        if y2.shape[1] != self.n_outputs_:
            raise ValueError(
                f"validation_data y has {y2.shape[1]} columns but y has {self.n_outputs_}"
            )
        return ((y2 - self._y_mean) / self._y_std).astype(dtype, copy=False)

    def _n_outputs(self) -> int:
        return self.n_outputs_

    def _dev_score(self, model: Sequential, X: np.ndarray, y: np.ndarray) -> float:
        pred = model.predict(X).astype(np.float64)
        if len(y) < 2:
            return math.nan
        return float(r2_score(y.astype(np.float64), pred))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags

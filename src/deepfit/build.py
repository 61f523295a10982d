"""The one factory from a validated config to objects: model, loss, optimizer, schedule and
callbacks.

The command line, the experiment pipeline, the scikit-learn estimators, tuning and the lab all
build their objects here, so that a config means the same thing everywhere.

A trainer from a config::

    trainer = Trainer(
        model,
        loss=build_loss(config, loss_name(config, task, n_classes)),
        optimizer=build_optimizer(config),          # Lookahead-wrapped when asked
        schedule=build_schedule(config),
        callbacks=[*others, *build_callbacks(config, has_dev=...)],  # plateau, averaging, ...
        **build_trainer_options(config),            # clip_norm, mixup, threads
        ...
    )
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from deepfit.config import SCHEMA, ConfigError, Key
from deepfit.data.mixup import Mixup
from deepfit.errors import DeepfitError
from deepfit.memory import check_training_memory
from deepfit.nn import init as initializers
from deepfit.nn.init import Initializer
from deepfit.nn.losses import Loss, get_loss
from deepfit.nn.sequential import Sequential, mlp
from deepfit.optim import schedules
from deepfit.optim.averaging import EMA, SWA
from deepfit.optim.lookahead import Lookahead
from deepfit.optim.optimizers import SGD, Adam, Momentum, Optimizer, RMSprop
from deepfit.training.callbacks import (
    Callback,
    EarlyStopping,
    ReduceLROnPlateau,
    SnapshotEnsemble,
    WeightAveraging,
)


def _table(config: dict[str, Any], dotted: str) -> dict[str, Any]:
    """The config table at ``dotted`` with the schema's defaults for keys it lacks (configs
    written before a key existed still build)."""
    node: Any = config
    schema: Any = SCHEMA
    for part in dotted.split("."):
        node = node.get(part, {}) if isinstance(node, dict) else {}
        schema = schema[part]
    defaults = {k: v.default for k, v in schema.items() if isinstance(v, Key)}
    return {**defaults, **node}


def streams(seed: int) -> dict[str, int]:
    """Independent integer seeds for the split, the model and the training loop."""
    children = np.random.SeedSequence(seed).spawn(3)
    names = ("data", "model", "train")
    return {n: int(c.generate_state(1)[0]) for n, c in zip(names, children, strict=True)}


def loss_name(config: dict[str, Any], task: str, n_classes: int) -> str:
    """The loss of ``config`` for ``task``: ``model.loss``, or with ``'auto'`` the mean
    squared error for regression and the softmax cross-entropy for classification, except
    that ``n_classes = 2`` and ``model.binary_output = 'sigmoid'`` give one sigmoid unit with
    the binary cross-entropy. ``n_classes`` is the prepared data's ``n_outputs`` (required, so
    that no caller trains a two-class table on another head than the others)."""
    chosen = config["model"]["loss"]
    if chosen != "auto":
        if (chosen == "mse") != (task == "regression"):
            raise ConfigError(f"config key 'model.loss' = {chosen!r} does not fit a {task} task")
        return chosen
    if task == "regression":
        return "mse"
    if n_classes == 2 and config["model"].get("binary_output") == "sigmoid":
        return "sigmoid_binary_cross_entropy"
    return "softmax_cross_entropy"


def build_model(
    config: dict[str, Any],
    n_in: int,
    n_out: int,
    loss: str,
    embed: dict[str, list[int]] | None = None,
    names: Sequence[str] | None = None,
) -> Sequential:
    """The network of ``[model]``; ``embed`` (from a table preprocessor's ``embed_spec()``)
    puts a category-embedding layer first; ``names`` (the input columns' names) go into the
    memory check's message."""
    m = config["model"]
    if loss == "sigmoid_binary_cross_entropy":
        n_out = 1
    check_training_memory(config, n_in, n_out, embed, names)
    return mlp(
        n_in,
        m["hidden"],
        n_out,
        activation=m["activation"],
        init=build_initializer(config),
        batchnorm=m["batchnorm"],
        norm=None if m["norm"] == "none" else m["norm"],
        residual=m["residual"],
        keep_prob=m["keep_prob"],
        rng=streams(config["train"]["seed"])["model"],
        dtype=config["train"]["dtype"],
        **({"embed": embed} if embed else {}),
        **_ensemble_options(config, loss),
    )


ENSEMBLE_OUTPUTS = {
    "softmax_cross_entropy": "softmax",
    "sigmoid_binary_cross_entropy": "sigmoid",
    "mse": "identity",
}


def _ensemble_options(config: dict[str, Any], loss: str) -> dict[str, Any]:
    """``mlp``'s ensemble arguments for ``model.ensemble = K > 1`` (none for one network):
    the members' mean prediction follows the loss's output."""
    m = _table(config, "model")
    if m["ensemble"] == 1:
        return {}
    return {
        "ensemble": m["ensemble"],
        "ensemble_kind": m["ensemble_kind"],
        "ensemble_output": ENSEMBLE_OUTPUTS[loss],
    }


def build_initializer(config: dict[str, Any]) -> Initializer:
    """The initializer of ``model.init``, built for one network: ``normal`` and
    ``course_normal`` take ``model.init_scale`` as their standard deviation, the ``course_*``
    ones draw from ``np.random.seed(model.init_seed)`` (see :class:`deepfit.nn.init.Course`).
    Only names are accepted: a config holds values, not objects."""
    m = _table(config, "model")
    name = m["init"]
    if not isinstance(name, str):
        raise ConfigError(
            f"config key 'model.init' must be the name of an initializer, got "
            f"{type(name).__name__} {name!r}"
        )
    try:
        return initializers.from_name(name, scale=m["init_scale"], seed=m["init_seed"])
    except DeepfitError as exc:
        raise ConfigError(f"config key 'model.init' = {name!r}: {exc}") from None


def build_loss(config: dict[str, Any], name: str) -> Loss:
    """The loss called ``name`` (see :func:`loss_name`) with ``train.label_smoothing``."""
    eps = _table(config, "train")["label_smoothing"]
    if eps and name == "mse":
        raise ConfigError(
            "config key 'train.label_smoothing' applies to classification, not to a regression "
            "(mse) loss"
        )
    if _table(config, "model")["ensemble"] > 1:  # each member learns from its own loss
        from deepfit.nn.packed import PackedLoss

        return PackedLoss(get_loss(name, label_smoothing=eps))
    return get_loss(name, label_smoothing=eps)


def build_optimizer(config: dict[str, Any]) -> Optimizer:
    """The optimizer of ``[train]``, wrapped in Lookahead when ``train.lookahead.enabled``."""
    t = config["train"]
    wd = t["weight_decay"]
    if t["optimizer"] == "sgd":
        opt: Optimizer = SGD(t["lr"], weight_decay=wd)
    elif t["optimizer"] == "momentum":
        opt = Momentum(t["lr"], beta=t["beta"], weight_decay=wd)
    elif t["optimizer"] == "rmsprop":
        opt = RMSprop(t["lr"], beta=t["beta"], eps=t["eps"], weight_decay=wd)
    else:
        opt = Adam(t["lr"], beta1=t["beta1"], beta2=t["beta2"], eps=t["eps"], weight_decay=wd)
    la = _table(config, "train.lookahead")
    if la["enabled"]:
        try:
            opt = Lookahead(opt, k=la["k"], alpha=la["alpha"])
        except DeepfitError as exc:
            raise ConfigError(f"config table 'train.lookahead': {exc}") from None
    return opt


def build_schedule(config: dict[str, Any]) -> schedules.Schedule | None:
    t = config["train"]
    s = t["schedule"]
    lr0 = t["lr"]
    kind = s["kind"]
    try:
        if kind == "constant":
            base: schedules.Schedule = schedules.constant(lr0)
        elif kind == "inverse_time":
            base = schedules.inverse_time(lr0, s["rate"], s.get("interval", 1))
        elif kind == "exponential":
            base = schedules.exponential(lr0, s["k"])
        elif kind == "inverse_sqrt":
            base = schedules.inverse_sqrt(lr0, s["rate"])
        elif kind == "step":
            base = schedules.step(lr0, s["every"], s["factor"])
        elif kind == "sgdr":
            base = schedules.sgdr(lr0, s.get("period", 10), s.get("mult", 1), min(s["lr_min"], lr0))
        else:
            total = s["total"] or max(t["epochs"] - s["warmup"], 1)
            base = schedules.cosine(lr0, total, min(s["lr_min"], lr0))
        if s["warmup"]:
            return schedules.warmup(base, s["warmup"])
    except DeepfitError as exc:
        raise ConfigError(f"config table 'train.schedule': {exc}") from None
    return None if kind == "constant" else base


def build_early_stopping(config: dict[str, Any]) -> EarlyStopping | None:
    es = config["train"]["early_stopping"]
    if not es["enabled"]:
        return None
    try:
        return EarlyStopping(
            monitor=es["monitor"],
            patience=es["patience"],
            min_delta=es["min_delta"],
            restore_best=es["restore_best"],
            criterion=es["criterion"],
            alpha=es["alpha"] or None,
            start_from_epoch=es.get("start_from_epoch", 0),
            baseline=es.get("baseline") or None,
        )
    except DeepfitError as exc:
        raise ConfigError(f"config table 'train.early_stopping': {exc}") from None


def build_plateau(config: dict[str, Any]) -> ReduceLROnPlateau | None:
    """``ReduceLROnPlateau`` from ``[train.plateau]`` (None when off). Its patience must be
    below early stopping's (patience criterion), or the run would stop before the rate drops."""
    p = _table(config, "train.plateau")
    if not p["enabled"]:
        return None
    es = _table(config, "train.early_stopping")
    if es["enabled"] and es["criterion"] == "patience" and es["patience"] <= p["patience"]:
        raise ConfigError(
            f"config key 'train.plateau.patience' = {p['patience']} must be below "
            f"'train.early_stopping.patience' = {es['patience']}, or early stopping ends the run "
            f"before the learning rate is reduced"
        )
    try:
        return ReduceLROnPlateau(
            p["monitor"],
            factor=p["factor"],
            patience=p["patience"],
            threshold=p["threshold"],
            threshold_mode=p["threshold_mode"],
            cooldown=p["cooldown"],
            min_lr=p["min_lr"],
        )
    except DeepfitError as exc:
        raise ConfigError(f"config table 'train.plateau': {exc}") from None


def build_averaging(config: dict[str, Any]) -> WeightAveraging | None:
    """``[train.averaging]``: SWA of the epoch-end weights or an EMA of every step's, from
    epoch ``start`` on, installed in the model when training ends (None when ``kind`` is
    ``"none"``)."""
    a = _table(config, "train.averaging")
    if a["kind"] == "none":
        return None
    if a["kind"] == "swa":
        return WeightAveraging(SWA(), start=a["start"], every="epoch")
    return WeightAveraging(EMA(a["decay"]), start=a["start"], every="batch")


def build_snapshots(config: dict[str, Any]) -> SnapshotEnsemble | None:
    """``[train.snapshots]``: a snapshot ensemble at each cycle end of the sgdr schedule."""
    snap = _table(config, "train.snapshots")
    if not snap["enabled"]:
        return None
    if _table(config, "train.schedule")["kind"] != "sgdr":
        raise ConfigError(
            "config key 'train.snapshots.enabled' needs train.schedule.kind = 'sgdr' (snapshots "
            "are taken at the end of each warm-restart cycle)"
        )
    return SnapshotEnsemble(keep=snap["keep"])


def build_mixup(config: dict[str, Any]) -> Mixup | None:
    """``[train.mixup]``: mixup or cutmix of the training batches (None when off)."""
    m = _table(config, "train.mixup")
    if m["kind"] == "none":
        return None
    return Mixup(alpha=m["alpha"], kind=m["kind"], prob=m["prob"])


def build_callbacks(config: dict[str, Any], *, has_dev: bool = True) -> list[Callback]:
    """The technique callbacks a config asks for: plateau, weight averaging, snapshots (early
    stopping has :func:`build_early_stopping`; logs, checkpoints and progress belong to the
    caller). ``has_dev=False`` refuses a plateau that monitors a dev metric."""
    plateau = build_plateau(config)
    if plateau is not None and plateau.monitor.startswith("dev") and not has_dev:
        raise ConfigError(
            "config key 'train.plateau.monitor' needs a dev set; data.split gives it no examples"
        )
    built = (plateau, build_averaging(config), build_snapshots(config))
    return [cb for cb in built if cb is not None]


def build_trainer_options(config: dict[str, Any]) -> dict[str, Any]:
    """Keyword arguments of :class:`~deepfit.training.trainer.Trainer` for the techniques in
    ``[train]``: ``clip_norm`` (0: off), ``mixup`` and ``threads`` (BLAS threads, 0: auto)."""
    train = _table(config, "train")
    return {
        "clip_norm": train["clip_norm"] or None,
        "mixup": build_mixup(config),
        "threads": train["threads"],
    }

"""The one factory from a validated config to objects: model, loss, optimizer, schedule and
callbacks.

The command line, the experiment pipeline, the scikit-learn estimators, tuning and the lab all
build their objects here, so that a config means the same thing everywhere.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from deepfit.config import ConfigError
from deepfit.errors import DeepfitError
from deepfit.memory import check_training_memory
from deepfit.nn.init import normal
from deepfit.nn.sequential import Sequential, mlp
from deepfit.optim import schedules
from deepfit.optim.optimizers import SGD, Adam, Momentum, Optimizer, RMSprop
from deepfit.training.callbacks import EarlyStopping


def streams(seed: int) -> dict[str, int]:
    """Independent integer seeds for the split, the model and the training loop."""
    children = np.random.SeedSequence(seed).spawn(3)
    names = ("data", "model", "train")
    return {n: int(c.generate_state(1)[0]) for n, c in zip(names, children, strict=True)}


def loss_name(config: dict[str, Any], task: str) -> str:
    chosen = config["model"]["loss"]
    if chosen != "auto":
        if (chosen == "mse") != (task == "regression"):
            raise ConfigError(f"config key 'model.loss' = {chosen!r} does not fit a {task} task")
        return chosen
    return "mse" if task == "regression" else "softmax_cross_entropy"


def build_model(
    config: dict[str, Any],
    n_in: int,
    n_out: int,
    loss: str,
    embed: dict[str, list[int]] | None = None,
) -> Sequential:
    """The network of ``[model]``; ``embed`` (from a table preprocessor's ``embed_spec()``)
    puts a category-embedding layer first."""
    m = config["model"]
    if loss == "sigmoid_binary_cross_entropy":
        n_out = 1
    check_training_memory(config, n_in, n_out)
    return mlp(
        n_in,
        m["hidden"],
        n_out,
        activation=m["activation"],
        init=normal(m["init_scale"]) if m["init"] == "normal" else m["init"],
        batchnorm=m["batchnorm"],
        keep_prob=m["keep_prob"],
        rng=streams(config["train"]["seed"])["model"],
        dtype=config["train"]["dtype"],
        **({"embed": embed} if embed else {}),
    )


def build_optimizer(config: dict[str, Any]) -> Optimizer:
    t = config["train"]
    wd = t["weight_decay"]
    if t["optimizer"] == "sgd":
        return SGD(t["lr"], weight_decay=wd)
    if t["optimizer"] == "momentum":
        return Momentum(t["lr"], beta=t["beta"], weight_decay=wd)
    if t["optimizer"] == "rmsprop":
        return RMSprop(t["lr"], beta=t["beta"], eps=t["eps"], weight_decay=wd)
    return Adam(t["lr"], beta1=t["beta1"], beta2=t["beta2"], eps=t["eps"], weight_decay=wd)


def build_schedule(config: dict[str, Any]) -> schedules.Schedule | None:
    t = config["train"]
    s = t["schedule"]
    lr0 = t["lr"]
    kind = s["kind"]
    try:
        if kind == "constant":
            base: schedules.Schedule = schedules.constant(lr0)
        elif kind == "inverse_time":
            base = schedules.inverse_time(lr0, s["rate"])
        elif kind == "exponential":
            base = schedules.exponential(lr0, s["k"])
        elif kind == "inverse_sqrt":
            base = schedules.inverse_sqrt(lr0, s["rate"])
        elif kind == "step":
            base = schedules.step(lr0, s["every"], s["factor"])
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
        )
    except DeepfitError as exc:
        raise ConfigError(f"config table 'train.early_stopping': {exc}") from None

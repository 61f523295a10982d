"""Trials in lockstep: a group of tuning trials trained as the members of one packed network.

Trials that share the architecture, the batch size, the data and the seed differ only in
scalars a packed network takes per member (learning rate and schedule, L2/L1, weight decay,
keep_prob, the optimizer's betas and eps). :func:`group_key` says which trials can share a
network; :func:`train_group` trains such a group with
:class:`~deepfit.training.packed.PackedTrainer` and answers for each trial what the one-trial
objective :func:`deepfit.tuning.worker.train` answers (``state``, ``value``, ``epochs``,
``best_epoch``, ``stop_reason``), member by member: each member stops early on its own dev
loss, a diverging member fails alone, and ``report(number, epoch, value)`` prunes members one
by one. Because the members share the seed, they share the shuffling stream too, so a packed
trial trains on the same batches as its run alone and reaches the same weights (bit for bit in
float64, to rounding in float32).

Not packable (:func:`packable` says why): residual blocks, layer norm, ensembles, category
embeddings, image augmentation, and the training techniques that act on the whole network
(gradient clipping, mixup, weight averaging, Lookahead, plateau schedules, snapshots, refit),
and early stopping other than ``patience`` on ``dev_loss``. Category embeddings depend on the
data, not the config: :func:`train_group` raises :class:`NotPacked` for them, and the study's
worker then trains the members one by one.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from typing import Any

from deepfit import metrics
from deepfit.build import build_initializer, build_loss, build_schedule, loss_name, streams
from deepfit.errors import DeepfitError
from deepfit.nn.packed import packed_mlp
from deepfit.optim.packed import PACKED_OPTIMIZERS
from deepfit.training.packed import PackedTrainer

#: config keys a member may set on its own (everything else must be equal within a group)
MEMBER_KEYS: dict[str, tuple[str, ...]] = {
    "model": ("keep_prob", "l2", "l1"),
    "train": ("lr", "beta", "beta1", "beta2", "eps", "weight_decay", "schedule"),
}

GroupReport = Callable[[int, int, float], bool]


class NotPacked(DeepfitError):
    """The trials fit one network by their configs, but their data refuses it (category
    embeddings are not packed per member): train each alone."""


def group_key(config: dict[str, Any]) -> str:
    """Trials with equal keys can be trained as one packed network (the config without the
    per-member keys, as canonical JSON)."""
    shared = {
        table: {k: v for k, v in body.items() if k not in MEMBER_KEYS.get(table, ())}
        if isinstance(body, dict)
        else body
        for table, body in config.items()
    }
    return json.dumps(shared, sort_keys=True, default=str)


def packable(config: dict[str, Any]) -> str | None:
    """``None`` when a trial of ``config`` can be a packed member, else the reason it cannot."""
    m, t = config["model"], config["train"]
    es = t["early_stopping"]

    def off(table: str, field: str, value: Any) -> bool:
        return t.get(table, {}).get(field, value) == value

    checks = (
        ("model.residual", not m.get("residual", False)),
        ("model.norm = 'layernorm'", m.get("norm", "none") != "layernorm"),
        ("model.ensemble", m.get("ensemble", 1) == 1),
        ("train.clip_norm", not t.get("clip_norm", 0)),
        ("train.mixup", off("mixup", "kind", "none")),
        ("train.averaging", off("averaging", "kind", "none")),
        ("train.lookahead", off("lookahead", "enabled", False)),
        ("train.plateau", off("plateau", "enabled", False)),
        ("train.snapshots", off("snapshots", "enabled", False)),
        ("train.refit", not t.get("refit", False)),
        ("train.device = 'gpu'", t.get("device", "cpu") == "cpu"),
        (
            "train.early_stopping other than patience on dev_loss",
            not es["enabled"]
            or (
                es["monitor"] == "dev_loss"
                and es["criterion"] == "patience"
                and not es.get("start_from_epoch", 0)
                and not es.get("baseline", 0)
            ),
        ),
        ("data.augment", not config["data"].get("augment")),
        ("data.stream (a table streamed from disk)", not config["data"].get("stream", False)),
    )
    for what, fine in checks:
        if not fine:
            return f"{what} acts on the whole network; train this trial alone"
    return None


def train_group(
    payloads: Sequence[dict[str, Any]], report: GroupReport, prepared: Any = None
) -> list[dict[str, Any]]:
    """Train the trials of ``payloads`` (each as :mod:`deepfit.tuning.worker` receives it:
    ``number``, ``config``, ``metric``) as one packed network; one result per trial, in
    order. ``prepared`` is the data (:func:`deepfit.experiment.prepare` of the first config
    when ``None``). Raises :class:`DeepfitError` when the trials cannot share a network."""
    from deepfit import experiment
    from deepfit.tuning.worker import DEADLINE_REASON, past_deadline

    if not payloads:
        raise DeepfitError("train_group needs at least one trial")
    configs = [p["config"] for p in payloads]
    key = group_key(configs[0])
    for p, config in zip(payloads, configs, strict=True):
        problem = packable(config)
        if problem:
            raise DeepfitError(f"trial {p['number']}: {problem}")
        if group_key(config) != key:
            raise DeepfitError(
                f"trial {p['number']} differs from trial {payloads[0]['number']} beyond the "
                f"per-member keys; it cannot share their network"
            )
    first = configs[0]
    data = prepared if prepared is not None else experiment.prepare(first)
    if data.preprocessor is not None and data.preprocessor.embed_spec():
        raise NotPacked("category embeddings are not packed per member; train alone")
    k = len(configs)
    name = loss_name(first, data.task, data.n_outputs)
    m, t = first["model"], first["train"]
    n_out = 1 if name == "sigmoid_binary_cross_entropy" else data.n_outputs
    keep = [c["model"]["keep_prob"] for c in configs]
    per_layer = [
        [kp[i] if isinstance(kp, list) else kp for kp in keep] for i in range(len(m["hidden"]))
    ]
    seed = streams(t["seed"])
    model = packed_mlp(
        data.train[0].shape[1],
        m["hidden"],
        n_out,
        k,
        activation=m["activation"],
        init=build_initializer(first),
        batchnorm=m["batchnorm"] or m.get("norm") == "batchnorm",
        keep_prob=per_layer,
        rng=[seed["model"]] * k,
        dtype=t["dtype"],
    )

    def each(field: str) -> list[Any]:
        return [c["train"][field] for c in configs]

    kind = t["optimizer"]
    options: dict[str, Any] = {"weight_decay": each("weight_decay")}
    if kind == "momentum":
        options["beta"] = each("beta")
    elif kind == "rmsprop":
        options.update(beta=each("beta"), eps=each("eps"))
    elif kind == "adam":
        options.update(beta1=each("beta1"), beta2=each("beta2"), eps=each("eps"))
    optimizer = PACKED_OPTIMIZERS[kind](k, each("lr"), shared=model.shared_names(), **options)
    schedules = [build_schedule(c) for c in configs]
    es = t["early_stopping"]
    trainer = PackedTrainer(
        model,
        build_loss(first, name),
        optimizer,
        batch_size=t["batch_size"],
        l2=[c["model"]["l2"] for c in configs],
        l1=[c["model"]["l1"] for c in configs],
        schedules=[
            s if s is not None else _constant(c["train"]["lr"])
            for s, c in zip(schedules, configs, strict=True)
        ],
        seed=seed["train"],
        patience=es["patience"] if es["enabled"] else None,
        min_delta=es["min_delta"],
        restore_best_weights=es["restore_best"],
        threads=t["threads"],
    )
    numbers = [int(p["number"]) for p in payloads]
    metrics_ = [p["metric"] for p in payloads]
    pruned: dict[int, float] = {}

    def hook(trainer: PackedTrainer, logs: dict[str, Any]) -> None:
        for j, (number, metric) in enumerate(zip(numbers, metrics_, strict=True)):
            # a member early-stopped by this very epoch reports it, as a trial alone does
            if not trainer.optimizer.active[j] and trainer.epochs_run[j] != logs["epoch"]:
                continue
            values = logs.get(metric)
            if values is None:
                continue
            value = float(values[j])
            if report(number, logs["epoch"], value):
                pruned[j] = value
                trainer.stop_members([j], f"pruned after epoch {logs['epoch']}")
        running = [j for j in range(k) if trainer.optimizer.active[j]]
        if running and past_deadline(payloads[0]):
            trainer.stop_members(running, f"{DEADLINE_REASON} after epoch {logs['epoch']}")

    has_dev = data.dev[0].shape[0] > 0
    weight = {"sample_weight": data.train_weight} if data.train_weight is not None else {}
    trainer.fit(
        *data.train,
        t["epochs"],
        validation_data=data.dev if has_dev else None,
        epoch_hook=hook,
        **weight,
    )
    dev = trainer.evaluate(*data.dev) if has_dev else {}
    if has_dev and data.task == "regression":
        members = trainer.predict_members(data.dev[0])
        dev["r2"] = [metrics.r2_score(data.dev[1], members[j]) for j in range(k)]
    results = []
    for j, metric in enumerate(metrics_):
        out: dict[str, Any] = {
            "epochs": int(trainer.epochs_run[j]),
            "best_epoch": int(trainer.best_epoch[j]) or None,
            "stop_reason": trainer.status[j],
        }
        stop = trainer.status[j] or ""
        field = metric.removeprefix("dev_")
        if j in pruned:
            results.append({**out, "state": "pruned", "value": pruned[j]})
        elif "non-finite" in stop:
            results.append({**out, "state": "failed", "value": None, "error": stop})
        elif field not in dev:
            results.append(
                {
                    **out,
                    "state": "failed",
                    "value": None,
                    "error": f"the run has no {metric} (no dev set, or the task has no {field})",
                }
            )
        else:
            value = float(dev[field][j])
            state = "complete" if math.isfinite(value) else "failed"
            results.append({**out, "state": state, "value": value})
    return results


def _constant(lr: float) -> Callable[[int], float]:
    def schedule(epoch: int) -> float:
        return lr

    return schedule


def split_groups(payloads: Sequence[dict[str, Any]], size: int) -> list[list[dict[str, Any]]]:
    """Trials in groups of at most ``size`` sharing :func:`group_key`, in the order they came;
    a trial that :func:`packable` refuses is a group of its own."""
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise DeepfitError(f"pack size must be a positive integer, got {size!r}")
    groups: list[list[dict[str, Any]]] = []
    open_groups: dict[str, list[dict[str, Any]]] = {}
    for p in payloads:
        if packable(p["config"]):
            groups.append([p])
            continue
        key = group_key(p["config"])
        group = open_groups.get(key)
        if group is None or len(group) >= size:
            group = []
            open_groups[key] = group
            groups.append(group)
        group.append(p)
    return groups


__all__ = ["MEMBER_KEYS", "NotPacked", "group_key", "packable", "split_groups", "train_group"]

"""One trial, in whatever process runs it: a plain dict in, a plain dict out.

The driver sends ``{"number", "config", "metric", "objective"}``: ``config`` is the resolved
config with the trial's values applied (no ``[tune]`` table), ``objective`` the dotted name of
the function that runs it (``deepfit.tuning.worker:train``, which calls
:func:`deepfit.experiment.run`, the one pipeline). The worker answers
``{"state", "value", "epochs", "seconds", "error", ...}`` with ``state`` one of
``complete``, ``pruned`` or ``failed``. Nothing here touches the study's storage: each epoch's
dev metric goes to ``report(epoch, value)``, which returns True when the driver prunes.
"""

from __future__ import annotations

import importlib
import json
import math
import os
import socket
import time
import warnings
from collections.abc import Callable
from typing import Any

from deepfit.training.callbacks import Callback

Report = Callable[[int, float], bool]

DEFAULT_OBJECTIVE = "deepfit.tuning.worker:train"


class ReportMetric(Callback):
    """Send the monitored dev metric to ``report`` after each epoch; stop when it says so."""

    order = 50

    def __init__(self, metric: str, report: Report) -> None:
        self.metric, self.report = metric, report
        self.pruned = False
        self.last: float | None = None

    def on_train_begin(self, trainer) -> None:
        self.pruned, self.last = False, None

    def on_epoch_end(self, trainer, epoch: int, logs: dict[str, Any]) -> None:
        value = logs.get(self.metric)
        if value is None:
            return
        self.last = float(value)
        if self.report(epoch + 1, self.last):
            self.pruned = True
            trainer.stop_training = True
            trainer.stop_reason = f"pruned after epoch {epoch + 1}"


_PREPARED: dict[str, Any] = {}


def _prepared(config: dict[str, Any]):
    """The prepared data of ``config``, cached per worker process (trials that do not search
    ``[data]`` share one split)."""
    from deepfit import experiment

    key = json.dumps([config["data"], config["train"]["seed"]], sort_keys=True, default=str)
    if key not in _PREPARED:
        if len(_PREPARED) >= 2:
            _PREPARED.clear()
        _PREPARED[key] = experiment.prepare(config)
    return _PREPARED[key]


def train(payload: dict[str, Any], report: Report) -> dict[str, Any]:
    """The default objective: one training run of ``payload["config"]`` (early stopping as
    configured), scored on the dev set by ``payload["metric"]`` (``dev_loss``, ...)."""
    from deepfit import experiment

    config, metric = payload["config"], payload["metric"]
    callback = ReportMetric(metric, report)
    summary = experiment.run(
        config,
        None,
        callbacks=[callback],
        progress=False,
        write_plots=False,
        prepared=_prepared(config),
    )
    out: dict[str, Any] = {
        "epochs": summary["epochs_run"],
        "best_epoch": summary["best_epoch"],
        "stop_reason": summary["stop_reason"],
    }
    stop = summary["stop_reason"] or ""
    if callback.pruned:
        return {**out, "state": "pruned", "value": callback.last}
    if "non-finite" in stop:
        return {**out, "state": "failed", "value": None, "error": stop}
    name = metric.removeprefix("dev_")
    value = (summary.get("dev") or {}).get(name)
    if value is None:
        return {
            **out,
            "state": "failed",
            "value": None,
            "error": f"the run has no {metric} (no dev set, or the task has no {name})",
        }
    return {**out, "state": "complete", "value": float(value)}


def resolve(name: str) -> Callable[[dict[str, Any], Report], dict[str, Any]]:
    module, _, attr = name.partition(":")
    return getattr(importlib.import_module(module), attr)


def run_trial(payload: dict[str, Any], report: Report) -> dict[str, Any]:
    """Run one trial; never raises for the trial's own failures (they come back as
    ``state = "failed"`` with the error in one line)."""
    start = time.perf_counter()
    try:
        objective = resolve(payload.get("objective") or DEFAULT_OBJECTIVE)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = dict(objective(payload, report))
    except Exception as exc:  # the trial's failure, reported, not the study's
        message = str(exc).splitlines()[0] if str(exc) else ""
        result = {"state": "failed", "value": None, "error": f"{type(exc).__name__}: {message}"}
    value = result.get("value")
    if result.get("state") == "complete" and (value is None or not math.isfinite(value)):
        result = {**result, "state": "failed", "error": f"the metric is {value}"}
    result.setdefault("epochs", 0)
    result.setdefault("error", None)
    result["seconds"] = time.perf_counter() - start
    result["host"] = f"{socket.gethostname()}:{os.getpid()}"
    return result

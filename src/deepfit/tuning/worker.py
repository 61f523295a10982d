"""One trial, in whatever process runs it: a plain dict in, a plain dict out.

The driver sends ``{"number", "config", "metric", "objective"}``: ``config`` is the resolved
config with the trial's values applied (no ``[tune]`` table), ``objective`` the dotted name of
the function that runs it (``deepfit.tuning.worker:train``, which calls
:func:`deepfit.experiment.run`, the one pipeline). The worker answers
``{"state", "value", "epochs", "seconds", "error", ...}`` with ``state`` one of
``complete``, ``pruned`` or ``failed``. Nothing here touches the study's storage: each epoch's
dev metric goes to ``report(epoch, value)``, which returns True when the driver prunes.

A packed group (``deepfit tune --pack K``) is one task too: ``{"members": [payload, ...],
"objective"}`` with ``objective`` a group objective (``deepfit.tuning.worker:train_group``,
which trains the members as one packed network, :func:`deepfit.tuning.packed.train_group`).
:func:`run_group` answers one result per member, in order; the members report through
``report(number, epoch, value)``. A group whose setup raises fails every member with that one
line; a group the data refuses to pack (:class:`~deepfit.tuning.packed.NotPacked`, e.g. category
embeddings) runs its members one after the other, each as a trial alone, and says so in each
result's ``alone``.

**Cross-validated trials** (``tune.cv = k``, sent as the payload's ``cv``): :func:`train` trains
the trial ``k`` times, fold ``i`` on the other ``k - 1`` folds of the non-test rows with early
stopping on fold ``i`` (:func:`deepfit.experiment.prepare` with ``fold=(i, k)``: its scaler,
category levels and imputation fitted on those training rows only), and scores it by the mean
of the ``k`` held-out metrics, as scikit-learn's ``cross_val_score`` (``cv=k``) does. After
fold ``i`` it reports the running mean as step ``i + 1`` (no per-epoch reports), so a pruner
can stop a bad trial after its first fold; within a fold it sends ``report(0, nan)`` at most once
a second (:class:`Tick`: nothing for the pruner, but the driver keeps its budget record as
current as per-epoch reports keep it). The result's ``best_epoch`` is the folds' mean best
epoch (rounded), the number of epochs the winner's refit on all the non-test rows trains for;
``epochs`` the folds' mean epochs run; ``folds`` the folds finished and ``fold_values`` their
metrics. At the search's deadline the running fold stops at its next epoch end (scored on its
best weights, as a single-split trial) and no further fold starts: the trial's value is then the
mean of the folds it finished (``folds < cv``; the driver counts such a trial as pruned when
another trial finished all its folds). A packed group (``tune.pack``) is one split per member:
the driver refuses ``tune.pack > 1`` with ``tune.cv > 1``.
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

from deepfit.errors import DeepfitError
from deepfit.training.callbacks import Callback

Report = Callable[[int, float], bool]
GroupReport = Callable[[int, int, float], bool]

DEFAULT_OBJECTIVE = "deepfit.tuning.worker:train"
DEFAULT_GROUP_OBJECTIVE = "deepfit.tuning.worker:train_group"


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


#: the reason a trial stopped by the search's deadline records (``stop_reason``)
DEADLINE_REASON = "the search's time budget ran out"


def past_deadline(payload: dict[str, Any]) -> bool:
    """Whether the wall clock has passed the ``deadline`` (``time.time()`` seconds) the driver
    gave a budgeted search's trial; never without one."""
    deadline = payload.get("deadline")
    return deadline is not None and time.time() >= float(deadline)


class StopAtDeadline(Callback):
    """Stop a budgeted search's trial at the first epoch end past the search's deadline (as
    Ray Tune's ``time_budget_s`` stops running trials and Lightning's ``Timer`` stops a fit):
    the trial keeps its best weights so far and is scored on them, so a search ends within its
    budget plus one epoch, not one whole trial."""

    order = 60  # after ReportMetric: the epoch is reported before the trial stops

    def __init__(self, payload: dict[str, Any]) -> None:
        self.payload = payload
        self.stopped = False

    def on_epoch_end(self, trainer, epoch: int, logs: dict[str, Any]) -> None:
        if not trainer.stop_training and past_deadline(self.payload):
            self.stopped = True
            trainer.stop_training = True
            trainer.stop_reason = f"{DEADLINE_REASON} after epoch {epoch + 1}"


class Tick(Callback):
    """``report(0, nan)`` at an epoch end at least ``every`` seconds after the last one: a
    cross-validated trial's sign of life between its per-fold reports (the driver records its
    budget and ignores a non-finite value)."""

    order = 50

    def __init__(self, report: Report, every: float = 1.0) -> None:
        self.report, self.every = report, every
        self.last = time.monotonic()

    def on_epoch_end(self, trainer, epoch: int, logs: dict[str, Any]) -> None:
        now = time.monotonic()
        if now - self.last >= self.every:
            self.last = now
            self.report(0, math.nan)


_PREPARED: dict[str, dict[tuple[int, int] | None, Any]] = {}


def _prepared(config: dict[str, Any], fold: tuple[int, int] | None = None):
    """The prepared data of ``config`` (of its cross-validation ``fold`` ``(i, k)``), cached
    per worker process: trials that do not search ``[data]`` share one split, or one set of
    folds."""
    from deepfit import experiment

    key = json.dumps([config["data"], config["train"]["seed"]], sort_keys=True, default=str)
    if key not in _PREPARED:
        if len(_PREPARED) >= 2:
            _PREPARED.clear()
        _PREPARED[key] = {}
    splits = _PREPARED[key]
    if fold not in splits:
        splits[fold] = experiment.prepare(config, fold=fold)
    return splits[fold]


def _dev_value(summary: dict[str, Any], metric: str) -> tuple[float | None, str | None]:
    """The run's dev ``metric`` (``dev_loss``, ...), or None and why (a failure)."""
    stop = summary["stop_reason"] or ""
    if "non-finite" in stop:
        return None, stop
    name = metric.removeprefix("dev_")
    value = (summary.get("dev") or {}).get(name)
    if value is None:
        return None, f"the run has no {metric} (no dev set, or the task has no {name})"
    return float(value), None


def train(payload: dict[str, Any], report: Report) -> dict[str, Any]:
    """The default objective: one training run of ``payload["config"]`` (early stopping as
    configured), scored on the dev set by ``payload["metric"]`` (``dev_loss``, ...); with
    ``payload["cv"] = k > 1`` the mean over ``k`` cross-validation folds (:func:`train_folds`)."""
    from deepfit import experiment

    if int(payload.get("cv") or 1) > 1:
        return train_folds(payload, report)
    config, metric = payload["config"], payload["metric"]
    callback = ReportMetric(metric, report)
    summary = experiment.run(
        config,
        None,
        callbacks=[callback, StopAtDeadline(payload)],
        progress=False,
        write_plots=False,
        prepared=_prepared(config),
    )
    out: dict[str, Any] = {
        "epochs": summary["epochs_run"],
        "best_epoch": summary["best_epoch"],
        "stop_reason": summary["stop_reason"],
    }
    if callback.pruned:
        return {**out, "state": "pruned", "value": callback.last}
    value, error = _dev_value(summary, metric)
    if value is None:
        return {**out, "state": "failed", "value": None, "error": error}
    return {**out, "state": "complete", "value": value}


def _mean_epoch(epochs: list[int]) -> int | None:
    """The mean of the folds' epoch counts, rounded half up (None for no fold)."""
    return math.floor(sum(epochs) / len(epochs) + 0.5) if epochs else None


def train_folds(payload: dict[str, Any], report: Report) -> dict[str, Any]:
    """A cross-validated trial (``payload["cv"] = k``): fold ``i`` trains on the other
    ``k - 1`` folds with early stopping on fold ``i``; the value is the mean held-out metric

        v = (1/k) sum_{i=0}^{k-1} v_i,

    ``v_i`` the dev ``payload["metric"]`` of fold ``i`` (scikit-learn's ``cross_val_score``
    averaged). After fold ``i`` the running mean of the folds so far is reported as step
    ``i + 1``; a pruned trial stops there. ``best_epoch`` is ``round(mean_i e_i)``, ``e_i`` fold
    ``i``'s best epoch (its epochs run without early stopping); see the module docstring for the
    deadline."""
    from deepfit import experiment

    config, metric, k = payload["config"], payload["metric"], int(payload["cv"])
    values: list[float] = []
    best: list[int] = []
    runs: list[int] = []
    stop_reason = None

    def out(state: str, value: float | None, **extra: Any) -> dict[str, Any]:
        return {
            "state": state,
            "value": value,
            "epochs": _mean_epoch(runs) or 0,
            "best_epoch": _mean_epoch(best),
            "stop_reason": stop_reason,
            "folds": len(values),
            "fold_values": list(values),
            **extra,
        }

    for i in range(k):
        if i > 0 and past_deadline(payload):
            stop_reason = f"{DEADLINE_REASON} after fold {i} of {k}"
            break
        stopper = StopAtDeadline(payload)
        try:
            summary = experiment.run(
                config,
                None,
                callbacks=[Tick(report), stopper],
                progress=False,
                write_plots=False,
                prepared=_prepared(config, (i, k)),
            )
        except Exception as exc:  # the trial fails (run_trial), saying in which fold
            raise DeepfitError(f"fold {i + 1} of {k}: {_one_line(exc)}") from exc
        runs.append(int(summary["epochs_run"]))
        best.append(int(summary["best_epoch"] or summary["epochs_run"]))
        value, error = _dev_value(summary, metric)
        if value is None:
            stop_reason = summary["stop_reason"]
            return out("failed", None, error=f"fold {i + 1} of {k}: {error}")
        values.append(value)
        stop_reason = f"fold {i + 1} of {k}: {summary['stop_reason'] or 'all epochs run'}"
        running = sum(values) / len(values)
        if stopper.stopped:
            stop_reason = f"{DEADLINE_REASON} in fold {i + 1} of {k}"
            break
        if report(i + 1, running) and i + 1 < k:
            stop_reason = f"pruned after fold {i + 1} of {k}"
            return out("pruned", running)
    return out("complete", sum(values) / len(values))


def train_group(payloads: list[dict[str, Any]], report: GroupReport) -> list[dict[str, Any]]:
    """The default group objective: the members of ``payloads`` trained as one packed network
    (:func:`deepfit.tuning.packed.train_group`) on the worker's cached prepared data."""
    from deepfit.tuning import packed

    return packed.train_group(payloads, report, _prepared(payloads[0]["config"]))


def resolve(name: str) -> Callable[..., Any]:
    module, _, attr = name.partition(":")
    return getattr(importlib.import_module(module), attr)


def _one_line(exc: BaseException) -> str:
    message = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {message}"


def _settle(result: dict[str, Any], seconds: float) -> dict[str, Any]:
    """A complete result with no finite value is a failure; the fields every result has."""
    value = result.get("value")
    if result.get("state") == "complete" and (value is None or not math.isfinite(value)):
        result = {**result, "state": "failed", "error": f"the metric is {value}"}
    result.setdefault("epochs", 0)
    result.setdefault("error", None)
    result["seconds"] = seconds
    result["host"] = f"{socket.gethostname()}:{os.getpid()}"
    return result


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
        result = {"state": "failed", "value": None, "error": _one_line(exc)}
    return _settle(result, time.perf_counter() - start)


def run_group(payload: dict[str, Any], report: GroupReport) -> list[dict[str, Any]]:
    """Run the packed group ``payload["members"]`` with ``payload["objective"]``; one result
    per member, in order, each as :func:`run_trial` answers it (``seconds`` is the group's wall
    time, shared by its members). Never raises for the group's own failures."""
    from deepfit.tuning.packed import NotPacked

    members = payload["members"]
    start = time.perf_counter()
    try:
        objective = resolve(payload.get("objective") or DEFAULT_GROUP_OBJECTIVE)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            results = [dict(r) for r in objective(members, report)]
        if len(results) != len(members):
            raise RuntimeError(
                f"the group objective answered {len(results)} results for {len(members)} trials"
            )
    except NotPacked as exc:  # the data refuses packing: each member alone, in turn
        reason = str(exc)
        out = []
        for member in members:
            number = int(member["number"])
            result = run_trial(member, lambda e, v, n=number: report(n, e, v))
            out.append({**result, "alone": reason})
        return out
    except Exception as exc:  # the group's failure: every member's, in one line
        error = _one_line(exc)
        results = [{"state": "failed", "value": None, "error": error} for _ in members]
    seconds = time.perf_counter() - start
    return [{**_settle(r, seconds), "pack": len(members)} for r in results]

"""Runs and studies logged to MLflow (the ``mlflow`` extra).

``deepfit train --mlflow`` logs one MLflow run: the resolved config flattened into parameters
(``train.lr``, ``model.hidden``, ...), every epoch's metrics (the columns of ``metrics.csv``:
``train_loss``, ``dev_loss``, ``lr``, ... at step = epoch) while training goes, the final
evaluation (``final_dev_loss``, ``final_test_accuracy``, ...), the diagnosis, and the run
directory's files as artifacts (``model.npz``, ``config.toml``, ``metrics.csv``,
``summary.json``, the plots). ``deepfit tune --mlflow`` logs the study as a parent run (the
config with its ``[tune]`` table as parameters; at the end the best value, ``trials.csv``,
``best.toml`` and the figures) and every trial, as it ends, as a run nested under it (its
values, its per-epoch dev metric, its state).
``deepfit train --data FILE --budget 5m --mlflow`` logs the winner the search trains into
``OUT/best`` as one run, as ``train --mlflow`` would (with the search's ``trials.csv``); a
study that trains its best configuration (``tune --budget``, ``--train-best``) logs that run
nested under the study's, named ``best``.

Where: the tracking URI given (``--tracking-uri``: ``sqlite:///mlflow.db``, a folder, or a
tracking server's ``http://host:5000``), else MLflow's own choice (``MLFLOW_TRACKING_URI``,
else its default store); the experiment given, else ``MLFLOW_EXPERIMENT_NAME``, else
``deepfit``. A resumed run (``--resume``) and a study run again continue their MLflow run,
found by a tag. MLflow is imported only here, and this module only when tracking is asked for.
"""

from __future__ import annotations

import hashlib
import math
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from deepfit.errors import DeepfitError
from deepfit.training.callbacks import Callback

DEFAULT_EXPERIMENT = "deepfit"
KEY_TAG = "deepfit.key"
RUN_ARTIFACTS = ("config.toml", "metrics.csv", "summary.json", "model.npz", "report.html")
_BATCH = 100  # MLflow's limit of params or tags per log_batch call


def _client(tracking_uri: str | None):
    try:
        import mlflow
        from mlflow.tracking import MlflowClient
    except ImportError:
        raise DeepfitError("MLflow tracking needs MLflow: pip install 'deepfit[mlflow]'") from None
    uri = tracking_uri or mlflow.get_tracking_uri()
    return MlflowClient(tracking_uri=uri), uri


def _ms(when: datetime | None = None) -> int:
    return int(1000 * (when.timestamp() if when is not None else time.time()))


def _text(value: Any) -> str:
    import json

    return value if isinstance(value, str) else json.dumps(value)


def run_key(*parts: Any) -> str:
    """The tag value that finds a run again (a resumed run, a study run again): a digest, so a
    path of any characters is safe in MLflow's filter syntax."""
    return hashlib.sha256("\0".join(map(str, parts)).encode()).hexdigest()[:32]


class Tracker:
    """One MLflow run, written through :class:`mlflow.tracking.MlflowClient`."""

    def __init__(self, client: Any, uri: str, experiment_id: str, run_id: str) -> None:
        self.client, self.uri = client, uri
        self.experiment_id, self.run_id = experiment_id, run_id

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Log parameters (non-strings as JSON, cut to MLflow's 6000 characters). MLflow never
        changes a logged parameter: a resumed run's new value is kept as the tag
        ``deepfit.changed.<key>``."""
        from mlflow.entities import Param, RunTag
        from mlflow.utils.validation import MAX_PARAM_VAL_LENGTH

        logged = self.client.get_run(self.run_id).data.params
        new, changed = [], []
        for key, value in params.items():
            text = _text(value)[:MAX_PARAM_VAL_LENGTH]
            if key not in logged:
                new.append(Param(key, text))
            elif logged[key] != text:
                changed.append(RunTag(f"deepfit.changed.{key}", text))
        for i in range(0, len(new), _BATCH):
            self.client.log_batch(self.run_id, params=new[i : i + _BATCH])
        self.set_tags({t.key: t.value for t in changed})

    def log_metrics(
        self, metrics: Mapping[str, Any], step: int = 0, timestamp: int | None = None
    ) -> None:
        """Log the numbers of ``metrics`` (others are skipped) at ``step``."""
        from mlflow.entities import Metric

        when = timestamp if timestamp is not None else _ms()
        batch = [
            Metric(k, float(v), when, step)
            for k, v in metrics.items()
            if isinstance(v, int | float) and not isinstance(v, bool)
        ]
        for i in range(0, len(batch), 10 * _BATCH):
            self.client.log_batch(self.run_id, metrics=batch[i : i + 10 * _BATCH])

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        from mlflow.entities import RunTag

        batch = [RunTag(k, _text(v)) for k, v in tags.items() if v is not None]
        for i in range(0, len(batch), _BATCH):
            self.client.log_batch(self.run_id, tags=batch[i : i + _BATCH])

    def log_artifacts(self, paths: Iterable[Path]) -> None:
        for path in paths:
            self.client.log_artifact(self.run_id, str(path))

    def end(self, status: str = "FINISHED", end_time: int | None = None) -> None:
        self.client.set_terminated(self.run_id, status, end_time=end_time)

    def child(
        self, run_name: str, tags: Mapping[str, Any], start_time: int | None = None
    ) -> Tracker:
        """A run nested under this one (MLflow's ``mlflow.parentRunId`` tag), same experiment."""
        all_tags = {k: _text(v) for k, v in tags.items() if v is not None}
        all_tags["mlflow.parentRunId"] = self.run_id
        run = self.client.create_run(
            self.experiment_id, start_time=start_time, tags=all_tags, run_name=run_name
        )
        return Tracker(self.client, self.uri, self.experiment_id, run.info.run_id)


def open_run(
    *,
    tracking_uri: str | None = None,
    experiment_name: str | None = None,
    run_name: str | None = None,
    key: str | None = None,
    resume: bool = False,
    tags: Mapping[str, Any] | None = None,
) -> Tracker:
    """Start an MLflow run, or with ``resume`` reopen the latest run tagged with ``key``."""
    name = experiment_name or os.environ.get("MLFLOW_EXPERIMENT_NAME") or DEFAULT_EXPERIMENT
    uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI", "(MLflow's default)")
    try:
        client, uri = _client(tracking_uri)
        found = client.get_experiment_by_name(name)
        experiment_id = found.experiment_id if found else client.create_experiment(name)
        if key is not None and resume:
            runs = client.search_runs(
                [experiment_id],
                filter_string=f"tags.`{KEY_TAG}` = '{key}'",
                order_by=["attributes.start_time DESC"],
                max_results=1,
            )
            if runs:
                client.update_run(runs[0].info.run_id, status="RUNNING")
                return Tracker(client, uri, experiment_id, runs[0].info.run_id)
        all_tags = {k: _text(v) for k, v in (tags or {}).items() if v is not None}
        if key is not None:
            all_tags[KEY_TAG] = key
        run = client.create_run(experiment_id, tags=all_tags, run_name=run_name)
    except Exception as exc:  # a bad URI, an unreachable server, a store it cannot open
        if isinstance(exc, DeepfitError):
            raise
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DeepfitError(f"MLflow tracking URI {uri}: {first}") from None
    return Tracker(client, uri, experiment_id, run.info.run_id)


def _status(exc: BaseException | None) -> str:
    if exc is None:
        return "FINISHED"
    return "KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED"


def _flat(config: Mapping[str, Any]) -> dict[str, Any]:
    from deepfit.config import flatten

    return dict(flatten(config))


# -- one training run ---------------------------------------------------------------------------
class EpochMetrics(Callback):
    """Log each epoch's metrics (the row ``metrics.csv`` gets) to an MLflow run, step = the
    epoch counted from 1."""

    order = 60

    def __init__(self, tracker: Tracker) -> None:
        self.tracker = tracker

    def on_epoch_end(self, trainer: Any, epoch: int, logs: dict[str, Any]) -> None:
        step = int(logs.get("epoch", epoch + 1))
        self.tracker.log_metrics({k: v for k, v in logs.items() if k != "epoch"}, step=step)


def log_summary(tracker: Tracker, summary: Mapping[str, Any], out: Path | None) -> None:
    """The final evaluation, the diagnosis and the run directory's files."""
    finals: dict[str, Any] = {
        f"final_{split}_{name}": value
        for split in ("train", "dev", "test")
        for name, value in (summary.get(split) or {}).items()
    }
    for key in ("best_epoch", "epochs_run", "seconds", "n_params", "n_train", "n_dev", "n_test"):
        finals[key] = summary.get(key)
    diagnosis = summary.get("diagnosis") or {}
    for key in ("train_error", "dev_error", "bayes_error", "avoidable_bias", "variance"):
        finals[key] = diagnosis.get(key)
    tracker.log_metrics({k: v for k, v in finals.items() if v is not None})
    tracker.set_tags(
        {
            "deepfit.task": summary.get("task"),
            "deepfit.data": summary.get("data"),
            "deepfit.stop_reason": summary.get("stop_reason"),
            "deepfit.verdict": diagnosis.get("verdict"),
        }
    )
    if out is not None:
        files = [out / name for name in RUN_ARTIFACTS] + sorted(out.glob("*.png"))
        tracker.log_artifacts(p for p in files if p.is_file())


def run(
    config: Mapping[str, Any],
    out: str | Path | None = None,
    *,
    tracking_uri: str | None = None,
    experiment_name: str | None = None,
    resume: bool = False,
    callbacks: Sequence[Callback] = (),
    **kwargs: Any,
) -> dict[str, Any]:
    """:func:`deepfit.experiment.run`, logged to an MLflow run (see the module's docstring);
    with ``resume`` the run directory's MLflow run continues."""
    from deepfit import experiment

    where = Path(out).resolve() if out is not None else None
    tracker = open_run(
        tracking_uri=tracking_uri,
        experiment_name=experiment_name,
        run_name=where.name if where is not None else None,
        key=run_key("run", where) if where is not None else None,
        resume=resume,
        tags={"deepfit.run_dir": str(where) if where is not None else None},
    )
    error: BaseException | None = None
    try:
        tracker.log_params(_flat(config))
        summary = experiment.run(
            dict(config),
            out,
            resume=resume,
            callbacks=[*callbacks, EpochMetrics(tracker)],
            **kwargs,
        )
        log_summary(tracker, summary, Path(out) if out is not None else None)
        summary["mlflow_run_id"] = tracker.run_id
        return summary
    except BaseException as exc:
        error = exc
        raise
    finally:
        tracker.end(_status(error))


def log_run_dir(tracker: Tracker, run_dir: Path) -> None:
    """A finished run directory logged as :func:`run` logs a run while it trains: its
    ``config.toml`` flattened into parameters, each row of ``metrics.csv`` at step = its
    epoch, then :func:`log_summary` of its ``summary.json`` and its files."""
    import csv
    import json

    from deepfit.config import read_raw

    tracker.log_params(_flat(read_raw(run_dir / "config.toml")))
    with open(run_dir / "metrics.csv", newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            values = {}
            for key, text in row.items():
                try:
                    values[key] = float(text)
                except (TypeError, ValueError):  # an empty cell: nothing measured
                    continue
            step = int(values.pop("epoch"))
            tracker.log_metrics(values, step=step)
    summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    log_summary(tracker, summary, run_dir)


def search_run(
    search: Any,
    out: str | Path,
    *,
    tracking_uri: str | None = None,
    experiment_name: str | None = None,
) -> dict[str, Any]:
    """``deepfit train --data FILE --budget 5m --mlflow``: ``search()`` (a table search that
    trains its winner into ``OUT/best``, returning its summary) with the winner logged to an
    MLflow run as ``deepfit train --mlflow`` logs a run (:func:`log_run_dir`), plus the search's
    ``trials.csv`` and ``best.toml`` and its counts. The run is opened first, so a bad tracking
    URI is refused before any trial; a search without a completed trial ends it FAILED."""
    search_dir = Path(out).resolve()
    where = search_dir / "best"
    tracker = open_run(
        tracking_uri=tracking_uri,
        experiment_name=experiment_name,
        run_name=f"{search_dir.name}/best",
        key=run_key("run", where),
        tags={"deepfit.run_dir": str(where), "deepfit.search_dir": str(search_dir)},
    )
    error: BaseException | None = None
    status = "FINISHED"
    try:
        summary = search()
        counts = {k: summary.get(k) for k in ("counted", "complete", "pruned", "failed")}
        tracker.log_metrics({f"search_{k}": v for k, v in counts.items() if v is not None})
        best_run = summary.get("best_run")
        if best_run is None:
            tracker.set_tags({"deepfit.error": "no trial of the search completed"})
            status = "FAILED"
        else:
            log_run_dir(tracker, Path(best_run["out"]))
            tracker.set_tags({"deepfit.best_trial": best_run.get("trial")})
            files = (search_dir / name for name in ("trials.csv", "best.toml"))
            tracker.log_artifacts(p for p in files if p.is_file())
        summary["mlflow_run_id"] = tracker.run_id
        return summary
    except BaseException as exc:
        error = exc
        raise
    finally:
        tracker.end(_status(error) if error is not None else status)


# -- a study ------------------------------------------------------------------------------------
class TrialRuns:
    """An Optuna callback ``(study, trial)`` logging each ended trial as a run nested under the
    study's run: its values as parameters, the dev metric of each epoch, the final value, the
    epochs and seconds, its state (``deepfit.state``: complete, pruned, failed) and error."""

    def __init__(self, parent: Tracker, config: Mapping[str, Any], metric: str) -> None:
        from deepfit.tuning import space as _space

        self.parent, self.metric = parent, metric
        self.space = _space.parse(config)

    def __call__(self, study: Any, trial: Any) -> None:
        from deepfit.tuning import space as _space
        from deepfit.tuning.study import state_name

        state = state_name(trial)
        attrs = trial.user_attrs
        child = self.parent.child(
            f"trial {trial.number}",
            {
                "deepfit.trial": trial.number,
                "deepfit.state": state,
                "deepfit.error": attrs.get("error") if state == "failed" else None,
            },
            start_time=_ms(trial.datetime_start) if trial.datetime_start else None,
        )
        params: dict[str, Any] = {
            "round": attrs.get("round", 0) + 1,
            "attempt": attrs.get("attempt", 1),
        }
        if _space.complete_params(self.space, trial.params):
            params.update(_space.from_optuna(self.space, trial.params))
        child.log_params(params)
        for step, value in sorted(trial.intermediate_values.items()):
            if math.isfinite(value):
                child.log_metrics({self.metric: value}, step=int(step))
        finals = {"epochs": attrs.get("epochs"), "seconds": attrs.get("seconds")}
        if trial.value is not None:
            finals[f"final_{self.metric}"] = trial.value
        child.log_metrics({k: v for k, v in finals.items() if v is not None})
        end = _ms(trial.datetime_complete) if trial.datetime_complete else None
        child.end("FAILED" if state == "failed" else "FINISHED", end_time=end)


def tune(
    config: Mapping[str, Any],
    out: str | Path,
    *,
    tracking_uri: str | None = None,
    experiment_name: str | None = None,
    **kwargs: Any,
) -> dict[str, Any]:
    """:func:`deepfit.tuning.study.tune`, logged to MLflow: the study as a parent run (reopened
    when the same study runs again, a new one with ``new_study``), each trial as a nested run
    as it ends."""
    from deepfit.tuning import study as _study

    storage = kwargs.get("storage") or _study.default_storage(Path(out))
    name = kwargs.get("study", "deepfit")
    metric = _study.Settings.from_config(config).metric
    parent = open_run(
        tracking_uri=tracking_uri,
        experiment_name=experiment_name,
        run_name=f"study {name}",
        key=run_key("study", storage, name),
        resume=not kwargs.get("new_study", False),
        tags={"deepfit.study": name, "deepfit.storage": storage},
    )
    error: BaseException | None = None
    try:
        parent.log_params(_flat(config))
        trial_runs = TrialRuns(parent, config, metric)
        with_runs = [*kwargs.pop("callbacks", ()), trial_runs]
        summary = _study.tune(config, out, callbacks=with_runs, **kwargs)
        totals = {k: summary.get(k) for k in ("counted", "complete", "pruned", "failed")}
        best = summary.get("best")
        if best is not None:
            totals[f"best_{metric}"] = best["value"]
            parent.set_tags({"deepfit.best_trial": best["number"]})
            parent.set_tags({f"deepfit.best.{k}": v for k, v in best["params"].items()})
        parent.log_metrics({k: v for k, v in totals.items() if v is not None})
        files = [Path(out) / f for f in summary.get("files", [])]
        parent.log_artifacts(p for p in files if p.is_file())
        best_run = summary.get("best_run")
        if best_run is not None:  # train_best: the winner, as deepfit train --mlflow logs it
            where = Path(best_run["out"]).resolve()
            child = parent.child(
                "best", {"deepfit.run_dir": str(where), "deepfit.trial": best_run.get("trial")}
            )
            log_run_dir(child, where)
            child.end()
        summary["mlflow_run_id"] = parent.run_id
        return summary
    except BaseException as exc:
        error = exc
        raise
    finally:
        parent.end(_status(error))

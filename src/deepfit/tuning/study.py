"""The driver: an Optuna study that survives crashes, filled by our strategies or by TPE.

Only this process opens the storage (SQLite in the output directory by default, or any
SQLAlchemy URL). For each new trial it asks the strategy for a point, enqueues it
(``study.enqueue_trial``) and pops it with ``study.ask``, sends the executor a plain dict (the
resolved config with the point applied), answers the per-epoch reports with Optuna's pruner
(``trial.report`` / ``trial.should_prune``) and tells the study the outcome.

What counts towards ``trials``: trials that completed, were pruned, or failed on their own
(a diverging run, an invalid combination): each is a training run spent on a point. Trials
that were *interrupted* (the driver killed, a worker process lost) do not count: they are
marked failed with ``interrupted = true`` and their point is enqueued again, so a restarted
study continues to exactly ``trials`` counted trials, losing none and counting none twice. (A
point whose worker process dies ``MAX_ATTEMPTS`` times is given up and counted as failed.)

Interrupted trials are found when the study (re)starts: with SQLite (one driver, guarded by a
lock file) every trial still RUNNING is one. With a shared database (several drivers, one per
machine) Optuna's own heartbeat finds them: the storage is an ``RDBStorage`` with
``heartbeat_interval`` and ``grace_period``; each driver records a heartbeat for each of its
running trials every ``heartbeat_interval`` seconds (:meth:`RDBStorage.record_heartbeat`, from
a thread, so a long epoch in the driver's own process does not starve it), and every driver
calls :func:`optuna.storages.fail_stale_trials` as often. Both the stamp and the comparison use
the database server's clock (``now()`` in SQL), so drivers whose clocks disagree never
interrupt each other's live trials. Optuna fails a stale trial and calls the storage's
stale-trial callback, Optuna's retry callback (:class:`_Retry`), which enqueues the same
values again with deepfit's bookkeeping (slot, round, attempt, ``retry_of``).

A FAIL trial counts only when it failed on its own: its driver records ``error`` before
telling the study. A trial failed by the heartbeat has no ``error`` (and cannot be given one:
Optuna refuses attributes on finished trials), one failed by its own driver's stop has
``interrupted = true``: neither counts.

**Pruners** (``tune.pruner``, answered per epoch through ``trial.report`` /
``trial.should_prune``): ``median`` (Optuna's ``MedianPruner``: stop a trial whose metric is
worse than the median of the earlier trials at the same epoch), ``halving`` (asynchronous
successive halving, ``SuccessiveHalvingPruner``: at epochs ``r, r*eta, r*eta^2, ...`` only the
best ``1/eta`` of the trials that reached the rung go on) and ``hyperband`` (``HyperbandPruner``:
several successive-halving brackets with different first rungs, up to ``train.epochs``), or
``none``. ``pruning = false`` (``--no-prune``) turns any of them off.

**Budget** (``--budget 5m`` or ``tune.budget``): see :mod:`deepfit.tuning.budget`. New trials
start only while time is left; the study stays resumable, and the time is counted across
reruns. After a budgeted search the best configuration is trained again into ``OUT/best``
(``train_best``), a normal run directory (with ``train.refit = true`` it retrains on train +
dev after early stopping; the trials themselves skip the refit, which changes nothing they
report).

**Conditional spaces** (``"... if KEY == value"``, see :mod:`deepfit.tuning.space`): every
trial is sampled define-by-run (:func:`deepfit.tuning.space.suggest`), so only its active
keys are Optuna parameters, for every strategy; a retry has the same values.

**Packed trials** (``--pack K`` or ``tune.pack``): the driver asks for up to ``K`` trials at
once (never more than the trials still to run, and only while the budget lasts and a worker
slot is free), groups those that share an architecture, a batch size, the data and the seed
(:func:`deepfit.tuning.packed.split_groups`) and sends each group to the executor as one task,
trained as one packed network (:func:`deepfit.tuning.packed.train_group`); a trial that cannot
be packed runs alone. Each member is an Optuna trial of its own: it reports every epoch, the
pruner decides for it alone, and it is told complete, pruned or failed with its own value; a
killed driver's group is recovered member by member like single trials. Groups the executor
cannot start yet (more groups than free slots) wait in the driver, already asked. The
strategy's points do not depend on ``K`` (random, grid and coarse-to-fine propose by slot;
coarse-to-fine groups never cross a round); TPE samples the ``K`` points of a group without
each other's results, as with ``--workers K``. Pruning sees a group's members in lockstep, so
its decisions (not the points or an unpruned trial's value) can differ from ``K = 1``.

**Cross-validated trials** (``tune.cv = k``, ``k >= 2``): each trial trains ``k`` times on the
folds of the non-test rows and is scored by the mean held-out metric
(:func:`deepfit.tuning.worker.train_folds`); it reports the running mean after each fold (step
= folds done), so pruning sees steps ``1..k`` (the median pruner then prunes from step 1:
``n_warmup_steps = 0``; Hyperband's largest resource is ``k``). A trial the deadline cut short
(fewer folds than ``k``) is told pruned when another trial finished all its folds, complete
otherwise (so a search always has a winner). The winner's run in ``OUT/best`` trains, with
``train.refit``, on all the non-test rows for the folds' mean best epoch (no early stopping:
no dev rows are left). ``tune.pack > 1`` trains one split per member and is refused with
``tune.cv > 1``.

The study remembers what it was started with (the ``[tune]`` settings and every key of the
base config that the space does not set): a rerun with a change is refused naming the changed
keys, since its trials would not be comparable; ``new_study=True`` (``--new-study``) discards
the old study and starts again.
"""

from __future__ import annotations

import contextlib
import copy
import csv
import inspect
import io
import json
import math
import os
import socket
import threading
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deepfit import config as C
from deepfit.errors import DeepfitError
from deepfit.io import FileLock, atomic_write_text
from deepfit.tuning import budget as _budget
from deepfit.tuning import executors as _executors
from deepfit.tuning import space as _space
from deepfit.tuning import strategies as _strategies
from deepfit.tuning.packed import split_groups
from deepfit.tuning.worker import DEADLINE_REASON, DEFAULT_GROUP_OBJECTIVE, DEFAULT_OBJECTIVE

MAX_ATTEMPTS = 3
HEARTBEAT_S = 30
GRACE_S = 120
TRIALS_FILE = "trials.csv"
BEST_FILE = "best.toml"
DB_FILE = "study.db"
LOCK_FILE = ".tune.lock"
BEST_DIR = "best"
#: ``trials`` of a search limited by its budget alone (``--budget`` without ``--trials``)
UNLIMITED_TRIALS = 1_000_000_000


@dataclass
class Settings:
    """The ``[tune]`` table with the command line's overrides applied."""

    trials: int = 20
    strategy: str = "random"
    metric: str = "dev_loss"
    direction: str = "auto"
    seed: int = 0
    pruning: bool = True
    pruner: str = "median"
    budget: str | float = ""
    rounds: int = 3
    keep: float = 0.25
    pack: int = 1
    cv: int = 1
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def prunes(self) -> bool:
        return self.pruning and self.pruner != "none"

    @property
    def budget_seconds(self) -> float | None:
        """The budget in seconds (None: no limit); refused naming ``tune.budget``."""
        if self.budget in ("", None):
            return None
        from deepfit.tuning.budget import parse_duration

        return parse_duration(self.budget, "tune.budget")

    @property
    def unlimited(self) -> bool:
        return self.trials >= UNLIMITED_TRIALS

    @property
    def minimize(self) -> bool:
        if self.direction == "auto":
            return self.metric == "dev_loss"
        return self.direction == "minimize"

    @classmethod
    def from_config(cls, config: Mapping[str, Any], **overrides: Any) -> Settings:
        table = config.get("tune")
        if not table:
            raise C.ConfigError(
                "the config has no [tune] table: add one with [tune.space.<section>] tables, "
                'e.g. [tune.space.train] lr = "loguniform(1e-4, 1)"'
            )
        values = {k: v for k, v in table.items() if k != "space"}
        budget = overrides.pop("budget", None)
        for k, v in overrides.items():
            if v is not None:
                values[k] = v
        checked = C.validate({"tune": values})["tune"]
        checked.pop("space", None)
        if budget is not None:
            checked["budget"] = budget
        settings = cls(**checked)
        settings.budget_seconds  # noqa: B018 (refuses a malformed budget before any training)
        return settings


def _changed_keys(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """``key (old -> new)`` for each base-config key whose value changed. A key the old study
    does not know (added to deepfit since) counts only when it is not at its default."""
    defaults = dict(C.flatten(C.defaults()))
    changed = []
    for k, v in new.items():
        before = old.get(k, defaults.get(k, v)) if k not in old else old[k]
        if before != v:
            changed.append(f"{k} ({json.dumps(before)} -> {json.dumps(v)})")
    return changed


def default_storage(out: Path) -> str:
    return f"sqlite:///{(out / DB_FILE).resolve()}"


def _is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def _fast_sqlite(engine) -> None:
    """Write-ahead log and ``synchronous = NORMAL``: one sync per checkpoint instead of two
    per commit. A killed process loses nothing committed (only a power cut could lose the last
    commits), which is the durability a study needs."""
    from sqlalchemy import event

    def pragmas(connection, _record) -> None:
        cursor = connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    event.listen(engine, "connect", pragmas)
    engine.dispose()  # connections opened from now on get the pragmas


def _Lock(path: Path, what: str) -> FileLock:
    """An exclusive lock file (released by the kernel if the process dies); a second
    ``deepfit tune`` is refused naming the holder (:class:`deepfit.io.FileLock`)."""
    return FileLock(path, what, "deepfit tune")


# -- the study ------------------------------------------------------------------------------------
def _trial_state():
    from optuna.trial import TrialState

    return TrialState


def counted(t) -> bool:
    """Complete, pruned, or failed on its own (its driver recorded the ``error``)."""
    S = _trial_state()
    return t.state in (S.COMPLETE, S.PRUNED) or (
        t.state == S.FAIL and "error" in t.user_attrs and not t.user_attrs.get("interrupted")
    )


def interrupted(t) -> bool:
    """Failed without counting: its driver stopped, its worker died, or its heartbeat went
    stale (then Optuna failed it)."""
    return t.state == _trial_state().FAIL and not counted(t)


class _Retry:
    """Optuna's retry callback (``RetryHeartbeatStaleTrialCallback``, formerly
    ``RetryFailedTrialCallback``) with deepfit's bookkeeping: the new WAITING trial has the
    same values and the slot and round of the failed one, ``attempt`` one more and
    ``retry_of`` its number. Used as the storage's stale-trial callback and for the trials
    this driver interrupts itself. A trial that failed on its own (its driver died between
    recording the error and telling the study) is counted, not retried."""

    KEEP = ("slot", "round", "lost")

    def __init__(self, echo: Callable[[str], None] = lambda line: None) -> None:
        self.echo = echo
        import optuna

        cls = getattr(optuna.storages, "RetryHeartbeatStaleTrialCallback", None)
        cls = cls or optuna.storages.RetryFailedTrialCallback
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # experimental
            self.optuna = cls(max_retry=None)

    def __call__(self, study, trial) -> None:
        if counted(trial) or "slot" not in trial.user_attrs:
            return
        retry = copy.deepcopy(trial)
        attrs = {k: trial.user_attrs[k] for k in self.KEEP if k in trial.user_attrs}
        attrs["attempt"] = int(trial.user_attrs.get("attempt", 1)) + 1
        attrs["retry_of"] = trial.number
        retry.user_attrs = attrs
        if "interrupted" not in trial.user_attrs:  # failed by Optuna's heartbeat check
            self.echo(f"trial {trial.number}: interrupted (its driver stopped); retrying")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.optuna(study, retry)


class _Heartbeat:
    """Records Optuna heartbeats for this driver's running trials every ``interval`` seconds,
    from a daemon thread (``RDBStorage.record_heartbeat``: the server's clock)."""

    def __init__(self, storage, interval: float) -> None:
        self.storage, self.interval = storage, interval
        self.ids: set[int] = set()
        self.lock = threading.Lock()
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, name="deepfit-heartbeat", daemon=True)
        self.thread.start()

    def add(self, trial_id: int) -> None:
        """Beat once now (a trial with no heartbeat is never found stale), then regularly."""
        self.storage.record_heartbeat(trial_id)
        with self.lock:
            self.ids.add(trial_id)

    def remove(self, trial_id: int) -> None:
        with self.lock:
            self.ids.discard(trial_id)

    def _run(self) -> None:
        while not self.stopped.wait(self.interval):
            with self.lock:
                ids = sorted(self.ids)
            for trial_id in ids:
                with contextlib.suppress(Exception):  # the next beat retries
                    self.storage.record_heartbeat(trial_id)

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join(timeout=10)


class Tuner:
    """One ``deepfit tune``: call :meth:`run`."""

    def __init__(
        self,
        config: Mapping[str, Any],
        out: str | Path,
        *,
        settings: Settings | None = None,
        workers: int | None = None,
        executor: str = "local",
        address: str | None = None,
        storage: str | None = None,
        study: str = "deepfit",
        objective: str = DEFAULT_OBJECTIVE,
        echo: Callable[[str], None] | None = None,
        plots: bool = True,
        callbacks: Sequence[Callable[[Any, Any], None]] = (),
        new_study: bool = False,
        heartbeat_interval: int = HEARTBEAT_S,
        grace_period: int = GRACE_S,
        train_best: bool | None = None,
        first_points: Sequence[Mapping[str, Any]] = (),
        group_objective: str | None = None,
    ) -> None:
        if heartbeat_interval < 1 or grace_period < 1:
            raise DeepfitError(
                "heartbeat_interval and grace_period must be whole seconds >= 1, got "
                f"{heartbeat_interval} and {grace_period}"
            )
        self.config = dict(config)
        self.settings = settings or Settings.from_config(config)
        self.space = _space.parse(config)
        s = self.settings
        self.strategy = _strategies.make(
            s.strategy, self.space, s.trials, s.seed, rounds=s.rounds, keep=s.keep
        )
        self.out = Path(out)
        self.storage_url = storage or default_storage(self.out)
        self.study_name = study
        self.workers, self.executor_kind, self.address = workers, executor, address
        self.objective = objective
        self.pack = int(self.settings.pack)
        if self.pack > 1 and group_objective is None and objective != DEFAULT_OBJECTIVE:
            raise DeepfitError(
                f"tune.pack = {self.pack} trains groups of trials as one network, which the "
                f"objective {objective} cannot do: pass group_objective= or pack 1"
            )
        self.group_objective = group_objective or DEFAULT_GROUP_OBJECTIVE
        self.cv = int(self.settings.cv)
        if self.cv > 1 and self.pack > 1:
            raise C.ConfigError(
                f"config keys 'tune.pack' = {self.pack} and 'tune.cv' = {self.cv} cannot be "
                "combined (a packed group trains one split per trial): set one of them to 1"
            )
        if self.cv > 1 and self.config.get("data", {}).get("dev_path"):
            raise C.ConfigError(
                f"config key 'tune.cv' = {self.cv} draws each fold's dev rows from the "
                "training rows; data.dev_path supplies a dev set: drop one of them"
            )
        self.echo = echo or (lambda line: None)
        self.plots = plots
        self.callbacks = list(callbacks)  # Optuna's callback(study, trial), as trials end
        self.new_study = new_study
        self.first_points = [self.space.restrict(p) for p in first_points]
        for p in self.first_points:
            if not self.space.complete(p):
                raise DeepfitError(f"a first point must set every active key of the space: {p}")
        self.heartbeat_interval, self.grace_period = int(heartbeat_interval), int(grace_period)
        self.running: dict[int, Any] = {}  # trial number -> optuna Trial
        self._trial_ids: dict[int, int] = {}  # trial number -> storage id, of self.running
        self._tasks: dict[int, int] = {}  # trial number -> its task (first member's number)
        self._queue: list[list[dict[str, Any]]] = []  # asked groups waiting for a free slot
        self._beats: _Heartbeat | None = None
        seconds = self.settings.budget_seconds
        self.budget: _budget.Budget | None = None
        if seconds is not None:
            self.budget = _budget.Budget(seconds, f"{socket.gethostname()}:{os.getpid()}")
        self.train_best = (seconds is not None) if train_best is None else bool(train_best)
        self._retry = _Retry(self.echo)
        self.driver = f"{socket.gethostname()}:{os.getpid()}"
        self._best: float | None = None
        self._shown_round = -1

    # -- setup -----------------------------------------------------------------------------
    def _open(self):
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        s = self.settings
        sampler = (
            optuna.samplers.TPESampler(seed=s.seed)
            if s.strategy == "tpe"
            else optuna.samplers.RandomSampler(seed=s.seed)
        )
        pruner = self._pruner()
        sqlite = _is_sqlite(self.storage_url)
        kwargs: dict[str, Any] = {"engine_kwargs": {"connect_args": {"timeout": 60}}}
        if not sqlite:  # several drivers: Optuna's heartbeat, on the server's clock
            accepted = inspect.signature(optuna.storages.RDBStorage).parameters
            callback = (
                "heartbeat_stale_trial_callback"
                if "heartbeat_stale_trial_callback" in accepted
                else "failed_trial_callback"
            )
            kwargs = {
                "heartbeat_interval": self.heartbeat_interval,
                "grace_period": self.grace_period,
                callback: self._retry,
            }
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # heartbeat_interval is experimental
                self.storage = optuna.storages.RDBStorage(self.storage_url, **kwargs)
        except Exception as exc:  # bad URL, missing driver, unreachable server
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise DeepfitError(f"--storage {self.storage_url}: {first}") from None
        if sqlite:
            _fast_sqlite(self.storage.engine)
        direction = "minimize" if s.minimize else "maximize"
        if self.new_study:
            with contextlib.suppress(KeyError):  # no such study yet
                optuna.delete_study(study_name=self.study_name, storage=self.storage)
            for name in (TRIALS_FILE, BEST_FILE):
                with contextlib.suppress(FileNotFoundError):
                    (self.out / name).unlink()
        study = optuna.create_study(
            storage=self.storage,
            study_name=self.study_name,
            direction=direction,
            sampler=sampler,
            pruner=pruner,
            load_if_exists=True,
        )
        identity = {
            "space": self.space.describe(),
            "strategy": s.strategy,
            "metric": s.metric,
            "direction": direction,
            "seed": s.seed,
            "rounds": s.rounds if s.strategy == "coarse-to-fine" else None,
            "keep": s.keep if s.strategy == "coarse-to-fine" else None,
            "base": self._base(),
        }
        if self.cv > 1:  # absent for one dev split, as in studies made before tune.cv
            identity["cv"] = self.cv
        existing = study.user_attrs.get("deepfit")
        if existing is None:
            if study.trials:
                raise DeepfitError(
                    f"study {self.study_name!r} in {self.storage_url} was not made by deepfit "
                    "tune; choose another --study"
                )
            study.set_user_attr("deepfit", identity)
            with warnings.catch_warnings():  # experimental in Optuna; optuna-dashboard shows it
                warnings.simplefilter("ignore")
                study.set_metric_names([s.metric])
        elif "base" not in existing:  # made before the base config was remembered
            study.set_user_attr("deepfit", {**existing, "base": identity["base"]})
            existing = {**existing, "base": identity["base"]}
        if existing is not None and existing != identity:
            differs = [
                f"tune.{k}" for k in identity if k != "base" and existing.get(k) != identity[k]
            ]
            differs += _changed_keys(existing["base"], identity["base"])
            n = len(study.trials)
            raise DeepfitError(
                f"study {self.study_name!r} in {self.storage_url} was started with a different "
                f"{'; '.join(differs)}: its {n} trials would not be comparable with new ones. "
                "Rerun with the same config, pass --new-study to discard them and start again, "
                "or pick another --study / --out"
            )
        self.study = study
        self.study_id = self.storage.get_study_id_from_name(self.study_name)

    def _pruner(self):
        """Optuna's pruner of ``tune.pruner`` (``NopPruner`` when pruning is off)."""
        import optuna

        s = self.settings
        if not s.prunes:
            return optuna.pruners.NopPruner()
        if s.pruner == "median":  # cross-validated: steps are folds, prunable from the first
            warmup = 0 if self.cv > 1 else 2
            return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=warmup)
        if s.pruner == "halving":
            return optuna.pruners.SuccessiveHalvingPruner(
                min_resource=1, reduction_factor=3, min_early_stopping_rate=0
            )
        searched = "train.epochs" in self.space.keys
        epochs = self.config.get("train", {}).get("epochs", 0)
        if self.cv > 1:
            searched, epochs = False, self.cv
        return optuna.pruners.HyperbandPruner(
            min_resource=1,
            max_resource="auto" if searched or not epochs else int(epochs),
            reduction_factor=3,
        )

    def _base(self) -> dict[str, Any]:
        """Every key of the base config that the space does not set (what makes two trials'
        dev metrics comparable: data, split, epochs, model, ...)."""
        searched = set(self.space.keys)
        return {
            k: v
            for k, v in C.flatten(self.config)
            if not k.startswith("tune.") and k != "tune" and k not in searched
        }

    # -- interrupted trials -----------------------------------------------------------------
    def _interrupt(self, t, reason: str, *, lost: bool = False) -> None:
        """Mark ``t`` (RUNNING) failed and interrupted, then enqueue its point again.

        ``lost``: its worker died under it (killed, out of memory), which may happen again
        with the same point: after ``MAX_ATTEMPTS`` such losses the point is given up (and
        counted as failed). A stopped driver is never the point's fault: always retried.
        """
        S = _trial_state()
        losses = int(t.user_attrs.get("lost", 0)) + int(lost)
        retry = losses < MAX_ATTEMPTS
        message = reason if retry else f"{reason}; given up after {losses} lost workers"
        tid = self.storage.get_trial_id_from_study_id_trial_number(self.study_id, t.number)
        try:
            self.storage.set_trial_user_attr(tid, "lost", losses)
            self.storage.set_trial_user_attr(tid, "interrupted", retry)
            self.storage.set_trial_user_attr(tid, "error", message)
            self.storage.set_trial_state_values(tid, S.FAIL)
        except Exception:  # finished meanwhile (another driver): leave it
            return
        self.echo(f"trial {t.number}: interrupted ({reason}); {'retrying' if retry else 'gave up'}")
        if retry:
            self._retry(self.study, self.storage.get_trial(tid))

    def _requeue(self) -> None:
        """Enqueue a retry for every slot whose latest trial was interrupted and that has no
        counted, running or waiting trial. Idempotent, so a driver killed between marking a
        trial and enqueuing its retry loses nothing. Only where this driver is the only one
        (SQLite, locked): with several, each stale trial is retried once by the driver whose
        ``fail_stale_trials`` failed it."""
        S = _trial_state()
        latest: dict[int, Any] = {}
        alive: set[int] = set()
        for t in self.study.get_trials(deepcopy=False):
            slot = t.user_attrs.get("slot")
            if slot is None:
                continue
            if counted(t) or t.state in (S.RUNNING, S.WAITING):
                alive.add(slot)
            elif slot not in latest or t.number > latest[slot].number:
                latest[slot] = t
        for slot, t in sorted(latest.items()):
            if slot not in alive and interrupted(t):
                self._retry(self.study, t)

    def _recover(self, *, all_running: bool) -> None:
        """Find the interrupted trials of earlier or other drivers and retry them.

        ``all_running`` (SQLite, one driver): every RUNNING trial not ours was left by a
        driver that stopped. Otherwise Optuna's ``fail_stale_trials`` fails the RUNNING trials
        whose heartbeat is older than the grace period by the server's clock, and its
        callback retries them; a RUNNING trial with no heartbeat at all (its driver died
        between asking for it and its first beat) gets one now, so that it goes stale after a
        grace period too if nobody beats it.
        """
        import optuna

        S = _trial_state()
        if all_running:
            for t in self.study.get_trials(deepcopy=False, states=(S.RUNNING,)):
                if t.number not in self.running:
                    self._interrupt(t, "the study stopped while it ran")
            self._requeue()
            return
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # experimental
            optuna.storages.fail_stale_trials(self.study)
        others = [
            t
            for t in self.study.get_trials(deepcopy=False, states=(S.RUNNING,))
            if t.number not in self.running
        ]
        if others:
            ids = [
                self.storage.get_trial_id_from_study_id_trial_number(self.study_id, t.number)
                for t in others
            ]
            for trial_id in self._without_heartbeat(ids):
                with contextlib.suppress(Exception):
                    self.storage.record_heartbeat(trial_id)

    def _without_heartbeat(self, trial_ids: list[int]) -> list[int]:
        """The ones of ``trial_ids`` that have no row in Optuna's ``trial_heartbeats``."""
        from sqlalchemy import bindparam, text

        query = text("SELECT trial_id FROM trial_heartbeats WHERE trial_id IN :ids")
        query = query.bindparams(bindparam("ids", expanding=True))
        with self.storage.engine.connect() as connection:
            beating = {row[0] for row in connection.execute(query, {"ids": trial_ids})}
        return [i for i in trial_ids if i not in beating]

    # -- trials -----------------------------------------------------------------------------
    def _finished(self, trials) -> list[_strategies.Finished]:
        S = _trial_state()
        out = []
        for t in trials:
            if "slot" not in t.user_attrs or not counted(t):
                continue
            value = t.value if t.state == S.COMPLETE else None
            out.append(
                _strategies.Finished(
                    t.user_attrs["slot"],
                    t.user_attrs.get("round", 0),
                    _space.from_optuna(self.space, t.params),
                    value,
                )
            )
        return out

    def _free_slots(self) -> int:
        return self.executor.capacity - len(set(self._tasks.values()))

    def _start_batch(self, trials, n: int):
        """Ask for up to ``n`` trials, group them (packs of up to ``self.pack``) and start the
        groups in the free slots, queueing the rest; returns "started", WAIT or None (nothing
        left to propose)."""
        payloads: list[dict[str, Any]] = []
        started, outcome = False, None
        for _ in range(n):
            outcome = self._ask_one(trials)
            if outcome is None or outcome == _strategies.WAIT:
                break
            started = True
            if isinstance(outcome, dict):
                payloads.append(outcome)
            trials = self.study.get_trials(deepcopy=False)
        groups = split_groups(payloads, self.pack) if self.pack > 1 else [[p] for p in payloads]
        self._queue.extend(groups)
        self._submit_queued()
        return "started" if started else outcome

    def _submit_queued(self) -> None:
        """Start the queued groups while a slot is free: one trial alone, several as one
        packed task."""
        while self._queue and self._free_slots() > 0:
            group = self._queue.pop(0)
            numbers = [int(p["number"]) for p in group]
            if self.budget is not None:  # trials stop at the first epoch end past it
                deadline = time.time() + max(self.budget.left(), 0.0)
                for p in group:
                    p["deadline"] = deadline
            for number in numbers:
                self._tasks[number] = numbers[0]
            if len(group) == 1:
                self.executor.submit(numbers[0], group[0])
                continue
            for number in numbers:
                self.running[number].set_user_attr("group", numbers)
            self.executor.submit_group(
                numbers, {"members": group, "objective": self.group_objective}
            )

    def _drop_queued(self, reason: str) -> None:
        """Asked trials still waiting for a slot when the search must end: interrupted (a
        rerun with time left runs their points), never counted."""
        trials = self.study.get_trials(deepcopy=False)
        for group in self._queue:
            for p in group:
                number = int(p["number"])
                self.running.pop(number, None)
                trial_id = self._trial_ids.pop(number, None)
                if self._beats is not None and trial_id is not None:
                    self._beats.remove(trial_id)
                self._interrupt(trials[number], reason)
        self._queue.clear()

    def _ask_one(self, trials):
        """Ask for one trial: its payload (registered as running, not yet submitted), "told"
        (failed at once: an invalid combination), WAIT or None (nothing left to propose)."""
        S = _trial_state()
        waiting = any(t.state == S.WAITING for t in trials)
        if not waiting:
            slot = 1 + max((t.user_attrs.get("slot", -1) for t in trials), default=-1)
            if self.strategy is None:  # tpe: Optuna samples (after the given first points)
                first = self.first_points[slot] if slot < len(self.first_points) else {}
                self.study.enqueue_trial(
                    _space.to_optuna(self.space, first),
                    user_attrs={"slot": slot, "round": 0, "attempt": 1},
                )
            else:
                proposal = self.strategy.propose(
                    slot, self._finished(trials), self.settings.minimize
                )
                if proposal is None or proposal == _strategies.WAIT:
                    return proposal
                self._show_round(proposal.round, trials)
                self.study.enqueue_trial(
                    _space.to_optuna(self.space, proposal.point),
                    user_attrs={"slot": slot, "round": proposal.round, "attempt": 1},
                )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "heartbeat ... supposed to be used with optimize"
            trial = self.study.ask()
            if self._duplicate(trial.number):
                return "told"
            point = _space.suggest(self.space, trial)
        try:
            config = self.space.apply(self.config, point)
        except C.ConfigError as exc:
            trial.set_user_attr("driver", self.driver)
            trial.set_user_attr("error", str(exc))
            self.study.tell(trial, state=S.FAIL)
            self._after(trial.number)
            return "told"
        if config["train"].get("refit"):
            # a trial is scored on dev before any refit: training again on train + dev would
            # change nothing it reports (the winner's run in OUT/best refits as configured)
            config["train"]["refit"] = False
        payload = {
            "number": trial.number,
            "config": config,
            "metric": self.settings.metric,
            "objective": self.objective,
        }
        if self.cv > 1:
            payload["cv"] = self.cv
        trial.set_user_attr("driver", self.driver)
        self.running[trial.number] = trial
        trial_id = self.storage.get_trial_id_from_study_id_trial_number(self.study_id, trial.number)
        self._trial_ids[trial.number] = trial_id
        if self._beats is not None:
            self._beats.add(trial_id)
        return payload

    def _duplicate(self, number: int) -> bool:
        """With several drivers, two may enqueue the same new slot at once: of its first
        attempts the lowest trial number runs; a later one is failed (not counted, not
        retried) as soon as it is asked for, and the driver proposes again."""
        if _is_sqlite(self.storage_url):
            return False
        trials = self.study.get_trials(deepcopy=False)
        mine = trials[number]
        slot = mine.user_attrs.get("slot")
        if slot is None or int(mine.user_attrs.get("attempt", 1)) != 1:
            return False
        first = min(
            t.number
            for t in trials
            if t.user_attrs.get("slot") == slot and int(t.user_attrs.get("attempt", 1)) == 1
        )
        if first == number:
            return False
        tid = self.storage.get_trial_id_from_study_id_trial_number(self.study_id, number)
        self.storage.set_trial_user_attr(tid, "interrupted", True)
        self.storage.set_trial_user_attr(tid, "duplicate_of", first)
        self.storage.set_trial_user_attr(tid, "error", f"slot {slot} is trial {first}'s")
        self.storage.set_trial_state_values(tid, _trial_state().FAIL)
        return True

    def _show_round(self, round_: int, trials) -> None:
        if self.settings.strategy != "coarse-to-fine" or round_ <= self._shown_round:
            return
        self._shown_round = round_
        assert isinstance(self.strategy, _strategies.CoarseToFine)
        box = self.strategy.box(round_, self._finished(trials), self.settings.minimize)
        parts = []
        for k, v in box.to_dict(self.space).items():
            if isinstance(v, list) and len(v) == 2 and all(isinstance(x, float) for x in v):
                parts.append(f"{k} [{v[0]:.4g}, {v[1]:.4g}]")
            else:
                parts.append(f"{k} {v}")
        size = self.strategy.sizes[round_]
        self.echo(
            f"round {round_ + 1}/{len(self.strategy.sizes)} ({size} trials): " + ", ".join(parts)
        )

    def decide(self, number: int, epoch: int, value: float) -> bool:
        """Per-epoch report of trial ``number``: record it; True prunes the trial."""
        trial = self.running.get(number)
        if trial is None:
            return False
        if self.budget is not None:
            self.budget.record()
        if not math.isfinite(value):  # nothing to judge (a cross-validated trial's tick)
            return False
        trial.report(value, epoch)
        return bool(self.settings.prunes and trial.should_prune())

    def _finish(self, number: int, result: Mapping[str, Any]) -> None:
        S = _trial_state()
        trial = self.running.pop(number, None)
        trial_id = self._trial_ids.pop(number, None)
        self._tasks.pop(number, None)
        if self._beats is not None and trial_id is not None:
            self._beats.remove(trial_id)
        if trial is None:
            return
        state = result.get("state")
        if state == "interrupted":
            frozen = self.study.get_trials(deepcopy=False)[number]
            self._interrupt(frozen, result.get("error") or "interrupted", lost=True)
            return
        if result.get("alone") and self.pack > 1:
            self.echo(f"trial {number}: {result['alone']}: trials run one by one from now on")
            self.pack = 1
        for k in ("epochs", "seconds", "best_epoch", "stop_reason", "host", "pack", "folds"):
            if result.get(k) is not None:
                trial.set_user_attr(k, result[k])
        if state == "complete" and int(result.get("folds") or self.cv) < self.cv:
            # cut short by the deadline: its mean of fewer folds competes only if no trial has
            # the mean of all of them
            done = self.study.get_trials(deepcopy=False, states=(S.COMPLETE,))
            if any(int(t.user_attrs.get("folds", self.cv)) >= self.cv for t in done):
                state = "pruned"
        if state == "complete":
            self.study.tell(trial, float(result["value"]))
        elif state == "pruned":
            self.study.tell(trial, state=S.PRUNED)
        else:
            trial.set_user_attr("error", result.get("error") or "failed")
            self.study.tell(trial, state=S.FAIL)
        self._after(number, result)

    def _after(self, number: int, result: Mapping[str, Any] | None = None) -> None:
        """A trial ended: rewrite trials.csv (and best.toml on a new best), print a row."""
        if self.budget is not None:
            self.budget.record(force=True)
        trials = self.study.get_trials(deepcopy=False)
        write_trials_csv(self.out / TRIALS_FILE, trials, self.space, self.settings.metric)
        t = trials[number]
        S = _trial_state()
        best_changed = False
        if t.state == S.COMPLETE and t.value is not None:
            better = self._best is None or (
                t.value < self._best if self.settings.minimize else t.value > self._best
            )
            if better:
                self._best = t.value
                best_changed = True
                self._write_best(t)
        n_counted = sum(counted(x) for x in trials)
        point = _space.from_optuna(self.space, t.params)
        value = "" if t.value is None else f"{t.value:.4f}"
        extra = ""
        if t.state == S.FAIL:
            extra = f"  ({t.user_attrs.get('error', '')})"
        rnd = ""
        if self.settings.strategy == "coarse-to-fine":
            rnd = f" r{t.user_attrs.get('round', 0) + 1}"
        epochs = t.user_attrs.get("epochs", "")
        seconds = t.user_attrs.get("seconds")
        progress = f"{n_counted:>4}"
        if not self.settings.unlimited:
            progress += f"/{self.settings.trials}"
        if self.budget is not None:
            progress += f" ({_budget.format_duration(max(self.budget.left(), 0.0))} left)"
        self.echo(
            f"{progress}{rnd} trial {number:<4} "
            f"{state_name(t):<8} {self.settings.metric} {value:<8} "
            f"{'*' if best_changed else ' '} epochs {epochs!s:<3} "
            f"{'' if seconds is None else f'{seconds:5.1f}s'}  {format_point(point)}{extra}"
        )
        for callback in self.callbacks:
            callback(self.study, t)

    def _write_best(self, t) -> None:
        point = _space.from_optuna(self.space, t.params)
        config = self.space.apply(self.config, point)
        header = (
            f"# best of study {self.study_name!r}: trial {t.number}, "
            f"{self.settings.metric} = {t.value:.6g}\n"
            f"# {format_point(point)}\n# deepfit train {self.out / BEST_FILE}\n"
        )
        atomic_write_text(self.out / BEST_FILE, header + C.dumps(config))

    # -- the loop --------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        S = _trial_state()
        self.out.mkdir(parents=True, exist_ok=True)
        locks = [_Lock(self.out / LOCK_FILE, f"output directory {self.out}")]
        try:
            sqlite = _is_sqlite(self.storage_url)
            if sqlite:
                db = self.storage_url.split("///", 1)[-1]
                if db and db != ":memory:" and Path(db).resolve().parent != self.out.resolve():
                    locks.append(_Lock(Path(db + ".lock"), f"study database {db}"))
            self._open()
            if self.budget is not None:
                self.budget.key = f"{_budget.PREFIX}{self.driver}@{time.time():.3f}"
                self.budget.open(self.study)
            if not sqlite:
                self._beats = _Heartbeat(self.storage, self.heartbeat_interval)
            self._recover(all_running=sqlite)
            trials = self.study.get_trials(deepcopy=False)
            done = sum(counted(t) for t in trials)
            completed = [t for t in trials if t.state == S.COMPLETE and t.value is not None]
            if completed:
                best = (min if self.settings.minimize else max)(completed, key=lambda t: t.value)
                self._best = best.value
            s = self.settings
            self.executor = _executors.make(
                self.executor_kind, self.workers, self.decide, self.address
            )
            budget = ""
            if self.budget is not None:
                b = self.budget
                budget = f", budget {_budget.format_duration(b.seconds)}" + (
                    f" ({_budget.format_duration(b.before)} spent before)" if b.before else ""
                )
            self.echo(
                f"study {self.study_name!r} ({self.storage_url}): {s.strategy}, "
                + ("trials until the budget is spent" if s.unlimited else f"{s.trials} trials")
                + f", {s.metric} ({'minimize' if s.minimize else 'maximize'}), "
                f"{self.executor.capacity} at a time"
                + (f", packs of up to {self.pack} trials" if self.pack > 1 else "")
                + (f", {s.pruner} pruning" if s.prunes else "")
                + budget
                + (f"; {done} already counted" if done else "")
            )
            try:
                self._loop(sqlite)
            except BaseException:
                for number in list(self.running):
                    with contextlib.suppress(Exception):
                        frozen = self.study.get_trials(deepcopy=False)[number]
                        self._interrupt(frozen, "the study was stopped")
                self.running.clear()
                self._tasks.clear()
                self._queue.clear()
                with contextlib.suppress(Exception):
                    trials = self.study.get_trials(deepcopy=False)
                    write_trials_csv(self.out / TRIALS_FILE, trials, self.space, s.metric)
                raise
            finally:
                self.executor.close()
            return self._wrap_up()
        finally:
            if self._beats is not None:
                self._beats.stop()
                self._beats = None
            for lock in locks:
                lock.release()

    def _loop(self, sqlite: bool) -> None:
        S = _trial_state()
        target = self.settings.trials
        exhausted = False
        last_recover = time.monotonic()
        told = False
        while True:
            trials = self.study.get_trials(deepcopy=False)
            n_counted = sum(counted(t) for t in trials)
            n_running = sum(t.state == S.RUNNING for t in trials)
            waiting = False
            out_of_time = self.budget is not None and self.budget.left() <= 0
            if self.budget is not None:
                self.budget.record()
            if out_of_time and not told:
                told = True
                self.echo(
                    f"the budget ({_budget.format_duration(self.budget.seconds)}) is spent: "
                    + (
                        f"waiting for {len(self.running)} running trial(s)"
                        if self.running
                        else "no new trial"
                    )
                )
            if out_of_time and self._queue:
                self._drop_queued("the budget ran out before it started")
            self._submit_queued()
            while (
                not exhausted
                and not out_of_time
                and not self._queue
                and self._free_slots() > 0
                and n_counted + n_running < target
            ):
                outcome = self._start_batch(trials, min(self.pack, target - n_counted - n_running))
                if outcome is None:
                    exhausted = True
                    if n_counted + n_running < target:
                        self.echo(
                            f"the {self.settings.strategy} has no more points "
                            f"({n_counted + n_running} of {target})"
                        )
                    break
                if outcome == _strategies.WAIT:
                    waiting = True
                    break
                trials = self.study.get_trials(deepcopy=False)
                n_counted = sum(counted(t) for t in trials)
                n_running = sum(t.state == S.RUNNING for t in trials)
            if not self.running:
                if n_counted >= target or exhausted or out_of_time:
                    return
                if n_running == 0 and not any(t.state == S.WAITING for t in trials):
                    if waiting:
                        raise DeepfitError("internal: a coarse-to-fine round cannot start")
                    continue
                # trials of other drivers are running: wait for them (or for them to go stale)
                time.sleep(min(1.0, self.heartbeat_interval))
            else:
                for number, result in self.executor.poll(timeout=1.0):
                    self._finish(number, result)
            if not sqlite and time.monotonic() - last_recover >= self.heartbeat_interval:
                last_recover = time.monotonic()
                self._recover(all_running=False)

    def _wrap_up(self) -> dict[str, Any]:
        S = _trial_state()
        trials = self.study.get_trials(deepcopy=False)
        write_trials_csv(self.out / TRIALS_FILE, trials, self.space, self.settings.metric)
        states = {st: sum(t.state == st for t in trials) for st in (S.COMPLETE, S.PRUNED, S.FAIL)}
        n_interrupted = sum(interrupted(t) for t in trials)
        files = [TRIALS_FILE]
        summary: dict[str, Any] = {
            "study": self.study_name,
            "storage": self.storage_url,
            "strategy": self.settings.strategy,
            "metric": self.settings.metric,
            "direction": "minimize" if self.settings.minimize else "maximize",
            "counted": sum(counted(t) for t in trials),
            "complete": states[S.COMPLETE],
            "pruned": states[S.PRUNED],
            "failed": states[S.FAIL] - n_interrupted,
            "interrupted": n_interrupted,
            "best": None,
        }
        completed = [t for t in trials if t.state == S.COMPLETE and t.value is not None]
        if completed:
            best = (min if self.settings.minimize else max)(completed, key=lambda t: t.value)
            self._write_best(best)
            files.append(BEST_FILE)
            summary["best"] = {
                "number": best.number,
                "value": best.value,
                "params": _space.from_optuna(self.space, best.params),
                "epochs": best.user_attrs.get("epochs"),
                "best_epoch": best.user_attrs.get("best_epoch"),
                "stop_reason": best.user_attrs.get("stop_reason"),
            }
            if self.cv > 1:
                summary["best"]["folds"] = best.user_attrs.get("folds")
        if self.budget is not None:
            self.budget.record(force=True)
            summary["budget"] = {
                "seconds": self.budget.seconds,
                "spent": round(self.budget.spent(), 3),
                "this_run": round(self.budget.elapsed(), 3),
            }
        from deepfit.tuning import importance

        if self.plots:
            from deepfit.tuning import plots

            files += plots.write_all(self.out, trials, self.space, self.settings)
        files += importance.write(
            self.out, self.study, self.space, self.settings.metric, figure=self.plots
        )
        summary["best_run"] = None
        if self.train_best and summary["best"] is not None:
            summary["best_run"] = self._train_best(summary["best"])
            files.append(BEST_DIR + "/")
        summary["files"] = files
        summary["out"] = str(self.out)
        return summary

    def _train_best(self, best: Mapping[str, Any]) -> dict[str, Any]:
        """Train the best configuration again into ``OUT/best`` (a normal run directory: with
        ``train.refit = true`` it retrains on train + dev after early stopping)."""
        from deepfit import experiment

        config = self.space.apply(self.config, best["params"])
        if self.cv > 1 and config["train"].get("refit") and best.get("best_epoch"):
            # cross-validated: the refit on train + dev trains for the folds' mean best epoch
            # (early stopping on the one dev split would pick its own)
            config["train"]["epochs"] = int(best["best_epoch"])
            config["train"]["early_stopping"]["enabled"] = False
        elif str(best.get("stop_reason") or "").startswith(DEADLINE_REASON) and best.get("epochs"):
            # the winner was stopped by the search's deadline: its run trains as long again
            config["train"]["epochs"] = int(best["epochs"])
        run_dir = self.out / BEST_DIR
        self.echo(f"training the best configuration (trial {best['number']}) into {run_dir}")
        result = experiment.run(config, run_dir, overwrite=True, progress=False)
        return {
            "out": str(run_dir),
            "trial": best["number"],
            "epochs": result.get("epochs_run"),
            "dev": result.get("dev"),
            "test": result.get("test"),
        }


# -- outputs ---------------------------------------------------------------------------------
def state_name(t) -> str:
    """complete, pruned, failed, interrupted (failed, retried), running or waiting."""
    name = t.state.name.lower()
    if name == "fail":
        return "interrupted" if interrupted(t) else "failed"
    return name


def format_point(point: Mapping[str, Any]) -> str:
    def fmt(v: Any) -> str:
        return f"{v:.4g}" if isinstance(v, float) else json.dumps(v)

    return " ".join(f"{k}={fmt(v)}" for k, v in point.items())


def trial_rows(trials, space: _space.Space, metric: str) -> list[dict[str, Any]]:
    S = _trial_state()
    rows = []
    for t in sorted(trials, key=lambda t: t.number):
        if t.state == S.WAITING:
            continue
        complete = _space.complete_params(space, t.params)
        point = _space.from_optuna(space, t.params) if complete else {}
        state = state_name(t)
        row: dict[str, Any] = {
            "number": t.number,
            "state": state,
            "round": t.user_attrs.get("round", 0) + 1,
            "attempt": t.user_attrs.get("attempt", 1),
        }
        for key in space.keys:
            row[key] = point.get(key, "")
        row[metric] = "" if t.value is None else t.value
        row["epochs"] = t.user_attrs.get("epochs", "")
        seconds = t.user_attrs.get("seconds")
        row["seconds"] = "" if seconds is None else round(seconds, 3)
        row["error"] = t.user_attrs.get("error", "") if t.state == S.FAIL else ""
        rows.append(row)
    return rows


def write_trials_csv(path: Path, trials, space: _space.Space, metric: str) -> Path:
    """One row per trial (number, state, round, attempt, the values, the metric, epochs,
    seconds, error), written atomically."""
    rows = trial_rows(trials, space, metric)
    columns = [
        "number",
        "state",
        "round",
        "attempt",
        *space.keys,
        metric,
        "epochs",
        "seconds",
        "error",
    ]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: json.dumps(v) if isinstance(v, list) else v for k, v in row.items()})
    return atomic_write_text(path, buffer.getvalue())


# -- public entry points -------------------------------------------------------------------------
def tune(
    config: Mapping[str, Any],
    out: str | Path,
    *,
    trials: int | None = None,
    strategy: str | None = None,
    pruning: bool | None = None,
    pruner: str | None = None,
    budget: str | float | None = None,
    pack: int | None = None,
    train_best: bool | None = None,
    first_points: Sequence[Mapping[str, Any]] = (),
    workers: int | None = None,
    executor: str = "local",
    address: str | None = None,
    storage: str | None = None,
    study: str = "deepfit",
    objective: str = DEFAULT_OBJECTIVE,
    group_objective: str | None = None,
    echo: Callable[[str], None] | None = None,
    plots: bool = True,
    callbacks: Sequence[Callable[[Any, Any], None]] = (),
    new_study: bool = False,
    heartbeat_interval: int = HEARTBEAT_S,
    grace_period: int = GRACE_S,
) -> dict[str, Any]:
    """Run (or resume) the search of ``config["tune"]``; returns a summary (best trial,
    counts, files written). See :class:`Tuner`.

    ``new_study`` discards a study of the same name (its trials, ``trials.csv`` and
    ``best.toml``) and starts again; without it a study started with other settings or another
    base config is refused, naming what changed. ``heartbeat_interval`` and ``grace_period``
    (seconds; Optuna's ``RDBStorage`` arguments) apply to a shared database: a trial whose
    driver has not beaten for ``grace_period`` seconds, by the server's clock, is retried.

    ``pruner`` overrides ``tune.pruner``; ``budget`` (``"5m"``, or seconds) overrides
    ``tune.budget``: trials start only while time is left, counted across reruns (see
    :mod:`deepfit.tuning.budget`). ``train_best`` trains the best configuration again into
    ``OUT/best`` after the search (default: when there is a budget). ``first_points`` (tpe):
    points tried first, in slot order, before TPE samples (Optuna's ``enqueue_trial``), e.g.
    the defaults, so the search never ends below them on the dev set.

    ``pack`` overrides ``tune.pack``: up to ``pack`` trials that share an architecture and a
    batch size train as one packed network, one task of the executor (see :class:`Tuner`);
    ``group_objective`` is the dotted name of the function that trains such a group
    (``deepfit.tuning.worker:train_group``; needed with ``pack > 1`` and a custom
    ``objective``)."""
    settings = Settings.from_config(
        config,
        trials=trials,
        strategy=strategy,
        pruning=pruning,
        pruner=pruner,
        budget=budget,
        pack=pack,
    )
    if workers is not None and workers < 1:
        raise DeepfitError(f"--workers must be at least 1, got {workers}")
    return Tuner(
        config,
        out,
        settings=settings,
        workers=workers,
        executor=executor,
        address=address,
        storage=storage,
        study=study,
        objective=objective,
        group_objective=group_objective,
        echo=echo,
        plots=plots,
        callbacks=callbacks,
        new_study=new_study,
        heartbeat_interval=heartbeat_interval,
        grace_period=grace_period,
        train_best=train_best,
        first_points=first_points,
    ).run()


def preview(
    config: Mapping[str, Any], n: int, *, strategy: str | None = None
) -> list[dict[str, Any]]:
    """``n`` points the search would try first, without training (``--dry-run``). For
    coarse-to-fine these are round-1 points (later rounds depend on results); for tpe, random
    points (TPE starts with random trials)."""
    settings = Settings.from_config(config, strategy=strategy)
    space = _space.parse(config)
    name = "random" if settings.strategy == "tpe" else settings.strategy
    chosen = _strategies.make(
        name, space, settings.trials, settings.seed, rounds=settings.rounds, keep=settings.keep
    )
    assert chosen is not None
    if isinstance(chosen, _strategies.CoarseToFine):
        return [space.sample(_strategies._rng(settings.seed, slot)) for slot in range(n)]
    return chosen.preview(n)

"""Where trials run: in the driver, in worker processes on this machine, or as Ray tasks.

Every executor has the same small interface, used only by the driver:

- ``capacity``: how many tasks may run at once;
- ``submit(number, payload)``: start a trial (``payload`` is a plain dict, see
  :mod:`deepfit.tuning.worker`);
- ``submit_group(numbers, payload)``: start a packed group of trials as one task, in one slot
  (``payload`` as :func:`deepfit.tuning.worker.run_group` takes it);
- ``poll(timeout)``: the ``(number, result)`` pairs of the trials that ended (plain dicts), a
  group's members together; meanwhile it answers the trials' per-epoch reports by calling the
  driver's ``decide(number, epoch, value) -> prune?`` (a group's members by their own numbers);
- ``close()``.

Pruning is synchronous: after each epoch a trial sends its dev metric and waits for the
driver's answer (a few milliseconds), so the decisions, taken in the driver with Optuna's
pruner, are the same whatever runs the trial. Workers never open the study's storage.

A worker process that dies (killed, out of memory) ends its trial, or every trial of its
group, with ``state = "interrupted"``; the driver retries such trials. Worker processes die
with the driver (Linux ``PR_SET_PDEATHSIG``, and a parent check elsewhere).
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import signal
import time
from collections.abc import Callable
from typing import Any

from deepfit.errors import DeepfitError
from deepfit.tuning.worker import run_group, run_trial

Decide = Callable[[int, int, float], bool]


def run_task(
    numbers: list[int], payload: dict[str, Any], group: bool, decide: Decide
) -> list[dict[str, Any]]:
    """One task, wherever it runs: a trial (one result) or a packed group (one per member)."""
    if group:
        return run_group(payload, decide)
    number = numbers[0]
    return [run_trial(payload, lambda e, v: decide(number, e, v))]


def _interrupted(numbers: list[int], error: str) -> list[tuple[int, dict[str, Any]]]:
    result = {"state": "interrupted", "value": None, "epochs": 0, "seconds": 0.0, "error": error}
    return [(number, dict(result)) for number in numbers]


class InlineExecutor:
    """One task at a time, in the driver's own process (``--workers 1``)."""

    def __init__(self, decide: Decide) -> None:
        self.decide = decide
        self.capacity = 1
        self._pending: list[tuple[list[int], dict[str, Any], bool]] = []

    def submit(self, number: int, payload: dict[str, Any]) -> None:
        self._pending.append(([number], payload, False))

    def submit_group(self, numbers: list[int], payload: dict[str, Any]) -> None:
        self._pending.append((list(numbers), payload, True))

    def poll(self, timeout: float) -> list[tuple[int, dict[str, Any]]]:
        if not self._pending:
            time.sleep(min(timeout, 0.05))
            return []
        numbers, payload, group = self._pending.pop(0)
        return list(zip(numbers, run_task(numbers, payload, group, self.decide), strict=True))

    def close(self) -> None:
        self._pending.clear()


# -- worker processes ---------------------------------------------------------------------------
def _die_with_parent() -> None:
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _get(inbox, parent: int):
    while True:
        try:
            return inbox.get(timeout=1.0)
        except queue.Empty:
            if os.getppid() != parent:
                return None


def _worker_main(index: int, inbox, outbox, parent: int) -> None:
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the driver's to handle
    if os.getppid() != parent:
        return
    while True:
        message = _get(inbox, parent)
        if message is None or message[0] == "stop":
            return
        _, numbers, payload, group = message

        def report(number: int, epoch: int, value: float) -> bool:
            outbox.put(("epoch", index, number, epoch, value))
            while True:
                reply = _get(inbox, parent)
                if reply is None:
                    os._exit(0)
                if reply[0] == "verdict" and reply[1] == number:
                    return bool(reply[2])

        outbox.put(("done", index, numbers, run_task(numbers, payload, group, report)))


class ProcessExecutor:
    """``workers`` spawned processes on this machine, each running one task (a trial or a
    packed group) at a time.

    The processes start once and keep the prepared data between trials; BLAS runs one thread
    per process so ``workers`` processes use ``workers`` cores.
    """

    THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")

    def __init__(self, workers: int, decide: Decide) -> None:
        import multiprocessing

        self.decide = decide
        self.capacity = workers
        self._ctx = multiprocessing.get_context("spawn")
        self._outbox = self._ctx.Queue()
        self._inboxes: list[Any] = [None] * workers
        self._procs: list[Any] = [None] * workers
        self._busy: dict[int, list[int]] = {}  # worker index -> its task's trial numbers
        for i in range(workers):
            self._start(i)

    def _start(self, i: int) -> None:
        saved = {k: os.environ.get(k) for k in self.THREAD_VARS}
        os.environ.update({k: "1" for k in self.THREAD_VARS})
        try:
            self._inboxes[i] = self._ctx.Queue()
            self._procs[i] = self._ctx.Process(
                target=_worker_main,
                args=(i, self._inboxes[i], self._outbox, os.getpid()),
                daemon=True,
                name=f"deepfit-tune-worker-{i}",
            )
            self._procs[i].start()
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v

    def submit(self, number: int, payload: dict[str, Any]) -> None:
        self._send([number], payload, False)

    def submit_group(self, numbers: list[int], payload: dict[str, Any]) -> None:
        self._send(list(numbers), payload, True)

    def _send(self, numbers: list[int], payload: dict[str, Any], group: bool) -> None:
        free = [i for i in range(self.capacity) if i not in self._busy]
        if not free:
            raise DeepfitError("internal: no free worker process")
        i = free[0]
        self._busy[i] = numbers
        self._inboxes[i].put(("run", numbers, payload, group))

    def poll(self, timeout: float) -> list[tuple[int, dict[str, Any]]]:
        done: list[tuple[int, dict[str, Any]]] = []
        deadline = time.monotonic() + timeout
        while True:
            wait = 0.0 if done else max(0.0, min(deadline - time.monotonic(), 0.5))
            try:
                message = self._outbox.get(timeout=wait) if wait > 0 else self._outbox.get_nowait()
            except queue.Empty:
                self._reap(done)
                if done or time.monotonic() >= deadline:
                    return done
                continue
            if message[0] == "epoch":
                _, i, number, epoch, value = message
                self._inboxes[i].put(("verdict", number, self.decide(number, epoch, value)))
            elif message[0] == "done":
                _, i, numbers, results = message
                if self._busy.get(i) == numbers:
                    del self._busy[i]
                    done.extend(zip(numbers, results, strict=True))

    def _reap(self, done: list[tuple[int, dict[str, Any]]]) -> None:
        """Trials whose worker process died (a group's members all) end as interrupted; the
        worker is replaced."""
        for i, proc in enumerate(self._procs):
            if proc is not None and not proc.is_alive():
                numbers = self._busy.pop(i, None)
                if numbers is not None:
                    done.extend(
                        _interrupted(numbers, f"worker process died (exit code {proc.exitcode})")
                    )
                self._start(i)

    def close(self) -> None:
        for i, proc in enumerate(self._procs):
            if proc is not None and proc.is_alive():
                with contextlib.suppress(Exception):
                    self._inboxes[i].put(("stop",))
        for proc in self._procs:
            if proc is None:
                continue
            if proc.is_alive() and self._busy:
                proc.terminate()
            proc.join(timeout=5)
            if proc.is_alive():
                proc.kill()
                proc.join(timeout=5)
        self._busy.clear()


# -- Ray ----------------------------------------------------------------------------------------
_RAY_PARTS: dict[str, Any] = {}


def _ray_parts():
    """The Ray task and the small actor that carries per-epoch reports and verdicts (defined
    on first use, so ``import deepfit.tuning`` never imports Ray)."""
    if _RAY_PARTS:
        return _RAY_PARTS["task"], _RAY_PARTS["board"]
    import ray

    @ray.remote(num_cpus=0)
    class Board:
        def __init__(self) -> None:
            self.reports: list[tuple[int, int, float]] = []
            self.verdicts: dict[tuple[int, int], bool] = {}

        def report(self, number: int, epoch: int, value: float) -> None:
            self.reports.append((number, epoch, value))

        def drain(self) -> list[tuple[int, int, float]]:
            reports, self.reports = self.reports, []
            return reports

        def decide(self, number: int, epoch: int, verdict: bool) -> None:
            self.verdicts[(number, epoch)] = verdict

        def verdict(self, number: int, epoch: int) -> bool | None:
            return self.verdicts.pop((number, epoch), None)

    @ray.remote(num_cpus=1, max_retries=0)
    def trial_task(
        numbers: list[int], payload: dict[str, Any], group: bool, board
    ) -> list[dict[str, Any]]:
        def report(number: int, epoch: int, value: float) -> bool:
            ray.get(board.report.remote(number, epoch, value))
            while True:
                verdict = ray.get(board.verdict.remote(number, epoch))
                if verdict is not None:
                    return verdict
                time.sleep(0.01)

        return run_task(numbers, payload, group, report)

    _RAY_PARTS.update(task=trial_task, board=Board)
    return trial_task, Board


class RayExecutor:
    """Trials, and packed groups, as Ray tasks (one CPU each) on an existing cluster
    (``address``: ``"auto"`` on a cluster node, or ``"ray://head:10001"``) or, without one, on
    a local Ray started here with ``workers`` CPUs. Every node needs deepfit installed, and the
    data files (if any) at the same paths."""

    def __init__(self, workers: int | None, decide: Decide, address: str | None = None) -> None:
        try:
            import ray
        except ImportError:
            raise DeepfitError("--executor ray needs Ray: pip install 'deepfit[ray]'") from None
        self.ray = ray
        self.decide = decide
        self._started = False
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {
                "include_dashboard": False,
                "log_to_driver": False,
                "logging_level": logging.WARNING,
            }
            if address:
                kwargs["address"] = address
            else:
                kwargs["num_cpus"] = workers or os.cpu_count() or 1
            try:
                ray.init(**kwargs)
            except ConnectionError as exc:
                raise DeepfitError(f"cannot reach the Ray cluster at {address}: {exc}") from None
            self._started = True
        cpus = int(ray.cluster_resources().get("CPU", 1))
        self.capacity = workers or max(cpus, 1)
        task, board = _ray_parts()
        self._task = task
        self._board = board.remote()
        self._refs: dict[Any, list[int]] = {}

    def submit(self, number: int, payload: dict[str, Any]) -> None:
        self._refs[self._task.remote([number], payload, False, self._board)] = [number]

    def submit_group(self, numbers: list[int], payload: dict[str, Any]) -> None:
        numbers = list(numbers)
        self._refs[self._task.remote(numbers, payload, True, self._board)] = numbers

    def _answer_reports(self) -> None:
        for number, epoch, value in self.ray.get(self._board.drain.remote()):
            self._board.decide.remote(number, epoch, self.decide(number, epoch, value))

    def poll(self, timeout: float) -> list[tuple[int, dict[str, Any]]]:
        ray = self.ray
        deadline = time.monotonic() + timeout
        while True:
            self._answer_reports()
            if self._refs:
                ready, _ = ray.wait(list(self._refs), num_returns=len(self._refs), timeout=0.05)
            else:
                ready = []
                time.sleep(0.05)
            if ready:
                done = []
                for ref in ready:
                    numbers = self._refs.pop(ref)
                    try:
                        done.extend(zip(numbers, ray.get(ref), strict=True))
                    except Exception as exc:  # the task's worker or node died
                        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                        done.extend(_interrupted(numbers, f"Ray task lost: {message}"))
                return done
            if time.monotonic() >= deadline:
                return []

    def close(self) -> None:
        for ref in list(self._refs):
            with contextlib.suppress(Exception):
                self.ray.cancel(ref, force=True)
        self._refs.clear()
        if self._started:
            self.ray.shutdown()


def make(
    kind: str, workers: int | None, decide: Decide, address: str | None = None
) -> InlineExecutor | ProcessExecutor | RayExecutor:
    if kind == "ray":
        return RayExecutor(workers, decide, address)
    if kind != "local":
        raise DeepfitError(f"--executor must be 'local' or 'ray', got {kind!r}")
    if address:
        raise DeepfitError("--address is for --executor ray")
    workers = workers or 1
    return InlineExecutor(decide) if workers == 1 else ProcessExecutor(workers, decide)

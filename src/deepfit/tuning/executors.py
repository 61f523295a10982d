"""Where trials run: in the driver, in worker processes on this machine, or as Ray tasks.

Every executor has the same small interface, used only by the driver:

- ``capacity``: how many trials may run at once;
- ``submit(number, payload)``: start a trial (``payload`` is a plain dict, see
  :mod:`deepfit.tuning.worker`);
- ``poll(timeout)``: the ``(number, result)`` pairs of the trials that ended (plain dicts);
  meanwhile it answers the trials' per-epoch reports by calling the driver's
  ``decide(number, epoch, value) -> prune?``;
- ``close()``.

Pruning is synchronous: after each epoch a trial sends its dev metric and waits for the
driver's answer (a few milliseconds), so the decisions, taken in the driver with Optuna's
pruner, are the same whatever runs the trial. Workers never open the study's storage.

A worker process that dies (killed, out of memory) ends its trial with ``state =
"interrupted"``; the driver retries such trials. Worker processes die with the driver (Linux
``PR_SET_PDEATHSIG``, and a parent check elsewhere).
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
from deepfit.tuning.worker import run_trial

Decide = Callable[[int, int, float], bool]


class InlineExecutor:
    """One trial at a time, in the driver's own process (``--workers 1``)."""

    def __init__(self, decide: Decide) -> None:
        self.decide = decide
        self.capacity = 1
        self._pending: list[tuple[int, dict[str, Any]]] = []

    def submit(self, number: int, payload: dict[str, Any]) -> None:
        self._pending.append((number, payload))

    def poll(self, timeout: float) -> list[tuple[int, dict[str, Any]]]:
        if not self._pending:
            time.sleep(min(timeout, 0.05))
            return []
        number, payload = self._pending.pop(0)
        return [(number, run_trial(payload, lambda e, v: self.decide(number, e, v)))]

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
        _, number, payload = message

        def report(epoch: int, value: float, number: int = number) -> bool:
            outbox.put(("epoch", index, number, epoch, value))
            while True:
                reply = _get(inbox, parent)
                if reply is None:
                    os._exit(0)
                if reply[0] == "verdict" and reply[1] == number:
                    return bool(reply[2])

        outbox.put(("done", index, number, run_trial(payload, report)))


class ProcessExecutor:
    """``workers`` spawned processes on this machine, each running one trial at a time.

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
        self._busy: dict[int, int] = {}  # worker index -> trial number
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
        free = [i for i in range(self.capacity) if i not in self._busy]
        if not free:
            raise DeepfitError("internal: no free worker process")
        i = free[0]
        self._busy[i] = number
        self._inboxes[i].put(("run", number, payload))

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
                _, i, number, result = message
                if self._busy.get(i) == number:
                    del self._busy[i]
                    done.append((number, result))

    def _reap(self, done: list[tuple[int, dict[str, Any]]]) -> None:
        """Trials whose worker process died end as interrupted; the worker is replaced."""
        for i, proc in enumerate(self._procs):
            if proc is not None and not proc.is_alive():
                number = self._busy.pop(i, None)
                if number is not None:
                    done.append(
                        (
                            number,
                            {
                                "state": "interrupted",
                                "value": None,
                                "epochs": 0,
                                "seconds": 0.0,
                                "error": f"worker process died (exit code {proc.exitcode})",
                            },
                        )
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
    def trial_task(number: int, payload: dict[str, Any], board) -> dict[str, Any]:
        def report(epoch: int, value: float) -> bool:
            ray.get(board.report.remote(number, epoch, value))
            while True:
                verdict = ray.get(board.verdict.remote(number, epoch))
                if verdict is not None:
                    return verdict
                time.sleep(0.01)

        return run_trial(payload, report)

    _RAY_PARTS.update(task=trial_task, board=Board)
    return trial_task, Board


class RayExecutor:
    """Trials as Ray tasks (one CPU each) on an existing cluster (``address``: ``"auto"`` on a
    cluster node, or ``"ray://head:10001"``) or, without one, on a local Ray started here with
    ``workers`` CPUs. Every node needs deepfit installed, and the data files (if any) at the
    same paths."""

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
        self._refs: dict[Any, int] = {}

    def submit(self, number: int, payload: dict[str, Any]) -> None:
        self._refs[self._task.remote(number, payload, self._board)] = number

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
                    number = self._refs.pop(ref)
                    try:
                        result = ray.get(ref)
                    except Exception as exc:  # the task's worker or node died
                        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                        result = {
                            "state": "interrupted",
                            "value": None,
                            "epochs": 0,
                            "seconds": 0.0,
                            "error": f"Ray task lost: {message}",
                        }
                    done.append((number, result))
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

"""Two drivers on one study in a real PostgreSQL server on loopback, one killed with SIGKILL
mid-trial: the other retries its trial with the same values once Optuna's heartbeat (on the
server's clock) is older than the grace period, and the study ends with exactly the requested
number of counted trials, each slot once.

The server is a throwaway cluster (``initdb`` / ``pg_ctl`` of Debian's ``postgresql``, run as
the ``postgres`` user when the tests run as root) in a temporary directory. Without the server
binaries or psycopg2 the test is skipped, saying what to install; ``.ci/run`` installs both.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

optuna = pytest.importorskip("optuna")

ROOT = Path(__file__).resolve().parents[2]
TRIALS = 16

CONFIG = f"""
[data]
source = "digits"
[model]
hidden = [16]
[tune]
trials = {TRIALS}
pruning = false
[tune.space.train]
lr = "loguniform(1e-5, 1)"
beta1 = "one_minus_loguniform(0.5, 0.9999)"
"""

DRIVER = """
import sys
from deepfit import config as C
from deepfit.tuning import tune
summary = tune(C.load(sys.argv[1]), sys.argv[2], study="s", workers=1, storage=sys.argv[3],
               objective="tests.tuning.objectives:sleepy", plots=False,
               heartbeat_interval=1, grace_period=3, echo=print)
print("counted", summary["counted"])
"""


def _server_binaries() -> Path | None:
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    if found:
        return Path(found[-1]).parent
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if initdb and pg_ctl and Path(initdb).parent == Path(pg_ctl).parent:
        return Path(initdb).parent
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def postgres_url():
    pytest.importorskip("psycopg2", reason="no psycopg2: pip install 'deepfit[postgres]'")
    bindir = _server_binaries()
    if bindir is None:
        missing = "no PostgreSQL server binaries (initdb, pg_ctl): apt-get install postgresql"
        if os.environ.get("CI"):  # .ci/run installs them: missing there is a failure
            pytest.fail(missing)
        pytest.skip(missing)
    base = Path(tempfile.mkdtemp(prefix="deepfit-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:  # the server refuses to run as root
        import pwd

        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            shutil.rmtree(base)
            pytest.skip("running as root and there is no 'postgres' user to run the server")
        os.chown(base, user.pw_uid, user.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    data, port = base / "data", _free_port()
    pg_ctl = [*as_user, str(bindir / "pg_ctl"), "-D", str(data)]
    try:
        subprocess.run(
            [*as_user, str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "deepfit",
             "-E", "UTF8", "--no-sync"],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        options = f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off"
        subprocess.run(
            [*pg_ctl, "-l", str(base / "server.log"), "-o", options, "-w", "-t", "60", "start"],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
    except subprocess.CalledProcessError as exc:
        log = base / "server.log"
        detail = log.read_text() if log.exists() else ""
        shutil.rmtree(base, ignore_errors=True)
        raise AssertionError(f"could not start PostgreSQL: {exc.stderr}{detail}") from None
    try:
        yield f"postgresql+psycopg2://deepfit@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*pg_ctl, "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


def start(cfg: Path, out: Path, url: str, pids: Path) -> subprocess.Popen:
    env = {
        **os.environ,
        "DEEPFIT_TEST_PIDS": str(pids),
        "DEEPFIT_TEST_EPOCH_S": "0.5",
        "PYTHONPATH": str(ROOT),
    }
    return subprocess.Popen(
        [sys.executable, "-c", DRIVER, str(cfg), str(out), url],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def load(url: str):
    try:
        return optuna.load_study(study_name="s", storage=url).trials
    except KeyError:  # not created yet
        return []


def of(proc: subprocess.Popen, trials, state):
    return [
        t
        for t in trials
        if t.state == state and t.user_attrs.get("driver", "").endswith(f":{proc.pid}")
    ]


@pytest.mark.slow
def test_two_drivers_one_killed_its_trial_is_retried_by_the_other(tmp_path, postgres_url):
    S = optuna.trial.TrialState
    cfg, pids = tmp_path / "cfg.toml", tmp_path / "pids"
    cfg.write_text(CONFIG)
    a = start(cfg, tmp_path / "a", postgres_url, pids)
    b = None
    try:
        deadline = time.monotonic() + 90
        while not of(a, load(postgres_url), S.RUNNING):  # a created the study and runs
            assert a.poll() is None, a.stdout.read()
            assert time.monotonic() < deadline
            time.sleep(0.1)
        b = start(cfg, tmp_path / "b", postgres_url, pids)
        # both run at once; kill a at the start of one of its trials (no epoch reported yet)
        while True:
            assert a.poll() is None and b.poll() is None
            assert time.monotonic() < deadline, "the two drivers never ran together"
            trials = load(postgres_url)
            fresh = [t for t in of(a, trials, S.RUNNING) if not t.intermediate_values]
            if fresh and of(b, trials, S.RUNNING):
                os.kill(a.pid, signal.SIGKILL)
                break
            time.sleep(0.02)
        a.wait()
        killed = of(a, load(postgres_url), S.RUNNING)
        assert killed, "the kill should land during a trial of the killed driver"

        output, _ = b.communicate(timeout=120)
        assert b.returncode == 0, output
        assert f"counted {TRIALS}" in output
        for t in killed:
            assert f"trial {t.number}: interrupted" in output
    finally:
        for proc in (a, b):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()

    trials = load(postgres_url)
    assert not [t for t in trials if t.state in (S.RUNNING, S.WAITING)]
    complete = [t for t in trials if t.state == S.COMPLETE]
    assert len(complete) == TRIALS  # exact: none lost, none counted twice
    assert sorted(t.user_attrs["slot"] for t in complete) == list(range(TRIALS))
    for t in killed:
        failed = trials[t.number]
        assert failed.state == S.FAIL and "error" not in failed.user_attrs  # not counted
        retries = [r for r in trials if r.user_attrs.get("retry_of") == t.number]
        assert len(retries) == 1
        retry = retries[0]
        assert retry.state == S.COMPLETE and retry.params == t.params
        assert retry.user_attrs["attempt"] == 2
        assert retry.user_attrs["slot"] == t.user_attrs["slot"]
        assert retry.user_attrs["driver"].endswith(f":{b.pid}")
    # every other failed trial is a slot two drivers proposed at once (first one ran)
    others = [t for t in trials if t.state == S.FAIL and t.number not in {k.number for k in killed}]
    assert all("duplicate_of" in t.user_attrs for t in others)

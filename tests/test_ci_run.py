""".ci/run fails unless the suite passed and enough tests ran (issue 14): pytest's exit 5 (no
tests collected) and a collection that silently shrank are failures, not successes.

The script runs in a scratch copy of the repository root whose ``python3``, ``pip`` and
``python -m pytest`` are stand-ins that print a chosen pytest summary and exit as told.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _executable(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def _ci(tmp_path: Path, summary: str, status: int) -> subprocess.CompletedProcess:
    repo = tmp_path / "repo"
    (repo / ".ci").mkdir(parents=True)
    shutil.copy(ROOT / ".ci" / "run", repo / ".ci" / "run")
    bin_dir = tmp_path / "bin"
    _executable(bin_dir / "python3", "#!/bin/sh\nexit 0\n")  # "python3 -m venv .venv"
    _executable(repo / ".venv" / "bin" / "pip", "#!/bin/sh\nexit 0\n")
    _executable(
        repo / ".venv" / "bin" / "python",
        f"#!/bin/sh\necho '........'\necho '{summary}'\nexit {status}\n",
    )
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run(
        ["bash", str(repo / ".ci" / "run")], capture_output=True, text=True, env=env, timeout=60
    )


MIN_TESTS = int(re.search(r"^MIN_TESTS=(\d+)$", (ROOT / ".ci" / "run").read_text(), re.M)[1])
ENOUGH = MIN_TESTS + 10


@pytest.mark.parametrize(
    ("summary", "status", "ok", "says"),
    [
        (
            f"{ENOUGH - 2} passed, 7 skipped, 2 xfailed in 301.20s (0:05:01)",
            0,
            True,
            f"{ENOUGH} tests ran",
        ),
        ("no tests ran in 0.01s", 5, False, "pytest exited 5"),
        ("3 passed in 0.10s", 0, False, "only 3 tests ran"),
        (f"12 passed, {ENOUGH} skipped in 1.00s", 0, False, "only 12 tests ran"),
        (f"1 failed, {ENOUGH} passed in 300.00s", 1, False, "pytest exited 1"),
    ],
)
def test_ci_run_fails_unless_enough_tests_passed(tmp_path, summary, status, ok, says):
    done = _ci(tmp_path, summary, status)
    assert (done.returncode == 0) is ok, (done.stdout, done.stderr)
    assert says in done.stdout + done.stderr

"""A write of ``metrics.csv`` that fails (a full disk, a file size limit) names the file."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import deepfit as df


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full (Linux)")
def test_a_full_disk_names_metrics_csv(tmp_path):
    path = tmp_path / "metrics.csv"
    log = df.MetricsLog(path)
    path.symlink_to("/dev/full")  # every write fails with ENOSPC when flushed
    with pytest.raises(OSError) as info:
        log.on_epoch_end(None, 1, {"epoch": 1, "lr": 0.001, "train_loss": 0.5})
    assert info.value.errno == errno.ENOSPC
    assert info.value.filename == str(path)


SCRIPT = """
import resource, signal, sys
import numpy as np
import deepfit as df

signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # write() fails with EFBIG instead
path = sys.argv[1]
X = np.random.default_rng(0).standard_normal((32, 3))
y = np.arange(32) % 2
trainer = df.Trainer(df.mlp(3, [4], 2, rng=0), callbacks=[df.MetricsLog(path)])
resource.setrlimit(resource.RLIMIT_FSIZE, (300, 300))
try:
    trainer.fit(X, y, epochs=50)
except OSError as exc:
    print(exc.errno, exc.filename, sep="\\n")
"""


@pytest.mark.skipif(not hasattr(signal, "SIGXFSZ"), reason="POSIX file size limits")
def test_a_file_size_limit_names_metrics_csv(tmp_path):
    path = tmp_path / "run" / "metrics.csv"
    path.parent.mkdir()
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert done.returncode == 0, done.stderr
    code, filename = done.stdout.split()
    assert int(code) == errno.EFBIG
    assert filename == str(path)
    assert 0 < path.stat().st_size <= 300  # the rows that fitted were kept

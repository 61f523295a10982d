"""A training run for the crash-and-resume test: ``python resume_job.py OUT_DIR KILL_EPOCH``.

With ``KILL_EPOCH >= 0`` the process kills itself with SIGKILL in the middle of that epoch
(0-based), after its fourth mini-batch: no handler runs, nothing is flushed, exactly like
``kill -9``. It always starts with ``resume=True``, so running it again continues the run.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import numpy as np

import deepfit as df


class KillMidEpoch(df.Callback):
    def __init__(self, epoch: int) -> None:
        self.kill_epoch = epoch
        self.epoch = -1

    def on_epoch_begin(self, trainer, epoch):
        self.epoch = epoch

    def on_batch_end(self, trainer, batch, loss):
        if self.epoch == self.kill_epoch and batch == 3:
            os.kill(os.getpid(), signal.SIGKILL)


def main(out: Path, kill_epoch: int) -> None:
    rng = np.random.default_rng(0)
    X = rng.standard_normal((300, 5)).astype(np.float32)
    y = (X[:, 0] + X[:, 1] ** 2 > 1).astype(np.int64) + (X[:, 2] > 1)
    model = df.mlp(5, [16, 16], 3, batchnorm=True, keep_prob=0.8, rng=1)
    trainer = df.Trainer(
        model,
        optimizer=df.Adam(0.01),
        schedule=df.schedules.exponential(0.01, 0.9),
        batch_size=32,
        l2=0.01,
        seed=3,
        augment=lambda xb, g: xb + g.normal(0, 0.05, xb.shape).astype(xb.dtype),
        callbacks=[
            df.EarlyStopping(patience=100),
            df.MetricsLog(out / "metrics.csv"),
            df.Checkpoint(out / "checkpoint.npz"),
            KillMidEpoch(kill_epoch),
        ],
    )
    trainer.fit(X[:240], y[:240], epochs=8, validation_data=(X[240:], y[240:]), resume=True)
    np.savez(out / "final.npz", **model.state_dict())


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]))

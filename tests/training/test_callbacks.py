"""Callbacks: early stopping (patience and Prechelt's criteria), metrics log, progress."""

from __future__ import annotations

import csv
import io
from types import SimpleNamespace

import numpy as np
import pytest

import deepfit as df


class Snapshots(df.Callback):
    """Records the weights at the end of every epoch."""

    order = -1

    def __init__(self):
        self.states = {}

    def on_epoch_end(self, trainer, epoch, logs):
        self.states[logs["epoch"]] = trainer.model.state_dict()


def _noisy_problem(seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((120, 10)).astype(np.float32)
    y = (X[:, 0] + rng.standard_normal(120) > 0).astype(int)  # label noise: it will overfit
    return X[:80], y[:80], X[80:], y[80:]


@pytest.mark.parametrize("fires", [True, False])
def test_early_stopping_restores_the_best_epochs_weights(fires):
    Xtr, ytr, Xd, yd = _noisy_problem()
    model = df.mlp(10, [64, 64], 2, rng=0)
    snaps = Snapshots()
    stopper = df.EarlyStopping(patience=3 if fires else 1000)
    trainer = df.Trainer(model, optimizer=df.Adam(0.01), batch_size=16, callbacks=[stopper, snaps])
    history = trainer.fit(Xtr, ytr, epochs=30, validation_data=(Xd, yd))
    best = int(np.argmin(history["dev_loss"])) + 1
    assert history.best_epoch == stopper.best_epoch == best
    assert best < len(history)  # the last epoch is not the best one: restoring matters
    assert (len(history) < 30) == fires
    for name, value in snaps.states[best].items():
        assert np.array_equal(model.state_dict()[name], value), name
    assert trainer.evaluate(Xd, yd)["loss"] == pytest.approx(min(history["dev_loss"]), rel=1e-6)


def test_an_early_stopping_instance_is_reusable():
    Xtr, ytr, Xd, yd = _noisy_problem()
    stopper = df.EarlyStopping(patience=2)
    lengths = []
    for _ in range(2):
        trainer = df.Trainer(
            df.mlp(10, [64], 2, rng=0), optimizer=df.Adam(0.01), batch_size=16, callbacks=[stopper]
        )
        lengths.append(len(trainer.fit(Xtr, ytr, epochs=40, validation_data=(Xd, yd))))
    assert lengths[0] == lengths[1]


def _drive(stopper, dev, train=None):
    """Feed a sequence of epoch metrics; return the epoch (1-based) at which it stopped."""
    model = df.mlp(2, [2], 2, rng=0)
    fake = SimpleNamespace(model=model, resumed=False, stop_training=False, stop_reason=None)
    stopper.on_train_begin(fake)
    train = train or [1.0] * len(dev)
    for e, (d, t) in enumerate(zip(dev, train, strict=True)):
        stopper.on_epoch_end(fake, e, {"epoch": e + 1, "dev_loss": d, "train_loss": t})
        if fake.stop_training:
            return e + 1, fake.stop_reason
    return None, None


def test_patience_and_min_delta():
    assert _drive(df.EarlyStopping(patience=2), [1.0, 0.9, 0.95, 0.92, 0.5])[0] == 4
    # improvements smaller than min_delta do not count
    stopped, reason = _drive(df.EarlyStopping(patience=2, min_delta=0.1), [1.0, 0.95, 0.92])
    assert stopped == 3 and "no improvement of dev_loss for 2 epochs" in reason


def test_generalization_loss_criterion():
    # GL(t) = 100 (E(t) / E_opt - 1): 1.04 -> 4 (go on), 1.06 -> 6 > 5 (stop)
    stopper = df.EarlyStopping(criterion="GL", alpha=5)
    stopped, reason = _drive(stopper, [1.0, 1.04, 1.06, 0.5])
    assert stopped == 3 and reason.startswith("early stopping (GL 6.00")


def test_progress_quotient_criterion_checks_at_strip_ends():
    # strip k = 2; at t = 2: P = 1000 (sum(1.0, 1.0) / (2 * 1.0) - 1) = 0 -> no check
    # at t = 4: train strip (0.5, 0.49): P = 1000 (0.99 / 0.98 - 1) = 10.2;
    # GL = 100 (1.2 / 1.0 - 1) = 20; PQ = 1.96 > 1.5 -> stop
    stopper = df.EarlyStopping(criterion="PQ", alpha=1.5, strip=2)
    stopped, reason = _drive(stopper, [1.0, 1.1, 1.15, 1.2], [1.0, 1.0, 0.5, 0.49])
    assert stopped == 4 and "PQ 1.96" in reason


def test_up_criterion_counts_successive_rising_strips():
    stopper = df.EarlyStopping(criterion="UP", alpha=2, strip=2)
    dev = [1.0, 0.8, 0.9, 0.85, 0.9, 0.95]  # strip ends: 0.8, 0.85 (up), 0.95 (up)
    assert _drive(stopper, dev)[0] == 6


def test_accuracy_is_maximized_and_bad_settings_refused():
    stopper = df.EarlyStopping(monitor="dev_accuracy", patience=1)
    model = df.mlp(2, [2], 2, rng=0)
    fake = SimpleNamespace(model=model, resumed=False, stop_training=False, stop_reason=None)
    stopper.on_train_begin(fake)
    for e, acc in enumerate([0.5, 0.7, 0.6]):
        stopper.on_epoch_end(fake, e, {"epoch": e + 1, "dev_accuracy": acc})
    assert stopper.best == 0.7 and fake.stop_training
    with pytest.raises(df.DeepfitError, match="needs a metric to minimize"):
        df.EarlyStopping(monitor="dev_accuracy", criterion="GL")
    with pytest.raises(df.DeepfitError, match="criterion 'XY' unknown"):
        df.EarlyStopping(criterion="XY")
    with pytest.raises(df.DeepfitError, match="does not record"):
        df.Trainer(df.mlp(2, [2], 2, rng=0), callbacks=[df.EarlyStopping()]).fit(
            np.ones((4, 2)), [0, 1, 0, 1], epochs=1
        )


def test_metrics_log_has_one_header_and_one_row_per_epoch(tmp_path):
    Xtr, ytr, Xd, yd = _noisy_problem()
    path = tmp_path / "metrics.csv"
    trainer = df.Trainer(df.mlp(10, [8], 2, rng=0), callbacks=[df.MetricsLog(path)])
    trainer.fit(Xtr, ytr, epochs=3, validation_data=(Xd, yd))
    trainer.fit(Xtr, ytr, epochs=2, validation_data=(Xd, yd))  # a new run starts a new file
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert float(rows[-1]["dev_loss"]) == pytest.approx(trainer.history["dev_loss"][-1])
    assert path.read_text().count("epoch,lr") == 1


def test_progress_bar_with_smoothed_loss_only_when_asked_or_on_a_terminal():
    pytest.importorskip("rich")
    X, y = np.ones((64, 2), dtype=np.float32), np.arange(64) % 2
    out = io.StringIO()
    df.Trainer(
        df.mlp(2, [2], 2, rng=0), batch_size=8, callbacks=[df.Progress(out, enabled=True)]
    ).fit(X, y, epochs=2)
    text = out.getvalue()
    assert "8/8" in text and "loss 0." in text  # rich's bar: batches done, smoothed loss
    assert "epoch 2/2  lr 0.001  train_loss" in text  # one summary line per epoch
    assert "stopped: completed all epochs" in text
    quiet = io.StringIO()  # not a terminal
    df.Trainer(df.mlp(2, [2], 2, rng=0), callbacks=[df.Progress(quiet)]).fit(X, y, epochs=1)
    assert quiet.getvalue() == ""


def test_a_disabled_progress_bar_is_never_called_per_batch(monkeypatch):
    calls = []
    monkeypatch.setattr(df.Progress, "on_batch_end", lambda *a: calls.append(1))
    X, y = np.ones((64, 2), dtype=np.float32), np.arange(64) % 2
    progress = df.Progress(io.StringIO())
    df.Trainer(df.mlp(2, [2], 2, rng=0), batch_size=8, callbacks=[progress]).fit(X, y, epochs=2)
    assert calls == [] and not progress.wants_batches()


def test_progress_without_rich_does_nothing(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "rich.progress", None)  # import fails
    out = io.StringIO()
    X, y = np.ones((16, 2), dtype=np.float32), np.arange(16) % 2
    df.Trainer(df.mlp(2, [2], 2, rng=0), callbacks=[df.Progress(out, enabled=True)]).fit(
        X, y, epochs=1
    )
    assert out.getvalue() == ""

"""The training techniques inside the Trainer: example and class weights, gradient clipping,
mixup, ReduceLROnPlateau (and PyTorch's), early stopping's start_from_epoch and baseline,
weight averaging, Lookahead, snapshot ensembles, and bit-identical resume with all of them."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest

import deepfit as df
from deepfit.data.batches import iterate_minibatches
from deepfit.optim import schedules
from deepfit.optim.averaging import update_bn


def _problem(n=96, d=4, k=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)).astype(np.float32)
    y = (X[:, 0] > 0).astype(int) + (X[:, 1] > 0.5).astype(int)
    return X, np.minimum(y, k - 1)


class Spy(df.Callback):
    """Records the weights at every epoch end (runs before the other callbacks)."""

    order = -100

    def __init__(self):
        self.states = {}

    def on_epoch_end(self, trainer, epoch, logs):
        self.states[logs["epoch"]] = trainer.model.state_dict()


class RecordingLoss(df.SoftmaxCrossEntropy):
    def __init__(self):
        super().__init__()
        self.seen = []

    def forward(self, logits, y, weight=None):
        self.seen.append((np.array(y), None if weight is None else np.array(weight)))
        return super().forward(logits, y, weight)


# -- weights ----------------------------------------------------------------------------------


def test_sample_weights_travel_with_their_rows():
    X, y = _problem()
    loss = RecordingLoss()
    w = y + 1.0  # a function of the row's label: any mix-up of rows would show
    df.Trainer(df.mlp(4, [8], 3, rng=0), loss=loss, batch_size=10).fit(
        X, y, epochs=2, sample_weight=w
    )
    training = [(yb, wb) for yb, wb in loss.seen if wb is not None and len(yb) <= 10]
    assert len(training) == 2 * 10 + 2  # and the NaN guard's end-of-epoch probe
    for yb, wb in training:
        np.testing.assert_array_equal(wb, yb + 1.0)
    batches = list(iterate_minibatches(X, y, 32, rng=0, sample_weight=w))
    assert all(len(b) == 3 and np.array_equal(b[2], b[1] + 1.0) for b in batches)


def test_integer_weights_equal_repeated_rows_in_full_batch_training():
    X, y = _problem(n=20)
    counts = np.random.default_rng(1).integers(1, 4, 20)

    def run(Xa, ya, w):
        t = df.Trainer(
            df.mlp(4, [6], 3, rng=0, dtype="float64"),
            optimizer=df.SGD(0.5),
            batch_size=1000,
            l2=0.0,
        )
        history = t.fit(Xa.astype(np.float64), ya, epochs=3, sample_weight=w)
        return t, history

    weighted, hw = run(X, y, counts)
    repeated, hr = run(np.repeat(X, counts, axis=0), np.repeat(y, counts), None)
    for name, value in weighted.model.params.items():
        np.testing.assert_allclose(value, repeated.model.params[name], rtol=1e-10)
    np.testing.assert_allclose(hw["train_loss"], hr["train_loss"], rtol=1e-10)
    np.testing.assert_allclose(hw["train_accuracy"], hr["train_accuracy"], rtol=1e-12)
    ev_w = weighted.evaluate(X, y, sample_weight=counts)
    ev_r = repeated.evaluate(np.repeat(X, counts, axis=0), np.repeat(y, counts))
    assert ev_w["loss"] == pytest.approx(ev_r["loss"], rel=1e-10)
    assert ev_w["accuracy"] == pytest.approx(ev_r["accuracy"], rel=1e-12)


def test_balanced_class_weight_is_sample_weight_of_the_class_weights():
    X, y = _problem(n=40)
    y[:30] = 0  # imbalanced
    c = df.nn.losses.class_weight_vector(y, 3, "balanced")

    def run(**kw):
        t = df.Trainer(
            df.mlp(4, [6], 3, rng=0),
            optimizer=df.Adam(0.01),
            batch_size=8,
            **({"class_weight": kw.pop("class_weight")} if "class_weight" in kw else {}),
        )
        return t.fit(X, y, epochs=2, **kw), t

    (h1, t1), (h2, t2) = run(class_weight="balanced"), run(sample_weight=c[y])
    assert h1["train_loss"] == h2["train_loss"]
    for name, value in t1.model.params.items():
        assert np.array_equal(value, t2.model.params[name])


def test_weighted_validation_data_and_bad_weights():
    X, y = _problem(n=40)
    wd = np.linspace(0.5, 2, 10)
    t = df.Trainer(df.mlp(4, [6], 3, rng=0), batch_size=8)
    history = t.fit(X[:30], y[:30], epochs=1, validation_data=(X[30:], y[30:], wd))
    assert history["dev_loss"][0] == pytest.approx(t.evaluate(X[30:], y[30:], wd)["loss"])
    assert history["dev_loss"][0] != pytest.approx(t.evaluate(X[30:], y[30:])["loss"])
    with pytest.raises(df.DataError, match="sample_weight row 3 is -1.0"):
        t.fit(X[:5], y[:5], epochs=1, sample_weight=[1, 1, 1, -1, 1])
    with pytest.raises(df.DataError, match=r"one value per row \(5\)"):
        t.fit(X[:5], y[:5], epochs=1, sample_weight=[1, 1])
    with pytest.raises(df.DataError, match="weights sum to 0"):
        t.fit(X[:5], y[:5], epochs=1, sample_weight=np.zeros(5))
    with pytest.raises(df.DataError, match="outside the 3 classes"):
        df.Trainer(df.mlp(4, [6], 3, rng=0), class_weight={5: 2.0}).fit(X, y, epochs=1)


# -- clipping, mixup ----------------------------------------------------------------------------


def test_clip_norm_bounds_every_step():
    X, y = _problem(n=32)
    X = X * 50  # large gradients
    model = df.mlp(4, [8], 3, rng=0, dtype="float64")
    before = {k: v.copy() for k, v in model.params.items()}
    t = df.Trainer(model, optimizer=df.SGD(0.1), batch_size=32, clip_norm=0.5)
    t.fit(X.astype(np.float64), y, epochs=1)
    step = math.sqrt(sum(float(((model.params[k] - before[k]) ** 2).sum()) for k in before))
    assert step == pytest.approx(0.1 * 0.5, rel=1e-5)  # the raw gradient is far above 0.5
    with pytest.raises(df.DeepfitError, match="clip_norm must be a finite number > 0"):
        df.Trainer(model, clip_norm=-1.0)


@pytest.mark.parametrize("kind", ["mixup", "cutmix"])
def test_mixup_in_training_gives_soft_targets_and_is_seeded(kind):
    X, y = _problem()
    loss = RecordingLoss()

    def run(loss_obj):
        t = df.Trainer(
            df.mlp(4, [8], 3, rng=0),
            loss=loss_obj,
            batch_size=16,
            seed=3,
            mixup=df.Mixup(0.4, kind=kind),
        )
        return t, t.fit(X, y, epochs=2, validation_data=(X[:20], y[:20]))

    _t1, h1 = run(loss)
    training = [yb for yb, _ in loss.seen if yb.ndim == 2]
    assert len(training) == 2 * 6 + 2  # 6 batches per epoch, and the NaN guard's probe
    assert all(yb.shape[1] == 3 for yb in training)
    assert any(not np.allclose(yb, np.round(yb)) for yb in training)  # mixtures, not one-hot
    assert "train_accuracy" not in h1.columns and "dev_accuracy" in h1.columns
    _t2, h2 = run(df.SoftmaxCrossEntropy())
    assert h1["train_loss"] == h2["train_loss"]


def test_mixup_with_sigmoid_and_regression_outputs():
    X, y = _problem()
    yb = (y > 0).astype(int)
    t = df.Trainer(
        df.mlp(4, [8], 1, rng=0),
        loss="sigmoid_binary_cross_entropy",
        mixup=df.Mixup(0.2),
        batch_size=16,
    )
    assert math.isfinite(t.fit(X, yb, epochs=2)["train_loss"][-1])
    r = df.Trainer(df.mlp(4, [8], 1, rng=0), loss="mse", mixup=df.Mixup(0.2, "cutmix"))
    assert math.isfinite(r.fit(X, X[:, :1] * 2, epochs=2)["train_loss"][-1])


# -- ReduceLROnPlateau --------------------------------------------------------------------------


def _drive_plateau(plateau, metrics, lr0=1.0):
    opt = df.SGD(lr0)
    fake = SimpleNamespace(optimizer=opt, schedule=None, resumed=False)
    plateau.on_train_begin(fake)
    lrs = []
    for e, m in enumerate(metrics):
        plateau.on_epoch_begin(fake, e)
        lrs.append(opt.lr)
        plateau.on_epoch_end(fake, e, {"epoch": e + 1, "lr": opt.lr, "dev_loss": m})
    return lrs


PLATEAU_CASES = [
    dict(mode="min", factor=0.5, patience=2),
    dict(mode="min", factor=0.1, patience=0, cooldown=2, min_lr=0.002),
    dict(mode="min", factor=0.5, patience=1, threshold=0.1, threshold_mode="abs"),
    dict(mode="max", factor=0.3, patience=1, threshold=0.05),
    dict(mode="max", factor=0.5, patience=3, threshold=0.01, threshold_mode="abs", cooldown=1),
]


@pytest.mark.torch
@pytest.mark.parametrize("options", PLATEAU_CASES)
def test_reduce_lr_on_plateau_matches_torch(options):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(len(str(options)))
    metrics = list(np.round(1.0 + np.cumsum(rng.normal(0, 0.05, 40)), 3))
    metrics[10:16] = [metrics[9]] * 6  # a flat stretch
    p = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([p], lr=1.0)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, **options)
    theirs = []
    for m in metrics:
        theirs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step(m)
    ours = _drive_plateau(df.ReduceLROnPlateau("dev_loss", **options), metrics)
    np.testing.assert_allclose(ours, theirs, rtol=1e-12)
    assert min(theirs) < 1.0  # it did reduce


def test_plateau_multiplies_on_top_of_a_schedule_and_records_the_lr():
    X, _y = _problem(n=40)
    noise = np.random.default_rng(0).integers(0, 3, 40)  # nothing to learn: dev stalls
    plateau = df.ReduceLROnPlateau(patience=0, factor=0.5, threshold=0.5)
    sched = schedules.inverse_time(0.01, 1.0)
    t = df.Trainer(
        df.mlp(4, [4], 3, rng=0), optimizer=df.SGD(0.01), schedule=sched, callbacks=[plateau]
    )
    history = t.fit(X, noise, epochs=5, validation_data=(X, noise))
    # threshold 0.5 (rel): after the first epoch (the first best) no epoch counts as better,
    # so with patience 0 each one halves the rate of the next, on top of the schedule
    assert history["lr"] == pytest.approx([sched(e) * 0.5 ** max(e - 1, 0) for e in range(5)])
    assert plateau.reductions == 4


# -- early stopping -----------------------------------------------------------------------------


def _drive_stop(stopper, dev):
    model = df.mlp(2, [2], 2, rng=0)
    fake = SimpleNamespace(model=model, resumed=False, stop_training=False, stop_reason=None)
    stopper.on_train_begin(fake)
    for e, d in enumerate(dev):
        stopper.on_epoch_end(fake, e, {"epoch": e + 1, "dev_loss": d, "train_loss": 1.0})
        if fake.stop_training:
            return e + 1
    return None


def test_start_from_epoch_and_baseline_as_keras():
    # the first two epochs are ignored: no best recorded from them
    stopper = df.EarlyStopping(patience=1, start_from_epoch=2)
    assert _drive_stop(stopper, [0.1, 0.1, 1.0, 0.9, 0.95, 0.97]) == 5
    assert stopper.best == 0.9 and stopper.best_epoch == 4
    # worse than the baseline: the patience runs on through improvements (which never stop
    # the run, as in Keras) and the first epoch without one stops it
    stopper = df.EarlyStopping(patience=2, baseline=0.5)
    assert _drive_stop(stopper, [1.0, 0.9, 0.8, 0.7, 0.6]) is None
    stopper = df.EarlyStopping(patience=2, baseline=0.5)
    assert _drive_stop(stopper, [1.0, 0.9, 0.95, 0.85]) == 3
    assert stopper.best == 0.9  # the best is still tracked (and restored)
    # beating the baseline resets patience as usual
    assert _drive_stop(df.EarlyStopping(patience=2, baseline=0.5), [0.4, 0.3, 0.35, 0.2]) is None
    with pytest.raises(df.DeepfitError, match="baseline applies to criterion 'patience'"):
        df.EarlyStopping(criterion="GL", baseline=1.0)


def test_best_weights_are_restored_when_the_nan_guard_ends_the_run():
    X, y = _problem(n=64)
    spy = Spy()
    stopper = df.EarlyStopping(monitor="train_loss", patience=100)

    class Explode(df.Callback):
        def on_epoch_begin(self, trainer, epoch):
            if epoch == 4:
                trainer.optimizer.lr = 1e30

    t = df.Trainer(
        df.mlp(4, [8], 3, rng=0),
        optimizer=df.SGD(0.1),
        batch_size=16,
        callbacks=[spy, stopper, Explode()],
    )
    with pytest.warns(RuntimeWarning, match="non-finite"):
        history = t.fit(X, y, epochs=10)
    assert len(history) == 4 and "restored" in history.stop_reason
    best = stopper.best_epoch
    for name, value in spy.states[best].items():
        assert np.array_equal(t.model.state_dict()[name], value)


# -- averaging ----------------------------------------------------------------------------------


def test_swa_installs_the_mean_of_the_epoch_end_weights_and_recomputes_bn():
    X, y = _problem()
    spy = Spy()
    averaging = df.WeightAveraging(df.SWA(), start=2)
    model = df.mlp(4, [8], 3, batchnorm=True, rng=0, dtype="float64")
    t = df.Trainer(model, optimizer=df.Adam(0.01), batch_size=16, callbacks=[spy, averaging])
    t.fit(X.astype(np.float64), y, epochs=5)
    assert averaging.average.n == 3
    for name in model.params:
        expected = np.mean([spy.states[e][name] for e in (3, 4, 5)], axis=0)
        np.testing.assert_allclose(model.params[name], expected, rtol=1e-12)
    reference = df.mlp(4, [8], 3, batchnorm=True, rng=0, dtype="float64")
    reference.load_state_dict(model.state_dict())
    update_bn(reference, [X[i : i + 16].astype(np.float64) for i in range(0, 96, 16)])
    for name, value in reference.buffers.items():
        np.testing.assert_allclose(model.buffers[name], value, rtol=1e-12)


def test_ema_per_step_is_the_ewa_of_the_steps_weights():
    X, y = _problem(n=48)
    seen = []

    class StepSpy(df.Callback):
        def on_batch_end(self, trainer, batch, loss):
            seen.append({k: v.copy() for k, v in trainer.model.params.items()})

    model = df.mlp(4, [8], 3, rng=0, dtype="float64")
    averaging = df.WeightAveraging(df.EMA(0.7), every="batch")
    t = df.Trainer(model, optimizer=df.SGD(0.1), batch_size=16, callbacks=[StepSpy(), averaging])
    t.fit(X.astype(np.float64), y, epochs=2)
    assert len(seen) == 6 and averaging.average.n == 6
    expected = seen[0]
    for params in seen[1:]:
        expected = {k: 0.7 * expected[k] + 0.3 * params[k] for k in params}
    for name, value in expected.items():
        np.testing.assert_allclose(model.params[name], value, rtol=1e-12)


# -- snapshots ----------------------------------------------------------------------------------


def test_snapshot_ensemble_keeps_cycle_ends_and_averages_probabilities(tmp_path):
    X, y = _problem()
    spy = Spy()
    snaps = df.SnapshotEnsemble()
    t = df.Trainer(
        df.mlp(4, [8], 3, rng=0),
        optimizer=df.SGD(0.1),
        batch_size=16,
        schedule=schedules.sgdr(0.1, 2),
        callbacks=[spy, snaps],
    )
    t.fit(X, y, epochs=7)
    assert snaps.epochs == [2, 4, 6]
    for state, epoch in zip(snaps.snapshots, snaps.epochs, strict=True):
        for name, value in state.items():
            assert np.array_equal(value, spy.states[epoch][name])
    probe = df.mlp(4, [8], 3, rng=0)
    expected = 0
    for epoch in (2, 4, 6):
        probe.load_state_dict(spy.states[epoch])
        expected = expected + df.nn.losses.softmax(probe.predict(X[:10]).astype(np.float64))
    np.testing.assert_allclose(snaps.predict_proba(X[:10]), expected / 3, rtol=1e-6)
    path = snaps.save(tmp_path / "snapshots.npz")
    again = df.SnapshotEnsemble.load(path)
    np.testing.assert_array_equal(again.predict(X[:10]), snaps.predict(X[:10]))
    with pytest.raises(df.DeepfitError, match="needs a schedule with warm restarts"):
        df.Trainer(df.mlp(4, [8], 3, rng=0), callbacks=[df.SnapshotEnsemble()]).fit(X, y, 1)


# -- resume -------------------------------------------------------------------------------------


def test_every_stateful_technique_resumes_bit_identically(tmp_path):
    X, y = _problem()
    Xd, yd = X[:24], y[:24]

    def trainer(path):
        cbs = [
            df.ReduceLROnPlateau(patience=0, factor=0.5),
            df.WeightAveraging(df.EMA(0.9), every="batch"),
            df.SnapshotEnsemble(),
            df.EarlyStopping(patience=50, start_from_epoch=1),
            df.Checkpoint(path),
        ]
        return df.Trainer(
            df.mlp(4, [8], 3, batchnorm=True, keep_prob=0.8, rng=2),
            optimizer=df.Lookahead(df.Adam(0.01), k=3),
            schedule=schedules.warmup(schedules.sgdr(0.01, 2, 2), 1),
            batch_size=16,
            seed=5,
            clip_norm=1.0,
            mixup=df.Mixup(0.3),
            class_weight="balanced",
            callbacks=cbs,
        )

    straight = trainer(tmp_path / "a.npz")
    straight.fit(X, y, epochs=8, validation_data=(Xd, yd))
    first = trainer(tmp_path / "b.npz")
    first.fit(X, y, epochs=4, validation_data=(Xd, yd))
    second = trainer(tmp_path / "b.npz")
    history = second.fit(X, y, epochs=8, validation_data=(Xd, yd), resume=True)
    assert history["epoch"] == list(range(1, 9))
    assert history["train_loss"] == straight.history["train_loss"]
    assert history["lr"] == straight.history["lr"]
    for name, value in straight.model.state_dict().items():
        assert np.array_equal(second.model.state_dict()[name], value), name
    a, b = (
        next(c for c in t.callbacks if isinstance(c, df.SnapshotEnsemble))
        for t in (straight, second)
    )
    assert a.epochs == b.epochs == [3, 7]  # after 1 warm-up epoch: cycles of 2 and 4 epochs
    for sa, sb in zip(a.snapshots, b.snapshots, strict=True):
        assert all(np.array_equal(sa[k], sb[k]) for k in sa)
    other = df.Trainer(
        df.mlp(4, [8], 3, batchnorm=True, keep_prob=0.8, rng=2),
        optimizer=df.Lookahead(df.Adam(0.01), k=3),
        batch_size=16,
        seed=5,
        callbacks=[df.Checkpoint(tmp_path / "b.npz")],
    )
    with pytest.raises(df.DeepfitError, match="different run"):
        other.fit(X, y, epochs=9, resume=True)


# -- lookahead, label smoothing, staircase in the Trainer ---------------------------------------


def test_lookahead_in_the_trainer_synchronizes_every_k_steps():
    X, y = _problem(n=64)
    opt = df.Lookahead(df.SGD(0.1), k=4, alpha=0.5)
    states = []

    class AtEpochEnd(df.Callback):
        def on_epoch_end(self, trainer, epoch, logs):
            states.append(
                (
                    trainer.optimizer.t,
                    {k: v.copy() for k, v in trainer.optimizer.slow.items()},
                    trainer.model.state_dict(),
                )
            )

    t = df.Trainer(df.mlp(4, [8], 3, rng=0), optimizer=opt, batch_size=16, callbacks=[AtEpochEnd()])
    t.fit(X, y, epochs=3)
    for steps, slow, params in states:  # 4 batches per epoch = k: every epoch ends synced
        assert steps % 4 == 0
        for name, value in slow.items():
            assert np.array_equal(params[name], value), name


def test_label_smoothing_caps_the_confidence():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((128, 2)).astype(np.float32)
    y = (X[:, 0] > 0).astype(int)
    X[:, 0] += np.where(y == 1, 3.0, -3.0)  # separable with a wide margin

    def max_probability(eps):
        t = df.Trainer(
            df.mlp(2, [16], 2, rng=0),
            loss=df.SoftmaxCrossEntropy(label_smoothing=eps),
            optimizer=df.Adam(0.05),
            batch_size=32,
        )
        t.fit(X, y, epochs=60)
        return float(t.predict(X).max(axis=1).mean())

    # the smoothed target of the true class is (1 - 0.2) + 0.2 / 2 = 0.9
    assert max_probability(0.0) > 0.99
    assert max_probability(0.2) == pytest.approx(0.9, abs=0.02)


def test_staircase_schedule_in_the_trainer():
    X, y = _problem(n=16)
    t = df.Trainer(
        df.mlp(4, [3], 3, rng=0),
        optimizer=df.SGD(1.0),
        schedule=schedules.inverse_time(0.2, 1.0, interval=2),
    )
    assert t.fit(X, y, epochs=5)["lr"] == pytest.approx([0.2, 0.2, 0.1, 0.1, 0.2 / 3])

"""Trainer: real accuracy on real data, recorded metrics, inference, bad input."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

import deepfit as df
from deepfit.data import Standardizer, idx, train_dev_test_split

MNIST = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "mnist10k"


def _standardized(ds, rng=0):
    (Xtr, ytr), (Xd, yd), (Xte, yte) = train_dev_test_split(ds.X, ds.y, rng=rng)
    s = Standardizer().fit(Xtr)
    return (s.transform(Xtr), ytr), (s.transform(Xd), yd), (s.transform(Xte), yte)


@pytest.fixture(scope="module")
def digits_splits():
    pytest.importorskip("sklearn")
    return _standardized(df.data.digits())


def test_digits_reaches_95_percent_test_accuracy(digits_splits):
    (Xtr, ytr), (Xd, yd), (Xte, yte) = digits_splits
    model = df.mlp(64, [128, 64], 10, rng=0)
    trainer = df.Trainer(
        model,
        optimizer=df.Adam(0.003),
        batch_size=64,
        l2=0.01,
        seed=0,
        callbacks=[df.EarlyStopping(patience=5)],
    )
    history = trainer.fit(Xtr, ytr, epochs=40, validation_data=(Xd, yd))
    assert trainer.evaluate(Xte, yte)["accuracy"] >= 0.95
    assert history.columns == [
        "epoch",
        "lr",
        "train_loss",
        "train_accuracy",
        "dev_loss",
        "dev_accuracy",
        "seconds",
    ]
    assert history["epoch"] == list(range(1, len(history) + 1))
    assert history["train_loss"][-1] < history["train_loss"][0]


@pytest.mark.slow
def test_mnist_subset_reaches_95_percent_with_784_256_128_10():
    if not MNIST.is_dir():
        pytest.skip(f"shared MNIST subset not found at {MNIST}")
    # pixels scaled to [0, 1]: per-pixel standardization blows rare border pixels up to
    # tens of standard deviations and overfits 6,000 examples within 3 epochs (0.935)
    ds = idx(
        MNIST / "mnist10k-images-idx3-ubyte.gz", MNIST / "mnist10k-labels-idx1-ubyte.gz", scale=True
    )
    (Xtr, ytr), (Xd, yd), (Xte, yte) = train_dev_test_split(ds.X, ds.y, rng=0)
    model = df.mlp(784, [256, 128], 10, batchnorm=True, keep_prob=0.8, rng=0)
    trainer = df.Trainer(
        model,
        optimizer=df.Adam(0.001),
        batch_size=64,
        seed=0,
        callbacks=[df.EarlyStopping(patience=5)],
    )
    trainer.fit(Xtr, ytr, epochs=30, validation_data=(Xd, yd))
    assert trainer.evaluate(Xte, yte)["accuracy"] >= 0.95


def test_train_metrics_are_running_means_over_the_epochs_batches():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((100, 3)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64)
    seen = []

    class Spy(df.Callback):
        def on_batch_end(self, trainer, batch, loss):
            seen.append(loss)

    trainer = df.Trainer(df.mlp(3, [4], 2, rng=0), batch_size=32, callbacks=[Spy()])
    history = trainer.fit(X, y, epochs=1)
    sizes = [32, 32, 32, 4]  # the last partial batch is kept
    assert len(seen) == 4
    assert history["train_loss"][0] == pytest.approx(np.dot(seen, sizes) / 100)


def test_regression_with_mse():
    rng = np.random.default_rng(1)
    X = rng.uniform(-1, 1, (400, 2))
    y = (np.sin(2 * X[:, 0]) + X[:, 1] ** 2).reshape(-1, 1)
    trainer = df.Trainer(
        df.mlp(2, [32, 32], 1, activation="tanh", rng=0),
        loss="mse",
        optimizer=df.Adam(0.01),
        batch_size=32,
    )
    history = trainer.fit(X[:300], y[:300], epochs=60, validation_data=(X[300:], y[300:]))
    assert "train_accuracy" not in history.columns
    assert trainer.evaluate(X[300:], y[300:])["loss"] < 0.01 * float(y.var()) * 10
    assert trainer.predict(X[:5]).shape == (5, 1)


def test_binary_classification_with_sigmoid_output():
    pytest.importorskip("sklearn")
    (Xtr, ytr), (Xd, yd), (Xte, yte) = _standardized(df.data.breast_cancer())
    trainer = df.Trainer(
        df.mlp(30, [16], 1, rng=0),
        loss="sigmoid_binary_cross_entropy",
        optimizer=df.Adam(0.01),
        batch_size=32,
    )
    trainer.fit(Xtr, ytr, epochs=30, validation_data=(Xd, yd))
    result = trainer.evaluate(Xte, yte)
    assert result["accuracy"] >= 0.93
    proba = trainer.predict(Xte)
    assert proba.shape == (len(Xte), 1) and np.all((proba >= 0) & (proba <= 1))
    assert np.array_equal(trainer.predict_classes(Xte), (proba[:, 0] > 0.5).astype(int))


def test_schedule_sets_the_learning_rate_each_epoch():
    X = np.random.default_rng(0).standard_normal((20, 2))
    y = np.arange(20) % 2
    trainer = df.Trainer(
        df.mlp(2, [3], 2, rng=0),
        optimizer=df.SGD(1.0),
        schedule=df.schedules.inverse_time(0.2, 1.0),
    )
    history = trainer.fit(X, y, epochs=4)
    assert history["lr"] == pytest.approx([0.2, 0.1, 0.2 / 3, 0.05])


def test_augmentation_touches_training_batches_only():
    X = np.ones((16, 4), dtype=np.float32)
    y = np.arange(16) % 2
    calls = []

    def augment(xb, rng):
        calls.append(xb.shape[0])
        return xb * 0

    trainer = df.Trainer(df.mlp(4, [3], 2, rng=0), batch_size=8, augment=augment)
    trainer.fit(X, y, epochs=1, validation_data=(X, y))
    assert calls == [8, 8]
    assert np.array_equal(X, np.ones((16, 4)))


def test_same_seed_same_run():
    X = np.random.default_rng(0).standard_normal((50, 3)).astype(np.float32)
    y = (X.sum(axis=1) > 0).astype(int)

    def run():
        model = df.mlp(3, [8], 2, keep_prob=0.8, rng=1)
        df.Trainer(model, seed=4).fit(X, y, epochs=3)
        return model.state_dict()

    a, b = run(), run()
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_batchnorm_skips_a_last_batch_of_one_row():
    X = np.random.default_rng(0).standard_normal((33, 3)).astype(np.float32)
    y = np.arange(33) % 2
    history = df.Trainer(df.mlp(3, [4], 2, batchnorm=True, rng=0), batch_size=32).fit(X, y, 2)
    assert len(history) == 2 and math.isfinite(history["train_loss"][-1])


def test_non_finite_loss_stops_with_a_reason_and_restores_the_last_good_weights(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((64, 3)).astype(np.float32)
    y = rng.standard_normal((64, 1)).astype(np.float32)
    model = df.mlp(3, [64, 64], 1, rng=0)
    ckpt = tmp_path / "ckpt.npz"
    trainer = df.Trainer(
        model, loss="mse", optimizer=df.SGD(0.01), batch_size=8, callbacks=[df.Checkpoint(ckpt)]
    )

    class Explode(df.Callback):  # the learning rate jumps after three good epochs
        def on_epoch_begin(self, trainer, epoch):
            if epoch == 3:
                trainer.optimizer.lr = 1e30

    trainer.callbacks.insert(0, Explode())
    good = {}

    class Keep(df.Callback):
        order = -1

        def on_epoch_end(self, trainer, epoch, logs):
            good[logs["epoch"]] = trainer.model.state_dict()

    trainer.callbacks.insert(0, Keep())
    with pytest.warns(RuntimeWarning, match="non-finite"):
        history = trainer.fit(X, y, epochs=20)
    assert len(history) == 3
    assert "weights of epoch 3 restored" in history.stop_reason
    assert "smaller learning rate" in history.stop_reason
    for name, value in good[3].items():
        assert np.array_equal(model.state_dict()[name], value), name
    saved = np.load(ckpt)
    assert all(np.isfinite(saved[k]).all() for k in saved.files if k.startswith("model/"))


@pytest.mark.parametrize("batch_size", [8, 64])
def test_divergence_before_any_finite_epoch_fails_with_one_line(tmp_path, batch_size):
    # lr = 1e30: with 8 batches the loss turns non-finite inside epoch 1; with one batch the
    # loss of epoch 1 is finite but its weights are not (caught at the end of the epoch)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((64, 3)).astype(np.float32)
    y = rng.standard_normal((64, 1)).astype(np.float32)
    ckpt = tmp_path / "ckpt.npz"
    stopper = df.EarlyStopping(monitor="train_loss", patience=5)
    trainer = df.Trainer(
        df.mlp(3, [16], 1, rng=0),
        loss="mse",
        optimizer=df.SGD(1e30),
        batch_size=batch_size,
        callbacks=[stopper, df.Checkpoint(ckpt)],
    )
    with pytest.raises(df.DeepfitError, match="training diverged: non-finite") as info:
        trainer.fit(X, y, epochs=5)
    assert "\n" not in str(info.value) and "no model is kept" in str(info.value)
    assert isinstance(info.value, df.TrainingDiverged)
    assert not ckpt.exists() and stopper.best_weights is None
    assert all(np.isfinite(p).all() for p in trainer.model.params.values())


@pytest.mark.parametrize(
    ("X", "y", "message"),
    [
        (np.ones((4, 3)), np.zeros(5, dtype=int), "X has 4 rows but y has 5"),
        (np.ones((4, 2)), np.zeros(4, dtype=int), "has 2 features but the model's input layer"),
        (np.ones(4), np.zeros(4, dtype=int), "must be a 2-D array"),
        (np.array([[1.0, np.nan, 0.0]]), np.zeros(1, dtype=int), r"row 0, column 1 is nan"),
        (np.ones((2, 3)), np.array([0, 7]), "row 1 is class 7, outside the model's 2 classes"),
        (np.ones((2, 3)), np.array([0.5, 1.0]), "class indices"),
    ],
)
def test_bad_input_is_refused_with_one_line(X, y, message):
    trainer = df.Trainer(df.mlp(3, [4], 2, rng=0))
    with pytest.raises(df.DataError, match=message):
        trainer.fit(X, y, epochs=1)


def test_bad_arguments():
    model = df.mlp(3, [4], 2, rng=0)
    with pytest.raises(df.DeepfitError, match="batch_size"):
        df.Trainer(model, batch_size=0)
    with pytest.raises(df.DeepfitError, match="unknown loss 'hinge'"):
        df.Trainer(model, loss="hinge")
    with pytest.raises(df.DeepfitError, match="epochs must be a positive integer"):
        df.Trainer(model).fit(np.ones((2, 3)), [0, 1], epochs=0)
    with pytest.raises(df.DeepfitError, match="needs a Checkpoint"):
        df.Trainer(model).fit(np.ones((2, 3)), [0, 1], epochs=1, resume=True)

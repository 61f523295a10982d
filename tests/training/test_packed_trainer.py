"""PackedTrainer: members trained in lockstep equal separate runs, stop on their own, resume."""

from __future__ import annotations

import numpy as np
import pytest

from deepfit.errors import DeepfitError
from deepfit.io import save_arrays
from deepfit.nn import mlp
from deepfit.nn.packed import packed_mlp
from deepfit.optim.optimizers import SGD, Adam
from deepfit.optim.packed import PackedAdam, PackedSGD
from deepfit.training import EarlyStopping, Trainer
from deepfit.training.packed import PackedTrainer, load_packed_model


def _data(n=240, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 6))
    y = (X[:, 0] * X[:, 1] + 0.3 * rng.standard_normal(n) > 0).astype(np.int64)
    return X, y


def _state_diff(a, b) -> float:
    pairs = zip(a.state_dict().values(), b.state_dict().values(), strict=True)
    return max(float(np.abs(x - y).max()) for x, y in pairs)


def test_members_stop_on_their_own_exactly_as_separate_runs():
    X, y = _data()
    Xd, yd = _data(80, seed=1)
    seeds, lrs, l2 = [1, 2, 3], [0.05, 0.01, 0.003], [0.0, 1.0, 0.1]
    singles = []
    for i in range(3):
        model = mlp(6, [16, 8], 2, keep_prob=0.9, rng=seeds[i], dtype="float64")
        trainer = Trainer(
            model,
            optimizer=Adam(lrs[i]),
            batch_size=32,
            l2=l2[i],
            seed=7,
            callbacks=[EarlyStopping(patience=3)],
        )
        history = trainer.fit(X, y, 30, validation_data=(Xd, yd))
        singles.append((model, len(history["dev_loss"]), trainer))
    packed = packed_mlp(6, [16, 8], 2, 3, keep_prob=0.9, rng=seeds, dtype="float64")
    pt = PackedTrainer(
        packed, optimizer=PackedAdam(3, lrs), batch_size=32, l2=l2, seed=7, patience=3
    )
    history = pt.fit(X, y, 30, validation_data=(Xd, yd))
    for k, (model, epochs_run, trainer) in enumerate(singles):
        assert _state_diff(model, packed.member(k)) == 0.0  # float64: bit for bit
        stopped = pt.status[k]
        if trainer.stop_reason.startswith("early stopping"):
            assert stopped == f"early stopping at epoch {epochs_run}"
        else:
            assert stopped == "completed all epochs"
        # the member's recorded dev losses are its own run's
        ours = [rec["dev_loss"][k] for rec in history[:epochs_run]]
        assert ours == trainer.history["dev_loss"]
    assert len({s for s in pt.status}) > 1  # they did stop at different epochs
    result = pt.evaluate(Xd, yd)
    probs = pt.predict_members(Xd)
    assert np.allclose(pt.predict(Xd), probs.mean(axis=0))
    assert result["ensemble_accuracy"] == np.mean(probs.mean(axis=0).argmax(1) == yd)


def test_a_diverged_member_is_frozen_and_reported_the_others_go_on():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((200, 4))
    y = X @ np.array([1.0, -2.0, 0.5, 3.0]) + 0.1 * rng.standard_normal(200)
    lrs = [0.01, 1e4, 0.003]
    packed = packed_mlp(4, [8], 1, 3, rng=[0, 1, 2], dtype="float64")
    pt = PackedTrainer(packed, "mse", optimizer=PackedSGD(3, lrs), batch_size=20, seed=3)
    pt.fit(X, y, 8)
    assert pt.status[1].startswith("diverged: non-finite")
    assert pt.status[0] == pt.status[2] == "completed all epochs"
    assert all(np.isfinite(v).all() for v in packed.state_dict().values())
    for k in (0, 2):
        single = mlp(4, [8], 1, rng=k, dtype="float64")
        Trainer(single, "mse", optimizer=SGD(lrs[k]), batch_size=20, seed=3).fit(X, y, 8)
        assert _state_diff(single, packed.member(k)) == 0.0


def test_resume_continues_exactly(tmp_path):
    X, y = _data()
    Xd, yd = _data(60, seed=2)

    def trainer(path=None):
        model = packed_mlp(
            6, [12], 2, 2, keep_prob=[[0.8, 0.9]], batchnorm=True, rng=[4, 5], dtype="float64"
        )
        opt = PackedAdam(2, [0.01, 0.02], beta1=[0.9, 0.8])
        return PackedTrainer(
            model, optimizer=opt, batch_size=32, seed=1, patience=2, checkpoint=path
        )

    straight = trainer()
    straight.fit(X, y, 9, validation_data=(Xd, yd))
    path = tmp_path / "packed.npz"
    first = trainer(path)
    first.fit(X, y, 4, validation_data=(Xd, yd))
    second = trainer(path)
    second.fit(X, y, 9, validation_data=(Xd, yd), resume=True)
    assert _state_diff(straight.model, second.model) == 0.0

    def drop_time(history):
        return [{k: v for k, v in rec.items() if k != "seconds"} for rec in history]

    assert drop_time(second.history) == drop_time(straight.history)
    assert second.status == straight.status
    other = PackedTrainer(
        packed_mlp(6, [12], 2, 2, rng=[4, 5], dtype="float64"), batch_size=16, checkpoint=path
    )
    with pytest.raises(DeepfitError, match="different run"):
        other.fit(X, y, 9, resume=True)


@pytest.mark.parametrize("kind", ["deep", "batch"])
def test_model_file_round_trip(tmp_path, kind):
    X, y = _data()
    packed = packed_mlp(6, [12], 2, 3, rng=0, kind=kind)
    pt = PackedTrainer(packed, optimizer=PackedAdam(3, 0.01), batch_size=32)
    pt.fit(X, y, 3)
    path = pt.save_model(tmp_path / "model.npz")
    model, loss = load_packed_model(path)
    assert model.kind == kind and model.members == 3
    assert np.array_equal(model.predict(X), packed.predict(X))
    assert type(loss.base).__name__ == "SoftmaxCrossEntropy"
    save_arrays(tmp_path / "other.npz", {"a": np.zeros(2)}, {"format": "something-else"})
    with pytest.raises(DeepfitError, match="expected a deepfit-packed-model file"):
        load_packed_model(tmp_path / "other.npz")


def test_batch_ensemble_learns_and_stops_together():
    X, y = _data(400)
    Xd, yd = _data(100, seed=3)
    model = packed_mlp(6, [32, 32], 2, 4, kind="batch", rng=0)
    pt = PackedTrainer(model, optimizer=PackedAdam(4, 0.01), batch_size=32, patience=2)
    history = pt.fit(X, y, 40, validation_data=(Xd, yd))
    assert len(set(pt.status)) == 1
    best = int(np.argmin([rec["dev_ensemble_loss"] for rec in history]))
    assert pt.status[0] == f"early stopping at epoch {best + 1 + 2}"
    # the weights of the best epoch are back
    assert pt.evaluate(Xd, yd)["ensemble_loss"] == pytest.approx(history[best]["dev_ensemble_loss"])
    assert pt.evaluate(Xd, yd)["ensemble_accuracy"] > 0.75


def test_regression_ensemble_predicts_the_mean_of_values():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((120, 3))
    y = np.stack([X[:, 0] - X[:, 1], X[:, 2]], axis=1)
    model = packed_mlp(3, [16], 2, 3, rng=1, dtype="float64")
    pt = PackedTrainer(model, "mse", optimizer=PackedAdam(3, 0.01), batch_size=16)
    pt.fit(X, y, 20)
    members = pt.predict_members(X)
    assert members.shape == (3, 120, 2)
    assert np.array_equal(pt.predict(X), members.mean(axis=0))
    result = pt.evaluate(X, y)
    assert result["ensemble_loss"] == pytest.approx(((members.mean(0) - y) ** 2).mean())
    assert result["ensemble_loss"] <= max(result["loss"]) + 1e-12


def test_bad_settings_are_refused():
    model = packed_mlp(3, [4], 2, 2, rng=0)
    with pytest.raises(DeepfitError, match="3 schedules for 2 members"):
        PackedTrainer(model, schedules=[lambda e: 0.1] * 3)
    with pytest.raises(DeepfitError, match="l2 has 3 values for 2 members"):
        PackedTrainer(model, l2=[0.1, 0.2, 0.3])
    with pytest.raises(DeepfitError, match="the optimizer has 3 members"):
        PackedTrainer(model, optimizer=PackedAdam(3))
    with pytest.raises(DeepfitError, match="PackedSequential"):
        PackedTrainer(mlp(3, [4], 2))


def test_each_member_follows_its_own_schedule():
    X, y = _data(64)
    model = packed_mlp(6, [4], 2, 2, rng=[0, 1])
    schedules = [lambda e: 0.1 / (1 + e), lambda e: 0.01 * (e + 1)]
    pt = PackedTrainer(model, optimizer=PackedSGD(2, 0.5), batch_size=32, schedules=schedules)
    history = pt.fit(X, y, 3)
    assert [rec["lr"] for rec in history] == [[0.1 / (1 + e), 0.01 * (e + 1)] for e in range(3)]

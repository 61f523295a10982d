"""Stopped members leave the computation: the packed trainer trains a compact copy of the
running members, and every number of every member stays what it was without compaction."""

from __future__ import annotations

import math

import numpy as np
import pytest

from deepfit import kernels
from deepfit.errors import DeepfitError
from deepfit.nn import mlp
from deepfit.nn.packed import PackedLoss, packed_mlp
from deepfit.optim.optimizers import Adam
from deepfit.optim.packed import PackedAdam
from deepfit.training import EarlyStopping, Trainer
from deepfit.training.packed import PackedTrainer

SEEDS, LRS, L2, WD = [1, 2, 3], [0.05, 0.01, 0.003], [0.0, 1.0, 0.1], [0.0, 0.01, 0.001]


def _data(n, seed):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 6))
    y = (X[:, 0] * X[:, 1] + 0.3 * rng.standard_normal(n) > 0).astype(np.int64)
    return X, y


def _fit(monkeypatch, compact, batchnorm=False, hook=None):
    monkeypatch.setattr(PackedTrainer, "compact", compact)
    X, y = _data(240, 0)
    Xd, yd = _data(80, 1)
    model = packed_mlp(
        6,
        [16, 8],
        2,
        3,
        keep_prob=[[0.9, 0.8, 1.0]] * 2,
        batchnorm=batchnorm,
        rng=SEEDS,
        dtype="float64",
    )
    trainer = PackedTrainer(
        model,
        optimizer=PackedAdam(3, LRS, weight_decay=WD),
        batch_size=32,
        l2=L2,
        seed=7,
        patience=3,
    )
    seen = []
    forward = trainer.loss.forward

    def spy(logits, *args):
        seen.append(logits.shape[0])
        return forward(logits, *args)

    trainer.loss.forward = spy
    history = trainer.fit(X, y, 30, validation_data=(Xd, yd), epoch_hook=hook)
    return trainer, history, seen


@pytest.mark.parametrize("jit", [False, True])
@pytest.mark.parametrize("batchnorm", [False, True])
def test_stopped_members_leave_and_the_others_continue_identically(monkeypatch, jit, batchnorm):
    monkeypatch.setattr(kernels, "USE_JIT", jit)
    compact, history, seen = _fit(monkeypatch, True, batchnorm)
    full, full_history, full_seen = _fit(monkeypatch, False, batchnorm)
    stops = sorted(int(e) for e in compact.epochs_run)
    assert len(set(stops)) > 1  # the members stopped at different epochs
    assert compact.status == full.status
    assert compact.best_epoch.tolist() == full.best_epoch.tolist()
    # float64: each member's final (best) weights bit for bit
    for a, b in zip(
        compact.model.state_dict().values(), full.model.state_dict().values(), strict=True
    ):
        assert np.array_equal(a, b)
    # the computation shrank as members stopped; without compaction it never does
    assert set(full_seen) == {3} and min(seen) < 3 and seen[0] == 3
    assert len(seen) == len(full_seen) and sum(seen) < sum(full_seen)
    for k in range(3):
        run = int(compact.epochs_run[k])
        for key in ("train_loss", "train_accuracy", "dev_loss", "dev_accuracy"):
            ours = [rec[key][k] for rec in history[:run]]
            assert ours == [rec[key][k] for rec in full_history[:run]], (k, key)
        for rec in history[run:]:
            # a stopped member no longer trains; its dev numbers are those of its weights
            assert math.isnan(rec["train_loss"][k]) and math.isnan(rec["train_accuracy"][k])
            if not batchnorm:
                assert rec["dev_loss"][k] == full_history[run - 1]["dev_loss"][k]
            assert rec["dev_loss"][k] == history[run - 1]["dev_loss"][k]
    if not batchnorm:  # frozen members' batch statistics no longer move either
        assert [r["dev_ensemble_loss"] for r in history] == [
            r["dev_ensemble_loss"] for r in full_history
        ]


def test_a_member_stopping_early_keeps_its_best_weights(monkeypatch):
    # member k, trained packed with compaction, equals its own run with early stopping
    trainer, _, seen = _fit(monkeypatch, True)
    assert min(seen) < 3
    X, y = _data(240, 0)
    Xd, yd = _data(80, 1)
    for k in range(3):
        single = mlp(6, [16, 8], 2, keep_prob=[0.9, 0.8, 1.0][k], rng=SEEDS[k], dtype="float64")
        Trainer(
            single,
            optimizer=Adam(LRS[k], weight_decay=WD[k]),
            batch_size=32,
            l2=L2[k],
            seed=7,
            callbacks=[EarlyStopping(patience=3)],
        ).fit(X, y, 30, validation_data=(Xd, yd))
        member = trainer.model.member(k)
        for a, b in zip(single.state_dict().values(), member.state_dict().values(), strict=True):
            assert np.array_equal(a, b), k


def test_a_member_diverging_while_others_are_compacted(monkeypatch):
    # member 0 is pruned after epoch 1 (the copy then holds members 1 and 2); member 2's
    # weights are blown up after epoch 2, so it diverges inside epoch 3, in the copy
    def hook(trainer, logs):
        if logs["epoch"] == 1:
            trainer.stop_members([0], "pruned after epoch 1")
        if logs["epoch"] == 2:
            for value in trainer.model.params.values():
                value[2] *= 1e150

    results = []
    for compact in (True, False):
        trainer, history, _ = _fit(monkeypatch, compact, hook=hook)
        results.append((trainer, history))
        assert trainer.status[0] == "pruned after epoch 1"
        assert trainer.status[2].startswith("diverged: non-finite loss in epoch 3")
        assert all(np.isfinite(v).all() for v in trainer.model.state_dict().values())
    (a, ha), (b, hb) = results
    for x, z in zip(a.model.state_dict().values(), b.model.state_dict().values(), strict=True):
        assert np.array_equal(x, z)
    assert [r["dev_loss"][1] for r in ha] == [r["dev_loss"][1] for r in hb]
    assert a.status == b.status


def test_take_and_put_members():
    model = packed_mlp(
        5, [6], 2, 3, keep_prob=[[0.5, 0.9, 0.7]], batchnorm=True, rng=[1, 2, 3], dtype="float64"
    )
    rng = np.random.default_rng(0)
    for name, value in model.state_dict().items():
        model.load_state_dict({**model.state_dict(), name: rng.uniform(0.5, 2.0, value.shape)})
    part = model.take([2, 0])
    assert part.members == 2 and part.kind == "deep"
    drop = part.layers[3]
    assert drop.keep_prob.tolist() == [0.7, 0.5]
    assert drop.rngs[0] is model.layers[3].rngs[2]  # the member's own generator
    x = rng.standard_normal((4, 5))
    assert np.array_equal(part.predict(x), model.predict(x)[[2, 0]])
    taken, own = part.member(0).state_dict(), model.member(2).state_dict()
    for a, b in zip(taken.values(), own.values(), strict=True):
        assert np.array_equal(a, b)
    before = model.state_dict()
    for value in part.params.values():
        value += 1.0
    model.put([2, 0], part)
    after = model.state_dict()
    for name in part.params:
        assert np.array_equal(after[name][[2, 0]], before[name][[2, 0]] + 1.0)
        assert np.array_equal(after[name][1], before[name][1])
    # the copy trains on its own: forward/backward work and leave the model alone
    loss = PackedLoss("softmax_cross_entropy")
    loss.forward(part.forward(x, training=True), np.array([0, 1, 1, 0]))
    part.backward(loss.backward(), input_grad=False)
    assert np.array_equal(model.state_dict()["0.W"], after["0.W"])
    with pytest.raises(DeepfitError, match="member indices"):
        model.take([3])
    with pytest.raises(DeepfitError, match="deep ensemble"):
        packed_mlp(5, [6], 2, 3, kind="batch", rng=0).take([0])


def test_resume_after_members_stopped_continues_exactly(tmp_path):
    X, y = _data(240, 0)
    Xd, yd = _data(80, 1)

    def trainer(path=None):
        model = packed_mlp(6, [16, 8], 2, 3, keep_prob=[[0.9, 0.8, 1.0]] * 2, rng=SEEDS)
        opt = PackedAdam(3, LRS, weight_decay=WD)
        return PackedTrainer(
            model, optimizer=opt, batch_size=32, l2=L2, seed=7, patience=3, checkpoint=path
        )

    straight = trainer()
    straight.fit(X, y, 30, validation_data=(Xd, yd))
    first_stop = int(straight.epochs_run.min())
    assert first_stop < int(straight.epochs_run.max())
    path = tmp_path / "packed.npz"
    trainer(path).fit(X, y, first_stop + 2, validation_data=(Xd, yd))  # a member has stopped
    resumed = trainer(path)
    resumed.fit(X, y, 30, validation_data=(Xd, yd), resume=True)
    for a, b in zip(
        straight.model.state_dict().values(), resumed.model.state_dict().values(), strict=True
    ):
        assert np.array_equal(a, b)
    assert resumed.status == straight.status

    def drop_time(history):
        return [{k: v for k, v in rec.items() if k != "seconds"} for rec in history]

    assert str(drop_time(resumed.history)) == str(drop_time(straight.history))  # NaN == NaN

"""Packed networks: gradients of every packed layer, and K members equal to K separate runs."""

from __future__ import annotations

import numpy as np
import pytest

from deepfit import kernels
from deepfit.checks.gradcheck import gradcheck
from deepfit.data.batches import minibatches
from deepfit.errors import DeepfitError, ShapeError
from deepfit.nn import Dense, mlp
from deepfit.nn.losses import get_loss
from deepfit.nn.objective import forward_backward, make_penalties
from deepfit.nn.packed import (
    BatchEnsembleDense,
    PackedBatchNorm,
    PackedDense,
    PackedDropout,
    PackedLoss,
    PackedSequential,
    pack,
    packed_mlp,
    packed_penalties,
)
from deepfit.optim.optimizers import SGD, Adam, Momentum, RMSprop
from deepfit.optim.packed import PackedAdam, PackedMomentum, PackedRMSprop, PackedSGD
from tests.gradients import layer_gradient_errors


# -- gradients of every packed layer (float64, finite differences) -----------------------------
@pytest.mark.parametrize("shared_input", [True, False])
def test_packed_dense_gradient(shared_input):
    rng = np.random.default_rng(0)
    layer = PackedDense(3, 4, 5, rng=[1, 2, 3], dtype="float64")
    layer.params["b"][...] = rng.standard_normal((3, 5))
    x = rng.standard_normal((6, 4) if shared_input else (3, 6, 4))
    errors = layer_gradient_errors(layer, x, rng)
    assert max(errors.values()) < 1e-8, errors


@pytest.mark.parametrize("shared_input", [True, False])
def test_batch_ensemble_dense_gradient(shared_input):
    rng = np.random.default_rng(1)
    layer = BatchEnsembleDense(3, 4, 5, random_signs=True, rng=7, dtype="float64")
    for key in ("r", "s", "b"):
        layer.params[key][...] = rng.uniform(0.5, 1.5, layer.params[key].shape)
    x = rng.standard_normal((6, 4) if shared_input else (3, 6, 4))
    errors = layer_gradient_errors(layer, x, rng)
    assert set(errors) == {"x", "W", "r", "s", "b"}
    assert max(errors.values()) < 1e-8, errors


def test_packed_batchnorm_gradient():
    rng = np.random.default_rng(2)
    layer = PackedBatchNorm(3, 4, dtype="float64")
    layer.params["gamma"][...] = rng.uniform(0.5, 2, (3, 4))
    layer.params["beta"][...] = rng.standard_normal((3, 4))
    x = rng.standard_normal((3, 7, 4)) * 2 + 1
    errors = layer_gradient_errors(layer, x, rng)
    assert max(errors.values()) < 1e-7, errors


def test_packed_dropout_gradient_replays_each_members_mask():
    rng = np.random.default_rng(3)
    layer = PackedDropout(3, [0.5, 1.0, 0.8], rng=[4, 5, 6])
    x = rng.standard_normal((3, 10, 6))

    def reseed():
        layer.rngs = [np.random.default_rng(s) for s in (4, 5, 6)]

    errors = layer_gradient_errors(layer, x, rng, reseed=reseed)
    assert max(errors.values()) < 1e-8, errors
    reseed()
    out = layer.forward(x, training=True)
    assert np.array_equal(out[1], x[1])  # keep_prob 1: untouched
    dropped = out[0] == 0
    assert 0.3 < dropped.mean() < 0.7
    assert np.allclose(out[0][~dropped], x[0][~dropped] / 0.5)
    assert layer.forward(x, training=False) is x


@pytest.mark.parametrize(
    ("loss", "n_out", "labels"),
    [
        ("softmax_cross_entropy", 3, "classes"),
        ("sigmoid_binary_cross_entropy", 1, "binary"),
        ("mse", 2, "values"),
    ],
)
@pytest.mark.parametrize("kind", ["deep", "batch"])
def test_packed_model_gradcheck(loss, n_out, labels, kind):
    rng = np.random.default_rng(4)
    X = rng.standard_normal((9, 5))
    y = {
        "classes": rng.integers(0, 3, 9),
        "binary": rng.integers(0, 2, 9).astype(float),
        "values": rng.standard_normal((9, 2)),
    }[labels]
    model = packed_mlp(5, [6, 4], n_out, 3, activation="tanh", rng=11, kind=kind)
    result = gradcheck(model, PackedLoss(loss), X, y, l2=0.3, l1=0.1)
    assert max(result.per_tensor.values()) < 1e-6, result.per_tensor


def test_packed_model_gradcheck_with_batchnorm_and_weights():
    rng = np.random.default_rng(5)
    X = rng.standard_normal((8, 4))
    y = rng.integers(0, 2, 8)
    model = packed_mlp(4, [5], 2, 2, batchnorm=True, activation="sigmoid", rng=[1, 2])
    loss = PackedLoss(get_loss("softmax_cross_entropy", label_smoothing=0.1))
    check = model.astype("float64")
    weight = rng.uniform(0.2, 2.0, 8)
    forward_backward(check, loss, X, y, weight=weight)
    exact = {n: g.copy() for n, g in check.grads.items()}
    from tests.gradients import numeric_gradient

    for name, p in check.params.items():

        def J():
            return forward_backward(check, loss, X, y, weight=weight).data_loss

        approx = numeric_gradient(J, p)
        assert np.abs(approx - exact[name]).max() < 1e-7, name


# -- the packed losses and penalties equal the single ones member by member ------------------
@pytest.mark.parametrize("name", ["softmax_cross_entropy", "sigmoid_binary_cross_entropy", "mse"])
@pytest.mark.parametrize("weighted", [False, True])
def test_packed_loss_is_each_members_loss(name, weighted):
    rng = np.random.default_rng(6)
    c = {"softmax_cross_entropy": 4, "sigmoid_binary_cross_entropy": 1, "mse": 3}[name]
    logits = rng.standard_normal((3, 10, c))
    y = {
        "softmax_cross_entropy": rng.integers(0, 4, 10),
        "sigmoid_binary_cross_entropy": rng.integers(0, 2, 10).astype(float),
        "mse": rng.standard_normal((10, 3)),
    }[name]
    w = rng.uniform(0, 2, 10) if weighted else None
    packed = PackedLoss(name)
    total = packed.forward(logits, y, w)
    grad = packed.backward()
    for k in range(3):
        single = get_loss(name)
        assert single.forward(logits[k], y, w) == packed.values[k]
        assert np.array_equal(single.backward(), grad[k])
    assert total == pytest.approx(packed.values.sum(), rel=1e-15)


def test_packed_penalties_per_member():
    rng = np.random.default_rng(7)
    W = rng.standard_normal((3, 4, 2))
    pen = packed_penalties(l2=[0.0, 0.5, 2.0], l1=[0.1, 0.0, 0.3], members=3)
    grads = [np.zeros_like(W)]
    for p in pen:
        p.add_grad([W], grads, 8)
    for k, (l2, l1) in enumerate([(0.0, 0.1), (0.5, 0.0), (2.0, 0.3)]):
        single = make_penalties(l2=l2, l1=l1)
        dW = np.zeros((4, 2))
        for s in single:
            s.add_grad([W[k]], [dW], 8)
        assert np.array_equal(dW, grads[0][k])
        value = sum(s.value([W[k]], 8) for s in single)
        assert sum(p.values([W], 8)[k] for p in pen) == pytest.approx(value, rel=1e-14)


# -- K members trained packed == K separate runs -------------------------------------------
OPTIMIZERS = {
    "sgd": (
        lambda i, h: SGD(h["lr"][i], weight_decay=h["wd"][i]),
        lambda h: PackedSGD(3, h["lr"], weight_decay=h["wd"]),
    ),
    "momentum": (
        lambda i, h: Momentum(h["lr"][i], beta=h["b1"][i]),
        lambda h: PackedMomentum(3, h["lr"], beta=h["b1"]),
    ),
    "rmsprop": (
        lambda i, h: RMSprop(h["lr"][i], beta=h["b1"][i]),
        lambda h: PackedRMSprop(3, h["lr"], beta=h["b1"]),
    ),
    "adam": (
        lambda i, h: Adam(h["lr"][i], beta1=h["b1"][i], beta2=h["b2"][i], weight_decay=h["wd"][i]),
        lambda h: PackedAdam(3, h["lr"], beta1=h["b1"], beta2=h["b2"], weight_decay=h["wd"]),
    ),
}
HYPER = {
    "seeds": [3, 4, 5],
    "lr": [0.01, 0.003, 0.03],
    "l2": [0.0, 0.2, 1.0],
    "l1": [0.05, 0.0, 0.0],
    "keep": [1.0, 0.8, 0.9],
    "wd": [0.0, 0.01, 0.1],
    "b1": [0.9, 0.8, 0.95],
    "b2": [0.999, 0.99, 0.9],
}


def _train_both(optimizer: str, dtype: str, batchnorm: bool, steps_epochs: int = 3):
    h = HYPER
    rng = np.random.default_rng(0)
    X = rng.standard_normal((150, 6))
    y = (X[:, 0] * X[:, 1] + X[:, 2] > 0).astype(np.int64)
    kw = {"batchnorm": batchnorm, "dtype": dtype, "activation": "relu"}
    singles = [
        mlp(6, [12, 8], 2, keep_prob=h["keep"][i], rng=h["seeds"][i], **kw) for i in range(3)
    ]
    make_single, make_packed = OPTIMIZERS[optimizer]
    opts = [make_single(i, h) for i in range(3)]
    packed = packed_mlp(6, [12, 8], 2, 3, keep_prob=[h["keep"]] * 2, rng=h["seeds"], **kw)
    popt = make_packed(h)
    loss, ploss = get_loss("softmax_cross_entropy"), PackedLoss("softmax_cross_entropy")
    pens = [make_penalties(l2=h["l2"][i], l1=h["l1"][i]) for i in range(3)]
    ppens = packed_penalties(l2=h["l2"], l1=h["l1"], members=3)
    shuffle = np.random.default_rng(1)
    for _ in range(steps_epochs):
        for idx in minibatches(150, 32, shuffle):
            for model, opt, pen in zip(singles, opts, pens, strict=True):
                forward_backward(model, loss, X[idx], y[idx], pen)
                opt.step(model.params, model.grads)
            forward_backward(packed, ploss, X[idx], y[idx], ppens)
            popt.step(packed.params, packed.grads)
    return singles, packed, X


@pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
@pytest.mark.parametrize("batchnorm", [False, True])
@pytest.mark.parametrize("jit", [False, True])
def test_packed_training_is_bit_identical_to_separate_runs_float64(
    optimizer, batchnorm, jit, monkeypatch
):
    # float64: bit for bit (the summation orders of np.matmul's stacked products and of the
    # member-axis reductions equal the single network's), with or without the JIT kernels
    monkeypatch.setattr(kernels, "USE_JIT", jit)
    singles, packed, X = _train_both(optimizer, "float64", batchnorm)
    for k in range(3):
        member = packed.member(k)
        single_arrays = list(singles[k].state_dict().values())
        member_arrays = [v for v in member.state_dict().values()]
        assert len(single_arrays) == len(member_arrays)
        for a, b in zip(single_arrays, member_arrays, strict=True):
            assert np.array_equal(a, b)
        out = packed.predict(X)[k]
        assert np.array_equal(out, singles[k].predict(X))


@pytest.mark.parametrize("optimizer", ["adam", "momentum"])
def test_packed_training_float32_matches_separate_runs(optimizer):
    singles, packed, _ = _train_both(optimizer, "float32", True)
    for k in range(3):
        for a, b in zip(
            singles[k].state_dict().values(), packed.member(k).state_dict().values(), strict=True
        ):
            assert a.dtype == np.float32
            np.testing.assert_allclose(b, a, rtol=1e-6, atol=1e-6)


# -- building, packing, unpacking ----------------------------------------------------------
def test_packed_mlp_members_are_the_single_networks():
    packed = packed_mlp(5, [7], 3, 2, keep_prob=0.5, rng=[8, 9], dtype="float64")
    for k, seed in enumerate([8, 9]):
        single = mlp(5, [7], 3, keep_prob=0.5, rng=seed, dtype="float64")
        for a, b in zip(
            single.state_dict().values(), packed.member(k).state_dict().values(), strict=True
        ):
            assert np.array_equal(a, b)


def test_pack_then_member_round_trip_and_config():
    models = [mlp(4, [6], 2, batchnorm=True, rng=s) for s in (1, 2, 3)]
    packed = pack(models)
    assert isinstance(packed, PackedSequential) and packed.members == 3
    x = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
    out = packed.predict(x)
    assert out.shape == (3, 5, 2)
    for k, model in enumerate(models):
        assert np.array_equal(out[k], model.predict(x))
    rebuilt = PackedSequential.from_config(packed.config(), dtype=packed.dtype)
    rebuilt.load_state_dict(packed.state_dict())
    assert np.array_equal(rebuilt.predict(x), out)


def test_batch_ensemble_members_fold_their_scalings():
    model = packed_mlp(4, [6, 5], 2, 3, kind="batch", rng=0, dtype="float64")
    rng = np.random.default_rng(1)
    for p in model.params.values():
        p[...] = rng.standard_normal(p.shape)
    assert model.shared_names() == {"0.W", "2.W"}
    x = rng.standard_normal((7, 4))
    out = model.predict(x)
    for k in range(3):
        np.testing.assert_allclose(model.member(k).predict(x), out[k], rtol=1e-12, atol=1e-12)
    # members start different: the first layer's r has random signs
    fresh = packed_mlp(4, [6], 2, 3, kind="batch", rng=0)
    assert set(np.unique(fresh.params["0.r"])) == {-1.0, 1.0}


def test_bad_inputs_name_the_culprit():
    with pytest.raises(DeepfitError, match="keep_prob of member 1"):
        PackedDropout(2, [0.5, 1.5])
    with pytest.raises(DeepfitError, match="3 values for 2 members"):
        PackedAdam(2, [0.1, 0.2, 0.3])
    with pytest.raises(DeepfitError, match="2 seeds for 3 members"):
        PackedDense(3, 2, 2, rng=[1, 2])
    with pytest.raises(ShapeError, match=r"\(batch, 4\) or \(2, batch, 4\)"):
        PackedDense(2, 4, 3).forward(np.zeros((5, 3)))
    with pytest.raises(DeepfitError, match="shared"):
        model = packed_mlp(3, [4], 2, 2, kind="batch", rng=0)
        opt = PackedAdam(2, [0.1, 0.2], shared=model.shared_names())
        model.forward(np.ones((4, 3), np.float32), training=True)
        forward_backward(model, PackedLoss("mse"), np.ones((4, 3)), np.ones((4, 2)))
        opt.step(model.params, model.grads)
    with pytest.raises(DeepfitError, match="model 1 has a different architecture"):
        pack([mlp(3, [4], 2, rng=0), mlp(3, [5], 2, rng=0)])


def test_frozen_members_do_not_move():
    model = packed_mlp(3, [4], 2, 3, rng=[0, 1, 2])
    opt = PackedAdam(3, 0.1)
    opt.active[1] = False
    before = model.state_dict()
    x, y = np.random.default_rng(0).standard_normal((6, 3)), np.zeros(6, dtype=int)
    forward_backward(model, PackedLoss("softmax_cross_entropy"), x, y)
    opt.step(model.params, model.grads)
    after = model.state_dict()
    for name in before:
        assert np.array_equal(before[name][1], after[name][1])
        assert not np.array_equal(before[name][0], after[name][0]) or name.endswith(".b")
    state = opt.state_dict()
    again = PackedAdam(3, 0.5)
    again.load_state_dict(state)
    assert again.active.tolist() == [True, False, True] and again.t == 1


def test_member_gradients_are_independent():
    # the packed objective is the sum of the members' objectives: member 0's gradient does not
    # depend on member 1's weights
    model = packed_mlp(3, [4], 2, 2, rng=[0, 1], dtype="float64")
    x, y = np.random.default_rng(0).standard_normal((6, 3)), np.ones(6, dtype=int)
    loss = PackedLoss("softmax_cross_entropy")
    forward_backward(model, loss, x, y)
    g0 = {n: g[0].copy() for n, g in model.grads.items()}
    model.params["0.W"][1] *= 3.0
    forward_backward(model, loss, x, y)
    for n, g in model.grads.items():
        assert np.array_equal(g0[n], g[0])
    assert isinstance(model.member(0)[0], Dense)


def test_learning_rate_changes_reach_the_cached_views():
    model = packed_mlp(3, [4], 2, 2, rng=[0, 1], dtype="float64")
    x, y = np.random.default_rng(0).standard_normal((6, 3)), np.zeros(6, dtype=int)
    opt = PackedSGD(2, [0.1, 0.2])
    loss = PackedLoss("softmax_cross_entropy")
    for lr in ([0.1, 0.2], [0.0, 0.0], [0.3, 0.0]):
        opt.lr = lr
        before = {n: p.copy() for n, p in model.params.items()}
        forward_backward(model, loss, x, y)
        grads = {n: g.copy() for n, g in model.grads.items()}
        opt.step(model.params, model.grads)
        for name, p in model.params.items():
            for k in range(2):
                expected = before[name][k] - lr[k] * grads[name][k]
                assert np.array_equal(p[k], expected)


def test_member_mask_bits_equal_mask_bits():
    from deepfit.nn.dropout import mask_bits
    from deepfit.nn.packed import member_mask_bits

    seeds = np.array([0, 1, 2**63 + 5, 2**64 - 1], dtype=np.uint64)
    bits = member_mask_bits(seeds, 7)
    for j, seed in enumerate(seeds):
        assert np.array_equal(bits[j], mask_bits(int(seed), 7))


@pytest.mark.parametrize("output", ["softmax", "sigmoid", "identity"])
def test_ensemble_mean_gives_the_mean_prediction_as_logits(output):
    from deepfit.nn.activations import sigmoid
    from deepfit.nn.losses import softmax
    from deepfit.nn.packed import EnsembleMean

    rng = np.random.default_rng(8)
    z = rng.standard_normal((4, 6, 3)) * 5
    z[0, 0] = [800.0, -800.0, 30.0]  # far tails stay finite
    head = EnsembleMean(output)
    out = head.forward(z, training=False)
    assert out.shape == (6, 3) and np.isfinite(out).all()
    if output == "softmax":
        expected, got = np.mean([softmax(zk) for zk in z], axis=0), softmax(out)
    elif output == "sigmoid":
        expected, got = sigmoid(z).mean(axis=0), sigmoid(out)
    else:
        expected, got = z.mean(axis=0), out
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-15)
    # training: the identity, gradient included (each member learns from its own loss)
    assert head.forward(z, training=True) is z
    assert head.backward(z) is z


def test_ensemble_with_shared_category_embeddings_gradcheck():
    rng = np.random.default_rng(9)
    X = rng.standard_normal((10, 3))
    X[:, 1] = rng.integers(0, 4, 10)  # codes of a 4-category column
    y = rng.integers(0, 2, 10)
    embed = {"columns": [1], "cardinalities": [4], "dims": [2]}
    for kind, first in (("deep", "PackedEmbedColumns"), ("batch", "EmbedColumns")):
        model = mlp(
            3, [5], 2, ensemble=3, ensemble_kind=kind, rng=0, embed=embed, activation="tanh"
        )
        assert type(model.layers[0]).__name__ == first
        assert model.shared_names() >= ({"0.E0"} if kind == "batch" else set())
        result = gradcheck(model, PackedLoss("softmax_cross_entropy"), X, y, l2=0.1)
        assert max(result.per_tensor.values()) < 1e-6, result.per_tensor
        member = model.member(1)
        np.testing.assert_allclose(
            member.predict(X.astype(np.float32)), model.predict_members(X)[1], rtol=1e-6
        )
    # deep: member k is the single network of seed k, its embedding tables included
    children = np.random.default_rng(0).spawn(3)
    model = mlp(3, [5], 2, ensemble=3, rng=0, embed=embed, dtype="float64")
    for k in range(3):
        single = mlp(3, [5], 2, rng=children[k], embed=embed, dtype="float64")
        for a, b in zip(
            single.state_dict().values(), model.member(k).state_dict().values(), strict=True
        ):
            assert np.array_equal(a, b)

"""The packed network's fused JIT paths give the NumPy reference numbers, bit for bit.

Each test runs the same computation with the JIT off (the NumPy reference), with the JIT on but
the layers one by one (``PackedSequential.fuse = False``), and with the fused kernels, and
compares every output, gradient and cache.
"""

from __future__ import annotations

import numpy as np
import pytest

from deepfit import kernels
from deepfit.nn.dropout import Dropout
from deepfit.nn.losses import get_loss
from deepfit.nn.packed import PackedDropout, PackedLoss, PackedSequential, packed_mlp
from deepfit.training.packed import _train_step

needs_numba = pytest.mark.skipif(not kernels.available(), reason="numba is not installed")
PATHS = {"numpy": (False, False), "layers": (True, False), "fused": (True, True)}


def _step(monkeypatch, path, dtype, hidden, keep, n_out, loss_name, y):
    jit, fuse = PATHS[path]
    monkeypatch.setattr(kernels, "USE_JIT", jit)
    monkeypatch.setattr(PackedSequential, "fuse", fuse)
    model = packed_mlp(5, hidden, n_out, 3, keep_prob=keep, rng=[7, 8, 9], dtype=dtype)
    x = np.random.default_rng(0).standard_normal((20, 5))
    outputs = []
    for _ in range(2):  # the second step draws new masks
        outputs.append(_train_step(model, PackedLoss(loss_name), x, y, None).copy())
    caches = [
        (type(layer).__name__, getattr(layer, "_positive", None), getattr(layer, "_mask", None))
        for layer in model.layers
    ]
    return outputs, {n: g.copy() for n, g in model.grads.items()}, caches, model.predict(x)


@needs_numba
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(
    ("hidden", "keep", "n_out", "loss_name"),
    [
        ([6, 4], [[0.5, 1.0, 0.8], [1.0, 1.0, 1.0]], 2, "softmax_cross_entropy"),
        ([1, 5], [[0.7, 0.9, 1.0], [0.6, 0.6, 0.6]], 1, "sigmoid_binary_cross_entropy"),
        ([7], 1.0, 3, "softmax_cross_entropy"),
    ],
)
def test_fused_forward_and_backward_equal_the_numpy_path(
    monkeypatch, dtype, hidden, keep, n_out, loss_name
):
    # widths of 1 (hidden[0] = 1, n_out = 1) take the NumPy sum for the bias gradient: NumPy
    # sums a contiguous axis pairwise, which the row-by-row kernel would not reproduce
    rng = np.random.default_rng(1)
    y = rng.integers(0, max(n_out, 2), 20)
    if n_out == 1:
        y = y.astype(np.float64)
    results = {
        path: _step(monkeypatch, path, dtype, hidden, keep, n_out, loss_name, y) for path in PATHS
    }
    ref_out, ref_grads, ref_caches, ref_pred = results["numpy"]
    for path in ("layers", "fused"):
        out, grads, caches, pred = results[path]
        for a, b in zip(ref_out, out, strict=True):
            assert a.dtype == np.dtype(dtype) and np.array_equal(a, b), path
        for name in ref_grads:
            assert np.array_equal(ref_grads[name], grads[name]), (path, name)
        for (kind, pos_a, mask_a), (_, pos_b, mask_b) in zip(ref_caches, caches, strict=True):
            if isinstance(pos_a, np.ndarray):
                assert np.array_equal(pos_a, pos_b), (path, kind)
            if isinstance(mask_a, np.ndarray):
                assert np.array_equal(mask_a, mask_b), (path, kind)
            else:
                assert mask_a == mask_b, (path, kind)
        assert np.array_equal(ref_pred, pred), path


@needs_numba
def test_fused_dropout_masks_are_the_single_dropout_masks(monkeypatch):
    monkeypatch.setattr(kernels, "USE_JIT", True)
    model = packed_mlp(4, [9], 2, 3, keep_prob=[[0.6, 1.0, 0.85]], rng=[1, 2, 3])
    drop = model.layers[2]
    assert isinstance(drop, PackedDropout)
    singles = [Dropout(kp, rng=np.random.default_rng(s)) for kp, s in ((0.6, 11), (0.85, 13))]
    drop.rngs[0], drop.rngs[2] = (np.random.default_rng(s) for s in (11, 13))
    model.forward(np.ones((17, 4), np.float32), training=True)
    positive = model.layers[1]._positive
    for k, single in ((0, singles[0]), (2, singles[1])):
        a = positive[k].astype(np.float32)  # a 0/1 activation shows the mask itself
        single.forward(a, training=True)
        assert np.array_equal(drop._mask[k] * a, single._mask * a)
    assert np.array_equal(drop._mask[1], np.ones_like(drop._mask[1]))


def test_dropout_seeds_are_the_generators_integers():
    # random_raw reads what integers(0, 2**64, dtype=uint64) returns, draw for draw
    drop = PackedDropout(3, [0.5, 1.0, 0.7], rng=[4, 5, 6])
    twins = [np.random.default_rng(s) for s in (4, 5, 6)]
    for _ in range(5):
        seeds = drop.draw_seeds(np.array([0, 2]))
        expected = [twins[k].integers(0, 2**64, dtype=np.uint64) for k in (0, 2)]
        assert seeds.dtype == np.uint64 and seeds.tolist() == [int(e) for e in expected]
    assert drop.rngs[1].bit_generator.state == twins[1].bit_generator.state  # not drawn


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_two_class_softmax_loss_is_each_members_loss(dtype, monkeypatch):
    # against the single loss's NumPy path (with the JIT, its float32 kernel agrees to rounding)
    monkeypatch.setattr(kernels, "USE_JIT", False)
    rng = np.random.default_rng(4)
    logits = (3 * rng.standard_normal((4, 33, 2))).astype(dtype)
    logits[1, 3] = [50.0, -50.0]
    y = rng.integers(0, 2, 33)
    packed = PackedLoss("softmax_cross_entropy")
    packed.forward(logits, y)
    grad = packed.backward()
    for k in range(4):
        single = get_loss("softmax_cross_entropy")
        assert single.forward(logits[k], y) == packed.values[k]
        assert np.array_equal(single.backward(), grad[k])


@needs_numba
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_l2_gradient_kernel_equals_the_numpy_path(monkeypatch, dtype):
    from deepfit.nn.packed import packed_penalties

    rng = np.random.default_rng(5)
    weights = [rng.standard_normal((3, 5, 4)).astype(dtype), rng.standard_normal((3, 4, 2))]
    weights[1] = weights[1].astype(dtype)
    results = []
    for jit in (False, True):
        monkeypatch.setattr(kernels, "USE_JIT", jit)
        grads = [np.ones_like(w) for w in weights]
        for penalty in packed_penalties(l2=[0.0, 0.3, 2.0], l1=[0.1, 0.0, 0.0], members=3):
            penalty.add_grad(weights, grads, 17)
        results.append(grads)
    for a, b in zip(*results, strict=True):
        assert a.dtype == np.dtype(dtype) and np.array_equal(a, b)

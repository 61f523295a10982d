"""Packed optimizers: the fused Adam kernel equals the NumPy path, and a compact copy of some
members (take / put) moves them exactly as the whole optimizer would."""

from __future__ import annotations

import numpy as np
import pytest

from deepfit import kernels
from deepfit.errors import DeepfitError
from deepfit.optim.packed import PackedAdam, PackedMomentum

needs_numba = pytest.mark.skipif(not kernels.available(), reason="numba is not installed")
SHAPES = {"0.W": (4, 5, 3), "0.b": (4, 3), "1.W": (4, 3, 2)}


def _adam(**kw):
    return PackedAdam(
        4,
        [0.01, 0.003, 0.03, 0.1],
        beta1=[0.9, 0.8, 0.95, 0.85],
        beta2=[0.999, 0.99, 0.9, 0.995],
        eps=[1e-8, 1e-7, 1e-6, 1e-8],
        **kw,
    )


def _run(opt, dtype, steps=5, freeze_at=2):
    rng = np.random.default_rng(0)
    params = {k: rng.standard_normal(s).astype(dtype) for k, s in SHAPES.items()}
    for t in range(steps):
        if t == freeze_at:
            opt.active[1] = False
        if t == 3:
            opt.lr = [0.02, 0.0, 0.01, 0.05]  # new learning rates reach the kernel's table
        grads = {k: rng.standard_normal(s).astype(dtype) for k, s in SHAPES.items()}
        before = {k: g.copy() for k, g in grads.items()}
        opt.step(params, grads)
        assert all(np.array_equal(grads[k], before[k]) for k in grads)  # g untouched
    return params, opt.state_dict()


@needs_numba
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("weight_decay", [0.0, [0.0, 0.1, 0.01, 0.0]])
def test_fused_packed_adam_is_bit_identical_to_the_numpy_path(monkeypatch, dtype, weight_decay):
    monkeypatch.setattr(kernels, "USE_JIT", False)
    p0, s0 = _run(_adam(weight_decay=weight_decay), dtype)
    monkeypatch.setattr(kernels, "USE_JIT", True)
    p1, s1 = _run(_adam(weight_decay=weight_decay), dtype)
    for k in p0:
        assert p1[k].dtype == np.dtype(dtype)
        assert np.array_equal(p0[k], p1[k]), k
    assert s0.keys() == s1.keys()
    for k in s0:
        assert np.array_equal(s0[k], s1[k]), k


@pytest.mark.parametrize("jit", [False, True])
@pytest.mark.parametrize("make", [_adam, lambda **kw: PackedMomentum(4, 0.05, beta=0.8, **kw)])
def test_a_compact_copy_moves_its_members_as_the_whole_optimizer(monkeypatch, jit, make):
    monkeypatch.setattr(kernels, "USE_JIT", jit)
    rng = np.random.default_rng(1)
    params = {k: rng.standard_normal(s) for k, s in SHAPES.items()}
    grads = [{k: rng.standard_normal(s) for k, s in SHAPES.items()} for _ in range(6)]
    whole, split = make(weight_decay=0.01), make(weight_decay=0.01)
    p_whole = {k: v.copy() for k, v in params.items()}
    p_split = {k: v.copy() for k, v in params.items()}
    for g in grads[:3]:
        whole.step(p_whole, g)
        split.step(p_split, g)
    members = np.array([3, 0])
    part = split.take(members)
    assert part.members == 2 and part.t == 3
    assert part.lr.tolist() == [split.lr[3], split.lr[0]]
    p_part = {k: v[members] for k, v in p_split.items()}
    for g in grads[3:]:
        whole.step(p_whole, g)
        part.step(p_part, {k: v[members] for k, v in g.items()})
    split.put(members, part)
    assert split.t == whole.t == 6
    for k in SHAPES:
        assert np.array_equal(p_part[k], p_whole[k][members])
    state_whole, state_split = whole.state_dict(), split.state_dict()
    for key, value in state_whole.items():
        if isinstance(value, np.ndarray):
            # the members taken moved on; the others' state stayed where it was at the take
            assert np.array_equal(state_split[key][members], value[members]), key
            assert not np.array_equal(state_split[key][1], value[1]), key


def test_an_optimizer_of_shared_parameters_cannot_take_members():
    opt = PackedAdam(3, 0.1, shared={"0.W"})
    with pytest.raises(DeepfitError, match="shared parameters"):
        opt.take([0, 1])

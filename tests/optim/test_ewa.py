"""Exponentially weighted averages and bias correction."""

from __future__ import annotations

import numpy as np
import pytest

import deepfit as df
from deepfit.optim import bias_correction, ewa_update_


def test_bias_corrected_average_of_a_constant_is_the_constant_from_step_one():
    avg = df.EWA(0.98)
    assert [avg.update(5.0) for _ in range(4)] == pytest.approx([5.0] * 4)
    raw = df.EWA(0.98, bias_correction=False)
    assert raw.update(5.0) == pytest.approx(0.1)  # (1 - 0.98) * 5: the start-up bias


def test_recurrence_by_hand():
    # v1 = 0.1 * 10 = 1, v2 = 0.9 * 1 + 0.1 * 20 = 2.9; corrected: 1/0.1, 2.9/0.19
    avg = df.EWA(0.9)
    assert avg.update(10.0) == pytest.approx(10.0)
    assert avg.update(20.0) == pytest.approx(2.9 / 0.19)
    assert avg.raw == pytest.approx(2.9)
    assert avg.t == 2


def test_arrays_and_state_round_trip():
    avg = df.EWA(0.5)
    avg.update(np.array([2.0, 4.0]))
    second = avg.update(np.array([4.0, 8.0]))
    assert np.allclose(second, (0.25 * np.array([2, 4]) + 0.5 * np.array([4, 8])) / 0.75)
    other = df.EWA(0.1)
    other.load_state_dict(avg.state_dict())
    assert np.allclose(other.update(np.ones(2)), avg.update(np.ones(2)))


def test_average_tracks_about_one_over_one_minus_beta_points():
    rng = np.random.default_rng(0)
    noisy = 10 + rng.standard_normal(5000)
    avg = df.EWA(0.98)
    values = [avg.update(x) for x in noisy]
    assert np.std(values[100:]) < 0.25 * np.std(noisy)  # averages ~50 points: std / sqrt(~100)
    assert np.mean(values[100:]) == pytest.approx(10, abs=0.1)


def test_primitives():
    v = np.array([1.0])
    assert ewa_update_(v, np.array([3.0]), 0.75) is v
    assert v[0] == pytest.approx(1.5)
    assert bias_correction(0.9, 2) == pytest.approx(0.19)


def test_invalid_beta():
    with pytest.raises(df.DeepfitError, match="beta must be in"):
        df.EWA(1.0)

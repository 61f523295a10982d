"""Learning-rate schedules as plain callables epoch -> lr."""

from __future__ import annotations

import math

import pytest

import deepfit as df
from deepfit.optim import schedules as S


def test_inverse_time_is_the_notes_decay():
    # the notes: alpha0 = 0.2, decay_rate = 1 gives 0.1, 0.067, 0.05, 0.04 for epoch_num 1..4
    s = S.inverse_time(0.2, rate=1.0)
    assert [round(s(e), 3) for e in range(5)] == [0.2, 0.1, 0.067, 0.05, 0.04]


@pytest.mark.parametrize(
    ("schedule", "expected"),
    [
        (S.constant(0.1), [0.1, 0.1, 0.1]),
        (S.exponential(1.0, k=0.95), [1.0, 0.95, 0.9025]),
        (S.inverse_sqrt(1.0), [1.0, 1 / math.sqrt(2), 1 / math.sqrt(3)]),
        (S.step(1.0, every=2, factor=0.1), [1.0, 1.0, 0.1, 0.1, 0.01]),
        (S.cosine(1.0, total=2, lr_min=0.1), [1.0, 0.55, 0.1, 0.1]),
        (S.warmup(1.0, epochs=2, start=0.5), [0.5, 0.75, 1.0, 1.0]),
        (S.warmup(S.step(1.0, every=1, factor=0.5), epochs=1, start=0.2), [0.2, 1.0, 0.5]),
    ],
    ids=repr,
)
def test_values(schedule, expected):
    assert [schedule(e) for e in range(len(expected))] == pytest.approx(expected)


@pytest.mark.parametrize(
    "schedule",
    [
        S.inverse_time(0.1, 0.5),
        S.exponential(0.1, 0.9),
        S.inverse_sqrt(0.1, 2.0),
        S.step(0.1, 3, 0.5),
        S.cosine(0.1, 10),
        S.warmup(S.cosine(0.1, 10), 3),
    ],
    ids=repr,
)
def test_config_round_trip(schedule):
    rebuilt = S.from_config(schedule.config())
    assert rebuilt == schedule
    assert [rebuilt(e) for e in range(12)] == [schedule(e) for e in range(12)]


def test_drives_an_optimizer():
    opt, schedule = df.SGD(1.0), S.exponential(0.5, 0.5)
    seen = []
    for epoch in range(3):
        opt.lr = schedule(epoch)
        seen.append(opt.lr)
    assert seen == [0.5, 0.25, 0.125]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: S.inverse_time(0, 1), "lr0 must be a positive"),
        (lambda: S.exponential(0.1, 1.5), r"k must be in \(0, 1\]"),
        (lambda: S.step(0.1, 0), "every must be a positive integer"),
        (lambda: S.cosine(0.1, 10, lr_min=1.0), "lr_min"),
        (lambda: S.from_config({"kind": "linear"}), "unknown schedule kind 'linear'"),
        (lambda: S.from_config({"kind": "step", "lr0": 0.1}), "schedule 'step'"),
        (lambda: S.inverse_time(0.1, 1)(-1), "epoch must be >= 0"),
    ],
)
def test_invalid(make, message):
    with pytest.raises(df.DeepfitError, match=message):
        make()

"""A legacy numpy.random.RandomState is accepted wherever an rng is (Dense, initializers,
Dropout, mlp), converted in one place: deepfit.backend.as_generator."""

from __future__ import annotations

import numpy as np
import pytest

import deepfit as df
from deepfit.backend import as_generator
from deepfit.nn import init


def test_as_generator_shares_the_random_states_stream():
    rs = np.random.RandomState(3)
    gen = as_generator(rs)
    assert isinstance(gen, np.random.Generator)
    first = gen.standard_normal(4)
    second = as_generator(rs).standard_normal(4)  # the state moved on: new numbers
    assert not np.array_equal(first, second)
    again = as_generator(np.random.RandomState(3)).standard_normal(4)
    np.testing.assert_array_equal(first, again)  # same seed, same numbers


def test_dense_and_initializers_accept_a_random_state():
    a = df.Dense(5, 3, rng=np.random.RandomState(7)).params["W"]
    b = df.Dense(5, 3, rng=np.random.RandomState(7)).params["W"]
    np.testing.assert_array_equal(a, b)
    assert abs(a.std() - np.sqrt(2 / 5)) < 0.4  # He scale, from the RandomState's stream
    for initializer in (init.he, init.xavier, init.glorot_uniform, init.normal(0.1)):
        w1 = initializer(6, 4, np.random.RandomState(1), np.dtype(np.float64))
        w2 = initializer(6, 4, np.random.RandomState(1), np.dtype(np.float64))
        assert w1.shape == (6, 4)
        np.testing.assert_array_equal(w1, w2)
    # an initializer called directly with a RandomState gives what Dense gives
    direct = init.he(5, 3, np.random.RandomState(7), np.dtype(np.float32))
    np.testing.assert_array_equal(direct, a)
    # and an int seed works there too
    np.testing.assert_array_equal(
        init.he(5, 3, 11, np.dtype(np.float64)),
        init.he(5, 3, np.random.default_rng(11), np.dtype(np.float64)),
    )


def test_mlp_and_dropout_accept_a_random_state():
    a = df.mlp(4, [6], 2, keep_prob=0.5, rng=np.random.RandomState(0))
    b = df.mlp(4, [6], 2, keep_prob=0.5, rng=np.random.RandomState(0))
    for name, value in a.state_dict().items():
        np.testing.assert_array_equal(value, b.state_dict()[name])
    x = np.ones((5, 4), dtype=np.float32)
    np.testing.assert_array_equal(a.forward(x, training=True), b.forward(x, training=True))


def test_other_rng_types_are_refused():
    with pytest.raises(df.DeepfitError, match="a RandomState, an int seed or None, got str"):
        df.Dense(2, 2, rng="0")

"""Dropout with an explicit keep mask: one call, or fixed on the layer (inside a model too)."""

from __future__ import annotations

import numpy as np
import pytest

import deepfit as df
from tests.gradients import layer_gradient_errors

MASK = np.array([[1, 0, 1, 1], [0, 1, 1, 0], [1, 1, 0, 1]])


def test_mask_for_one_call_is_rescaled_and_replayed_in_backward():
    layer = df.Dropout(0.5, rng=0)
    state = layer.rng.bit_generator.state
    x = np.arange(1.0, 13.0).reshape(3, 4)
    y = layer.forward(x, training=True, mask=MASK)
    np.testing.assert_array_equal(y, x * MASK / 0.5)  # the notes' a * d / keep_prob
    dy = np.full((3, 4), 3.0)
    np.testing.assert_array_equal(layer.backward(dy), dy * MASK / 0.5)
    assert layer.rng.bit_generator.state == state  # a given mask draws nothing
    # the next call without a mask draws again
    z = layer.forward(np.ones((200, 50)), training=True)
    assert 0.4 < float((z != 0).mean()) < 0.6


def test_boolean_mask_and_float32():
    layer = df.Dropout(0.8)
    x = np.ones((3, 4), dtype=np.float32)
    y = layer.forward(x, training=True, mask=MASK.astype(bool))
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, MASK / np.float32(0.8), rtol=1e-7)


def test_fixed_mask_attribute_reaches_a_layer_inside_a_model():
    model = df.Sequential(
        [df.Dense(2, 4, rng=0, dtype="float64"), df.Dropout(0.5, rng=1), df.Dense(4, 1, rng=2)]
    )
    model[1].mask = MASK
    x = np.random.default_rng(0).standard_normal((3, 2))
    y = model.forward(x, training=True)
    h = model[0].forward(x) * MASK / 0.5
    np.testing.assert_allclose(y, model[2].forward(h), rtol=1e-12)
    np.testing.assert_array_equal(model.forward(x, training=True), y)  # the same mask again
    # inference ignores it (the layer is the identity); None draws again
    np.testing.assert_array_equal(model.predict(x), model[2].forward(model[0].forward(x)))
    model[1].mask = None
    assert model[1].mask is None
    # a fixed mask makes the cost deterministic, so gradcheck accepts the model
    result = df.gradcheck(
        df.Sequential([df.Dense(2, 4, rng=0), df.Dropout(0.5, mask=MASK), df.Dense(4, 2, rng=2)]),
        df.SoftmaxCrossEntropy(),
        x,
        np.array([0, 1, 1]),
    )
    assert result.relative_error < 1e-7


def test_mask_gradient_float64():
    rng = np.random.default_rng(0)
    layer = df.Dropout(0.6, mask=MASK)
    errors = layer_gradient_errors(layer, rng.standard_normal((3, 4)), rng)
    assert errors["x"] < 1e-9


def test_mask_applies_even_at_keep_prob_one():
    y = df.Dropout(1.0).forward(np.ones((3, 4)), training=True, mask=MASK)
    np.testing.assert_array_equal(y, MASK)


@pytest.mark.parametrize(
    ("mask", "error", "message"),
    [
        (np.ones((3, 3)), df.ShapeError, r"mask has shape \(3, 3\), the input \(3, 4\)"),
        (MASK * 0.5, df.DeepfitError, "mask must hold 0 .drop. and 1 .keep. only, got 0.5"),
        (np.full((3, 4), "1"), df.DeepfitError, "mask must hold numbers 0 and 1"),
    ],
)
def test_bad_masks_are_refused(mask, error, message):
    with pytest.raises(error, match=message):
        df.Dropout(0.5).forward(np.ones((3, 4)), training=True, mask=mask)


def test_bad_fixed_mask_is_refused_when_set_and_mask_needs_training():
    layer = df.Dropout(0.5)
    with pytest.raises(df.DeepfitError, match="got 2"):
        layer.mask = MASK * 2
    with pytest.raises(df.DeepfitError, match="applies in training only"):
        layer.forward(np.ones((3, 4)), mask=MASK)

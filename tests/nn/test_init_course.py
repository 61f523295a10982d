"""The course notebooks' initializer (``course_he``, ``course_xavier``, ``course_normal``):
draw for draw the notebooks' ``np.random.seed(3); W = np.random.randn(n_out, n_in) * std``,
named in a config and built per network by :func:`deepfit.build.build_initializer`."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from deepfit import config as C
from deepfit.build import build_initializer, build_model
from deepfit.errors import DeepfitError
from deepfit.nn import init
from deepfit.nn.sequential import mlp


def _notebook(layers: list[int], std, seed: int = 3) -> list[np.ndarray]:
    """The notebooks' ``initialize_parameters_*``: ``np.random.seed(seed)`` then one
    ``randn(layers[l], layers[l - 1]) * std`` per layer (a legacy RandomState, as the global
    ``np.random`` is one)."""
    state = np.random.RandomState(seed)
    out = []
    for n_in, n_out in itertools.pairwise(layers):
        s = {"he": np.sqrt(2 / n_in), "xavier": np.sqrt(1 / n_in)}.get(std, std)
        out.append(state.randn(n_out, n_in) * s)
    return out


@pytest.mark.parametrize(
    ("model", "std"),
    [
        ({"init": "course_he"}, "he"),
        ({"init": "course_xavier"}, "xavier"),
        ({"init": "course_normal", "init_scale": 10.0}, 10.0),
    ],
)
def test_a_config_builds_the_notebooks_weights_bit_for_bit(model, std):
    config = C.validate(
        {"model": {"hidden": [10, 5], "loss": "sigmoid_binary_cross_entropy", **model}}
    )
    config["train"]["dtype"] = "float64"
    net = build_model(config, 2, 2, "sigmoid_binary_cross_entropy")
    expected = _notebook([2, 10, 5, 1], std)
    dense = [k for k in net.params if k.endswith(".W")]
    assert len(dense) == 3
    for key, W in zip(dense, expected, strict=True):
        assert np.array_equal(net.params[key], W.T)
    for key in net.params:
        if key.endswith(".b"):
            assert not net.params[key].any()


def test_the_seed_is_a_config_key_and_each_network_starts_afresh():
    config = C.validate({"model": {"hidden": [4], "init": "course_he", "init_seed": 1}})
    first = build_model(config, 3, 2, "softmax_cross_entropy")
    second = build_model(config, 3, 2, "softmax_cross_entropy")
    assert np.array_equal(first.params["0.W"], second.params["0.W"])
    assert np.array_equal(
        first.params["0.W"], _notebook([3, 4], "he", seed=1)[0].T.astype(np.float32)
    )
    # float32 is the float64 draw, cast
    assert first.params["0.W"].dtype == np.float32


def test_dropout_masks_keep_their_own_stream():
    """The course initializer ignores the model's generator: a network with dropout draws
    the same masks whatever the initializer, as it did when the lab put the initializer in
    after validation."""
    course = mlp(3, [8], 2, init=init.course("he", 3), keep_prob=0.5, rng=7, dtype="float64")
    plain = mlp(3, [8], 2, init="zeros", keep_prob=0.5, rng=7, dtype="float64")
    X = np.ones((4, 3))
    mask_course = course.layers[2].forward(X @ np.ones((3, 8)), training=True) != 0
    mask_plain = plain.layers[2].forward(X @ np.ones((3, 8)), training=True) != 0
    assert np.array_equal(mask_course, mask_plain)


def test_formula_of_each_rule():
    W = init.course("xavier", 0)(400, 300, None, np.dtype(np.float64))
    assert W.shape == (400, 300)
    assert W.var() == pytest.approx(1 / 400, rel=0.02)
    W = init.course(10.0, 0)(400, 300, None, np.dtype(np.float64))
    assert W.std() == pytest.approx(10.0, rel=0.02)
    assert init.from_name("normal", scale=0.5).scale == 0.5
    assert init.from_name("he") is init.he


def test_a_shared_course_initializer_by_name_is_refused():
    """By name through mlp/Dense every layer would restart the stream: refused, saying how."""
    with pytest.raises(DeepfitError, match=r"init 'course_he' draws one network's weights"):
        mlp(2, [3], 1, init="course_he")


@pytest.mark.parametrize(
    ("std", "seed", "message"),
    [
        ("glorot", 3, "std must be 'he', 'xavier' or > 0, got 'glorot'"),
        (0.0, 3, "std must be 'he', 'xavier' or > 0, got 0.0"),
        ("he", 2**32, r"seed must be an integer in \[0, 2\*\*32 - 1\], got 4294967296"),
        ("he", -1, r"seed must be an integer in \[0, 2\*\*32 - 1\], got -1"),
    ],
)
def test_bad_arguments_are_named(std, seed, message):
    with pytest.raises(DeepfitError, match=message):
        init.course(std, seed)


def test_config_validation_names_the_key():
    with pytest.raises(C.ConfigError, match=r"'model.init_seed' must be an integer in \[0, 2"):
        C.validate({"model": {"init_seed": -1}})
    with pytest.raises(C.ConfigError, match=r"'model.init_seed' must be .* got 4294967296"):
        C.validate({"model": {"init_seed": 2**32}})
    with pytest.raises(C.ConfigError, match="'model.init' must be one of .*'course_normal'"):
        C.validate({"model": {"init": "course"}})
    assert C.validate({})["model"]["init_seed"] == 3


def test_a_config_holds_names_not_objects():
    config = C.validate({})
    config["model"]["init"] = init.course("he", 3)
    with pytest.raises(C.ConfigError, match="'model.init' must be the name of an initializer"):
        build_initializer(config)


def test_a_config_written_before_init_seed_still_builds():
    config = C.validate({"model": {"init": "course_he"}})
    del config["model"]["init_seed"]
    assert build_initializer(config).seed == 3

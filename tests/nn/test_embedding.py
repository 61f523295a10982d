"""Embedding and EmbedColumns: lookup, scatter-add gradients, the reserved code 0, errors,
finite differences in float64 and PyTorch's nn.Embedding as the oracle."""

from __future__ import annotations

import numpy as np
import pytest

import deepfit as df
from deepfit.checks.gradcheck import relative_error
from deepfit.nn import layer_from_config
from tests.gradients import numeric_gradient
from tests.torch_oracle import Oracle

ORACLE = Oracle("embedding", 1e-13, 1e-15, float64=True)
ORACLE.worst = -1.0  # so that an exact first comparison is recorded too


@pytest.fixture(scope="module", autouse=True)
def _report_worst(request):
    yield
    if ORACLE.worst >= 0:  # something was compared (torch installed)
        ORACLE.report(request.config)


def param_errors(layer, x, rng):
    """Relative errors of every parameter gradient for ``J = sum(forward(x) * dy)``."""
    y = layer.forward(x, training=True)
    dy = rng.standard_normal(y.shape)
    dy_before = dy.copy()
    layer.backward(dy)
    assert np.array_equal(dy, dy_before), "backward mutated its input"
    analytic = {k: g.copy() for k, g in layer.grads.items()}

    def J() -> float:
        return float((layer.forward(x, training=True) * dy).sum())

    return {k: relative_error(numeric_gradient(J, p), analytic[k]) for k, p in layer.params.items()}


# -- Embedding ---------------------------------------------------------------------------------


def test_embedding_lookup_and_scatter_add_with_repeated_indices():
    layer = df.Embedding(5, 3, rng=0, dtype="float64")
    W = layer.params["W"]
    idx = np.array([4, 1, 4, 4, 0])
    y = layer.forward(idx, training=True)
    assert y.shape == (5, 3)
    assert np.array_equal(y, W[idx])
    dy = np.arange(15.0).reshape(5, 3)
    dx = layer.backward(dy)
    assert np.array_equal(dx, np.zeros(5))  # indices are not differentiable
    expected = np.zeros((5, 3))
    expected[4] = dy[0] + dy[2] + dy[3]  # three rows look up category 4: their gradients sum
    expected[1] = dy[1]
    expected[0] = dy[4]
    assert np.array_equal(layer.grads["W"], expected)
    # backward assigns, it does not accumulate across calls
    layer.forward(np.array([2]), training=True)
    layer.backward(np.ones((1, 3)))
    assert layer.grads["W"].sum() == 3.0 and np.array_equal(layer.grads["W"][2], np.ones(3))


def test_embedding_any_index_shape_and_integral_floats():
    layer = df.Embedding(6, 2, rng=1)
    idx = np.array([[0, 5, 2], [1, 1, 3]])
    y = layer.forward(idx.astype(np.float32))
    assert y.shape == (2, 3, 2) and y.dtype == np.float32
    assert np.array_equal(y, layer.params["W"][idx])


def test_embedding_gradient_float64():
    rng = np.random.default_rng(0)
    layer = df.Embedding(7, 4, rng=2, dtype="float64")
    idx = np.array([3, 3, 0, 6, 3, 2, 6])
    assert param_errors(layer, idx, rng)["W"] < 1e-9


def test_embedding_default_scale_and_torch_scale():
    # N(0, 1/dim): rows of squared norm ~1; scale=1.0 is torch's N(0, 1)
    W = df.Embedding(4000, 16, rng=0, dtype="float64").params["W"]
    assert abs(W.std() - 1 / 4) < 0.005
    assert abs(float((W**2).sum(axis=1).mean()) - 1.0) < 0.02
    W1 = df.Embedding(4000, 16, scale=1.0, rng=0, dtype="float64").params["W"]
    assert abs(W1.std() - 1.0) < 0.02


@pytest.mark.parametrize(
    ("idx", "message"),
    [
        (np.array([0, 5]), r"category code 5 is outside 0\.\.4 \(5 categories\)"),
        (np.array([-1, 2]), r"category code -1 is outside"),
        (np.array([0.5, 2.0]), r"category code 0\.5 is not an integer"),
        (np.array([np.nan]), r"category code nan is not an integer"),
    ],
)
def test_embedding_refuses_bad_indices(idx, message):
    with pytest.raises(df.DataError, match=message):
        df.Embedding(5, 2, rng=0).forward(idx)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_categories": 0, "dim": 2}, "n_categories must be a positive integer"),
        ({"n_categories": 3, "dim": 2.0}, "dim must be a positive integer"),
        ({"n_categories": 3, "dim": 2, "scale": -1.0}, "scale must be a positive number"),
    ],
)
def test_embedding_refuses_bad_arguments(kwargs, message):
    with pytest.raises(df.DeepfitError, match=message):
        df.Embedding(**kwargs)


def test_embedding_backward_needs_a_training_forward():
    layer = df.Embedding(3, 2, rng=0)
    layer.forward(np.array([1]))
    with pytest.raises(RuntimeError, match="without a preceding forward"):
        layer.backward(np.ones((1, 2)))


# -- EmbedColumns ------------------------------------------------------------------------------

N_IN, COLUMNS, CARDS, DIMS = 6, [4, 1], [5, 3], [3, 2]


def embed_input(m: int, rng: np.random.Generator, with_unknown: bool = True) -> np.ndarray:
    x = rng.standard_normal((m, N_IN))
    low = 0 if with_unknown else 1
    x[:, 4] = rng.integers(low, 5, m)
    x[:, 1] = rng.integers(low, 3, m)
    return x


def test_embed_columns_layout_widths_and_reserved_zero_row():
    layer = df.EmbedColumns(N_IN, COLUMNS, CARDS, DIMS, rng=0, dtype="float64")
    assert (layer.n_in, layer.n_out) == (6, 6 - 2 + 5)
    assert list(layer.params) == ["E0", "E1"]
    assert layer.params["E0"].shape == (5, 3) and layer.params["E1"].shape == (3, 2)
    assert not layer.params["E0"][0].any() and not layer.params["E1"][0].any()
    assert layer.params["E0"][1:].all()
    x = embed_input(8, np.random.default_rng(1))
    y = layer.forward(x)
    assert y.shape == (8, 9)
    # pass-through columns in their original order, then the embeddings in column order
    np.testing.assert_array_equal(y[:, :4], x[:, [0, 2, 3, 5]])
    np.testing.assert_array_equal(y[:, 4:7], layer.params["E0"][x[:, 4].astype(int)])
    np.testing.assert_array_equal(y[:, 7:9], layer.params["E1"][x[:, 1].astype(int)])
    # code 0 ("unknown") looks up the zero vector
    unknown = x[:, 4] == 0
    assert unknown.any() and not y[unknown, 4:7].any()


def test_embed_columns_backward_routes_and_zeroes_codes():
    rng = np.random.default_rng(2)
    layer = df.EmbedColumns(N_IN, COLUMNS, CARDS, DIMS, rng=0, dtype="float64")
    x = embed_input(10, rng)
    layer.forward(x, training=True)
    dy = rng.standard_normal((10, 9))
    dx = layer.backward(dy)
    assert dx.shape == (10, 6)
    np.testing.assert_array_equal(dx[:, [0, 2, 3, 5]], dy[:, :4])
    assert not dx[:, [1, 4]].any()  # codes are not differentiable
    expected = np.zeros((5, 3))
    for i, c in enumerate(x[:, 4].astype(int)):
        expected[c] += dy[i, 4:7]
    np.testing.assert_allclose(layer.grads["E0"], expected, rtol=1e-15, atol=1e-15)


def test_embed_columns_gradient_float64():
    rng = np.random.default_rng(3)
    layer = df.EmbedColumns(N_IN, COLUMNS, CARDS, DIMS, rng=4, dtype="float64")
    x = embed_input(12, rng)
    errors = param_errors(layer, x, rng)
    assert errors["E0"] < 1e-9 and errors["E1"] < 1e-9
    # the input gradient of the pass-through columns, by finite differences
    y = layer.forward(x, training=True)
    dy = rng.standard_normal(y.shape)
    dx = layer.backward(dy)
    passthrough = x[:, [0, 2, 3, 5]].copy()

    def J() -> float:
        xx = x.copy()
        xx[:, [0, 2, 3, 5]] = passthrough
        return float((layer.forward(xx, training=True) * dy).sum())

    assert relative_error(numeric_gradient(J, passthrough), dx[:, [0, 2, 3, 5]]) < 1e-9


def test_unknown_row_trains_only_when_code_zero_appears():
    rng = np.random.default_rng(5)
    layer = df.EmbedColumns(N_IN, COLUMNS, CARDS, DIMS, rng=0, dtype="float64")
    x = embed_input(20, rng, with_unknown=False)
    layer.forward(x, training=True)
    layer.backward(rng.standard_normal((20, 9)))
    assert not layer.grads["E0"][0].any() and not layer.grads["E1"][0].any()
    x[3, 4] = 0
    layer.forward(x, training=True)
    dy = rng.standard_normal((20, 9))
    layer.backward(dy)
    np.testing.assert_array_equal(layer.grads["E0"][0], dy[3, 4:7])


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        (4, 5.0, r"EmbedColumns column 4: category code 5 is outside 0\.\.4 \(5 categories\)"),
        (1, -1.0, r"EmbedColumns column 1: category code -1 is outside 0\.\.2"),
        (1, 1.5, r"EmbedColumns column 1: category code 1\.5 is not an integer"),
        (4, np.inf, r"EmbedColumns column 4: category code inf is not an integer"),
    ],
)
def test_embed_columns_refuses_bad_codes_naming_column_and_value(column, value, message):
    layer = df.EmbedColumns(N_IN, COLUMNS, CARDS, DIMS, rng=0)
    x = embed_input(4, np.random.default_rng(0))
    x[2, column] = value
    with pytest.raises(df.DataError, match=message):
        layer.forward(x)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((6, [4, 6], [5, 3], [3, 2]), r"columns\[1\] = 6 is not a column index in 0\.\.5"),
        ((6, [4, 4], [5, 3], [3, 2]), "column 4 is listed twice"),
        ((6, [4, 1], [5], [3, 2]), "2 columns, 1 cardinalities and 2 dims"),
        ((6, [4, 1], [5, 1], [3, 2]), r"cardinalities\[1\] must be an integer >= 2"),
        ((6, [4, 1], [5, 3], [3, 0]), r"dims\[1\] must be a positive integer"),
        ((6, [], [], []), "at least one code column"),
    ],
)
def test_embed_columns_refuses_bad_arguments(args, message):
    with pytest.raises(df.DeepfitError, match=message):
        df.EmbedColumns(*args)


def test_embed_columns_wrong_width_is_a_shape_error():
    layer = df.EmbedColumns(N_IN, COLUMNS, CARDS, DIMS, rng=0)
    with pytest.raises(df.ShapeError, match=r"expects input of shape \(batch, 6\), got \(2, 5\)"):
        layer.forward(np.zeros((2, 5)))


def test_config_round_trip_of_both_layers():
    for layer in (
        df.Embedding(9, 4, scale=0.5, rng=0),
        df.EmbedColumns(N_IN, COLUMNS, CARDS, DIMS, rng=0),
    ):
        config = layer.config()
        rebuilt = layer_from_config(config, dtype="float64", rng=1)
        assert type(rebuilt) is type(layer) and rebuilt.config() == config
        assert rebuilt.dtype == np.float64
        assert {k: v.shape for k, v in rebuilt.params.items()} == {
            k: v.shape for k, v in layer.params.items()
        }


def test_astype_float64_and_decay_keys():
    layer = df.EmbedColumns(N_IN, COLUMNS, CARDS, DIMS, rng=0).astype("float64")
    assert all(v.dtype == np.float64 for v in layer.params.values())
    assert all(v.dtype == np.float64 for v in layer.grads.values())
    assert layer.forward(embed_input(3, np.random.default_rng(0))).dtype == np.float64
    model = df.Sequential([layer, df.Dense(9, 2, rng=0, dtype="float64")])
    assert model.decay_names() == ["0.E0", "0.E1", "1.W"]
    assert model.n_inputs == 6 and model.n_outputs == 2


# -- PyTorch as the oracle ---------------------------------------------------------------------


@pytest.mark.torch
def test_embedding_matches_torch_with_repeated_indices():
    torch = pytest.importorskip("torch")
    oracle = ORACLE
    rng = np.random.default_rng(0)
    ours = df.Embedding(6, 4, rng=1, dtype="float64")
    theirs = torch.nn.Embedding(6, 4, dtype=torch.float64)
    with torch.no_grad():
        theirs.weight.copy_(torch.from_numpy(ours.params["W"]))  # same layout (n, dim)
    idx = np.array([[1, 5, 1], [1, 0, 5], [3, 3, 1]])  # category 1 four times
    dy = rng.standard_normal((3, 3, 4))
    y = ours.forward(idx, training=True)
    ours.backward(dy)
    y_t = theirs(torch.from_numpy(idx))
    (y_t * torch.from_numpy(dy)).sum().backward()
    oracle.assert_matches("Embedding forward", y, y_t)
    oracle.assert_matches("Embedding dW", ours.grads["W"], theirs.weight.grad)
    assert not ours.grads["W"][2].any() and not ours.grads["W"][4].any()

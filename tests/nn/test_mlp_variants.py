"""mlp(norm=, residual=, embed=): structure, whole-network gradient checks (float64), config,
state, model files, checkpoints with nested layers, dtype and backend moves, and training
through Trainer on a table with a categorical column."""

from __future__ import annotations

import json

import numpy as np
import pytest

import deepfit as df
from deepfit import io

EMBED = {"columns": [3], "cardinalities": [9], "dims": [4]}


def table(m: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Three numeric columns and one category code (1..8; 0 is 'unknown') in column 3; the
    class depends mostly on the category."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((m, 4))
    cat = rng.integers(1, 9, m)
    X[:, 3] = cat
    effect = np.array([0.0, 2, -2, 1.5, -1.5, 2.5, -2.5, 1, -1])
    y = (effect[cat] + 0.5 * X[:, 0] + 0.3 * rng.standard_normal(m) > 0).astype(np.int64)
    return X.astype(np.float32), y


def test_batchnorm_flag_and_norm_batchnorm_build_the_same_network():
    a = df.mlp(5, [8, 4], 3, batchnorm=True, keep_prob=0.9, rng=0)
    b = df.mlp(5, [8, 4], 3, norm="batchnorm", keep_prob=0.9, rng=0)
    assert a.config() == b.config()
    for name, value in a.state_dict().items():
        np.testing.assert_array_equal(value, b.state_dict()[name])


def test_layernorm_mlp_structure_keeps_the_biases():
    model = df.mlp(5, [8, 4], 3, norm="layernorm", rng=0)
    kinds = [type(layer).__name__ for layer in model]
    assert kinds == ["Dense", "LayerNorm", "ReLU", "Dense", "LayerNorm", "ReLU", "Dense"]
    assert "0.b" in model.params and "1.gamma" in model.params


def test_residual_embed_mlp_structure_and_names():
    model = df.mlp(4, [8, 6], 2, residual=True, norm="layernorm", keep_prob=0.8, embed=EMBED)
    kinds = [type(layer).__name__ for layer in model]
    assert kinds == ["EmbedColumns", "Dense", "Residual", "Residual", "LayerNorm", "ReLU", "Dense"]
    assert (model[0].n_in, model[0].n_out, model[1].n_in) == (4, 3 + 4, 7)
    assert [type(layer).__name__ for layer in model[3].f] == [
        "LayerNorm",
        "Dense",
        "ReLU",
        "Dropout",
        "Dense",
    ]
    assert (model[3].f[1].n_in, model[3].f[1].n_out, model[3].f[4].n_out) == (8, 6, 8)
    assert list(model.params)[:8] == [
        "0.E0",
        "1.W",
        "1.b",
        "2.f.0.gamma",
        "2.f.0.beta",
        "2.f.1.W",
        "2.f.1.b",
        "2.f.4.W",
    ]
    assert model.n_inputs == 4 and model.n_outputs == 2
    assert model.n_params == sum(p.size for p in model.params.values())
    # one qualified name per array, no collisions
    assert len(set(model.params)) == len(model.params)


def test_residual_without_hidden_is_a_linear_model():
    model = df.mlp(3, [], 2, residual=True, rng=0)
    assert [type(layer).__name__ for layer in model] == ["Dense"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"norm": "groupnorm"}, "norm must be one of batchnorm, layernorm or None"),
        ({"batchnorm": True, "norm": "layernorm"}, "batchnorm=True and norm='layernorm'"),
        ({"embed": {"columns": [3], "dims": [2]}}, "embed: missing key 'cardinalities'"),
        ({"embed": dict(EMBED, width=3)}, "embed: unknown key 'width'"),
        ({"embed": [3]}, "embed must be a mapping"),
        ({"keep_prob": 0.0}, r"keep_prob must be in \(0, 1\]"),
    ],
)
def test_bad_options_are_refused(kwargs, message):
    with pytest.raises(df.DeepfitError, match=message):
        df.mlp(4, [5], 2, rng=0, **kwargs)


@pytest.mark.parametrize("norm", [None, "layernorm", "batchnorm"])
def test_gradcheck_residual_mlp(norm):
    X, y = table(12, seed=1)
    model = df.mlp(3, [5, 6], 3, activation="tanh", residual=True, norm=norm, rng=2)
    result = df.gradcheck(model, df.SoftmaxCrossEntropy(), X[:, :3], y, l2=0.1)
    assert result.relative_error < 1e-7, result.report()
    assert list(result.per_tensor) == list(model.params)  # the blocks' inner tensors too
    assert sum(".f." in name for name in result.per_tensor) == (12 if norm else 8)


def test_gradcheck_mlp_with_embed_columns():
    X, y = table(16, seed=3)
    X[0, 3] = 0  # an unknown category trains the reserved row too
    model = df.mlp(4, [6], 2, activation="tanh", norm="layernorm", embed=EMBED, rng=4)
    result = df.gradcheck(model, df.SoftmaxCrossEntropy(), X, y, l2=0.05)
    assert result.relative_error < 1e-7, result.report()
    assert result.per_tensor["0.E0"] < 1e-7


def test_gradcheck_sees_dropout_inside_a_block():
    X, y = table(10)
    model = df.mlp(4, [5], 2, residual=True, keep_prob=0.7, embed=EMBED, rng=0)
    with pytest.raises(
        df.GradientCheckError, match=r"active dropout \(layer 2\.f\.2, keep_prob=0.7\)"
    ):
        df.gradcheck(model, df.SoftmaxCrossEntropy(), X, y)
    result = df.gradcheck(
        model, df.SoftmaxCrossEntropy(), X, y, disable_dropout=True, max_per_tensor=10
    )
    assert result.relative_error < 1e-6, result.report()


def test_config_state_and_model_file_round_trip(tmp_path):
    X, _ = table(20)
    model = df.mlp(4, [8, 6], 2, residual=True, norm="batchnorm", keep_prob=0.9, embed=EMBED)
    model.forward(X, training=True)  # moves the running statistics
    config = json.loads(json.dumps(model.config()))  # plain JSON data
    rebuilt = df.Sequential.from_config(config, rng=5)
    assert rebuilt.config() == model.config()
    rebuilt.load_state_dict(model.state_dict())
    np.testing.assert_array_equal(rebuilt.predict(X), model.predict(X))

    bundle = io.ModelBundle(model=model, loss="softmax_cross_entropy", class_names=["a", "b"])
    loaded = io.load(io.save(bundle, tmp_path / "model.npz"))
    assert loaded.model.config() == model.config()
    assert set(loaded.model.state_dict()) == set(model.state_dict())
    np.testing.assert_array_equal(loaded.model.predict(X), model.predict(X))
    np.testing.assert_array_equal(loaded.predict(X), bundle.predict(X))


@pytest.mark.parametrize("norm", ["layernorm", "batchnorm"])
def test_memory_estimate_counts_every_array_of_the_new_layers(norm):
    from deepfit.memory import architecture_bytes

    model = df.mlp(4, [8, 6], 2, residual=True, norm=norm, embed=EMBED, rng=0)
    entries = sum(v.size for v in (*model.params.values(), *model.buffers.values()))
    assert architecture_bytes(model.config(), "float32") == 2 * 4 * entries


def test_astype_to_and_predict():
    X, _ = table(9)
    model = df.mlp(4, [6], 3, residual=True, norm="layernorm", embed=EMBED, rng=0)
    p32 = model.predict(X)
    model.astype("float64").to("numpy")
    assert model.dtype == np.float64 and model.device == "numpy"
    assert all(v.dtype == np.float64 for v in model.params.values())
    p64 = model.predict(X)
    assert p64.dtype == np.float64 and p64.shape == (9, 3)
    np.testing.assert_allclose(p64, p32, rtol=1e-5, atol=1e-5)
    assert model.predict(X[:0]).shape == (0, 3)


def _trainer(model, path=None):
    callbacks = [df.Checkpoint(path)] if path is not None else []
    return df.Trainer(
        model, optimizer=df.Adam(0.01), batch_size=16, l2=0.01, seed=1, callbacks=callbacks
    )


def test_checkpoint_resume_is_exact_with_dropout_inside_blocks(tmp_path):
    X, y = table(80)

    def build():
        return df.mlp(
            4, [8, 8], 2, residual=True, norm="layernorm", keep_prob=0.8, embed=EMBED, rng=3
        )

    straight = build()
    _trainer(straight, tmp_path / "a.npz").fit(X, y, epochs=4)
    _trainer(build(), tmp_path / "b.npz").fit(X, y, epochs=2)
    resumed = build()
    trainer = _trainer(resumed, tmp_path / "b.npz")
    trainer.fit(X, y, epochs=4, resume=True)
    assert trainer.resumed
    # the dropout generators inside the blocks were restored, so every mask was replayed
    for name, value in straight.state_dict().items():
        np.testing.assert_array_equal(resumed.state_dict()[name], value, err_msg=name)


def test_embed_residual_layernorm_mlp_trains():
    X, y = table(400, seed=7)
    Xdev, ydev = table(200, seed=8)
    model = df.mlp(4, [16, 16], 2, residual=True, norm="layernorm", embed=EMBED, rng=0)
    trainer = _trainer(model)
    first = trainer.evaluate(X, y)["loss"]
    history = trainer.fit(X, y, epochs=15, validation_data=(Xdev, ydev))
    losses = history["train_loss"]
    assert losses[-1] < losses[0]
    final = trainer.evaluate(X, y)
    assert final["loss"] < 0.5 * first, (first, final, losses)
    assert final["accuracy"] > 0.85
    assert trainer.evaluate(Xdev, ydev)["accuracy"] > 0.8
    # the category carries the signal: its embedding rows moved, the unknown row did not
    assert not model.params["0.E0"][0].any()
    # a category unseen in training (code 0) still predicts
    Xdev[:5, 3] = 0
    assert np.isfinite(model.predict(Xdev[:5])).all()


def test_trainer_checks_the_raw_input_width_of_an_embed_model():
    X, y = table(10)
    model = df.mlp(4, [5], 2, embed=EMBED, rng=0)
    with pytest.raises(df.DataError, match="has 3 features but the model's input layer expects 4"):
        _trainer(model).fit(X[:, :3], y, epochs=1)

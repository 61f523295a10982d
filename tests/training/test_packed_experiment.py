"""``[model] ensemble = K`` through the experiment pipeline: training, model file, resume."""

from __future__ import annotations

import numpy as np
import pytest

import deepfit as df
from deepfit import config as C
from deepfit import experiment as E
from deepfit.nn import mlp
from deepfit.nn.losses import softmax
from deepfit.nn.packed import EnsembleMean, PackedSequential


def _config(tmp_path, **model):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((300, 3))
    y = np.where(X[:, 0] * X[:, 1] > 0, "in", "out")
    with open(tmp_path / "train.csv", "w") as f:
        f.write("a,b,c,label\n")
        for row, label in zip(X, y, strict=True):
            f.write(f"{row[0]:.5f},{row[1]:.5f},{row[2]:.5f},{label}\n")
    return C.validate(
        {
            "data": {"source": "csv", "path": str(tmp_path / "train.csv"), "target": "label"},
            "model": {"hidden": [16, 16], **model},
            "train": {"lr": 0.01, "epochs": 12, "batch_size": 32},
        }
    )


@pytest.mark.parametrize("kind", ["deep", "batch"])
def test_ensemble_run_model_file_and_mean_prediction(tmp_path, kind):
    config = _config(tmp_path, ensemble=4, ensemble_kind=kind, keep_prob=0.9)
    summary = E.run(config, tmp_path / "run", progress=False)
    model = summary["model"]
    assert isinstance(model, PackedSequential) and model.members == 4 and model.kind == kind
    assert isinstance(model.layers[-1], EnsembleMean)
    assert summary["test"]["accuracy"] > 0.75
    bundle = df.io.load(tmp_path / "run" / "model.npz")
    assert isinstance(bundle.model, PackedSequential) and bundle.model.kind == kind
    X = np.random.default_rng(1).standard_normal((20, 3))
    table = {"a": X[:, 0], "b": X[:, 1], "c": X[:, 2]}
    proba = bundle.predict_proba(table)
    # the ensemble's probabilities are the mean of its members'
    Xp = bundle.transform(table)
    members = softmax(bundle.model.predict_members(Xp).reshape(-1, 2)).reshape(4, 20, 2)
    np.testing.assert_allclose(proba, members.mean(axis=0), rtol=1e-5, atol=1e-6)
    assert set(bundle.predict(table)) <= {"in", "out"}


def test_ensemble_resumes_exactly(tmp_path):
    config = _config(tmp_path, ensemble=3, keep_prob=0.8)
    straight = E.run(config, tmp_path / "a", progress=False)
    short = {**config, "train": {**config["train"], "epochs": 5}}
    E.run(short, tmp_path / "b", progress=False)
    resumed = E.run(config, tmp_path / "b", progress=False, resume=True)
    for a, b in zip(
        straight["model"].state_dict().values(), resumed["model"].state_dict().values(), strict=True
    ):
        assert np.array_equal(a, b)


def test_deep_ensemble_members_are_seeded_networks():
    model = mlp(3, [5], 2, ensemble=3, rng=7, dtype="float64")
    children = np.random.default_rng(7).spawn(3)
    for k, child in enumerate(children):
        single = mlp(3, [5], 2, rng=child, dtype="float64")
        for a, b in zip(
            single.state_dict().values(), model.member(k).state_dict().values(), strict=True
        ):
            assert np.array_equal(a, b)


def test_ensemble_refuses_what_has_no_packed_version(tmp_path):
    with pytest.raises(df.DeepfitError, match="model.residual"):
        _config(tmp_path, ensemble=2, residual=True)
    with pytest.raises(df.DeepfitError, match="model.ensemble"):
        _config(tmp_path, ensemble=0)
    with pytest.raises(df.DeepfitError, match="model.ensemble_kind"):
        _config(tmp_path, ensemble=2, ensemble_kind="snapshot")
    with pytest.raises(df.DeepfitError, match="does not support norm='layernorm'"):
        mlp(3, [4], 2, ensemble=2, norm="layernorm")


@pytest.mark.parametrize("kind", ["deep", "batch"])
def test_cli_gradcheck_checks_an_ensemble(kind, capsys):
    from pathlib import Path

    from deepfit import cli

    example = Path(__file__).resolve().parents[2] / "examples" / "breast_cancer.toml"
    argv = ["gradcheck", str(example), "--max-per-tensor", "5", "--examples", "16"]
    argv += ["--set", "model.ensemble=2", "--set", f"model.ensemble_kind={kind}"]
    assert cli.main(argv) == 0
    assert "fine" in capsys.readouterr().out


def test_cli_inspect_looks_at_one_member_of_an_ensemble(capsys):
    from pathlib import Path

    from deepfit import cli

    example = Path(__file__).resolve().parents[2] / "examples" / "breast_cancer.toml"
    argv = ["inspect", str(example), "--steps", "2", "--set", "model.ensemble=3"]
    assert cli.main(argv) == 0
    assert "after 2 training steps" in capsys.readouterr().out

"""Model files: round trip, no pickle, and one clear line for every bad file."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

import deepfit as df
from deepfit import io


def _bundle():
    model = df.mlp(4, [6, 5], 3, batchnorm=True, keep_prob=0.8, rng=0)
    model.forward(np.random.default_rng(0).standard_normal((10, 4)), training=True)
    return io.ModelBundle(
        model=model,
        loss="softmax_cross_entropy",
        standardizer={"mean": np.arange(4.0), "std": np.ones(4)},
        class_names=["cat", "dog", "eel"],
        feature_names=["a", "b", "c", "d"],
        config={"train": {"lr": 0.01}},
    )


def test_round_trip(tmp_path):
    bundle = _bundle()
    path = io.save(bundle, tmp_path / "model.npz")
    loaded = io.load(path)
    x = np.random.default_rng(1).standard_normal((7, 4))
    assert np.array_equal(loaded.model.predict(x), bundle.model.predict(x))
    assert loaded.model.config() == bundle.model.config()
    assert loaded.class_names == ["cat", "dog", "eel"]
    assert loaded.feature_names == ["a", "b", "c", "d"]
    assert np.array_equal(loaded.standardizer["mean"], np.arange(4.0))
    assert loaded.config == {"train": {"lr": 0.01}}
    assert loaded.loss == "softmax_cross_entropy" and loaded.version == df.__version__
    assert not list(tmp_path.glob(".*.tmp"))  # no temporary file left behind


def test_files_hold_no_pickles(tmp_path):
    path = io.save(_bundle(), tmp_path / "model.npz")
    with zipfile.ZipFile(path) as z:
        for name in z.namelist():
            header = z.read(name)[:128]
            assert b"'descr': '|O'" not in header, name
    np.load(path, allow_pickle=False)["__meta__"]  # readable without pickle
    with pytest.raises(df.DeepfitError, match="holds Python objects"):
        io.save_arrays(tmp_path / "x.npz", {"a": np.array([{}], dtype=object)}, {})


def test_truncated_corrupted_and_foreign_files_are_refused(tmp_path):
    good = io.save(_bundle(), tmp_path / "model.npz").read_bytes()
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(good[: len(good) // 2])
    with pytest.raises(df.DeepfitError, match=r"truncated\.npz: not a readable deepfit file"):
        io.load(truncated)
    corrupted = tmp_path / "corrupted.npz"
    corrupted.write_bytes(good[:200] + bytes(200) + good[400:])
    with pytest.raises(df.DeepfitError, match=r"corrupted\.npz"):
        io.load(corrupted)
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(df.DeepfitError, match=r"notes\.txt: not a readable deepfit file"):
        io.load(text)
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, W=np.ones(3))
    with pytest.raises(df.DeepfitError, match=r"foreign.npz: not a deepfit file \(no __meta__"):
        io.load(foreign)
    with pytest.raises(df.DeepfitError, match=r"missing\.npz: no such file"):
        io.load(tmp_path / "missing.npz")


def test_other_formats_and_versions_are_refused(tmp_path):
    path = tmp_path / "model.npz"
    io.save_arrays(path, {}, {"format": "deepfit-checkpoint"})
    with pytest.raises(df.DeepfitError, match="expected a deepfit-model file"):
        io.load(path)
    bundle = _bundle()
    io.save(bundle, path)
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files if k != "__meta__"}
        meta = json.loads(str(z["__meta__"]))
    meta["format_version"] = 99
    io.save_arrays(path, arrays, meta)
    with pytest.raises(df.DeepfitError, match="format version 99"):
        io.load(path)
    meta["format_version"] = io.MODEL_FORMAT_VERSION
    del arrays["model/0.W"]
    io.save_arrays(path, arrays, meta)
    with pytest.raises(df.DeepfitError, match=r"damaged model file: .*missing 0\.W"):
        io.load(path)


def test_a_failed_write_keeps_the_old_file(tmp_path):
    path = tmp_path / "model.npz"
    io.atomic_write_text(path, "old")

    def explode(f):
        f.write(b"partial")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        io.atomic_write(path, explode)
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["model.npz"]

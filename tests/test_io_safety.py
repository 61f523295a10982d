"""Hostile files and hostile conditions (issue 14): every one refused in one line naming the
file, before anything large is allocated; writes that never touch the umask and name the file
when the disk is full."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import threading
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest

import deepfit as df
from deepfit import io
from deepfit.bundle import check_metadata
from deepfit.errors import DataError, DeepfitError


def _bundle(**kw):
    model = df.mlp(4, [6], 3, batchnorm=True, rng=0)
    model.forward(np.random.default_rng(0).standard_normal((10, 4)), training=True)
    fields = {
        "model": model,
        "loss": "softmax_cross_entropy",
        "standardizer": {"mean": np.arange(4.0), "std": np.ones(4)},
        "class_names": ["cat", "dog", "eel"],
        "feature_names": ["a", "b", "c", "d"],
        "config": {"train": {"lr": 0.01}},
    }
    return io.ModelBundle(**{**fields, **kw})


def _parts(path):
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files if k != "__meta__"}
        meta = json.loads(str(z["__meta__"]))
    return arrays, meta


def _one_line(exc_info) -> str:
    text = str(exc_info.value)
    assert "\n" not in text
    return text


# -- item 9: non-finite weights, zero standard deviation ---------------------------------------
@pytest.mark.parametrize(
    ("array", "value", "message"),
    [
        ("model/0.W", np.nan, r"weight '0\.W' holds NaN"),
        ("model/1.running_var", -1.0, r"batch-norm variance '1\.running_var' is negative"),
        ("standardizer/std", 0.0, r"standardizer std of column 0 is 0\.0"),
        ("standardizer/mean", np.inf, "standardizer mean holds NaN or infinity"),
    ],
)
def test_a_model_with_nan_weights_or_zero_std_is_refused_on_load(tmp_path, array, value, message):
    path = io.save(_bundle(), tmp_path / "model.npz")
    arrays, meta = _parts(path)
    arrays[array] = arrays[array].copy()
    arrays[array].flat[0] = value
    io.save_arrays(path, arrays, meta)
    with pytest.raises(DeepfitError, match=rf"model\.npz: unusable model: {message}") as exc:
        io.load(path)
    _one_line(exc)


def test_names_that_disagree_with_the_network_are_refused(tmp_path):
    path = io.save(_bundle(), tmp_path / "model.npz")
    arrays, meta = _parts(path)
    meta["class_names"] = ["cat", "dog"]
    io.save_arrays(path, arrays, meta)
    with pytest.raises(DeepfitError, match="2 class names for a network with 3 outputs"):
        io.load(path)


# -- item 12 and 20: damaged and random-bytes .npz ----------------------------------------------
def test_truncated_crc_damaged_and_random_npz_training_data(tmp_path):
    good = tmp_path / "good.npz"
    np.savez_compressed(good, X=np.random.default_rng(0).standard_normal((500, 4)), y=np.zeros(500))
    raw = good.read_bytes()
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(raw[: len(raw) // 2])
    crc = tmp_path / "crc.npz"
    damaged = bytearray(raw)
    damaged[len(raw) // 3] ^= 0xFF  # inside X's compressed data: the CRC no longer matches
    crc.write_bytes(bytes(damaged))
    noise = tmp_path / "noise.npz"
    noise.write_bytes(np.random.default_rng(1).bytes(4096))
    for path in (truncated, crc, noise):
        with pytest.raises(DataError, match=rf"{path.name}: not a readable") as exc:
            df.data.npz(path)
        text = _one_line(exc)
        assert "allow_pickle" not in text and "unsafe" not in text, text


def test_a_pickle_never_gets_the_advice_to_load_it_unsafely(tmp_path):
    path = tmp_path / "pickled.npy"
    np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    target = tmp_path / "pickled.npz"
    path.rename(target)  # a .npy holding a pickle, named .npz
    for read in (df.data.npz, io.load):
        with pytest.raises(DeepfitError) as exc:
            read(target)
        assert "allow_pickle" not in str(exc.value) and "unsafe" not in str(exc.value)


# -- item 13: metadata against a schema -------------------------------------------------------
@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda m: m.update(image_shape=784), "'image_shape' must be a list of positive integers"),
        (lambda m: m.update(config="lr=1"), "'config' must be a table, not str"),
        (lambda m: m.update(class_names="cat"), "'class_names' must be a list of strings"),
        (lambda m: m.update(class_names=["a", 1, "c"]), r"holds 1 \(int\)"),
        (lambda m: m.update(architecture={"type": "Dense"}), "'architecture' must be a non-empty"),
        (lambda m: m.update(architecture=[{"type": "Dense", "n_in": {"a": 4}}]), "plain values"),
        (lambda m: m.update(dtype=7), "'dtype' must be 'float32' or 'float64'"),
        (lambda m: m.update(loss=None), "'loss' must be one of"),
        (lambda m: m.pop("architecture"), "'architecture' is missing"),
        (lambda m: m.update(standardizer="mean"), "'standardizer' must be a table"),
        (lambda m: m.update(feature_names={"a": 1}), "'feature_names' must be a list"),
    ],
)
def test_metadata_fields_are_type_checked(tmp_path, change, message):
    path = io.save(_bundle(), tmp_path / "model.npz")
    arrays, meta = _parts(path)
    change(meta)
    io.save_arrays(path, arrays, meta)
    with pytest.raises(DeepfitError, match=rf"model\.npz: damaged model file: .*{message}") as exc:
        io.load(path)
    _one_line(exc)


def test_a_missing_standardizer_array_is_one_clear_line(tmp_path):
    path = io.save(_bundle(), tmp_path / "model.npz")
    arrays, meta = _parts(path)
    del arrays["standardizer/mean"]
    io.save_arrays(path, arrays, meta)
    with pytest.raises(DeepfitError, match=r"array 'standardizer/mean' is missing"):
        io.load(path)


def test_deeply_nested_metadata_is_refused_without_recursion(tmp_path):
    path = io.save(_bundle(), tmp_path / "model.npz")
    arrays, _ = _parts(path)
    payload = {k: v for k, v in arrays.items()}
    payload["__meta__"] = np.array("[" * 200_000 + "]" * 200_000)
    with open(path, "wb") as f:
        np.savez(f, **payload)
    with pytest.raises(DeepfitError, match="metadata nested deeper than 32 levels"):
        io.load(path)
    assert io.json_depth('{"a": "[[[[", "b": [[1], {"c": "]]"}]}') == 3


def test_the_schema_accepts_a_preprocessor_entry():
    bundle = _bundle()
    meta = {
        "format": io.MODEL_FORMAT,
        "format_version": 1,
        "architecture": bundle.model.config(),
        "dtype": "float32",
        "loss": "mse",
        "preprocessor": {"columns": [{"name": "a", "kind": "numeric"}]},
    }
    check_metadata(meta, {})


# -- item 14: sizes checked before allocating -------------------------------------------------
def _zip_bomb(path: Path, gib: float) -> None:
    """An .npz whose one array declares ``gib`` GiB of zeros, compressed to a few MB."""
    n = int(gib * (1 << 30))
    header = {"descr": "|u1", "fortran_order": False, "shape": (n,)}
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        with z.open("X.npy", "w", force_zip64=True) as f:
            np.lib.format.write_array_header_2_0(f, header)
            chunk = bytes(1 << 24)
            for _ in range(n // len(chunk)):
                f.write(chunk)
        z.writestr("y.npy", b"")


def test_a_zip_bomb_is_refused_before_decompressing(tmp_path, monkeypatch):
    monkeypatch.setenv(io.MAX_BYTES_ENV, str(64 << 20))
    bomb = tmp_path / "bomb.npz"
    _zip_bomb(bomb, 0.25)
    assert bomb.stat().st_size < 1 << 20
    with pytest.raises(DataError, match=r"bomb\.npz .*needs 256\.0 MiB in memory, more than"):
        df.data.npz(bomb)
    with pytest.raises(DeepfitError, match=r"bomb\.npz .*needs 256\.0 MiB"):
        io.load(bomb)


def test_a_npy_header_cannot_claim_more_than_its_member_holds(tmp_path):
    path = tmp_path / "liar.npz"
    with zipfile.ZipFile(path, "w") as z:
        with z.open("X.npy", "w") as f:
            header = {"descr": "<f8", "fortran_order": False, "shape": (10**6, 10**3)}
            np.lib.format.write_array_header_1_0(f, header)
            f.write(bytes(64))
    with pytest.raises(DeepfitError, match=r"liar\.npz: array 'X' .*(needs|declares)"):
        io.read_npz(path)


def test_a_model_file_declaring_a_huge_layer_is_refused_before_building(tmp_path, monkeypatch):
    path = io.save(_bundle(), tmp_path / "model.npz")
    arrays, meta = _parts(path)
    meta["architecture"][0] = {"type": "Dense", "n_in": 4, "n_out": 10**9, "bias": False}
    io.save_arrays(path, arrays, meta)
    with pytest.raises(DeepfitError, match=r"model\.npz: the architecture it declares needs"):
        io.load(path)


def test_a_huge_network_is_refused_up_front_with_an_estimate():
    from deepfit import build
    from deepfit import config as configuration

    config = configuration.validate({"model": {"hidden": [100000, 100000]}})
    with pytest.raises(DeepfitError, match=r"'model.hidden' = \[100000, 100000\] .*needs about"):
        build.build_model(config, 64, 10, "softmax_cross_entropy")


def test_initial_weights_are_drawn_in_chunks_with_the_same_numbers():
    from deepfit.backend import normal

    rng_a, rng_b = np.random.default_rng(3), np.random.default_rng(3)
    a = normal(rng_a, (1500, 1000), np.dtype(np.float32), 0.5)
    b = (rng_b.standard_normal((1500, 1000)) * 0.5).astype(np.float32)
    assert a.dtype == np.float32 and np.array_equal(a, b)
    for init in ("he", "xavier", "glorot_uniform"):
        tracemalloc.start()
        try:
            layer = df.nn.Dense(2000, 1500, init, rng=5)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        w = layer.params["W"]
        assert w.dtype == np.float32 and w.shape == (2000, 1500)
        # W and its gradient (2 x 12 MB) plus one 8 MB chunk: no 24 MB float64 copy of W
        assert peak < 2 * w.nbytes + (10 << 20), (init, peak)


def test_the_size_helpers():
    assert io.format_bytes(1536) == "1.5 KiB" and io.format_bytes(12) == "12 bytes"
    with pytest.raises(DeepfitError, match="big thing needs 2.0 KiB in memory, more than the 1.0"):
        io.check_size(2048, "big thing", limit=1024)
    io.check_size(1024, "fine", limit=1024)


# -- item 16: a full disk names the file -------------------------------------------------------
def test_a_full_disk_names_the_file(tmp_path):
    def full(f):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with pytest.raises(OSError) as exc:
        io.atomic_write(tmp_path / "model.npz", full)
    assert exc.value.filename == str(tmp_path / "model.npz")
    assert list(tmp_path.iterdir()) == []


# -- item 24: the umask is never changed --------------------------------------------------------
def test_atomic_write_never_touches_the_process_umask(tmp_path, monkeypatch):
    def forbidden(mask):
        raise AssertionError("os.umask called: not thread-safe")

    monkeypatch.setattr(os, "umask", forbidden)
    paths = [tmp_path / f"f{i}.txt" for i in range(16)]
    threads = [threading.Thread(target=io.atomic_write_text, args=(p, "x")) for p in paths]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(p.read_text() == "x" for p in paths)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX modes")
def test_files_get_the_mode_the_umask_gives(tmp_path):
    script = (
        "import os, sys; os.umask(0o027); from deepfit import io; "
        "p = io.atomic_write_text(sys.argv[1], 'x'); print(oct(os.stat(p).st_mode & 0o777))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "a.txt")], capture_output=True, text=True
    )
    assert done.stdout.strip() == "0o640", done.stderr


# -- item 26: formula injection -----------------------------------------------------------------
@pytest.mark.parametrize(
    ("cell", "safe"),
    [
        ('=HYPERLINK("http://x")', '\'=HYPERLINK("http://x")'),
        ("+1+2", "'+1+2"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tcmd", "'\tcmd"),
        ("\rcmd", "'\rcmd"),
        ("-1.5", "-1.5"),
        ("+3", "+3"),
        ("-inf", "-inf"),
        ("cat", "cat"),
        ("", ""),
    ],
)
def test_spreadsheet_safe_prefixes_formulas_but_not_numbers(cell, safe):
    assert io.spreadsheet_safe(cell) == safe


# -- the lock -----------------------------------------------------------------------------------
def test_a_lock_names_its_holder_and_leaves_nothing_behind(tmp_path):
    with io.FileLock(tmp_path / ".lock", "run directory x", "deepfit train"):
        with pytest.raises(
            DeepfitError,
            match=r"run directory x is in use by another deepfit "
            rf"train \(pid {os.getpid()} on ",
        ):
            io.FileLock(tmp_path / ".lock", "run directory x", "deepfit train")
    assert list(tmp_path.iterdir()) == []
    io.FileLock(tmp_path / ".lock", "again").release()

"""Image folders: PNGs written from the shared MNIST digits, read back exactly; resizing,
grey and RGB, every refusal, and `deepfit train` / `predict` / `evaluate` on a folder."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from deepfit import config as C
from deepfit import experiment as E
from deepfit.data.idxfile import IMAGES_MAGIC, LABELS_MAGIC, read_idx
from deepfit.data.images import (
    LUMA,
    find_images,
    image_inputs,
    images,
    labelled_image_inputs,
    parse_image_size,
    read_image,
)
from deepfit.errors import DataError

Image = pytest.importorskip("PIL.Image")

MNIST10K = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "mnist10k"
N_DIGITS = 500


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    """The first 500 shared MNIST digits: uint8 (500, 28, 28) and labels."""
    if not (MNIST10K / "mnist10k-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"shared MNIST subset not found at {MNIST10K}")
    X = read_idx(MNIST10K / "mnist10k-images-idx3-ubyte.gz", IMAGES_MAGIC)[:N_DIGITS]
    y = read_idx(MNIST10K / "mnist10k-labels-idx1-ubyte.gz", LABELS_MAGIC)[:N_DIGITS]
    return X, y


def write_folder(root: Path, X: np.ndarray, y: np.ndarray) -> Path:
    """``root/<label>/<index>.png`` for every digit, lossless."""
    for i, (img, label) in enumerate(zip(X, y, strict=True)):
        folder = root / str(label)
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(folder / f"{i:04d}.png")
    return root


@pytest.fixture(scope="module")
def digit_folder(tmp_path_factory, digits) -> Path:
    return write_folder(tmp_path_factory.mktemp("images") / "digits", *digits)


def index_of(file: Path) -> int:
    return int(file.stem)


def one_line_error(call, *args, **kwargs) -> str:
    with pytest.raises(DataError) as info:
        call(*args, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    return message


def two_classes(root: Path) -> Path:
    """A minimal valid folder: classes a and b, one 4x4 grey PNG each."""
    for name, value in (("a", 10), ("b", 200)):
        (root / name).mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((4, 4), value, dtype=np.uint8)).save(root / name / "x.png")
    return root


# -- reading ------------------------------------------------------------------------------------
def test_png_folder_round_trips_exactly(digit_folder, digits):
    X, y = digits
    ds = images(digit_folder)
    folder = find_images(digit_folder)
    order = [index_of(f) for f in folder.files]
    assert sorted(order) == list(range(N_DIGITS))
    assert ds.X.dtype == np.float32 and ds.X.shape == (N_DIGITS, 784)
    np.testing.assert_array_equal(ds.X, X[order].reshape(N_DIGITS, 784).astype(np.float32))
    assert ds.class_names == tuple(str(k) for k in range(10))
    np.testing.assert_array_equal(ds.y, y[order].astype(np.int64))
    assert ds.task == "classification" and ds.image_shape == (28, 28)
    assert ds.name == "digits" and ds.source == str(digit_folder)
    assert ds.feature_names[:2] == ("pixel_0_0", "pixel_0_1") and ds.feature_names[-1] == (
        "pixel_27_27"
    )
    assert folder.skipped == 0


def test_order_is_class_by_class_then_sorted_path(digit_folder):
    folder = find_images(digit_folder)
    labels = folder.labels.tolist()
    assert labels == sorted(labels)  # class by class
    for k in range(10):
        names = [f.name for f, lab in zip(folder.files, labels, strict=True) if lab == k]
        assert names == sorted(names)
    again = find_images(digit_folder)
    assert again.files == folder.files


def test_class_names_sorted_numerically_or_as_text(tmp_path):
    for names, expected in (
        (["10", "2", "9"], ("2", "9", "10")),
        (["dog", "cat", "Zebra"], ("Zebra", "cat", "dog")),
    ):
        root = tmp_path / "-".join(names)
        for name in names:
            (root / name).mkdir(parents=True)
            Image.fromarray(np.zeros((3, 3), np.uint8)).save(root / name / "img.png")
        assert images(root).class_names == expected


def test_nested_uppercase_hidden_and_other_files(tmp_path):
    root = two_classes(tmp_path / "pets")
    (root / "a" / "deeper").mkdir()
    Image.fromarray(np.full((4, 4), 7, np.uint8)).save(root / "a" / "deeper" / "y.PNG")
    (root / "a" / "notes.txt").write_text("not an image")
    (root / "a" / "._x.png").write_bytes(b"\x00\x05\x16\x07 AppleDouble junk")
    (root / "b" / ".DS_Store").write_bytes(b"junk")
    (root / "b" / ".thumbs").mkdir()
    (root / "b" / ".thumbs" / "t.png").write_bytes(b"junk")
    (root / ".git").mkdir()  # a hidden folder is not a class
    (root / "readme.md").write_text("loose files beside the classes are ignored")
    folder = find_images(root)
    assert [f.relative_to(root).as_posix() for f in folder.files] == [
        "a/deeper/y.PNG",
        "a/x.png",
        "b/x.png",
    ]
    assert folder.skipped == 1 and folder.class_names == ("a", "b")
    ds = images(root)
    np.testing.assert_array_equal(ds.X[:, 0], [7, 10, 200])
    np.testing.assert_array_equal(ds.y, [0, 0, 1])


def test_rgb_png_exact_and_grey_is_bt601_luma(tmp_path, digits):
    X, _ = digits
    d = X[0].astype(np.int64)
    rgb = np.stack([d, 255 - d, d // 2], axis=2).astype(np.uint8)
    root = two_classes(tmp_path / "colour")
    for f in (root / "a" / "x.png", root / "b" / "x.png"):
        f.unlink()
    Image.fromarray(rgb).save(root / "a" / "rgb.png")
    Image.fromarray(X[1]).save(root / "b" / "grey.png")
    ds = images(root, color="rgb")
    assert ds.image_shape == (28, 28, 3) and ds.X.shape == (2, 28 * 28 * 3)
    assert ds.feature_names[:3] == ("pixel_0_0_r", "pixel_0_0_g", "pixel_0_0_b")
    np.testing.assert_array_equal(ds.X[0].reshape(28, 28, 3), rgb.astype(np.float32))
    grey_as_rgb = ds.X[1].reshape(28, 28, 3)
    for c in range(3):  # a grey file read as RGB repeats its plane
        np.testing.assert_array_equal(grey_as_rgb[:, :, c], X[1].astype(np.float32))
    grey = images(root, color="grey")
    assert grey.image_shape == (28, 28)
    luma = rgb.astype(np.float64) @ np.asarray(LUMA)
    np.testing.assert_allclose(grey.X[0].reshape(28, 28), luma, atol=1e-3)
    np.testing.assert_array_equal(grey.X[1].reshape(28, 28), X[1].astype(np.float32))


def test_mixed_folder_jpeg_other_sizes_and_rgb(tmp_path, digits):
    """A few hundred digits: some JPEG, some larger, one RGB, all read at 28 x 28."""
    X, y = digits
    root = tmp_path / "mixed"
    kinds = {}
    for i, (img, label) in enumerate(zip(X[:300], y[:300], strict=True)):
        folder = root / str(label)
        folder.mkdir(parents=True, exist_ok=True)
        if i % 5 == 1:
            Image.fromarray(img).save(folder / f"{i:04d}.jpg", quality=95)
            kinds[i] = "jpeg"
        elif i % 5 == 2:
            Image.fromarray(img).resize((56, 56), Image.Resampling.NEAREST).save(
                folder / f"{i:04d}.png"
            )
            kinds[i] = "big"
        elif i == 3:
            Image.fromarray(img).convert("RGB").save(folder / f"{i:04d}.bmp")
            kinds[i] = "rgb"
        else:
            Image.fromarray(img).save(folder / f"{i:04d}.png")
            kinds[i] = "png"
    message = one_line_error(images, root)
    assert "56 x 56" in message and "28 x 28" in message and "data.image_size" in message
    ds = images(root, image_size=28)
    files = find_images(root).files
    assert ds.X.shape == (300, 784) and ds.image_shape == (28, 28)
    assert {f.suffix for f in files} == {".png", ".jpg", ".bmp"}
    np.testing.assert_array_equal(ds.y, y[[index_of(f) for f in files]])
    errors = {"jpeg": [], "big": []}
    for row, f in zip(ds.X, files, strict=True):
        i = index_of(f)
        source = X[i].astype(np.float32).reshape(-1)
        if kinds[i] in ("png", "rgb"):
            np.testing.assert_array_equal(row, source)
        else:
            errors[kinds[i]].append(np.abs(row - source).mean())
    # JPEG is lossy; a 2x nearest upscale shrunk back with the bilinear filter blurs a little
    assert 0 < np.mean(errors["jpeg"]) < 3 and 0 < np.mean(errors["big"]) < 20
    assert ds.X.min() >= 0 and ds.X.max() <= 255


def test_image_size_forms_and_orientation(digit_folder):
    first = find_images(digit_folder).files[0]
    assert read_image(first, (20, 24)).shape == (20, 24)  # (height, width)
    assert read_image(first, 14, "rgb").shape == (14, 14, 3)
    assert read_image(first, [28, 28]).shape == (28, 28)
    ds = images(digit_folder, image_size=(14, 21))
    assert ds.image_shape == (14, 21) and ds.X.shape == (N_DIGITS, 14 * 21)
    assert parse_image_size(0) is None and parse_image_size(None) is None
    assert parse_image_size(7) == (7, 7) and parse_image_size([3, 5]) == (3, 5)
    for bad in (-1, (3,), (0, 4), "28", 2.5, True, (3, 4, 5)):
        assert "image_size" in one_line_error(parse_image_size, bad)


@pytest.mark.torch
def test_resize_matches_torch_antialiased_bilinear(tmp_path, digits):
    import torch

    X, _ = digits
    rng = np.random.default_rng(0)
    noisy = rng.integers(0, 256, size=(37, 23, 3), dtype=np.uint8)
    Image.fromarray(noisy).save(tmp_path / "noisy.png")
    Image.fromarray(X[0]).save(tmp_path / "digit.png")
    cases = [
        ("digit.png", "grey", (14, 14)),
        ("digit.png", "grey", (20, 24)),
        ("digit.png", "grey", (40, 33)),
        ("noisy.png", "rgb", (9, 16)),
        ("noisy.png", "rgb", (50, 30)),
    ]
    for name, color, size in cases:
        ours = read_image(tmp_path / name, size, color)
        source = read_image(tmp_path / name, None, color)
        planes = source[None, None] if source.ndim == 2 else source.transpose(2, 0, 1)[None]
        theirs = torch.nn.functional.interpolate(
            torch.from_numpy(np.ascontiguousarray(planes)).double(),
            size=size,
            mode="bilinear",
            antialias=True,
            align_corners=False,
        )[0].numpy()
        theirs = theirs[0] if source.ndim == 2 else theirs.transpose(1, 2, 0)
        assert ours.shape == theirs.shape
        np.testing.assert_allclose(ours, theirs, atol=1e-3)


def test_resize_keeps_constants_and_range(tmp_path):
    Image.fromarray(np.full((17, 31), 93, np.uint8)).save(tmp_path / "flat.png")
    checker = (np.indices((16, 16)).sum(axis=0) % 2 * 255).astype(np.uint8)
    Image.fromarray(checker).save(tmp_path / "checker.png")
    for size in ((5, 5), (40, 9), (17, 31)):
        np.testing.assert_allclose(read_image(tmp_path / "flat.png", size), 93, atol=1e-3)
    small = read_image(tmp_path / "checker.png", 4)  # antialiased: the checkerboard averages
    np.testing.assert_allclose(small[1:3, 1:3], 127.5, atol=1e-3)
    assert np.abs(small - 127.5).max() < 1  # (corner windows are cut by the border)
    big = read_image(tmp_path / "checker.png", 45)
    assert big.min() >= 0 and big.max() <= 255  # bilinear weights never overshoot


def test_other_modes_16_bit_palette_alpha_and_exif(tmp_path):
    grey16 = (np.arange(12, dtype=np.uint16).reshape(3, 4) * 5957).astype(np.uint16)
    Image.fromarray(grey16).save(tmp_path / "deep.png")
    np.testing.assert_allclose(read_image(tmp_path / "deep.png"), grey16 / 257.0, atol=1e-4)
    assert read_image(tmp_path / "deep.png", color="rgb").shape == (3, 4, 3)

    pal = Image.fromarray(np.array([[0, 1], [1, 0]], np.uint8), mode="P")
    pal.putpalette([255, 0, 0, 0, 0, 255])
    pal.save(tmp_path / "pal.png", transparency=0)
    np.testing.assert_array_equal(
        read_image(tmp_path / "pal.png", color="rgb")[0, 0], [255, 0, 0]
    )  # transparency dropped, the colour kept

    la = np.stack([np.full((2, 2), 50, np.uint8), np.zeros((2, 2), np.uint8)], axis=2)
    Image.fromarray(la, mode="LA").save(tmp_path / "la.png")
    np.testing.assert_array_equal(read_image(tmp_path / "la.png"), np.full((2, 2), 50))

    Image.fromarray(np.array([[0, 255]], np.uint8)).convert("1").save(tmp_path / "bw.png")
    np.testing.assert_array_equal(read_image(tmp_path / "bw.png"), [[0, 255]])

    frames = [Image.fromarray(np.full((3, 3), v, np.uint8)) for v in (40, 80)]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    np.testing.assert_array_equal(read_image(tmp_path / "anim.gif"), np.full((3, 3), 40))

    wide = np.zeros((10, 20), np.uint8)
    wide[0, :] = 255  # top row white
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to view
    Image.fromarray(wide).save(tmp_path / "phone.jpg", exif=exif, quality=100)
    upright = read_image(tmp_path / "phone.jpg")
    assert upright.shape == (20, 10)  # as a viewer shows it
    assert upright[:, -1].mean() > 200 and upright[:, 0].mean() < 50  # top row is now right


# -- refusals -----------------------------------------------------------------------------------
def test_folder_errors_name_the_folder(tmp_path):
    assert f"{tmp_path / 'nope'}: no such folder" in one_line_error(images, tmp_path / "nope")
    (tmp_path / "file.png").write_bytes(b"x")
    assert "not a folder" in one_line_error(images, tmp_path / "file.png")

    empty = tmp_path / "empty"
    empty.mkdir()
    assert f"{empty}: no class subfolders;" in one_line_error(images, empty)

    loose = tmp_path / "loose"
    loose.mkdir()
    for i in range(3):
        Image.fromarray(np.zeros((2, 2), np.uint8)).save(loose / f"{i}.png")
    message = one_line_error(images, loose)
    assert "holds 3 images directly" in message and "subfolder named after the class" in message

    single = tmp_path / "single"
    (single / "cat").mkdir(parents=True)
    Image.fromarray(np.zeros((2, 2), np.uint8)).save(single / "cat" / "c.png")
    assert "a single class subfolder ('cat')" in one_line_error(images, single)

    no_images = two_classes(tmp_path / "noimg")
    (no_images / "b" / "x.png").unlink()
    (no_images / "b" / "notes.txt").write_text("hi")
    message = one_line_error(images, no_images)
    assert message.startswith(f"{no_images / 'b'}: no images in this class folder")
    assert "1 other files skipped, e.g. 'notes.txt'" in message and ".png" in message


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("text.png", b"this is not a PNG at all", "not an image Pillow can read"),
        ("empty.jpg", b"", "not an image Pillow can read"),
        ("half.png", "truncate-png", "cannot read the image"),
        ("half.jpg", "truncate-jpeg", "cannot read the image"),
    ],
)
def test_corrupt_file_is_named(tmp_path, digits, name, content, expected):
    root = two_classes(tmp_path / "bad")
    target = root / "b" / name
    if isinstance(content, bytes):
        target.write_bytes(content)
    else:
        buffer = io.BytesIO()
        Image.fromarray(digits[0][0]).save(buffer, format="PNG" if "png" in content else "JPEG")
        target.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    message = one_line_error(images, root)
    assert message.startswith(f"{target}: ") and expected in message


def test_decompression_bomb_is_named(tmp_path, monkeypatch):
    root = two_classes(tmp_path / "bomb")
    big = root / "b" / "huge.png"
    Image.fromarray(np.zeros((40, 40), np.uint8)).save(big)
    for limit in (1000, 500):  # 1600 pixels: Pillow warns above the limit, errors above 2x
        monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", limit)
        message = one_line_error(images, root)
        assert message.startswith(f"{big}: too large to read safely")
        assert "MAX_IMAGE_PIXELS" in message


def test_memory_is_estimated_before_allocating(digit_folder):
    message = one_line_error(images, digit_folder, max_bytes=1_000_000)
    assert message.startswith(f"{digit_folder}: {N_DIGITS} images of 28 x 28 pixels need 0.0 GB")
    assert "data.image_size" in message
    assert images(digit_folder, max_bytes=N_DIGITS * 784 * 4).X.shape == (N_DIGITS, 784)


def test_float_pixels_bad_arguments_and_missing_pillow(tmp_path, monkeypatch):
    Image.fromarray(np.ones((3, 3), np.float32)).save(tmp_path / "float.tif")
    assert "no fixed range" in one_line_error(read_image, tmp_path / "float.tif")
    assert "no such file" in one_line_error(read_image, tmp_path / "missing.png")
    root = two_classes(tmp_path / "ok")
    assert "color must be 'grey' or 'rgb'" in one_line_error(images, root, color="cmyk")
    monkeypatch.setitem(sys.modules, "PIL", None)
    assert "pip install 'deepfit[images]'" in one_line_error(images, root)


# -- the pipeline -------------------------------------------------------------------------------
def config_for(path: Path, **data) -> dict:
    return C.validate({"data": {"source": "images", "path": str(path), **data}})


def test_config_keys_and_their_errors():
    cfg = config_for(Path("x"), image_size=[12, 16], color="rgb")
    assert cfg["data"]["image_size"] == [12, 16] and cfg["data"]["color"] == "rgb"
    assert C.defaults()["data"]["image_size"] == 0
    assert C.defaults()["data"]["color"] == "grey"
    with pytest.raises(C.ConfigError, match="'data.path' is required"):
        C.validate({"data": {"source": "images"}})
    for bad in (-3, [0, 4], [1, 2, 3], "big", 2.0):
        with pytest.raises(C.ConfigError, match="data.image_size"):
            config_for(Path("x"), image_size=bad)
    with pytest.raises(C.ConfigError, match="data.color"):
        config_for(Path("x"), color="cmyk")


def test_prepare_normalizes_and_augments_images(digit_folder):
    data = E.prepare(config_for(digit_folder, normalize="scale", augment=["flip", "crop"]))
    Xtr = data.train[0]
    assert data.image_shape == (28, 28) and data.class_names == [str(k) for k in range(10)]
    assert Xtr.dtype == np.float32 and Xtr.min() == 0 and Xtr.max() == 1  # pixels / 255
    out = data.augment(Xtr[:8], np.random.default_rng(0))
    assert out.shape == (8, 784) and not np.array_equal(out, Xtr[:8])
    assert np.isclose(out.max(), 1) and out.min() == 0  # flips and crops move, never rescale

    rgb = E.prepare(
        config_for(digit_folder, image_size=14, color="rgb", augment=["flip"], normalize="none")
    )
    assert rgb.image_shape == (14, 14, 3) and rgb.train[0].shape[1] == 14 * 14 * 3
    X = rgb.train[0][:4]
    flipped = rgb.augment.transforms[0].__class__((14, 14, 3), p=1.0)(X)
    np.testing.assert_array_equal(
        flipped.reshape(4, 14, 14, 3), X.reshape(4, 14, 14, 3)[:, :, ::-1, :]
    )


def test_labelled_and_unlabelled_inputs_for_a_model(digit_folder, tmp_path):
    X, y = labelled_image_inputs(digit_folder, (28, 28), [str(k) for k in range(10)])
    ds = images(digit_folder)
    np.testing.assert_array_equal(X, ds.X)
    np.testing.assert_array_equal(y, ds.y)
    X, y = labelled_image_inputs(digit_folder, (28, 28), [str(k) for k in range(9, -1, -1)])
    np.testing.assert_array_equal(y, 9 - ds.y)  # indices of the model's classes
    message = one_line_error(labelled_image_inputs, digit_folder, (28, 28), ["0", "1"])
    assert message.startswith(f"{digit_folder / '2'}: class '2' was not seen at training time")
    rows, files = image_inputs(digit_folder / "3", (14, 14, 3))
    assert rows.shape == (len(files), 14 * 14 * 3) and all(f.parent.name == "3" for f in files)
    rows, files = image_inputs(files[0], (28, 28))
    assert rows.shape == (1, 784)
    (tmp_path / "notes.txt").write_text("x")
    assert "not an image file name" in one_line_error(image_inputs, tmp_path / "notes.txt", (2, 2))
    assert "no images in this folder" in one_line_error(image_inputs, tmp_path, (2, 2))


# -- the command line ---------------------------------------------------------------------------
def deepfit(*args: object) -> subprocess.CompletedProcess:
    script = Path(sys.executable).parent / "deepfit"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "deepfit.cli"]
    return subprocess.run([*command, *map(str, args)], capture_output=True, text=True, timeout=300)


TRAIN = """
[data]
source = "images"
path = "digits"          # relative to this file
normalize = "scale"
augment = ["crop"]

[model]
hidden = [128]

[train]
lr = 0.003
epochs = 20
"""


@pytest.mark.slow
def test_train_predict_evaluate_on_an_image_folder(digit_folder, tmp_path):
    pytest.importorskip("typer")
    (tmp_path / "digits").symlink_to(digit_folder, target_is_directory=True)
    (tmp_path / "images.toml").write_text(TRAIN)
    run = tmp_path / "run"
    done = deepfit("train", tmp_path / "images.toml", "--out", run, "--json")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["test"]["accuracy"] > 0.8 and summary["dev"]["accuracy"] > 0.8
    assert summary["n_train"] + summary["n_dev"] + summary["n_test"] == N_DIGITS

    model = run / "model.npz"
    done = deepfit("predict", model, digit_folder, "-o", tmp_path / "pred.csv")
    assert done.returncode == 0, done.stderr
    with open(tmp_path / "pred.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["file", "prediction"] and len(rows) == N_DIGITS + 1
    right = [Path(file).parent.name == label for file, label in rows[1:]]
    assert np.mean(right) > 0.85  # most of these were trained on

    one = find_images(digit_folder).files[0]
    done = deepfit("predict", model, one, "--proba")
    assert done.returncode == 0, done.stderr
    header, values = done.stdout.splitlines()
    assert header.split(",")[:3] == ["file", "p_0", "p_1"]
    assert abs(sum(map(float, values.split(",")[1:])) - 1) < 1e-4

    done = deepfit("evaluate", model, digit_folder, "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)[str(digit_folder)]
    assert result["n"] == N_DIGITS and result["accuracy"] > 0.85

    broken = tmp_path / "broken"
    (broken / "7").mkdir(parents=True)
    (broken / "7" / "bad.png").write_text("not a png")
    done = deepfit("predict", model, broken)
    assert done.returncode != 0
    assert done.stderr.strip().splitlines() == [
        f"error: {broken / '7' / 'bad.png'}: not an image Pillow can read (corrupt, or not "
        "the format its name says)"
    ]


def test_save_images_round_trips_an_idx_data_set(tmp_path):
    from deepfit.data import idx
    from deepfit.data.images import save_images

    if not (MNIST10K / "mnist10k-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"shared MNIST subset not found at {MNIST10K}")
    source = idx(
        MNIST10K / "mnist10k-images-idx3-ubyte.gz", MNIST10K / "mnist10k-labels-idx1-ubyte.gz"
    )
    folder = save_images(source, tmp_path / "png", limit=120)
    assert len(folder.files) == 120 and folder.files[0].suffix == ".png"
    back = images(tmp_path / "png")
    order = [index_of(f) for f in folder.files]
    np.testing.assert_array_equal(back.X, source.X[order])
    np.testing.assert_array_equal(np.asarray(back.class_names)[back.y], source.y[order].astype(str))
    scaled = idx(
        MNIST10K / "mnist10k-images-idx3-ubyte.gz",
        MNIST10K / "mnist10k-labels-idx1-ubyte.gz",
        scale=True,
    )
    assert "multiply by 255" in one_line_error(save_images, scaled, tmp_path / "s", limit=5)

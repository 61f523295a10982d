import gzip
import hashlib
import os
import urllib.error

import numpy as np
import pytest

from deepfit.data import default_cache_dir, fashion_mnist, fetch, mnist
from deepfit.data import download as dl
from deepfit.errors import DataError

from .conftest import idx_bytes

REAL_MNIST_SHA = {
    "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",  # noqa: E501
    "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",  # noqa: E501
    "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
}


def test_official_sums_are_pinned():
    assert dl.SOURCES["mnist"].sha256 == REAL_MNIST_SHA
    for source in dl.SOURCES.values():
        assert set(source.sha256) == set(dl.FILES)
        assert all(len(h) == 64 and int(h, 16) >= 0 for h in source.sha256.values())
    assert len(dl.SOURCES["fashion-mnist"].class_names) == 10


def _fake_files():
    rng = np.random.default_rng(0)
    train_img = rng.integers(0, 256, (6, 28, 28), dtype=np.uint8)
    test_img = rng.integers(0, 256, (4, 28, 28), dtype=np.uint8)
    return {
        dl.TRAIN_IMAGES: gzip.compress(idx_bytes(train_img, 2051), mtime=0),
        dl.TRAIN_LABELS: gzip.compress(idx_bytes(np.array([0, 1, 2, 3, 4, 9]), 2049), mtime=0),
        dl.TEST_IMAGES: gzip.compress(idx_bytes(test_img, 2051), mtime=0),
        dl.TEST_LABELS: gzip.compress(idx_bytes(np.array([5, 6, 7, 8]), 2049), mtime=0),
    }


@pytest.fixture
def fake_server(monkeypatch):
    """Replace the network and the pinned sums by fake files; record every URL fetched."""
    files = _fake_files()
    sums = {k: hashlib.sha256(v).hexdigest() for k, v in files.items()}
    for name, src in list(dl.SOURCES.items()):
        monkeypatch.setitem(
            dl.SOURCES, name, dl.Source(src.name, src.mirrors, sums, src.class_names)
        )
    calls: list[str] = []
    served = dict(files)

    def fake_fetch(url, out):
        calls.append(url)
        out.write(served[url.rsplit("/", 1)[1]])

    monkeypatch.setattr(dl, "_fetch_url", fake_fetch)
    return calls, served


def test_download_verify_and_reuse(tmp_path, fake_server):
    calls, _ = fake_server
    train, test = mnist(cache_dir=tmp_path)
    assert len(calls) == 4 and calls[0].startswith("https://ossci-datasets.s3.amazonaws.com/")
    assert train.X.shape == (6, 784) and test.X.shape == (4, 784)
    assert train.y.tolist() == [0, 1, 2, 3, 4, 9] and test.y.tolist() == [5, 6, 7, 8]
    assert train.class_names == tuple(str(d) for d in range(10))
    assert sorted(os.listdir(tmp_path / "mnist")) == sorted(dl.FILES)  # no temp files left
    mnist(cache_dir=tmp_path)
    assert len(calls) == 4  # verified cache reused, nothing downloaded again


def test_fashion_mnist_names_and_folder(tmp_path, fake_server):
    calls, _ = fake_server
    train, _ = fashion_mnist(cache_dir=tmp_path, scale=True)
    assert train.class_names[0] == "T-shirt/top" and train.class_names[9] == "Ankle boot"
    assert train.X.max() <= 1.0
    assert (tmp_path / "fashion-mnist" / dl.TRAIN_IMAGES).is_file()
    assert "zalandoresearch/fashion-mnist" in calls[0]


def test_corrupted_cached_file_is_downloaded_again(tmp_path, fake_server):
    calls, served = fake_server
    fetch("mnist", tmp_path)
    target = tmp_path / "mnist" / dl.TEST_LABELS
    target.write_bytes(b"corrupted")
    fetch("mnist", tmp_path)
    assert calls[-1].endswith(dl.TEST_LABELS) and len(calls) == 5
    assert target.read_bytes() == served[dl.TEST_LABELS]


def test_bad_download_is_refused_and_not_kept(tmp_path, fake_server):
    calls, served = fake_server
    served[dl.TRAIN_LABELS] = b"tampered"
    with pytest.raises(
        DataError,
        match=r"could not download train-labels-idx1-ubyte\.gz .*"
        r"gave SHA-256 .* expected",
    ):
        fetch("mnist", tmp_path)
    assert len([c for c in calls if c.endswith(dl.TRAIN_LABELS)]) == 2  # both mirrors tried
    assert not (tmp_path / "mnist" / dl.TRAIN_LABELS).exists()
    assert not [f for f in os.listdir(tmp_path / "mnist") if f.endswith(".part")]


def test_corrupted_cache_with_download_disabled(tmp_path, fake_server):
    fetch("mnist", tmp_path)
    (tmp_path / "mnist" / dl.TRAIN_IMAGES).write_bytes(b"x")
    with pytest.raises(DataError, match="does not match the official"):
        mnist(cache_dir=tmp_path, download=False)


def test_offline_error_says_what_to_place_where(tmp_path, monkeypatch):
    def offline(url, out):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(dl, "_fetch_url", offline)
    with pytest.raises(DataError) as info:
        mnist(cache_dir=tmp_path)
    msg = str(info.value)
    assert "\n" not in msg and "no network" in msg
    assert "train-images-idx3-ubyte.gz" in msg and "t10k-labels-idx1-ubyte.gz" in msg
    assert str(tmp_path / "mnist") in msg
    with pytest.raises(DataError, match="download=False"):
        fashion_mnist(cache_dir=tmp_path, download=False)


def test_cache_dir_from_environment(tmp_path, monkeypatch, fake_server):
    monkeypatch.setenv("DEEPFIT_CACHE", str(tmp_path / "env"))
    assert default_cache_dir() == tmp_path / "env"
    fetch("mnist")
    assert (tmp_path / "env" / "mnist" / dl.TRAIN_IMAGES).is_file()
    monkeypatch.delenv("DEEPFIT_CACHE")
    assert default_cache_dir().parts[-2:] == (".cache", "deepfit")


def test_unknown_dataset():
    with pytest.raises(DataError, match="unknown data set"):
        fetch("cifar")

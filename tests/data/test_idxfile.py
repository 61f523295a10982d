import gzip
import hashlib

import numpy as np
import pytest

from deepfit.data import idx
from deepfit.data.idxfile import read_idx
from deepfit.errors import DataError

from .conftest import idx_bytes, write_idx_pair

SHA = {
    "mnist10k-images-idx3-ubyte.gz": "eed41510e1748a1aa62faf25a6146266b14a084d084a403fbbba7af68496e3ce",  # noqa: E501
    "mnist10k-labels-idx1-ubyte.gz": "98e6dc8cfbba62adff83c6cf0cb2b959509442b8a67231586cbf9fb2cfa1cdb3",  # noqa: E501
}


def test_real_mnist_subset(mnist10k):
    for name, sha in SHA.items():
        assert hashlib.sha256((mnist10k / name).read_bytes()).hexdigest() == sha
    ds = idx(mnist10k / "mnist10k-images-idx3-ubyte.gz", mnist10k / "mnist10k-labels-idx1-ubyte.gz")
    assert ds.X.shape == (10000, 784) and ds.X.dtype == np.float32
    assert ds.image_shape == (28, 28)
    assert ds.X.min() == 0 and ds.X.max() == 255
    assert np.all(ds.X == np.round(ds.X))
    assert np.bincount(ds.y).tolist() == [1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978]
    assert ds.class_names == tuple(str(d) for d in range(10))
    assert ds.task == "classification"
    scaled = idx(
        mnist10k / "mnist10k-images-idx3-ubyte.gz",
        mnist10k / "mnist10k-labels-idx1-ubyte.gz",
        scale=True,
    )
    np.testing.assert_allclose(scaled.X * 255, ds.X, atol=1e-4)
    assert scaled.X.max() == 1.0


def test_gzip_detected_by_magic_not_extension(tmp_path):
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    labels = np.array([1, 0], np.uint8)
    gz_img, gz_lab = write_idx_pair(tmp_path, images, labels, gz=True, prefix="a")
    raw_img, raw_lab = write_idx_pair(tmp_path, images, labels, gz=False, prefix="b")
    # swap the suggestive names: a raw file called .gz and a gzip file without it
    named_gz = tmp_path / "raw.gz"
    named_gz.write_bytes(raw_img.read_bytes())
    for img, lab in [(gz_img, gz_lab), (named_gz, raw_lab), (gz_img, raw_lab)]:
        ds = idx(img, lab)
        assert ds.X.shape == (2, 12) and ds.image_shape == (3, 4)
        np.testing.assert_array_equal(ds.X, images.reshape(2, 12).astype(np.float32))
        assert ds.y.tolist() == [1, 0]
        assert ds.feature_names[5] == "pixel_1_1"


def test_class_names_override(tmp_path):
    img, lab = write_idx_pair(tmp_path, np.zeros((3, 2, 2)), np.array([0, 2, 1]))
    assert idx(img, lab, class_names=["a", "b", "c"]).class_names == ("a", "b", "c")
    with pytest.raises(DataError, match=r"label 2 .* has no class name"):
        idx(img, lab, class_names=["a", "b"])


def _one(tmp_path, name, data):
    p = tmp_path / name
    p.write_bytes(data)
    return p


def test_wrong_magic_names_file(tmp_path):
    img, lab = write_idx_pair(tmp_path, np.zeros((2, 2, 2)), np.array([0, 1]), gz=False)
    with pytest.raises(DataError, match=r"labels\.idx: magic number 2049 but an IDX images"):
        idx(lab, img)


def test_truncated_header(tmp_path):
    bad = _one(tmp_path, "short.idx", idx_bytes(np.zeros((2, 2, 2)), 2051)[:10])
    with pytest.raises(DataError, match=r"short\.idx: header truncated"):
        read_idx(bad, 2051)
    tiny = _one(tmp_path, "tiny.idx", b"\x00\x00")
    with pytest.raises(DataError, match=r"tiny\.idx: 2 bytes is too short"):
        read_idx(tiny, 2051)


@pytest.mark.parametrize("cut", [-1, +1])
def test_length_must_match_header(tmp_path, cut):
    data = idx_bytes(np.zeros((2, 2, 2)), 2051)
    data = data[:cut] if cut < 0 else data + b"\x00"
    bad = _one(tmp_path, "img.gz", gzip.compress(data))
    with pytest.raises(
        DataError,
        match=r"img\.gz: file has \d+ bytes but its header declares "
        r"shape \(2, 2, 2\), i\.e\. 24 bytes",
    ):
        read_idx(bad, 2051)


def test_counts_must_agree(tmp_path):
    img, lab = write_idx_pair(tmp_path, np.zeros((3, 2, 2)), np.array([0, 1]))
    with pytest.raises(DataError, match=r"labels\.idx: 2 labels but .*images\.idx has 3 images"):
        idx(img, lab)


def test_single_class_and_corrupt_gzip_and_missing(tmp_path):
    img, lab = write_idx_pair(tmp_path, np.zeros((2, 2, 2)), np.array([4, 4]))
    with pytest.raises(DataError, match="single class"):
        idx(img, lab)
    broken = _one(tmp_path, "broken", b"\x1f\x8b" + b"garbage")
    with pytest.raises(DataError, match="broken: corrupt gzip"):
        read_idx(broken, 2051)
    with pytest.raises(DataError, match=r"nope\.idx: no such file"):
        read_idx(tmp_path / "nope.idx", 2051)

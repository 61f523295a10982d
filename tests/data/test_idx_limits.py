"""IDX files are streamed (issue 14, item 14): a small gzip file whose header declares
gigabytes is refused before it is decompressed, and data past the declared size is not read."""

from __future__ import annotations

import gzip
import struct
import tracemalloc

import numpy as np
import pytest

from deepfit import io
from deepfit.data.idxfile import IMAGES_MAGIC, LABELS_MAGIC, read_idx
from deepfit.errors import DataError


def _gzip_zeros(path, header: bytes, n_zeros: int) -> None:
    with gzip.open(path, "wb", compresslevel=1) as f:
        f.write(header)
        chunk = bytes(1 << 22)
        left = n_zeros
        while left > 0:
            f.write(chunk[: min(left, len(chunk))])
            left -= len(chunk)


def test_a_gzip_bomb_is_refused_from_its_header(tmp_path, monkeypatch):
    monkeypatch.setenv(io.MAX_BYTES_ENV, str(32 << 20))
    bomb = tmp_path / "bomb-images.gz"
    rows = 300_000  # 300,000 x 28 x 28 = 235 MB of pixels, a few hundred KB compressed
    _gzip_zeros(bomb, struct.pack(">IIII", IMAGES_MAGIC, rows, 28, 28), 28 * 28 * rows)
    assert bomb.stat().st_size < 1 << 20
    tracemalloc.start()
    try:
        with pytest.raises(
            DataError,
            match=r"bomb-images\.gz: IDX images of shape "
            r"\(300000, 28, 28\) needs 224\.3 MiB in memory, more than",
        ):
            read_idx(bomb, IMAGES_MAGIC)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20  # nothing was decompressed beyond the header


def test_data_past_the_declared_size_is_not_decompressed(tmp_path):
    path = tmp_path / "labels.gz"
    # 10 labels declared, 200 MB of zeros follow
    _gzip_zeros(path, struct.pack(">II", LABELS_MAGIC, 10) + bytes(range(10)), 200 << 20)
    tracemalloc.start()
    try:
        with pytest.raises(
            DataError,
            match=r"labels\.gz: file has more than \d+ bytes but its "
            r"header declares shape \(10,\), i\.e\. 18 bytes",
        ):
            read_idx(path, LABELS_MAGIC)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20


def test_an_uncompressed_file_is_checked_against_its_size_before_reading(tmp_path):
    path = tmp_path / "images.idx"
    path.write_bytes(struct.pack(">IIII", IMAGES_MAGIC, 1000, 28, 28) + bytes(100))
    with pytest.raises(
        DataError,
        match=r"images\.idx: file has 116 bytes but its header "
        r"declares shape \(1000, 28, 28\)",
    ):
        read_idx(path, IMAGES_MAGIC)


def test_a_normal_file_still_reads(tmp_path):
    pixels = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    path = tmp_path / "ok.gz"
    path.write_bytes(gzip.compress(struct.pack(">IIII", IMAGES_MAGIC, 2, 3, 4) + pixels.tobytes()))
    assert np.array_equal(read_idx(path, IMAGES_MAGIC), pixels)
    with pytest.raises(DataError, match="needs 24 bytes in memory"):
        read_idx(path, IMAGES_MAGIC, limit=23)

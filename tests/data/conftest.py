import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

MNIST10K = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "mnist10k"


def idx_bytes(array: np.ndarray, magic: int) -> bytes:
    """Encode a uint8 array as an IDX file with the given magic number."""
    array = np.asarray(array, dtype=np.uint8)
    return struct.pack(">I", magic) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def write_idx_pair(
    folder: Path, images: np.ndarray, labels: np.ndarray, *, gz: bool = True, prefix: str = ""
) -> tuple[Path, Path]:
    img = idx_bytes(images, 2051)
    lab = idx_bytes(labels, 2049)
    if gz:
        img, lab = gzip.compress(img), gzip.compress(lab)
    ip = folder / f"{prefix}images.idx"
    lp = folder / f"{prefix}labels.idx"
    ip.write_bytes(img)
    lp.write_bytes(lab)
    return ip, lp


@pytest.fixture
def mnist10k() -> Path:
    if not (MNIST10K / "mnist10k-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"shared MNIST subset not found at {MNIST10K}")
    return MNIST10K

"""Reader for the IDX format of MNIST and Fashion-MNIST.

An IDX file starts with a big-endian header: a 32-bit magic number whose third byte is the
element type (``0x08`` = unsigned byte) and whose fourth byte is the number of dimensions,
then one 32-bit size per dimension, then the data. Images use magic 2051 (``0x00000803``,
three dimensions: count, rows, columns), labels magic 2049 (``0x00000801``, one dimension).
A file may be gzip-compressed; that is detected from the gzip magic bytes ``1f 8b``, not
from the file name.
"""

from __future__ import annotations

import gzip
import math
import struct
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from deepfit.data.dataset import Dataset, check_classes
from deepfit.errors import DataError

IMAGES_MAGIC = 2051
LABELS_MAGIC = 2049
_GZIP_MAGIC = b"\x1f\x8b"


def read_idx_bytes(path: str | Path) -> bytes:
    """Return the raw IDX bytes of ``path``, decompressed when it starts with gzip magic."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except FileNotFoundError as exc:
        raise DataError(f"{p}: no such file") from exc
    except OSError as exc:
        raise DataError(f"{p}: cannot read the file ({exc.strerror or exc})") from exc
    if raw[:2] == _GZIP_MAGIC:
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise DataError(f"{p}: corrupt gzip data ({exc})") from exc
    return raw


def read_idx(path: str | Path, magic: int) -> np.ndarray:
    """Read one uint8 IDX file whose magic number must be ``magic``.

    Parameters
    ----------
    path : str or pathlib.Path
        The file, gzip-compressed or not.
    magic : int
        2051 for images, 2049 for labels.

    Returns
    -------
    numpy.ndarray
        uint8 array of the shape the header declares.

    Raises
    ------
    DataError
        Naming the file, when the magic number, the header or the length is wrong.
    """
    p = Path(path)
    raw = read_idx_bytes(p)
    what = "images" if magic == IMAGES_MAGIC else "labels"
    if len(raw) < 4:
        raise DataError(
            f"{p}: {len(raw)} bytes is too short for an IDX header "
            f"(expected {what} file with magic {magic})"
        )
    (found,) = struct.unpack(">I", raw[:4])
    if found != magic:
        raise DataError(f"{p}: magic number {found} but an IDX {what} file has magic {magic}")
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(
            f"{p}: header truncated: {len(raw)} bytes, an IDX {what} header has {header}"
        )
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    expected = header + math.prod(shape)
    if len(raw) != expected:
        raise DataError(
            f"{p}: file has {len(raw)} bytes but its header declares shape "
            f"{tuple(shape)}, i.e. {expected} bytes (truncated or corrupt)"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def idx(
    images: str | Path,
    labels: str | Path,
    *,
    scale: bool = False,
    class_names: Sequence[str] | None = None,
    name: str | None = None,
) -> Dataset:
    """Load an IDX image file and its IDX label file (MNIST, Fashion-MNIST).

    Parameters
    ----------
    images : str or pathlib.Path
        Image file (magic 2051), gzip-compressed or not.
    labels : str or pathlib.Path
        Label file (magic 2049), gzip-compressed or not.
    scale : bool, optional
        Divide pixels by 255 to land in [0, 1]. By default pixels stay 0-255 (as float32);
        normalising is :class:`~deepfit.data.Standardizer`'s job.
    class_names : sequence of str, optional
        Names of labels ``0..K-1``; by default ``"0"``, ``"1"``, ... up to the largest label.
    name : str, optional
        Data set name; by default the image file's name.

    Returns
    -------
    Dataset
        ``X`` float32 ``(n, H*W)``, ``y`` int64, ``image_shape`` ``(H, W)``.

    Raises
    ------
    DataError
        Naming the file: wrong magic number, truncated header, a length that does not match
        the header, image and label counts that disagree, a label without a class name, or a
        single class.
    """
    img_path, lab_path = Path(images), Path(labels)
    imgs = read_idx(img_path, IMAGES_MAGIC)
    labs = read_idx(lab_path, LABELS_MAGIC)
    if imgs.shape[0] != labs.shape[0]:
        raise DataError(
            f"{lab_path}: {labs.shape[0]} labels but {img_path} has {imgs.shape[0]} images"
        )
    n, h, w = imgs.shape
    X = imgs.reshape(n, h * w).astype(np.float32)
    if scale:
        X /= np.float32(255.0)
    y = labs.astype(np.int64)
    top = int(y.max()) if n else -1
    if class_names is None:
        names = tuple(str(k) for k in range(top + 1))
    else:
        names = tuple(str(c) for c in class_names)
        if top >= len(names):
            row = int(np.argmax(y >= len(names))) + 1
            raise DataError(
                f"{lab_path}: label {int(y[row - 1])} (label number {row}) has no "
                f"class name; {len(names)} class names given"
            )
    check_classes(tuple(str(v) for v in np.unique(y)), str(lab_path), column="label")
    return Dataset(
        X=X,
        y=y,
        task="classification",
        name=name or img_path.name,
        source=str(img_path),
        feature_names=tuple(f"pixel_{r}_{c}" for r in range(h) for c in range(w)),
        class_names=names,
        image_shape=(h, w),
    )

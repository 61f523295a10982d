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
from typing import IO

import numpy as np

from deepfit.data.dataset import Dataset, check_classes
from deepfit.errors import DataError, DeepfitError

IMAGES_MAGIC = 2051
LABELS_MAGIC = 2049
_GZIP_MAGIC = b"\x1f\x8b"


_EXCESS_COUNTED = 1 << 20


def _read_into(f: IO[bytes], buffer: memoryview) -> int:
    """Fill ``buffer`` from ``f``; returns the number of bytes read (short at end of file)."""
    done = 0
    while done < len(buffer):
        n = f.readinto(buffer[done:])
        if not n:
            break
        done += n
    return done


def read_idx(path: str | Path, magic: int, *, limit: int | None = None) -> np.ndarray:
    """Read one uint8 IDX file whose magic number must be ``magic``.

    The file is streamed: the header is read first and the size it declares,
    ``prod(shape)`` bytes, is checked against ``limit`` before anything else is read or
    decompressed, so a small gzip file cannot expand to gigabytes in memory; reading stops
    at the declared size (plus at most 1 MiB to count any excess).

    Parameters
    ----------
    path : str or pathlib.Path
        The file, gzip-compressed or not.
    magic : int
        2051 for images, 2049 for labels.
    limit : int, optional
        Most bytes the data may take; default :func:`deepfit.io.memory_limit`.

    Returns
    -------
    numpy.ndarray
        uint8 array of the shape the header declares.

    Raises
    ------
    DataError
        Naming the file, when the magic number, the header or the length is wrong, the gzip
        stream is corrupt, or the declared size exceeds ``limit``.
    """
    from deepfit.io import check_size

    p = Path(path)
    what = "images" if magic == IMAGES_MAGIC else "labels"
    try:
        raw = open(p, "rb")
    except FileNotFoundError as exc:
        raise DataError(f"{p}: no such file") from exc
    except OSError as exc:
        raise DataError(f"{p}: cannot read the file ({exc.strerror or exc})") from exc
    compressed = raw.read(2) == _GZIP_MAGIC
    raw.seek(0)
    stream: IO[bytes] = gzip.GzipFile(fileobj=raw, mode="rb") if compressed else raw
    try:
        with raw, stream:
            head = stream.read(4)
            if len(head) < 4:
                raise DataError(
                    f"{p}: {len(head)} bytes is too short for an IDX header "
                    f"(expected {what} file with magic {magic})"
                )
            (found,) = struct.unpack(">I", head)
            if found != magic:
                raise DataError(
                    f"{p}: magic number {found} but an IDX {what} file has magic {magic}"
                )
            ndim = magic & 0xFF
            header = 4 + 4 * ndim
            dims = stream.read(4 * ndim)
            if len(dims) < 4 * ndim:
                raise DataError(
                    f"{p}: header truncated: {4 + len(dims)} bytes, an IDX {what} header "
                    f"has {header}"
                )
            shape = struct.unpack(f">{ndim}I", dims)
            n = math.prod(shape)
            expected = header + n
            try:
                check_size(n, f"{p}: IDX {what} of shape {tuple(shape)}", limit)
            except DataError:
                raise
            except DeepfitError as exc:
                raise DataError(str(exc)) from None
            if not compressed:
                size = p.stat().st_size
                if size != expected:
                    raise DataError(
                        f"{p}: file has {size} bytes but its header declares shape "
                        f"{tuple(shape)}, i.e. {expected} bytes (truncated or corrupt)"
                    )
            data = np.empty(n, dtype=np.uint8)
            got = header + _read_into(stream, memoryview(data))
            if got == expected:
                excess = len(stream.read(_EXCESS_COUNTED + 1))
                got += excess
            if got != expected:
                more = "more than " if got > expected + _EXCESS_COUNTED else ""
                raise DataError(
                    f"{p}: file has {more}{got} bytes but its header declares shape "
                    f"{tuple(shape)}, i.e. {expected} bytes (truncated or corrupt)"
                )
    except (OSError, EOFError, zlib.error) as exc:
        if compressed:
            raise DataError(f"{p}: corrupt gzip data ({exc})") from exc
        raise DataError(f"{p}: cannot read the file ({exc})") from exc
    return data.reshape(shape)


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

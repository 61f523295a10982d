"""MNIST and Fashion-MNIST: download once, verify by SHA-256, keep in a cache directory.

Files go to ``<cache>/<data set>/`` where ``<cache>`` is, in order of precedence, the
``cache_dir`` argument, the ``DEEPFIT_CACHE`` environment variable, or ``~/.cache/deepfit``.
A cached file is reused only when its SHA-256 matches; a file that does not match is
downloaded again, and a download that does not match is refused. Each download is written
to a temporary file in the same directory, flushed with ``fsync`` and renamed into place, so
an interrupted download never leaves a half-written file under the final name.

The SHA-256 sums are those of the official gzip files, as pinned by many independent
projects (torchvision's MNIST mirror list, TensorFlow/Keras users, Zalando's repository).
"""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from deepfit.data.dataset import Dataset
from deepfit.data.idxfile import idx
from deepfit.errors import DataError
from deepfit.io import atomic_write

CACHE_ENV = "DEEPFIT_CACHE"
_TIMEOUT_S = 60.0
_CHUNK = 1 << 20
MAX_DOWNLOAD_BYTES = 64 << 20


@dataclass(frozen=True)
class Source:
    """Where one IDX data set lives and what its four files must hash to."""

    name: str
    mirrors: tuple[str, ...]
    sha256: dict[str, str]
    class_names: tuple[str, ...]


TRAIN_IMAGES = "train-images-idx3-ubyte.gz"
TRAIN_LABELS = "train-labels-idx1-ubyte.gz"
TEST_IMAGES = "t10k-images-idx3-ubyte.gz"
TEST_LABELS = "t10k-labels-idx1-ubyte.gz"
FILES: tuple[str, ...] = (TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS)

SOURCES: dict[str, Source] = {
    "mnist": Source(
        name="mnist",
        mirrors=(
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
            "https://storage.googleapis.com/cvdf-datasets/mnist/",
        ),
        sha256={
            TRAIN_IMAGES: "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
            TRAIN_LABELS: "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
            TEST_IMAGES: "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
            TEST_LABELS: "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
        },
        class_names=tuple(str(d) for d in range(10)),
    ),
    "fashion-mnist": Source(
        name="fashion-mnist",
        mirrors=(
            "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
            "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        ),
        sha256={
            TRAIN_IMAGES: "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
            TRAIN_LABELS: "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
            TEST_IMAGES: "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
            TEST_LABELS: "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
        },
        class_names=(
            "T-shirt/top",
            "Trouser",
            "Pullover",
            "Dress",
            "Coat",
            "Sandal",
            "Shirt",
            "Sneaker",
            "Bag",
            "Ankle boot",
        ),
    ),
}


def default_cache_dir() -> Path:
    """Return ``$DEEPFIT_CACHE`` when set, else ``~/.cache/deepfit``."""
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "deepfit"


def sha256_of(path: Path) -> str:
    """Return the hex SHA-256 of the file at ``path``."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _fetch_url(url: str, out: BinaryIO, limit: int = MAX_DOWNLOAD_BYTES) -> None:
    """Stream the body at ``url`` into ``out``, at most ``limit`` bytes (the official files
    are 30 MB at most: a larger body is not one of them). Tests replace this function."""
    written = 0
    with urllib.request.urlopen(url, timeout=_TIMEOUT_S) as response:
        while chunk := response.read(_CHUNK):
            written += len(chunk)
            if written > limit:
                raise _ChecksumMismatch(f"{url} sent more than {limit} bytes")
            out.write(chunk)


def _manual_hint(source: Source, folder: Path) -> str:
    return (
        f"to install by hand, download {', '.join(FILES)} from {source.mirrors[0]} and "
        f"place them in {folder}"
    )


class _ChecksumMismatch(Exception):
    """A downloaded file whose SHA-256 differs from the pinned one."""


def _download(source: Source, filename: str, dest: Path) -> None:
    """Download ``filename`` to ``dest`` atomically, trying each mirror; verify SHA-256
    before the file takes its name."""
    expected = source.sha256[filename]
    if not os.access(dest.parent, os.W_OK):
        raise DataError(
            f"{dest.parent}: cannot write to the cache directory; set {CACHE_ENV} or pass cache_dir"
        )
    errors: list[str] = []
    for base in source.mirrors:
        url = base + filename

        def verify(tmp: Path, url: str = url) -> None:
            got = sha256_of(tmp)
            if got != expected:
                raise _ChecksumMismatch(f"{url} gave SHA-256 {got}, expected {expected}")

        try:
            atomic_write(
                dest, lambda out, url=url: _fetch_url(url, out), verify=verify, suffix=".part"
            )
            return
        except _ChecksumMismatch as exc:
            errors.append(str(exc))
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            reason = getattr(exc, "reason", None) or exc
            errors.append(f"{url}: {reason}")
    raise DataError(
        f"{source.name}: could not download {filename} ({'; '.join(errors)}); "
        f"{_manual_hint(source, dest.parent)}"
    )


def fetch(name: str, cache_dir: str | Path | None = None, *, download: bool = True) -> Path:
    """Make sure the four verified files of data set ``name`` are in the cache.

    Parameters
    ----------
    name : {"mnist", "fashion-mnist"}
        Which data set.
    cache_dir : str or pathlib.Path, optional
        Cache root; defaults to :func:`default_cache_dir`.
    download : bool, optional
        When False, never touch the network: missing or corrupt files raise.

    Returns
    -------
    pathlib.Path
        The folder holding the four files.

    Raises
    ------
    DataError
        When a file cannot be downloaded (offline, for instance) or fails its SHA-256
        check; the message says which files to place where by hand.
    """
    if name not in SOURCES:
        raise DataError(f"unknown data set {name!r}; choose from {', '.join(SOURCES)}")
    source = SOURCES[name]
    folder = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    folder = folder / source.name
    for filename in FILES:
        path = folder / filename
        if path.is_file():
            got = sha256_of(path)
            if got == source.sha256[filename]:
                continue
            if not download:
                raise DataError(
                    f"{path}: SHA-256 {got} does not match the official "
                    f"{source.sha256[filename]}; delete it and "
                    f"{_manual_hint(source, folder)}"
                )
        elif not download:
            raise DataError(
                f"{path}: not in the cache and download=False; {_manual_hint(source, folder)}"
            )
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DataError(
                f"{folder}: cannot create the cache directory ({exc}); "
                f"set {CACHE_ENV} or pass cache_dir"
            ) from exc
        _download(source, filename, path)
    return folder


def _load(
    name: str, cache_dir: str | Path | None, scale: bool, download: bool
) -> tuple[Dataset, Dataset]:
    folder = fetch(name, cache_dir, download=download)
    names: Sequence[str] = SOURCES[name].class_names
    train = idx(
        folder / TRAIN_IMAGES,
        folder / TRAIN_LABELS,
        scale=scale,
        class_names=names,
        name=f"{name}-train",
    )
    test = idx(
        folder / TEST_IMAGES,
        folder / TEST_LABELS,
        scale=scale,
        class_names=names,
        name=f"{name}-test",
    )
    return train, test


def mnist(
    cache_dir: str | Path | None = None, *, scale: bool = False, download: bool = True
) -> tuple[Dataset, Dataset]:
    """Load the official MNIST training (60,000) and test (10,000) sets.

    Parameters
    ----------
    cache_dir : str or pathlib.Path, optional
        Cache root (files land in ``<cache_dir>/mnist/``); by default ``$DEEPFIT_CACHE``
        or ``~/.cache/deepfit``.
    scale : bool, optional
        Divide pixels by 255; by default they stay 0-255.
    download : bool, optional
        When False, use only files already in the cache.

    Returns
    -------
    (Dataset, Dataset)
        The training set and the test set, ``image_shape`` ``(28, 28)``.
    """
    return _load("mnist", cache_dir, scale, download)


def fashion_mnist(
    cache_dir: str | Path | None = None, *, scale: bool = False, download: bool = True
) -> tuple[Dataset, Dataset]:
    """Load the official Fashion-MNIST training (60,000) and test (10,000) sets.

    Parameters
    ----------
    cache_dir : str or pathlib.Path, optional
        Cache root (files land in ``<cache_dir>/fashion-mnist/``); by default
        ``$DEEPFIT_CACHE`` or ``~/.cache/deepfit``.
    scale : bool, optional
        Divide pixels by 255; by default they stay 0-255.
    download : bool, optional
        When False, use only files already in the cache.

    Returns
    -------
    (Dataset, Dataset)
        The training set and the test set, ``image_shape`` ``(28, 28)``, class names
        ``"T-shirt/top"``, ``"Trouser"``, ... ``"Ankle boot"``.
    """
    return _load("fashion-mnist", cache_dir, scale, download)

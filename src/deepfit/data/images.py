"""Image folders: one subfolder of pictures per class, read into a :class:`Dataset`.

The layout is the one of torchvision's ``ImageFolder`` and Keras'
``image_dataset_from_directory``::

    cats_vs_dogs/
        cat/ 001.jpg 002.png ...
        dog/ 001.jpg  nested/003.jpg ...

Class names are the subfolder names, sorted (numerically when every name is a number, so
``"2"`` comes before ``"10"``); a class folder's images are found in its subfolders too and
are read in the order of their sorted relative paths, so the rows are the same on every
machine. Only files with a known image extension are read (as torchvision does); hidden files
and folders (names starting with ``"."``, such as macOS' ``._cat.jpg``) are skipped.

Pixels are float32 in 0..255 (16-bit images are divided by 257 to land there); normalizing is
the pipeline's job (``data.normalize``). Pillow is an optional extra
(``pip install 'deepfit[images]'``) imported where used.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from deepfit.data.dataset import Dataset
from deepfit.errors import DataError

IMAGE_EXTENSIONS: tuple[str, ...] = (
    ".bmp", ".gif", ".jpeg", ".jpg", ".pgm", ".png", ".ppm", ".tif", ".tiff", ".webp",
)  # fmt: skip
"""File name endings read as images (case-insensitive); other files are skipped."""

COLORS: dict[str, int] = {"grey": 1, "gray": 1, "rgb": 3}
"""Accepted ``color`` values and the number of channels each gives."""

LUMA: tuple[float, float, float] = (0.299, 0.587, 0.114)
"""ITU-R BT.601 weights of R, G and B in a grey value (Pillow's ``convert("L")`` too)."""

_GREY_MODES = ("1", "L", "LA", "La", "I;16", "I;16L", "I;16B", "I;16N", "I")


def _pillow() -> Any:
    try:
        from PIL import Image
    except ImportError:
        raise DataError(
            "reading image folders needs Pillow: pip install 'deepfit[images]'"
        ) from None
    return Image


@dataclass(frozen=True)
class ImageFolder:
    """The image files of a class-per-subfolder directory, in reading order.

    Attributes
    ----------
    root : pathlib.Path
        The folder.
    files : tuple of pathlib.Path
        Every image file, class by class, each class in sorted relative-path order.
    labels : numpy.ndarray
        int64 class index of each file, shape ``(len(files),)``.
    class_names : tuple of str
        The class subfolder names; ``class_names[k]`` is the class of label ``k``.
    skipped : int
        Files left out because their extension is not an image extension.
    """

    root: Path
    files: tuple[Path, ...]
    labels: np.ndarray
    class_names: tuple[str, ...]
    skipped: int


def parse_image_size(image_size: int | Sequence[int] | None) -> tuple[int, int] | None:
    """``(height, width)`` from an int side, a pair, or None / 0 (keep the files' own size)."""
    if image_size is None or (isinstance(image_size, (int, np.integer)) and image_size == 0):
        return None
    if isinstance(image_size, (int, np.integer)) and not isinstance(image_size, bool):
        if image_size > 0:
            return int(image_size), int(image_size)
    elif (
        isinstance(image_size, Sequence)
        and not isinstance(image_size, str)
        and len(image_size) == 2
        and all(
            isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s > 0
            for s in image_size
        )
    ):
        return int(image_size[0]), int(image_size[1])
    raise DataError(
        f"image_size must be a positive integer, (height, width) or None, got {image_size!r}"
    )


def _channels(color: str) -> int:
    if color not in COLORS:
        raise DataError(f"color must be 'grey' or 'rgb', got {color!r}")
    return COLORS[color]


def _is_image(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS)


def _hidden(name: str) -> bool:
    return name.startswith(".")


def _raise_walk_error(exc: OSError) -> None:
    raise DataError(f"{exc.filename}: cannot read the folder ({exc.strerror or exc})") from exc


def _walk(folder: Path) -> tuple[list[Path], list[Path]]:
    """Image files and other (non-hidden) files under ``folder``, sorted by relative path."""
    found: list[tuple[tuple[str, ...], Path]] = []
    others: list[Path] = []
    for top, dirs, names in os.walk(folder, onerror=_raise_walk_error):
        dirs[:] = sorted(d for d in dirs if not _hidden(d))
        for name in names:
            if _hidden(name):
                continue
            path = Path(top) / name
            if _is_image(name):
                found.append((path.relative_to(folder).parts, path))
            else:
                others.append(path)
    found.sort(key=lambda item: item[0])
    return [path for _, path in found], sorted(others)


def _sort_class_names(names: Sequence[str]) -> tuple[str, ...]:
    """Numeric order when every name is a finite number (``"2"`` before ``"10"``), else text."""
    try:
        numbers = [float(n) for n in names]
    except ValueError:
        return tuple(sorted(names))
    if not all(math.isfinite(v) for v in numbers):
        return tuple(sorted(names))
    return tuple(name for _, name in sorted(zip(numbers, names, strict=True)))


def _check_root(root: Path) -> None:
    if not root.exists():
        raise DataError(f"{root}: no such folder")
    if not root.is_dir():
        raise DataError(
            f"{root}: not a folder; an image data set is a folder with one subfolder of "
            "images per class"
        )


def find_images(path: str | Path, *, min_classes: int = 2) -> ImageFolder:
    """List the image files of a folder with one subfolder per class.

    Parameters
    ----------
    path : str or pathlib.Path
        The folder (``~`` is expanded).
    min_classes : int, optional
        Fewest class subfolders accepted: 2 to train a classifier, 1 to evaluate one.

    Returns
    -------
    ImageFolder
        Files in reading order, their labels and the class names.

    Raises
    ------
    DataError
        When the folder is missing, has no class subfolders or a single one, or a class
        folder holds no image file; the message names the folder.
    """
    root = Path(path).expanduser()
    _check_root(root)
    try:
        entries = sorted(os.scandir(root), key=lambda e: e.name)
    except OSError as exc:
        raise DataError(f"{root}: cannot read the folder ({exc.strerror or exc})") from exc
    subfolders = [e.name for e in entries if not _hidden(e.name) and e.is_dir()]
    if not subfolders:
        loose = sum(1 for e in entries if e.is_file() and _is_image(e.name))
        held = f" (it holds {loose} images directly)" if loose else ""
        raise DataError(
            f"{root}: no class subfolders{held}; put each class's images in a subfolder "
            f"named after the class, e.g. {root / 'cat'}{os.sep} and {root / 'dog'}{os.sep}"
        )
    class_names = _sort_class_names(subfolders)
    if len(class_names) < min_classes:
        raise DataError(
            f"{root}: a single class subfolder ({class_names[0]!r}); classification needs at "
            "least two"
        )
    files: list[Path] = []
    labels: list[int] = []
    skipped = 0
    for k, name in enumerate(class_names):
        found, others = _walk(root / name)
        if not found:
            extra = (
                f" ({len(others)} other files skipped, e.g. {others[0].name!r})" if others else ""
            )
            raise DataError(
                f"{root / name}: no images in this class folder{extra}; image files end in "
                f"{', '.join(IMAGE_EXTENSIONS)}"
            )
        files += found
        labels += [k] * len(found)
        skipped += len(others)
    return ImageFolder(
        root=root,
        files=tuple(files),
        labels=np.asarray(labels, dtype=np.int64),
        class_names=class_names,
        skipped=skipped,
    )


def _pixels(img: Any, channels: int, file: Path) -> np.ndarray:
    """float32 pixels in 0..255 of a loaded Pillow image: ``(H, W)`` or ``(H, W, 3)``.

    Grey from colour is the BT.601 luma ``Y = 0.299 R + 0.587 G + 0.114 B``, computed in
    float (no rounding to 8 bits); alpha is dropped (as torchvision and Keras do); 16-bit
    values ``v`` become ``v / 257`` so that 65535 maps to 255.
    """
    mode = img.mode
    if mode in _GREY_MODES:
        if mode in ("1", "LA", "La"):
            img = img.convert("L")
        arr = np.asarray(img, dtype=np.float32)
        if mode.startswith("I"):
            low, high = float(arr.min()), float(arr.max())
            if low < 0 or high > 65535:
                raise DataError(
                    f"{file}: {mode!r} pixels range over {low:g}..{high:g}, outside the 16-bit "
                    "range 0..65535; save the image with 8 or 16 bits per channel"
                )
            arr = arr / np.float32(257.0)
        if channels == 3:
            arr = np.repeat(arr[:, :, None], 3, axis=2)
        return arr
    if mode in ("F", "I;16S", "I;32", "I;32S"):
        raise DataError(
            f"{file}: {mode!r} pixels have no fixed range; save the image with 8 or 16 bits "
            "per channel"
        )
    if mode in ("P", "PA"):
        img = img.convert("RGBA")  # palette transparency is resolved before dropping alpha
    arr = np.asarray(img.convert("RGB"), dtype=np.float32)
    if channels == 1:  # in float64, so that R = G = B = v gives exactly v
        arr = (arr @ np.asarray(LUMA, dtype=np.float64)).astype(np.float32)
    return arr


def _resize(arr: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize ``(H, W[, C])`` float pixels to ``size = (h, w)``, channel by channel.

    Pillow's antialiased bilinear filter: output pixel ``i`` (centre ``c = (i + 1/2) s``
    in input coordinates, scale ``s = H / h``) is ``sum_j k((j + 1/2 - c) / t) x_j /
    sum_j k(...)`` with the triangle ``k(u) = max(0, 1 - |u|)`` and ``t = max(s, 1)``, the
    same along the width. Its weights are non-negative, so values stay within 0..255 (a
    Lanczos or bicubic kernel overshoots), and widening the triangle when shrinking averages
    every input pixel (no aliasing). torchvision's ``Resize`` uses this filter by default.
    """
    Image = _pillow()
    h, w = size
    planes = arr[:, :, None] if arr.ndim == 2 else arr
    out = np.empty((h, w, planes.shape[2]), dtype=np.float32)
    for c in range(planes.shape[2]):
        plane = Image.fromarray(np.ascontiguousarray(planes[:, :, c], dtype=np.float32))
        out[:, :, c] = np.asarray(plane.resize((w, h), Image.Resampling.BILINEAR))
    return out[:, :, 0] if arr.ndim == 2 else out


def read_image(
    file: str | Path, image_size: int | Sequence[int] | None = None, color: str = "grey"
) -> np.ndarray:
    """Read one image file as float32 pixels in 0..255.

    Parameters
    ----------
    file : str or pathlib.Path
        A PNG, JPEG, BMP, GIF (first frame), WebP, TIFF or PNM file. An EXIF orientation
        tag (photos from phones) is applied, so the pixels are the picture as a viewer shows
        it.
    image_size : int, (height, width) or None, optional
        Resize to this size (antialiased bilinear, see :func:`_resize`); None keeps the
        file's size.
    color : {"grey", "rgb"}, optional
        One channel (BT.601 luma from colour) or three.

    Returns
    -------
    numpy.ndarray
        float32 of shape ``(H, W)`` (grey) or ``(H, W, 3)`` (rgb).

    Raises
    ------
    DataError
        Naming the file: missing, not an image Pillow can read, truncated or corrupt, or
        larger than Pillow's decompression-bomb limit (``PIL.Image.MAX_IMAGE_PIXELS``).
    """
    Image = _pillow()
    from PIL import ImageOps, UnidentifiedImageError

    path = Path(file).expanduser()
    size = parse_image_size(image_size)
    channels = _channels(color)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                try:
                    upright = ImageOps.exif_transpose(img)
                except Exception:  # unreadable EXIF: keep the stored orientation
                    upright = img
                upright.load()
                arr = _pixels(upright, channels, path)
    except DataError:
        raise
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise DataError(f"{path}: a folder, not an image file") from None
    except PermissionError as exc:
        raise DataError(f"{path}: cannot read the file ({exc.strerror})") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise DataError(
            f"{path}: too large to read safely ({exc}); shrink it, or raise "
            "PIL.Image.MAX_IMAGE_PIXELS if you trust the file"
        ) from None
    except UnidentifiedImageError:
        raise DataError(
            f"{path}: not an image Pillow can read (corrupt, or not the format its name says)"
        ) from None
    except (OSError, SyntaxError, ValueError, EOFError, MemoryError) as exc:
        raise DataError(f"{path}: cannot read the image ({exc})") from None
    if size is not None and arr.shape[:2] != size:
        arr = _resize(arr, size)
    return arr


def _default_max_bytes() -> int:
    """A quarter of the machine's memory (training holds several copies of X), else 8 GiB."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 4
    except (AttributeError, ValueError, OSError):
        return 8 * 2**30


def _gb(n_bytes: float) -> str:
    return f"{n_bytes / 1e9:.1f} GB"


def image_feature_names(shape: tuple[int, ...]) -> tuple[str, ...]:
    """``pixel_<row>_<col>`` for grey images, ``pixel_<row>_<col>_<r|g|b>`` for RGB."""
    h, w = shape[:2]
    if len(shape) == 2:
        return tuple(f"pixel_{r}_{c}" for r in range(h) for c in range(w))
    return tuple(f"pixel_{r}_{c}_{ch}" for r in range(h) for c in range(w) for ch in "rgb")


def _read_all(
    files: Sequence[Path],
    size: tuple[int, int] | None,
    color: str,
    where: Path,
    max_bytes: int | None,
) -> tuple[np.ndarray, tuple[int, ...]]:
    """Rows of flat pixels of every file and the image shape, refusing mixed sizes and
    absurd memory needs."""
    first = read_image(files[0], size, color)
    shape = first.shape
    need = len(files) * math.prod(shape) * 4
    limit = _default_max_bytes() if max_bytes is None else max_bytes
    if need > limit:
        dims = " x ".join(str(s) for s in shape)
        raise DataError(
            f"{where}: {len(files)} images of {dims} pixels need {_gb(need)} as float32, more "
            f"than the {_gb(limit)} allowed (max_bytes; by default a quarter of this machine's "
            "memory); choose a smaller image_size (config key data.image_size) or fewer images"
        )
    X = np.empty((len(files), math.prod(shape)), dtype=np.float32)
    X[0] = first.reshape(-1)
    for i in range(1, len(files)):
        arr = read_image(files[i], size, color)
        if arr.shape != shape:
            raise DataError(
                f"{files[i]}: height x width {arr.shape[0]} x {arr.shape[1]}, but {files[0]} "
                f"is {shape[0]} x {shape[1]}; give image_size (config key data.image_size) to "
                "resize every image to one size"
            )
        X[i] = arr.reshape(-1)
    return X, shape


def images(
    path: str | Path,
    image_size: int | Sequence[int] | None = None,
    color: str = "grey",
    *,
    name: str | None = None,
    max_bytes: int | None = None,
) -> Dataset:
    """Load a folder with one subfolder of images per class (torchvision's ``ImageFolder``).

    Parameters
    ----------
    path : str or pathlib.Path
        The folder; its non-hidden subfolders are the classes. Files with an extension in
        :data:`IMAGE_EXTENSIONS` (any case) are read, from nested folders too; other files
        are skipped.
    image_size : int, (height, width) or None, optional
        Resize every image to this size with an antialiased bilinear filter (the filter of
        torchvision's ``Resize``; it never overshoots 0..255). None (or 0) keeps the files'
        own size, which must then be the same for all.
    color : {"grey", "rgb"}, optional
        Grey (``Y = 0.299 R + 0.587 G + 0.114 B`` from colour files) or three channels.
    name : str, optional
        Data set name; by default the folder's name.
    max_bytes : int, optional
        Refuse before allocating when ``n * H * W * C * 4`` bytes exceed this; by default a
        quarter of the machine's memory.

    Returns
    -------
    Dataset
        ``X`` float32 ``(n, H*W)`` or ``(n, H*W*3)`` (row-major ``(H, W[, 3])``) with pixels
        in 0..255, ``y`` int64 class indices, ``class_names`` the subfolder names,
        ``image_shape`` ``(H, W)`` or ``(H, W, 3)``. Rows follow :func:`find_images`'s
        ``files``.

    Raises
    ------
    DataError
        One line naming the folder or file: see :func:`find_images` and :func:`read_image`,
        plus images of different sizes without ``image_size`` and a data set too large for
        ``max_bytes``.

    Examples
    --------
    >>> ds = images("pets/", image_size=(32, 32), color="rgb")  # doctest: +SKIP
    >>> ds.image_shape, ds.class_names  # doctest: +SKIP
    ((32, 32, 3), ('cat', 'dog'))
    """
    size = parse_image_size(image_size)
    _channels(color)
    _pillow()
    folder = find_images(path)
    X, shape = _read_all(folder.files, size, color, folder.root, max_bytes)
    return Dataset(
        X=X,
        y=folder.labels,
        task="classification",
        name=name or folder.root.name,
        source=str(folder.root),
        feature_names=image_feature_names(shape),
        class_names=folder.class_names,
        image_shape=shape,
    )


def image_inputs(path: str | Path, image_shape: Sequence[int]) -> tuple[np.ndarray, list[Path]]:
    """Read images for a model trained on ``image_shape``: one file, or every image in a folder.

    Parameters
    ----------
    path : str or pathlib.Path
        An image file, or a folder whose images (in subfolders too, hidden ones skipped) are
        read in sorted relative-path order.
    image_shape : (H, W) or (H, W, 3)
        The model's image shape; every image is resized to ``(H, W)`` and read grey or RGB
        to match.

    Returns
    -------
    (numpy.ndarray, list of pathlib.Path)
        float32 rows ``(n, H*W[*3])`` of pixels in 0..255, and the file of each row.
    """
    shape = tuple(int(s) for s in image_shape)
    color = "rgb" if len(shape) == 3 else "grey"
    p = Path(path).expanduser()
    if p.is_dir():
        files, _ = _walk(p)
        if not files:
            raise DataError(
                f"{p}: no images in this folder; image files end in {', '.join(IMAGE_EXTENSIONS)}"
            )
    else:
        if p.exists() and not _is_image(p.name):
            raise DataError(
                f"{p}: not an image file name; image files end in {', '.join(IMAGE_EXTENSIONS)}"
            )
        files = [p]
    X, _ = _read_all(files, shape[:2], color, p, None)
    return X, files


def labelled_image_inputs(
    path: str | Path, image_shape: Sequence[int], class_names: Sequence[str]
) -> tuple[np.ndarray, np.ndarray]:
    """Read a class-per-subfolder folder for a model trained on ``image_shape`` and classes.

    Parameters
    ----------
    path : str or pathlib.Path
        The folder (see :func:`find_images`); it may hold only some of the model's classes.
    image_shape : (H, W) or (H, W, 3)
        The model's image shape (size and colour to read).
    class_names : sequence of str
        The model's classes: the labels returned are indices into it.

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        float32 rows of pixels in 0..255 and int64 class indices of the model.

    Raises
    ------
    DataError
        As :func:`images`, and for a class subfolder the model never saw (naming it).
    """
    from deepfit.data.dataset import label_key

    shape = tuple(int(s) for s in image_shape)
    folder = find_images(path, min_classes=1)
    index = {label_key(name): k for k, name in enumerate(class_names)}
    mapping = np.empty(len(folder.class_names), dtype=np.int64)
    for j, name in enumerate(folder.class_names):
        k = index.get(label_key(name))
        if k is None:
            known = ", ".join(repr(n) for n in list(class_names)[:10])
            more = ", ..." if len(class_names) > 10 else ""
            raise DataError(
                f"{folder.root / name}: class {name!r} was not seen at training time; "
                f"known classes: {known}{more}"
            )
        mapping[j] = k
    color = "rgb" if len(shape) == 3 else "grey"
    X, _ = _read_all(folder.files, shape[:2], color, folder.root, None)
    return X, mapping[folder.labels]


def save_images(dataset: Dataset, folder: str | Path, *, limit: int | None = None) -> ImageFolder:
    """Write an image data set as PNG files, one subfolder per class (what :func:`images` reads).

    Parameters
    ----------
    dataset : Dataset
        A classification data set with ``image_shape`` and pixels in 0..255 (as
        :func:`~deepfit.data.idx` and :func:`images` return them); each pixel is rounded to
        the nearest integer, so 8-bit sources round-trip exactly.
    folder : str or pathlib.Path
        Created if needed; files are ``<folder>/<class name>/<row:05d>.png``.
    limit : int, optional
        Write only the first ``limit`` rows.

    Returns
    -------
    ImageFolder
        The folder as :func:`find_images` sees it.

    Raises
    ------
    DataError
        When the data set is not images of a classification task, holds pixels outside
        0..255 (naming the row) or scaled to 0..1, or a class name cannot be a folder name.
    """
    Image = _pillow()
    name = dataset.name
    if dataset.image_shape is None or dataset.class_names is None:
        raise DataError(f"{name}: save_images needs a classification data set of images")
    shape = tuple(dataset.image_shape)
    if len(shape) == 3 and shape[2] not in (1, 3):
        raise DataError(f"{name}: image_shape {shape}: PNG files hold 1 or 3 channels")
    for cls in dataset.class_names:
        if not cls or cls.startswith(".") or "/" in cls or "\\" in cls:
            raise DataError(f"{name}: class name {cls!r} cannot be a folder name")
    X = dataset.X if limit is None else dataset.X[:limit]
    outside = (X < 0) | (X > 255)
    if outside.any():
        row = int(np.argmax(outside.any(axis=1)))
        raise DataError(
            f"{name}: row {row + 1} has pixels outside 0..255; save_images writes 8-bit PNGs"
        )
    if X.size and X.max() <= 1 and not np.array_equal(X, np.rint(X)):
        raise DataError(
            f"{name}: pixels lie in 0..1 (scaled?); save_images writes 0..255, multiply by 255"
        )
    root = Path(folder).expanduser()
    pixels = np.rint(X).astype(np.uint8).reshape(-1, *shape)
    if pixels.ndim == 4 and shape[2] == 1:
        pixels = pixels[..., 0]
    for row, (img, label) in enumerate(zip(pixels, dataset.y, strict=False)):
        target = root / dataset.class_names[int(label)]
        target.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(target / f"{row:05d}.png")
    return find_images(root, min_classes=1)

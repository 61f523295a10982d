"""On-the-fly augmentation of image rows for training batches.

Images are stored as flat rows (``(n, H*W)`` or ``(n, H*W*C)``, row-major); each transform
knows the ``image_shape`` ``(H, W)`` or ``(H, W, C)``. A transform is a callable
``(X_batch, rng) -> X_new``: it never modifies ``X_batch``, works on the whole batch at
once (no loop over images), and draws only from ``rng``. Apply it to training batches only,
never to dev or test data.

Conventions: a shift by ``(dy, dx)`` moves the content ``dy`` rows down and ``dx`` columns
right, filling the uncovered border with zeros: ``out[r, c] = in[r - dy, c - dx]``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from deepfit.backend import RNGLike, as_generator
from deepfit.errors import DataError

Transform = Callable[[np.ndarray, RNGLike], np.ndarray]


def _check_image_shape(image_shape: Sequence[int]) -> tuple[int, ...]:
    shape = tuple(int(s) for s in image_shape)
    if len(shape) not in (2, 3) or any(s < 1 for s in shape):
        raise DataError(
            f"image_shape must be (H, W) or (H, W, C) of positive sizes, got {tuple(image_shape)!r}"
        )
    return shape


class _ImageTransform:
    def __init__(self, image_shape: Sequence[int]) -> None:
        self.image_shape = _check_image_shape(image_shape)

    def _images(self, X: np.ndarray) -> np.ndarray:
        """View ``X`` (n, features) as (n, H, W, C), refusing a wrong number of features."""
        X = np.asarray(X)
        size = math.prod(self.image_shape)
        if X.ndim != 2 or X.shape[1] != size:
            raise DataError(
                f"{type(self).__name__}: X has shape {X.shape}; expected "
                f"(n, {size}) rows of images of shape {self.image_shape}"
            )
        h, w = self.image_shape[:2]
        c = self.image_shape[2] if len(self.image_shape) == 3 else 1
        return X.reshape(X.shape[0], h, w, c)

    def _translate(self, X: np.ndarray, dy: np.ndarray, dx: np.ndarray, pad: int) -> np.ndarray:
        """Shift image ``i`` by ``(dy[i], dx[i])`` (each in ``[-pad, pad]``), zero-filled."""
        imgs = self._images(X)
        n, h, w, c = imgs.shape
        padded = np.zeros((n, h + 2 * pad, w + 2 * pad, c), dtype=imgs.dtype)
        padded[:, pad : pad + h, pad : pad + w] = imgs
        rows = (np.arange(h)[None, :] - dy[:, None] + pad)[:, :, None]
        cols = (np.arange(w)[None, :] - dx[:, None] + pad)[:, None, :]
        out = padded[np.arange(n)[:, None, None], rows, cols]
        return out.reshape(X.shape)


class HorizontalFlip(_ImageTransform):
    """Mirror each image left-right with probability ``p``.

    Parameters
    ----------
    image_shape : (H, W) or (H, W, C)
        Shape of one image.
    p : float, optional
        Probability that a given image is flipped.
    """

    def __init__(self, image_shape: Sequence[int], p: float = 0.5) -> None:
        super().__init__(image_shape)
        if not 0.0 <= p <= 1.0:
            raise DataError(f"HorizontalFlip: p must be in [0, 1], got {p!r}")
        self.p = float(p)

    def __call__(self, X: np.ndarray, rng: RNGLike = None) -> np.ndarray:
        """Return a copy of ``X`` with a random subset of images flipped."""
        gen = as_generator(rng)
        imgs = self._images(X)
        flip = gen.random(imgs.shape[0]) < self.p
        out = imgs.copy()
        out[flip] = imgs[flip, :, ::-1]
        return out.reshape(np.shape(X))


class RandomShift(_ImageTransform):
    """Shift each image by random integers ``dy, dx`` uniform in ``[-max_shift, max_shift]``.

    Pixels shifted out are lost and the uncovered border is zero.

    Parameters
    ----------
    image_shape : (H, W) or (H, W, C)
        Shape of one image.
    max_shift : int, optional
        Largest shift in pixels, along each axis.
    """

    def __init__(self, image_shape: Sequence[int], max_shift: int = 2) -> None:
        super().__init__(image_shape)
        if (
            isinstance(max_shift, bool)
            or not isinstance(max_shift, (int, np.integer))
            or max_shift < 0
        ):
            raise DataError(f"RandomShift: max_shift must be an integer >= 0, got {max_shift!r}")
        self.max_shift = int(max_shift)

    def __call__(self, X: np.ndarray, rng: RNGLike = None) -> np.ndarray:
        """Return shifted copies of the images in ``X``."""
        gen = as_generator(rng)
        n = np.shape(X)[0] if np.ndim(X) == 2 else 0
        k = self.max_shift
        dy = gen.integers(-k, k + 1, size=n)
        dx = gen.integers(-k, k + 1, size=n)
        return self._translate(X, dy, dx, k)


class RandomCrop(_ImageTransform):
    """Pad each image with ``padding`` zero pixels on every side, then crop ``H x W`` back.

    The crop's corner is uniform over the ``(2 padding + 1)^2`` positions, so this equals a
    shift by ``(padding - top, padding - left)``.

    Parameters
    ----------
    image_shape : (H, W) or (H, W, C)
        Shape of one image.
    padding : int, optional
        Zero pixels added on each side before cropping.
    """

    def __init__(self, image_shape: Sequence[int], padding: int = 2) -> None:
        super().__init__(image_shape)
        if isinstance(padding, bool) or not isinstance(padding, (int, np.integer)) or padding < 0:
            raise DataError(f"RandomCrop: padding must be an integer >= 0, got {padding!r}")
        self.padding = int(padding)

    def __call__(self, X: np.ndarray, rng: RNGLike = None) -> np.ndarray:
        """Return randomly cropped copies of the images in ``X``."""
        gen = as_generator(rng)
        n = np.shape(X)[0] if np.ndim(X) == 2 else 0
        p = self.padding
        top = gen.integers(0, 2 * p + 1, size=n)
        left = gen.integers(0, 2 * p + 1, size=n)
        return self._translate(X, p - top, p - left, p)


class Compose:
    """Apply transforms one after the other, all drawing from the same generator.

    Parameters
    ----------
    *transforms : callable
        Callables ``(X, rng) -> X_new``.

    Examples
    --------
    >>> augment = Compose(HorizontalFlip((28, 28)), RandomCrop((28, 28), padding=2))
    """

    def __init__(self, *transforms: Transform) -> None:
        for t in transforms:
            if not callable(t):
                raise DataError(f"Compose: {t!r} is not callable")
        self.transforms = tuple(transforms)

    def __call__(self, X: np.ndarray, rng: RNGLike = None) -> np.ndarray:
        """Return ``X`` passed through every transform (``X`` itself is left untouched)."""
        gen = as_generator(rng)
        out = np.array(X, copy=True)
        for t in self.transforms:
            out = t(out, gen)
        return out


Augment = Compose

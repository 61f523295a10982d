"""The classic 2-D toy problems: two interleaving moons and two concentric circles.

Generated with NumPy alone (same construction as scikit-learn's ``make_moons`` and
``make_circles``), from an explicit random generator.
"""

from __future__ import annotations

import numpy as np

from deepfit.backend import RNGLike, as_generator
from deepfit.data.dataset import Dataset
from deepfit.errors import DataError


def _check(n_samples: int, noise: float) -> None:
    if isinstance(n_samples, bool) or not isinstance(n_samples, (int, np.integer)) or n_samples < 2:
        raise DataError(f"n_samples must be an integer >= 2, got {n_samples!r}")
    if not np.isfinite(noise) or noise < 0:
        raise DataError(f"noise must be a finite number >= 0, got {noise!r}")


def _finish(
    name: str,
    X: np.ndarray,
    y: np.ndarray,
    noise: float,
    gen: np.random.Generator,
    class_names: tuple[str, str],
) -> Dataset:
    if noise > 0:
        X = X + gen.normal(0.0, noise, size=X.shape)
    order = gen.permutation(X.shape[0])
    return Dataset(
        X=np.ascontiguousarray(X[order], dtype=np.float32),
        y=y[order].astype(np.int64),
        task="classification",
        name=name,
        source="generated",
        feature_names=("x1", "x2"),
        class_names=class_names,
    )


def moons(n_samples: int = 500, noise: float = 0.1, rng: RNGLike = 0) -> Dataset:
    """Two interleaving half circles, a binary problem no straight line separates.

    Parameters
    ----------
    n_samples : int, optional
        Total number of points; the outer moon (class 0) gets ``ceil(n/2)``.
    noise : float, optional
        Standard deviation of the Gaussian noise added to each coordinate.
    rng : numpy.random.Generator or int, optional
        Source of the noise and of the final shuffle.

    Returns
    -------
    Dataset
        ``X`` float32 ``(n_samples, 2)``, ``y`` in {0, 1}.
    """
    _check(n_samples, noise)
    gen = as_generator(rng)
    n_out = (n_samples + 1) // 2
    n_in = n_samples - n_out
    t_out = np.linspace(0.0, np.pi, n_out)
    t_in = np.linspace(0.0, np.pi, n_in)
    X = np.concatenate(
        [
            np.stack([np.cos(t_out), np.sin(t_out)], axis=1),
            np.stack([1.0 - np.cos(t_in), 0.5 - np.sin(t_in)], axis=1),
        ]
    )
    y = np.concatenate([np.zeros(n_out, np.int64), np.ones(n_in, np.int64)])
    return _finish("moons", X, y, noise, gen, ("outer", "inner"))


def circles(
    n_samples: int = 500, noise: float = 0.05, factor: float = 0.8, rng: RNGLike = 0
) -> Dataset:
    """A small circle (class 1) inside a large one (class 0).

    Parameters
    ----------
    n_samples : int, optional
        Total number of points; the outer circle gets ``ceil(n/2)``.
    noise : float, optional
        Standard deviation of the Gaussian noise added to each coordinate.
    factor : float, optional
        Radius of the inner circle relative to the outer one, in (0, 1).
    rng : numpy.random.Generator or int, optional
        Source of the noise and of the final shuffle.

    Returns
    -------
    Dataset
        ``X`` float32 ``(n_samples, 2)``, ``y`` in {0, 1}.
    """
    _check(n_samples, noise)
    if not 0.0 < factor < 1.0:
        raise DataError(f"factor must be in (0, 1), got {factor!r}")
    gen = as_generator(rng)
    n_out = (n_samples + 1) // 2
    n_in = n_samples - n_out
    t_out = np.linspace(0.0, 2.0 * np.pi, n_out, endpoint=False)
    t_in = np.linspace(0.0, 2.0 * np.pi, n_in, endpoint=False)
    X = np.concatenate(
        [
            np.stack([np.cos(t_out), np.sin(t_out)], axis=1),
            factor * np.stack([np.cos(t_in), np.sin(t_in)], axis=1),
        ]
    )
    y = np.concatenate([np.zeros(n_out, np.int64), np.ones(n_in, np.int64)])
    return _finish("circles", X, y, noise, gen, ("outer", "inner"))

"""Feature standardization with statistics from the training split only.

Each column is mapped to ``x' = (x - mu) / sigma`` where ``mu`` is the column's mean and
``sigma`` its population standard deviation on the *training* split. Fitting on all the data
(or on dev/test) leaks information from the held-out sets into training; fit once on the
training split, then transform train, dev, test and every later input with the same numbers.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from deepfit.errors import DataError


class Standardizer:
    r"""Standardize features: :math:`x' = (x - \mu) / \sigma`, column by column.

    ``mu`` and ``sigma`` are the mean and the population standard deviation
    (``ddof=0``) of each column of the training split, computed in float64. A constant
    column has ``sigma`` set to 1, so it maps to 0 rather than to NaN.

    Attributes
    ----------
    mean_ : numpy.ndarray or None
        ``mu``, shape ``(features,)``, float64; None before :meth:`fit`.
    std_ : numpy.ndarray or None
        ``sigma``, shape ``(features,)``, float64; None before :meth:`fit`.

    Examples
    --------
    >>> import numpy as np
    >>> s = Standardizer().fit(np.array([[1.0, 5.0], [3.0, 5.0]]))
    >>> s.transform(np.array([[2.0, 5.0]]))
    array([[0., 0.]])
    """

    def __init__(self) -> None:
        self.mean_: np.ndarray | None = None
        self.std_: np.ndarray | None = None

    @property
    def fitted(self) -> bool:
        """Whether :meth:`fit` (or :meth:`load_state_dict`) has been called."""
        return self.mean_ is not None

    @property
    def n_features(self) -> int | None:
        """Number of columns seen at fit time, or None before fitting."""
        return None if self.mean_ is None else int(self.mean_.shape[0])

    def fit(self, X_train: np.ndarray) -> Standardizer:
        """Store the mean and population std of each column of ``X_train``.

        Parameters
        ----------
        X_train : numpy.ndarray
            The training split only, shape ``(n, features)``, ``n >= 1``.

        Returns
        -------
        Standardizer
            ``self``.
        """
        X = self._as_2d(X_train, "fit")
        if X.shape[0] == 0:
            raise DataError(
                "Standardizer.fit: X_train has no rows (shape "
                f"{X.shape}); need at least one example"
            )
        Xd = X.astype(np.float64)
        if not np.all(np.isfinite(Xd)):
            r, c = np.argwhere(~np.isfinite(Xd))[0]
            raise DataError(
                f"Standardizer.fit: X_train row {r + 1}, column {c} is "
                f"{Xd[r, c]}; clean the data first"
            )
        mean = Xd.mean(axis=0)
        std = Xd.std(axis=0)
        constant = np.ptp(Xd, axis=0) == 0
        std[constant] = 1.0
        mean[constant] = Xd[0, constant]
        self.mean_, self.std_ = mean, std
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        """Return ``(X - mean_) / std_``, in ``X``'s float dtype (float32 for integers)."""
        mean, std = self._stats("transform")
        X = self._as_2d(X, "transform")
        self._check_columns(X, "transform")
        dtype = X.dtype if np.issubdtype(X.dtype, np.floating) else np.dtype(np.float32)
        return ((X - mean) / std).astype(dtype, copy=False)

    def fit_transform(self, X_train: np.ndarray) -> np.ndarray:
        """Fit on ``X_train`` and return it transformed."""
        return self.fit(X_train).transform(X_train)

    def inverse_transform(self, Z: np.ndarray) -> np.ndarray:
        """Map standardized values back: ``Z * std_ + mean_``."""
        mean, std = self._stats("inverse_transform")
        Z = self._as_2d(Z, "inverse_transform")
        self._check_columns(Z, "inverse_transform")
        dtype = Z.dtype if np.issubdtype(Z.dtype, np.floating) else np.dtype(np.float32)
        return (Z * std + mean).astype(dtype, copy=False)

    def state_dict(self) -> dict[str, np.ndarray]:
        """Return ``{"mean": ..., "std": ...}`` as plain float64 arrays (copies)."""
        mean, std = self._stats("state_dict")
        return {"mean": mean.copy(), "std": std.copy()}

    def load_state_dict(self, state: dict[str, Any]) -> Standardizer:
        """Restore statistics saved by :meth:`state_dict`.

        Raises
        ------
        DataError
            When a key is missing, the arrays are not 1-D of equal length, or a std is not
            a positive finite number.
        """
        for key in ("mean", "std"):
            if key not in state:
                raise DataError(
                    f"Standardizer.load_state_dict: missing key {key!r}; got {sorted(state)}"
                )
        mean = np.array(state["mean"], dtype=np.float64)
        std = np.array(state["std"], dtype=np.float64)
        if mean.ndim != 1 or std.shape != mean.shape:
            raise DataError(
                "Standardizer.load_state_dict: mean and std must be 1-D of equal "
                f"length, got shapes {mean.shape} and {std.shape}"
            )
        if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(std)) and np.all(std > 0)):
            raise DataError(
                "Standardizer.load_state_dict: mean must be finite and std positive and finite"
            )
        self.mean_, self.std_ = mean, std
        return self

    def _stats(self, method: str) -> tuple[np.ndarray, np.ndarray]:
        if self.mean_ is None or self.std_ is None:
            raise DataError(
                f"Standardizer.{method} called before fit; call "
                "fit(X_train) on the training split first"
            )
        return self.mean_, self.std_

    @staticmethod
    def _as_2d(X: np.ndarray, method: str) -> np.ndarray:
        X = np.asarray(X)
        if X.ndim != 2:
            raise DataError(
                f"Standardizer.{method}: X must be 2-D (n, features), got shape {X.shape}"
            )
        if not (np.issubdtype(X.dtype, np.number) or X.dtype == np.bool_) or np.issubdtype(
            X.dtype, np.complexfloating
        ):
            raise DataError(f"Standardizer.{method}: X has dtype {X.dtype}; expected real numbers")
        return X

    def _check_columns(self, X: np.ndarray, method: str) -> None:
        if X.shape[1] != self.n_features:
            raise DataError(
                f"Standardizer.{method}: X has shape {X.shape} but the "
                f"standardizer was fitted on {self.n_features} columns"
            )

    def __repr__(self) -> str:
        state = f"n_features={self.n_features}" if self.fitted else "unfitted"
        return f"Standardizer({state})"


def _finite_2d(X: Any, who: str) -> np.ndarray:
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[0] == 0:
        raise DataError(f"{who}: X must be 2-D (n >= 1, features), got shape {X.shape}")
    if not np.all(np.isfinite(X)):
        r, c = np.argwhere(~np.isfinite(X))[0]
        raise DataError(f"{who}: X row {r + 1}, column {c} is {X[r, c]}; clean the data first")
    return X


def _load_arrays(state: dict[str, Any], keys: tuple[str, ...], who: str) -> list[np.ndarray]:
    out = []
    for key in keys:
        if key not in state:
            raise DataError(f"{who}.load_state_dict: missing key {key!r}; got {sorted(state)}")
        arr = np.array(state[key], dtype=np.float64)
        if not np.all(np.isfinite(arr)):
            raise DataError(f"{who}.load_state_dict: {key!r} holds NaN or infinity")
        out.append(arr)
    return out


class RobustScaler:
    r"""Robust scaling with smooth clipping, as RealMLP (Holzmüller et al. 2024) does.

    .. math::

        z = \frac{x - q_{1/2}}{s}, \qquad s = q_{3/4} - q_{1/4}
        \ (\text{or } (\max - \min)/2 \text{ when that is } 0,\ \text{or } 1),
        \qquad x' = \frac{z}{\sqrt{1 + (z/3)^2}}

    Quartiles come from the training split. The smooth clip leaves ``|z| < 1`` nearly
    unchanged and bends outliers towards ``+-3``, so one extreme value cannot dominate a
    column's scale (as it does the standard deviation).
    """

    def __init__(self) -> None:
        self.center_: np.ndarray | None = None
        self.scale_: np.ndarray | None = None

    def fit(self, X_train: Any) -> RobustScaler:
        X = _finite_2d(X_train, "RobustScaler.fit")
        q25, q50, q75 = np.quantile(X, [0.25, 0.5, 0.75], axis=0)
        scale = q75 - q25
        half_range = np.ptp(X, axis=0) / 2
        scale = np.where(scale > 0, scale, np.where(half_range > 0, half_range, 1.0))
        self.center_, self.scale_ = q50, scale
        return self

    def transform(self, X: Any) -> np.ndarray:
        if self.center_ is None or self.scale_ is None:
            raise DataError("RobustScaler.transform called before fit")
        z = (np.asarray(X, dtype=np.float64) - self.center_) / self.scale_
        return z / np.sqrt(1.0 + (z / 3.0) ** 2)

    def state_dict(self) -> dict[str, np.ndarray]:
        return {"center": self.center_.copy(), "scale": self.scale_.copy()}

    def load_state_dict(self, state: dict[str, Any]) -> RobustScaler:
        center, scale = _load_arrays(state, ("center", "scale"), "RobustScaler")
        if center.shape != scale.shape or center.ndim != 1 or not np.all(scale > 0):
            raise DataError("RobustScaler.load_state_dict: center/scale must be 1-D, scale > 0")
        self.center_, self.scale_ = center, scale
        return self


class QuantileScaler:
    r"""Map each column through its training quantiles to a standard normal (Gorishniy et al.
    2021 use this transform for their tabular MLPs; scikit-learn's ``QuantileTransformer(
    output_distribution="normal")``).

    With ``q_k`` the training quantiles at levels ``u_k = k/(K-1)``, ``k = 0..K-1``
    (``K = min(n_quantiles, n)``) and ``z_k = \Phi^{-1}(\mathrm{clip}(u_k, 10^{-7},
    1 - 10^{-7}))``, a value maps to the piecewise-linear interpolation of ``(q_k, z_k)``,
    constant beyond the ends (so ``|x'| <= 5.2``). Tied quantiles (discrete columns) map to
    ``\Phi^{-1}`` of the mean of their levels, as scikit-learn's do. Unlike scikit-learn, the
    interpolation between quantiles is linear in ``z`` rather than in ``u``; both agree at
    the quantiles.
    """

    def __init__(self, n_quantiles: int = 1000) -> None:
        self.n_quantiles = n_quantiles
        self.quantiles_: np.ndarray | None = None
        self.references_: np.ndarray | None = None

    def fit(self, X_train: Any) -> QuantileScaler:
        X = _finite_2d(X_train, "QuantileScaler.fit")
        k = max(min(self.n_quantiles, X.shape[0]), 2)
        self.references_ = np.linspace(0.0, 1.0, k)
        self.quantiles_ = np.quantile(X, self.references_, axis=0).T.copy()  # (features, k)
        return self

    def transform(self, X: Any) -> np.ndarray:
        if self.quantiles_ is None or self.references_ is None:
            raise DataError("QuantileScaler.transform called before fit")
        from statistics import NormalDist

        inv_cdf = NormalDist().inv_cdf
        X = np.asarray(X, dtype=np.float64)
        out = np.empty_like(X)
        for j, q in enumerate(self.quantiles_):
            knots, index = np.unique(q, return_inverse=True)
            u = np.clip(np.bincount(index, self.references_) / np.bincount(index), 1e-7, 1 - 1e-7)
            z = np.array([inv_cdf(v) for v in u])
            out[:, j] = np.interp(X[:, j], knots, z) if knots.size > 1 else 0.0
        return out

    def state_dict(self) -> dict[str, np.ndarray]:
        return {"quantiles": self.quantiles_.copy(), "references": self.references_.copy()}

    def load_state_dict(self, state: dict[str, Any]) -> QuantileScaler:
        q, refs = _load_arrays(state, ("quantiles", "references"), "QuantileScaler")
        if q.ndim != 2 or refs.ndim != 1 or q.shape[1] != refs.shape[0]:
            raise DataError("QuantileScaler.load_state_dict: quantiles (features, K), refs (K,)")
        if np.any(np.diff(q, axis=1) < 0):
            raise DataError("QuantileScaler.load_state_dict: quantiles must be non-decreasing")
        self.quantiles_, self.references_ = q, refs
        return self


SCALERS = {"standardize": Standardizer, "robust": RobustScaler, "quantile": QuantileScaler}


def make_scaler(kind: str) -> Standardizer | RobustScaler | QuantileScaler:
    """A new, unfitted scaler by config name: ``standardize``, ``robust`` or ``quantile``."""
    if kind not in SCALERS:
        raise DataError(f"unknown scaling {kind!r}; choose one of {', '.join(SCALERS)}")
    return SCALERS[kind]()

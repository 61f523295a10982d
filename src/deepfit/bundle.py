"""A trained network with everything needed to use it on raw inputs."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from deepfit.errors import DeepfitError, ShapeError
from deepfit.nn.losses import LOSSES, SigmoidBinaryCrossEntropy, get_loss

if TYPE_CHECKING:
    from deepfit.data.preprocess import TablePreprocessor, TargetEncoder, TransformReport

MAX_LAYERS = 10_000
MAX_NAMES = 10_000_000


# -- the metadata schema of a model file --------------------------------------------------------
def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, (str, int, float, bool))


def _text(value: Any) -> str | None:
    return None if isinstance(value, str) else f"a string, not {_type_name(value)}"


def _int(value: Any) -> str | None:
    return None if _is_int(value) else f"an integer, not {_type_name(value)}"


def _dtype(value: Any) -> str | None:
    return None if value in ("float32", "float64") else f"'float32' or 'float64', not {value!r}"


def _loss(value: Any) -> str | None:
    if value in LOSSES:
        return None
    return f"one of {', '.join(LOSSES)}, not {value!r}"


def _layer_value(value: Any) -> bool:
    """A layer's constructor argument: a plain value, or a list of integers (an
    ``EmbedColumns``' columns, cardinalities and dims); a residual block's ``layers`` are
    checked as an architecture of their own."""
    if _scalar(value):
        return True
    return isinstance(value, list) and len(value) <= MAX_LAYERS and all(map(_is_int, value))


def _architecture(value: Any, prefix: str = "") -> str | None:
    if not isinstance(value, list) or not value:
        return f"a non-empty list of layer tables, not {_type_name(value)}"
    if len(value) > MAX_LAYERS:
        return f"at most {MAX_LAYERS} layers, not {len(value)}"
    for i, layer in enumerate(value):
        if not isinstance(layer, dict) or not isinstance(layer.get("type"), str):
            return (
                f"a list of layer tables with a 'type' string; layer {prefix}{i} is {layer!r:.80}"
            )
        block = layer["type"] == "Residual"
        if block and "layers" in layer:
            problem = _architecture(layer["layers"], f"{prefix}{i}.f.")
            if problem:
                return problem
        bad = [k for k, v in layer.items() if not ((block and k == "layers") or _layer_value(v))]
        if bad:
            return (
                f"plain values in each layer; layer {prefix}{i} has {bad[0]!r} = "
                f"{layer[bad[0]]!r:.80}"
            )
    return None


def _optional_table(value: Any) -> str | None:
    return None if value is None or isinstance(value, dict) else f"a table, not {_type_name(value)}"


def _scalar_table(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, dict) or not all(_scalar(v) for v in value.values()):
        return f"a table of plain values, not {_type_name(value)}"
    return None


def _names(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, list) or len(value) > MAX_NAMES:
        return f"a list of strings, not {_type_name(value)}"
    bad = next((v for v in value if not isinstance(v, str)), None)
    if bad is not None:
        return f"a list of strings; it holds {bad!r} ({_type_name(bad)})"
    return None


def _shape(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, list) or not value or not all(_is_int(v) and v > 0 for v in value):
        return f"a list of positive integers, not {value!r:.80}"
    return None


def _anything(value: Any) -> str | None:
    return None


# field -> (required, check); a check returns None or what the value should have been
METADATA_SCHEMA: dict[str, tuple[bool, Callable[[Any], str | None]]] = {
    "format": (True, _text),
    "format_version": (True, _int),
    "deepfit_version": (False, _text),
    "architecture": (True, _architecture),
    "dtype": (True, _dtype),
    "loss": (True, _loss),
    "standardizer": (False, _scalar_table),
    "class_names": (False, _names),
    "feature_names": (False, _names),
    "image_shape": (False, _shape),
    "config": (False, _optional_table),
    # the tabular preprocessing state: validated by the preprocessor that reads it
    "preprocessor": (False, _anything),
}


def check_metadata(meta: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> None:
    """Check a model file's metadata against :data:`METADATA_SCHEMA` and its arrays.

    Every field is type-checked; the network's and the standardizer's arrays must be real
    numbers (other arrays numbers or text), and the standardizer the
    metadata declares needs its ``standardizer/mean`` and ``standardizer/std`` arrays.
    Raises :class:`DeepfitError` with one line naming the field or array.
    """
    for name, (required, check) in METADATA_SCHEMA.items():
        if name not in meta:
            if required:
                raise DeepfitError(f"metadata field {name!r} is missing")
            continue
        problem = check(meta[name])
        if problem:
            raise DeepfitError(f"metadata field {name!r} must be {problem}")
    for name, array in arrays.items():
        numeric = name.startswith(("model/", "standardizer/"))
        if array.dtype.kind not in ("biuf" if numeric else "biufUS"):
            expected = "real numbers" if numeric else "numbers or text"
            raise DeepfitError(f"array {name!r} has dtype {array.dtype}; expected {expected}")
    if meta.get("standardizer") is not None:
        for key in ("mean", "std"):
            if f"standardizer/{key}" not in arrays:
                raise DeepfitError(
                    f"array 'standardizer/{key}' is missing (the metadata declares a standardizer)"
                )


@dataclass
class ModelBundle:
    """The network plus the preprocessing and labels around it.

    ``predict`` and ``predict_proba`` take *raw* inputs: the standardizer fitted on the
    training split is applied first, and class indices are mapped back to the original
    labels.

    Attributes
    ----------
    model : Sequential
    loss : str
        The loss's registry name (``softmax_cross_entropy``, ``sigmoid_binary_cross_entropy``,
        ``mse``); its ``output`` turns logits into predictions.
    standardizer : dict or None
        The fitted standardizer's ``state_dict()`` (``mean`` and ``std`` arrays).
    class_names : list of str or None
        Original labels of class indices ``0..K-1`` (classification only).
    feature_names : list of str or None
    config : dict
        The resolved config that produced the model (for the record).
    image_shape : tuple or None
    version : str
        deepfit version that wrote the file (empty for a bundle made in memory).
    """

    model: Any
    loss: str = "softmax_cross_entropy"
    standardizer: dict[str, Any] | None = None
    class_names: list[str] | None = None
    feature_names: list[str] | None = None
    config: dict[str, Any] = field(default_factory=dict)
    image_shape: tuple[int, ...] | None = None
    version: str = ""
    preprocessor: TablePreprocessor | None = None
    target: TargetEncoder | None = None

    # -- tables ----------------------------------------------------------------------------------
    def preprocessing_state(self) -> tuple[dict[str, np.ndarray], dict[str, Any] | None]:
        """The tabular preprocessing and target encoding as ``(arrays, meta)`` for a model
        file (array names start ``features/`` or ``target/``); ``({}, None)`` without them."""
        if self.preprocessor is None and self.target is None:
            return {}, None
        arrays: dict[str, np.ndarray] = {}
        meta: dict[str, Any] = {}
        for part, obj in (("features", self.preprocessor), ("target", self.target)):
            if obj is None:
                continue
            part_arrays, meta[part] = obj.state()
            arrays.update({f"{part}/{k}": v for k, v in part_arrays.items()})
        return arrays, meta

    def attach_preprocessing(
        self, arrays: dict[str, np.ndarray], meta: Any, where: str = "model"
    ) -> None:
        """Rebuild what :meth:`preprocessing_state` wrote (refusing damaged state clearly)."""
        from deepfit.data.preprocess import TablePreprocessor, TargetEncoder

        if meta is None:
            return
        if not isinstance(meta, dict):
            raise DeepfitError(f"{where}: damaged preprocessing state (not a table)")

        def part(name: str) -> dict[str, np.ndarray]:
            prefix = f"{name}/"
            return {k.removeprefix(prefix): v for k, v in arrays.items() if k.startswith(prefix)}

        if meta.get("features") is not None:
            self.preprocessor = TablePreprocessor.from_state(
                part("features"), meta["features"], where
            )
        if meta.get("target") is not None:
            self.target = TargetEncoder.from_state(part("target"), meta["target"], where)

    def table_inputs(self, data: Any) -> tuple[np.ndarray, TransformReport]:
        """Raw table rows (a :class:`~deepfit.data.tables.Table`, a DataFrame or a mapping of
        columns) -> the network's inputs, matching columns by name."""
        from deepfit.data.tables import Table, from_arrays

        if self.preprocessor is None:
            raise DeepfitError("this model was not trained on a table; pass a numeric array")
        table = data if isinstance(data, Table) else from_arrays(data, source="inputs")
        X, report = self.preprocessor.transform(table)
        target_name = self.config.get("data", {}).get("target", "") if self.config else ""
        report.ignored_columns = self.preprocessor.ignored(table, also=(target_name,))
        return X, report

    def check(self) -> None:
        """Refuse, with one line, a bundle that would predict nonsense: non-finite weights or
        buffers, a negative batch-norm variance, a standardizer whose mean is not finite or
        whose std is not positive and finite, or names and shapes that disagree with the
        network's input and output widths."""
        state = self.model.state_dict()
        for name, value in state.items():
            if not np.all(np.isfinite(value)):
                raise DeepfitError(f"weight {name!r} holds NaN or infinity")
            if name.endswith("running_var") and np.any(value < 0):
                raise DeepfitError(f"batch-norm variance {name!r} is negative")
        first = self.model.layers[0] if self.model.layers else None
        n_in = getattr(first, "n_in", None)
        if self.standardizer is not None:
            mean = np.asarray(self.standardizer.get("mean"), dtype=np.float64)
            std = np.asarray(self.standardizer.get("std"), dtype=np.float64)
            if mean.ndim != 1 or std.shape != mean.shape:
                raise DeepfitError(
                    f"standardizer mean and std must be 1-D of equal length, got shapes "
                    f"{mean.shape} and {std.shape}"
                )
            if n_in is not None and mean.shape[0] != n_in:
                raise DeepfitError(
                    f"standardizer has {mean.shape[0]} columns, the network takes {n_in} inputs"
                )
            if not np.all(np.isfinite(mean)):
                raise DeepfitError("standardizer mean holds NaN or infinity")
            bad = np.flatnonzero(~(np.isfinite(std) & (std > 0)))
            if bad.size:
                raise DeepfitError(
                    f"standardizer std of column {int(bad[0])} is {std[bad[0]]}; a standard "
                    f"deviation must be positive and finite"
                )
        plain = getattr(self, "preprocessor", None) is None
        if plain and n_in is not None and self.feature_names is not None:
            if len(self.feature_names) != n_in:
                raise DeepfitError(
                    f"{len(self.feature_names)} feature names for a network of {n_in} inputs"
                )
        if plain and n_in is not None and self.image_shape is not None:
            if int(np.prod(self.image_shape)) != n_in:
                raise DeepfitError(
                    f"image shape {tuple(self.image_shape)} does not give the network's "
                    f"{n_in} inputs"
                )
        n_out = self.model.n_outputs
        if self.class_names is not None:
            k = len(self.class_names)
            if self.loss == "mse":
                raise DeepfitError("class names given for a regression (mse) model")
            binary = self.loss == "sigmoid_binary_cross_entropy"
            expected = 2 if binary else n_out
            if k < 2 or (expected is not None and k != expected):
                raise DeepfitError(
                    f"{k} class names for a network with {n_out} output"
                    f"{'s' if n_out != 1 else ''} ({self.loss})"
                )

    def transform(self, X: Any) -> np.ndarray:
        """Raw inputs -> model inputs: ``(x - mean) / std`` with the training statistics, or
        the fitted table preprocessing (columns matched by name) for a table model."""
        if self.preprocessor is not None:
            if isinstance(X, np.ndarray):
                raise ShapeError(
                    "this model reads named columns ("
                    + ", ".join(self.preprocessor.input_columns)
                    + "); pass a DataFrame, a mapping of columns or a file, not an array"
                )
            return self.table_inputs(X)[0]
        X = np.asarray(X, dtype=np.float64)
        n_in = self.model.layers[0].n_in if hasattr(self.model.layers[0], "n_in") else None
        if X.ndim != 2 or (n_in is not None and X.shape[1] != n_in):
            raise ShapeError(f"inputs must have shape (rows, {n_in}) for this model, got {X.shape}")
        if self.standardizer is not None:
            X = (X - self.standardizer["mean"]) / self.standardizer["std"]
        return X

    def _logits(self, X: Any, prepared: bool) -> np.ndarray:
        return self.model.predict(X if prepared else self.transform(X))

    def predict_proba(self, X: Any, *, prepared: bool = False) -> np.ndarray:
        """Class probabilities (rows sum to 1; binary models give ``[1 - p, p]``), or the
        predicted values for regression (in the target's units). ``prepared``: ``X`` are
        already the network's inputs (from :meth:`transform` or :meth:`table_inputs`)."""
        if self.loss == "mse":
            return self.predict(X, prepared=prepared)
        out = get_loss(self.loss).output(self._logits(X, prepared))
        if self.loss == "sigmoid_binary_cross_entropy" and out.shape[1] == 1:
            out = np.hstack([1 - out, out])
        return out

    def predict(self, X: Any, *, prepared: bool = False) -> np.ndarray:
        """Class labels (the original names) for classification, values for regression."""
        logits = self._logits(X, prepared)
        if self.loss == "mse":
            values = get_loss(self.loss).output(logits)
            return self.target.decode_values(values) if self.target is not None else values
        if isinstance(get_loss(self.loss), SigmoidBinaryCrossEntropy):
            index = (logits[:, 0] > 0).astype(np.int64)
        else:
            index = logits.argmax(axis=1)
        if self.class_names is None:
            return index
        if len(self.class_names) <= int(index.max(initial=0)):
            raise DeepfitError(
                f"model predicts class {int(index.max())} but names only "
                f"{len(self.class_names)} classes"
            )
        return np.asarray(self.class_names, dtype=object)[index]

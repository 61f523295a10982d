"""Run configuration: a TOML file validated against a declared schema.

Every key has a type, a default and an allowed range, declared once in :data:`SCHEMA`.
Validation refuses unknown keys (suggesting the closest valid one), wrong types and
out-of-range values, each with one line naming the dotted key. :func:`resolve` fills in every
default, so a run directory's ``config.toml`` says exactly what ran.
"""

from __future__ import annotations

import difflib
import math
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deepfit.errors import DeepfitError


class ConfigError(DeepfitError):
    """A config key is unknown, of the wrong type, or out of range."""


# -- value checkers ---------------------------------------------------------------------------
Check = Callable[[Any], Any]


def _describe(value: Any) -> str:
    return f"{value!r} ({type(value).__name__})"


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def number(
    lo: float | None = None,
    hi: float | None = None,
    *,
    lo_open=False,
    hi_open=False,
    integer: bool = False,
) -> tuple[Check, str]:
    """A numeric key in [lo, hi] (open ends as asked); ``integer`` refuses fractions."""
    left = "(" if lo_open else "["
    right = ")" if hi_open else "]"
    kind = "an integer" if integer else "a number"
    if lo is None and hi is None:
        rule = kind
    elif hi is None:
        rule = f"{kind} {'>' if lo_open else '>='} {lo:g}"
    else:
        rule = f"{kind} in {left}{lo:g}, {hi:g}{right}"

    def check(value: Any) -> Any:
        if integer:
            ok = isinstance(value, int) and not isinstance(value, bool)
        else:
            ok = _is_number(value) and math.isfinite(value)
        if ok and lo is not None:
            ok = value > lo if lo_open else value >= lo
        if ok and hi is not None:
            ok = value < hi if hi_open else value <= hi
        if not ok:
            raise ValueError(rule)
        return value if integer else float(value)

    return check, rule


def choice(*options: str) -> tuple[Check, str]:
    rule = "one of " + ", ".join(repr(o) for o in options)

    def check(value: Any) -> Any:
        if value not in options:
            raise ValueError(rule)
        return value

    return check, rule


def boolean() -> tuple[Check, str]:
    def check(value: Any) -> Any:
        if not isinstance(value, bool):
            raise ValueError("true or false")
        return value

    return check, "true or false"


def text() -> tuple[Check, str]:
    def check(value: Any) -> Any:
        if not isinstance(value, str):
            raise ValueError("a string")
        return value

    return check, "a string"


def widths() -> tuple[Check, str]:
    rule = "a list of positive integers (layer widths), e.g. [128, 64]"

    def check(value: Any) -> Any:
        if not isinstance(value, list) or not all(
            isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in value
        ):
            raise ValueError(rule)
        return value

    return check, rule


def keep_probs() -> tuple[Check, str]:
    rule = "a number in (0, 1] or a list of them (one per hidden layer)"

    def check(value: Any) -> Any:
        values = value if isinstance(value, list) else [value]
        if not values or not all(_is_number(v) and 0 < v <= 1 for v in values):
            raise ValueError(rule)
        return [float(v) for v in value] if isinstance(value, list) else float(value)

    return check, rule


def split_spec() -> tuple[Check, str]:
    rule = '"auto" or three fractions [train, dev, test] summing to 1'

    def check(value: Any) -> Any:
        if value == "auto":
            return value
        if (
            isinstance(value, list)
            and len(value) == 3
            and all(_is_number(v) and 0 <= v < 1 for v in value)
            and abs(sum(value) - 1) < 1e-9
            and value[0] > 0
        ):
            return [float(v) for v in value]
        raise ValueError(rule)

    return check, rule


def names() -> tuple[Check, str]:
    rule = "a list of strings (column names)"

    def check(value: Any) -> Any:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ValueError(rule)
        return value

    return check, rule


def class_weights() -> tuple[Check, str]:
    rule = "'none', 'balanced' or a table of positive weights by class label"

    def check(value: Any) -> Any:
        if value in ("none", "balanced"):
            return value
        if (
            isinstance(value, dict)
            and value
            and all(_is_number(v) and v > 0 and math.isfinite(v) for v in value.values())
        ):
            return {str(k): float(v) for k, v in value.items()}
        raise ValueError(rule)

    return check, rule


def augmentations() -> tuple[Check, str]:
    options = ("flip", "crop", "shift")
    rule = f"a list drawn from {', '.join(repr(o) for o in options)}"

    def check(value: Any) -> Any:
        if not isinstance(value, list) or not all(v in options for v in value):
            raise ValueError(rule)
        return value

    return check, rule


def image_size() -> tuple[Check, str]:
    rule = "0 (every image at its own size, all equal), a positive integer or [height, width]"

    def check(value: Any) -> Any:
        def positive(v: Any) -> bool:
            return isinstance(v, int) and not isinstance(v, bool) and v >= 1

        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
        if isinstance(value, list) and len(value) == 2 and all(positive(v) for v in value):
            return value
        raise ValueError(rule)

    return check, rule


def stream_choice() -> tuple[Check, str]:
    rule = 'true, false or "auto"'

    def check(value: Any) -> Any:
        if not (isinstance(value, bool) or value == "auto"):
            raise ValueError(rule)
        return value

    return check, rule


def seed32() -> tuple[Check, str]:
    rule = "an integer in [0, 2**32 - 1] (a NumPy RandomState seed)"

    def check(value: Any) -> Any:
        if not (isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**32):
            raise ValueError(rule)
        return value

    return check, rule


@dataclass(frozen=True)
class Key:
    """One config key: its default, its checker and the rule the checker enforces."""

    default: Any
    check: Check
    rule: str
    doc: str = ""
    accepts_table: bool = False  # a value that may itself be a table ({label = weight})


def key(default: Any, spec: tuple[Check, str], doc: str = "") -> Key:
    return Key(default, spec[0], spec[1], doc)


DATA_SOURCES = (
    "digits", "breast_cancer", "wine", "iris", "circles", "moons", "idx", "mnist",
    "fashion_mnist", "csv", "parquet", "npy", "npz", "images",
)  # fmt: skip

INITS = (
    "he", "xavier", "glorot_uniform", "normal", "zeros", "course_he", "course_xavier",
    "course_normal",
)  # fmt: skip

SCHEDULE_KINDS = (
    "constant", "inverse_time", "exponential", "inverse_sqrt", "step", "cosine", "sgdr",
)  # fmt: skip

SCHEMA: dict[str, dict[str, Any]] = {
    "data": {
        "source": key("digits", choice(*DATA_SOURCES), "where the examples come from"),
        "path": key(
            "", text(), "csv or npz file, or images folder (relative paths: to the config file)"
        ),
        "images": key("", text(), "IDX images file (source = 'idx')"),
        "labels": key("", text(), "IDX labels file (source = 'idx')"),
        "target": key("target", text(), "the table column holding the label or value"),
        "task": key("auto", choice("auto", "classification", "regression")),
        "dev_path": key("", text(), "optional separate dev file (csv or npz)"),
        "test_path": key("", text(), "optional separate test file (csv or npz)"),
        "split": key("auto", split_spec(), "train/dev/test fractions, or sized to the data"),
        "normalize": key(
            "auto",
            choice("auto", "standardize", "robust", "quantile", "scale", "none"),
            "fitted on the training split: standardize, robust (median/IQR + smooth clip), "
            "quantile (to a normal), scale (x / max|x|, pixels), none; auto: the measured "
            "default for tables, standardize otherwise",
        ),
        "delimiter": key("", text(), "csv cell separator ('' : sniffed from the file)"),
        "na_values": key(
            ["", "NA", "N/A", "NaN", "nan", "null", "NULL", "?"],
            names(),
            "table cells that mean 'missing' (stripped of spaces)",
        ),
        "numeric": key([], names(), "table columns to use as numbers (overrides inference)"),
        "categorical": key([], names(), "table columns to use as categories"),
        "drop": key([], names(), "table columns not to use"),
        "weight": key("", text(), "table column of per-row sample weights ('' : none)"),
        "class_weight": Key(
            "none",
            *class_weights(),
            "'none', 'balanced' (n / (classes * count)) or a table {label = weight}",
            accepts_table=True,
        ),
        "missing": key(
            "impute", choice("impute", "error"), "missing table cells: impute, or refuse"
        ),
        "max_onehot": key(
            16, number(1, integer=True), "categories with more levels get an embedding"
        ),
        "augment": key([], augmentations(), "image augmentations for training batches"),
        "image_size": key(0, image_size(), "images: resize to [height, width] (or a side)"),
        "color": key("grey", choice("grey", "gray", "rgb"), "images: grey or rgb pixels"),
        "max_examples": key(0, number(0, integer=True), "use at most this many (0: all)"),
        "stream": key(
            False,
            stream_choice(),
            "train a Parquet / .npy table from disk, chunk by chunk (data/streaming.py); "
            "auto: when it would take more than a quarter of the memory available",
        ),
        "shuffle_buffer": key(
            65536, number(1, integer=True), "streamed tables: rows of the shuffle buffer"
        ),
        "stream_cache": key(
            False,
            boolean(),
            "streamed tables: keep the preprocessed rows in a temporary folder after the "
            "first epoch (disk: about rows x features x 4 bytes), read back by later epochs",
        ),
        "n_samples": key(500, number(10, integer=True), "size of circles / moons"),
        "noise": key(0.1, number(0), "noise of circles / moons"),
        "cache_dir": key("", text(), "download cache for mnist / fashion_mnist"),
    },
    "model": {
        "hidden": key([64], widths(), "hidden layer widths"),
        "activation": key("relu", choice("relu", "leaky_relu", "tanh", "sigmoid")),
        "init": key(
            "he",
            choice(*INITS),
            "course_*: the course notebooks' draws, np.random.seed(init_seed) once, then "
            "W = randn(n_out, n_in).T * std layer by layer (std sqrt(2/n_in), sqrt(1/n_in), "
            "init_scale)",
        ),
        "init_scale": key(
            0.01,
            number(0, lo_open=True),
            "std of init = 'normal' and 'course_normal' (course: x10 = 10)",
        ),
        "init_seed": key(3, seed32(), "np.random.seed of the course_* inits (notebooks: 3)"),
        "batchnorm": key(False, boolean()),
        "norm": key(
            "none",
            choice("none", "batchnorm", "layernorm"),
            "normalization in each hidden layer (batchnorm = true is norm = 'batchnorm')",
        ),
        "residual": key(False, boolean(), "residual blocks z + f(z) (the cocktail's skips)"),
        "ensemble": key(
            1,
            number(1, 256, integer=True),
            "K > 1: K networks trained as one, predicting their mean probability or value",
        ),
        "ensemble_kind": key(
            "deep",
            choice("deep", "batch"),
            "deep: independent members (seeds differ); batch: BatchEnsemble / TabM-mini "
            "(shared weights, per-member rank-1 scalings)",
        ),
        "keep_prob": key(1.0, keep_probs(), "dropout keep probability"),
        "l2": key(0.0, number(0), "L2 penalty lambda: lambda/(2m) sum ||W||^2"),
        "l1": key(0.0, number(0), "L1 penalty lambda: lambda/m sum |W|"),
        "loss": key(
            "auto", choice("auto", "softmax_cross_entropy", "sigmoid_binary_cross_entropy", "mse")
        ),
        "binary_output": key(
            "softmax",
            choice("softmax", "sigmoid"),
            "loss = 'auto' with two classes: two softmax units, or one sigmoid unit with the "
            "binary cross-entropy (scikit-learn's MLPClassifier)",
        ),
    },
    "train": {
        "optimizer": key("adam", choice("sgd", "momentum", "rmsprop", "adam")),
        "lr": key(0.001, number(0, lo_open=True), "learning rate"),
        "beta": key(0.9, number(0, 1, hi_open=True), "Momentum / RMSprop beta"),
        "beta1": key(0.9, number(0, 1, hi_open=True), "Adam's first-moment beta"),
        "beta2": key(0.999, number(0, 1, hi_open=True), "Adam's second-moment beta"),
        "eps": key(1e-8, number(0, lo_open=True)),
        "weight_decay": key(0.0, number(0), "decoupled weight decay (AdamW)"),
        "batch_size": key(64, number(1, integer=True)),
        "epochs": key(50, number(1, integer=True)),
        "seed": key(0, number(0, integer=True)),
        "device": key("cpu", choice("cpu", "gpu")),
        "dtype": key("float32", choice("float32", "float64")),
        "refit": key(
            False,
            boolean(),
            "after early stopping, train again on train + dev for the best number of epochs",
        ),
        "clip_norm": key(
            0.0, number(0), "clip the gradient to this global L2 norm before each step (0: off)"
        ),
        "threads": key(
            0,
            number(0, integer=True),
            "BLAS threads while training (0: one when the products are small, else BLAS's own)",
        ),
        "label_smoothing": key(
            0.0,
            number(0, 1, hi_open=True),
            "classification targets (1 - eps) onehot + eps / K (sigmoid: y (1 - eps) + eps / 2)",
        ),
        "schedule": {
            "kind": key("constant", choice(*SCHEDULE_KINDS), "learning-rate schedule"),
            "rate": key(1.0, number(0), "inverse_time / inverse_sqrt decay rate"),
            "interval": key(
                1, number(1, integer=True), "inverse_time: epochs per staircase step (1: smooth)"
            ),
            "k": key(0.95, number(0, 1, lo_open=True), "exponential decay base"),
            "every": key(10, number(1, integer=True), "step: epochs per drop"),
            "factor": key(0.5, number(0, 1, lo_open=True), "step: multiplier per drop"),
            "total": key(0, number(0, integer=True), "cosine: epochs to anneal (0: epochs)"),
            "period": key(10, number(1, integer=True), "sgdr: epochs of the first cycle (T_0)"),
            "mult": key(1, number(1, integer=True), "sgdr: growth of each cycle (T_mult)"),
            "lr_min": key(0.0, number(0), "cosine / sgdr: lowest learning rate"),
            "warmup": key(0, number(0, integer=True), "linear warm-up epochs"),
        },
        "early_stopping": {
            "enabled": key(True, boolean()),
            "monitor": key("dev_loss", choice("dev_loss", "dev_accuracy", "train_loss")),
            "patience": key(10, number(0, integer=True)),
            "min_delta": key(0.0, number(0)),
            "criterion": key("patience", choice("patience", "GL", "PQ", "UP")),
            "alpha": key(0.0, number(0), "threshold of GL / PQ / UP (0: Prechelt's default)"),
            "restore_best": key(True, boolean()),
            "start_from_epoch": key(
                0, number(0, integer=True), "epochs ignored before monitoring starts (Keras)"
            ),
            "baseline": key(
                0.0, number(), "stop unless the monitor beats this within patience (0: none)"
            ),
        },
        "plateau": {
            "enabled": key(False, boolean(), "ReduceLROnPlateau (PyTorch's semantics)"),
            "monitor": key("dev_loss", choice("dev_loss", "dev_accuracy", "train_loss")),
            "factor": key(
                0.1, number(0, 1, lo_open=True, hi_open=True), "multiplier of each reduction"
            ),
            "patience": key(
                5, number(0, integer=True), "bad epochs before a reduction (< early stopping's)"
            ),
            "threshold": key(1e-4, number(0), "least change that counts as better"),
            "threshold_mode": key("rel", choice("rel", "abs")),
            "cooldown": key(0, number(0, integer=True), "epochs after a reduction not counted"),
            "min_lr": key(0.0, number(0), "the rate is never reduced below this"),
        },
        "averaging": {
            "kind": key(
                "none",
                choice("none", "swa", "ema"),
                "weight averaging: SWA (mean of epoch ends) or EMA (every step)",
            ),
            "start": key(0, number(0, integer=True), "epochs trained before averaging starts"),
            "decay": key(0.999, number(0, 1, hi_open=True), "ema: decay per step"),
        },
        "lookahead": {
            "enabled": key(False, boolean(), "Lookahead around the optimizer (Zhang et al.)"),
            "k": key(5, number(1, integer=True), "fast steps per synchronization"),
            "alpha": key(0.5, number(0, 1, lo_open=True), "slow weights' step toward the fast"),
        },
        "mixup": {
            "kind": key("none", choice("none", "mixup", "cutmix"), "mix training batches"),
            "alpha": key(0.2, number(0, lo_open=True), "lambda ~ Beta(alpha, alpha)"),
            "prob": key(1.0, number(0, 1), "share of batches mixed"),
        },
        "snapshots": {
            "enabled": key(False, boolean(), "snapshot ensemble at each sgdr cycle end"),
            "keep": key(0, number(0, integer=True), "keep the last N snapshots (0: all)"),
        },
    },
    "diagnose": {
        "bayes_error": key(0.0, number(0, 1), "estimate of the best achievable error"),
        "tolerance": key(
            0.02, number(0, 1, hi_open=True), "gap that counts as high bias / variance"
        ),
    },
}


def register_section(name: str, schema: dict[str, Any]) -> None:
    """Add a top-level section to the schema (used by :mod:`deepfit.tuning` for ``[tune]``)."""
    SCHEMA[name] = schema


# -- [tune]: hyperparameter search (read by `deepfit tune`; `deepfit train` ignores it) --------
class OptionalTable(dict):
    """A schema table that is not filled with defaults when the config leaves it out (its
    defaults are filled when it is written), so runs without ``[tune]`` never grow one."""


class SpaceTable(dict):
    """``[tune.space]``: a table mirroring the config's tables whose leaves are search
    expressions (strings), e.g. ``[tune.space.train] lr = "loguniform(1e-4, 1)"`` and
    ``[tune.space.train.schedule] rate = "uniform(0, 1)"``.

    Names are checked against the schema here (a misspelt key is refused naming the closest
    valid one); the expressions are parsed by :mod:`deepfit.tuning.space` when ``deepfit tune``
    reads them, so ``deepfit train`` accepts and ignores the table. Nothing is filled in.
    """

    def __init__(self, template: dict[str, Any], *, switches: bool = False) -> None:
        super().__init__()  # empty: iterating items() fills no defaults
        self.template = template
        self.switches = switches  # the top level also takes [tune.space.use]

    def __contains__(self, name: object) -> bool:
        if self.switches and name == SWITCHES:
            return True
        return name in self.template and not isinstance(self.template[name], OptionalTable)

    def __iter__(self):
        names = [k for k in self.template if k in self]
        return iter([*names, SWITCHES] if self.switches else names)

    def __getitem__(self, name: str) -> Any:
        if self.switches and name == SWITCHES:
            return SwitchTable()
        spec = self.template[name]
        return SpaceTable(spec) if isinstance(spec, dict) else key("", search_expression())


#: ``[tune.space.use]``: searched switches that are no config key, read by conditions
#: (``keep_prob = "uniform(0.5, 0.95) if use.dropout"``); see :mod:`deepfit.tuning.space`.
SWITCHES = "use"


class SwitchTable(dict):
    """``[tune.space.use]``: any name, each a search expression (nothing filled in)."""

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str)

    def __getitem__(self, name: str) -> Any:
        return key("", search_expression())


def search_expression() -> tuple[Check, str]:
    rule = 'a search expression such as "loguniform(1e-4, 1)"'

    def check(value: Any) -> Any:
        if not isinstance(value, str):
            raise ValueError(rule)
        return value

    return check, rule


TUNE_STRATEGIES = ("random", "grid", "coarse-to-fine", "tpe")
TUNE_METRICS = ("dev_loss", "dev_accuracy", "dev_r2")
TUNE_PRUNERS = ("median", "halving", "hyperband", "none")

register_section(
    "tune",
    OptionalTable(
        {
            "trials": key(20, number(1, integer=True), "finished trials to reach"),
            "strategy": key("random", choice(*TUNE_STRATEGIES), "how points are chosen"),
            "metric": key(
                "dev_loss", choice(*TUNE_METRICS), "dev-set metric to optimize (never test)"
            ),
            "direction": key("auto", choice("auto", "minimize", "maximize")),
            "seed": key(0, number(0, integer=True), "seed of the search (not of training)"),
            "pruning": key(True, boolean(), "stop hopeless trials early (see tune.pruner)"),
            "pruner": key(
                "median",
                choice(*TUNE_PRUNERS),
                "Optuna's pruner: median, halving (successive halving), hyperband or none",
            ),
            "budget": key(
                "", text(), "wall time of the search, e.g. '90s', '5m', '1h' ('': no limit)"
            ),
            "rounds": key(3, number(1, integer=True), "coarse-to-fine: number of rounds"),
            "keep": key(
                0.25, number(0, 1, lo_open=True), "coarse-to-fine: best fraction kept per round"
            ),
            "pack": key(
                1,
                number(1, integer=True),
                "trials trained at once as one packed network (same architecture and batch)",
            ),
            "cv": key(
                1,
                number(1, integer=True),
                "k-fold cross-validated trials: k trainings, scored by the mean (1: one dev split)",
            ),
            "space": SpaceTable(SCHEMA, switches=True),
        }
    ),
)


def flatten(table: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """``[("section.key", value), ...]`` for every leaf of nested tables, in order."""
    out = []
    for name, value in table.items():
        dotted = f"{prefix}{name}"
        if isinstance(value, dict):
            out.extend(flatten(value, dotted + "."))
        else:
            out.append((dotted, value))
    return out


def _all_keys(schema: Mapping[str, Any], prefix: str = "") -> list[str]:
    return [dotted for dotted, _ in flatten(schema, prefix)]


# Names other frameworks use for our keys: suggested before any spelling match.
ALIASES = {
    "learning_rate": "lr", "lr0": "lr", "alpha": "lr", "momentum": "beta", "rho": "beta",
    "epsilon": "eps", "layers": "hidden", "hidden_layer_sizes": "hidden", "units": "hidden",
    "dropout": "keep_prob", "lambda": "l2", "lambd": "l2", "weight_decay": "weight_decay",
    "batchsize": "batch_size", "max_epochs": "epochs", "max_iter": "epochs",
    "random_state": "seed", "batch_norm": "batchnorm", "bn": "batchnorm",
    "color_mode": "color", "colour": "color", "target_size": "image_size",
}  # fmt: skip


def _unknown(dotted: str, schema: Mapping[str, Any], prefix: str) -> ConfigError:
    local = [f"{prefix}{k}" for k in schema]
    alias = ALIASES.get(dotted.rsplit(".", 1)[-1])
    if alias in schema:
        candidates = [f"{prefix}{alias}"]
    else:
        candidates = difflib.get_close_matches(dotted, local, n=1, cutoff=0.6)
        candidates = candidates or difflib.get_close_matches(
            dotted, _all_keys(SCHEMA), n=1, cutoff=0.6
        )
    hint = f"; did you mean {candidates[0]!r}?" if candidates else ""
    valid = ", ".join(schema)
    return ConfigError(f"config key {dotted!r} is unknown{hint} (valid here: {valid})")


def _validate(
    values: Mapping[str, Any], schema: Mapping[str, Any], prefix: str, *, fill: bool
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in values.items():
        dotted = f"{prefix}{name}"
        if name not in schema:
            raise _unknown(dotted, schema, prefix)
        spec = schema[name]
        if isinstance(spec, dict):
            if not isinstance(value, dict):
                raise ConfigError(f"config key {dotted!r} must be a table, got {_describe(value)}")
            out[name] = _validate(value, spec, dotted + ".", fill=fill)
            continue
        if isinstance(value, dict) and not spec.accepts_table:
            raise ConfigError(f"config key {dotted!r} must be {spec.rule}, got a table")
        try:
            out[name] = spec.check(value)
        except ValueError as exc:
            raise ConfigError(
                f"config key {dotted!r} must be {exc}, got {_describe(value)}"
            ) from None
    if fill:
        for name, spec in schema.items():
            if name not in out:
                if isinstance(spec, OptionalTable):
                    continue  # an optional section ([tune]) stays absent unless written
                if isinstance(spec, dict):
                    out[name] = _validate({}, spec, f"{prefix}{name}.", fill=True)
                else:
                    out[name] = (
                        spec.default.copy() if isinstance(spec.default, list) else spec.default
                    )
    return out


def validate(config: Mapping[str, Any], *, fill: bool = True) -> dict[str, Any]:
    """Check ``config`` against the schema; with ``fill`` add every missing default."""
    if not isinstance(config, Mapping):
        raise ConfigError(f"a config is a table of sections, got {type(config).__name__}")
    resolved = _validate(config, SCHEMA, "", fill=fill)
    _check_cross_fields(resolved)
    return resolved


def _check_cross_fields(config: dict[str, Any]) -> None:
    data, model = config.get("data", {}), config.get("model", {})
    source = data.get("source")
    needs = {
        "csv": ("path",),
        "npz": ("path",),
        "npy": ("path",),
        "idx": ("images", "labels"),
        "images": ("path",),
    }
    for field in needs.get(source, ()):
        if not data.get(field):
            raise ConfigError(
                f"config key 'data.{field}' is required when data.source = {source!r}"
            )
    kp = model.get("keep_prob")
    hidden = model.get("hidden")
    if isinstance(kp, list) and hidden is not None and len(kp) != len(hidden):
        raise ConfigError(
            f"config key 'model.keep_prob' has {len(kp)} values for {len(hidden)} hidden layers "
            f"(model.hidden = {hidden})"
        )
    if model.get("batchnorm") and model.get("norm") not in (None, "none", "batchnorm"):
        raise ConfigError(
            f"config keys 'model.batchnorm' = true and 'model.norm' = {model['norm']!r} "
            "contradict each other: choose one (model.norm = 'batchnorm' replaces batchnorm)"
        )
    if model.get("ensemble", 1) > 1:
        for name, used in (
            ("model.residual", model.get("residual")),
            ("model.norm", model.get("norm") == "layernorm"),
        ):
            if used:
                raise ConfigError(
                    f"config key '{name}' = {model[name.split('.')[1]]!r} has no packed version; "
                    f"model.ensemble = {model['ensemble']} needs a plain stack (set "
                    f"model.ensemble = 1)"
                )
    _check_techniques(config.get("train", {}), model)


def _check_techniques(train: dict[str, Any], model: dict[str, Any]) -> None:
    """The training techniques' cross-key rules, checked before anything is trained."""
    if train.get("label_smoothing") and model.get("loss") == "mse":
        raise ConfigError(
            "config key 'train.label_smoothing' applies to classification, not to "
            "model.loss = 'mse'"
        )
    if train.get("snapshots", {}).get("enabled") and train.get("schedule", {}).get("kind") != (
        "sgdr"
    ):
        raise ConfigError(
            "config key 'train.snapshots.enabled' needs train.schedule.kind = 'sgdr' (snapshots "
            "are taken at the end of each warm-restart cycle)"
        )
    plateau, es = train.get("plateau", {}), train.get("early_stopping", {})
    if (
        plateau.get("enabled")
        and es.get("enabled")
        and es.get("criterion") == "patience"
        and es.get("patience", 0) <= plateau.get("patience", 0)
    ):
        raise ConfigError(
            f"config key 'train.plateau.patience' = {plateau.get('patience')} must be below "
            f"'train.early_stopping.patience' = {es.get('patience')}, or early stopping ends the "
            f"run before the learning rate is reduced"
        )


def get(config: Mapping[str, Any], dotted: str) -> Any:
    """Value at ``"section.key"`` (nested tables included)."""
    node: Any = config
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            raise ConfigError(f"config key {dotted!r} is not set")
        node = node[part]
    return node


def set_value(config: dict[str, Any], dotted: str, value: Any) -> None:
    """Set ``"section.key"`` in ``config`` (creating tables on the way); unknown keys are
    refused with the closest valid suggestion."""
    parts = dotted.split(".")
    schema: Any = SCHEMA
    node = config
    for i, part in enumerate(parts):
        prefix = ".".join(parts[:i])
        if not isinstance(schema, dict) or part not in schema:
            raise _unknown(
                dotted, schema if isinstance(schema, dict) else {}, prefix + "." if prefix else ""
            )
        schema = schema[part]
        if i < len(parts) - 1:
            node = node.setdefault(part, {})
    if isinstance(schema, dict):
        raise ConfigError(f"config key {dotted!r} is a table; set one of its keys")
    node[parts[-1]] = value


def parse_override(assignment: str) -> tuple[str, Any]:
    """``"train.lr=0.01"`` -> ``("train.lr", 0.01)``; the value is read as TOML, and as a
    plain string when it is not valid TOML (``data.source=csv``)."""
    if "=" not in assignment:
        raise ConfigError(f"--set expects key=value, got {assignment!r}")
    dotted, raw = (s.strip() for s in assignment.split("=", 1))
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return dotted, value


def read_raw(path: str | Path) -> dict[str, Any]:
    """The TOML file's tables as written (not validated, defaults not filled in)."""
    path = Path(path)
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, not a config file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text file") from None


def load(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> dict[str, Any]:
    """Read, override and validate a TOML config; returns the resolved config.

    Relative file paths in ``[data]`` are made relative to the config file's folder.
    """
    path = Path(path)
    raw = read_raw(path)
    for assignment in overrides:
        dotted, value = parse_override(assignment)
        set_value(raw, dotted, value)
    try:
        config = validate(raw)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    for field in ("path", "images", "labels", "dev_path", "test_path", "cache_dir"):
        value = config["data"][field]
        if value and not Path(value).expanduser().is_absolute():
            config["data"][field] = str((path.parent / value).resolve())
    return config


def defaults() -> dict[str, Any]:
    """The complete default config."""
    return validate({})


# -- writing TOML ---------------------------------------------------------------------------
def dumps(config: Mapping[str, Any]) -> str:
    """Write a config (nested tables of scalars and lists) as TOML text, with ``tomli_w``
    (the ``toml`` extra, included in ``cli`` and ``tune``): keys quoted where TOML needs it,
    strings escaped, every table written; ``tomllib.loads(dumps(c)) == c``."""
    try:
        import tomli_w
    except ImportError:
        raise DeepfitError(
            "writing a config as TOML (a run directory's config.toml, a study's best.toml) "
            "needs tomli_w: pip install 'deepfit[toml]'"
        ) from None
    try:
        return tomli_w.dumps(config)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"cannot write the config as TOML: {exc}") from None

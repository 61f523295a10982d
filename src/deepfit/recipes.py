"""Default recipes: the config a zero-config run starts from.

``deepfit train --data FILE --target COL`` needs no config file: it starts from
:data:`TABLE_RECIPE`, the settings measured on the shared real tables with
``bench/tabular.py`` (the evidence is in ``bench/tabular.md``), then applies ``--set``.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from deepfit import config as configuration

#: The zero-config recipe for tables, measured with ``bench/tabular.py`` on the seven shared
#: tables (5 seeds; ``bench/tabular.md``): one hidden layer of 128 ReLU units with Glorot-uniform
#: initial weights (He's larger first-layer weights cost 2-3 points of R^2 on the 300-row
#: tables), an L2 penalty ``0.1/(2m) sum ||W||^2`` (``m`` the batch size: +0.0011 on the mean of
#: the seven tables, +0.003 to +0.005 on the 300-row ones, -0.001 to -0.003 on the two largest;
#: 1.0 cost Bikeshare 0.16), Adam at 1e-3 in batches of 128, up to 500 epochs with early
#: stopping on the dev loss (patience 50), then ``train.refit``: trained again on train + dev for
#: the best number of epochs, so a small table loses no rows to the dev split. A two-class
#: target gets one sigmoid output unit (``model.binary_output``, as scikit-learn's MLPClassifier),
#: not two softmax units, whose L2 penalty on the logit difference is half the sigmoid's: test
#: log-loss lower on Default (20 seeds, 0.07907 against 0.07922) and on 3 of 4 further binary
#: tasks (10 seeds each), accuracy within a test row or two; on Default's 5 seeds 0.9734
#: against 0.9729 (the MLP 0.9732). The other six tables have no two-class target.
TABLE_RECIPE: dict[str, Any] = {
    "data": {"source": "csv", "normalize": "auto"},
    "model": {
        "hidden": [128],
        "init": "glorot_uniform",
        "keep_prob": 1.0,
        "l2": 0.1,
        "binary_output": "sigmoid",
    },
    "train": {
        "optimizer": "adam",
        "lr": 0.001,
        "batch_size": 128,
        "epochs": 500,
        "refit": True,
        "early_stopping": {"patience": 50},
    },
}


#: The search space of ``deepfit train --data FILE --target COL --budget 5m``: the
#: regularization cocktail of Kadra et al. 2021 ("Well-tuned simple nets excel on tabular
#: datasets": residual MLP, batch norm, dropout, weight decay, mixup/cutmix, SWA, lookahead,
#: searched on/off with their own hyperparameters only when on) with RealMLP's ranges
#: (Holzmueller et al. 2024: 256-wide layers, lr around 1e-3 for Adam, label smoothing,
#: layer-wise norm). Sampled by TPE; each technique's hyperparameters are conditional
#: (``... if KEY``, see :mod:`deepfit.tuning.space`). ``train.label_smoothing`` is added for
#: classification (:func:`table_space`).
TABLE_SPACE: dict[str, Any] = {
    "use": {
        "dropout": "choice([false, true])",
        "weight_decay": "choice([false, true])",
        "clip": "choice([false, true])",
    },
    "model": {
        "hidden": "choice([[128], [256], [512], [128, 128], [256, 256], [512, 512], "
        "[256, 256, 256], [512, 512, 512]])",
        "residual": "choice([false, true])",
        "norm": "choice(['none', 'batchnorm', 'layernorm'])",
        "keep_prob": "uniform(0.5, 0.95) if use.dropout",
    },
    "train": {
        "lr": "loguniform(1e-4, 1e-2)",
        "batch_size": "choice([64, 128, 256])",
        "weight_decay": "loguniform(1e-5, 1e-1) if use.weight_decay",
        "clip_norm": "loguniform(0.1, 10) if use.clip",
        "mixup": {
            "kind": "choice(['none', 'mixup', 'cutmix'])",
            "alpha": "uniform(0.1, 1) if train.mixup.kind != 'none'",
        },
        "averaging": {
            "kind": "choice(['none', 'swa', 'ema'])",
            "start": "int(0, 20) if train.averaging.kind != 'none'",
            "decay": "one_minus_loguniform(0.9, 0.999) if train.averaging.kind == 'ema'",
        },
        "lookahead": {
            "enabled": "choice([false, true])",
            "k": "int(3, 10) if train.lookahead.enabled",
            "alpha": "uniform(0.3, 0.8) if train.lookahead.enabled",
        },
    },
}

#: Added to :data:`TABLE_SPACE` for classification tables.
TABLE_SPACE_CLASSIFICATION: dict[str, Any] = {
    "use": {"label_smoothing": "choice([false, true])"},
    "train": {"label_smoothing": "uniform(0.01, 0.2) if use.label_smoothing"},
}


def table_space(task: str) -> dict[str, Any]:
    """The ``[tune.space]`` table of a budgeted table search for ``task`` (classification
    adds label smoothing)."""
    space = copy.deepcopy(TABLE_SPACE)
    if task == "classification":
        for section, values in TABLE_SPACE_CLASSIFICATION.items():
            space.setdefault(section, {}).update(values)
    return space


def table_config(
    path: str | Path,
    target: str,
    *,
    drop: list[str] | tuple[str, ...] = (),
    seed: int | None = None,
    base: dict[str, Any] | None = None,
    overrides: list[str] | tuple[str, ...] = (),
) -> dict[str, Any]:
    """The resolved config of a run on the table ``path`` predicting ``target``.

    ``base`` (a config file's raw contents) replaces the recipe when given; ``--data``,
    ``--target``, ``--drop`` and ``--seed`` then win, and ``overrides`` (``--set``) last.
    The data path is stored absolute, so the run directory's ``config.toml`` reproduces
    the run from anywhere.
    """
    raw = copy.deepcopy(base if base is not None else TABLE_RECIPE)
    data = raw.setdefault("data", {})
    p = Path(path).expanduser()
    suffix = p.suffix.lower()
    data["source"] = {".parquet": "parquet", ".pq": "parquet", ".npy": "npy"}.get(suffix, "csv")
    data["path"] = str(p.resolve())
    data["target"] = target
    if drop:
        data["drop"] = list(dict.fromkeys([*data.get("drop", []), *drop]))
    if seed is not None:
        raw.setdefault("train", {})["seed"] = seed
    for assignment in overrides:
        dotted, value = configuration.parse_override(assignment)
        configuration.set_value(raw, dotted, value)
    return configuration.validate(raw)

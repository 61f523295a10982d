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
#: tables (3 seeds; ``bench/tabular.md``): one hidden layer of 128 ReLU units with Glorot-uniform
#: initial weights (He's larger first-layer weights cost 2-3 points of R^2 on the 300-row
#: tables), Adam at 1e-3 in batches of 128, up to 500 epochs with early stopping on the dev loss
#: (patience 50), then ``train.refit``: trained again on train + dev for the best number of
#: epochs, so a small table loses no rows to the dev split.
TABLE_RECIPE: dict[str, Any] = {
    "data": {"source": "csv", "normalize": "auto"},
    "model": {"hidden": [128], "init": "glorot_uniform", "keep_prob": 1.0},
    "train": {
        "optimizer": "adam",
        "lr": 0.001,
        "batch_size": 128,
        "epochs": 500,
        "refit": True,
        "early_stopping": {"patience": 50},
    },
}


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
    data["source"] = "parquet" if p.suffix.lower() in (".parquet", ".pq") else "csv"
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

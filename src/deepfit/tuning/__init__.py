"""Hyperparameter search: random, grid, coarse-to-fine and TPE, in an Optuna study.

- :mod:`deepfit.tuning.space`: ``[tune.space]`` expressions, conditional ones included
  (``"... if KEY == value"``), sampled on their scale (pure);
- :mod:`deepfit.tuning.strategies`: random, grid, coarse-to-fine (pure);
- :mod:`deepfit.tuning.study`: the driver (Optuna storage, pruners, budget, resume, outputs);
- :mod:`deepfit.tuning.budget`: ``--budget 5m``, counted across reruns;
- :mod:`deepfit.tuning.importance`: hyperparameter importance (PED-ANOVA / fANOVA);
- :mod:`deepfit.tuning.table_search`: ``deepfit train --data FILE --target COL --budget 5m``;
- :mod:`deepfit.tuning.executors`: in-process, worker processes, Ray tasks;
- :mod:`deepfit.tuning.worker`: one trial, a plain dict in and out (calls
  :func:`deepfit.experiment.run`).

Optuna and Ray are imported only when a study runs.
"""

from deepfit.tuning.budget import parse_duration
from deepfit.tuning.space import Space, SpaceError, parse, parse_expression
from deepfit.tuning.strategies import CoarseToFine, GridSearch, RandomSearch
from deepfit.tuning.study import Settings, Tuner, preview, tune
from deepfit.tuning.table_search import search_table

__all__ = [
    "CoarseToFine",
    "GridSearch",
    "RandomSearch",
    "Settings",
    "Space",
    "SpaceError",
    "Tuner",
    "parse",
    "parse_duration",
    "parse_expression",
    "preview",
    "search_table",
    "tune",
]

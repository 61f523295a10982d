"""The lab: the course notes' claims (and the papers behind them) reproduced as experiments.

Each experiment is a module with ``NAME``, ``TITLE`` and ``run(out, quick=False)``; it writes
``NAME.png`` into ``out`` and returns a :class:`LabResult` whose table :func:`run` writes as
``NAME.md`` and ``NAME.json`` beside the figure. ``quick=True`` is the reduced version the
tests run (seconds): same claim, smaller budget.

    deepfit lab ewa --out docs/lab            # one experiment
    deepfit lab all --quick --out /tmp/lab    # every experiment, reduced
"""

from __future__ import annotations

import importlib
import time
from pathlib import Path

from deepfit.errors import DeepfitError
from deepfit.lab._common import LabResult, markdown, write

#: name -> module, in the order of the notes' sections (docs/notes.md maps each section)
EXPERIMENTS: dict[str, str] = {
    "bias_variance": "deepfit.lab.bias_variance",  # 2.1.2-3
    "sparsity": "deepfit.lab.sparsity",  # 2.1.4
    "tanh_linear": "deepfit.lab.tanh_linear",  # 2.1.5
    "regularization": "deepfit.lab.regularization",  # 2.1.4, 2.1.6
    "dropout_layers": "deepfit.lab.dropout_layers",  # 2.1.7
    "augmentation": "deepfit.lab.augmentation",  # 2.1.8
    "normalization": "deepfit.lab.normalization",  # 2.1.9
    "init": "deepfit.lab.initialization",  # 2.1.10-11
    "gradcheck": "deepfit.lab.gradcheck",  # 2.1.13-14
    "minibatch": "deepfit.lab.minibatch",  # 2.2.1-2
    "ewa": "deepfit.lab.ewa",  # 2.2.3-5
    "optimizers": "deepfit.lab.optimizers",  # 2.2.6-9
    "saddles": "deepfit.lab.saddles",  # 2.2.10
    "search": "deepfit.lab.search",  # 2.3.1-2
    "batchnorm": "deepfit.lab.batchnorm",  # 2.3.4-5
    "bn_learning_rates": "deepfit.lab.bn_learning_rates",  # 2.3.4
    "cocktail": "deepfit.lab.cocktail",  # issue 11: Kadra et al. 2021 on the shared tables
}

DEFAULT_OUT = Path("docs/lab")


def available() -> list[str]:
    """Names of the experiments whose module exists in this build."""
    names = []
    for name, module in EXPERIMENTS.items():
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise
            continue
        names.append(name)
    return names


def get(name: str):
    """The module of experiment ``name``."""
    if name not in EXPERIMENTS:
        raise DeepfitError(
            f"unknown lab experiment {name!r}; choose one of {', '.join(EXPERIMENTS)}"
        )
    try:
        return importlib.import_module(EXPERIMENTS[name])
    except ModuleNotFoundError as exc:
        if exc.name != EXPERIMENTS[name]:
            raise
        raise DeepfitError(f"lab experiment {name!r} is not implemented yet") from None


def run(name: str, out: str | Path = DEFAULT_OUT, quick: bool = False) -> LabResult:
    """Run experiment ``name``; writes ``NAME.png``, ``NAME.md`` and ``NAME.json`` in ``out``."""
    module = get(name)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    result: LabResult = module.run(out, quick=quick)
    result.seconds = time.perf_counter() - start
    result.quick = quick
    write(result, out)
    return result


__all__ = ["EXPERIMENTS", "LabResult", "available", "get", "markdown", "run"]

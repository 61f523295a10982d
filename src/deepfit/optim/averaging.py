"""Averages of the weights along training: SWA (the equal mean from a start point) and an
EMA, both the EWA update of :mod:`deepfit.optim.ewa`; and ``update_bn`` to recompute batch
norm's running statistics for averaged weights."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from deepfit.backend import array_module, to_numpy
from deepfit.errors import DeepfitError
from deepfit.optim.ewa import ewa_update_


class WeightAverage:
    """A running average of a set of named arrays (a model's parameters).

    ``update(params)`` folds in the current values; ``average`` holds the result (float64
    copies on the parameters' device, independent of the model); ``n`` counts the updates.
    Subclasses choose the EWA factor ``beta_n`` of update ``n`` (1-based)::

        avg_1 = params_1                       (the first update copies, as PyTorch)
        avg_n = beta_n avg_{n-1} + (1 - beta_n) params_n
    """

    kind = ""

    def __init__(self) -> None:
        self.average: dict[str, np.ndarray] = {}
        self.n = 0

    def beta(self, n: int) -> float:
        raise NotImplementedError

    def update(self, params: Mapping[str, Any]) -> None:
        """Fold the current ``params`` into the average (kept in float64 on the parameters'
        device: NumPy or CuPy)."""
        self.n += 1
        if self.n == 1 or self.average.keys() != params.keys():
            self.average = {
                k: array_module(v).array(v, dtype=np.float64) for k, v in params.items()
            }
            self.n = 1
            return
        beta = self.beta(self.n)
        for name, value in params.items():
            avg = self.average[name]
            if type(avg) is not type(value):  # restored from a checkpoint onto another device
                xp = array_module(value)
                avg = xp.asarray(to_numpy(avg) if xp is np else avg)
                self.average[name] = avg
            ewa_update_(avg, value, beta)

    def copy_to(self, params: Mapping[str, Any]) -> None:
        """Write the average into ``params`` in place (in each array's dtype and device)."""
        if not self.average:
            raise DeepfitError(f"{self!r} has averaged nothing yet")
        for name, p in params.items():
            p[...] = array_module(p).asarray(self.average[name])

    def state_dict(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        return {"n": self.n}, {k: to_numpy(v).copy() for k, v in self.average.items()}

    def is_finite(self) -> bool:
        """Whether every averaged entry is finite."""
        return all(bool(array_module(v).isfinite(v).all()) for v in self.average.values())

    def load_state_dict(self, data: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> None:
        self.n = int(data["n"])
        self.average = {k: np.array(v, dtype=np.float64) for k, v in arrays.items()}

    def reset(self) -> None:
        self.average, self.n = {}, 0


class SWA(WeightAverage):
    """Stochastic weight averaging: the equal mean of the weights it is given::

        avg_n = avg_{n-1} + (params_n - avg_{n-1}) / n       (EWA with beta_n = (n - 1) / n)

    as ``torch.optim.swa_utils.AveragedModel`` with its default averaging function. Which
    weights are averaged (e.g. the end of every epoch from ``start`` on) is the caller's
    choice: see :class:`deepfit.training.callbacks.WeightAveraging`.

    References
    ----------
    Izmailov, Podoprikhin, Garipov, Vetrov and Wilson, "Averaging weights leads to wider
    optima and better generalization", UAI 2018.
    """

    kind = "swa"

    def beta(self, n: int) -> float:
        return (n - 1) / n

    def __repr__(self) -> str:
        return f"SWA(n={self.n})"


class EMA(WeightAverage):
    """Exponential moving average of the weights with decay ``beta``::

        avg_1 = params_1,    avg_n = beta avg_{n-1} + (1 - beta) params_n

    as ``AveragedModel(multi_avg_fn=get_ema_multi_avg_fn(beta))`` (which starts from a copy,
    so no bias correction is needed). The average spans roughly the last ``1 / (1 - beta)``
    updates.
    """

    kind = "ema"

    def __init__(self, decay: float = 0.999) -> None:
        super().__init__()
        if isinstance(decay, bool) or not isinstance(decay, (int, float)) or not 0 <= decay < 1:
            raise DeepfitError(f"EMA decay must be in [0, 1), got {decay!r}")
        self.decay = float(decay)

    def beta(self, n: int) -> float:
        return self.decay

    def __repr__(self) -> str:
        return f"EMA(decay={self.decay}, n={self.n})"


def update_bn(model: Any, batches: Iterable[Any]) -> int:
    """Recompute every batch-norm layer's running statistics with one pass over ``batches``
    (arrays of inputs), as ``torch.optim.swa_utils.update_bn``: the statistics restart at
    mean 0, variance 1, and each batch ``n`` (1-based) enters with weight ``1/n``::

        running_n = (1 - 1/n) running_{n-1} + (1/n) batch_stat_n

    (the cumulative mean of the batch statistics; the EWA with ``beta_n = (n - 1)/n``). The
    forward passes run in training mode, as PyTorch's; the dropout layers' random streams are
    put back afterwards, so the pass draws nothing from training's streams. Returns the number
    of batches seen; a model without batch norm is left alone (0).
    """
    from deepfit.nn.batchnorm import BatchNorm

    norms = [layer for layer in model.layers if isinstance(layer, BatchNorm)]
    if not norms:
        return 0
    momenta = [bn.momentum for bn in norms]
    rngs = [
        (layer, layer.rng.bit_generator.state)
        for layer in model.layers
        if isinstance(getattr(layer, "rng", None), np.random.Generator)
    ]
    for bn in norms:
        bn.buffers["running_mean"][...] = 0
        bn.buffers["running_var"][...] = 1
    n = 0
    try:
        for xb in batches:
            if xb.shape[0] < 2:
                continue
            n += 1
            for bn in norms:
                bn.momentum = (n - 1) / n
            model.forward(xb, training=True)
    finally:
        for bn, momentum in zip(norms, momenta, strict=True):
            bn.momentum = momentum
            bn._clear_cache()
        for layer, state in rngs:
            layer.rng.bit_generator.state = state
    return n

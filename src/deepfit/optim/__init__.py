"""How parameters move: EWA, gradient transforms, optimizers, schedules."""

from deepfit.optim import schedules
from deepfit.optim.ewa import EWA, bias_correction, ewa_update_
from deepfit.optim.optimizers import SGD, Adam, Momentum, Optimizer, RMSprop
from deepfit.optim.transforms import ScaleByAdam, ScaleByMomentum, ScaleByRMS, Transform

__all__ = [
    "EWA",
    "SGD",
    "Adam",
    "Momentum",
    "Optimizer",
    "RMSprop",
    "ScaleByAdam",
    "ScaleByMomentum",
    "ScaleByRMS",
    "Transform",
    "bias_correction",
    "ewa_update_",
    "schedules",
]

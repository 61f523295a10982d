"""How parameters move: EWA, gradient transforms, optimizers, schedules."""

from deepfit.optim import schedules
from deepfit.optim.averaging import EMA, SWA, WeightAverage, update_bn
from deepfit.optim.clipping import clip_grad_norm_, global_norm
from deepfit.optim.ewa import EWA, bias_correction, ewa_update_
from deepfit.optim.lookahead import Lookahead
from deepfit.optim.optimizers import SGD, Adam, Momentum, Optimizer, RMSprop
from deepfit.optim.transforms import ScaleByAdam, ScaleByMomentum, ScaleByRMS, Transform

__all__ = [
    "EMA",
    "EWA",
    "SGD",
    "SWA",
    "Adam",
    "Lookahead",
    "Momentum",
    "Optimizer",
    "RMSprop",
    "ScaleByAdam",
    "ScaleByMomentum",
    "ScaleByRMS",
    "Transform",
    "WeightAverage",
    "bias_correction",
    "clip_grad_norm_",
    "ewa_update_",
    "global_norm",
    "schedules",
    "update_bn",
]

"""deepfit: fully connected neural networks trained well, on NumPy.

The public API, re-exported from the subpackages; nothing is defined here.
"""

from deepfit import io
from deepfit.bundle import ModelBundle
from deepfit.checks import GradCheckResult, gradcheck
from deepfit.data.mixup import Mixup
from deepfit.errors import DataError, DeepfitError, GradientCheckError, ShapeError
from deepfit.nn import (
    L1,
    L2,
    BatchNorm,
    Dense,
    Dropout,
    EmbedColumns,
    Embedding,
    Layer,
    LayerNorm,
    LeakyReLU,
    MeanSquaredError,
    ReLU,
    Residual,
    Sequential,
    Sigmoid,
    SigmoidBinaryCrossEntropy,
    SoftmaxCrossEntropy,
    Tanh,
    init,
    mlp,
)
from deepfit.optim import EMA, EWA, SGD, SWA, Adam, Lookahead, Momentum, RMSprop, schedules
from deepfit.training import (
    Callback,
    Checkpoint,
    EarlyStopping,
    History,
    MetricsLog,
    Progress,
    ReduceLROnPlateau,
    SnapshotEnsemble,
    Trainer,
    TrainingDiverged,
    WeightAveraging,
)

__version__ = "0.1.0"

__all__ = [
    "EMA",
    "EWA",
    "L1",
    "L2",
    "SGD",
    "SWA",
    "Adam",
    "BatchNorm",
    "Callback",
    "Checkpoint",
    "DataError",
    "DeepfitError",
    "Dense",
    "Dropout",
    "EarlyStopping",
    "EmbedColumns",
    "Embedding",
    "GradCheckResult",
    "GradientCheckError",
    "History",
    "Layer",
    "LayerNorm",
    "LeakyReLU",
    "Lookahead",
    "MeanSquaredError",
    "MetricsLog",
    "Mixup",
    "ModelBundle",
    "Momentum",
    "Progress",
    "RMSprop",
    "ReLU",
    "ReduceLROnPlateau",
    "Residual",
    "Sequential",
    "ShapeError",
    "Sigmoid",
    "SigmoidBinaryCrossEntropy",
    "SnapshotEnsemble",
    "SoftmaxCrossEntropy",
    "Tanh",
    "Trainer",
    "TrainingDiverged",
    "WeightAveraging",
    "__version__",
    "gradcheck",
    "init",
    "io",
    "mlp",
    "schedules",
]

"""deepfit: fully connected neural networks trained well, on NumPy.

The public API, re-exported from the subpackages; nothing is defined here.
"""

from deepfit import io
from deepfit.bundle import ModelBundle
from deepfit.checks import GradCheckResult, gradcheck
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
from deepfit.optim import EWA, SGD, Adam, Momentum, RMSprop, schedules
from deepfit.training import (
    Callback,
    Checkpoint,
    EarlyStopping,
    History,
    MetricsLog,
    Progress,
    Trainer,
)

__version__ = "0.1.0"

__all__ = [
    "EWA",
    "L1",
    "L2",
    "SGD",
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
    "MeanSquaredError",
    "MetricsLog",
    "ModelBundle",
    "Momentum",
    "Progress",
    "RMSprop",
    "ReLU",
    "Residual",
    "Sequential",
    "ShapeError",
    "Sigmoid",
    "SigmoidBinaryCrossEntropy",
    "SoftmaxCrossEntropy",
    "Tanh",
    "Trainer",
    "__version__",
    "gradcheck",
    "init",
    "io",
    "mlp",
    "schedules",
]

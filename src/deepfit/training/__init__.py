"""The training loop and its callbacks."""

from deepfit.training.callbacks import Callback, Checkpoint, EarlyStopping, MetricsLog, Progress
from deepfit.training.history import History
from deepfit.training.trainer import Trainer

__all__ = [
    "Callback",
    "Checkpoint",
    "EarlyStopping",
    "History",
    "MetricsLog",
    "Progress",
    "Trainer",
]

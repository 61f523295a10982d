"""The training loop and its callbacks."""

from deepfit.training.callbacks import (
    Callback,
    Checkpoint,
    EarlyStopping,
    MetricsLog,
    Progress,
    ReduceLROnPlateau,
    SnapshotEnsemble,
    WeightAveraging,
)
from deepfit.training.history import History
from deepfit.training.trainer import Trainer, TrainingDiverged

__all__ = [
    "Callback",
    "Checkpoint",
    "EarlyStopping",
    "History",
    "MetricsLog",
    "Progress",
    "ReduceLROnPlateau",
    "SnapshotEnsemble",
    "Trainer",
    "TrainingDiverged",
    "WeightAveraging",
]

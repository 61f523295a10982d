"""The data pipeline: loaders, validation, splitting, standardization, augmentation, batches.

Loaders return a :class:`Dataset` (float32 ``X`` of shape ``(n, features)``, ``y``, and
metadata). Every bad input is refused with a one-line :class:`~deepfit.errors.DataError`
naming the file, row and column. Everything random takes ``rng=`` (a Generator or a seed).
"""

from __future__ import annotations

from deepfit.data.augment import Augment, Compose, HorizontalFlip, RandomCrop, RandomShift
from deepfit.data.batches import iterate_minibatches, minibatches
from deepfit.data.bundled import breast_cancer, digits, iris, wine
from deepfit.data.dataset import Dataset, encode_labels
from deepfit.data.download import default_cache_dir, fashion_mnist, fetch, mnist
from deepfit.data.idxfile import idx
from deepfit.data.images import images
from deepfit.data.scaling import Standardizer
from deepfit.data.split import Split, auto_split_sizes, train_dev_test_split
from deepfit.data.synthetic import circles, moons
from deepfit.data.tabular import csv, npz

__all__ = [
    "Augment",
    "Compose",
    "Dataset",
    "HorizontalFlip",
    "RandomCrop",
    "RandomShift",
    "Split",
    "Standardizer",
    "auto_split_sizes",
    "breast_cancer",
    "circles",
    "csv",
    "default_cache_dir",
    "digits",
    "encode_labels",
    "fashion_mnist",
    "fetch",
    "idx",
    "images",
    "iris",
    "iterate_minibatches",
    "minibatches",
    "mnist",
    "moons",
    "npz",
    "train_dev_test_split",
    "wine",
]

"""Exceptions raised for users: each carries one clear line naming the culprit."""

from __future__ import annotations


class DeepfitError(ValueError):
    """Base class of every error deepfit raises about its inputs.

    The message is one line that names what is wrong (file, row, column, config key,
    array shape) and, where possible, what to do instead. The command line prints it
    without a traceback.
    """


class ShapeError(DeepfitError):
    """An array has the wrong number of dimensions or the wrong size along one of them."""


class GradientCheckError(DeepfitError):
    """A gradient check was asked for under conditions that make it meaningless."""


class DataError(DeepfitError):
    """A data file or array cannot be used: the message names file, row and column."""

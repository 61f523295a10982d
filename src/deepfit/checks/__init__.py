"""Checks on models: gradient checking."""

from deepfit.checks.gradcheck import GradCheckResult, gradcheck, relative_error

__all__ = ["GradCheckResult", "gradcheck", "relative_error"]

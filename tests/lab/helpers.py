"""Shared by the lab tests."""

import pytest

from deepfit.lab._common import mnist_available

needs_mnist = pytest.mark.skipif(not mnist_available(), reason="MNIST subset not found")


def assert_written(name, out):
    """The experiment wrote its figure (small enough to commit), table and JSON."""
    for ext in ("png", "md", "json"):
        path = out / f"{name}.{ext}"
        assert path.exists() and path.stat().st_size > 0, path
    assert (out / f"{name}.png").stat().st_size < 150_000

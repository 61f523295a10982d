"""deepfit: fully connected neural networks trained well, on NumPy."""

__version__ = "0.1.0"

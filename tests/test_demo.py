"""The README's first command: the digits demo trains to a real accuracy."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

pytest.importorskip("sklearn")

DEMO = Path(__file__).resolve().parents[1] / "examples" / "demo.py"


def test_demo_reaches_high_accuracy_on_digits_and_is_deterministic():
    spec = importlib.util.spec_from_file_location("deepfit_demo", DEMO)
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    first = demo.main(epochs=15, seed=0, verbose=False)
    assert first["test_accuracy"] >= 0.95
    assert first["train_accuracy"] >= first["test_accuracy"] - 0.05
    second = demo.main(epochs=15, seed=0, verbose=False)
    assert {k: v for k, v in first.items() if k != "seconds"} == {
        k: v for k, v in second.items() if k != "seconds"
    }

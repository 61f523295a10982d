"""matplotlib is optional (the ``plot`` extra): a run without it writes everything but plots."""

from __future__ import annotations

import json
import sys

import pytest

from deepfit import config as C
from deepfit import experiment as E
from deepfit import plots
from deepfit.errors import DeepfitError

RUN_FILES = {"config.toml", "metrics.csv", "checkpoint.npz", "model.npz", "summary.json"}


def _config():
    return C.validate({"model": {"hidden": [8]}, "train": {"epochs": 3, "lr": 0.01}})


@pytest.fixture
def no_matplotlib(monkeypatch):
    """``import matplotlib`` raises ImportError, as in an environment without the extra."""
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)


def test_a_run_without_matplotlib_writes_everything_but_the_plots(tmp_path, no_matplotlib):
    assert not plots.available()
    with pytest.raises(DeepfitError, match=r"plots need matplotlib: pip install 'deepfit\[plot\]'"):
        plots.pyplot()
    summary = E.run(_config(), tmp_path / "run", progress=False)
    written = {p.name for p in (tmp_path / "run").iterdir() if not p.name.startswith(".")}
    assert RUN_FILES <= written
    assert not any(name.endswith(".png") for name in written)
    saved = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["plots"] == saved["plots"] == []
    assert saved["epochs_run"] == 3 and saved["test"]["accuracy"] > 0.5


def test_with_matplotlib_the_same_run_draws_its_plots(tmp_path):
    pytest.importorskip("matplotlib")
    assert plots.available()
    summary = E.run(_config(), tmp_path / "run", progress=False)
    assert summary["plots"] == ["learning_curves.png", "learning_rate.png"]
    assert all((tmp_path / "run" / name).stat().st_size > 0 for name in summary["plots"])

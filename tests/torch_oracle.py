"""Bookkeeping shared by the differential tests against PyTorch: compare, record the largest
relative error, and print it at the end of the module even under ``pytest -q``."""

from __future__ import annotations

from typing import Any

import numpy as np


def as_numpy(a: Any) -> np.ndarray:
    """A NumPy view of a torch tensor (detached) or of anything array-like."""
    if hasattr(a, "detach"):
        return a.detach().cpu().numpy()
    return np.asarray(a)


def relative_error(ours: Any, theirs: Any) -> float:
    """``max|ours - theirs| / max|theirs|`` (the absolute error when ``theirs`` is all 0)."""
    ours, theirs = as_numpy(ours).astype(np.float64), as_numpy(theirs).astype(np.float64)
    diff = float(np.max(np.abs(ours - theirs))) if ours.size else 0.0
    scale = float(np.max(np.abs(theirs))) if theirs.size else 0.0
    return diff / scale if scale > 0 else diff


class Oracle:
    """Compares deepfit's values with PyTorch's and keeps the worst relative error."""

    def __init__(self, name: str, rtol: float, atol: float, *, float64: bool = False) -> None:
        self.name, self.rtol, self.atol, self.float64 = name, rtol, atol, float64
        self.worst, self.worst_what = 0.0, "nothing compared yet"

    def assert_matches(
        self,
        what: str,
        ours: Any,
        theirs: Any,
        rtol: float | None = None,
        atol: float | None = None,
    ) -> None:
        """Assert ``ours`` equals the reference ``theirs`` and record the relative error."""
        ours_np, theirs_np = as_numpy(ours), as_numpy(theirs)
        assert ours_np.shape == theirs_np.shape, (
            f"{what}: shape {ours_np.shape} != {theirs_np.shape}"
        )
        if self.float64:
            assert ours_np.dtype == np.float64, f"{what}: deepfit computed in {ours_np.dtype}"
        rel = relative_error(ours_np, theirs_np)
        if rel > self.worst:
            self.worst, self.worst_what = rel, what
        np.testing.assert_allclose(
            ours_np,
            theirs_np,
            rtol=self.rtol if rtol is None else rtol,
            atol=self.atol if atol is None else atol,
            err_msg=what,
        )

    def report(self, config: Any) -> None:
        """Print the module's largest relative error on the terminal, past pytest's capture."""
        line = (
            f"[deepfit vs torch, {self.name}] largest relative error {self.worst:.3e} "
            f"on {self.worst_what}"
        )
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        capman = config.pluginmanager.get_plugin("capturemanager")
        if reporter is None or capman is None:  # e.g. under xdist workers
            print(line)
            return
        with capman.global_and_fixture_disabled():
            reporter.write("\n")
            reporter.write_line(line)

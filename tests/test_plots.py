"""Plots are written headless, as PNG files."""

from __future__ import annotations

import pytest

pytest.importorskip("matplotlib")

from deepfit import plots
from deepfit.training.history import History

PNG = b"\x89PNG"


def test_every_plot_writes_a_png(tmp_path):
    history = History(
        [
            {
                "epoch": e,
                "lr": 0.1 / e,
                "train_loss": 1 / e,
                "train_accuracy": 1 - 0.5 / e,
                "dev_loss": 1.2 / e,
                "dev_accuracy": 1 - 0.6 / e,
            }
            for e in range(1, 30)
        ],
        best_epoch=20,
    )
    paths = [
        plots.learning_curves(history, tmp_path / "lc.png"),
        plots.learning_rate(history, tmp_path / "lr.png"),
        plots.data_learning_curve(
            {
                "sizes": [10, 100],
                "train_errors": [0.0, 0.01],
                "dev_errors": [0.3, 0.1],
                "bayes_error": 0.01,
            },
            tmp_path / "curve.png",
        ),
        plots.layer_statistics(
            {"he": [{"activation_std": 1.0}, {"activation_std": 0.9}]}, tmp_path / "layers.png"
        ),
    ]
    for path in paths:
        assert path.read_bytes()[:4] == PNG
    assert plots.learning_curves(History(), tmp_path / "empty.png") is None


def test_smoothing_is_bias_corrected():
    assert plots.smooth([2.0, 2.0, 2.0], beta=0.9) == pytest.approx([2.0, 2.0, 2.0])

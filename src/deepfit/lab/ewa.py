"""Exponentially weighted averages of a noisy daily series (course 2, week 2, 2.2.3-2.2.5).

The notes average a year of daily London temperatures with ``v_t = beta v_{t-1} +
(1 - beta) theta_t``: beta = 0.9 averages about ``1/(1 - beta) = 10`` days (red curve), 0.98
about 50 days (green: smoother but shifted right, it adapts late), 0.5 about 2 days (yellow:
noisy). Started at ``v_0 = 0`` the average is biased low during the first days (purple curve);
dividing by ``1 - beta^t`` removes that bias and changes nothing once ``beta^t`` is small.

We use a synthetic year (seasonal cosine plus Gaussian day-to-day noise, fixed seed) instead of
the London series, so the underlying truth is known and the bias and lag can be measured.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from deepfit.lab._common import LabResult, pyplot, row, save_figure
from deepfit.optim.ewa import EWA

NAME = "ewa"
TITLE = "Exponentially weighted averages: window, lag and bias correction"
BETAS = (0.5, 0.9, 0.98)
COLORS = {0.5: "#d4a000", 0.9: "#d62728", 0.98: "#2ca02c"}


def temperatures(days: int = 365, noise: float = 3.0, seed: int = 0):
    """A year of daily temperatures (deg C): ``11 - 7 cos(2 pi (t - 15) / 365)`` plus noise.

    Returns ``(t, observed, truth)``.
    """
    t = np.arange(1, days + 1)
    truth = 11.0 - 7.0 * np.cos(2 * np.pi * (t - 15) / 365.0)
    observed = truth + np.random.default_rng(seed).normal(0.0, noise, days)
    return t, observed, truth


def average(series: np.ndarray, beta: float, bias_correction: bool) -> np.ndarray:
    """The running EWA of ``series`` (one value per day), via :class:`deepfit.EWA`."""
    avg = EWA(beta, bias_correction=bias_correction)
    return np.array([avg.update(float(x)) for x in series])


def lag(avg: np.ndarray, truth: np.ndarray, start: int, max_shift: int = 80) -> int:
    """The delay (days) that best aligns ``avg`` with ``truth`` after day ``start``."""
    errors = [
        np.mean((avg[start:] - truth[start - s : len(truth) - s]) ** 2) for s in range(max_shift)
    ]
    return int(np.argmin(errors))


def run(out: Path, quick: bool = False) -> LabResult:
    t, observed, truth = temperatures()
    early = 10  # the "start-up" window: days 1..10
    curves: dict[str, list[float]] = {}
    rows = []
    checks: dict[str, bool] = {}
    raw_roughness = float(np.sqrt(np.mean(np.diff(observed) ** 2)))
    roughness = {}
    for beta in BETAS:
        corrected = average(observed, beta, True)
        biased = average(observed, beta, False)
        curves[f"beta={beta}"] = corrected
        curves[f"beta={beta}, no correction"] = biased
        window = 1.0 / (1.0 - beta)
        weight = beta ** round(window)
        roughness[beta] = float(np.sqrt(np.mean(np.diff(corrected[100:]) ** 2)))
        shift = lag(corrected, truth, start=100)
        err_biased = float(np.mean(np.abs(biased[:early] - truth[:early])))
        err_corrected = float(np.mean(np.abs(corrected[:early] - truth[:early])))
        tail_gap = float(abs(corrected[-1] - biased[-1]))
        rows += [
            row(f"beta={beta}: days averaged, 1/(1-beta)", window, round(window), ""),
            row(
                f"beta={beta}: weight left after 1/(1-beta) days, beta^(1/(1-beta))",
                weight,
                {0.9: "0.9^10 ≈ 0.35 ≈ 1/e", 0.98: "0.98^50 ≈ 1/e ≈ 0.37"}.get(beta),
                "the 1/e rule is a large-beta approximation"
                if beta == 0.5
                else "exact power; the notes round it",
            ),
            row(
                f"beta={beta}: day-to-day change of the average (RMS, deg C)",
                roughness[beta],
                None,
                f"raw series: {raw_roughness:.2f}; larger beta is flatter (notes: green flatter "
                "than red, yellow noisy)",
            ),
            row(
                f"beta={beta}: lag behind the true seasonal curve (days)",
                shift,
                "larger beta shifts right",
                f"theory for a linear trend: beta/(1-beta) = {beta / (1 - beta):.0f}; "
                "the seasonal curve bends, so the measured lag is shorter",
            ),
            row(
                f"beta={beta}: mean |error| over days 1-{early}, without / with bias correction",
                f"{err_biased:.2f} / {err_corrected:.2f}",
                "biased low at the start / unbiased",
                "the truth starts near 4 deg C; v_1 = (1-beta) theta_1 without correction",
            ),
            row(
                f"beta={beta}: |corrected - uncorrected| on day 365",
                tail_gap,
                "≈ 0 (beta^t -> 0)",
                "",
            ),
        ]
        checks[f"beta={beta}: bias correction lowers the start-up error"] = (
            err_corrected < err_biased
        )
        checks[f"beta={beta}: correction vanishes by day 365"] = tail_gap < 1e-2
    checks["larger beta gives a flatter curve"] = (
        roughness[0.98] < roughness[0.9] < roughness[0.5] < raw_roughness
    )
    checks["beta=0.98 start-up bias removed (corrected error < 1/5 of uncorrected)"] = float(
        np.mean(np.abs(curves["beta=0.98"][:early] - truth[:early]))
    ) < 0.2 * float(np.mean(np.abs(curves["beta=0.98, no correction"][:early] - truth[:early])))

    plt = pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.8), gridspec_kw={"width_ratios": [2, 1]})
    left.scatter(t, observed, s=4, color="#1f77b4", alpha=0.5, label="daily temperature")
    for beta in BETAS:
        left.plot(
            t,
            curves[f"beta={beta}"],
            color=COLORS[beta],
            lw=1.6,
            label=f"beta = {beta} (~{1 / (1 - beta):.0f} days)",
        )
    left.plot(t, truth, color="k", lw=0.8, ls=":", label="true seasonal curve")
    left.set_xlabel("day t")
    left.set_ylabel("temperature (deg C)")
    left.set_title("EWA with bias correction")
    left.legend(fontsize=7, loc="upper left")
    days = 60
    right.scatter(t[:days], observed[:days], s=6, color="#1f77b4", alpha=0.5, label="data")
    right.plot(
        t[:days],
        curves["beta=0.98"][:days],
        color=COLORS[0.98],
        lw=1.6,
        label="beta = 0.98, corrected",
    )
    right.plot(
        t[:days],
        curves["beta=0.98, no correction"][:days],
        color="#9467bd",
        lw=1.6,
        label="beta = 0.98, v_0 = 0, no correction",
    )
    right.plot(t[:days], truth[:days], color="k", lw=0.8, ls=":", label="truth")
    right.set_xlabel("day t")
    right.set_ylabel("temperature (deg C)")
    right.set_title("start-up bias: v_t / (1 - beta^t)")
    right.legend(fontsize=7, loc="lower right")
    save_figure(fig, out / f"{NAME}.png")

    return LabResult(
        name=NAME,
        title=TITLE,
        claim=(
            "v_t = beta v_(t-1) + (1-beta) theta_t averages about 1/(1-beta) observations: "
            "larger beta is smoother but lags; started at 0 it is biased low at first, and "
            "v_t / (1 - beta^t) removes that bias without changing the late values."
        ),
        source="Course 2, week 2, sections 2.2.3-2.2.5 (the London temperature figures).",
        setup=(
            "365 synthetic daily temperatures, 11 - 7 cos(2 pi (t-15)/365) + N(0, 3^2), seed 0, "
            "averaged with deepfit.EWA for beta 0.5, 0.9, 0.98, with and without correction. "
            "The notes' figures are of real London data and give no table, so the published "
            "column holds the notes' statements."
        ),
        rows=rows,
        checks=checks,
        data={
            "day": t.tolist(),
            "observed": np.round(observed, 3).tolist(),
            "truth": np.round(truth, 3).tolist(),
            **{k: np.round(v, 3).tolist() for k, v in curves.items()},
        },
        figure=f"{NAME}.png",
    )

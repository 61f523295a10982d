import json

import numpy as np

from deepfit.lab import ewa
from tests.lab.helpers import assert_written


def test_bias_correction_removes_startup_bias(quick):
    result, out = quick("ewa")
    assert_written("ewa", out)
    assert all(result.checks.values()), result.checks
    data = result.data
    truth = np.array(data["truth"])
    corrected = np.array(data["beta=0.98"])
    biased = np.array(data["beta=0.98, no correction"])
    # day 1: v_1 = (1 - beta) theta_1 without correction, theta_1 with it
    assert biased[0] == np.float64(0.02 * data["observed"][0]).round(3)
    assert abs(corrected[0] - data["observed"][0]) < 1e-3
    assert np.mean(np.abs(corrected[:10] - truth[:10])) < np.mean(np.abs(biased[:10] - truth[:10]))
    saved = json.loads((out / "ewa.json").read_text())
    assert saved["checks"] == result.checks


def test_larger_beta_lags_more():
    _, observed, truth = ewa.temperatures()
    lags = [ewa.lag(ewa.average(observed, b, True), truth, start=100) for b in ewa.BETAS]
    assert lags == sorted(lags) and lags[-1] > 20

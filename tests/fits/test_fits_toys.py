"""Statistical behaviour with pseudo-experiments (slow): Z calibration, bias, coverage."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from fits.toys import fit_toys, generate_toys, toy_limits
from signal_models import SignalShape

pytestmark = pytest.mark.slow

SHAPE = SignalShape(mu=3.0, sigma=0.03, alpha_l=1.2, n_l=3.0, alpha_r=1.6, n_r=5.0, comb_fraction=0.15, comb_slope=-0.2)
WINDOW = SHAPE.window()
W = WINDOW[1] - WINDOW[0]
#: falling cubic background, ~2000 events in the window
BETA = np.array([2000.0, -450.0, 60.0, -10.0]) / W


def _report(name: str, values: dict) -> None:
    path = os.environ.get("BUMPHUNT_TOY_REPORT")
    if path:
        with open(path, "a") as f:
            f.write(json.dumps({name: values}) + "\n")


def test_local_z_is_standard_normal_under_background_only() -> None:
    toys = generate_toys(SHAPE, WINDOW, nsig=0.0, beta=BETA, n_toys=4000, seed=11)
    tf = fit_toys(toys, SHAPE, WINDOW)
    assert tf.converged.mean() > 0.999
    z = tf.z_local[tf.converged]
    _report("z_local_bkg_only", {"n": int(z.size), "mean": float(z.mean()), "std": float(z.std())})
    assert abs(z.mean()) < 0.05
    assert abs(z.std() - 1.0) < 0.05


@pytest.mark.parametrize("nsig", [60.0, 150.0])
def test_injected_signal_recovered_without_bias(nsig: float) -> None:
    toys = generate_toys(SHAPE, WINDOW, nsig=nsig, beta=BETA, n_toys=4000, seed=12 + int(nsig))
    tf = fit_toys(toys, SHAPE, WINDOW)
    ok = tf.converged
    pull = (tf.nsig[ok] - nsig) / tf.nsig_err[ok]
    bias = float(np.mean(tf.nsig[ok] - nsig) / np.mean(tf.nsig_err[ok]))
    _report(f"injected_{nsig:g}", {"n": int(ok.sum()), "bias_over_error": bias, "pull_mean": float(pull.mean()), "pull_std": float(pull.std())})
    assert abs(bias) < 0.1
    assert abs(pull.std() - 1.0) < 0.05


@pytest.mark.parametrize("nsig", [0.0, 80.0])
def test_cls_limits_cover(nsig: float) -> None:
    toys = generate_toys(SHAPE, WINDOW, nsig=nsig, beta=BETA, n_toys=2000, seed=21 + int(nsig))
    res = toy_limits(toys, SHAPE, WINDOW, expected=True)
    ok = res["converged"]
    assert ok.mean() > 0.995
    true = max(nsig, 1e-9)
    coverage = float(np.mean(res["observed"][ok] >= true))
    _report(f"coverage_nsig_{nsig:g}", {"n": int(ok.sum()), "coverage": coverage, "median_limit": float(np.median(res["observed"][ok])),
                                        "median_expected": float(np.median(res["expected"][ok, 2]))})
    assert coverage >= 0.95
    if nsig == 0.0:
        # background-only: the median observed limit matches the Asimov median expected limit
        assert np.median(res["observed"][ok]) == pytest.approx(np.median(res["expected"][ok, 2]), rel=0.08)
        # and ~68% / 95% of the observed limits fall inside the expected bands
        e = res["expected"][ok]
        o = res["observed"][ok]
        in1 = np.mean((o >= e[:, 1]) & (o <= e[:, 3]))
        _report("band_fraction_1sigma", {"fraction": float(in1)})
        assert 0.6 < in1 < 0.76

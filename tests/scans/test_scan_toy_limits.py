"""Toy CLs limits in the scan: recorded per point with their Monte Carlo errors, deterministic, auto, bad config."""

from __future__ import annotations

import numpy as np
import pytest

import scans
from scans import ScanConfigError
from scans.testing import analytic_signal_model, toy_spectrum

MODEL = analytic_signal_model()
CFG = {"mass": {"min": 1.5, "max": 2.5, "step": 0.25}, "vetoes": {"particles": []}, "lee": {"toys": 0}, "execution": {"workers": 1},
       "block_size": 2}


def _x() -> np.ndarray:
    return toy_spectrum(3000, lo=0.1, hi=3.0, slope=1.5, seed=2)


def test_toy_limits_agree_with_asymptotic_ones_within_their_errors_and_do_not_depend_on_workers() -> None:
    asym = scans.scan(_x(), MODEL, config=CFG)
    toys = scans.scan(_x(), MODEL, config={**CFG, "limits": {"method": "toys", "toys": 300, "seed": 4}})
    pool = scans.scan(_x(), MODEL, config={**CFG, "limits": {"method": "toys", "toys": 300, "seed": 4}}, workers=2)
    assert pool["points"] == toys["points"]
    for a, t in zip(asym["points"], toys["points"]):
        assert t["limit_method"] == "toys" and t["ul_nsig_obs_err"] > 0 and len(t["ul_xsec_pb_exp_err"]) == 5
        # hundreds of events per window: the asymptotic regime, agreement within a few Monte Carlo errors (and 10%)
        assert abs(t["ul_nsig_obs"] - a["ul_nsig_obs"]) < max(4 * t["ul_nsig_obs_err"], 0.1 * a["ul_nsig_obs"])
        assert t["ul_xsec_pb_obs"] > 0 and "limit_method" not in a
    auto = scans.scan(_x(), MODEL, config={**CFG, "limits": {"method": "auto", "toys": 200}})
    assert {p["limit_method"] for p in auto["points"]} <= {"asymptotic", "toys"}


def test_toy_limits_are_refused_with_the_combined_likelihood() -> None:
    with pytest.raises(ScanConfigError, match="limits.method: 'toys' is available for one-dataset scans"):
        scans.load_scan_config({**CFG, "limits": {"method": "toys"}, "nuisances": [{"name": "r", "kind": "resolution", "width": 0.1}]})

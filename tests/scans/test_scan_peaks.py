"""Known peaks inside fit windows: a pi0 peak below the signal model's range in the windows of the 0.2-0.35 GeV hypotheses."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import scans
from scans.peaks import peak_shape
from scans.testing import analytic_signal_model, toy_spectrum
from signal_models._common.pdg import particle_mass

MP = particle_mass("pi0")
#: the analytic model starts at 0.2 GeV: the pi0 (0.135 GeV) lies below it
MODEL = analytic_signal_model(mass_range=(0.2, 10.0))


def _truth_pi0():
    """The pi0 peak as the model's resolution law gives it at the PDG mass (sigma(m) = 0.004 + 0.009 m GeV)."""
    return dataclasses.replace(MODEL.shape(0.2), mu=MP, sigma=0.004 + 0.009 * MP, comb_fraction=0.0)


def _toy(seed: int, *, n_bkg: int = 20_000, n_pi0: float = 1500.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    bkg = toy_spectrum(n_bkg, lo=0.05, hi=1.0, slope=0.5, seed=seed)
    return np.r_[bkg, _truth_pi0().sample(rng.poisson(n_pi0), 0.05, 1.0, rng=rng)]


def _pulls(mgg: np.ndarray, in_window: str) -> np.ndarray:
    cfg = {"mass": {"min": 0.2, "max": 0.35, "step": 0.05}, "lee": {"toys": 0}, "luminosity_fb": 0.445,
           "vetoes": {"in_window": in_window}, "beam": {"sqrt_s": 10.58}}
    result = scans.scan(mgg, MODEL, config=cfg, workers=1)
    pts = [p for p in result["points"] if not p["vetoed"]]
    assert len(pts) == 4 and all(p["converged"] for p in pts)
    return np.array([p["nsig"] / p["nsig_err"] for p in pts])


def test_peak_shape_extrapolated_below_the_model() -> None:
    shape, extrapolated = peak_shape(MODEL, MP, model_range=MODEL.mass_range)
    assert extrapolated and shape.mu == pytest.approx(MP) and shape.comb_fraction == 0.0
    # the model's sigma(m) is linear, so the linear extrapolation from its end is exact
    assert shape.sigma == pytest.approx(0.004 + 0.009 * MP, rel=1e-9)
    inside, extrapolated = peak_shape(MODEL, 0.5479, model_range=MODEL.mass_range)
    assert not extrapolated and inside.sigma == pytest.approx(MODEL.shape(0.5479).sigma)


def test_pi0_in_the_window_pulls_the_signal_unless_modelled() -> None:
    """One high-statistics toy: ignoring the peak pulls N_sig by many sigma; the template and the cut do not."""
    mgg = _toy(5, n_bkg=60_000, n_pi0=6000.0)
    none = _pulls(mgg, "none")
    assert none[0] < -5  # the 0.2 GeV window holds the pi0 peak, which the polynomial cannot absorb
    for mode in ("template", "cut"):
        assert np.all(np.abs(_pulls(mgg, mode)) < 3.0), mode


def test_cut_windows_end_at_the_peak() -> None:
    cfg = scans.load_scan_config({"mass": {"min": 0.2, "max": 0.35, "step": 0.05}, "vetoes": {"in_window": "cut"}})
    from scans.plan import plan_scan

    plan = plan_scan(np.sort(_toy(1)), MODEL, cfg)
    sigma_pi0 = peak_shape(MODEL, MP, model_range=MODEL.mass_range)[0].sigma
    assert plan.windows[0, 0] == pytest.approx(MP + 5.0 * sigma_pi0)
    assert not any(plan.extras)


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["template", "cut"])
def test_pi0_in_the_window_gives_an_unbiased_signal_yield(mode: str) -> None:
    """Background-only toys with a pi0 peak: the mean pull of N_sig at 0.2-0.35 GeV is within 0.2 (400 toys)."""
    pulls = np.array([_pulls(_toy(seed), mode) for seed in range(2000, 2400)])
    assert np.all(np.abs(pulls.mean(axis=0)) < 0.2), pulls.mean(axis=0)
    assert np.all(np.abs(pulls.std(axis=0) - 1.0) < 0.1), pulls.std(axis=0)

"""Searching through known peaks: peak templates with floating yields (vetoes.mode "float")."""

from __future__ import annotations

import numpy as np
import pytest
from iminuit import Minuit
from numpy.polynomial import chebyshev

import fits
from fits.errors import FitInputError
from scans import ScanConfigError, load_scan_config, scan
from scans.grid import particle_mass
from scans.testing import analytic_signal_model, sample_signal, toy_spectrum
from signal_models.shapes import SignalShape

LO, HI = 0.05, 0.25
PI0 = SignalShape(mu=0.135, sigma=0.006, alpha_l=1.2, n_l=3.0, alpha_r=1.5, n_r=4.0)


def _toy(seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = np.concatenate([LO + (HI - LO) * rng.uniform(size=3000) ** 1.3, rng.normal(PI0.mu, PI0.sigma, 800)])
    return x[(x > LO) & (x < HI)]


def _minuit_nll(x: np.ndarray, sig: SignalShape, order: int):
    """The same extended NLL written independently (SignalShape.pdf, numpy Chebyshev), minimised by iminuit."""
    s, p = sig.pdf(x, LO, HI), PI0.pdf(x, LO, HI)
    xp = 2 * (x - LO) / (HI - LO) - 1
    T = np.array([chebyshev.chebval(xp, np.eye(order + 1)[k]) for k in range(order + 1)])
    integ_t = np.array([chebyshev.chebval(1, chebyshev.chebint(np.eye(order + 1)[k], lbnd=-1)) for k in range(order + 1)]) * (HI - LO) / 2

    def nll(par):
        mu, nu, *beta = par
        lam = mu * s + nu * p + np.asarray(beta) @ T
        if np.any(lam <= 0):
            return 1e30
        return mu + nu + np.asarray(beta) @ integ_t - np.sum(np.log(lam))

    def fit(fix_mu: bool):
        start = [0.0, 500.0, len(x) / (HI - LO)] + [0.0] * order
        m = Minuit(nll, start)
        m.errordef = Minuit.LIKELIHOOD
        m.strategy = 2
        m.fixed[0] = fix_mu
        m.migrad()
        m.hesse()
        assert m.valid
        return m

    return fit(False), fit(True)


@pytest.mark.parametrize("mass", [0.11, 0.16, 0.2])
def test_template_fit_matches_iminuit(mass: float) -> None:
    x = _toy()
    sig = SignalShape(mu=mass, sigma=0.006, alpha_l=1.2, n_l=3.0, alpha_r=1.5, n_r=4.0)
    t = fits.evaluate_hypotheses(x, [sig], [[LO, HI]], bkg_order=2, limits=False, expected=False, extra_shapes=[[PI0]])
    m1, m0 = _minuit_nll(x, sig, 2)
    assert t.converged[0]
    assert t.nsig[0] == pytest.approx(m1.values[0], abs=0.02 * m1.errors[0])
    assert t.nsig_err[0] == pytest.approx(m1.errors[0], rel=0.02)
    z_ref = np.sign(m1.values[0]) * np.sqrt(max(2 * (m0.fval - m1.fval), 0.0))
    assert t.z_local[0] == pytest.approx(z_ref, abs=0.02)


def test_no_template_reproduces_engine_and_bad_input_rejected() -> None:
    x = _toy()
    sig = SignalShape(mu=0.2, sigma=0.006, alpha_l=1.2, n_l=3.0, alpha_r=1.5, n_r=4.0)
    with pytest.raises(FitInputError, match="extra_shapes"):
        fits.evaluate_hypotheses(x, [sig], [[LO, HI]], extra_shapes=[[PI0], [PI0]])
    with pytest.raises(FitInputError, match="extra_shapes"):
        fits.evaluate_hypotheses(x, [sig], [[LO, HI]], extra_shapes=[["pi0"]])
    with pytest.raises(FitInputError, match="extra_shapes"):
        fits.evaluate_hypotheses(x, [sig], [[LO, HI]], extra_shapes=[[PI0]], engine="zfit")


def _peak_spectrum():
    model = analytic_signal_model()
    mp = particle_mass("pi0")
    bkg = toy_spectrum(20000, lo=0.1, hi=0.6, slope=2.0, seed=3)
    peak = sample_signal(model.shape(mp), 3000, lo=0.1, hi=0.23, seed=4)
    return model, mp, np.sort(np.r_[bkg, peak])


def test_float_mode_searches_through_the_pi0_without_spurious_significance() -> None:
    model, mp, x = _peak_spectrum()
    cfg = {"mass": {"min": 0.11, "max": 0.2, "step": 0.002, "data_range": [0.1, 0.6]},
           "vetoes": {"mode": "float", "particles": ["pi0"]}, "lee": {"toys": 0}}
    res = scan(x, model, config=cfg, workers=1)
    near = [p for p in res["points"] if abs(p["mass"] - mp) < 0.02]
    fitted = [p for p in near if not p["vetoed"]]
    # the points next to the peak are fitted (only the unresolvable core is vetoed) ...
    assert len(fitted) >= 15 and sum(p["vetoed"] for p in near) <= 2
    assert all(p["converged"] for p in fitted)
    z_float = np.array([p["z_local"] for p in fitted])
    assert np.max(np.abs(z_float)) < 3.0
    # ... while the same hypotheses fitted without the peak template see the pi0 as a huge excess/deficit
    masses = np.array([p["mass"] for p in fitted])
    windows = np.array([p["window"] for p in fitted])
    t = fits.evaluate_hypotheses(x, [model.shape(m) for m in masses], windows, bkg_order=load_scan_config(cfg)["bkg_order"],
                                 limits=False, expected=False)
    assert np.max(np.abs(t.z_local)) > 5.0
    # limits lose sensitivity towards the peak, stay finite and positive
    ul = np.array([p["ul_nsig_obs"] for p in fitted])
    assert np.all(np.isfinite(ul)) and np.all(ul > 0)


def test_config_accepts_float_and_rejects_unknown_mode() -> None:
    assert load_scan_config({"vetoes": {"mode": "float"}})["vetoes"]["mode"] == "float"
    assert load_scan_config({})["vetoes"]["mode"] == "veto"
    with pytest.raises(ScanConfigError, match="mode"):
        load_scan_config({"vetoes": {"mode": "fit"}})

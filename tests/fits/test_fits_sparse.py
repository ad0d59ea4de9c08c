"""Sparse windows: the model density is held positive over the window when the plain fit has no minimum."""

from __future__ import annotations

import numpy as np

import fits
from fits.densities import ShapeArrays, background_nonnegative
from fits.design import build_design
from fits.vectorised import Batch
from scans.testing import analytic_signal_model, toy_spectrum

MODEL = analytic_signal_model()


def _steep() -> np.ndarray:
    # a steeply falling spectrum: a few tens of candidates per window above 2 GeV
    return np.sort(toy_spectrum(4000, lo=0.1, hi=3.0, slope=3.0, seed=5))


def _window(m: float) -> tuple[float, float]:
    lo, hi = MODEL.shape(m).window(20.0)
    return lo, min(hi, 3.0)


def _plain(x: np.ndarray, m: float):
    sh = ShapeArrays.from_shapes([MODEL.shape(m)])
    lo, hi = _window(m)
    st, sp = np.searchsorted(x, [lo]), np.searchsorted(x, [hi], side="right")
    return Batch(build_design(x, sh, np.array([lo]), np.array([hi]), 3, index_range=(st, sp)), sh, 3).fit()


def _density(t, m: float, grid: np.ndarray) -> np.ndarray:
    lo, hi = _window(m)
    xp = (2 * grid - lo - hi) / (hi - lo)
    bkg = np.polynomial.chebyshev.chebval(xp, t.beta[0])
    return float(t.nsig[0]) * MODEL.shape(m).pdf(grid, lo=lo, hi=hi) + bkg


def test_runaway_signal_in_a_sparse_window_is_held_at_a_valid_density() -> None:
    x = _steep()
    m = 2.3
    plain = _plain(x, m)
    # only positivity at the events: the signal yield runs away to minus infinity
    assert not plain.converged[0] and plain.mu_hat[0] < -1e4
    t = fits.evaluate_hypotheses(x, [MODEL.shape(m)], [_window(m)], bkg_order=3, signal_scale=[10.0], signal_scale_rel_unc=0.05)
    assert t.converged[0], t.reason[0]
    assert 20 < t.n_events[0] < 40
    lo, hi = _window(m)
    grid = np.linspace(lo, hi, 4001)
    dens = _density(t, m, grid)
    # a valid model density over the window: non-negative at the guard points, within 0.5% of its
    # maximum between them
    assert dens.min() > -5e-3 * dens.max()
    assert abs(t.nsig[0]) < t.n_events[0] and np.isfinite(t.nsig_err[0]) and t.nsig_err[0] > 0
    exp = t.ul_nsig_exp[0]
    assert np.all(np.diff(exp) > 0) and 0.5 < exp[2] < 20  # an ordered band of a few events
    assert t.ul_nsig_obs[0] > 0.2 * exp[2]
    assert np.all(np.isfinite(t.ul_xsec_exp[0])) and t.ul_xsec_obs[0] > 0


def test_regular_windows_are_not_touched_by_the_guard() -> None:
    x = _steep()
    masses = [1.0, 1.3, 1.6]
    t = fits.evaluate_hypotheses(x, [MODEL.shape(m) for m in masses], [_window(m) for m in masses], bkg_order=3,
                                 limits=False, expected=False)
    for j, m in enumerate(masses):
        plain = _plain(x, m)
        assert plain.converged[0] and background_nonnegative(plain.zero.theta[:, 1:], 3)[0]
        assert t.nsig[j] == plain.mu_hat[0] and t.z_local[j] == plain.z_local[0]


def test_a_scan_of_a_falling_spectrum_converges_everywhere() -> None:
    x = _steep()
    masses = np.round(np.arange(1.8, 2.81, 0.1), 3)
    t = fits.evaluate_hypotheses(x, [MODEL.shape(m) for m in masses], [_window(m) for m in masses], bkg_order=2)
    assert np.all(t.converged), [r for r in t.reason if r]
    assert np.all(np.isfinite(t.ul_nsig_obs)) and np.all(t.ul_nsig_exp > 0)
    # background-only-like data: no large local significance anywhere
    assert np.max(np.abs(t.z_local)) < 3.5

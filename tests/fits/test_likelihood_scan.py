"""Profile-likelihood scans of the parameter of interest (fits.likelihood_scan): the curve, its 68%/95% crossings, the plot."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import minimize

import fits
from fits.channels import CombinedModel
from fits.likelihood_scan import ONE_SIGMA_CL, LikelihoodScan, likelihood_scan, plot_likelihood_scan, scan_levels
from scans.testing import analytic_signal_model, sample_signal, toy_spectrum
from signal_models._common.plotstyle import texts_inside_figure

SHAPE = analytic_signal_model().shape(1.5)
WINDOW = SHAPE.window(20.0)
ORDER = 2
LUMI = fits.YieldUncertainty("lumi", 0.15)
RES = fits.ShapeUncertainty("res", "resolution", 0.1)


def _data(n_bkg: int, n_sig: int, seed: int) -> np.ndarray:
    lo, hi = WINDOW
    return np.r_[toy_spectrum(n_bkg, lo=0.1, hi=4.0, slope=0.5, seed=seed), sample_signal(SHAPE, n_sig, lo=lo, hi=hi, seed=seed + 1)]


@pytest.fixture(scope="module")
def small() -> fits.Channel:
    return fits.Channel(_data(3000, 60, 21), SHAPE, WINDOW, signal_scale=0.8, bkg_order=ORDER, name="small")


@pytest.fixture(scope="module")
def small_scan(small) -> LikelihoodScan:
    return likelihood_scan([small], yield_uncertainties=[LUMI], shape_uncertainties=[RES])


def _profile_nll(ch: fits.Channel):
    """The NLL of ``ch`` with lumi and res written out in numpy, and scipy's profile over everything but mu."""
    model = CombinedModel.build([ch], yields=[LUMI], shapes=[RES])
    lo, hi = ch.window
    x = ch.mgg[(ch.mgg >= lo) & (ch.mgg <= hi)]
    s0 = ch.shape.pdf(x, lo, hi)
    p0, pp, pm = (s.pdf(x, lo, hi) for s in (model.peak_shape(0), model.peak_shape(0, 0, +1.0), model.peak_shape(0, 0, -1.0)))
    keep = 1.0 - ch.shape.comb_fraction
    dA, dB = keep * 0.5 * (pp - pm), keep * (0.5 * (pp + pm) - p0)
    T = np.polynomial.chebyshev.chebvander(2.0 * (x - lo) / (hi - lo) - 1.0, ORDER)
    integ = np.array([2.0, 0.0, -2.0 / 3.0]) * 0.5 * (hi - lo)  # integrals of T_0, T_1, T_2 over [-1, 1], times dx/dx'

    def nll(p: np.ndarray) -> float:
        mu, u, nu = p[:3]
        n = mu * ch.signal_scale * np.exp(np.log1p(0.15) * u)
        lam = n * (s0 + nu * dA + nu * nu * dB) + T @ p[3:]
        if np.any(lam <= 0):
            return 1e300
        return float(0.5 * (u * u + nu * nu) + n + integ @ p[3:] - np.sum(np.log(lam)))

    beta0 = np.array([len(x) / (hi - lo), 0.0, 0.0])

    def profile(mu: float | None, start: np.ndarray) -> tuple[float, np.ndarray]:
        free = slice(1, None) if mu is not None else slice(0, None)
        sc = np.maximum(np.abs(start[free]), 1.0)

        def f(q: np.ndarray) -> float:
            p = start.copy()
            if mu is not None:
                p[0] = mu
            p[free] = q * sc
            return nll(p)

        r = minimize(f, start[free] / sc, method="BFGS", options={"gtol": 1e-8, "maxiter": 5000})
        r = minimize(f, r.x, method="Nelder-Mead", options={"xatol": 1e-10, "fatol": 1e-12, "maxiter": 20000})
        p = start.copy()
        if mu is not None:
            p[0] = mu
        p[free] = r.x * sc
        return float(r.fun), p

    return profile, np.r_[10.0, 0.0, 0.0, beta0]


def test_levels() -> None:
    np.testing.assert_allclose(scan_levels([ONE_SIGMA_CL, 0.95]), [1.0, 3.841458820694124], rtol=1e-12)
    with pytest.raises(fits.FitInputError, match="confidence levels"):
        scan_levels([1.2])


def test_near_gaussian_crossings_are_mu_hat_plus_minus_the_error() -> None:
    x = _data(60000, 900, 31)
    scan = likelihood_scan(x, SHAPE, WINDOW)
    one, two = scan.interval(ONE_SIGMA_CL), scan.interval(0.95)
    assert one.found_lo and one.found_hi and two.found_lo and two.found_hi
    err = scan.mu_err
    assert scan.mu_hat - one.lo == pytest.approx(err, rel=0.03)
    assert one.hi - scan.mu_hat == pytest.approx(err, rel=0.03)
    assert scan.mu_hat - two.lo == pytest.approx(1.959964 * err, rel=0.03)
    assert two.hi - scan.mu_hat == pytest.approx(1.959964 * err, rel=0.03)
    # the grid is a parabola near the minimum (to 3%)
    near = np.abs(scan.poi_values - scan.mu_hat) < 1.5 * err
    np.testing.assert_allclose(scan.dnll2[near], ((scan.poi_values[near] - scan.mu_hat) / err) ** 2, rtol=0.03, atol=1e-3)
    # the one-dataset POI is fits.fit's N_sig
    plain = fits.fit(x, SHAPE, WINDOW)
    assert scan.poi == "N_sig"
    assert scan.mu_hat == pytest.approx(plain.nsig, abs=1e-3 * plain.nsig_err)
    assert scan.mu_err == pytest.approx(plain.nsig_err, rel=1e-4)


def test_crossings_agree_with_an_independent_scipy_profile(small, small_scan) -> None:
    """scipy (BFGS, then Nelder-Mead) profiles the NLL written out in numpy at the engine's crossings: -2 Delta ln L = level there."""
    profile, start = _profile_nll(small)
    f_min, p_min = profile(None, start)
    assert p_min[0] == pytest.approx(small_scan.mu_hat, abs=2e-3 * small_scan.mu_err)
    assert f_min == pytest.approx(small_scan.nll_hat, abs=1e-5)
    worst_level, worst_x = 0.0, 0.0
    for iv in small_scan.intervals:
        assert iv.found_lo and iv.found_hi
        for x in (iv.lo, iv.hi):
            f, _ = profile(x, p_min)
            d = 2.0 * (f - f_min)
            worst_level = max(worst_level, abs(d - iv.level))
            # the position error this means: d(-2 dlnL)/dx ~ 2 sqrt(level) / sigma
            worst_x = max(worst_x, abs(d - iv.level) / (2.0 * np.sqrt(iv.level) / small_scan.mu_err))
    assert worst_level < 1e-5
    assert worst_x < 1e-5 * small_scan.mu_err
    # and at grid points
    for i in (3, 20, 36):
        f, _ = profile(float(small_scan.poi_values[i]), p_min)
        assert small_scan.dnll2[i] == pytest.approx(2.0 * (f - f_min), abs=2e-4)


def test_the_scan_is_not_gaussian_with_a_log_normal_yield_uncertainty(small_scan) -> None:
    one = small_scan.interval(ONE_SIGMA_CL)
    assert small_scan.converged.all()
    assert small_scan.nuisance_names == ("lumi", "res") and small_scan.nuisances.shape == (41, 2)
    # mu x exp(ln(1.15) u): the interval is wider above than below
    assert one.hi - small_scan.mu_hat > small_scan.mu_hat - one.lo


def test_a_short_grid_is_extended_to_reach_the_crossings(small, small_scan) -> None:
    short = likelihood_scan([small], yield_uncertainties=[LUMI], shape_uncertainties=[RES],
                            poi_values=small_scan.mu_hat + small_scan.mu_err * np.linspace(-0.5, 0.5, 5))
    for a, b in zip(short.intervals, small_scan.intervals):
        assert a.found_lo and a.found_hi
        assert a.lo == pytest.approx(b.lo, abs=1e-5 * small_scan.mu_err)
        assert a.hi == pytest.approx(b.hi, abs=1e-5 * small_scan.mu_err)


def test_global_observables_move_the_scan(small, small_scan) -> None:
    moved = likelihood_scan([small], yield_uncertainties=[LUMI], shape_uncertainties=[RES], global_observables=[1.0, 0.0])
    # the auxiliary measurement says the yield factor is higher: mu comes down
    assert moved.mu_hat < small_scan.mu_hat


def test_rows_dict_plot(small_scan, tmp_path) -> None:
    rows = small_scan.to_rows()
    assert rows[0][0] == "CL" and rows[1][0] == "68.27%" and rows[2][0] == "95.00%"
    d = small_scan.to_dict()
    assert len(d["intervals"]) == 2 and len(d["dnll2"]) == 41
    fig = plot_likelihood_scan(small_scan)
    assert texts_inside_figure(fig)
    assert plot_likelihood_scan(small_scan, path=tmp_path / "scan.png").stat().st_size > 10_000


def test_bad_input(small) -> None:
    with pytest.raises(fits.FitInputError, match="n_points"):
        likelihood_scan([small], n_points=2)
    with pytest.raises(fits.FitInputError, match="poi_values"):
        likelihood_scan([small], poi_values=[1.0, np.nan])
    with pytest.raises(fits.FitInputError, match="confidence levels"):
        likelihood_scan([small], cls=(0.0,))
    with pytest.raises(fits.FitInputError, match="no interval"):
        likelihood_scan([small], n_points=5).interval(0.9)

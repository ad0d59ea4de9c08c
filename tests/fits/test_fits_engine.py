"""Vectorised fit engine: exact derivatives, minimum, batching, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import minimize

import fits
from fits.densities import ShapeArrays, signal_pdf
from fits.design import build_asimov_design, build_design, moment_layout
from fits.newton import linear_lambda, start_values
from signal_models import SignalShape

SHAPE = SignalShape(mu=2.0, sigma=0.02, alpha_l=1.2, n_l=3.0, alpha_r=1.5, n_r=4.0, comb_fraction=0.2, comb_slope=-0.3)


def _spectrum(rng: np.random.Generator, n_bkg: int = 3000, n_sig: int = 0, shape: SignalShape = SHAPE) -> np.ndarray:
    lo, hi = shape.window()
    x = lo + (hi - lo) * rng.power(1.4, n_bkg)
    if n_sig:
        x = np.concatenate([x, shape.sample(n_sig, lo, hi, rng=rng)]) if hasattr(shape, "sample") else np.concatenate([x, rng.normal(shape.mu, shape.sigma, n_sig)])
    return x


def _nll(theta: np.ndarray, x: np.ndarray, shape: SignalShape, order: int) -> float:
    lo, hi = shape.window()
    s = shape.pdf(x, lo, hi)
    T = np.polynomial.chebyshev.chebvander((2 * x - lo - hi) / (hi - lo), order).T
    lam = theta[0] * s + theta[1:] @ T
    if np.any(lam <= 0):
        return 1e30
    I = 0.5 * (hi - lo) * np.array([2.0 / (1 - k * k) if k % 2 == 0 else 0.0 for k in range(order + 1)])
    return float(theta[0] + theta[1:] @ I - np.log(lam).sum())


def test_signal_pdf_matches_shape(rng: np.random.Generator) -> None:
    lo, hi = SHAPE.window()
    x = rng.uniform(lo, hi, 500)
    got = signal_pdf(x[None, :], ShapeArrays.from_shapes([SHAPE]), np.array([lo]), np.array([hi]))[0]
    np.testing.assert_allclose(got, SHAPE.pdf(x, lo, hi), rtol=1e-12)


def test_moment_hessian_equals_direct(rng: np.random.Generator) -> None:
    x = np.sort(_spectrum(rng, 400))
    lo, hi = SHAPE.window()
    for order in (0, 1, 3, 5):
        d = build_design(x, ShapeArrays.from_shapes([SHAPE]), np.array([lo]), np.array([hi]), order)
        th = start_values(d)
        th[:, 0] = 7.0
        lam = linear_lambda(d.F, th)
        F = d.F[0]
        direct = (F / lam[0] ** 2) @ F.T
        R, A, B = moment_layout(order)
        h = d.M[0] @ (d.w[0] / lam[0] ** 2)
        np.testing.assert_allclose(0.5 * (h[A] + h[B]), direct, rtol=1e-10)


def test_newton_reaches_scipy_minimum(rng: np.random.Generator) -> None:
    x = _spectrum(rng, 2000, 60)
    r = fits.fit(x, SHAPE, SHAPE.window(), bkg_order=3)
    assert r.converged and r.reason == ""
    theta = np.concatenate([[r.nsig], r.beta])
    # an independent minimiser started off the solution must not find a lower NLL
    res = minimize(_nll, theta * 1.05, args=(x, SHAPE, 3), method="Nelder-Mead", options={"maxiter": 20000, "xatol": 1e-8, "fatol": 1e-10})
    assert _nll(theta, x, SHAPE, 3) <= res.fun + 1e-6
    assert abs(_nll(theta, x, SHAPE, 3) - r.nll) < 1e-6
    # gradient at the minimum vanishes; error = sqrt of the inverse-Hessian diagonal (finite differences)
    eps = 1e-3 * np.maximum(np.abs(theta), 1.0)
    H = np.empty((5, 5))
    for i in range(5):
        for j in range(5):
            ei, ej = np.eye(5)[i] * eps[i], np.eye(5)[j] * eps[j]
            H[i, j] = (_nll(theta + ei + ej, x, SHAPE, 3) - _nll(theta + ei - ej, x, SHAPE, 3) - _nll(theta - ei + ej, x, SHAPE, 3) + _nll(theta - ei - ej, x, SHAPE, 3)) / (4 * eps[i] * eps[j])
    assert r.nsig_err == pytest.approx(np.sqrt(np.linalg.inv(H)[0, 0]), rel=1e-3)
    # extended ML: fitted yields add up to the number of events
    assert r.nsig + r.nbkg == pytest.approx(r.n_events, rel=1e-8)


def test_batch_equals_single_fits(rng: np.random.Generator) -> None:
    x = np.concatenate([rng.uniform(0.5, 4.0, 20000), 0.5 + rng.exponential(1.0, 20000)])
    x = x[x < 4.0]
    shapes = [SignalShape(mu=m, sigma=0.005 + 0.01 * m, alpha_l=1.3, n_l=3, alpha_r=1.6, n_r=5) for m in (1.0, 1.5, 2.0, 2.5, 3.0)]
    win = np.array([fits.default_window(s, (0.5, 4.0)) for s in shapes])
    t = fits.evaluate_hypotheses(x, shapes, win, limits=True, chunk_slots=5000)
    assert t.converged.all()
    for j, s in enumerate(shapes):
        r = fits.fit(x, s, win[j])
        assert t.nsig[j] == pytest.approx(r.nsig, abs=1e-6 * r.nsig_err)
        assert t.nll[j] == pytest.approx(r.nll, abs=1e-7)
    assert np.all(t.ul_nsig_obs > 0) and np.all(np.diff(t.ul_nsig_exp, axis=1) > 0)
    for arr in (t.nsig, t.nsig_err, t.nbkg, t.nll, t.z_local, t.ul_nsig_obs, t.ul_nsig_exp):
        assert np.all(np.isfinite(arr))


def test_quadrature_integrates_exactly() -> None:
    shapes = [SHAPE, SignalShape(mu=5.0, sigma=0.05, alpha_l=0.8, n_l=1.5, alpha_r=2.5, n_r=10)]
    sh = ShapeArrays.from_shapes(shapes)
    lo = np.array([s.window()[0] for s in shapes])
    hi = np.array([s.window()[1] for s in shapes])
    # clipped window too
    lo[1] = 4.9
    d, x = build_asimov_design(sh, lo, hi, 3)
    np.testing.assert_allclose((d.w * d.F[:, 0]).sum(axis=1), 1.0, rtol=1e-9)  # signal pdf normalised
    np.testing.assert_allclose((d.w[:, None, :] * d.F[:, 1:]).sum(axis=2), d.integ[:, 1:], rtol=1e-12, atol=1e-12)


def test_data_with_signal_gives_positive_z(rng: np.random.Generator) -> None:
    lo, hi = SHAPE.window()
    x = np.concatenate([_spectrum(rng, 3000), rng.normal(SHAPE.mu, SHAPE.sigma, 150)])
    r = fits.fit(x, SHAPE)
    assert r.z_local > 3
    assert r.z_local == pytest.approx(np.sqrt(2 * (r.nll_bkg_only - r.nll)))


@pytest.mark.parametrize(
    "case",
    ["empty", "too_few", "one_value", "peak_outside"],
)
def test_bad_windows_are_flagged_not_nan(case: str, rng: np.random.Generator) -> None:
    good = SignalShape(mu=5.0, sigma=0.05, alpha_l=1.2, n_l=3, alpha_r=1.5, n_r=4)
    x = rng.uniform(4.0, 6.0, 2000)
    shape, window = good, good.window()
    if case == "empty":
        window = (7.0, 8.0)
        shape = SignalShape(mu=7.5, sigma=0.025, alpha_l=1.2, n_l=3, alpha_r=1.5, n_r=4)
    elif case == "too_few":
        x = np.concatenate([x, [6.5, 6.6, 6.7]])
        shape = SignalShape(mu=6.6, sigma=0.005, alpha_l=1.2, n_l=3, alpha_r=1.5, n_r=4)
        window = (6.55, 6.75)
    elif case == "one_value":
        x = np.concatenate([x, np.full(50, 6.6)])
        shape = SignalShape(mu=6.6, sigma=0.005, alpha_l=1.2, n_l=3, alpha_r=1.5, n_r=4)
        window = (6.55, 6.75)
    elif case == "peak_outside":
        window = (4.0, 4.5)
    t = fits.evaluate_hypotheses(x, [good, shape], [good.window(), window])
    assert t.converged[0] and t.reason[0] == ""
    assert not t.converged[1]
    assert t.reason[1]
    for arr in (t.nsig, t.nsig_err, t.nbkg, t.nll, t.z_local, t.ul_nsig_obs, t.ul_nsig_exp):
        assert np.all(np.isfinite(arr))
    r = fits.fit(x, shape, window)
    assert not r.converged and r.reason


@pytest.mark.parametrize("bad", [np.array([1.0, np.nan, 2.0]), np.array([1.0, -0.5, 2.0]), np.array([1.0, np.inf]), np.ones((3, 2))])
def test_bad_masses_raise_clear_error(bad: np.ndarray) -> None:
    with pytest.raises(fits.FitInputError, match="mgg"):
        fits.fit(bad, SHAPE, SHAPE.window())


def test_bad_windows_raise() -> None:
    with pytest.raises(fits.FitInputError, match="windows"):
        fits.evaluate_hypotheses(np.ones(10), [SHAPE], [[2.0, 1.0]])
    with pytest.raises(fits.FitInputError, match="windows"):
        fits.evaluate_hypotheses(np.ones(10), [SHAPE, SHAPE], [[1.0, 2.0]])


def test_conditional_fits_profile_convex(rng: np.random.Generator) -> None:
    """The profile NLL along mu is convex and minimal at mu_hat."""
    x = _spectrum(rng, 3000, 0)
    curve = fits.limit_curve(x, SHAPE, SHAPE.window(), poi_values=np.linspace(-60, 120, 19))
    q = curve["q_tilde"]
    assert np.all(np.isfinite(q)) and np.all(q >= 0)
    pos = curve["poi"] > max(curve["nsig_hat"], 0)
    assert np.all(np.diff(q[pos]) > 0)

"""Numpy signal shapes: analytic normalisation, limits, bad parameters."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import integrate, stats

from signal_models import ShapeError, SignalShape
from signal_models.shapes import dscb_integral


def _shape(**kw: float) -> SignalShape:
    base = dict(mu=5.0, sigma=0.05, alpha_l=1.2, n_l=3.0, alpha_r=1.8, n_r=6.0, comb_fraction=0.2, comb_slope=-0.4)
    base.update(kw)
    return SignalShape(**base)


@pytest.mark.parametrize("window", [(4.0, 6.0), (4.95, 5.2), (4.9, 4.97), (5.1, 5.8), (4.999, 5.001)])
def test_normalised_on_windows_cutting_tails(window: tuple[float, float]) -> None:
    shape = _shape()
    lo, hi = window
    val, err = integrate.quad(lambda x: shape.pdf(np.array([x]), lo, hi)[0], lo, hi, points=[shape.mu - 1.2 * 0.05, shape.mu + 1.8 * 0.05], epsabs=1e-13, epsrel=1e-12, limit=200)
    assert val == pytest.approx(1.0, abs=1e-9)


@pytest.mark.parametrize("n", [1.0, 1.5, 3.0, 50.0])
def test_tail_integral_matches_quadrature(n: float) -> None:
    t1, t2 = -12.0, 9.0
    num, _ = integrate.quad(lambda t: SignalShape(0, 1, 0.8, n, 1.3, n).peak_pdf(np.array([t]), -1e9 if n > 1 else -50, 1e9 if n > 1 else 50)[0], t1, t2, limit=200, epsabs=1e-13)
    shape = SignalShape(0, 1, 0.8, n, 1.3, n)
    lo, hi = (-1e9, 1e9) if n > 1 else (-50, 50)
    norm = dscb_integral(lo, hi, 0.8, n, 1.3, n)
    analytic = dscb_integral(t1, t2, 0.8, n, 1.3, n) / norm
    assert analytic == pytest.approx(num, rel=1e-9)
    assert shape.integral(t1, t2, lo, hi) == pytest.approx(num, rel=1e-9)


def test_one_sided_limit_equals_scipy_crystalball() -> None:
    # right tail pushed far away: the DSCB becomes scipy's (left-tailed) Crystal Ball
    beta, m = 1.4, 2.5
    shape = SignalShape(mu=1.0, sigma=0.1, alpha_l=beta, n_l=m, alpha_r=40.0, n_r=2.0)
    lo, hi = 0.0, 1.6
    x = np.linspace(lo, hi, 301)
    ref = stats.crystalball.pdf(x, beta, m, loc=1.0, scale=0.1)
    ref /= stats.crystalball.cdf(hi, beta, m, loc=1.0, scale=0.1) - stats.crystalball.cdf(lo, beta, m, loc=1.0, scale=0.1)
    np.testing.assert_allclose(shape.pdf(x, lo, hi), ref, rtol=1e-10)


def test_continuity_at_tail_joins() -> None:
    shape = _shape(comb_fraction=0.0)
    for x0 in (shape.mu - shape.alpha_l * shape.sigma, shape.mu + shape.alpha_r * shape.sigma):
        a, b = shape.pdf(np.array([x0 - 1e-9, x0 + 1e-9]), 4, 6)
        assert a == pytest.approx(b, rel=1e-6)


def test_bad_parameters_and_windows() -> None:
    with pytest.raises(ShapeError, match="sigma"):
        _shape(sigma=0.0)
    with pytest.raises(ShapeError, match="alpha"):
        _shape(alpha_l=-1.0)
    with pytest.raises(ShapeError, match="non-finite"):
        _shape(mu=float("nan"))
    with pytest.raises(ShapeError, match="comb_slope"):
        _shape(comb_slope=1.5)
    with pytest.raises(ShapeError, match="window"):
        _shape().pdf(np.array([5.0]), 6.0, 4.0)
    with pytest.raises(ShapeError, match="domain"):
        _shape().pdf(np.array([5.0]), 3.0, 7.0)

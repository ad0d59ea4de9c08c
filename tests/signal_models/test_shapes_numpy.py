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


# -- the wrong-pair edge ----------------------------------------------------------------------

EDGES = [(5.3, 0.05), (5.0, 0.02), (4.5, 0.1), (5.9, 0.01), (4.97, 0.004)]


@pytest.mark.parametrize("edge", EDGES)
@pytest.mark.parametrize("window", [(4.0, 6.0), (4.95, 5.2), (4.9, 4.97), (5.1, 5.8)])
def test_edge_normalised_on_windows(edge: tuple[float, float], window: tuple[float, float]) -> None:
    e, w = edge
    shape = _shape(comb_edge=e, comb_edge_width=w)
    lo, hi = window
    if e + 9 * w > lo:  # else the wrong pairs would all lie below the window
        val, _ = integrate.quad(lambda x: shape.pdf(np.array([x]), lo, hi)[0], lo, hi, points=[e, shape.mu], epsabs=1e-13, epsrel=1e-12, limit=500)
        assert val == pytest.approx(1.0, abs=1e-9)
        # sub-range probabilities from the analytic integral
        a, b = lo + 0.3 * (hi - lo), lo + 0.7 * (hi - lo)
        sub, _ = integrate.quad(lambda x: shape.pdf(np.array([x]), lo, hi)[0], a, b, points=[min(max(e, a), b)], epsabs=1e-14, epsrel=1e-12, limit=500)
        assert shape.integral(a, b, lo, hi) == pytest.approx(sub, abs=1e-10)


def test_edge_comb_integral_matches_quadrature_and_limits() -> None:
    from signal_models.shapes import comb_density, comb_integral

    for slope, e, w in [(0.4, 0.3, 0.05), (-0.9, -0.5, 0.2), (1.0, 0.99, 0.001), (0.0, 0.0, 0.5)]:
        num, _ = integrate.quad(lambda u, slope=slope, e=e, w=w: comb_density(u, slope, e, w), -1, 1, points=[e], epsabs=1e-14, limit=400)
        assert float(comb_integral(-1.0, 1.0, slope, e, w)) == pytest.approx(num, rel=1e-10, abs=1e-14)
    # far above: exactly the line; far below: nothing left
    assert comb_integral(-1.0, 1.0, 0.3, 50.0, 0.1) == comb_integral(-1.0, 1.0, 0.3)
    assert comb_integral(-1.0, 1.0, 0.3, -50.0, 0.1) == 0.0
    # broadcasts over hypotheses like the plain line
    out = comb_integral(np.array([-1.0, -0.5]), 1.0, np.array([0.2, -0.2]), np.array([0.1, np.inf]), np.array([0.05, 0.0]))
    assert out.shape == (2,) and out[1] == pytest.approx(float(comb_integral(-0.5, 1.0, -0.2)))


def test_edge_far_away_is_the_plain_line_and_sampling_follows_the_edge() -> None:
    plain = _shape()
    far = _shape(comb_edge=7.0, comb_edge_width=0.05)
    x = np.linspace(4.0, 6.0, 1001)
    assert not far.edge_matters(6.0)
    np.testing.assert_array_equal(far.pdf(x, 4.0, 6.0), plain.pdf(x, 4.0, 6.0))
    shape = _shape(comb_fraction=0.6, comb_slope=0.3, comb_edge=5.35, comb_edge_width=0.04)
    draws = shape.sample(100_000, 4.0, 6.0, rng=np.random.default_rng(3))
    grid = np.linspace(4.0, 6.0, 2001)
    cdf = np.array([shape.integral(4.0, g, 4.0, 6.0) for g in grid])
    assert stats.kstest(draws, lambda v: np.interp(v, grid, cdf)).pvalue > 1e-3
    # hardly any wrong pairs beyond the edge
    assert np.mean(draws > 5.35 + 5 * 0.04) < 1e-3


def test_edge_dict_round_trip_and_bad_values() -> None:
    import json

    shape = _shape(comb_edge=5.3, comb_edge_width=0.05)
    assert SignalShape.from_dict(json.loads(json.dumps(shape.to_dict()))) == shape
    # no edge: the dict (and its JSON) is the one of a plain shape
    assert set(_shape().to_dict()) == {"mu", "sigma", "alpha_l", "n_l", "alpha_r", "n_r", "comb_fraction", "comb_slope", "comb_domain"}
    with pytest.raises(ShapeError, match="comb_edge_width"):
        _shape(comb_edge=5.3)
    with pytest.raises(ShapeError, match="non-finite"):
        _shape(comb_edge=float("nan"), comb_edge_width=0.1)
    with pytest.raises(ShapeError, match="vanishes"):
        _shape(comb_edge=4.0, comb_edge_width=0.01).pdf(np.array([5.0]), 4.9, 5.1)

"""zfit signal shape: identical to the numpy SignalShape, to zfit's DoubleCB and to scipy's crystalball."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

zfit = pytest.importorskip("zfit")

# zfit 0.28 copies the data of every ``pdf`` call without a name and warns about the missing name (its own internals)
pytestmark = pytest.mark.filterwarnings("ignore:Name cannot be empty:DeprecationWarning")

from signal_models import ShapeError, SignalShape  # noqa: E402
from signal_models.zfit_shapes import rescale_comb_slope  # noqa: E402


def _shape(**kw: float) -> SignalShape:
    base = dict(mu=5.0, sigma=0.05, alpha_l=1.2, n_l=3.0, alpha_r=1.8, n_r=6.0, comb_fraction=0.2, comb_slope=-0.4)
    base.update(kw)
    return SignalShape(**base)


WINDOWS = [(4.0, 6.0), (4.95, 5.2), (4.9, 4.97), (5.1, 5.8), (4.999, 5.001), (4.2, 5.03)]


@pytest.mark.parametrize("window", WINDOWS)
@pytest.mark.parametrize(
    "params",
    [
        {},
        {"comb_fraction": 0.0},
        {"comb_fraction": 0.7, "comb_slope": 0.9, "n_l": 1.3, "n_r": 45.0},
        {"alpha_l": 0.4, "alpha_r": 3.0, "n_l": 12.0, "n_r": 2.0, "comb_slope": 0.0},
    ],
)
def test_zfit_equals_numpy_on_windows_cutting_tails(window: tuple[float, float], params: dict) -> None:
    shape = _shape(**params)
    lo, hi = window
    pdf = shape.to_zfit(zfit.Space("mgg", lo, hi))
    x = np.concatenate([np.linspace(lo, hi, 997), [shape.mu - shape.alpha_l * shape.sigma, shape.mu + shape.alpha_r * shape.sigma]])
    x = x[(x >= lo) & (x <= hi)]
    np.testing.assert_allclose(pdf.pdf(x).numpy(), shape.pdf(x, lo, hi), rtol=1e-10)
    # and the integrals over sub-ranges agree with the analytic numpy ones
    a, b = lo + 0.3 * (hi - lo), lo + 0.55 * (hi - lo)
    assert float(pdf.integrate((a, b))[0]) == pytest.approx(shape.integral(a, b, lo, hi), rel=1e-10)


def test_components_are_zfit_doublecb_and_chebyshev() -> None:
    shape = _shape()
    sig = shape.to_zfit_signal(zfit.Space("mgg", 4.9, 5.3))
    assert isinstance(sig.dscb, zfit.pdf.DoubleCB)
    assert isinstance(sig.comb, zfit.pdf.Chebyshev)
    assert isinstance(sig.pdf, zfit.pdf.SumPDF)
    assert float(sig.frac_tm) == pytest.approx(0.8)
    assert sig.domain == pytest.approx((4.0, 6.0))
    assert not sig.pdf.get_params(floating=True)


def test_window_on_domain_edge_and_outside() -> None:
    shape = _shape()
    lo, hi = shape.window(20.0)
    x = np.linspace(lo, hi, 301)
    np.testing.assert_allclose(shape.to_zfit(zfit.Space("mgg", lo, hi)).pdf(x).numpy(), shape.pdf(x, lo, hi), rtol=1e-10)
    with pytest.raises(ShapeError, match="domain"):
        shape.to_zfit(zfit.Space("mgg", 3.0, 5.5))
    with pytest.raises(ShapeError, match="zfit.Space"):
        shape.to_zfit((4.0, 5.0))


def test_one_sided_limit_equals_scipy_crystalball() -> None:
    beta, m = 1.4, 2.5
    shape = SignalShape(mu=1.0, sigma=0.1, alpha_l=beta, n_l=m, alpha_r=15.0, n_r=2.0)
    lo, hi = 0.0, 1.6
    x = np.linspace(lo, hi, 301)
    ref = stats.crystalball.pdf(x, beta, m, loc=1.0, scale=0.1)
    ref /= stats.crystalball.cdf(hi, beta, m, loc=1.0, scale=0.1) - stats.crystalball.cdf(lo, beta, m, loc=1.0, scale=0.1)
    np.testing.assert_allclose(shape.to_zfit(zfit.Space("mgg", lo, hi)).pdf(x).numpy(), ref, rtol=1e-10)


def test_floating_parameters_and_read_back() -> None:
    shape = _shape()
    sig = shape.to_zfit_signal(zfit.Space("mgg", 4.6, 5.4), floating=["mu", "sigma", "comb_fraction", "comb_slope"], prefix="t1")
    floating = {p.name for p in sig.pdf.get_params(floating=True)}
    assert floating == {"t1_mu", "t1_sigma", "t1_frac_tm", "t1_comb_slope"}
    assert not sig.params["n_l"].floating
    # values unchanged: still the identical model
    x = np.linspace(4.6, 5.4, 101)
    np.testing.assert_allclose(sig.pdf.pdf(x).numpy(), shape.pdf(x, 4.6, 5.4), rtol=1e-10)
    # move mu/sigma: to_shape re-expresses the slope on the new domain, the density is unchanged
    sig.params["mu"].set_value(5.01)
    sig.params["sigma"].set_value(0.045)
    back = sig.to_shape()
    assert back.mu == pytest.approx(5.01) and back.sigma == pytest.approx(0.045)
    np.testing.assert_allclose(sig.pdf.pdf(x).numpy(), back.pdf(x, 4.6, 5.4), rtol=1e-10)
    with pytest.raises(ShapeError, match="unknown"):
        shape.to_zfit(zfit.Space("mgg", 4.6, 5.4), floating=["nope"])


def test_rescale_comb_slope_same_line() -> None:
    s2 = rescale_comb_slope(0.5, 0.0, 2.0, 1.0, 3.0)
    x = np.linspace(-1, 3, 9)
    f1 = 1 + 0.5 * x / 2.0
    f2 = 1 + s2 * (x - 1.0) / 3.0
    np.testing.assert_allclose(f1 / f2, (f1 / f2)[0], rtol=1e-12)


@pytest.mark.parametrize("window", [(4.0, 6.0), (4.95, 5.2), (4.2, 5.03)])
@pytest.mark.parametrize("edge", [(5.3, 0.05), (5.0, 0.02), (4.97, 0.004)])
def test_zfit_equals_numpy_with_edge(window: tuple[float, float], edge: tuple[float, float]) -> None:
    from signal_models.zfit_shapes import EdgedChebyshev

    e, w = edge
    shape = _shape(comb_edge=e, comb_edge_width=w)
    lo, hi = window
    if e + 9 * w < lo:
        pytest.skip("no wrong pairs left on this window")
    sig = shape.to_zfit_signal(zfit.Space("mgg", lo, hi))
    assert isinstance(sig.comb, EdgedChebyshev) == shape.edge_matters(hi)
    x = np.concatenate([np.linspace(lo, hi, 997), [e]])
    x = x[(x >= lo) & (x <= hi)]
    np.testing.assert_allclose(sig.pdf.pdf(x).numpy(), shape.pdf(x, lo, hi), rtol=1e-10)
    a, b = lo + 0.3 * (hi - lo), lo + 0.55 * (hi - lo)
    assert float(sig.pdf.integrate((a, b))[0]) == pytest.approx(shape.integral(a, b, lo, hi), rel=1e-10, abs=1e-14)
    if window != (4.0, 6.0):
        return
    # floating parameters keep the edge fixed and read it back
    fl = shape.to_zfit_signal(zfit.Space("mgg", lo, hi), floating=["mu", "sigma", "comb_slope"], prefix=f"e{abs(hash((window, edge)))}")
    assert fl.to_shape().comb_edge == e and fl.to_shape().comb_edge_width == w

"""The two engines on identical models: vectorised Newton vs zfit + Minuit, and limits vs hepstats."""

from __future__ import annotations

import numpy as np
import pytest

import fits
from signal_models import SignalShape

zfit = pytest.importorskip("zfit")

SHAPE = SignalShape(mu=2.0, sigma=0.02, alpha_l=1.2, n_l=3.0, alpha_r=1.5, n_r=4.0, comb_fraction=0.2, comb_slope=-0.3)


def _data(rng: np.random.Generator, shape: SignalShape, n_bkg: int, n_sig: int) -> np.ndarray:
    lo, hi = shape.window()
    x = lo + (hi - lo) * rng.power(1.3, n_bkg)
    return np.concatenate([x, shape.sample(n_sig, lo, hi, rng=rng)])


def _compare(x: np.ndarray, shape: SignalShape, window: tuple[float, float], order: int) -> None:
    from fits.zfit_engine import ZfitHypothesis, fit_zfit

    v = fits.fit(x, shape, window, bkg_order=order)
    h = ZfitHypothesis(x, shape, window, bkg_order=order)
    z = fit_zfit(x, shape, window, bkg_order=order, hypothesis=h)
    assert v.converged and z.converged
    # same minimum: NLL in the same convention, yields within 1e-3 of the error
    assert abs(v.nll - z.nll) < 1e-4
    assert abs(v.nsig - z.nsig) < 1e-3 * v.nsig_err
    assert v.nsig_err == pytest.approx(z.nsig_err, rel=1e-3)
    assert v.nbkg == pytest.approx(z.nbkg, abs=1e-3 * np.sqrt(v.nbkg))
    assert v.z_local == pytest.approx(z.z_local, abs=1e-3)
    # zfit's own loss is not lower at the vectorised minimum than at its own (same function)
    h.set_from_beta(z.nsig, z.beta)
    at_z = float(h.loss.value())
    h.set_from_beta(v.nsig, v.beta)
    at_v = float(h.loss.value())
    assert at_v - at_z < 1e-4


def test_engines_agree_on_identical_model(rng: np.random.Generator) -> None:
    x = _data(rng, SHAPE, 3000, 60)
    _compare(x, SHAPE, SHAPE.window(), 3)


@pytest.mark.slow
@pytest.mark.parametrize("order", [1, 2, 4])
def test_engines_agree_other_orders_and_clipped_window(order: int, rng: np.random.Generator) -> None:
    shape = SignalShape(mu=0.5, sigma=0.007, alpha_l=1.0, n_l=2.5, alpha_r=2.0, n_r=6.0, comb_fraction=0.1, comb_slope=0.4)
    x = _data(rng, shape, 5000, 0)
    lo, hi = shape.window()
    _compare(x, shape, (lo + 0.03, hi), order)


@pytest.mark.slow
def test_limits_agree_with_hepstats(rng: np.random.Generator) -> None:
    """Observed and expected asymptotic CLs limits vs hepstats' AsymptoticCalculator (within 3%).

    hepstats builds a binned Asimov set (here 400 bins); the crossing is
    interpolated on its p-value grid.
    """
    from fits.zfit_engine import upper_limit_hepstats

    x = _data(rng, SHAPE, 3000, 30)
    v = fits.upper_limit(x, SHAPE, SHAPE.window())
    h = upper_limit_hepstats(x, SHAPE, SHAPE.window(), poi_values=np.linspace(5, 140, 28))
    assert h.converged
    assert v.observed == pytest.approx(h.observed, rel=0.03)
    np.testing.assert_allclose(v.expected, h.expected, rtol=0.03)

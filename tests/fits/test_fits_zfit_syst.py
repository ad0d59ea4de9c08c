"""Yield systematics in the zfit reference engine (zfit constraint + hepstats) against the vectorised engine."""

from __future__ import annotations

import numpy as np
import pytest

import fits
from signal_models import SignalShape

zfit = pytest.importorskip("zfit")

SHAPE = SignalShape(mu=2.0, sigma=0.02, alpha_l=1.2, n_l=3.0, alpha_r=1.5, n_r=4.0, comb_fraction=0.2, comb_slope=-0.3)


def _data(rng: np.random.Generator, n_bkg: int, n_sig: int) -> np.ndarray:
    lo, hi = SHAPE.window()
    x = lo + (hi - lo) * rng.power(1.3, n_bkg)
    return np.concatenate([x, SHAPE.sample(n_sig, lo, hi, rng=rng)])


@pytest.mark.slow
@pytest.mark.parametrize(("kind", "rel"), [("lognormal", 0.3), ("gaussian", 0.2)])
def test_cross_section_limit_with_yield_systematic_agrees_with_vectorised(kind: str, rel: float, rng: np.random.Generator) -> None:
    """Observed and expected CLs limits on the cross-section with a constrained yield
    uncertainty: zfit (GaussianConstraint on the nuisance, hepstats) and the vectorised engine
    (compiled constrained Newton fits) agree within 3% (hepstats' binned Asimov set and its
    POI-grid interpolation), and the systematic raises the limit by more than that.

    (A Gaussian yield model lets the yield reach 0 at ``u = -1/rel``, which caps q_A at
    ``1/rel^2``: with 30% the +2 sigma expected limit does not exist, hence 20% there.)"""
    from fits.zfit_engine import upper_limit_hepstats

    x = _data(rng, 3000, 40)
    window = SHAPE.window()
    scale = 2.5  # events per pb
    v = fits.upper_limit(x, SHAPE, window, signal_scale=scale, rel_unc=rel, syst_kind=kind)
    v0 = fits.upper_limit(x, SHAPE, window, signal_scale=scale)
    h = upper_limit_hepstats(x, SHAPE, window, signal_scale=scale, rel_unc=rel, syst_kind=kind, poi_values=np.linspace(2.0, 70.0, 35))
    assert v.converged and h.converged and h.poi == "xsec"
    assert v.observed == pytest.approx(h.observed, rel=0.03)
    np.testing.assert_allclose(v.expected, h.expected, rtol=0.03)
    assert v.observed > 1.06 * v0.observed and h.observed > 1.06 * v0.observed


def test_zfit_table_with_systematics_needs_a_scale(rng: np.random.Generator) -> None:
    from fits.zfit_engine import evaluate_hypotheses_zfit

    x = _data(rng, 500, 0)
    with pytest.raises(ValueError, match="signal_scale"):
        evaluate_hypotheses_zfit(np.sort(x), [SHAPE], np.array([SHAPE.window()]), signal_scale_rel_unc=np.array([0.1]))


def test_api_passes_the_systematic_to_the_zfit_engine(rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch) -> None:
    import fits.zfit_engine as ze

    seen = {}

    def fake(x, shape, window, **kw):  # noqa: ANN001, ANN003, ANN202
        seen.update(kw)
        return "result"

    monkeypatch.setattr(ze, "upper_limit_hepstats", fake)
    x = _data(rng, 500, 0)
    out = fits.upper_limit(x, SHAPE, SHAPE.window(), engine="zfit", signal_scale=2.5, rel_unc=0.1, syst_kind="gaussian")
    assert out == "result"
    assert seen["signal_scale"] == 2.5 and seen["rel_unc"] == 0.1 and seen["syst_kind"] == "gaussian"
    with pytest.raises(fits.FitInputError, match="resolution_unc"):
        fits.upper_limit(x, SHAPE, SHAPE.window(), engine="zfit", resolution_unc=0.05)

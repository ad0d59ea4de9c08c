"""The zfit + hepstats reference engine of combined fits (``fits.zfit_combined``) against the vectorised engine.

The toy channels are those of ``test_combined.py``: two datasets of the same
signal shape with different backgrounds and signal scales, sharing ``mu``.
"""

from __future__ import annotations

import numpy as np
import pytest

import fits
from fits.channels import CombinedModel
from fits.zfit_combined import pooled_roots
from scans.testing import analytic_signal_model, sample_signal, toy_spectrum

MODEL = analytic_signal_model()
SHAPE = MODEL.shape(1.5)
WINDOW = SHAPE.window(20.0)

SHAPES = (fits.ShapeUncertainty("res", "resolution", 0.1), fits.ShapeUncertainty("peak", "shift", 0.004, channels=("run2",)))
YIELDS = (fits.YieldUncertainty("lumi", 0.1), fits.YieldUncertainty("eff2", {"run2": 0.2}, kind="gaussian"))


def _data(n_bkg: int, n_sig: int, seed: int, slope: float = 0.5) -> np.ndarray:
    lo, hi = WINDOW
    return np.r_[toy_spectrum(n_bkg, lo=0.1, hi=4.0, slope=slope, seed=seed), sample_signal(SHAPE, n_sig, lo=lo, hi=hi, seed=seed + 100)]


@pytest.fixture(scope="module")
def channels() -> list[fits.Channel]:
    return [fits.Channel(_data(20000, 60, 3), SHAPE, signal_scale=2.0, name="run1"),
            fits.Channel(_data(8000, 25, 5, slope=0.3), SHAPE, signal_scale=1.0, name="run2")]


@pytest.fixture(scope="module")
def shape_model(channels):
    """The zfit model of case (c), built (and traced) once for the tests that use it."""
    pytest.importorskip("zfit")
    from fits.zfit_combined import ZfitCombined

    model = CombinedModel.build(channels, shapes=SHAPES)
    return model, ZfitCombined(model)


def _assert_same_fit(v: fits.CombinedFitResult, z: fits.CombinedFitResult) -> None:
    assert v.converged and z.converged and z.engine == "zfit"
    assert z.nsig == pytest.approx(v.nsig, abs=2e-3 * v.nsig_err)
    assert z.nsig_err == pytest.approx(v.nsig_err, rel=2e-3)
    assert z.nll == pytest.approx(v.nll, abs=1e-4)
    assert z.nll_bkg_only == pytest.approx(v.nll_bkg_only, abs=1e-4)
    assert z.z_local == pytest.approx(v.z_local, abs=1e-3)
    assert z.nbkg == pytest.approx(v.nbkg, rel=1e-4)
    for name in v.channels:
        assert z.channel_nsig[name] == pytest.approx(v.channel_nsig[name], abs=4e-3 * v.nsig_err)  # scales up to 2
        assert z.channel_nbkg[name] == pytest.approx(v.channel_nbkg[name], rel=1e-4)
    assert set(z.nuisances) == set(v.nuisances)
    for name, (val, err) in v.nuisances.items():
        assert z.nuisances[name][0] == pytest.approx(val, abs=2e-3)
        assert z.nuisances[name][1] == pytest.approx(err, rel=2e-3)


def _assert_same_limits(v: fits.LimitResult, z: fits.LimitResult, *, rel: float) -> None:
    assert v.converged and z.converged
    assert z.poi == "mu" and "hepstats" in z.method
    assert z.observed == pytest.approx(v.observed, rel=rel)
    np.testing.assert_allclose(z.expected, v.expected, rtol=rel)


def test_two_channels_fit_and_limits_agree_with_the_vectorised_engine(channels) -> None:
    """(a) mu shared, no nuisances: the same minimum (mu, error, NLL in the project's convention) and limits."""
    pytest.importorskip("zfit")
    pytest.importorskip("hepstats")
    from fits.zfit_combined import upper_limit_channels_hepstats

    z = upper_limit_channels_hepstats(CombinedModel.build(channels))
    _assert_same_fit(fits.fit(channels), z.fit)
    # measured agreement ~1e-4 (the root tolerance); the project's target is 1%
    _assert_same_limits(fits.upper_limit(channels), z, rel=3e-3)
    assert np.all(np.diff(z.expected) > 0) and z.details["asimov"] == "unbinned"


def test_shape_interpolation_in_zfit_is_the_projects(shape_model) -> None:
    """The zfit signal of each channel is ``CombinedModel.interpolated_pdf`` at any nu, normalised on the window."""
    model, zc = shape_model
    rng = np.random.default_rng(7)
    try:
        for nu in ([0.0, 0.0], [1.0, -1.0], [-0.7, 1.6]):
            for p, v in zip(zc.nuisances, nu):
                p.set_value(v)
            for c, ch in enumerate(model.channels):
                lo, hi = ch.window
                x = np.sort(rng.uniform(lo, hi, 200))
                got = np.asarray(zc.signals[c].pdf(x))
                np.testing.assert_allclose(got, model.interpolated_pdf(c, x, np.array(nu)), rtol=1e-8, atol=1e-10)
                assert float(zc.signals[c].integrate((lo, hi))[0]) == pytest.approx(1.0, abs=1e-9)
    finally:
        zc.reset()


def test_shape_nuisances_fit_agrees_with_the_vectorised_engine(channels, shape_model) -> None:
    """(c) shared resolution and a peak shift in one channel: mu, the fitted nuisances and the NLL agree."""
    from fits.zfit_combined import fit_channels_zfit

    model, zc = shape_model
    z = fit_channels_zfit(model, hypothesis=zc)
    v = fits.fit(channels, shape_uncertainties=SHAPES)
    _assert_same_fit(v, z)
    assert abs(v.nuisances["res"][0]) > 0.05  # the data pull the nuisances: a real test of the interpolation


@pytest.mark.slow
def test_shape_nuisances_limits_agree_with_the_vectorised_engine(channels, shape_model) -> None:
    """(c) limits with the shape nuisances profiled: within the project's 1% target (measured ~1e-4)."""
    pytest.importorskip("hepstats")
    from fits.zfit_combined import upper_limit_channels_hepstats

    model, zc = shape_model
    z = upper_limit_channels_hepstats(model, hypothesis=zc)
    _assert_same_limits(fits.upper_limit(channels, shape_uncertainties=SHAPES), z, rel=3e-3)


@pytest.mark.slow
def test_yield_nuisances_limits_agree_with_the_vectorised_engine(channels) -> None:
    """(b) a shared log-normal luminosity and a Gaussian efficiency of one channel: fit and limits agree."""
    pytest.importorskip("zfit")
    pytest.importorskip("hepstats")

    z = fits.upper_limit(channels, yield_uncertainties=YIELDS, engine="zfit")
    _assert_same_fit(fits.fit(channels, yield_uncertainties=YIELDS), z.fit)
    _assert_same_limits(fits.upper_limit(channels, yield_uncertainties=YIELDS), z, rel=3e-3)


@pytest.mark.slow
def test_spurious_signal_limits_agree_with_the_vectorised_engine(channels) -> None:
    """A spurious-signal nuisance is fitted away from 0 at mu = 0: the Asimov constraints are centred there in both engines."""
    pytest.importorskip("zfit")
    pytest.importorskip("hepstats")
    from fits.combined import CombinedBatch
    from fits.combined_rows import CombinedRequest

    spur = [fits.SpuriousSignal("spur", {"run1": 8.0, "run2": 4.0})]
    batch = CombinedBatch(CombinedRequest.from_model(CombinedModel.build(channels, spurious=spur)))
    assert abs(batch.fit().zero.shared[0, 1]) > 0.1  # theta at mu = 0: where the Asimov set is generated
    v = fits.upper_limit(channels, spurious_signals=spur)
    z = fits.upper_limit(channels, spurious_signals=spur, engine="zfit")
    _assert_same_fit(v.fit, z.fit)
    _assert_same_limits(v, z, rel=3e-3)


def test_any_channel_and_nuisance_names_build(channels) -> None:
    """Names with spaces and brackets become valid zfit names; the loss is finite at the start values."""
    pytest.importorskip("zfit")
    from fits.zfit_combined import ZfitCombined

    ch = fits.Channel(channels[1].mgg, SHAPE, name="run 2 (2019)")
    zc = ZfitCombined(CombinedModel.build([ch], yields=[fits.YieldUncertainty("lumi 2019/20", 0.1)], shapes=[SHAPES[0]]))
    zc.reset()
    assert np.isfinite(zc.nll_numpy()) and np.isfinite(float(zc.loss.value()))


def test_channel_without_candidates_is_refused_by_the_zfit_engine(channels) -> None:
    empty = fits.Channel(np.array([0.1, 0.2, 3.9]), SHAPE, WINDOW, name="empty")
    pytest.importorskip("zfit")
    with pytest.raises(fits.FitInputError, match="'empty'.*no candidates"):
        fits.fit([*channels, empty], engine="zfit")


def test_pooled_roots_finds_every_root_of_curves_computed_together() -> None:
    """Decreasing curves ``g_i(x) = a_i - sqrt(x) - x / s``: roots to the tolerance, few evaluations, all found."""
    a = np.array([0.5, 1.0, 2.0, 3.0, 4.0])
    s = 7.0
    calls = []

    def g_of(x: float, i: int) -> np.ndarray:
        calls.append(x)
        return a - np.sqrt(x) - x / s

    roots, done = pooled_roots(g_of, np.full(5, 1.0), s, htol=1e-9)
    assert done.all()
    exact = (s * (-1.0 + np.sqrt(1.0 + 4.0 * a / s)) / 2.0) ** 2  # sqrt(x) = t: t^2 / s + t - a = 0
    np.testing.assert_allclose(roots, exact, rtol=1e-7)
    assert len(calls) < 40

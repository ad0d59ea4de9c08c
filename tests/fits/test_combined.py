"""Combined fits of several channels sharing one parameter of interest, with yield and shape nuisances."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy.optimize import minimize

import fits
from fits.channels import CombinedModel
from fits.combined import CombinedBatch
from fits.combined_rows import CombinedRequest, data_rows
from scans.testing import analytic_signal_model, sample_signal, toy_spectrum

MODEL = analytic_signal_model()
SHAPE = MODEL.shape(1.5)
WINDOW = SHAPE.window(20.0)


def _data(n_bkg: int, n_sig: int, seed: int, slope: float = 0.5) -> np.ndarray:
    lo, hi = WINDOW
    return np.r_[toy_spectrum(n_bkg, lo=0.1, hi=4.0, slope=slope, seed=seed), sample_signal(SHAPE, n_sig, lo=lo, hi=hi, seed=seed + 100)]


@pytest.fixture(scope="module")
def two_channels():
    return [fits.Channel(_data(20000, 60, 3), SHAPE, signal_scale=2.0, name="run1"),
            fits.Channel(_data(8000, 25, 5, slope=0.3), SHAPE, signal_scale=1.0, name="run2")]


def test_one_channel_equals_the_single_dataset_engine() -> None:
    x = _data(20000, 60, 3)
    single_fit = fits.fit(x, SHAPE, WINDOW)
    single = fits.upper_limit(x, SHAPE, WINDOW)
    combined = fits.upper_limit([fits.Channel(x, SHAPE, WINDOW)])
    assert combined.fit.nll == pytest.approx(single_fit.nll, abs=1e-6)
    assert combined.fit.nsig == pytest.approx(single_fit.nsig, abs=1e-3 * single_fit.nsig_err)
    assert combined.fit.nsig_err == pytest.approx(single_fit.nsig_err, rel=1e-4)
    assert combined.observed == pytest.approx(single.observed, rel=1e-5)
    np.testing.assert_allclose(combined.expected, single.expected, rtol=1e-5)


def _numpy_nll(p: np.ndarray, channels, scales, shape_sets, order: int = 3) -> float:
    """The combined NLL written out independently: mu, nu (resolution), backgrounds of two channels."""
    mu, nu = p[0], p[1]
    total = 0.5 * nu * nu
    for c, ch in enumerate(channels):
        lo, hi = ch.window
        x = ch.mgg[(ch.mgg >= lo) & (ch.mgg <= hi)]
        full, p0, pp, pm = (s.pdf(x, lo, hi) for s in shape_sets[c])
        f = ch.shape.comb_fraction
        s = full + (1 - f) * (nu * 0.5 * (pp - pm) + nu * nu * (0.5 * (pp + pm) - p0))
        beta = p[2 + c * (order + 1): 2 + (c + 1) * (order + 1)]
        xp = 2 * (x - lo) / (hi - lo) - 1
        lam = mu * scales[c] * s + np.polynomial.chebyshev.chebval(xp, beta)
        if np.any(lam <= 0):
            return 1e300
        integ = sum(beta[m] * np.diff(np.polynomial.chebyshev.chebval([-1, 1], np.polynomial.chebyshev.chebint(np.eye(order + 1)[m]))).item()
                    for m in range(order + 1)) * (hi - lo) / 2
        total += mu * scales[c] + integ - np.sum(np.log(lam))
    return total


def test_two_channel_fit_is_the_minimum_of_the_written_out_likelihood(two_channels) -> None:
    res = fits.ShapeUncertainty("res", "resolution", 0.1)
    got = fits.fit(two_channels, shape_uncertainties=[res])
    model = CombinedModel.build(two_channels, shapes=[res])
    batch = CombinedBatch(CombinedRequest.from_model(model))
    batch.fit()
    sets = [[ch.shape, model.peak_shape(c), model.peak_shape(c, 0, +1), model.peak_shape(c, 0, -1)] for c, ch in enumerate(two_channels)]
    scales = [ch.signal_scale for ch in two_channels]
    p_hat = np.r_[batch.fit_.hat.shared[0], batch.fit_.hat.beta[0].ravel()]
    f_hat = _numpy_nll(p_hat, two_channels, scales, sets)
    assert f_hat == pytest.approx(got.nll, abs=1e-6)
    # an independent minimiser from the engine's point finds nothing lower
    scipy_min = minimize(_numpy_nll, p_hat * (1 + 1e-3), args=(two_channels, scales, sets), method="Nelder-Mead",
                         options={"maxiter": 20000, "xatol": 1e-9, "fatol": 1e-10})
    assert scipy_min.fun >= got.nll - 1e-6
    # the error of mu from the curvature of the profile: q(mu_hat +- err) ~ 1
    cond = batch.conditional(np.array([got.nsig + got.nsig_err]), batch.fit_.hat)
    assert 2 * (cond.nll[0] - got.nll) == pytest.approx(1.0, abs=0.05)


def test_shape_interpolation_is_exact_at_plus_minus_one_sigma(two_channels) -> None:
    shapes = [fits.ShapeUncertainty("res", "resolution", 0.1), fits.ShapeUncertainty("peak", "shift", 0.002, channels=("run2",))]
    model = CombinedModel.build(two_channels, shapes=shapes)
    rows = data_rows(CombinedRequest.from_model(model))
    for c, ch in enumerate(two_channels):
        lo, hi = ch.window
        x = ch.mgg[(ch.mgg >= lo) & (ch.mgg <= hi)]
        n = len(x)
        f = ch.shape.comb_fraction
        for j in range(2):
            for sign in (+1.0, -1.0):
                s = rows.s0[c, :n] + sign * rows.dA[c, j, :n] + rows.dB[c, j, :n]
                # at +-1 sigma: the peak moved, the wrong pairs as they were
                moved = (1 - f) * model.peak_shape(c, j, sign).pdf(x, lo, hi) + f * dataclasses.replace(
                    ch.shape, comb_fraction=1.0).pdf(x, lo, hi) if f > 0 else model.peak_shape(c, j, sign).pdf(x, lo, hi)
                np.testing.assert_allclose(s, moved, rtol=1e-9, atol=1e-12)
                np.testing.assert_allclose(s, model.interpolated_pdf(c, x, np.eye(2)[j] * sign), rtol=1e-9, atol=1e-12)
    assert not np.any(rows.dA[0, 1]) and np.any(rows.dA[1, 1])  # the peak shift acts on run2 only


def test_yield_uncertainties_correlated_and_not(two_channels) -> None:
    """One shared luminosity nuisance or one efficiency nuisance per channel: both weaken the limit, profiled."""
    base = fits.upper_limit(two_channels)
    lumi = fits.upper_limit(two_channels, yield_uncertainties=[fits.YieldUncertainty("lumi", 0.2)])
    effs = fits.upper_limit(two_channels, yield_uncertainties=[fits.YieldUncertainty("eff1", {"run1": 0.2}),
                                                               fits.YieldUncertainty("eff2", {"run2": 0.2})])
    assert lumi.expected[2] > base.expected[2] and effs.expected[2] > base.expected[2]
    # independent uncertainties partly average out: the correlated one weakens the limit more
    assert lumi.expected[2] > effs.expected[2]
    assert set(lumi.fit.nuisances) == {"lumi"} and set(effs.fit.nuisances) == {"eff1", "eff2"}


def test_channel_without_candidates_is_flagged_and_the_others_fit(two_channels) -> None:
    lo, hi = WINDOW
    empty = fits.Channel(np.array([0.1, 0.2, 3.9]), SHAPE, WINDOW, signal_scale=1.0, name="empty")
    assert empty.n_events == 0
    res = fits.fit([*two_channels, empty])
    assert res.converged and "empty" in res.reason and res.channel_nbkg["empty"] == 0.0
    # the empty channel still constrains mu through its expected signal (N = mu, none seen)
    alone = fits.fit(two_channels)
    assert res.nsig < alone.nsig


@pytest.mark.parametrize("make, message", [
    (lambda ch: fits.fit(ch, shape_uncertainties=[fits.ShapeUncertainty("r", "resolution", -0.1)]), "nuisance 'r': width must be finite and > 0"),
    (lambda ch: fits.fit(ch, shape_uncertainties=[fits.ShapeUncertainty("r", "resolution", 0.1, channels=("run3",))]), "unknown channel name"),
    (lambda ch: fits.fit(ch, yield_uncertainties=[fits.YieldUncertainty("l", {"runX": 0.1})]), "nuisance 'l': rel_unc: unknown channel"),
    (lambda ch: fits.fit(ch, yield_uncertainties=[fits.YieldUncertainty("l", 0.1), fits.YieldUncertainty("l", 0.2)]), "name 'l' is used twice"),
    (lambda ch: fits.fit([ch[0], fits.Channel(ch[1].mgg, SHAPE, name="run1")]), "names must be unique"),
    (lambda ch: fits.Channel(ch[0].mgg, SHAPE, signal_scale=0.0, name="zero"), "channel 'zero': signal_scale must be finite and > 0"),
    (lambda ch: fits.fit(ch, yield_uncertainties=[fits.YieldUncertainty("g", 1.5, kind="gaussian")]), "below 1"),
])
def test_bad_input_names_the_channel_key_and_value(two_channels, make, message) -> None:
    with pytest.raises(fits.FitInputError, match=message):
        make(two_channels)

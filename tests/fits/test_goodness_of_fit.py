"""Goodness of fit of scan hypotheses: binned Baker-Cousins chi2, Anderson-Darling with toys, combined fits, plot."""

from __future__ import annotations

import dataclasses
import json
import os

import numpy as np
import pytest
from scipy.integrate import cumulative_trapezoid
from scipy.stats import chi2, kstest

import fits
from fits.channels import CombinedModel
from fits.combined import CombinedBatch
from fits.combined_rows import CombinedRequest
from fits.errors import FitInputError
from fits.goodness_of_fit import anderson_darling, baker_cousins, gof_combined, gof_from_table, gof_pvalues, n_bins_rule, plot_gof_pvalues
from fits.toys import generate_toys
from signal_models import SignalShape

SHAPE = SignalShape(mu=3.0, sigma=0.03, alpha_l=1.2, n_l=3.0, alpha_r=1.6, n_r=5.0, comb_fraction=0.15, comb_slope=-0.2)
WINDOW = SHAPE.window()
W = WINDOW[1] - WINDOW[0]
#: falling, curved cubic background (events/GeV of T_m(x')), ~2000 events in the window
BETA = np.array([2000.0, -450.0, 60.0, -10.0]) / W
#: a steeper, more curved one, ~3000 events
STEEP = np.array([3000.0, -1200.0, 300.0, -50.0]) / W
#: datasets side by side: dataset i and its hypothesis moved by i * STEP GeV
STEP = 2.0


def _side_by_side(datasets: list[np.ndarray], shape: SignalShape = SHAPE, window: tuple[float, float] = WINDOW):
    """Independent data sets as the windows of one spectrum (the fits see positions relative to the window only)."""
    x = np.concatenate([d + STEP * i for i, d in enumerate(datasets)])
    shapes = [dataclasses.replace(shape, mu=shape.mu + STEP * i) for i in range(len(datasets))]
    windows = np.array([[window[0] + STEP * i, window[1] + STEP * i] for i in range(len(datasets))])
    return x, shapes, windows


def _report(name: str, values: dict) -> None:
    path = os.environ.get("BUMPHUNT_TOY_REPORT")
    if path:
        with open(path, "a") as f:
            f.write(json.dumps({name: values}) + "\n")


def test_baker_cousins_by_hand() -> None:
    n, nu = np.array([3.0, 0.0, 5.0]), np.array([4.0, 1.0, 4.0])
    by_hand = 2 * ((4 - 3 + 3 * np.log(3 / 4)) + (1 - 0) + (4 - 5 + 5 * np.log(5 / 4)))
    assert baker_cousins(n, nu) == pytest.approx(by_hand, rel=1e-14)
    assert baker_cousins(nu, nu) == 0.0
    np.testing.assert_allclose(baker_cousins(np.stack([n, nu]), np.stack([nu, nu])), [by_hand, 0.0])


def test_binned_and_anderson_darling_statistics_by_hand_on_a_flat_model() -> None:
    """Order 0, no signal: F(x) = (x - lo) / (hi - lo); 4 bins of 3 expected events each."""
    shape = SignalShape(mu=1.5, sigma=0.01, alpha_l=1.0, n_l=3.0, alpha_r=1.0, n_r=3.0)
    lo, hi = 1.0, 2.0
    u = np.array([0.05, 0.1, 0.2, 0.21, 0.22, 0.3, 0.45, 0.6, 0.62, 0.7, 0.8, 0.99])
    x = lo + u * (hi - lo)
    beta = np.array([[len(x) / (hi - lo)]])  # 12 expected events
    res = gof_pvalues(x, [shape], [[lo, hi]], [0.0], beta, n_bins=4)
    counts = np.array([5, 2, 3, 2])  # u in [0, .25), [.25, .5), [.5, .75), [.75, 1]
    by_hand = 2 * np.sum(3.0 - counts + counts * np.log(counts / 3.0))
    assert res.ok[0] and res.reason == ("",)
    assert res.statistic[0] == pytest.approx(by_hand, rel=1e-9)
    assert res.ndf[0] == 4 - 2 and res.n_bins[0] == 4 and res.n_events[0] == 12
    assert res.pvalue[0] == pytest.approx(chi2.sf(by_hand, 2), rel=1e-9)
    assert (res.method, res.calibration, res.n_toys[0]) == ("binned", "asymptotic", 0)
    # A^2 = -n - (1/n) sum_i (2i - 1) [ln u_(i) + ln(1 - u_(n+1-i))]
    i = np.arange(1, 13)
    a2 = -12 - np.sum((2 * i - 1) * (np.log(u) + np.log(1 - u[::-1]))) / 12
    assert anderson_darling(u[::-1]) == pytest.approx(a2, rel=1e-12)
    ad = gof_pvalues(x, [shape], [[lo, hi]], [0.0], beta, method="anderson-darling", toys=20, seed=3)
    assert ad.statistic[0] == pytest.approx(a2, rel=1e-7)  # the model's CDF at the events
    assert (ad.calibration, ad.ndf[0], ad.n_bins[0]) == ("toys", 0, 0) and 0.0 <= ad.pvalue[0] <= 1.0


def test_bin_rule() -> None:
    np.testing.assert_array_equal(n_bins_rule([0, 30, 99, 200, 2000, 10**6], 5), [6, 6, 9, 20, 50, 50])
    np.testing.assert_array_equal(n_bins_rule([30, 200], 2), [5, 20])
    np.testing.assert_array_equal(n_bins_rule([2000], 5, events_per_bin=20, max_bins=80), [80])


@pytest.fixture(scope="module")
def curved():
    """Three independent data sets of the steep spectrum (one with a signal), fitted with order 3 and order 0."""
    data = generate_toys(SHAPE, WINDOW, nsig=0.0, beta=STEEP, n_toys=2, seed=202)
    data += generate_toys(SHAPE, WINDOW, nsig=100.0, beta=STEEP, n_toys=1, seed=203)
    x, shapes, windows = _side_by_side(data)
    tables = {order: fits.evaluate_hypotheses(x, shapes, windows, bkg_order=order, limits=False, expected=False) for order in (3, 0)}
    return x, shapes, windows, tables


@pytest.mark.parametrize("method, toys", [("binned", 0), ("binned", 40), ("anderson-darling", 40)])
def test_correct_model_passes_and_wrong_background_order_fails(curved, method: str, toys: int) -> None:
    x, shapes, windows, tables = curved
    good = gof_from_table(x, shapes, windows, tables[3], method=method, toys=toys, seed=5)
    bad = gof_from_table(x, shapes, windows, tables[0], method=method, toys=toys, seed=5)
    assert good.ok.all() and bad.ok.all()
    assert np.all(good.pvalue > 0.01), good.pvalue
    assert np.all(bad.pvalue < 0.01), bad.pvalue
    assert good.calibration == ("toys" if toys else "asymptotic")
    if toys:
        np.testing.assert_array_equal(good.n_toys, toys)
    else:
        np.testing.assert_array_equal(good.ndf, 50 - 5)
        np.testing.assert_array_equal(bad.ndf, 50 - 2)
    np.testing.assert_array_equal(bad.flagged(0.01), [0, 1, 2])


def test_toy_pvalues_are_in_range_and_deterministic_for_a_seed(curved) -> None:
    x, shapes, windows, tables = curved
    one = gof_from_table(x, shapes, windows, tables[3], method="anderson-darling", toys=25, seed=7)
    two = gof_from_table(x, shapes, windows, tables[3], method="anderson-darling", toys=25, seed=7)
    other = gof_from_table(x, shapes, windows, tables[3], method="anderson-darling", toys=25, seed=9)
    assert np.all((one.pvalue >= 0) & (one.pvalue <= 1))
    np.testing.assert_array_equal(one.pvalue, two.pvalue)
    np.testing.assert_array_equal(one.statistic, other.statistic)  # the data's A^2 does not depend on the toys
    assert not np.array_equal(one.pvalue, other.pvalue)
    # the same hypotheses given as arrays (ShapeArrays, nsig, beta) give the same numbers
    again = gof_pvalues(x, fits.densities.ShapeArrays.from_shapes(shapes), windows, tables[3].nsig, tables[3].beta,
                        method="anderson-darling", toys=25, seed=7)
    np.testing.assert_array_equal(again.pvalue, one.pvalue)


def test_hypotheses_that_cannot_be_tested_are_flagged_not_silent_nan(curved) -> None:
    x, shapes, windows, tables = curved
    sparse = np.vstack([windows, [[windows[0, 0], windows[0, 0] + 0.002]]])  # a window with a handful of events
    sh = [*shapes, dataclasses.replace(shapes[0], mu=windows[0, 0] + 0.001)]
    table = fits.evaluate_hypotheses(x, sh, sparse, limits=False, expected=False)
    beta = table.beta.copy()
    beta[1] = [-100.0, 0.0, 0.0, 0.0]  # negative everywhere
    for method in ("binned", "anderson-darling"):
        res = gof_pvalues(x, sh, sparse, table.nsig, beta, method=method, toys=10, valid=table.converged)
        assert list(res.ok) == [True, False, True, False]
        assert np.all(np.isfinite(res.pvalue[res.ok])) and np.all(np.isnan(res.pvalue[~res.ok]))
        assert "negative" in res.reason[1] or "no expected events" in res.reason[1]
        assert res.reason[3] == "fit flagged"
    res = gof_from_table(x, sh, sparse, table)
    assert res.reason[3].startswith("fit flagged: ") and "fewer than" in res.reason[3]


def test_a_density_negative_around_the_peak_is_clipped() -> None:
    """A negative signal yield leaves lambda < 0 around the peak (no events there): the CDF is that of max(lambda, 0)."""
    shape = SignalShape(mu=1.5, sigma=0.01, alpha_l=1.5, n_l=3.0, alpha_r=1.5, n_r=3.0)
    lo, hi = 1.0, 2.0
    rng = np.random.default_rng(4)
    x = np.sort(np.r_[rng.uniform(lo, 1.45, 100), rng.uniform(1.55, hi, 100)])
    beta = np.array([[200.0, 30.0]])  # a slope, 200 events
    nsig = np.array([-6.0])  # -6 * 40 / GeV at the peak: lambda < 0 over about +-1.3 sigma
    res = gof_pvalues(x, [shape], [[lo, hi]], nsig, beta, method="anderson-darling", toys=20, seed=1)
    assert res.ok[0] and res.clipped[0] and 0.0 <= res.pvalue[0] <= 1.0
    g = np.linspace(lo, hi, 2_000_001)
    lam = np.maximum(nsig[0] * shape.pdf(g, lo, hi) + np.polynomial.chebyshev.chebval(2 * (g - lo) / (hi - lo) - 1, beta[0]), 0.0)
    cdf = cumulative_trapezoid(lam, g, initial=0.0)
    assert res.statistic[0] == pytest.approx(anderson_darling(np.interp(x, g, cdf) / cdf[-1]), rel=1e-4)
    binned = gof_pvalues(x, [shape], [[lo, hi]], nsig, beta, n_bins=10)
    assert binned.clipped[0] and binned.n_bins[0] == 10 and np.isfinite(binned.pvalue[0])
    assert not gof_pvalues(x, [shape], [[lo, hi]], [0.0], beta).clipped[0]


@pytest.mark.parametrize("kwargs, message", [
    ({"method": "chi2"}, "method: expected one of"),
    ({"method": "anderson-darling", "toys": 0}, "needs toys"),
    ({"toys": -1}, "non-negative integer"),
    ({"n_bins": 5}, "more bins than free parameters"),
    ({"bkg_order": 2}, "expected 3 background coefficients"),
])
def test_bad_options_raise(curved, kwargs: dict, message: str) -> None:
    x, shapes, windows, tables = curved
    with pytest.raises(FitInputError, match=message):
        gof_pvalues(x, shapes, windows, tables[3].nsig, tables[3].beta, **kwargs)


def test_combined_one_channel_equals_the_single_dataset_test() -> None:
    x = generate_toys(SHAPE, WINDOW, nsig=50.0, beta=BETA, n_toys=1, seed=11)[0]
    batch = CombinedBatch(CombinedRequest.from_model(CombinedModel.build([fits.Channel(x, SHAPE, WINDOW, name="a")])))
    batch.fit()
    comb = gof_combined(batch)
    table = fits.evaluate_hypotheses(x, [SHAPE], [WINDOW], limits=False, expected=False)
    single = gof_from_table(x, [SHAPE], [WINDOW], table)
    assert comb.ok[0] and comb.ndf[0] == single.ndf[0] == 45
    assert comb.statistic[0] == pytest.approx(single.statistic[0], rel=1e-6)
    assert comb.pvalue[0] == pytest.approx(single.pvalue[0], rel=1e-5)


def test_combined_with_shape_nuisances_uses_the_interpolated_template() -> None:
    """Two channels, resolution and peak-shift nuisances: each channel's chi2 from the written-out fitted CDF."""
    x1, x2 = generate_toys(SHAPE, WINDOW, nsig=60.0, beta=BETA, n_toys=2, seed=13)
    shapes = [fits.ShapeUncertainty("res", "resolution", 0.1), fits.ShapeUncertainty("peak", "shift", 0.01)]
    model = CombinedModel.build([fits.Channel(x1, SHAPE, WINDOW, signal_scale=2.0, name="a"), fits.Channel(x2, SHAPE, WINDOW, name="b")],
                                shapes=shapes, yields=[fits.YieldUncertainty("lumi", 0.1)])
    batch = CombinedBatch(CombinedRequest.from_model(model))
    fit = batch.fit()
    nu = fit.hat.shared[0, 2:]
    assert np.all(np.abs(nu) > 1e-3)  # the test means something only away from the nominal template
    res = gof_combined(batch)
    lo, hi = WINDOW
    g = np.linspace(lo, hi, 400001)
    for c, x in enumerate((x1, x2)):
        lam = fit.channel_yields[0, c] * model.interpolated_pdf(c, g, nu) + np.polynomial.chebyshev.chebval(2 * (g - lo) / W - 1, fit.hat.beta[0, c])
        cdf = cumulative_trapezoid(lam, g, initial=0.0)
        u = np.interp(x, g, cdf) / cdf[-1]
        counts = np.bincount(np.minimum((u * 50).astype(int), 49), minlength=50)
        assert res.channel_statistic[0, c] == pytest.approx(baker_cousins(counts, np.full(50, cdf[-1] / 50)), rel=1e-6)
    assert res.ndf[0] == 100 - 1 - 8 and res.n_bins[0] == 100 and res.n_events[0] == len(x1) + len(x2)
    assert res.pvalue[0] == pytest.approx(chi2.sf(res.statistic[0], 91), rel=1e-12)


def test_combined_needs_a_fit() -> None:
    batch = CombinedBatch(CombinedRequest.from_model(CombinedModel.build([fits.Channel(np.array([2.5, 3.0, 3.1]), SHAPE, WINDOW)])))
    with pytest.raises(FitInputError, match="call batch.fit"):
        gof_combined(batch)


def test_plot_of_the_pvalue_distribution(curved, tmp_path) -> None:
    x, shapes, windows, tables = curved
    res = gof_from_table(x, shapes, windows, tables[3])
    path = plot_gof_pvalues(res, path=tmp_path / "gof.png")
    assert path.exists() and path.stat().st_size > 1000
    fig = plot_gof_pvalues(np.linspace(0.001, 1, 200), bins=10)
    assert "with p < 0.01" in fig.axes[0].get_title()


# -- slow: the p-values of background-only toys are uniform -------------------------------------------


@pytest.fixture(scope="module")
def background_only():
    data = generate_toys(SHAPE, WINDOW, nsig=0.0, beta=BETA, n_toys=300, seed=2024)
    x, shapes, windows = _side_by_side(data)
    return x, shapes, windows, fits.evaluate_hypotheses(x, shapes, windows, limits=False, expected=False)


@pytest.mark.slow
@pytest.mark.parametrize("method, toys", [("binned", 0), ("binned", 100), ("anderson-darling", 100)])
def test_pvalues_of_background_only_toys_are_uniform(background_only, method: str, toys: int) -> None:
    x, shapes, windows, table = background_only
    res = gof_from_table(x, shapes, windows, table, method=method, toys=toys, seed=99)
    assert res.ok.mean() > 0.99
    ks = kstest(res.pvalue[res.ok], "uniform").pvalue
    _report(f"gof_uniform_{method}_{toys}", {"n": int(res.ok.sum()), "ks_pvalue": float(ks), "mean_p": float(res.pvalue[res.ok].mean()),
                                                "below_0.01": int(np.sum(res.pvalue[res.ok] < 0.01))})
    assert ks > 0.01

"""Toy CLs limits of the batched toy engine (fits.toy_limits): agreement with the asymptotic limits where they hold,
determinism, bracketing, the sampler, the test statistic's sign rule, the scan entry point; coverage and 100-toy
stability (slow)."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from scipy import stats

import fits
from fits.densities import ShapeArrays, chebyshev_basis
from fits.design import build_design
from fits.limit_methods import ToyHypothesisTable
from fits.toy_limits import toy_cls_limits
from fits.toy_problem import ToyOptions
from fits.toy_sampling import draw_layers, hypothesis_key, make_envelope
from fits.toy_sets import clipped_background_integral, thin_sets
from fits.toy_statistic import base_fits, q_tilde_fits
from fits.toys import generate_toys, toy_upper_limit
from fits.vectorised import Batch
from signal_models import SignalShape

SHAPE = SignalShape(mu=3.0, sigma=0.03, alpha_l=1.2, n_l=3.0, alpha_r=1.6, n_r=5.0, comb_fraction=0.15, comb_slope=-0.2)
WINDOW = SHAPE.window()


def _beta(n: float, window: tuple[float, float] = WINDOW) -> np.ndarray:
    """A falling cubic background with about ``n`` events in the window (events/GeV)."""
    return np.array([n, -0.15 * n, 0.02 * n, 0.0]) / (window[1] - window[0])


def _data(n: float, seed: int, *, nsig: float = 0.0, shape: SignalShape = SHAPE) -> np.ndarray:
    w = shape.window()
    return generate_toys(shape, w, nsig=nsig, beta=_beta(n, w), n_toys=1, seed=seed)[0]


def _report(name: str, values: dict) -> None:
    path = os.environ.get("BUMPHUNT_TOY_REPORT")
    if path:
        with open(path, "a") as f:
            f.write(json.dumps({name: values}) + "\n")


def test_toy_limits_agree_with_asymptotic_for_thousands_of_events() -> None:
    """About 3000 events in the window: toy limits equal the asymptotic ones within their Monte Carlo error
    (3 sigma) plus 4% (the asymptotic formulae are themselves approximations at that level)."""
    x = _data(3000, seed=5)
    asym = fits.evaluate_hypotheses(x, [SHAPE], [WINDOW])
    t = toy_cls_limits(x, [SHAPE], [WINDOW], n_toys=400, seed=1, asymptotic=asym)
    assert t.converged[0], t.reason
    assert t.poi == "nsig" and t.n_toys[0] == 400
    assert np.all(t.observed_err > 0) and np.all(t.expected_err > 0)
    _report("toys_vs_asymptotic", {"asymptotic": [float(asym.ul_nsig_obs[0]), *map(float, asym.ul_nsig_exp[0])],
                                   "toys": [float(t.observed[0]), *map(float, t.expected[0])], "errors": [float(t.observed_err[0]), *map(float, t.expected_err[0])]})
    assert abs(t.observed[0] - asym.ul_nsig_obs[0]) <= 3 * t.observed_err[0] + 0.04 * asym.ul_nsig_obs[0]
    assert np.all(np.abs(t.expected[0] - asym.ul_nsig_exp[0]) <= 3 * t.expected_err[0] + 0.04 * asym.ul_nsig_exp[0])
    # the band is ordered
    assert np.all(np.diff(t.expected[0]) > 0)


def test_deterministic_for_a_seed_and_independent_of_chunking() -> None:
    """The same bits together, one hypothesis at a time, in another order and in small memory chunks; another seed differs."""
    x = np.concatenate([_data(2000, seed=11), _data(30, seed=12, shape=SHAPE_HIGH)])
    shapes = [SHAPE, SignalShape(mu=3.05, sigma=0.03, alpha_l=1.2, n_l=3.0, alpha_r=1.6, n_r=5.0), SHAPE_HIGH]
    windows = np.array([WINDOW, (2.55, 3.55), SHAPE_HIGH.window()])
    kw = {"n_toys": 120, "seed": 3}
    together = toy_cls_limits(x, shapes, windows, **kw)
    assert together.converged.all(), together.reason

    def fields(t, j):
        return [t.observed[j], t.observed_err[j], *t.expected[j], *t.expected_err[j], t.n_toys[j]]

    for j in range(3):
        alone = toy_cls_limits(x, [shapes[j]], windows[j:j + 1], **kw)
        assert fields(alone, 0) == fields(together, j)
    rev = toy_cls_limits(x, shapes[::-1], windows[::-1], **kw)
    small = toy_cls_limits(x, shapes, windows, options=ToyOptions(slots=20_000), **kw)
    for j in range(3):
        assert fields(rev, 2 - j) == fields(together, j)
        assert fields(small, j) == fields(together, j)
    other = toy_cls_limits(x, shapes, windows, n_toys=120, seed=4)
    assert not np.array_equal(other.observed, together.observed)


#: a sparse hypothesis (tens of events) at a higher mass
SHAPE_HIGH = SignalShape(mu=6.0, sigma=0.05, alpha_l=1.2, n_l=3.0, alpha_r=1.6, n_r=5.0, comb_fraction=0.1, comb_slope=0.0)


@pytest.mark.parametrize("grid", [[400.0, 500.0], [1.0, 2.0]])
def test_limits_bracketed_from_a_bad_grid(grid: list[float]) -> None:
    """A POI grid far above or far below the limits is extended until every CLs curve crosses; no limit is a grid edge."""
    x = _data(1500, seed=21)
    r = toy_upper_limit(x, SHAPE, WINDOW, n_toys=100, seed=2, poi_values=grid)
    assert r.converged, r.reason
    pois = r.details["poi"]
    assert len(pois) > len(grid)
    for v in [r.observed, *r.expected]:
        assert pois[0] < v < pois[-1]
        assert not np.any(np.isclose(v, pois, rtol=1e-9, atol=0.0))
    ref = fits.upper_limit(x, SHAPE, WINDOW)
    assert r.observed == pytest.approx(ref.observed, rel=0.2)


def test_unbracketed_limit_is_flagged_not_clipped() -> None:
    """Without extensions a grid that misses the crossings gives a flagged, extrapolated limit, not the grid edge."""
    x = _data(1500, seed=21)
    t = toy_cls_limits(x, [SHAPE], [WINDOW], n_toys=60, seed=2, poi_values=[[400.0, 500.0]], options=ToyOptions(max_extensions=0, stages=(60,)))
    assert not t.converged[0]
    assert "extrapolated" in t.reason[0]
    assert t.observed[0] < 400.0


def test_thinned_toys_follow_the_model() -> None:
    """Toys thinned from the envelope layers: Poisson counts with the model's mean, masses distributed as the model."""
    beta0, beta1 = _beta(800), _beta(700)
    cap = 120.0
    env = make_envelope(SHAPE, WINDOW, np.vstack([beta0, beta1]), cap)
    assert env.covers(beta0) and env.covers(beta1) and not env.covers(2.0 * beta0)
    sh = ShapeArrays.from_shapes([SHAPE])
    key = hypothesis_key(SHAPE.mu, *WINDOW)
    layers = draw_layers([env], [key], sh, 3, 0, 2000, seed=9)
    lo, hi = np.array([WINDOW[0]]), np.array([WINDOW[1]])
    mu = 60.0
    sets = thin_sets(layers, np.arange(len(layers)), np.full(len(layers), mu), np.tile(beta1, (len(layers), 1)), sh, lo, hi)
    expected = mu + clipped_background_integral(beta1[None, :], lo, hi)[0]
    n = sets.n
    assert abs(n.mean() - expected) < 4 * np.sqrt(expected / len(n))
    assert n.var(ddof=1) == pytest.approx(expected, rel=0.15)
    # pooled masses against the model's CDF (signal + background) on a grid
    xs = np.concatenate([0.5 * (lo[0] + hi[0]) + 0.5 * (hi[0] - lo[0]) * sets.xp[j, : n[j]] for j in range(0, len(n), 10)])
    g = np.linspace(WINDOW[0], WINDOW[1], 20001)
    b = beta1 @ chebyshev_basis((2 * g - lo[0] - hi[0]) / (hi[0] - lo[0]), 3)
    dens = mu * SHAPE.pdf(g, *WINDOW) + np.maximum(b, 0.0)
    cdf = np.concatenate([[0.0], np.cumsum(0.5 * (dens[1:] + dens[:-1]) * np.diff(g))])
    cdf /= cdf[-1]
    assert stats.kstest(xs, lambda v: np.interp(v, g, cdf)).pvalue > 1e-3
    # the same random numbers at another yield: nested signal, shared background
    more = thin_sets(layers, np.arange(20), np.full(20, 90.0), np.tile(beta1, (20, 1)), sh, lo, hi)
    assert np.all(more.n >= sets.n[:20])
    again = draw_layers([env], [key], sh, 3, 40, 60, seed=9)
    assert np.array_equal(again.xb, draw_layers([env], [key], sh, 3, 40, 60, seed=9).xb)
    assert np.array_equal(again.ts[:, :5], layers.ts[40:60, :5])


def test_sign_rule_gives_the_full_q_tilde() -> None:
    """q~ from the conditional fit, and the base fits only where dNLL/dmu >= 0, equals q~ from all three fits."""
    toys = generate_toys(SHAPE, WINDOW, nsig=40.0, beta=_beta(1200), n_toys=40, seed=31)
    sh = ShapeArrays.from_shapes([SHAPE] * len(toys))
    counts = np.array([len(t) for t in toys])
    stop = np.cumsum(counts)
    lo, hi = np.full(len(toys), WINDOW[0]), np.full(len(toys), WINDOW[1])
    d = build_design(np.concatenate(toys), sh, lo, hi, 3, index_range=(stop - counts, stop))
    b = Batch(d, sh, 3)
    f = b.fit()
    for mu in (20.0, 45.0, 80.0):
        c = b.conditional(np.full(len(toys), mu))
        full = fits.asymptotic.q_tilde(c.nll, f.nll_hat, f.nll_zero, mu, f.mu_hat)
        q, conv, _ = q_tilde_fits(d, np.full(len(toys), mu), f.zero.theta[:, 1:])
        assert conv.all()
        np.testing.assert_allclose(q, full, atol=2e-6, rtol=1e-6)
    bf = base_fits(d, f.zero.theta[:, 1:], free_all=True)
    np.testing.assert_allclose(bf.mu_hat, f.mu_hat, atol=1e-4 * np.max(f.mu_err))


def test_evaluate_hypotheses_limit_methods() -> None:
    """'toys' replaces every limit (with errors); 'auto' takes toys only for the sparse window; 'asymptotic' is unchanged."""
    x = np.concatenate([_data(3000, seed=41), _data(12, seed=42, shape=SHAPE_HIGH)])
    shapes = [SHAPE, SHAPE_HIGH]
    windows = np.array([WINDOW, SHAPE_HIGH.window()])
    scale = np.array([20.0, 15.0])
    asym = fits.evaluate_hypotheses(x, shapes, windows, signal_scale=scale)
    assert not isinstance(asym, ToyHypothesisTable)
    same = fits.evaluate_hypotheses(x, shapes, windows, signal_scale=scale, limit_method="asymptotic", toys=50)
    assert np.array_equal(same.ul_nsig_obs, asym.ul_nsig_obs) and np.array_equal(same.ul_nsig_exp, asym.ul_nsig_exp)
    auto = fits.evaluate_hypotheses(x, shapes, windows, signal_scale=scale, limit_method="auto", toys=100, toy_seed=5)
    assert isinstance(auto, ToyHypothesisTable)
    assert auto.limit_method == ("asymptotic", "toys")
    assert auto.ul_nsig_obs[0] == asym.ul_nsig_obs[0] and auto.ul_nsig_obs_err[0] == 0.0
    assert auto.ul_nsig_obs_err[1] > 0 and auto.n_toys[1] == 100 and auto.converged.all()
    assert auto.ul_xsec_obs[1] == pytest.approx(auto.ul_nsig_obs[1] / scale[1], rel=1e-12)
    toys = fits.evaluate_hypotheses(x, shapes, windows, signal_scale=scale, limit_method="toys", toys=100, toy_seed=5)
    assert toys.limit_method == ("toys", "toys")
    assert toys.ul_nsig_obs[1] == auto.ul_nsig_obs[1]  # the same toys: per-hypothesis keys
    row = toys.row(0)
    assert row["limit_method"] == "toys" and len(row["ul_nsig_exp_err"]) == 5 and row["ul_xsec_obs_err"] > 0
    with pytest.raises(fits.FitInputError):
        fits.evaluate_hypotheses(x, shapes, windows, limit_method="bayes")


def test_yield_uncertainty_in_toys() -> None:
    """A yield uncertainty profiled in the toys' fits weakens the limit in pb, as asymptotically."""
    x = _data(3000, seed=5)
    plain = toy_cls_limits(x, [SHAPE], [WINDOW], n_toys=150, seed=1, signal_scale=[10.0])
    syst = toy_cls_limits(x, [SHAPE], [WINDOW], n_toys=150, seed=1, signal_scale=[10.0], signal_scale_rel_unc=0.3)
    assert plain.poi == syst.poi == "xsec"
    assert plain.converged[0] and syst.converged[0]
    asym = fits.evaluate_hypotheses(x, [SHAPE], [WINDOW], signal_scale=[10.0], signal_scale_rel_unc=0.3)
    assert syst.observed[0] > plain.observed[0]
    assert syst.observed[0] == pytest.approx(asym.ul_xsec_obs[0], rel=0.1)


# ---------------------------------------------------------------------------
# slow: coverage where the asymptotic formulae fail, 100-toy stability
# ---------------------------------------------------------------------------
#: three masses with tens of events in their windows: (shape, background events, background order, true signal
#: events near the median expected limit)
_SPARSE = [
    (SignalShape(mu=1.5, sigma=0.015, alpha_l=1.2, n_l=3.0, alpha_r=1.6, n_r=5.0, comb_fraction=0.15, comb_slope=-0.2), 20.0, 1, 6.0),
    (SignalShape(mu=4.0, sigma=0.04, alpha_l=1.1, n_l=4.0, alpha_r=1.5, n_r=6.0, comb_fraction=0.1, comb_slope=0.1), 40.0, 2, 8.0),
    (SignalShape(mu=7.5, sigma=0.08, alpha_l=1.3, n_l=3.0, alpha_r=1.8, n_r=5.0), 60.0, 2, 9.0),
]


@pytest.mark.slow
@pytest.mark.parametrize("case", range(len(_SPARSE)))
def test_toy_limits_cover_with_tens_of_events(case: int) -> None:
    """Pseudo-data with a true signal near the median expected limit and tens of events: the toy CLs limit
    lies above the true signal in at least 95% of them (within the binomial error of the number of pseudo-data)."""
    shape, nb, order, nsig = _SPARSE[case]
    w = shape.window()
    n_pseudo = 150
    beta = _beta(nb, w)[: order + 1]
    data = generate_toys(shape, w, nsig=nsig, beta=beta, n_toys=n_pseudo, seed=1000 + case)
    toy_lim, asym_lim, ok, exp_toy, exp_asym = [], [], [], [], []
    for j, x in enumerate(data):
        a = fits.evaluate_hypotheses(x, [shape], [w], bkg_order=order)
        t = toy_cls_limits(x, [shape], [w], bkg_order=order, n_toys=200, seed=j, asymptotic=a)
        toy_lim.append(t.observed[0])
        asym_lim.append(a.ul_nsig_obs[0])
        ok.append(t.converged[0])
        exp_toy.append(t.expected[0])
        exp_asym.append(a.ul_nsig_exp[0])
    toy_lim, asym_lim, ok = np.array(toy_lim), np.array(asym_lim), np.array(ok)
    assert ok.mean() >= 0.97
    cover = float(np.mean(toy_lim[ok] >= nsig))
    err = np.sqrt(0.95 * 0.05 / ok.sum())
    _report(f"coverage_sparse_{case}", {"mass": shape.mu, "bkg_events": nb, "bkg_order": order, "nsig": nsig, "n": int(ok.sum()), "coverage_toys": cover,
                                        "coverage_asymptotic": float(np.mean(asym_lim >= nsig)), "median_limit_toys": float(np.median(toy_lim)),
                                        "median_limit_asymptotic": float(np.median(asym_lim)),
                                        "median_expected_toys": np.median(exp_toy, axis=0).tolist(), "median_expected_asymptotic": np.median(exp_asym, axis=0).tolist()})
    assert cover >= 0.95 - 2 * err


@pytest.mark.slow
def test_hundred_toys_stable() -> None:
    """Item 4: with 100 toys, observed limits of data drawn from the background model fall outside the +-2 sigma
    (+-1 sigma) expected band no more often than 4.6% (31.7%) within binomial errors, and none sits on a grid edge or on a band edge."""
    n_pseudo = 150
    data = generate_toys(SHAPE, WINDOW, nsig=0.0, beta=_beta(3000), n_toys=n_pseudo, seed=77)
    out2, out1, conv, on_edge = [], [], [], []
    for j, x in enumerate(data):
        r = toy_upper_limit(x, SHAPE, WINDOW, n_toys=100, seed=j)
        e = r.expected
        out2.append(not e[0] <= r.observed <= e[4])
        out1.append(not e[1] <= r.observed <= e[3])
        conv.append(r.converged)
        on_edge.append(bool(np.any(np.isclose(r.observed, r.details["poi"], rtol=1e-12, atol=0.0)) or np.any(np.isclose(r.observed, e, rtol=1e-12, atol=0.0))))
    f2, f1 = float(np.mean(out2)), float(np.mean(out1))
    _report("hundred_toys", {"n": n_pseudo, "outside_2sigma": f2, "outside_1sigma": f1, "converged": float(np.mean(conv))})
    assert all(conv)
    assert not any(on_edge)
    assert f2 <= 0.0455 + 3 * np.sqrt(0.0455 * 0.9545 / n_pseudo)
    assert f1 <= 0.3173 + 3 * np.sqrt(0.3173 * 0.6827 / n_pseudo)

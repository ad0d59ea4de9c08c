"""Pulls and impacts of the nuisances on the parameter of interest (fits.impacts), and the fixed_shared option of the combined engine."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import minimize

import fits
from fits.channels import CombinedModel
from fits.combined import CombinedBatch
from fits.combined_rows import CombinedRequest
from fits.impacts import ImpactTable, format_rows, impacts, impacts_of_request, normalised_pulls, plot_impacts
from scans.testing import analytic_signal_model, sample_signal, toy_spectrum
from signal_models._common.plotstyle import texts_inside_figure

SHAPE = analytic_signal_model().shape(1.5)
WINDOW = SHAPE.window(20.0)
ORDER = 2
LUMI = fits.YieldUncertainty("lumi", 0.1)
SPUR = fits.SpuriousSignal("spurious", 6.0)
RES = fits.ShapeUncertainty("res", "resolution", 0.1)
NUIS = {"yield_uncertainties": [LUMI], "spurious_signals": [SPUR], "shape_uncertainties": [RES]}


def _data(n_bkg: int = 4000, n_sig: int = 90, seed: int = 11) -> np.ndarray:
    lo, hi = WINDOW
    return np.r_[toy_spectrum(n_bkg, lo=0.1, hi=4.0, slope=0.5, seed=seed), sample_signal(SHAPE, n_sig, lo=lo, hi=hi, seed=seed + 1)]


@pytest.fixture(scope="module")
def channel() -> fits.Channel:
    return fits.Channel(_data(), SHAPE, WINDOW, signal_scale=1.5, bkg_order=ORDER, name="run")


@pytest.fixture(scope="module")
def table(channel) -> ImpactTable:
    return impacts([channel], **NUIS)


class WrittenOutNLL:
    """The combined NLL of one channel written out with numpy: p = (mu, u_lumi, theta_spurious, nu_res, beta_0..beta_ORDER)."""

    def __init__(self, ch: fits.Channel) -> None:
        model = CombinedModel.build([ch], yields=[LUMI], spurious=[SPUR], shapes=[RES])
        lo, hi = ch.window
        x = ch.mgg[(ch.mgg >= lo) & (ch.mgg <= hi)]
        self.s0 = ch.shape.pdf(x, lo, hi)
        p0, pp, pm = (s.pdf(x, lo, hi) for s in (model.peak_shape(0), model.peak_shape(0, 0, +1.0), model.peak_shape(0, 0, -1.0)))
        keep = 1.0 - ch.shape.comb_fraction
        self.dA, self.dB = keep * 0.5 * (pp - pm), keep * (0.5 * (pp + pm) - p0)
        self.T = np.polynomial.chebyshev.chebvander(2.0 * (x - lo) / (hi - lo) - 1.0, ORDER)
        self.integ = np.array([np.diff(np.polynomial.chebyshev.chebval([-1.0, 1.0], np.polynomial.chebyshev.chebint(np.eye(ORDER + 1)[m])))[0]
                               for m in range(ORDER + 1)]) * 0.5 * (hi - lo)
        self.scale = ch.signal_scale

    def __call__(self, p: np.ndarray) -> float:
        mu, u, th, nu = p[:4]
        beta = p[4:]
        n = mu * self.scale * np.exp(np.log1p(0.1) * u) + 6.0 * th
        lam = n * (self.s0 + nu * self.dA + nu * nu * self.dB) + self.T @ beta
        if np.any(lam <= 0):
            return 1e300
        return float(0.5 * (u * u + th * th + nu * nu) + n + self.integ @ beta - np.sum(np.log(lam)))

    def conditional(self, fixed: dict[int, float], start: np.ndarray) -> tuple[float, np.ndarray]:
        """scipy's minimum with the parameters ``fixed`` (index -> value) held."""
        free = np.array([i for i in range(len(start)) if i not in fixed])
        scale = np.maximum(np.abs(start[free]), 1.0)

        def f(q: np.ndarray) -> float:
            p = start.copy()
            for i, v in fixed.items():
                p[i] = v
            p[free] = q * scale
            return self(p)

        r = minimize(f, start[free] / scale, method="BFGS", options={"gtol": 1e-7, "maxiter": 5000})
        r = minimize(f, r.x, method="Nelder-Mead", options={"xatol": 1e-10, "fatol": 1e-11, "maxiter": 20000})
        p = start.copy()
        for i, v in fixed.items():
            p[i] = v
        p[free] = r.x * scale
        return float(r.fun), p


def test_fixed_shared_none_and_all_false_are_bit_identical(channel) -> None:
    model = CombinedModel.build([channel], yields=[LUMI], spurious=[SPUR], shapes=[RES])
    batch = CombinedBatch(CombinedRequest.from_model(model))
    s0 = batch.start()
    ref = batch.minimise(batch.data, s0, mu_fixed=False)
    none = batch.minimise(batch.data, s0, mu_fixed=False, fixed_shared=None)
    off = batch.minimise(batch.data, s0, mu_fixed=False, fixed_shared=np.zeros(batch.S, bool))
    for sol in (none, off):
        np.testing.assert_array_equal(sol.state.shared, ref.state.shared)
        np.testing.assert_array_equal(sol.state.beta, ref.state.beta)
        np.testing.assert_array_equal(sol.nll, ref.nll)
        np.testing.assert_array_equal(sol.cov_shared, ref.cov_shared)


def test_fixed_shared_holds_the_parameter_and_profiles_the_rest(channel) -> None:
    model = CombinedModel.build([channel], yields=[LUMI], spurious=[SPUR], shapes=[RES])
    batch = CombinedBatch(CombinedRequest.from_model(model))
    bf = batch.fit()
    start = bf.hat.tile(1)
    start.shared[0, 3] = bf.hat.shared[0, 3] + 0.7
    pin = np.zeros(batch.S, bool)
    pin[3] = True
    sol = batch.minimise(batch.data, start, mu_fixed=False, fixed_shared=pin)
    assert sol.converged[0]
    assert sol.state.shared[0, 3] == start.shared[0, 3]  # exactly held
    assert np.all(np.isnan(sol.cov_shared[0, 3])) and np.all(np.isnan(sol.cov_shared[0, :, 3]))
    assert np.all(np.isfinite(sol.cov_shared[0, :3, :3]))
    assert sol.nll[0] > bf.nll_hat[0]
    # fixing mu through the mask is the mu_fixed fit
    pin_mu = np.zeros(batch.S, bool)
    pin_mu[0] = True
    a = batch.minimise(batch.data, bf.hat.with_mu(np.array([40.0])), mu_fixed=False, fixed_shared=pin_mu)
    b = batch.minimise(batch.data, bf.hat.with_mu(np.array([40.0])), mu_fixed=True)
    assert a.nll[0] == pytest.approx(b.nll[0], abs=1e-8)
    np.testing.assert_allclose(a.state.shared, b.state.shared, atol=1e-5)


def test_impacts_agree_with_one_refit_per_nuisance_through_the_option(channel, table) -> None:
    model = CombinedModel.build([channel], yields=[LUMI], spurious=[SPUR], shapes=[RES])
    batch = CombinedBatch(CombinedRequest.from_model(model))
    bf = batch.fit()
    assert table.mu_hat == pytest.approx(bf.mu_hat[0], abs=1e-6 * bf.mu_err[0])
    assert table.mu_err == pytest.approx(bf.mu_err[0], rel=1e-6)
    np.testing.assert_allclose(table.values, bf.nuisance_hat[0], atol=1e-6)
    np.testing.assert_allclose(table.errors, bf.nuisance_err[0], rtol=1e-6)
    for i in range(3):
        for sign, width, got in ((+1, table.errors[i], table.impact_up[i]), (-1, table.errors[i], table.impact_down[i]),
                                 (+1, 1.0, table.prefit_up[i]), (-1, 1.0, table.prefit_down[i])):
            start = bf.hat.tile(1)
            start.shared[0, 1 + i] = bf.hat.shared[0, 1 + i] + sign * width
            pin = np.zeros(batch.S, bool)
            pin[1 + i] = True
            sol = batch.minimise(batch.data, start, mu_fixed=False, fixed_shared=pin)
            assert sol.converged[0]
            assert got == pytest.approx(sol.state.shared[0, 0] - bf.mu_hat[0], abs=1e-5 * bf.mu_err[0])
    assert table.converged.all() and table.fit_converged


def test_impacts_agree_with_an_independent_scipy_minimisation(channel, table) -> None:
    """Each refit repeated by scipy (BFGS then Nelder-Mead) on the NLL written out in numpy."""
    nll = WrittenOutNLL(channel)
    model = CombinedModel.build([channel], yields=[LUMI], spurious=[SPUR], shapes=[RES])
    batch = CombinedBatch(CombinedRequest.from_model(model))
    bf = batch.fit()
    p_hat = np.r_[bf.hat.shared[0], bf.hat.beta[0, 0]]
    assert nll(p_hat) == pytest.approx(bf.nll_hat[0], abs=1e-6)  # the same likelihood
    f_min, p_min = nll.conditional({}, p_hat * (1 + 1e-3))
    assert f_min >= bf.nll_hat[0] - 1e-6 and p_min[0] == pytest.approx(table.mu_hat, abs=2e-3 * table.mu_err)
    worst = 0.0
    for i in range(3):
        for sign, width, got in ((+1, table.errors[i], table.impact_up[i]), (-1, table.errors[i], table.impact_down[i]),
                                 (+1, 1.0, table.prefit_up[i])):
            f, p = nll.conditional({1 + i: table.values[i] + sign * width}, p_hat)
            worst = max(worst, abs((p[0] - p_min[0]) - got) / table.mu_err)
    assert worst < 5e-4  # Delta mu to 0.05% of the error of mu


def test_impacts_are_the_linear_prediction_for_a_near_gaussian_likelihood(channel, table) -> None:
    """Post-fit impact ~ cov(mu, theta) / sigma_theta (the conditional mean of mu given theta) within 15%."""
    model = CombinedModel.build([channel], yields=[LUMI], spurious=[SPUR], shapes=[RES])
    batch = CombinedBatch(CombinedRequest.from_model(model))
    bf = batch.fit()
    start = bf.hat
    ev = batch.evaluate(batch.data, start, np.arange(1), None)
    _, _, _, cov = batch.newton_direction(ev, np.ones(batch.S, bool))
    lin = cov[0, 0, 1:] / np.sqrt(np.diagonal(cov[0])[1:])
    half = 0.5 * (table.impact_up - table.impact_down)
    np.testing.assert_allclose(half, lin, rtol=0.15)
    # the ranking is by the largest post-fit |Delta mu|
    assert np.all(np.diff(table.impact[table.ranking]) <= 0)
    # a yield nuisance is not constrained by the data: post-fit error 1, pre- and post-fit impacts equal
    i = table.names.index("lumi")
    assert table.errors[i] == pytest.approx(1.0, abs=1e-6)
    assert table.prefit_up[i] == pytest.approx(table.impact_up[i], rel=1e-4)


def test_single_dataset_call_is_one_channel_with_poi_nsig(channel) -> None:
    one = impacts(channel.mgg, SHAPE, WINDOW, bkg_order=ORDER, yield_uncertainties=[LUMI])
    chan = impacts([fits.Channel(channel.mgg, SHAPE, WINDOW, bkg_order=ORDER)], yield_uncertainties=[LUMI])
    assert one.poi == "N_sig" and chan.poi == "mu"
    assert one.mu_hat == pytest.approx(chan.mu_hat, rel=1e-12)
    np.testing.assert_allclose(one.impact_up, chan.impact_up, rtol=1e-10)
    # the fit without nuisances is fits.fit's
    plain = fits.fit(channel.mgg, SHAPE, WINDOW, bkg_order=ORDER)
    assert one.mu_hat == pytest.approx(plain.nsig, abs=1e-3 * plain.nsig_err)
    # lumi: a log-normal 10% on N_sig: impact about +-ln(1.1) N_sig
    assert one.impact_up[0] == pytest.approx(-np.log1p(0.1) * one.mu_hat, rel=0.1)


def test_global_observables_centre_the_constraints(channel) -> None:
    g = np.array([0.0, 0.0, 0.8])
    t = impacts([channel], global_observables=g, **NUIS)
    t0 = impacts([channel], **NUIS)
    np.testing.assert_array_equal(t.global_observables, g)
    np.testing.assert_allclose(t.pulls, t.values - g)
    assert t.values[2] > t0.values[2]  # pulled towards its auxiliary measurement
    with pytest.raises(fits.FitInputError, match="global observables"):
        impacts([channel], global_observables=[0.0, 1.0], **NUIS)


def test_normalised_pulls() -> None:
    out = normalised_pulls([0.5, 0.3, 0.2], [0.6, 1.0, 0.0], [0.0, 0.0, 0.2])
    assert out[0] == pytest.approx(0.5 / 0.8)
    assert np.isnan(out[1]) and out[2] == 0.0


def test_rows_dict_and_plot(channel, table, tmp_path) -> None:
    rows = table.to_rows()
    assert rows[0][1] == "nuisance" and [r[1] for r in rows[1:]] == [table.names[i] for i in table.ranking]
    text = format_rows(rows)
    assert "lumi" in text and "res" in text and "spurious" in text
    d = table.to_dict()
    assert d["names"] == [table.names[i] for i in table.ranking] and len(d["impact_up"]) == 3
    fig = plot_impacts(table)
    assert texts_inside_figure(fig)
    assert plot_impacts(table, path=tmp_path / "imp.png").stat().st_size > 10_000


def test_plot_with_many_nuisances_and_long_names_fits(channel, tmp_path) -> None:
    yields = [fits.YieldUncertainty(f"efficiency_of_the_photon_selection_{i}", 0.02 * (i + 1)) for i in range(6)]
    shapes = [fits.ShapeUncertainty("energy_scale_of_the_calorimeter", "shift", 0.002), RES]
    t = impacts([channel], yield_uncertainties=yields, shape_uncertainties=shapes)
    assert len(t) == 8 and t.converged.all()
    fig = plot_impacts(t)
    assert texts_inside_figure(fig)
    assert len(fig.axes[0].get_yticklabels()) == 8


def test_no_nuisances_and_bad_input(channel) -> None:
    t = impacts([channel])
    assert len(t) == 0 and np.isfinite(t.mu_hat) and t.to_rows()[1:] == []
    with pytest.raises(fits.FitInputError, match="no nuisances"):
        plot_impacts(t)
    with pytest.raises(fits.FitInputError, match="shape"):
        impacts(channel.mgg)
    with pytest.raises(fits.FitInputError, match="belong to each"):
        impacts([channel], SHAPE)


@pytest.mark.slow
def test_pulls_are_standard_normal_on_toys_with_randomised_global_observables() -> None:
    """1000 toys from the nominal model (nuisances at 0, mu = 300) with each auxiliary measurement drawn from N(0, 1).

    The normalised pull (theta_hat - theta_0) / sqrt(1 - sigma_hat^2) of the nuisances the data
    constrain has mean 0 and width 1; theta_hat - theta_true scatters by the post-fit error; the
    yield nuisance (not constrained by the data) follows its auxiliary measurement.
    """
    toys_mod = pytest.importorskip("fits.combined_toys")
    lo, hi = WINDOW
    shapes = [fits.ShapeUncertainty("res", "resolution", 0.15), fits.ShapeUncertainty("shift", "shift", 0.004)]
    ch = fits.Channel(np.linspace(lo, hi, 50), SHAPE, WINDOW, bkg_order=ORDER, name="toy")
    model = CombinedModel.build([ch], yields=[LUMI], shapes=shapes)
    rng = np.random.default_rng(20240611)
    tables, gobs = [], []
    for _ in range(4):  # 4 x 250 toys, each chunk one request (memory)
        toys = toys_mod.draw_toys(model, 250, mu=300.0, n_bkg=[800.0], background=[toys_mod.BackgroundDensity("exponential", slope=0.8)], rng=rng)
        g = toys_mod.global_observables(np.zeros(3), 250, rng=rng)
        tables += impacts_of_request(toys_mod.toy_request(model, toys), centre=g, prefit=False)
        gobs.append(g)
    g = np.concatenate(gobs)
    ok = np.array([t.fit_converged and t.converged[:, :2].all() for t in tables])
    assert ok.mean() > 0.99
    vals = np.array([t.values for t in tables])[ok]
    errs = np.array([t.errors for t in tables])[ok]
    norm = np.array([t.normalised_pulls for t in tables])[ok]
    np.testing.assert_allclose(np.array([t.pulls for t in tables])[ok], vals - g[ok], atol=1e-12)
    for i in (1, 2):  # res and shift: constrained by the data (sigma_hat < 1)
        assert np.median(errs[:, i]) < 0.7
        assert np.all(np.isfinite(norm[:, i]))
        assert abs(norm[:, i].mean()) < 0.1
        assert norm[:, i].std() == pytest.approx(1.0, abs=0.1)
        # theta_true = 0: the estimates scatter by their post-fit errors
        assert abs(vals[:, i].mean()) < 0.1 * np.median(errs[:, i]) + 0.05
        assert vals[:, i].std() == pytest.approx(np.sqrt(np.mean(errs[:, i] ** 2)), rel=0.1)
        # per toy (theta_hat - theta_true) / sigma_hat: width 1; its mean is pulled below 0 by the
        # correlation of theta_hat with sigma_hat (a wider peak is measured less precisely)
        r = vals[:, i] / errs[:, i]
        assert r.std() == pytest.approx(1.0, abs=0.1) and abs(r.mean()) < 0.15
    # the yield nuisance is not constrained by the data: it follows its auxiliary measurement
    np.testing.assert_allclose(vals[:, 0], g[ok, 0], atol=1e-3)
    np.testing.assert_allclose(errs[:, 0], 1.0, atol=1e-4)
    mu_pull = np.array([(t.mu_hat - 300.0) / t.mu_err for t in tables])[ok]
    assert abs(mu_pull.mean()) < 0.15 and mu_pull.std() == pytest.approx(1.0, abs=0.1)


@pytest.mark.slow
def test_impacts_agree_with_the_zfit_engine(channel, table) -> None:
    """The refits repeated with zfit + Minuit (the nuisance made constant at the same value)."""
    zc = pytest.importorskip("fits.zfit_combined")
    z = zc.ZfitCombined(CombinedModel.build([channel], yields=[LUMI], spurious=[SPUR], shapes=[RES]))
    z.reset()
    res = z.minimize()
    mu_hat = float(z.mu.value())
    assert mu_hat == pytest.approx(table.mu_hat, abs=2e-3 * table.mu_err)
    hat = {p: float(p.value()) for p in res.params}
    for i, p in enumerate(z.nuisances):
        for sign, width, got in ((+1, table.errors[i], table.impact_up[i]), (-1, table.errors[i], table.impact_down[i]),
                                 (+1, 1.0, table.prefit_up[i])):
            for q, v in hat.items():
                q.set_value(v)
            p.set_value(table.values[i] + sign * width)
            p.floating = False
            try:
                z.minimize()
            finally:
                p.floating = True
            assert float(z.mu.value()) - mu_hat == pytest.approx(got, abs=2e-3 * table.mu_err), (table.names[i], sign, width)

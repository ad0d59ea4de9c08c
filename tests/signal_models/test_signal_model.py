"""Signal model: per-mass zfit calibration, interpolation in mass, closure, file format, bad input."""

from __future__ import annotations

import dataclasses
import json
import logging
import math

import numpy as np
import pytest

pytest.importorskip("zfit")

from signal_models import SignalModel, SignalModelFormatError, SignalShape, build_signal_model  # noqa: E402
from signal_models.calibration import CalibrationFitter, calibrate, chi2_equal_probability  # noqa: E402
from signal_models.interpolation import fit_curve  # noqa: E402
from signal_models.synthetic import TruthCurves, generate_candidates  # noqa: E402

MASSES = np.round(np.linspace(0.5, 9.5, 10), 6)
HOLDOUT = (MASSES[3], MASSES[6])
TRUTH = TruthCurves()


@pytest.fixture(scope="module")
def fitter() -> CalibrationFitter:
    return CalibrationFitter()


@pytest.fixture(scope="module")
def sample() -> tuple:
    return generate_candidates(MASSES, n_generated=8000, truth=TRUTH, seed=11)


@pytest.fixture(scope="module")
def model(sample: tuple, fitter: CalibrationFitter) -> SignalModel:
    x, tm, ma, ngen = sample
    # tail exponents fixed at their true values (the pre-pass that determines them is tested separately)
    return build_signal_model(
        x, tm, ma, n_generated=ngen, holdout=HOLDOUT, selection={"working_point": "none"}, fixed_values={"n_l": TRUTH.n_l, "n_r": TRUTH.n_r}, fitter=fitter
    )


# -- per-mass fits ----------------------------------------------------------------


def test_per_mass_fits_pull_against_truth(model: SignalModel) -> None:
    assert all(f.ok for f in model.fits)
    pulls = {k: [] for k in ("mu", "sigma", "alpha_l", "alpha_r", "comb_fraction", "comb_slope")}
    for f in model.fits:
        true = TRUTH.shape(f.mass)
        for k in pulls:
            pulls[k].append((f.params[k] - getattr(true, k)) / f.errors[k])
        assert f.pvalue > 1e-3, f"mass {f.mass}: chi2/ndf {f.chi2:.1f}/{f.ndf}"
        assert f.window[0] < f.params["mu"] < f.window[1]
        # window is mu +- 20 sigma of the fit
        assert (f.window[1] - f.window[0]) / (40 * f.params["sigma"]) == pytest.approx(1.0, rel=0.03)
    for k, p in pulls.items():
        p = np.asarray(p)
        assert np.all(np.abs(p) < 4.0), (k, p)
        # pulls are unit-width on average: mean square well below what a 2x error misestimate would give
        assert np.mean(p**2) < 3.0, (k, p)
    assert model.settings["fixed"] == ["n_l", "n_r"]
    assert model.settings["fixed_values"] == {"n_l": TRUTH.n_l, "n_r": TRUTH.n_r}


def test_prepass_determines_tail_exponents(fitter: CalibrationFitter, caplog) -> None:
    x, tm, ma, ngen = generate_candidates([2.0, 7.0], n_generated=20000, seed=21)
    with caplog.at_level(logging.INFO, logger="signal_models.calibration"):
        fits = calibrate(x, tm, ma, n_generated=ngen, fitter=fitter, n_prepass=2)
    assert "pre-pass" in caplog.text
    n_l = fits[0].params["n_l"]
    assert all(f.ok and f.params["n_l"] == n_l and f.errors["n_l"] == 0 for f in fits)
    assert n_l == pytest.approx(TRUTH.n_l, rel=0.35)


def test_efficiency_per_mass_binomial(model: SignalModel) -> None:
    for f in model.fits:
        true = TRUTH.efficiency(f.mass)
        assert abs(f.eff_tm - true) < 4 * math.sqrt(true * (1 - true) / f.n_generated)
        assert f.eff_tm_err == pytest.approx(math.sqrt(f.eff_tm * (1 - f.eff_tm) / f.n_generated), rel=1e-6)
        # total includes the combinatorics in the window
        assert f.eff_total == pytest.approx(f.eff_tm / (1 - f.params["comb_fraction"]), rel=1e-9)


# -- closure on held-out masses ---------------------------------------------------------


@pytest.mark.parametrize("mass", HOLDOUT)
def test_closure_heldout_mass(model: SignalModel, sample: tuple, mass: float) -> None:
    x, tm, ma, ngen = sample
    assert mass not in model.masses
    shape = model.shape(mass)
    true = TRUTH.shape(mass)
    fit = model.fit_at(mass)  # fitted, not interpolated
    # peak bias < 0.1 sigma, sigma within 3 %
    assert abs(shape.mu - true.mu) < 0.1 * true.sigma
    assert abs(shape.mu - fit.params["mu"]) < 0.1 * true.sigma
    assert abs(shape.sigma / true.sigma - 1) < 0.03
    # the interpolated shape describes the held-out MC
    lo, hi = shape.window(20.0)
    sel = (ma == mass) & (x >= lo) & (x <= hi)
    chi2, ndf, p = chi2_equal_probability(x[sel], None, shape, lo, hi, n_bins=40)
    assert p > 0.01, f"chi2/ndf = {chi2:.1f}/{ndf}"
    # efficiency within its uncertainty (interpolation band and the held-out count combined)
    eff, unc = model.efficiency(mass), model.efficiency_uncertainty(mass)
    assert 0 < unc < 0.05
    assert abs(eff - fit.eff_tm) < 2.5 * math.hypot(unc, fit.eff_tm_err)
    assert abs(eff - TRUTH.efficiency(mass)) < 3 * unc


def test_closure_chi2_detects_a_wrong_shape(model: SignalModel, sample: tuple) -> None:
    # the closure test has power: a 15 % wider shape fails it
    x, tm, ma, _ = sample
    mass = HOLDOUT[0]
    s = model.shape(mass)
    wrong = SignalShape(**{**s.to_dict(), "sigma": 1.15 * s.sigma})
    lo, hi = s.window(20.0)
    sel = (ma == mass) & (x >= lo) & (x <= hi)
    assert chi2_equal_probability(x[sel], None, wrong, lo, hi, n_bins=40)[2] < 1e-3


def test_closure_through_the_wrong_pair_edge(fitter: CalibrationFitter) -> None:
    # synthetic truth whose wrong pairs end at sqrt(q - mu^2), like the real kinematic edge: it
    # sits above the window at 7.0 GeV, inside it at 7.5 GeV and below it from 8 GeV on
    truth = TruthCurves(sigma0=0.004, sigma1=0.0015, edge_q=111.7, edge_width=0.04)
    masses = np.round(np.arange(6.0, 8.51, 0.5), 6)
    holdout = (7.0, 7.5)
    x, tm, ma, ngen = generate_candidates(masses, n_generated=8000, truth=truth, seed=31)
    model = build_signal_model(x, tm, ma, n_generated=ngen, holdout=holdout, fixed_values={"n_l": truth.n_l, "n_r": truth.n_r}, fitter=fitter)
    # from 8 GeV on the wrong pairs end below the window (or so far below that none are generated near it)
    assert all(f.edge_status in ("below", "none") and f.n_comb == 0 for f in model.fits if f.mass >= 8.0)
    for mass in holdout:
        shape, true, fit = model.shape(mass), truth.shape(mass), model.fit_at(mass)
        assert fit.edge_status == "measured" and abs(fit.params["comb_edge"] - true.comb_edge) < 3 * fit.errors["comb_edge"] + 1e-3
        # the interpolated edge and fraction follow the truth through the transition
        assert abs(model.parameter("comb_edge", mass) - true.comb_edge) < 0.25 * truth.edge_width
        assert abs(shape.comb_fraction - true.comb_fraction) < 3 * fit.errors["comb_fraction"]
        lo, hi = shape.window(20.0)
        sel = (ma == mass) & (x >= lo) & (x <= hi)
        assert chi2_equal_probability(x[sel], None, shape, lo, hi, n_bins=40)[2] > 0.01
        assert abs(model.efficiency_total(mass) - fit.eff_total) < 3 * math.hypot(model.efficiency_total_uncertainty(mass), fit.eff_total_err)
    assert model.shape(7.5).edge_matters(model.shape(7.5).window(20.0)[1])
    # a plain line (the old shape family) fails where the edge is in the window
    s = model.shape(7.5)
    lo, hi = s.window(20.0)
    sel = (ma == 7.5) & (x >= lo) & (x <= hi)
    plain = SignalShape(**{**s.to_dict(), "comb_edge": math.inf, "comb_edge_width": 0.0, "comb_fraction": fit.params["comb_fraction"]})
    assert chi2_equal_probability(x[sel], None, plain, lo, hi, n_bins=40)[2] < 1e-3
    # no wrong pairs predicted where the edge is below the window, none at all at 8.25 GeV
    assert model.shape(8.25).comb_fraction == 0.0 and model.efficiency_total(8.25) == pytest.approx(model.efficiency(8.25))


# -- evaluation API ----------------------------------------------------------------------


def test_vectorised_shape_params_match_shape(model: SignalModel) -> None:
    m = np.linspace(*model.mass_range, 1001)
    p = model.shape_params(m)
    for i in (0, 137, 500, 1000):
        s = model.shape(m[i])
        for k, v in s.to_dict().items():
            assert p[k][i] == pytest.approx(v, rel=1e-12)
    assert np.all(p["sigma"] > 0) and np.all((p["comb_fraction"] >= 0) & (p["comb_fraction"] <= 1))
    # smooth in mass: the interpolated sigma follows the true curve within its band
    band = model.parameter_uncertainty("sigma", m)
    assert np.all(band > 0)
    assert np.all(np.abs(p["sigma"] - (TRUTH.sigma0 + TRUTH.sigma1 * m)) < 3.5 * band)
    eff = model.efficiency(m)
    assert eff.shape == m.shape and np.all(model.efficiency_uncertainty(m) > 0)


def test_extrapolation_refused(model: SignalModel) -> None:
    lo, hi = model.mass_range
    with pytest.raises(ValueError, match=r"outside .*range \[0\.5, 9\.5\] GeV"):
        model.shape(hi + 0.01)
    with pytest.raises(ValueError, match="range"):
        model.efficiency(lo - 1e-3)
    with pytest.raises(ValueError, match="range"):
        model.shape_params(np.array([1.0, np.nan]))
    model.shape(hi)  # the edges themselves are fine


# -- file format ----------------------------------------------------------------------------


def test_save_load_roundtrip(model: SignalModel, tmp_path) -> None:
    path = model.save(tmp_path / "sm.json")
    loaded = SignalModel.load(path)
    m = np.linspace(*model.mass_range, 57)
    for k, v in model.shape_params(m).items():
        np.testing.assert_allclose(loaded.shape_params(m)[k], v, rtol=1e-12)
    np.testing.assert_allclose(loaded.efficiency_uncertainty(m), model.efficiency_uncertainty(m), rtol=1e-9)
    assert loaded.holdout == model.holdout and loaded.selection == {"working_point": "none"}
    data = json.loads(path.read_text())
    assert data["format"] == "bumphunt-signal-model" and data["schema_version"] == 2
    import signal_models

    assert data["bumphunt_version"] == signal_models.__version__


def _broken(model: SignalModel, tmp_path, edit) -> str:
    data = model.to_dict()
    edit(data)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data).replace("NaN", "NaN"))
    return str(path)


def test_load_validation_names_the_key(model: SignalModel, tmp_path) -> None:
    with pytest.raises(SignalModelFormatError, match="missing key 'interpolation'"):
        SignalModel.load(_broken(model, tmp_path, lambda d: d.pop("interpolation")))
    with pytest.raises(SignalModelFormatError, match=r"fits\[2\]\.params\.sigma"):
        SignalModel.load(_broken(model, tmp_path, lambda d: d["fits"][2]["params"].__setitem__("sigma", float("nan"))))
    with pytest.raises(SignalModelFormatError, match=r"missing or null key 'fits\[1\]\.errors\.mu'"):
        SignalModel.load(_broken(model, tmp_path, lambda d: d["fits"][1]["errors"].pop("mu")))

    def swap(d):
        d["fits"][0], d["fits"][1] = d["fits"][1], d["fits"][0]

    with pytest.raises(SignalModelFormatError, match="strictly increasing mass"):
        SignalModel.load(_broken(model, tmp_path, swap))
    with pytest.raises(SignalModelFormatError, match="schema_version"):
        SignalModel.load(_broken(model, tmp_path, lambda d: d.__setitem__("schema_version", 99)))
    bad = tmp_path / "notjson.json"
    bad.write_text("{")
    with pytest.raises(SignalModelFormatError, match="not valid JSON"):
        SignalModel.load(bad)


# -- bad input ----------------------------------------------------------------------------------


def test_too_few_events_skipped_with_warning(fitter: CalibrationFitter, caplog) -> None:
    x, tm, ma, ngen = generate_candidates([2.0, 3.0], n_generated=[6000, 150], seed=3)
    with caplog.at_level(logging.WARNING, logger="signal_models.calibration"):
        fits = calibrate(x, tm, ma, n_generated=ngen, fixed_values={"n_l": 3.5, "n_r": 8.0}, fitter=fitter)
    assert [f.status for f in fits] == ["ok", "skipped"]
    assert "skipped" in caplog.text and "min_events" in caplog.text
    # a model needs two usable masses
    with pytest.raises(ValueError, match="at least two"):
        SignalModel(fits)


def test_failed_fit_is_retried_from_a_neighbour(fitter: CalibrationFitter, monkeypatch, caplog) -> None:
    x, tm, ma, ngen = generate_candidates([2.0, 3.0], n_generated=5000, seed=4)
    real_fit = CalibrationFitter.fit
    calls = {"n": 0}

    def flaky(self, *args, **kwargs):
        calls["n"] += 1
        out = real_fit(self, *args, **kwargs)
        if calls["n"] == 3:  # the first (window-finding) fit of the second mass fails
            out = dataclasses.replace(out, valid=False, reason="Minuit minimum not valid")
        return out

    monkeypatch.setattr(CalibrationFitter, "fit", flaky)
    with caplog.at_level(logging.INFO, logger="signal_models.calibration"):
        fits = calibrate(x, tm, ma, n_generated=ngen, fixed_values={"n_l": 3.5, "n_r": 8.0}, fitter=fitter)
    assert all(f.ok for f in fits)
    assert fits[1].n_attempts == 2 and fits[0].n_attempts == 1
    assert "retrying" in caplog.text


def test_bad_arrays_raise_clear_errors(fitter: CalibrationFitter, caplog) -> None:
    x, tm, ma, ngen = generate_candidates([2.0, 3.0], n_generated=4000, seed=5)
    with pytest.raises(ValueError, match="n_generated has no entry"):
        calibrate(x, tm, ma, n_generated={2.0: 4000}, fitter=fitter, fixed_values={"n_l": 3.5, "n_r": 8.0})
    with pytest.raises(ValueError, match="one length"):
        calibrate(x[:-1], tm, ma, n_generated=ngen, fitter=fitter)
    ma_bad = ma.copy()
    ma_bad[0] = np.nan
    with pytest.raises(ValueError, match="mc_ma contains 1 non-finite"):
        calibrate(x, tm, ma_bad, n_generated=ngen, fitter=fitter)
    with pytest.raises(ValueError, match="unknown parameter"):
        calibrate(x, tm, ma, n_generated=ngen, fitter=fitter, fixed=("nope",))
    # NaN masses are dropped with a warning, the fit still works
    x_nan = x.copy()
    x_nan[:5] = np.nan
    with caplog.at_level(logging.WARNING, logger="signal_models.calibration"):
        fits = calibrate(x_nan, tm, ma, n_generated=ngen, fitter=fitter, fixed_values={"n_l": 3.5, "n_r": 8.0}, masses=[2.0])
    assert fits[0].ok and "non-finite" in caplog.text


def test_interpolation_rejects_non_monotone_and_nan() -> None:
    with pytest.raises(ValueError, match="strictly increasing"):
        fit_curve("sigma", [1.0, 3.0, 2.0], [1, 2, 3], [0.1, 0.1, 0.1])
    with pytest.raises(ValueError, match="non-finite"):
        fit_curve("sigma", [1.0, 2.0, 3.0], [1, np.nan, 3], [0.1, 0.1, 0.1])


@pytest.mark.parametrize("method", ["pchip", "smoothing"])
def test_interpolation_band_covers_truth(method: str) -> None:
    # noisy points around a known curve: the band has the right size (coverage of the truth)
    rng = np.random.default_rng(7)
    x = np.linspace(1, 10, 40)
    truth = 0.01 + 0.002 * x + 0.001 * np.sin(x / 2)
    err = np.full_like(x, 4e-4)
    xq = np.linspace(1.5, 9.5, 25)
    tq = 0.01 + 0.002 * xq + 0.001 * np.sin(xq / 2)
    lam = fit_curve("sigma", x, truth + err * rng.standard_normal(x.size), err, method="smoothing", transform="log").lam
    inside = []
    for _ in range(20):
        y = truth + err * rng.standard_normal(x.size)
        c = fit_curve("sigma", x, y, err, method=method, transform="log", lam=lam if method == "smoothing" else None)
        inside.append(np.abs(c(xq) - tq) < 2 * c.uncertainty(xq))
    frac = np.mean(inside)
    assert 0.8 < frac <= 1.0, frac


def test_auto_method_choice_by_cross_validation() -> None:
    x = np.linspace(1, 10, 30)
    err = np.full_like(x, 1e-3)
    rng = np.random.default_rng(3)
    # smooth noisy curve: the smoothing spline predicts left-out points better than PCHIP through the noise
    smooth = fit_curve("alpha_l", x, 1.2 + 0.03 * x + err * rng.standard_normal(x.size), err, transform="log")
    assert smooth.method == "smoothing" and smooth.lam > 0
    assert smooth.cv_scores["smoothing"] < smooth.cv_scores["pchip"]
    # exact step-like points (tiny errors): PCHIP wins and stays monotone, no overshoot
    step = fit_curve("comb_fraction", x, np.clip((x - 5.0) / 0.8, 0, 1) * 0.2, np.full_like(x, 1e-5), clip=(0.0, 1.0))
    assert step.method == "pchip"
    fine = np.linspace(1, 10, 2000)
    assert np.all(np.diff(step(fine)) >= -1e-15) and step(fine).max() <= 0.2 + 1e-12


# -- the real toy MC (slow) ------------------------------------------------------------------------


def _toy_mc_candidates(masses, n_per_mass: int, seed: int):
    toymc = pytest.importorskip("bumphunt.toymc.processes")
    from bumphunt.events import diphoton_candidates, preselect
    from bumphunt.kinematics import Beam
    from bumphunt.kinfit import apply_to_events

    beam = Beam.belle2()
    rng = np.random.default_rng(seed)
    xs, tms, mas, ngen = [], [], [], {}
    for m in masses:
        events, _ = preselect(toymc.simulate_signal(float(m), n_per_mass, rng=rng), beam=beam)
        cands = diphoton_candidates(apply_to_events(events, beam=beam), beam=beam)
        xs.append(cands["mgg"])
        tms.append(cands["truth_match"])
        mas.append(np.full(len(cands["mgg"]), float(m)))
        ngen[float(m)] = n_per_mass
    return np.concatenate(xs), np.concatenate(tms).astype(bool), np.concatenate(mas), ngen


def toy_closure_figures(model: SignalModel, x, ma, mass: float) -> dict:
    """Closure of the interpolated shape at a held-out generated mass against its MC and its own fit."""
    shape, fit = model.shape(mass), model.fit_at(mass)
    lo, hi = shape.window(20.0)
    sel = (ma == mass) & (x >= lo) & (x <= hi)
    chi2, ndf, p = chi2_equal_probability(x[sel], None, shape, lo, hi, n_bins=40)
    eff, unc = model.efficiency(mass), model.efficiency_uncertainty(mass)
    eff_t, unc_t = model.efficiency_total(mass), model.efficiency_total_uncertainty(mass)
    return {
        "mass": mass,
        "chi2": chi2,
        "ndf": ndf,
        "pvalue": p,
        "mu_bias_sigma": (shape.mu - fit.params["mu"]) / fit.params["sigma"],
        "sigma_ratio": shape.sigma / fit.params["sigma"],
        "sigma_fit_rel_err": fit.errors["sigma"] / fit.params["sigma"],
        "eff_pull": (eff - fit.eff_tm) / math.hypot(unc, fit.eff_tm_err),
        "eff_total_pull": (eff_t - fit.eff_total) / math.hypot(unc_t, fit.eff_total_err),
        "comb_fraction": (shape.comb_fraction, fit.params["comb_fraction"]),
        "edge_in_window": shape.edge_matters(hi),
    }


#: generated grid and held-out masses of the toy-MC closure: across the range, including the
#: masses where the wrong-pair edge sits just above the window (7.0), inside it (7.5) and
#: below it (8.5, no wrong pairs in the window)
TOY_MASSES = np.round(np.arange(1.0, 9.51, 0.5), 6)
TOY_HOLDOUT = (3.0, 6.0, 7.0, 7.5, 8.5)


@pytest.mark.slow
def test_closure_on_toy_mc(fitter: CalibrationFitter) -> None:
    x, tm, ma, ngen = _toy_mc_candidates(TOY_MASSES, 40000, seed=3)
    model = build_signal_model(x, tm, ma, n_generated=ngen, holdout=TOY_HOLDOUT, fitter=fitter)
    assert sum(f.ok for f in model.fits) == len(TOY_MASSES)
    # the wrong-pair edge is measured near the transition and interpolated: it is in the window at 7.5 GeV
    assert "comb_edge_q" in model.curves
    assert model.fit_at(7.5).edge_status == "measured" and model.fit_at(8.5).edge_status == "below"
    for mass in TOY_HOLDOUT:
        fit = model.fit_at(mass)
        c = toy_closure_figures(model, x, ma, mass)
        assert abs(c["mu_bias_sigma"]) < 0.1, c
        # sigma within 3 % (plus the held-out fit's own error)
        assert abs(c["sigma_ratio"] - 1) < 0.03 + 2 * c["sigma_fit_rel_err"], c
        # the interpolated shape describes the held-out MC as well as that mass's own fit does (with 40000
        # events per mass the DSCB family itself shows deviations at p ~ 1e-3 at some masses; the chi2
        # p-values at the analysis' MC statistics are tested in test_shape_fits_are_good_across_the_mass_range)
        lo, hi = model.shape(mass).window(20.0)
        own = chi2_equal_probability(x[(ma == mass) & (x >= lo) & (x <= hi)], None, fit.shape(), lo, hi, n_bins=40)[0]
        # where the wrong-pair edge lies inside the window (7.5 GeV) the interpolated edge costs more at this
        # precision (chi2 +30 for 39 ndf with 40000 events; known, in the issue notes): a looser bound there
        allowed = (5 if c["edge_in_window"] else 3) * math.sqrt(2 * c["ndf"])
        assert c["chi2"] - own < allowed, (c, own)
        assert abs(c["eff_pull"]) < 3.0 and abs(c["eff_total_pull"]) < 3.0, c
        # the combinatorial fraction follows the edge: no wrong pairs predicted where there are none
        assert abs(c["comb_fraction"][0] - c["comb_fraction"][1]) < 3 * fit.errors["comb_fraction"] + 0.01, c
    assert toy_closure_figures(model, x, ma, 7.5)["edge_in_window"]
    assert model.shape(8.5).comb_fraction < 1e-3


# -- command line -------------------------------------------------------------------------------------


def test_cli_build_and_plot(tmp_path) -> None:
    toymc = pytest.importorskip("bumphunt.toymc.processes")
    from click.testing import CliRunner

    from bumphunt.cli import cli
    from bumphunt.events import write_events

    rng = np.random.default_rng(8)
    files = []
    for m in (2.0, 3.0, 4.0):
        path = tmp_path / f"signal_{m}.root"
        events = toymc.simulate_signal(m, 1500, rng=rng)
        events["event"] = np.arange(1500)
        events["weight"] = np.full(1500, 0.00371)  # sigma x L / N_gen at the generation coupling
        write_events(path, events, meta={"process": "signal", "mass": m, "n_generated": 1500})
        files += ["--signal", str(path)]
    out = tmp_path / "sm.json"
    runner = CliRunner()
    res = runner.invoke(cli, ["signal-model", "build", *files, "--n-l", "5", "--n-r", "5", "--min-events", "50", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "3 masses in [2, 4] GeV" in res.output
    model = SignalModel.load(out)
    assert model.selection["selector"] is None and model.selection["kinematic_fit"] is True
    assert 0.3 < model.efficiency(3.0) < 1.0
    assert abs(model.shape(3.0).mu - 3.0) < 0.01
    # the efficiency is the count of truth-matched candidates in the window over the events
    # generated, whatever the event weights (here sigma x L / N_gen of a weighted toy sample)
    from bumphunt.events import diphoton_candidates, preselect, read_events
    from bumphunt.kinfit import apply_to_events

    for m in (2.0, 3.0, 4.0):
        sel, _ = preselect(read_events([str(tmp_path / f"signal_{m}.root")]))
        cands = diphoton_candidates(apply_to_events(sel))
        lo, hi = model.fit_at(m).window
        n_tm = np.count_nonzero(cands["truth_match"] & (cands["mgg"] >= lo) & (cands["mgg"] <= hi))
        assert model.fit_at(m).eff_tm == pytest.approx(n_tm / 1500, rel=1e-12)
        assert model.fit_at(m).eff_tm > 0.3
    res = runner.invoke(cli, ["signal-model", "plot", str(out), "--out", str(tmp_path / "plots")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "plots" / "parameters_vs_mass.png").is_file()
    assert len(list((tmp_path / "plots").glob("fit_m*.png"))) == 3
    # user errors are clean messages, not tracebacks
    res = runner.invoke(cli, ["signal-model", "build", *files, "--working-point", "0.5", "--out", str(tmp_path / "x.json")])
    assert res.exit_code != 0 and "--working-point needs --selection" in res.output
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    res = runner.invoke(cli, ["signal-model", "plot", str(bad), "--out", str(tmp_path / "p2")])
    assert res.exit_code != 0 and "missing key" in res.output and "Traceback" not in res.output


@pytest.mark.slow
def test_shape_fits_are_good_across_the_mass_range(fitter: CalibrationFitter) -> None:
    """Toy MC with the calorimeter's low-side tail at the analysis' MC statistics (4000 events per mass, 37 masses
    0.5-9.5 GeV): the DSCB + Chebyshev fits describe every mass (chi2 p-values uniform), and the core width varies
    smoothly with mass once the tail starts are smooth curves."""
    from scipy import stats

    masses = np.round(np.arange(0.5, 9.51, 0.25), 6)
    x, tm, ma, ngen = _toy_mc_candidates(masses, 4000, seed=1)
    models = {tails: build_signal_model(x, tm, ma, n_generated=ngen, fitter=fitter, smooth_tails=tails) for tails in ((), ("alpha_l", "alpha_r"))}
    jumps = {}
    for tails, model in models.items():
        assert all(f.ok for f in model.fits) and len(model.fits) == len(masses)
        sigma = np.array([f.params["sigma"] for f in model.fits])
        jumps[tails] = np.abs(np.diff(sigma) / sigma[:-1]).max()
    p = np.array([f.pvalue for f in models[("alpha_l", "alpha_r")].fits])
    assert stats.kstest(p, "uniform").pvalue > 0.01, np.round(p, 4)
    assert np.sum(p < 1e-3) <= 1, np.round(p, 4)
    # the core width moves by less than 10% between neighbouring masses (the free tails let it jump more)
    assert jumps[("alpha_l", "alpha_r")] < 0.1 and jumps[("alpha_l", "alpha_r")] < jumps[()], jumps

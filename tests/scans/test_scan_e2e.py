"""End-to-end scans with the real fit engine (fits.evaluate_hypotheses) on small toy spectra."""

from __future__ import annotations

import csv
import io
import json
import math

import numpy as np
import pytest

from scans import ScanInputError, scan
from scans.result import POINT_KEYS, points_csv
from scans.testing import analytic_signal_model, sample_signal, toy_spectrum
from signal_models import alp

M_INJ = 1.5
N_INJ = 150
LUMI = 0.445
CFG = {"mass": {"min": 0.3, "max": 3.5}, "lee": {"toys": 0}, "luminosity_fb": LUMI, "beam": {"sqrt_s": 10.58}}


@pytest.fixture(scope="module")
def model():
    return analytic_signal_model()


@pytest.fixture(scope="module")
def injected(model):
    """30k background candidates on [0.1, 4] GeV plus 150 signal candidates at 1.5 GeV."""
    bkg = toy_spectrum(30_000, lo=0.1, hi=4.0, slope=0.5, seed=3)
    sh = model.shape(M_INJ)
    lo, hi = sh.window()
    sig = sample_signal(sh, N_INJ, lo=lo, hi=hi, seed=4)
    return scan(np.r_[bkg, sig], model, config=CFG, workers=1)


def _fitted(result):
    return [p for p in result["points"] if not p["vetoed"] and p["converged"]]


def test_injected_signal_found_at_its_mass(injected) -> None:
    g = injected["global"]
    assert g["mass_at_max"] == pytest.approx(M_INJ, abs=0.051)
    p = next(p for p in injected["points"] if p["mass"] == pytest.approx(M_INJ))
    # all injected events lie in the window: the fitted yield estimates N_INJ
    assert abs(p["nsig"] - N_INJ) < 3 * p["nsig_err"]
    # expected local Z ~ N / sigma(N) (Wald) within the statistical spread of 1
    assert abs(p["z_local"] - N_INJ / p["nsig_err"]) < 2.5
    assert p["z_local"] > 2.0
    # the observed limit sits above the expected band where the signal is
    assert p["ul_nsig_obs"] > p["ul_nsig_exp"][3]
    assert 0 <= g["z_global"] < g["max_z_local"]


def test_limits_cover_expected_band_away_from_signal(injected) -> None:
    pts = [p for p in _fitted(injected) if abs(p["mass"] - M_INJ) > 0.4]
    assert len(pts) > 30
    obs = np.array([p["ul_nsig_obs"] for p in pts])
    band = np.array([p["ul_nsig_exp"] for p in pts])
    assert np.all(np.diff(band, axis=1) > 0)
    in1 = np.mean((obs > band[:, 1]) & (obs < band[:, 3]))
    in2 = np.mean((obs > band[:, 0]) & (obs < band[:, 4]))
    below = np.mean(obs < band[:, 2])
    # 68% / 95% / 50% with ~40 correlated points (effective number ~ 15): generous bounds
    assert 0.4 < in1 < 0.95
    assert in2 > 0.8
    assert 0.15 < below < 0.85


def test_vetoed_points_have_no_fit_numbers(injected) -> None:
    vetoed = [p for p in injected["points"] if p["vetoed"]]
    assert vetoed and all(abs(p["mass"] - 0.547862) < 3 * 0.00893 or abs(p["mass"] - 0.95778) < 3 * 0.0126 for p in vetoed)
    assert {p["mass"] for p in vetoed} >= {0.55}
    for p in vetoed:
        assert set(p) == {"mass", "vetoed", "reason"}


def test_result_format_strict(injected) -> None:
    text = json.dumps(injected, allow_nan=False)  # no NaN or inf anywhere
    back = json.loads(text)
    assert set(back) >= {"bumphunt_version", "config", "inputs", "luminosity_fb", "sqrt_s", "points", "global"}
    assert set(back["global"]) >= {"max_z_local", "mass_at_max", "z_global", "method"}
    for p in back["points"]:
        if p["vetoed"]:
            continue
        if p["converged"]:
            assert [k for k in p if k != "gof_pvalue"] == list(POINT_KEYS)
            assert all(v is not None for v in p.values())
            assert 0.0 <= p.get("gof_pvalue", 0.5) <= 1.0
            assert len(p["ul_nsig_exp"]) == len(p["ul_xsec_pb_exp"]) == len(p["ul_g_gev_exp"]) == 5
        else:
            assert p["reason"]
    peaks = (0.1349768, 0.547862, 0.95778)  # pi0, eta, eta': windows holding one fit it as a template, which the GoF model lacks
    tested = [p for p in back["points"] if not p["vetoed"] and p["converged"] and not any(p["window"][0] <= m <= p["window"][1] for m in peaks)]
    assert tested and all("gof_pvalue" in p for p in tested)  # the goodness of fit of every other fitted window
    assert back["gof"]["n_tested"] == sum("gof_pvalue" in p for p in back["points"])
    rows = list(csv.DictReader(io.StringIO(points_csv(injected))))
    assert len(rows) == len(injected["points"])
    assert float(rows[5]["mass"]) == injected["points"][5]["mass"]


def test_cross_section_and_coupling_conversion_by_hand(injected, model) -> None:
    sqrt_s = 10.58
    for p in _fitted(injected)[::7]:
        # N_sig counts truth-matched and combinatorial signal candidates: normalised by efficiency_total
        eff = float(model.efficiency(p["mass"])) / (1 - model.comb_fraction)
        assert float(model.efficiency_total(p["mass"])) == pytest.approx(eff)
        assert p["efficiency"] == pytest.approx(eff)
        plain = p["ul_nsig_obs"] / (eff * LUMI * 1000.0)  # pb, without the systematic
        # the constrained eff x L uncertainty (~5%) can only weaken the limit, by a few percent
        assert plain * 0.999 <= p["ul_xsec_pb_obs"] <= plain * 1.1
        # g from sigma = alpha g^2 / 24 (1 - m^2/s)^3 (hbar c)^2, inverted by hand
        per_g2 = (1 / 137.035999) / 24 * (1 - p["mass"] ** 2 / sqrt_s**2) ** 3 * 0.3893793721e9
        assert p["ul_g_gev_obs"] == pytest.approx(math.sqrt(p["ul_xsec_pb_obs"] / per_g2), rel=1e-10)
        for xs, g in zip(p["ul_xsec_pb_exp"], p["ul_g_gev_exp"]):
            assert alp.cross_section_pb(p["mass"], g, sqrt_s) == pytest.approx(xs, rel=1e-10)


def test_background_only_toys_give_global_significance(model) -> None:
    bkg = toy_spectrum(20_000, lo=0.1, hi=3.0, slope=0.5, seed=11)
    cfg = {"mass": {"min": 0.3, "max": 1.8}, "lee": {"toys": 6, "seed": 5, "background_order": 6, "bins": 400}}
    res = scan(bkg, model, config=cfg, workers=1)
    g = res["global"]
    assert g["n_toys"] == 6 and "toys" in g
    assert g["method"].startswith("gross-vitells")
    assert g["n_upcrossings"] > 0 and g["n_upcrossings_err"] > 0
    # background only: nothing significant globally
    assert g["z_global"] < 2.5 and g["toys"]["p_global"] > 0.01
    assert 0 < g["p_global"] <= 1 and g["p_local"] <= g["p_global"]


def test_window_without_events_is_flagged(model) -> None:
    # a gap in the data: windows around 2.5 GeV hold no candidates
    x = toy_spectrum(20_000, lo=0.1, hi=4.0, slope=0.5, seed=12)
    x = x[(x < 2.2) | (x > 2.9)]
    # windows that straddle the edge of the gap are vetoed here (they are the fit engine's business)
    cfg = {"mass": {"min": 1.9, "max": 2.8}, "window_n_sigma": 5, "lee": {"toys": 0},
           "vetoes": {"ranges": [[2.08, 2.33], [2.77, 2.95]]}}
    res = scan(x, model, config=cfg, workers=1)
    flagged = [p for p in res["points"] if not p["vetoed"] and not p["converged"]]
    assert flagged and all(p["n_events"] == 0 and "candidates" in p["reason"] for p in flagged)
    assert all("nsig" not in p for p in flagged)
    assert any(p["converged"] for p in res["points"])
    # nothing fittable at all: an error before any fit
    with pytest.raises(ScanInputError, match="none of the .* mass points can be fitted"):
        scan(x, model, config={"mass": {"min": 2.4, "max": 2.6}, "window_n_sigma": 5, "lee": {"toys": 0}}, workers=1)


@pytest.mark.slow
def test_limit_band_coverage_on_independent_spectra(model) -> None:
    """Background-only: over independent spectra the observed limit at a fixed mass falls inside
    the +-1 / +-2 sigma expected bands at about 68% / 95% and below the median about half the time."""
    obs, band, z = [], [], []
    for seed in range(120):
        x = toy_spectrum(5_000, lo=0.5, hi=2.5, slope=0.5, seed=1000 + seed)
        res = scan(x, model, config={"mass": {"min": 1.5, "max": 1.5}, "lee": {"toys": 0}}, workers=1)
        p = res["points"][0]
        if p["converged"]:
            obs.append(p["ul_nsig_obs"])
            band.append(p["ul_nsig_exp"])
            z.append(p["z_local"])
    obs, band = np.array(obs), np.array(band)
    assert len(obs) >= 110
    in1 = np.mean((obs > band[:, 1]) & (obs < band[:, 3]))
    in2 = np.mean((obs > band[:, 0]) & (obs < band[:, 4]))
    # binomial sigma with n = 120: ~4% at 68%, ~2% at 95%; the q~ limit is bounded below, so the
    # lower band edge is reached by every strong downward fluctuation: allow 3 sigma
    assert abs(in1 - 0.68) < 0.13
    assert in2 > 0.88
    assert abs(np.mean(obs < band[:, 2]) - 0.5) < 0.15
    # local Z under the background-only hypothesis: positive about half the time, P(Z > 1) ~ 16%
    z = np.array(z)
    assert abs(np.mean(z > 0) - 0.5) < 0.15 and abs(np.mean(z > 1) - 0.16) < 0.08


@pytest.mark.slow
def test_real_signal_model_recovers_injected_cross_section(tmp_path) -> None:
    """With a SignalModel calibrated on synthetic signal MC, the cross-section fitted at the
    injected mass matches the injected one: N_sig / (efficiency_total L) = N_generated / L."""
    pytest.importorskip("zfit")
    from signal_models import SignalModel, build_signal_model
    from signal_models.synthetic import TruthCurves, generate_candidates

    truth = TruthCurves()
    masses = np.round(np.linspace(0.5, 4.5, 5), 6)
    x, tm, ma, ngen = generate_candidates(masses, n_generated=8000, truth=truth, seed=11)
    sm = build_signal_model(x, tm, ma, n_generated=ngen, selection={"working_point": "none"},
                            fixed_values={"n_l": truth.n_l, "n_r": truth.n_r})
    sm = SignalModel.load(sm.save(tmp_path / "model.json"))
    lumi = 1.0  # fb^-1
    n_gen_signal = 1500  # generated signal events at 2.5 GeV: sigma = 1.5 pb
    sig, _, _, _ = generate_candidates([2.5], n_generated=n_gen_signal, truth=truth, seed=12, outside_width=0.0)
    bkg = toy_spectrum(40_000, lo=0.1, hi=5.0, slope=0.5, seed=13)
    cfg = {"mass": {"min": 2.0, "max": 3.0}, "luminosity_fb": lumi, "lee": {"toys": 0}, "signal_model": str(tmp_path / "model.json")}
    res = scan(np.r_[bkg, sig], sm, config=cfg, workers=1)
    p = next(p for p in res["points"] if p["mass"] == pytest.approx(2.5))
    assert p["converged"] and res["global"]["mass_at_max"] == pytest.approx(2.5, abs=0.051)
    assert p["efficiency"] == pytest.approx(float(sm.efficiency_total(2.5)))
    xsec = p["nsig"] / (p["efficiency"] * lumi * 1000.0)
    xsec_err = p["nsig_err"] / (p["efficiency"] * lumi * 1000.0)
    assert abs(xsec - n_gen_signal / (lumi * 1000.0)) < 3 * xsec_err
    assert p["ul_xsec_pb_obs"] > n_gen_signal / (lumi * 1000.0) * 0.8

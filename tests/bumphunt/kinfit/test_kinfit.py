"""4C kinematic fit: statistics on exact toy events, agreement with an independent minimiser and the reference, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import optimize, stats

from bumphunt import kinfit
from bumphunt.errors import InputError
from bumphunt.kinematics import Beam, boost, invariant_mass, p4_from_spherical
from bumphunt.kinfit.result import MAX_ITER
from bumphunt.toymc.exact import ggg_events, three_photon_sample

BEAM = Beam.belle2()


def _fit(ev: dict, **kw) -> kinfit.KinFitResult:
    return kinfit.fit(ev["E"], ev["theta"], ev["phi"], ev["cov"], BEAM, **kw)


def _check_statistics(res: kinfit.KinFitResult, n: int) -> None:
    assert res.converged.mean() >= 0.995
    c = res.converged
    assert res.ndf == 4
    # chi2 of a 4C fit with exact Gaussian errors: mean 4, std sqrt(8)
    assert res.chi2[c].mean() == pytest.approx(4.0, abs=0.1)
    # p-value flat
    assert stats.kstest(res.pvalue[c], "uniform").pvalue > 1e-3
    pulls = res.pulls[c].reshape(-1, 9)
    assert np.all(np.isfinite(pulls))
    np.testing.assert_array_less(np.abs(pulls.mean(0)), 0.05)
    np.testing.assert_array_less(np.abs(pulls.std(0) - 1.0), 0.05)


@pytest.mark.parametrize("m_a", [None, 2.0, 8.0], ids=["ggg", "signal_2GeV", "signal_8GeV"])
def test_pulls_chi2_pvalue_on_exact_events(m_a: float | None) -> None:
    n = 20000
    ev = three_photon_sample(n, beam=BEAM, rng=np.random.default_rng(11), m_a=m_a, sort=False)
    res = _fit(ev)
    _check_statistics(res, n)
    # constraints satisfied by the fitted photons
    p = p4_from_spherical(res.E, res.theta, res.phi).sum(1)
    np.testing.assert_allclose(p[res.converged], np.broadcast_to(BEAM.p4, p[res.converged].shape), atol=1e-4)
    # the fitted covariance describes the spread of (fitted - true)
    z = (res.E - ev["mc_E"]) / np.sqrt(res.cov[..., 0, 0])
    assert z.std() == pytest.approx(1.0, abs=0.03)
    assert abs(z.mean()) < 0.03


def test_pulls_on_energy_sorted_events_within_tolerance() -> None:
    ev = three_photon_sample(20000, beam=BEAM, rng=np.random.default_rng(12), m_a=5.0, sort=True)
    _check_statistics(_fit(ev), 20000)


def _chi2_and_constraints(ev: dict, i: int):
    a0 = np.stack([ev["E"][i], ev["theta"][i], ev["phi"][i]], 1).ravel()
    V0 = np.zeros((9, 9))
    for k in range(3):
        V0[3 * k:3 * k + 3, 3 * k:3 * k + 3] = ev["cov"][i, k]
    L = np.linalg.cholesky(V0)

    def to_alpha(z: np.ndarray) -> np.ndarray:
        return a0 + L @ z

    def chi2(z: np.ndarray) -> float:
        return float(z @ z)

    def cons(z: np.ndarray) -> np.ndarray:
        a = to_alpha(z)
        return p4_from_spherical(a[0::3], a[1::3], a[2::3]).sum(0) - BEAM.p4

    return a0, to_alpha, chi2, cons


def test_correlated_covariance_matches_independent_minimiser() -> None:
    """With E-theta correlation 0.6 the fit equals scipy's constrained minimum (SLSQP)."""
    ev = three_photon_sample(30, beam=BEAM, rng=np.random.default_rng(5), m_a=3.0, corr_e_theta=0.6)
    assert np.all(ev["cov"][..., 0, 1] != 0)
    res = _fit(ev, tol_chi2=1e-12, tol_constraint=1e-12, max_iter=50)
    assert res.converged.all()
    for i in range(30):
        a0, to_alpha, chi2, cons = _chi2_and_constraints(ev, i)
        sol = optimize.minimize(chi2, np.zeros(9), jac=lambda z: 2 * z, method="SLSQP",
                                constraints=[{"type": "eq", "fun": cons}], options={"ftol": 1e-12, "maxiter": 1000})
        assert sol.success
        a = to_alpha(sol.x)
        ours = np.stack([res.E[i], res.theta[i], res.phi[i]], 1).ravel()
        np.testing.assert_allclose(ours, a, rtol=1e-6, atol=1e-9)
        assert res.chi2[i] == pytest.approx(sol.fun, rel=1e-6, abs=1e-9)


def test_vectorised_equals_per_event_reference() -> None:
    ev = three_photon_sample(300, beam=BEAM, rng=np.random.default_rng(6), corr_e_theta=-0.3)
    ev["E"][:20] *= 0.85  # far from the constraint: exercises the step control
    for beam_cov in (None, "spread"):
        a = _fit(ev, beam_cov=beam_cov)
        b = kinfit.fit_reference(ev["E"], ev["theta"], ev["phi"], ev["cov"], BEAM, beam_cov=beam_cov)
        np.testing.assert_array_equal(a.converged, b.converged)
        np.testing.assert_array_equal(a.n_iter, b.n_iter)
        for name in ("E", "theta", "phi", "cov", "chi2"):
            np.testing.assert_allclose(getattr(a, name), getattr(b, name), rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(a.pulls, b.pulls, rtol=1e-7, atol=1e-9)


def test_full_covariance_is_consistent() -> None:
    ev = three_photon_sample(500, beam=BEAM, rng=np.random.default_rng(7), m_a=1.0, corr_e_theta=0.4)
    res = _fit(ev, full_cov=True)
    V = res.cov_full
    np.testing.assert_allclose(V, np.transpose(V, (0, 2, 1)), atol=1e-18)
    for i in range(3):
        np.testing.assert_allclose(V[:, 3 * i:3 * i + 3, 3 * i:3 * i + 3], res.cov[:, i], rtol=1e-12, atol=1e-20)
    # the fitted parameters lie on the constraint surface: D V D^T = 0 (rank 9 - 4 = 5)
    E, th, ph = res.E, res.theta, res.phi
    D = np.zeros((res.n_events, 4, 9))
    st, ct, sp, cp = np.sin(th), np.cos(th), np.sin(ph), np.cos(ph)
    D[:, :, 0::3] = np.stack([st * cp, st * sp, ct, np.ones_like(E)], 1)
    D[:, :, 1::3] = np.stack([E * ct * cp, E * ct * sp, -E * st, np.zeros_like(E)], 1)
    D[:, :, 2::3] = np.stack([-E * st * sp, E * st * cp, np.zeros_like(E), np.zeros_like(E)], 1)
    V0 = np.zeros_like(V)
    for i in range(3):
        V0[:, 3 * i:3 * i + 3, 3 * i:3 * i + 3] = ev["cov"][:, i]
    DT = np.transpose(D, (0, 2, 1))
    DVD = D @ V @ DT
    DV0D = D @ V0 @ DT
    assert np.abs(DVD).max() < 1e-6 * np.abs(DV0D).max()
    ev_eig = np.linalg.eigvalsh(V)
    assert (ev_eig > -1e-15).all()


def test_mgg_resolution_improves_at_8_gev() -> None:
    ev = three_photon_sample(20000, beam=BEAM, rng=np.random.default_rng(8), m_a=8.0)
    res = _fit(ev)
    i, j = ev["truth_a1"], ev["truth_a2"]
    rows = np.arange(len(i))

    def mgg(E, th, ph):
        p = p4_from_spherical(E, th, ph)
        return invariant_mass(p[rows, i], p[rows, j])

    def width(x):
        lo, hi = np.quantile(x, [0.16, 0.84])
        return 0.5 * (hi - lo)

    raw = width(mgg(ev["E"], ev["theta"], ev["phi"]))
    fitted = width(mgg(res.E, res.theta, res.phi)[res.converged])
    assert fitted < 0.8 * raw


def test_far_from_constraint_converges_with_step_control() -> None:
    ev = three_photon_sample(2000, beam=BEAM, rng=np.random.default_rng(9))
    ev["E"] = ev["E"] * np.random.default_rng(1).uniform(0.8, 1.05, (2000, 1))
    res = _fit(ev, max_iter=40)
    assert res.converged.mean() >= 0.995
    p = p4_from_spherical(res.E, res.theta, res.phi).sum(1)
    np.testing.assert_allclose(p[res.converged], np.broadcast_to(BEAM.p4, p[res.converged].shape), atol=1e-4)
    assert (res.E[res.converged] > 0).all()


def test_phi_periodicity() -> None:
    ev = three_photon_sample(2000, beam=BEAM, rng=np.random.default_rng(10))
    a = _fit(ev)
    shifted = dict(ev)
    shifted["phi"] = ev["phi"] + 2 * np.pi * np.random.default_rng(2).integers(-2, 3, ev["phi"].shape)
    b = _fit(shifted)
    np.testing.assert_allclose(b.chi2, a.chi2, rtol=1e-9)
    np.testing.assert_allclose(b.E, a.E, rtol=1e-9)
    np.testing.assert_allclose(np.angle(np.exp(1j * (b.phi - a.phi))), 0.0, atol=1e-9)
    assert (np.abs(b.phi[b.converged]) <= np.pi).all()
    np.testing.assert_array_equal(a.converged, b.converged)
    np.testing.assert_allclose(b.pulls, a.pulls, atol=1e-6)


def test_beam_energy_spread_soft_constraint() -> None:
    """Events generated with beam-energy spread: the soft beam constraint restores chi2 ~ 4 and unit pulls."""
    rng = np.random.default_rng(13)
    n = 20000
    # a larger spread than nominal makes the effect visible
    beam = Beam(e_her=7.0, e_ler=4.0, crossing_angle=0.083, e_spread_her=3e-3, e_spread_ler=3e-3)
    cm = beam.to_cm(ggg_events(n, beam=beam, rng=rng))
    e_h = beam.e_her * (1 + beam.e_spread_her * rng.standard_normal(n))
    e_l = beam.e_ler * (1 + beam.e_spread_ler * rng.standard_normal(n))
    P = e_h[:, None] * (beam.p4_her / beam.e_her) + e_l[:, None] * (beam.p4_ler / beam.e_ler)
    rs = invariant_mass(P)
    lab = boost(cm * (rs / beam.sqrt_s)[:, None, None], (P[:, :3] / P[:, 3:])[:, None, :])
    np.testing.assert_allclose(lab.sum(1), P, atol=1e-9)
    ev = three_photon_sample(n, beam=beam, rng=rng, p4=lab, sort=False)
    hard = kinfit.fit(ev["E"], ev["theta"], ev["phi"], ev["cov"], beam)
    soft = kinfit.fit(ev["E"], ev["theta"], ev["phi"], ev["cov"], beam, beam_cov="spread")
    assert soft.ndf == 4
    assert hard.chi2[hard.converged].mean() > 4.3
    _check_statistics(soft, n)
    # the fitted beam four-momentum moves towards the true one
    assert np.abs(soft.beam_p4[:, 3] - P[:, 3]).mean() < np.abs(BEAM.p4[3] - P[:, 3]).mean()


def test_bad_input_shapes_raise() -> None:
    ev = three_photon_sample(10, beam=BEAM, rng=np.random.default_rng(1))
    with pytest.raises(InputError, match=r"E must have shape \(n, 3\)"):
        kinfit.fit(ev["E"][:, :2], ev["theta"], ev["phi"], ev["cov"], BEAM)
    with pytest.raises(InputError, match="cov must have shape"):
        kinfit.fit(ev["E"], ev["theta"], ev["phi"], ev["cov"][:, :, :2], BEAM)
    with pytest.raises(InputError, match="theta has 9 events"):
        kinfit.fit(ev["E"], ev["theta"][:9], ev["phi"], ev["cov"], BEAM)
    with pytest.raises(InputError, match="beam_cov"):
        kinfit.fit(ev["E"], ev["theta"], ev["phi"], ev["cov"], BEAM, beam_cov="nonsense")
    with pytest.raises(InputError, match="beam must be"):
        kinfit.fit(ev["E"], ev["theta"], ev["phi"], ev["cov"], "belle2")


def test_bad_events_are_flagged_not_nan() -> None:
    ev = three_photon_sample(200, beam=BEAM, rng=np.random.default_rng(2))
    ref = _fit(ev)
    E, th, ph, cov = ev["E"].copy(), ev["theta"].copy(), ev["phi"].copy(), ev["cov"].copy()
    E[0, 1] = np.nan
    th[1, 0] = np.inf
    E[2, 2] = -0.3
    th[3, 1] = -0.1
    cov[4, 0, 0, 0] = -1e-4  # negative variance
    cov[5, 1] = np.diag([1e-4, 1e-6, 1e-6])
    cov[5, 1, 0, 1] = cov[5, 1, 1, 0] = 1e-3  # |corr| > 1: not positive definite
    cov[6, 2, 0, 2] = 1e-5  # asymmetric
    res = kinfit.fit(E, th, ph, cov, BEAM)
    assert not res.converged[:7].any()
    assert res.converged[7:].all()
    expect = ["non-finite", "non-finite", "non-positive photon energy", "theta outside", "positive definite",
              "positive definite", "positive definite"]
    for i, text in enumerate(expect):
        assert text in res.reason[i]
        assert res.status[i] != 0
    assert (res.reason[7:] == "").all()
    # the good events are untouched by the bad ones
    np.testing.assert_allclose(res.E[7:], ref.E[7:], rtol=1e-12)
    np.testing.assert_allclose(res.chi2[7:], ref.chi2[7:], rtol=1e-12)
    # no NaN where the input was finite; failures carry chi2 = inf and p = 0
    assert np.isfinite(res.E[2:]).all() and np.isfinite(res.theta[2:]).all()
    assert np.isinf(res.chi2[:7]).all() and (res.pvalue[:7] == 0).all()
    assert np.isfinite(res.chi2[7:]).all()


def test_apply_to_events_adds_fitted_fields() -> None:
    ev = three_photon_sample(500, beam=BEAM, rng=np.random.default_rng(3), m_a=4.0)
    ev["E"][0, 0] = -1.0
    out = kinfit.apply_to_events(ev, beam=BEAM)
    for key in ("fit_E", "fit_theta", "fit_phi"):
        assert out[key].shape == (500, 3)
    for key in ("kinfit_chi2", "kinfit_pvalue", "kinfit_converged"):
        assert out[key].shape == (500,)
    assert not out["kinfit_converged"][0]
    np.testing.assert_array_equal(out["fit_E"][0], ev["E"][0])  # fallback: measured values
    assert out["kinfit_converged"][1:].all()
    assert "fit_E" not in ev  # input not modified
    with pytest.raises(InputError, match="'theta'"):
        kinfit.apply_to_events({"E": ev["E"], "phi": ev["phi"]}, beam=BEAM)


def test_apply_to_events_uses_covariance_model() -> None:
    from bumphunt.kinfit import PhotonCovarianceModel

    ev = three_photon_sample(300, beam=BEAM, rng=np.random.default_rng(4), m_a=4.0)
    model = PhotonCovarianceModel(use_ntuple=False, energy_scale={1: 2.0, 2: 2.0, 3: 2.0})
    a = kinfit.apply_to_events(ev, beam=BEAM)
    b = kinfit.apply_to_events(ev, beam=BEAM, covariance_model=model)
    # doubling sigma_E lowers the chi2 of events whose energies carry the imbalance
    assert np.median(b["kinfit_chi2"]) < np.median(a["kinfit_chi2"])


@pytest.mark.slow
@pytest.mark.parametrize("m_a", [0.5, 2.0, 5.0, 8.0, 9.5])
def test_statistics_large_samples(m_a: float) -> None:
    n = 200000
    ev = three_photon_sample(n, beam=BEAM, rng=np.random.default_rng(int(100 * m_a)), m_a=m_a, sort=False)
    _check_statistics(_fit(ev), n)


def test_cli_kinfit_and_calibrate(tmp_path) -> None:
    from click.testing import CliRunner

    from bumphunt.cli import cli
    from bumphunt.events import load_three_photon, save_three_photon, write_events
    from bumphunt.events.detector import Resolution
    from bumphunt.toymc import simulate_control

    ev = three_photon_sample(400, beam=BEAM, rng=np.random.default_rng(30), m_a=4.0)
    save_three_photon(tmp_path / "sig_3g.root", ev, meta={"beam": BEAM.to_dict()})
    runner = CliRunner()
    r = runner.invoke(cli, ["kinfit", str(tmp_path / "sig_3g.root"), "--out", str(tmp_path / "fit.root"),
                            "--plots", str(tmp_path / "plots")])
    assert r.exit_code == 0, r.output
    out = load_three_photon(tmp_path / "fit.root")
    ref = kinfit.apply_to_events(ev, beam=BEAM)
    np.testing.assert_allclose(out["fit_E"], ref["fit_E"], rtol=1e-12)
    np.testing.assert_array_equal(out["kinfit_converged"].astype(bool), ref["kinfit_converged"])
    for name in ("kinfit_pulls.png", "kinfit_chi2_pvalue.png", "kinfit_mgg_resolution.png"):
        assert (tmp_path / "plots" / name).stat().st_size > 0
    # user errors are clean messages
    r = runner.invoke(cli, ["kinfit", str(tmp_path / "sig_3g.root"), "--out", str(tmp_path / "x.root"), "--pcm", str(tmp_path / "sig_3g.root")])
    assert r.exit_code != 0 and "not valid JSON" in r.output and "Traceback" not in r.output

    ctrl = simulate_control(4000, rng=np.random.default_rng(31), beam=BEAM, resolution=Resolution(energy_scale={1: 1.0, 2: 1.3, 3: 1.0}))
    ctrl["event"] = np.arange(4000, dtype=np.int64)
    write_events(tmp_path / "mumug.root", ctrl, meta={"process": "mumug", "beam": BEAM.to_dict()})
    r = runner.invoke(cli, ["calibrate-photons", str(tmp_path / "mumug.root"), "--out", str(tmp_path / "pcm.json"),
                            "--plot", str(tmp_path / "cal.png")])
    assert r.exit_code == 0, r.output
    from bumphunt.kinfit import PhotonCovarianceModel

    model = PhotonCovarianceModel.load(tmp_path / "pcm.json")
    err = model.meta["calibration"]["params"]["2"]["scale_err"]
    assert abs(model.energy_scale[2] - 1.3) < 4 * err
    r = runner.invoke(cli, ["kinfit", str(tmp_path / "sig_3g.root"), "--out", str(tmp_path / "fit2.root"), "--pcm", str(tmp_path / "pcm.json")])
    assert r.exit_code == 0, r.output


def test_max_iter_exhausted_is_flagged() -> None:
    ev = three_photon_sample(100, beam=BEAM, rng=np.random.default_rng(40))
    res = _fit(ev, max_iter=1)
    assert not res.converged.any()
    assert (res.status == MAX_ITER).all()
    assert all("max_iter" in r for r in res.reason)
    assert (res.n_iter == 1).all()
    np.testing.assert_array_equal(res.E, ev["E"])  # measured values returned, flagged
    assert np.isinf(res.chi2).all() and (res.pvalue == 0).all()


@pytest.mark.parametrize("m_a", [None, 8.0], ids=["ggg", "signal_8GeV"])
def test_statistics_on_toy_mc_with_its_covariance(m_a: float | None) -> None:
    """Full toy MC with its written covariance, beam-energy spread and the soft beam constraint.

    Cluster merging, beam background, displaced decays and the calorimeter's
    low-side energy tail are switched off (the fit model assumes three prompt,
    separately measured photons with Gaussian errors). For
    signal the photons are put in truth order (a1, a2, recoil): ordering by
    measured energy selects upward energy fluctuations of the first photon.
    """
    from bumphunt.events import preselect
    from bumphunt.toymc import simulate_background, simulate_signal
    from bumphunt.toymc.detector_sim import DetectorSettings
    from bumphunt.toymc.processes import GeneratorSettings

    det = DetectorSettings(merge_angle=0.0, beam_bkg_rate=0.0, fake_track_rate=0.0, energy_tail=0.0)
    gen = GeneratorSettings(beam_energy_spread=True)
    rng = np.random.default_rng(50)
    if m_a is None:
        raw = simulate_background("ggg", 40000, rng=rng, beam=BEAM, detector=det, generator=gen)
    else:
        raw = simulate_signal(m_a, 25000, rng=rng, beam=BEAM, detector=det, generator=gen)
    raw["event"] = np.arange(len(raw["process"]))
    ev, _ = preselect(raw, beam=BEAM)
    if m_a is not None:
        order = np.stack([ev["truth_a1"], ev["truth_a2"], ev["truth_recoil"]], 1)
        ok = (order >= 0).all(1) & (np.sort(order, 1) == np.arange(3)).all(1)
        order = order[ok]
        ev = {k: np.take_along_axis(ev[k][ok], order.reshape(order.shape + (1,) * (ev[k].ndim - 2)), 1)
              for k in ("E", "theta", "phi", "cov")}
    n = len(ev["E"])
    assert n > 10000
    res = kinfit.fit(ev["E"], ev["theta"], ev["phi"], ev["cov"], BEAM, beam_cov="spread")
    _check_statistics(res, n)


def test_step_halving_path_matches_reference() -> None:
    """Events far from the constraint with large angular errors need step halving; both implementations agree."""
    rng = np.random.default_rng(60)
    n = 150
    ev = three_photon_sample(n, beam=BEAM, rng=rng)
    cov = np.zeros((n, 3, 3, 3))
    cov[..., 0, 0] = (0.01 * ev["E"]) ** 2
    cov[..., 1, 1] = 0.1**2
    cov[..., 2, 2] = 0.2**2
    th = np.clip(ev["theta"] + rng.normal(0, 0.1, (n, 3)), 0.1, 3.0)
    ph = ev["phi"] + rng.normal(0, 0.2, (n, 3))
    E = ev["E"] * rng.uniform(0.7, 1.2, (n, 3))
    a = kinfit.fit(E, th, ph, cov, BEAM, max_iter=40)
    b = kinfit.fit_reference(E, th, ph, cov, BEAM, max_iter=40)
    assert (a.n_iter > 6).sum() > 10  # the step control was active
    np.testing.assert_array_equal(a.n_iter, b.n_iter)
    np.testing.assert_array_equal(a.status, b.status)
    np.testing.assert_allclose(a.E, b.E, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(a.chi2[a.converged], b.chi2[b.converged], rtol=1e-9)
    assert a.converged.mean() > 0.8
    assert np.isfinite(a.E).all() and np.isfinite(a.theta).all()


def test_import_does_not_load_numba() -> None:
    import subprocess
    import sys

    code = "import sys, bumphunt, bumphunt.kinfit; from bumphunt.cli import cli; print('numba' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_import_is_light() -> None:
    """The package and its modules import neither numba nor plotting, fitting or TensorFlow libraries."""
    import subprocess
    import sys

    code = ("import sys, bumphunt.kinfit, bumphunt.kinfit.plots, bumphunt.kinfit.api, bumphunt.kinfit.calibration; "
            "print(sorted(m for m in ('numba', 'matplotlib', 'iminuit', 'tensorflow', 'zfit') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_result_is_frozen() -> None:
    import dataclasses

    res = _fit(three_photon_sample(20, beam=BEAM, rng=np.random.default_rng(41)))
    with pytest.raises(dataclasses.FrozenInstanceError):
        res.chi2 = np.zeros(20)  # type: ignore[misc]
    with pytest.raises(InputError, match="max_iter >= 1"):
        kinfit.fit_reference(np.ones((1, 3)), np.ones((1, 3)), np.ones((1, 3)), np.zeros((1, 3, 3, 3)), BEAM, max_iter=0)

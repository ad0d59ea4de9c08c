"""Toy MC physics and production: kinematics, resolution, cross-sections, reproducibility, config errors."""

from __future__ import annotations

import json
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot
from scipy import stats

from bumphunt import toymc
from bumphunt.errors import ConfigError
from bumphunt.events.detector import Resolution
from bumphunt.events.schema import META_KEY, PROCESS_CODES, TREE_NAME
from bumphunt.kinematics import Beam, invariant_mass, p4_from_spherical
from bumphunt.toymc import physics
from signal_models._common.pdg import particle_mass
from signal_models.alp import decay_length as alp_decay_length

BEAM = Beam.belle2()


def pick(jagged: ak.Array, idx: np.ndarray) -> np.ndarray:
    """Per-event element ``idx`` (>= 0) of a jagged array."""
    counts = ak.to_numpy(ak.num(jagged))
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    return ak.to_numpy(ak.flatten(jagged))[starts + idx]


def cluster_p4(g: ak.Array, sel: np.ndarray, idx: np.ndarray, *, truth: bool) -> np.ndarray:
    prefix = "mc_" if truth else ""
    E = pick(g[prefix + "E"][sel], idx[sel])
    th = pick(g[prefix + "theta"][sel], idx[sel])
    ph = pick(g[prefix + "phi"][sel], idx[sel])
    return p4_from_spherical(E, th, ph)


def robust_sigma(x: np.ndarray) -> float:
    q75, q25 = np.percentile(x, [75, 25])
    return float((q75 - q25) / 1.349)


# ----------------------------------------------------------------------------- signal kinematics


def test_recoil_energy_and_alp_mass_before_smearing(rng: np.random.Generator) -> None:
    m_a = 2.0
    nominal = toymc.GeneratorSettings(beam_energy_spread=False)
    out = toymc.simulate_signal(m_a, 4000, rng=rng, beam=BEAM, generator=nominal)
    g = out["gamma"]
    sel = out["mc_idx_recoil"] >= 0
    assert sel.mean() > 0.8
    recoil_cm = BEAM.to_cm(cluster_p4(g, sel, out["mc_idx_recoil"], truth=True))
    expected = (BEAM.s - m_a**2) / (2.0 * BEAM.sqrt_s)
    np.testing.assert_allclose(recoil_cm[:, 3], expected, rtol=1e-9)
    both = (out["mc_idx_a1"] >= 0) & (out["mc_idx_a2"] >= 0)
    m_true = invariant_mass(cluster_p4(g, both, out["mc_idx_a1"], truth=True), cluster_p4(g, both, out["mc_idx_a2"], truth=True))
    np.testing.assert_allclose(m_true, m_a, rtol=1e-9)
    # the truth indices point to clusters with the matching origin code
    assert np.all(pick(g.mc_origin[both], out["mc_idx_a1"][both]) == toymc.ORIGIN["a1"])
    assert np.all(pick(g.mc_origin[sel], out["mc_idx_recoil"][sel]) == toymc.ORIGIN["recoil"])
    # with the beam-energy spread, sqrt(s) varies by ~5e-4 (relative) from event to event
    out = toymc.simulate_signal(m_a, 4000, rng=rng, beam=BEAM)
    sel = out["mc_idx_recoil"] >= 0
    e_cm = BEAM.to_cm(cluster_p4(out["gamma"], sel, out["mc_idx_recoil"], truth=True))[:, 3]
    spread = np.std(e_cm / expected - 1.0)
    assert 2e-4 < spread < 2e-3
    assert abs(np.mean(e_cm / expected - 1.0)) < 5 * spread / np.sqrt(sel.sum()) + 1e-5


def test_cluster_pulls_have_unit_width(rng: np.random.Generator) -> None:
    """(measured - true) / sqrt(written covariance) is a unit Gaussian in E, theta, phi, per region (Gaussian response)."""
    out = toymc.simulate_background("ggg", 6000, rng=rng, beam=BEAM, detector=toymc.DetectorSettings(energy_tail=0.0))
    g = out["gamma"]
    hard = ak.flatten(g.mc_origin == toymc.ORIGIN["other"]).to_numpy()
    flat = {k: ak.to_numpy(ak.flatten(g[k]))[hard] for k in ("E", "theta", "phi", "mc_E", "mc_theta", "mc_phi", "cov_EE", "cov_thetatheta", "cov_phiphi", "region")}
    dphi = np.mod(flat["phi"] - flat["mc_phi"] + np.pi, 2 * np.pi) - np.pi
    pulls = {
        "E": (flat["E"] - flat["mc_E"]) / np.sqrt(flat["cov_EE"]),
        "theta": (flat["theta"] - flat["mc_theta"]) / np.sqrt(flat["cov_thetatheta"]),
        "phi": dphi / np.sqrt(flat["cov_phiphi"]),
    }
    for region in (1, 2, 3):
        r = flat["region"] == region
        assert r.sum() > 1000
        for name, p in pulls.items():
            assert abs(np.mean(p[r])) < 0.1, (name, region)
            assert abs(np.std(p[r]) - 1.0) < 0.05, (name, region, np.std(p[r]))
    # the written covariance is the parametrisation at the true energy and region
    s_e, _, _ = Resolution().sigmas(flat["mc_E"], flat["region"])
    np.testing.assert_allclose(np.sqrt(flat["cov_EE"]), s_e, rtol=1e-12)
    # endcaps are worse than the barrel at equal energy
    e_fwd = Resolution().sigmas(np.array([2.0]), np.array([1]))[0]
    e_bar = Resolution().sigmas(np.array([2.0]), np.array([2]))[0]
    assert e_fwd > e_bar


def test_energy_response_has_the_novosibirsk_low_side_tail(rng: np.random.Generator) -> None:
    """With the default response, (E - E_true) / sigma_E follows the Novosibirsk shape of tail 0.4: core of unit width
    at the true energy, about 5% of photons more than three widths low, angles still Gaussian."""
    from bumphunt.toymc.calorimeter import novosibirsk_density

    out = toymc.simulate_background("ggg", 8000, rng=rng, beam=BEAM)
    g = out["gamma"]
    hard = ak.flatten(g.mc_origin == toymc.ORIGIN["other"]).to_numpy()
    E, mc_E, cov = (ak.to_numpy(ak.flatten(g[k]))[hard] for k in ("E", "mc_E", "cov_EE"))
    z = (E - mc_E) / np.sqrt(cov)
    # CDF of the Novosibirsk shape by numerical integration of its density (independent of the sampler's table)
    grid = np.linspace(-40, 2.5, 200_001)
    f = novosibirsk_density(grid, 0.4)
    cdf = np.cumsum(f) / np.sum(f)
    assert stats.kstest(z, lambda x: np.interp(x, grid, cdf)).pvalue > 1e-3
    assert 0.035 < np.mean(z < -3) < 0.065
    # the peak (mode) sits at the true energy and the core keeps the parametrised width
    h, edges = np.histogram(z, bins=np.linspace(-3, 3, 61))
    assert abs(0.5 * (edges[np.argmax(h)] + edges[np.argmax(h) + 1])) < 0.35
    assert np.mean(z) < -0.4  # the tail pulls the mean below the peak
    th = (ak.to_numpy(ak.flatten(g.theta))[hard] - ak.to_numpy(ak.flatten(g.mc_theta))[hard]) / np.sqrt(
        ak.to_numpy(ak.flatten(g.cov_thetatheta))[hard])
    assert abs(np.std(th) - 1.0) < 0.05


def _mass_and_propagated_sigma(out: dict) -> tuple[np.ndarray, np.ndarray]:
    g = out["gamma"]
    both = (out["mc_idx_a1"] >= 0) & (out["mc_idx_a2"] >= 0)
    i1, i2 = out["mc_idx_a1"][both], out["mc_idx_a2"][both]
    gb = g[both]
    E1, E2 = pick(gb.E, i1), pick(gb.E, i2)
    t1, t2 = pick(gb.theta, i1), pick(gb.theta, i2)
    f1, f2 = pick(gb.phi, i1), pick(gb.phi, i2)
    m = invariant_mass(p4_from_spherical(E1, t1, f1), p4_from_spherical(E2, t2, f2))
    # propagate the written (diagonal) covariances at the true values
    tE1, tE2 = pick(gb.mc_E, i1), pick(gb.mc_E, i2)
    tt1, tt2 = pick(gb.mc_theta, i1), pick(gb.mc_theta, i2)
    tf1, tf2 = pick(gb.mc_phi, i1), pick(gb.mc_phi, i2)
    cos_a = np.sin(tt1) * np.sin(tt2) * np.cos(tf1 - tf2) + np.cos(tt1) * np.cos(tt2)
    mt = np.sqrt(2 * tE1 * tE2 * (1 - cos_a))
    dcos = {
        "t1": np.cos(tt1) * np.sin(tt2) * np.cos(tf1 - tf2) - np.sin(tt1) * np.cos(tt2),
        "t2": np.sin(tt1) * np.cos(tt2) * np.cos(tf1 - tf2) - np.cos(tt1) * np.sin(tt2),
        "f1": -np.sin(tt1) * np.sin(tt2) * np.sin(tf1 - tf2),
        "f2": np.sin(tt1) * np.sin(tt2) * np.sin(tf1 - tf2),
    }
    k = -tE1 * tE2 / mt
    var = (
        (mt / (2 * tE1)) ** 2 * pick(gb.cov_EE, i1)
        + (mt / (2 * tE2)) ** 2 * pick(gb.cov_EE, i2)
        + (k * dcos["t1"]) ** 2 * pick(gb.cov_thetatheta, i1)
        + (k * dcos["t2"]) ** 2 * pick(gb.cov_thetatheta, i2)
        + (k * dcos["f1"]) ** 2 * pick(gb.cov_phiphi, i1)
        + (k * dcos["f2"]) ** 2 * pick(gb.cov_phiphi, i2)
    )
    return m, np.sqrt(var)


@pytest.mark.parametrize("m_a", [0.5, 4.0])
def test_mgg_peak_and_width_match_resolution(m_a: float, rng: np.random.Generator) -> None:
    """With a Gaussian energy response the M_gg peak has the width propagated from the written covariances."""
    out = toymc.simulate_signal(m_a, 8000, rng=rng, beam=BEAM, detector=toymc.DetectorSettings(energy_tail=0.0))
    m, sigma = _mass_and_propagated_sigma(out)
    assert len(m) > 5000
    pull = (m - m_a) / sigma
    assert abs(np.median(pull)) < 0.06
    assert abs(robust_sigma(pull) - 1.0) < 0.06, robust_sigma(pull)
    # the peak width itself agrees with the typical propagated width
    assert robust_sigma(m) == pytest.approx(np.median(sigma), rel=0.15)
    assert abs(np.median(m) - m_a) < 0.1 * np.median(sigma)


def test_three_photon_mass_near_sqrt_s(rng: np.random.Generator) -> None:
    gauss = toymc.DetectorSettings(energy_tail=0.0)  # the kinematics, not the calorimeter's low-side tail
    for out, origins in (
        (toymc.simulate_signal(1.0, 3000, rng=rng, beam=BEAM, detector=gauss), (0, 1, 2)),
        (toymc.simulate_background("ggg", 3000, rng=rng, beam=BEAM, detector=gauss), (3,)),
    ):
        g = out["gamma"]
        hard = (g.mc_origin >= min(origins)) & (g.mc_origin <= max(origins))
        complete = ak.to_numpy(ak.sum(hard, axis=1)) == 3
        gh = g[hard][complete]
        p4 = p4_from_spherical(ak.to_numpy(gh.E), ak.to_numpy(gh.theta), ak.to_numpy(gh.phi))
        m3 = invariant_mass(p4[:, 0], p4[:, 1], p4[:, 2]) / BEAM.sqrt_s
        assert complete.sum() > 1000
        assert abs(np.median(m3) - 1.0) < 0.01
        assert np.mean((m3 > 0.9) & (m3 < 1.05)) > 0.95
        # truth: sqrt(s) up to the beam-energy spread (~5e-4)
        tp4 = p4_from_spherical(ak.to_numpy(gh.mc_E), ak.to_numpy(gh.mc_theta), ak.to_numpy(gh.mc_phi))
        np.testing.assert_allclose(invariant_mass(tp4[:, 0], tp4[:, 1], tp4[:, 2]), BEAM.sqrt_s, rtol=4e-3)


def _chi2_one_plus_cos2(c: np.ndarray, nbins: int = 20) -> float:
    edges = np.linspace(-1, 1, nbins + 1)
    cdf = (edges + edges**3 / 3 + 4 / 3) / (8 / 3)
    expected = np.diff(cdf) * len(c)
    observed, _ = np.histogram(c, edges)
    chi2 = np.sum((observed - expected) ** 2 / expected)
    return float(stats.chi2.sf(chi2, nbins - 1))


def test_signal_angular_distribution_one_plus_cos2(rng: np.random.Generator) -> None:
    gamma, _ = physics.two_body_cm(40000, 1.0, rng, BEAM)
    cos_t = gamma[:, :3] @ BEAM.cm_axis() / gamma[:, 3]
    assert _chi2_one_plus_cos2(cos_t) > 1e-3
    # the same test rejects a flat distribution of the same size
    assert _chi2_one_plus_cos2(rng.uniform(-1, 1, 40000)) < 1e-6
    # and the full simulation records it: truth recoil direction in the CM, central region
    out = toymc.simulate_signal(1.0, 20000, rng=rng, beam=BEAM)
    sel = out["mc_idx_recoil"] >= 0
    p = BEAM.to_cm(cluster_p4(out["gamma"], sel, out["mc_idx_recoil"], truth=True))
    c = p[:, :3] @ BEAM.cm_axis() / p[:, 3]
    central = c[np.abs(c) < 0.5]  # inside the barrel after the boost (no gaps there)
    frac_expected = (0.5 + 0.5**3 / 3) / (1 + 1 / 3)  # fraction of 1 + c^2 within |c| < 0.5
    assert len(central) / len(c) == pytest.approx(frac_expected, abs=0.15)
    # within |c| < 0.5: 1 + c^2 shape (ratio of |c| in [0.25, 0.5] to [0, 0.25])
    n_in = np.sum(np.abs(central) < 0.25)
    n_out = len(central) - n_in
    expected_ratio = (0.25 + (0.5**3 - 0.25**3) / 3) / (0.25 + 0.25**3 / 3)
    assert n_out / n_in == pytest.approx(expected_ratio, rel=5 * np.sqrt(1 / n_in + 1 / n_out))


# ----------------------------------------------------------------------------- backgrounds


@pytest.mark.parametrize(("process", "meson"), [("pi0g", "pi0"), ("etagg", "eta")])
def test_meson_peak_at_pdg_mass(process: str, meson: str, rng: np.random.Generator) -> None:
    out = toymc.simulate_background(process, 4000, rng=rng, beam=BEAM, detector=toymc.DetectorSettings(energy_tail=0.0))
    g = out["gamma"]
    d1, d2 = g.mc_origin == 1, g.mc_origin == 2
    ok = ak.to_numpy((ak.sum(d1, axis=1) == 1) & (ak.sum(d2, axis=1) == 1))
    a = g[d1][ok][:, 0]
    b = g[d2][ok][:, 0]
    m = invariant_mass(p4_from_spherical(ak.to_numpy(a.E), ak.to_numpy(a.theta), ak.to_numpy(a.phi)),
                       p4_from_spherical(ak.to_numpy(b.E), ak.to_numpy(b.theta), ak.to_numpy(b.phi)))
    m_pdg = particle_mass(meson)
    assert ok.sum() > 1000
    assert abs(np.median(m) - m_pdg) < 0.1 * robust_sigma(m) + 1e-3
    assert robust_sigma(m) < 0.1 * m_pdg + 0.01
    # background events carry no ALP truth
    assert np.all(out["mc_idx_a1"] == -1) and np.all(out["mc_ma"] == -1)


def test_ggg_matrix_element_soft_limit() -> None:
    """|M(3 gamma)|^2 -> eikonal factor x |M(2 gamma)|^2 as the third photon becomes soft."""
    sqrt_s = BEAM.sqrt_s
    c, c3 = 0.3, -0.6
    e2 = 4 * np.pi * physics.ALPHA_EM
    for eps in (1e-3, 1e-5):
        E = np.array([[sqrt_s / 2, sqrt_s / 2, eps]])
        cos_t = np.array([[c, -c, c3]])
        me3 = physics.ggg_matrix_element(E, cos_t)[0]
        me2 = 4 * e2**2 * (1 + c * c) / (1 - c * c)
        eikonal = e2 * BEAM.s / ((sqrt_s / 2) ** 2 * eps**2 * (1 - c3 * c3))
        assert me3 / (eikonal * me2) == pytest.approx(1.0, rel=10 * eps / sqrt_s + 1e-9)


def test_ggg_importance_sampling_matches_flat_phase_space() -> None:
    """The importance-sampled integral of |M|^2 agrees with plain uniform phase-space sampling."""
    from scipy.spatial.transform import Rotation

    rng = np.random.default_rng(99)
    sqrt_s, cuts = BEAM.sqrt_s, toymc.ThreeBodyCuts()
    x_min = 2 * cuts.e_min / sqrt_s
    means = []
    for _ in range(4):
        n = 500_000
        x = np.stack([rng.random(n), rng.random(n)], axis=1)
        x = np.column_stack([x, 2 - x.sum(axis=1)])  # uniform on the Dalitz triangle where x3 <= 1
        inside = x[:, 2] <= 1
        E = x * sqrt_s / 2
        c01 = np.clip((E[:, 2] ** 2 - E[:, 0] ** 2 - E[:, 1] ** 2) / (2 * E[:, 0] * E[:, 1]), -1, 1)
        v = np.zeros((n, 3, 3))
        v[:, 0, 2] = E[:, 0]
        v[:, 1, 0] = E[:, 1] * np.sqrt(1 - c01**2)
        v[:, 1, 2] = E[:, 1] * c01
        v[:, 2] = -(v[:, 0] + v[:, 1])
        rot = Rotation.random(n, random_state=int(rng.integers(1 << 31))).as_matrix()
        u = np.einsum("nij,nkj->nki", rot, v)
        cos_t = u[:, :, 2] / np.linalg.norm(u, axis=2)
        ok = inside & np.all(x >= x_min, axis=1) & np.all(np.abs(cos_t) < cuts.cos_max, axis=1)
        me = np.where(ok, physics.ggg_matrix_element(E, cos_t), 0.0)
        means.append(me.sum() / inside.sum())
    flat, err = np.mean(means), np.std(means, ddof=1) / 2
    factor = 1 / (2 * BEAM.s) / 6 * BEAM.s / (256 * np.pi**3) * physics.GEV2_TO_PB
    sigma, sigma_err = toymc.ggg_cross_section_pb(sqrt_s, cuts)
    assert flat * factor == pytest.approx(sigma, abs=4 * np.hypot(err * factor, sigma_err))
    assert err / flat < 0.03


def test_ggg_cross_section_is_stable_and_grows_with_looser_cuts() -> None:
    s1, e1 = toymc.ggg_cross_section_pb(BEAM.sqrt_s)
    assert 100 < s1 < 1000 and e1 / s1 < 0.01
    s2, _ = toymc.ggg_cross_section_pb(BEAM.sqrt_s, toymc.ThreeBodyCuts(e_min=0.2, cos_max=0.966))
    assert s2 < s1  # fewer soft photons


def test_control_sample_has_two_muon_tracks(rng: np.random.Generator) -> None:
    out = toymc.simulate_control(2000, rng=rng, beam=BEAM)
    t = out["track"]
    good = (t.dr < 1.0) & (np.abs(t.dz) < 3.0)
    assert np.all(ak.to_numpy(ak.sum(good & (t.charge == 1), axis=1)) >= 1)
    assert np.all(ak.to_numpy(ak.sum(good & (t.charge == -1), axis=1)) >= 1)
    assert np.all(out["process"] == PROCESS_CODES["mumug"])


# ----------------------------------------------------------------------------- lifetime


def test_mean_decay_length_matches_beta_gamma_over_width(rng: np.random.Generator) -> None:
    m_a, g_agg = 0.4, 3e-6  # mean decay length ~1 m
    out = toymc.simulate_signal(m_a, 20000, rng=rng, beam=BEAM, g_agg=g_agg)
    sel = out["mc_idx_recoil"] >= 0
    recoil = cluster_p4(out["gamma"], sel, out["mc_idx_recoil"], truth=True)
    p_alp = BEAM.p4[None, :] - recoil
    bg = np.linalg.norm(p_alp[:, :3], axis=1) / m_a
    mean_expected = alp_decay_length(m_a, g_agg, bg)
    ratio = out["mc_decay_length"][sel] / mean_expected
    assert np.mean(ratio) == pytest.approx(1.0, abs=4 / np.sqrt(sel.sum()))
    # decays beyond the ECL (farther than its outermost surface point) lose both photons
    far = out["mc_decay_length"] > 2.4
    assert far.sum() > 100
    assert np.all(out["mc_idx_a1"][far] == -1) and np.all(out["mc_idx_a2"][far] == -1)
    # clusters of displaced decays sit where the photons hit the ECL, so their
    # directions seen from the IP are biased: angle pulls far wider than 1
    g = out["gamma"]
    displaced = (out["mc_decay_length"] > 0.3) & (out["mc_idx_a1"] >= 0)
    prompt = (out["mc_decay_length"] < 0.01) & (out["mc_idx_a1"] >= 0)
    for sel_, lo, hi in ((displaced, 3.0, np.inf), (prompt, 0.0, 1.3)):
        i = out["mc_idx_a1"][sel_]
        pull = (pick(g.theta[sel_], i) - pick(g.mc_theta[sel_], i)) / np.sqrt(pick(g.cov_thetatheta[sel_], i))
        assert sel_.sum() > 100
        assert lo < robust_sigma(pull) < hi


# ----------------------------------------------------------------------------- production


def _small_config(**extra: object) -> dict:
    cfg: dict = {
        "signal": {"masses": [1.0], "n_per_mass": 1500},
        "backgrounds": {p: 0 for p in toymc.BACKGROUNDS} | {"ggg": 1500, "pi0gg": 500},
        "control": {"n": 0},
        "lumi_fb": 0.005,
    }
    cfg.update(extra)
    return cfg


def _content(path: Path) -> tuple[dict, dict]:
    with uproot.open(path) as f:
        arrays = f[TREE_NAME].arrays(library="np")
        meta = json.loads(str(f[META_KEY]))
    return arrays, meta


def _same_content(a: Path, b: Path) -> bool:
    (xa, ma), (xb, mb) = _content(a), _content(b)
    if set(xa) != set(xb) or ma != mb:
        return False
    for key in xa:
        va, vb = xa[key], xb[key]
        if va.dtype == object:
            if len(va) != len(vb) or not all(np.array_equal(u, v) for u, v in zip(va, vb)):
                return False
        elif not np.array_equal(va, vb):
            return False
    return True


def test_files_schema_metadata_and_reader(tmp_path: Path) -> None:
    files = toymc.generate(tmp_path, config=_small_config(), seed=3)
    assert set(files) == {"signal_m1.000", "ggg", "pi0gg", "data"}
    arrays, meta = _content(files["signal_m1.000"])
    for key in ("event", "process", "weight", "mc_ma", "mc_decay_length", "mc_idx_a1", "mc_idx_a2", "mc_idx_recoil", "ngamma", "gamma_E", "gamma_cov_EE", "gamma_mc_origin", "ntrack", "track_dr"):
        assert key in arrays, key
    for key in ("process", "xsec_pb", "n_generated", "lumi_fb", "seed", "beam", "masses", "g_agg", "generator", "bumphunt_version"):
        assert key in meta, key
    assert meta["n_generated"] == 1500 and meta["masses"] == [1.0] and meta["seed"] == 3
    data, dmeta = _content(files["data"])
    assert np.all(data["process"] == PROCESS_CODES["data"]) and np.all(data["weight"] == 1.0)
    assert set(np.unique(data["mc_process"])) <= {PROCESS_CODES[p] for p in toymc.BACKGROUNDS}
    assert sum(c["n"] for c in dmeta["composition"].values()) == len(data["event"])
    from bumphunt.events import read_events

    ev = read_events(files["signal_m1.000"])
    assert ev.n_events == 1500 and ev.sample["process"] == "signal"
    assert float(ak.sum(ak.num(ev["gamma"]))) == float(np.sum(arrays["ngamma"]))


def test_weighted_yields_scale_with_luminosity(tmp_path: Path) -> None:
    cfg = _small_config()
    f1 = toymc.generate(tmp_path / "a", config=cfg, lumi_fb=0.004, samples=["ggg", "pi0gg", "data"], seed=1)
    f3 = toymc.generate(tmp_path / "b", config=cfg, lumi_fb=0.012, samples=["ggg", "pi0gg", "data"], seed=1)
    for name in ("ggg", "pi0gg"):
        (a, ma), (b, _) = _content(f1[name]), _content(f3[name])
        assert b["weight"].sum() / a["weight"].sum() == pytest.approx(3.0, rel=1e-12)
        assert a["weight"].sum() == pytest.approx(ma["xsec_pb"] * 0.004 * 1000, rel=1e-9)
    for path, lumi in ((f1["data"], 0.004), (f3["data"], 0.012)):
        d, meta = _content(path)
        mean = meta["xsec_pb"] * lumi * 1000
        assert abs(len(d["event"]) - mean) < 5 * np.sqrt(mean)


def test_pseudo_data_matches_weighted_mc_per_process(tmp_path: Path) -> None:
    """Per process, the pseudo-data count agrees with the weighted MC yield, generated and after pre-selection.

    Pseudo-data events are drawn as Poisson(sigma L) per process and the MC is
    weighted to sigma L, so their difference has variance (expected count) +
    sum of squared MC weights. A 5% normalisation or efficiency mismatch in
    ggg is about 5 standard deviations here.
    """
    from bumphunt.events import Events, preselect, read_events

    lumi = 0.2
    cfg = {"signal": {"masses": []}, "control": {"n": 0},
           "backgrounds": {p: 0 for p in toymc.BACKGROUNDS} | {"ggg": 50_000, "eeg": 20_000, "pi0gg": 5000, "etagg": 5000, "etapgg": 5000}}
    files = toymc.generate(tmp_path, config=cfg, lumi_fb=lumi, seed=11)
    data = read_events(files["data"])
    true_proc = np.asarray(data["mc_process"])
    pulls: dict[str, tuple[float, float]] = {}
    for name in ("ggg", "eeg", "pi0gg", "etagg", "etapgg"):
        mc = read_events(files[name])
        w = np.asarray(mc["weight"], dtype=float)
        assert np.sum(w) / (mc.sample["xsec_pb"] * lumi * 1000) == pytest.approx(1.0, abs=5 * np.sqrt(np.sum(w**2)) / np.sum(w))
        mask = true_proc == PROCESS_CODES[name]
        assert int(mask.sum()) == data.sample["composition"][name]["n"]
        assert data.sample["composition"][name]["xsec_pb"] == mc.sample["xsec_pb"]
        sel_data, _ = preselect(Events({k: v[mask] for k, v in data.items()}, sample=data.sample))
        sel_mc, _ = preselect(mc)
        w_sel = np.asarray(sel_mc["weight"], dtype=float)
        out = []
        for n_data, mu, var_mc in ((int(mask.sum()), np.sum(w), np.sum(w**2)), (len(sel_data["weight"]), np.sum(w_sel), np.sum(w_sel**2))):
            out.append((n_data - mu) / np.sqrt(mu + var_mc))
        pulls[name] = (out[0], out[1])
    assert all(abs(g) < 4 and abs(s) < 4 for g, s in pulls.values()), pulls
    assert sum(s**2 for _, s in pulls.values()) < stats.chi2.ppf(0.999, len(pulls)), pulls


def test_same_seed_identical_files_different_seed_different(tmp_path: Path) -> None:
    cfg = _small_config()
    a = toymc.generate(tmp_path / "a", config=cfg, seed=7, samples=["signal", "ggg", "data"])
    b = toymc.generate(tmp_path / "b", config=cfg, seed=7, samples=["signal", "ggg", "data"])
    c = toymc.generate(tmp_path / "c", config=cfg, seed=8, samples=["signal", "ggg", "data"])
    for name in a:
        # the content (every branch, the metadata) is identical; the bytes differ in the dates
        # uproot stamps from the clock, which bumphunt does not patch
        assert _same_content(a[name], b[name])
        xa, _ = _content(a[name])
        xc, _ = _content(c[name])
        assert len(xa["event"]) != len(xc["event"]) or not np.array_equal(np.concatenate(xa["gamma_E"]), np.concatenate(xc["gamma_E"]))


def test_chunked_writing_gives_same_content(tmp_path: Path) -> None:
    cfg = _small_config(signal={"masses": [2.0], "n_per_mass": toymc.BLOCK_SIZE + 2500})
    one = toymc.generate(tmp_path / "one", config=cfg, samples=["signal"], chunk_size=10**6)
    many = toymc.generate(tmp_path / "many", config=cfg, samples=["signal"], chunk_size=3000)
    assert _same_content(one["signal_m2.000"], many["signal_m2.000"])
    arrays, _ = _content(many["signal_m2.000"])
    np.testing.assert_array_equal(arrays["event"], np.arange(toymc.BLOCK_SIZE + 2500))


def test_injected_signal_in_data(tmp_path: Path) -> None:
    files = toymc.generate(tmp_path, config=_small_config(), samples=["data"], inject={"mass": 3.0, "n_events": 200})
    d, meta = _content(files["data"])
    injected = d["mc_process"] == PROCESS_CODES["signal"]
    assert injected.sum() == meta["composition"]["signal"]["n"]
    assert abs(injected.sum() - 200) < 5 * np.sqrt(200)
    assert np.all(d["mc_ma"][injected] == 3.0) and np.all(d["mc_ma"][~injected] == -1)


# ----------------------------------------------------------------------------- configuration errors


def test_bad_config_keys_raise_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"signal: .*n_per_mas.*allowed keys"):
        toymc.generate(tmp_path, config={"signal": {"n_per_mas": 10}})
    bad = tmp_path / "toymc.yaml"
    bad.write_text("lumi_fb: -1\n")
    with pytest.raises(ConfigError, match=r"toymc.yaml: lumi_fb"):
        toymc.generate(tmp_path, config=bad)
    with pytest.raises(ConfigError, match=r"detector: .*merge_angel"):
        toymc.load_toymc_config({"detector": {"merge_angel": 0.01}})
    with pytest.raises(ConfigError, match=r"signal.masses\[1\]: 12.0 GeV"):
        toymc.generate(tmp_path, signal_masses=[1.0, 12.0])
    with pytest.raises(ConfigError, match=r"samples: unknown sample 'sgnal'"):
        toymc.generate(tmp_path, samples=["sgnal"])
    assert not list(tmp_path.glob("*.root"))


def test_cli_generate(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from bumphunt.cli import cli

    cfg = tmp_path / "c.yaml"
    cfg.write_text("backgrounds: {ggg: 300, eeg: 0, pi0g: 0, etag: 0, etapg: 0, pi0gg: 0, etagg: 0, etapgg: 0}\ncontrol: {n: 0}\n")
    result = CliRunner().invoke(cli, ["generate", "--out", str(tmp_path / "out"), "--config", str(cfg), "--masses", "0.5,3", "--n-signal", "200", "--no-data", "--seed", "2"])
    assert result.exit_code == 0, result.output
    assert "signal_m3.000" in result.output and "ggg" in result.output
    assert sorted(p.name for p in (tmp_path / "out").glob("*.root")) == ["ggg.root", "signal_m0.500.root", "signal_m3.000.root"]
    bad = CliRunner().invoke(cli, ["generate", "--out", str(tmp_path / "x"), "--config", str(tmp_path / "missing.yaml")])
    assert bad.exit_code != 0 and "not found" in bad.output and "Traceback" not in bad.output


# ----------------------------------------------------------------------------- slow: the chain sees realistic data


@pytest.mark.slow
def test_pseudo_data_after_preselection_has_meson_peaks_and_smooth_background(tmp_path: Path) -> None:
    """1 fb^-1 of pseudo-data: pi0, eta, eta' peaks stand out; the continuum is smooth and falling from 1 to 7.5 GeV."""
    from bumphunt.events import preselect, read_events
    from bumphunt.events.candidates import diphoton_candidates

    files = toymc.generate(tmp_path, lumi_fb=1.0, samples=["data"], seed=11)
    events = read_events(files["data"])
    three, _ = preselect(events, beam=BEAM)
    mgg = diphoton_candidates(three, beam=BEAM)["mgg_raw"]
    for meson, half in (("pi0", 0.015), ("eta", 0.03), ("etap", 0.04)):
        m0 = particle_mass(meson)
        peak = np.sum(np.abs(mgg - m0) < half)
        side = np.sum((np.abs(mgg - m0) >= 2 * half) & (np.abs(mgg - m0) < 3 * half))  # two sidebands of width half
        excess = peak - side
        assert excess > 3 * np.sqrt(side + 1), (meson, peak, side)
    counts, _ = np.histogram(mgg, bins=np.arange(1.0, 7.51, 0.5))
    assert np.all(counts > 0)
    ratios = counts[1:] / counts[:-1]
    assert np.all(ratios < 1.1) and np.all(ratios > 0.5)  # smooth and falling from 1 to 7.5 GeV
    # above ~8 GeV the pair of the two hard photons of e+e- -> 3 gamma (third one soft) takes over
    high, _ = np.histogram(mgg, bins=[6.5, 7.5, 8.5, 9.5])
    assert high[2] > high[0]


def test_eeg_both_tracks_lost_and_weights(rng: np.random.Generator) -> None:
    from bumphunt.events.detector import CDC_THETA_MAX, CDC_THETA_MIN

    weighted = toymc.simulate_background("eeg", 4000, rng=rng, beam=BEAM)
    w = weighted["weight"]
    assert abs(np.mean(w) - 1.0) < 0.2  # normalised to the filter efficiency of the pilot
    g = weighted["gamma"]
    lepton = g.mc_origin == toymc.ORIGIN["electron"]
    theta = ak.to_numpy(ak.flatten(g.mc_theta[lepton]))
    inside = (theta > CDC_THETA_MIN) & (theta < CDC_THETA_MAX)
    assert inside.any() and (~inside).any()
    # unweighted (pseudo-data) events: leptons inside the CDC are rare (tracking inefficiency only)
    unweighted = toymc.simulate_background("eeg", 4000, rng=rng, beam=BEAM, unweighted=True)
    assert np.all(unweighted["weight"] == 1.0)
    gu = unweighted["gamma"]
    tu = ak.to_numpy(ak.flatten(gu.mc_theta[gu.mc_origin == toymc.ORIGIN["electron"]]))
    assert np.mean((tu > CDC_THETA_MIN) & (tu < CDC_THETA_MAX)) < 0.05
    # no track of the leptons: only beam-background fake tracks, which are rarely good
    t = unweighted["track"]
    good = ak.to_numpy(ak.sum((t.dr < 1.0) & (np.abs(t.dz) < 3.0), axis=1))
    assert np.mean(good > 0) < 0.03

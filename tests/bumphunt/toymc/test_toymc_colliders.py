"""Toy MC at the collider presets: Belle II unchanged, the Z-pole signal normalisation and background, BaBar, bad input."""

from __future__ import annotations

import json
import math
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot

from bumphunt import toymc
from bumphunt.colliders import collider
from bumphunt.errors import ConfigError
from bumphunt.events.detector import BELLE2_ECL, REGION_BWD
from bumphunt.events.schema import META_KEY, TREE_NAME
from bumphunt.toymc.background_models import background_model
from bumphunt.toymc.physics import ThreeBodyCuts, ggg_cross_section_pb
from signal_models.alp import GEV2_TO_PB, SIN2_THETA_W, Z_EE_WIDTH_GEV, Z_MASS_GEV, Z_WIDTH_GEV, cross_section_pb

ZPOLE = collider("zpole")


def _meta_and_weights(path: Path) -> tuple[dict, np.ndarray]:
    with uproot.open(path) as f:
        return json.loads(str(f[META_KEY])), f[TREE_NAME]["weight"].array(library="np")


def test_belle2_preset_gives_the_same_events() -> None:
    """The calorimeter of the preset reproduces the Belle II ECL bit for bit, with and without flight."""
    for kw in ({}, {"g_agg": 1e-4}):
        a = toymc.simulate_signal(0.8, 3000, rng=np.random.default_rng(4), **kw)
        b = toymc.simulate_signal(0.8, 3000, rng=np.random.default_rng(4), calorimeter=BELLE2_ECL, **kw)
        for key in ("mc_idx_a1", "mc_idx_recoil"):
            np.testing.assert_array_equal(a[key], b[key])
        for field in ("E", "theta", "phi", "time", "region", "cov_EE"):
            np.testing.assert_array_equal(ak.to_numpy(ak.flatten(a["gamma"][field])), ak.to_numpy(ak.flatten(b["gamma"][field])))
    cfg_default = toymc.settings_from_config(None)
    cfg_named = toymc.settings_from_config({"collider": "belle2"})
    assert cfg_default.cfg == cfg_named.cfg and cfg_default.calorimeter is None
    assert cfg_default.sim_kwargs().keys() == {"beam", "resolution", "detector"}


def test_zpole_signal_normalisation_giga_z(tmp_path: Path) -> None:
    """Of order 1e6 signal events per 100 fb^-1 at g_aBB = 1 TeV^-1 before cuts; the weights are sigma L."""
    g = 1.0e-3
    files = toymc.generate(tmp_path, collider_name="zpole", lumi_fb=100.0, samples=["signal"],
                           config={"signal": {"masses": [1.0, 40.0], "n_per_mass": 500, "g_abb": g}})
    s_w2 = SIN2_THETA_W * (1 - SIN2_THETA_W)
    for m in (1.0, 40.0):
        meta, w = _meta_and_weights(files[f"signal_m{m:.3f}"])
        assert meta["collider"] == "zpole" and meta["coupling"] == "hypercharge" and meta["g"] == g
        assert meta["sqrt_s"] == pytest.approx(Z_MASS_GEV, rel=1e-12)
        xsec = float(cross_section_pb(m, g, Z_MASS_GEV, coupling="hypercharge"))
        assert meta["xsec_pb"] == pytest.approx(xsec, rel=1e-12)
        assert w.sum() == pytest.approx(xsec * 100.0 * 1000.0, rel=1e-9)
        # by hand: the Z peak 12 pi Gamma_ee Gamma(Z -> a gamma) / (m_Z^2 Gamma_Z^2) plus the photon part
        gamma_za = g**2 * s_w2 * (Z_MASS_GEV**2 - m**2) ** 3 / (96 * math.pi * Z_MASS_GEV**3)
        peak = 12 * math.pi * Z_EE_WIDTH_GEV * gamma_za / (Z_MASS_GEV**2 * Z_WIDTH_GEV**2) * GEV2_TO_PB
        photon = (1 / 137.035999) * ((1 - SIN2_THETA_W) * g) ** 2 / 24 * (1 - m**2 / Z_MASS_GEV**2) ** 3 * GEV2_TO_PB
        assert xsec == pytest.approx(peak + photon, rel=2e-3)
    meta, w = _meta_and_weights(files["signal_m1.000"])
    assert 5e5 < w.sum() < 2e6  # about 1.07e6 events in 100 fb^-1


def test_zpole_signal_kinematics_and_detector(rng: np.random.Generator) -> None:
    st = toymc.settings_from_config({"collider": "zpole", "generator": {"beam_energy_spread": False}})
    assert st.beam == ZPOLE.beam and st.resolution is ZPOLE.resolution and st.calorimeter is ZPOLE.calorimeter
    assert st.detector.merge_angle == 0.015 and st.detector.energy_tail == 0.0
    m_a = 10.0
    out = toymc.simulate_signal(m_a, 4000, rng=rng, generator=st.generator, **st.sim_kwargs())
    g = out["gamma"]
    ok = out["mc_idx_recoil"] >= 0
    counts = ak.to_numpy(ak.num(g))
    start = np.concatenate([[0], np.cumsum(counts)[:-1]])
    flat = {k: ak.to_numpy(ak.flatten(g[k])) for k in ("E", "mc_E", "theta", "mc_theta", "region", "cov_EE")}
    rec = start[ok] + out["mc_idx_recoil"][ok]
    # the recoil photon has E = (s - m^2) / (2 sqrt(s)) at the nominal beams
    np.testing.assert_allclose(flat["mc_E"][rec], (Z_MASS_GEV**2 - m_a**2) / (2 * Z_MASS_GEV), rtol=1e-9)
    # energy smeared with 17%/sqrt(E) (+) 1% (Gaussian), angles with 1 mrad; the covariance says so
    pull = (flat["E"][rec] - flat["mc_E"][rec]) / np.sqrt(flat["cov_EE"][rec])
    assert np.std(pull) == pytest.approx(1.0, abs=0.06) and abs(np.mean(pull)) < 0.06
    rel = np.sqrt(flat["cov_EE"][rec]) / flat["mc_E"][rec]
    np.testing.assert_allclose(rel, np.hypot(0.17 / np.sqrt(flat["mc_E"][rec]), 0.01), rtol=1e-9)
    assert np.std(flat["theta"][rec] - flat["mc_theta"][rec]) == pytest.approx(1e-3, rel=0.08)
    # no cluster outside the calorimeter's 8-172 deg, and the backward endcap is used (symmetric detector)
    hard = flat["mc_E"] > 0
    assert np.all((flat["theta"][hard] > np.radians(7.9)) & (flat["theta"][hard] < np.radians(172.1)))
    assert np.any(flat["region"] == REGION_BWD)


def test_zpole_photon_merging_at_small_mass(rng: np.random.Generator) -> None:
    """Two photons closer than 0.015 rad merge: at 0.2 GeV (opening >= 4 m / m_Z = 0.009) most do, at 1 GeV none."""
    kw = toymc.settings_from_config({"collider": "zpole"}).sim_kwargs()
    light = toymc.simulate_signal(0.2, 2000, rng=rng, **kw)
    heavy = toymc.simulate_signal(1.0, 2000, rng=rng, **kw)
    merged = toymc.ORIGIN["merged"]
    assert np.mean(ak.to_numpy(ak.any(light["gamma"]["mc_origin"] == merged, axis=1))) > 0.5
    assert not ak.any(heavy["gamma"]["mc_origin"] == merged)


def test_zpole_background_model_and_ggg_cross_section(tmp_path: Path) -> None:
    model = background_model(Z_MASS_GEV)
    assert model.name == "z_pole" and model.processes == ("ggg",) and not model.control
    assert background_model(10.58).name == "b_factory"
    # LO QED e+e- -> 3 gamma at m_Z, photons above 2 GeV within 8-172 deg: ~4.1 pb (Giga-Z study, LO)
    sigma, err = ggg_cross_section_pb(Z_MASS_GEV, ThreeBodyCuts(2.0, math.cos(math.radians(8.0))))
    assert sigma == pytest.approx(4.1, rel=0.1) and err < 0.01 * sigma
    files = toymc.generate(tmp_path, collider_name="zpole", lumi_fb=0.5,
                           config={"signal": {"masses": [5.0], "n_per_mass": 200}, "backgrounds": {"ggg": 3000}})
    assert set(files) == {"signal_m5.000", "ggg", "data"}  # no eeg, mesons or mu mu gamma at the Z pole
    meta, w = _meta_and_weights(files["data"])
    assert set(meta["composition"]) == {"ggg"} and meta["background_model"] == "z_pole"
    gmeta, gw = _meta_and_weights(files["ggg"])
    assert gmeta["xsec_pb"] == pytest.approx(ggg_cross_section_pb(Z_MASS_GEV, ThreeBodyCuts(1.0, math.cos(math.radians(6.0))))[0])
    assert abs(len(w) - gmeta["xsec_pb"] * 500) < 5 * math.sqrt(gmeta["xsec_pb"] * 500)


def test_babar_preset(tmp_path: Path) -> None:
    files = toymc.generate(tmp_path, collider_name="babar", lumi_fb=0.002, samples=["signal", "ggg"],
                           config={"signal": {"masses": [2.0], "n_per_mass": 1000}, "backgrounds": {"ggg": 2000}})
    meta, _ = _meta_and_weights(files["signal_m2.000"])
    assert meta["collider"] == "babar" and meta["coupling"] == "photon"
    assert meta["beam"]["e_her"] == 9.0 and meta["beam"]["e_ler"] == 3.1 and meta["beam"]["crossing_angle"] == 0.0
    assert meta["xsec_pb"] == pytest.approx(float(cross_section_pb(2.0, 1e-3, collider("babar").sqrt_s)), rel=1e-12)
    with uproot.open(files["ggg"]) as f:
        arr = f[TREE_NAME].arrays(["gamma_theta", "gamma_region"], library="ak")
    theta = ak.to_numpy(ak.flatten(arr["gamma_theta"]))
    assert theta.max() < np.radians(141.8) + 0.05 and theta.min() > np.radians(15.8) - 0.05
    assert not np.any(ak.to_numpy(ak.flatten(arr["gamma_region"])) == REGION_BWD)  # BaBar has no backward endcap


def test_bad_input_names_the_value(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"95(\.0)? GeV is not below sqrt\(s\) = 91\.1876"):
        toymc.generate(tmp_path, collider_name="zpole", samples=["signal"], config={"signal": {"masses": [95.0]}})
    with pytest.raises(ConfigError, match=r"data\.inject\.mass: 92"):
        toymc.generate(tmp_path, collider_name="zpole", samples=["data"], inject={"mass": 92.0, "n_events": 5})
    with pytest.raises(ConfigError, match="unknown collider 'lep'"):
        toymc.generate(tmp_path, collider_name="lep")
    with pytest.raises(ConfigError, match="collider: unknown collider 'cepc'"):
        toymc.generate(tmp_path, config={"collider": "cepc"})
    # a custom sqrt(s) without a background model: backgrounds refused naming sqrt(s); signal alone is fine
    beam30 = {"e_her": 15.0, "e_ler": 15.0, "crossing_angle": 0.0}
    with pytest.raises(ConfigError, match=r"no background model at sqrt\(s\) = 30\.0000 GeV"):
        toymc.generate(tmp_path, beam=beam30)
    files = toymc.generate(tmp_path / "s", beam=beam30, samples=["signal"], config={"signal": {"masses": [3.0], "n_per_mass": 50}})
    assert list(files) == ["signal_m3.000"]
    # processes the Z-pole background model does not have
    with pytest.raises(ConfigError, match=r"backgrounds\.eeg: the toy MC does not model eeg at sqrt\(s\) = 91\.1876"):
        toymc.generate(tmp_path, collider_name="zpole", config={"backgrounds": {"eeg": 100}})
    with pytest.raises(ConfigError, match=r"control\.n: .* at sqrt\(s\) = 91\.1876"):
        toymc.generate(tmp_path, config={"collider": "zpole", "control": {"n": 100}})
    with pytest.raises(ConfigError, match="unknown sample 'pi0g'"):
        toymc.generate(tmp_path, collider_name="zpole", samples=["pi0g"])

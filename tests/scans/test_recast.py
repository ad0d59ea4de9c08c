"""Recasting scan results (scans.recast): round trips are the identity, a recast by hand at one mass, sqrt(s) and
lifetime-dependent recasts, published curves in another model, bad inputs."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import scans
from scans.recast import RecastError, convert_coupling, read_result, recast
from scans.testing import analytic_signal_model, toy_spectrum
from signal_models import alp, reference_limits


@pytest.fixture(scope="module")
def result() -> dict[str, Any]:
    """A small Belle II-like scan (photon coupling, sqrt(s) = 10.574 GeV)."""
    mgg = toy_spectrum(20_000, lo=0.2, hi=4.0, slope=0.8, seed=21)
    cfg = {"mass": {"min": 0.5, "max": 3.0, "step": 0.5}, "vetoes": {"particles": []}, "lee": {"toys": 0},
           "execution": {"workers": 1, "progress": False}}
    return scans.scan(mgg, analytic_signal_model(), config=cfg)


def _fitted(result: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in result["points"] if p.get("converged")]


def test_photon_hypercharge_photon_round_trip_is_the_identity(result: dict[str, Any]) -> None:
    before = copy.deepcopy(result)
    hyper = recast(result, coupling="hypercharge")
    assert result == before  # the input is not changed
    back = recast(hyper, coupling="photon")
    assert back["points"] == result["points"]  # bit for bit: couplings are recomputed from the kept cross-section limits
    assert back["coupling"] == "photon" and [s["to"]["coupling"] for s in back["recast"]] == ["hypercharge", "photon"]
    there = recast(result, coupling="hypercharge", sqrt_s=alp.Z_MASS_GEV)
    assert recast(there, coupling="photon", sqrt_s=result["sqrt_s"])["points"] == result["points"]


def test_recast_by_hand_at_one_mass(result: dict[str, Any]) -> None:
    p = _fitted(result)[2]
    m, rs = p["mass"], result["sqrt_s"]
    q = next(x for x in recast(result, coupling="hypercharge")["points"] if x["mass"] == m)
    assert q["ul_xsec_pb_obs"] == p["ul_xsec_pb_obs"] and q["ul_xsec_pb_exp"] == p["ul_xsec_pb_exp"]
    # sigma(g_aBB = 1) = (1 - m^2/s)^3 / 24 [alpha c_W^4 + sqrt(alpha alpha_Z) c_W^2 g_V Re(s chi) + alpha_Z (g_V^2 + g_A^2)/4 |s chi|^2]
    s, mz, gz, sw2 = rs**2, 91.1876, 2.4952, 0.2312
    cw2, gv, ga = 1.0 - sw2, -0.5 + 2.0 * sw2, -0.5
    alpha, alpha_z = 1.0 / 137.035999, 12.0 * sw2 * cw2 * 0.08391 / (mz * (gv**2 + ga**2))
    schi = s / complex(s - mz**2, mz * gz)
    bracket = alpha * cw2**2 + math.sqrt(alpha * alpha_z) * cw2 * gv * schi.real + alpha_z * (gv**2 + ga**2) / 4.0 * abs(schi) ** 2
    per_g2 = (1.0 - m**2 / s) ** 3 / 24.0 * bracket * 0.3893793721e9
    assert q["ul_g_gev_obs"] == pytest.approx(math.sqrt(p["ul_xsec_pb_obs"] / per_g2), rel=1e-12)
    np.testing.assert_allclose(q["ul_g_gev_exp"], np.sqrt(np.array(p["ul_xsec_pb_exp"]) / per_g2), rtol=1e-12)
    # far below the Z: g_aBB = g_agg / c_W^2 up to the tiny interference
    assert q["ul_g_gev_obs"] / p["ul_g_gev_obs"] == pytest.approx(1.0 / cw2, rel=1e-3)


def test_sqrt_s_recast_keeps_the_cross_section_with_a_flat_efficiency(result: dict[str, Any]) -> None:
    out = recast(result, sqrt_s=30.0)
    assert out["sqrt_s"] == 30.0 and out["coupling"] == "photon"
    assert "flat" in out["recast"][-1]["efficiency"]
    for p, q in zip(_fitted(result), _fitted(out)):
        assert q["ul_xsec_pb_exp"] == p["ul_xsec_pb_exp"] and q["ul_nsig_exp"] == p["ul_nsig_exp"]
        ratio = math.sqrt(alp.cross_section_pb(p["mass"], 1.0, result["sqrt_s"]) / alp.cross_section_pb(p["mass"], 1.0, 30.0))
        assert q["ul_g_gev_obs"] == pytest.approx(p["ul_g_gev_obs"] * ratio, rel=1e-12)


def test_lifetime_dependent_efficiency(result: dict[str, Any]) -> None:
    flat = recast(result, coupling="hypercharge", sqrt_s=alp.Z_MASS_GEV)
    ones = recast(result, coupling="hypercharge", sqrt_s=alp.Z_MASS_GEV, lifetime_efficiency=lambda m, length: np.ones(np.shape(length)))
    for p, q in zip(_fitted(flat), _fitted(ones)):
        np.testing.assert_allclose(q["ul_g_gev_exp"], p["ul_g_gev_exp"], rtol=1e-9)
    radius = 1e-5  # m: ALPs of 0.5 GeV at the limit fly ~7 um (heavier ones decay promptly)
    life = recast(result, coupling="hypercharge", sqrt_s=alp.Z_MASS_GEV, lifetime_efficiency=lambda m, length: -np.expm1(-radius / length),
                  lifetime_note="decays within 10 um")
    assert "decays within 10 um" in life["recast"][-1]["efficiency"]
    model = alp.coupling_model("hypercharge")
    assert _fitted(life)[0]["mass"] == 0.5
    for p, q in zip(_fitted(result), _fitted(life)):
        m = p["mass"]
        g = np.array(q["ul_g_gev_exp"])
        f = np.array(q["decay_acceptance"]["ul_xsec_pb_exp"])
        g_flat = np.array(next(x for x in _fitted(flat) if x["mass"] == m)["ul_g_gev_exp"])
        assert np.all(f <= 1.0) and np.all(g >= g_flat * (1.0 - 1e-12))
        if m == 0.5:
            assert np.all(f < 0.9) and np.all(g > 1.02 * g_flat)
        bg = alp.alp_momentum_cm(m, alp.Z_MASS_GEV) / m
        f_here = -np.expm1(-radius / model.decay_length(m, g, bg))
        np.testing.assert_allclose(f, f_here, rtol=1e-12)
        # N(m, g_UL) = N_UL: sigma(g) f(l(g)) equals the kept cross-section limit
        np.testing.assert_allclose(alp.cross_section_pb(m, g, alp.Z_MASS_GEV, coupling="hypercharge") * f_here, p["ul_xsec_pb_exp"], rtol=1e-9)
        np.testing.assert_allclose(q["ul_xsec_pb_exp"], np.array(p["ul_xsec_pb_exp"]) / f, rtol=1e-12)
    with pytest.raises(RecastError, match=r"\[0, 1\]"):
        recast(result, lifetime_efficiency=lambda m, length: np.full(np.shape(length), 2.0), coupling="hypercharge")


def test_published_curve_in_the_hypercharge_plane() -> None:
    ref = reference_limits.load("belle2_2020")
    g = convert_coupling(ref.masses, ref.couplings, sqrt_s=10.58, from_coupling=ref.coupling, to_coupling="hypercharge")
    np.testing.assert_allclose(g / ref.couplings, 1.0 / (1.0 - alp.SIN2_THETA_W), rtol=1e-3)
    back = convert_coupling(ref.masses, g, sqrt_s=10.58, from_coupling="hypercharge", to_coupling="photon")
    np.testing.assert_allclose(back, ref.couplings, rtol=1e-14)


def test_bad_inputs(result: dict[str, Any], tmp_path: Path) -> None:
    with pytest.raises(alp.ALPError, match="unknown coupling model 'axion'; known: photon, hypercharge"):
        recast(result, coupling="axion")
    with pytest.raises(RecastError, match=r"m_a = 2.5 GeV of the result is at or above the target sqrt\(s\) = 2.2 GeV"):
        recast(result, sqrt_s=2.2)
    with pytest.raises(RecastError, match="not a scan result, missing key"):
        recast({"points": []})
    (tmp_path / "list.json").write_text("[1, 2]")
    (tmp_path / "other.json").write_text(json.dumps({"points": "none", "sqrt_s": 10.58, "luminosity_fb": 1}))
    (tmp_path / "broken.json").write_text("{")
    for name, match in (("list.json", "a JSON list, not an object"), ("other.json", "'points' must be a list"),
                        ("broken.json", "not a JSON scan result"), ("missing.json", "not found")):
        with pytest.raises(RecastError, match=match):
            read_result(tmp_path / name)

"""Collider presets (bumphunt.colliders): beams, resolution models, pre-selection, lookup errors, agreement with scans.config."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bumphunt.colliders import COLLIDER_NAMES, COLLIDERS, collider, collider_from_meta, preselection_cuts_for
from bumphunt.errors import ConfigError
from bumphunt.events.cuts import PreselectionCuts
from bumphunt.events.detector import (
    BELLE2_ECL,
    REGION_BARREL,
    REGION_BWD,
    REGION_FWD,
    REGION_NONE,
    Calorimeter,
    ParametrisedResolution,
    Resolution,
    ecl_region,
)
from bumphunt.kinematics import Beam
from scans.config import COLLIDER_BEAMS, load_scan_config, sqrt_s_from_config
from signal_models.alp import Z_MASS_GEV


def test_preset_beams_and_numbers() -> None:
    assert COLLIDER_NAMES == ("belle2", "babar", "zpole")
    b2, bb, z = (collider(n) for n in COLLIDER_NAMES)
    # Belle II: the package's beams, unchanged
    assert b2.beam == Beam.belle2() == Beam()
    assert b2.sqrt_s == pytest.approx(2 * math.sqrt(28.0) * math.cos(0.0415), rel=1e-12)
    assert b2.beam.beta_gamma == pytest.approx(0.287, abs=2e-3)
    assert isinstance(b2.resolution, Resolution) and b2.calorimeter is BELLE2_ECL
    assert b2.preselection_cuts() == PreselectionCuts() and b2.toymc_defaults() == {}
    # BaBar: 9.0 on 3.1 GeV head-on, beta gamma 0.56
    assert (bb.beam.e_her, bb.beam.e_ler, bb.beam.crossing_angle) == (9.0, 3.1, 0.0)
    assert bb.beam == Beam.babar()
    assert bb.sqrt_s == pytest.approx(2 * math.sqrt(27.9), rel=1e-12) and abs(bb.sqrt_s - 10.58) < 0.02
    assert bb.beam.beta_gamma == pytest.approx(0.56, abs=5e-3)
    # Z pole: symmetric at m_Z, 100 fb^-1, hypercharge signal
    assert z.sqrt_s == pytest.approx(Z_MASS_GEV, rel=1e-12) and z.beam.beta_gamma == 0.0
    assert z.luminosity_fb == 100.0 and z.coupling == "hypercharge"
    assert bb.luminosity_fb == 424.0 and b2.luminosity_fb == 0.445
    assert all(c.sources for c in COLLIDERS.values())


def test_zpole_and_babar_resolution_models() -> None:
    z = collider("zpole").resolution
    E = np.array([1.0, 4.0, 45.0])
    s_e, s_t, s_p = z.sigmas(E, np.zeros(3))
    np.testing.assert_allclose(s_e / E, np.sqrt(0.17**2 / E + 0.01**2), rtol=1e-12)
    np.testing.assert_allclose(s_t, 1e-3) and np.testing.assert_allclose(s_p, 1e-3)
    cov = z.covariance(E, np.zeros(3))
    np.testing.assert_allclose(np.sqrt(cov[:, 0, 0]), s_e) and np.testing.assert_allclose(cov[:, 0, 1], 0.0)
    b = collider("babar").resolution
    s_e, s_t, _ = b.sigmas(np.array([1.0, 16.0]), np.zeros(2))
    np.testing.assert_allclose(s_e / [1.0, 16.0], [math.hypot(0.0232, 0.0185), math.hypot(0.0232 / 2, 0.0185)], rtol=1e-12)
    np.testing.assert_allclose(s_t, [3.87e-3, 3.87e-3 / 4])
    with pytest.raises(ValueError, match="angular"):
        ParametrisedResolution(energy_stochastic=0.1)
    with pytest.raises(ValueError, match=">= 0"):
        ParametrisedResolution(energy_stochastic=-0.1, angle_constant=1e-3)


def test_calorimeter_regions() -> None:
    theta = np.linspace(0.0, np.pi, 200_001)
    np.testing.assert_array_equal(BELLE2_ECL.region(theta), ecl_region(theta))
    emc = collider("babar").calorimeter
    r = emc.region(np.radians([10.0, 20.0, 90.0, 141.0, 150.0]))
    np.testing.assert_array_equal(r, [REGION_NONE, REGION_FWD, REGION_BARREL, REGION_BARREL, REGION_NONE])
    ecal = collider("zpole").calorimeter
    np.testing.assert_array_equal(ecal.region(np.radians([7.0, 9.0, 90.0, 170.0, 173.0])),
                                  [REGION_NONE, REGION_FWD, REGION_BARREL, REGION_BWD, REGION_NONE])
    assert ecal.theta_range == pytest.approx(np.radians([8.0, 172.0]))
    with pytest.raises(ValueError, match="barrel"):
        Calorimeter("bad", barrel=(2.0, 1.0))


def test_preselection_cuts_of_presets(tmp_path) -> None:
    z = collider("zpole")
    cuts = z.preselection_cuts()
    assert cuts.photon_e_min == 2.0 and cuts.photon_theta_min == pytest.approx(np.radians(8.0))
    assert cuts.multiplicity == "exactly" and cuts.mggg_min == PreselectionCuts().mggg_min
    # a config replaces single cuts on top of the preset; without a preset it is the Belle II defaults
    path = tmp_path / "cuts.yaml"
    path.write_text("preselection:\n  photon_e_min: 3.0\n")
    assert preselection_cuts_for(z, path).photon_e_min == 3.0
    assert preselection_cuts_for(z, path).photon_theta_max == pytest.approx(np.radians(172.0))
    assert preselection_cuts_for(None, path) == PreselectionCuts(photon_e_min=3.0)
    assert preselection_cuts_for(collider("belle2"), None) == PreselectionCuts()
    path.write_text("photon_e_mni: 3.0\n")
    with pytest.raises(ConfigError, match="photon_e_mni"):
        preselection_cuts_for(z, path)


def test_unknown_collider_errors_name_the_value() -> None:
    with pytest.raises(ConfigError, match="unknown collider 'lep'; known: belle2, babar, zpole"):
        collider("lep")
    assert collider(" ZPole ") is COLLIDERS["zpole"] and collider(COLLIDERS["babar"]) is COLLIDERS["babar"]
    assert collider_from_meta({}) is None and collider_from_meta(None) is None
    assert collider_from_meta({"collider": "zpole"}).name == "zpole"
    assert collider_from_meta({"collider": {"name": "babar"}}).name == "babar"
    with pytest.raises(ConfigError, match="'tevatron'"):
        collider_from_meta({"collider": "tevatron"})


def test_scan_config_collider_agrees_with_presets() -> None:
    assert set(COLLIDER_BEAMS) == set(COLLIDER_NAMES)
    for name, preset in COLLIDERS.items():
        beam = COLLIDER_BEAMS[name]
        assert (beam["e_her"], beam["e_ler"], beam["crossing_angle"]) == pytest.approx(
            (preset.beam.e_her, preset.beam.e_ler, preset.beam.crossing_angle), rel=1e-15)
        cfg = load_scan_config({"beam": {"collider": name}})
        assert sqrt_s_from_config(cfg) == pytest.approx(preset.sqrt_s, rel=1e-12)
    # an explicit sqrt_s wins; no collider key keeps the beam energies (and the old config, unfilled)
    assert sqrt_s_from_config(load_scan_config({"beam": {"collider": "zpole", "sqrt_s": 90.0}})) == 90.0
    default = load_scan_config(None)
    assert "collider" not in default["beam"]
    assert sqrt_s_from_config(default) == pytest.approx(collider("belle2").sqrt_s, rel=1e-12)
    from scans.errors import ScanConfigError

    with pytest.raises(ScanConfigError, match="'lep'"):
        load_scan_config({"beam": {"collider": "lep"}})

"""The Giga-Z selection (bumphunt.events.gigaz) on hand-made three-photon events."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bumphunt.errors import ConfigError, InputError
from bumphunt.events.candidates import diphoton_candidates
from bumphunt.events.gigaz import GigaZSelection, delta_r, recoil_energy, recoil_mass_window
from bumphunt.kinematics import Beam, invariant_mass, p4_from_spherical
from signal_models.alp import Z_MASS_GEV

BEAM = Beam(e_her=Z_MASS_GEV / 2, e_ler=Z_MASS_GEV / 2, crossing_angle=0.0)


def _event(m_a: float, opening_phi: float, theta: float = math.pi / 2) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A Z -> a gamma, a -> gamma gamma event with the ALP along x-ish and a symmetric decay."""
    s = Z_MASS_GEV**2
    e_rec = (s - m_a**2) / (2 * Z_MASS_GEV)
    e_a = Z_MASS_GEV - e_rec
    # symmetric decay: both photons E_a/2 at +-half opening about the ALP direction, M^2 = E_a^2/2 (1 - cos(open))
    half = math.acos(1 - 2 * m_a**2 / e_a**2) / 2 if opening_phi is None else opening_phi / 2
    E = np.array([[e_a / 2, e_a / 2, e_rec]])
    th = np.array([[theta, theta, math.pi - theta]])
    ph = np.array([[half, -half, math.pi]])
    return E, th, ph


def test_delta_r_and_recoil_window() -> None:
    assert delta_r(math.pi / 2, 0.0, math.pi / 2, 0.03) == pytest.approx(0.03)
    assert delta_r(math.pi / 2, math.pi - 0.01, math.pi / 2, -math.pi + 0.01) == pytest.approx(0.02)  # wraps in phi
    # eta = -ln tan(theta/2): a polar separation in the forward region is a larger Delta eta
    assert delta_r(0.2, 0.0, 0.21, 0.0) == pytest.approx(abs(math.log(math.tan(0.1)) - math.log(math.tan(0.105))))
    assert recoil_energy(0.0, Z_MASS_GEV) == pytest.approx(Z_MASS_GEV / 2)
    assert recoil_energy(10.0, Z_MASS_GEV) == pytest.approx((Z_MASS_GEV**2 - 100.0) / (2 * Z_MASS_GEV))
    lo, hi = recoil_mass_window(50.0, Z_MASS_GEV, 5.0)
    assert recoil_energy(lo, Z_MASS_GEV) - recoil_energy(50.0, Z_MASS_GEV) == pytest.approx(5.0)
    assert recoil_energy(50.0, Z_MASS_GEV) - recoil_energy(hi, Z_MASS_GEV) == pytest.approx(5.0)
    assert recoil_mass_window(1.0, Z_MASS_GEV, 5.0)[0] == 0.0
    with pytest.raises(ValueError, match="100"):
        recoil_mass_window(100.0, Z_MASS_GEV, 5.0)


def test_event_mask_energy_and_separation() -> None:
    sel = GigaZSelection()
    assert sel.to_dict() == {"photon_e_min": 2.0, "delta_r_min": 0.035, "recoil_window": 5.0}
    E, th, ph = _event(10.0, 0.3)
    three = {"E": np.repeat(E, 3, axis=0), "theta": np.repeat(th, 3, axis=0), "phi": np.repeat(ph, 3, axis=0)}
    three["phi"][1, :2] = [0.01, -0.01]  # photons 0.02 apart: overlapping
    three["E"][2, 0] = 1.5                # a photon below 2 GeV
    np.testing.assert_array_equal(sel.event_mask(three), [True, False, False])
    with pytest.raises(InputError, match="shape"):
        sel.event_mask({"E": np.ones((2, 2)), "theta": np.ones((2, 2)), "phi": np.ones((2, 2))})
    with pytest.raises(InputError, match="'theta'"):
        sel.event_mask({"E": np.ones((2, 3))})


def test_recoil_requirement_per_hypothesis_and_per_candidate() -> None:
    sel = GigaZSelection()
    m_a = 20.0
    E, th, ph = _event(m_a, None)
    three = {"E": E, "theta": th, "phi": ph, "weight": np.ones(1)}
    p4 = p4_from_spherical(E, th, ph)
    assert invariant_mass(p4[0, 0], p4[0, 1]) == pytest.approx(m_a, rel=1e-9)
    cands = diphoton_candidates(three, beam=BEAM)
    pair01 = (cands["i"] == 0) & (cands["j"] == 1)
    assert cands["mgg"][pair01][0] == pytest.approx(m_a, rel=1e-9)
    # per hypothesis: the true pair passes at m_a and within the window, not far from it
    assert sel.recoil_mask(cands, m_a, Z_MASS_GEV)[pair01].all()
    lo, hi = recoil_mass_window(m_a, Z_MASS_GEV, 5.0)
    assert sel.recoil_mask(cands, 0.999 * hi, Z_MASS_GEV)[pair01].all()
    assert not sel.recoil_mask(cands, 1.001 * hi, Z_MASS_GEV)[pair01].any()
    # the scan form: every candidate of an exactly three-body event is consistent with its own mass
    keep = sel.candidate_mask(three, cands, Z_MASS_GEV)
    assert keep.all()
    # a recoil photon 6 GeV off (not three-body) fails it for the pair (0, 1)
    three_bad = dict(three, E=E.copy())
    three_bad["E"][0, 2] -= 6.0
    bad = sel.candidate_mask(three_bad, diphoton_candidates(three_bad, beam=BEAM), Z_MASS_GEV)
    assert not bad[pair01].any()
    with pytest.raises(InputError, match="95"):
        sel.recoil_mask(cands, 95.0, Z_MASS_GEV)


def test_selection_config(tmp_path) -> None:
    path = tmp_path / "gigaz.yaml"
    path.write_text("gigaz_selection:\n  photon_e_min: 3.0\n")
    assert GigaZSelection.from_config(path) == GigaZSelection(photon_e_min=3.0)
    assert GigaZSelection.from_config(None) == GigaZSelection()
    path.write_text("delta_r_mim: 0.02\n")
    with pytest.raises(ConfigError, match="delta_r_mim"):
        GigaZSelection.from_config(path)
    path.write_text("recoil_window: -1\n")
    with pytest.raises(ConfigError, match="recoil_window"):
        GigaZSelection.from_config(path)


def test_example_configs_load() -> None:
    from pathlib import Path

    from bumphunt import toymc

    examples = Path(__file__).resolve().parents[2] / "examples" / "zpole"
    assert GigaZSelection.from_config(examples / "gigaz_selection.yaml") == GigaZSelection()
    st = toymc.settings_from_config(examples / "toymc_zpole.yaml")
    assert st.collider.name == "zpole" and st.coupling == "hypercharge" and st.g == 1e-3
    assert st.beam.sqrt_s == pytest.approx(Z_MASS_GEV) and st.cfg["backgrounds"]["eeg"] == 0

"""Diphoton candidates: pair masses, truth matching, CM quantities, fitted vs raw photons."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from ntuple_fixture import make_events, write_ntuple

from bumphunt.errors import InputError
from bumphunt.events import preselect
from bumphunt.events.candidates import diphoton_candidates
from bumphunt.events.reader import read_events
from bumphunt.kinematics import Beam, invariant_mass, p4_from_spherical


def three_photon(tmp_path: Path, rng: np.random.Generator, *, mass: float, smear: bool, process: str = "signal", n: int = 400):
    raw = make_events(rng, n, mass=mass, smear=smear, process=process, n_background_max=2, track_fraction=0.0)
    ev = read_events(write_ntuple(tmp_path / f"{process}_{mass}.root", raw))
    out, _ = preselect(ev, cuts={"multiplicity": "at_least"})
    return out


def test_mgg_is_pair_invariant_mass_and_layout(tmp_path: Path, rng: np.random.Generator) -> None:
    ev = three_photon(tmp_path, rng, mass=3.0, smear=True)
    cand = diphoton_candidates(ev)
    n = len(ev["event"])
    assert all(len(v) == 3 * n for v in cand.values())
    np.testing.assert_array_equal(cand["event_index"], np.repeat(np.arange(n), 3))
    p4 = p4_from_spherical(ev["E"], ev["theta"], ev["phi"])
    r, i, j, k = cand["event_index"], cand["i"], cand["j"], cand["k"]
    np.testing.assert_allclose(cand["mgg"], invariant_mass(p4[r, i], p4[r, j]), rtol=1e-12)
    np.testing.assert_array_equal(cand["mgg"], cand["mgg_raw"])
    # each event's three pairs use each photon as recoil once
    assert np.all(np.sort(k.reshape(-1, 3), axis=1) == [0, 1, 2])
    assert np.all((i != j) & (i != k) & (j != k))
    np.testing.assert_allclose(cand["E_recoil"], ev["E"][r, k])
    assert np.all(cand["E_high"] >= cand["E_low"])
    np.testing.assert_allclose(cand["E_high"] + cand["E_low"], ev["E"][r, i] + ev["E"][r, j])
    np.testing.assert_array_equal(cand["weight"], np.repeat(ev["weight"], 3))
    # the three-photon system is at rest in the CM only up to resolution, but energies are boosted correctly
    beam = Beam.belle2()
    np.testing.assert_allclose(cand["E_recoil_cm"], beam.to_cm(p4[r, k])[:, 3], rtol=1e-12)


def test_truth_match_exactly_one_pair_and_peaks_at_mass(tmp_path: Path, rng: np.random.Generator) -> None:
    """Fully reconstructed, unsmeared signal: one TM pair per event, at m_a; recoil at (s - m^2) / (2 sqrt s) in the CM."""
    mass = 2.5
    ev = three_photon(tmp_path, rng, mass=mass, smear=False)
    full = (ev["truth_a1"] >= 0) & (ev["truth_a2"] >= 0) & (ev["truth_recoil"] >= 0)
    assert full.mean() > 0.9
    cand = diphoton_candidates(ev)
    tm = cand["truth_match"].reshape(-1, 3)
    assert np.all(tm[full].sum(axis=1) == 1)
    assert np.all(tm[~full].sum(axis=1) == 0)
    tmc = cand["truth_match"]
    np.testing.assert_allclose(cand["mgg"][tmc], mass, rtol=1e-9)
    # the non-TM pairs are not at the mass
    assert np.mean(np.abs(cand["mgg"][~tmc] - mass) < 0.01) < 0.05
    beam = Beam.belle2()
    np.testing.assert_allclose(cand["E_recoil_cm"][tmc], (beam.s - mass**2) / (2 * beam.sqrt_s), rtol=1e-9)
    # the ALP photons have E_high_cm + E_low_cm = sqrt(s) - E_recoil_cm
    np.testing.assert_allclose(cand["E_high_cm"][tmc] + cand["E_low_cm"][tmc] + cand["E_recoil_cm"][tmc], beam.sqrt_s, rtol=1e-9)


def test_recoil_angle_follows_one_plus_cos2(tmp_path: Path) -> None:
    """The recoil photon of e+e- -> gamma a goes as 1 + cos^2 theta* about the CM beam axis.

    In the central region |cos theta*| < 0.6 the lab acceptance is complete, so the ratio of
    events with |cos| < 0.3 to 0.3 < |cos| < 0.6 must be 0.309 / 0.363 = 0.851 (isotropic: 1).
    """
    ev = three_photon(tmp_path, np.random.default_rng(3), mass=1.0, smear=False, n=8000)
    cand = diphoton_candidates(ev)
    c = np.abs(np.cos(cand["theta_recoil_cm"][cand["truth_match"]]))
    n_in, n_out = np.sum(c < 0.3), np.sum((c >= 0.3) & (c < 0.6))
    ratio = n_in / n_out
    err = ratio * np.sqrt(1 / n_in + 1 / n_out)
    expected = (0.3 + 0.3**3 / 3) / (0.3 + (0.6**3 - 0.3**3) / 3)
    assert abs(ratio - expected) < 3.5 * err
    assert ratio < 1 - 3 * err
    assert np.all((cand["theta_recoil_cm"] >= 0) & (cand["theta_recoil_cm"] <= np.pi))


def test_pi0_truth_pair_peaks_at_pi0_mass(tmp_path: Path, rng: np.random.Generator) -> None:
    from particle import Particle

    m_pi0 = Particle.from_pdgid(111).mass / 1000.0
    ev = three_photon(tmp_path, rng, mass=m_pi0, smear=True, process="pi0g")
    cand = diphoton_candidates(ev)
    m = cand["mgg"][cand["truth_match"]]
    assert len(m) > 100
    assert np.median(m) == pytest.approx(m_pi0, rel=0.05)
    assert np.median(np.abs(m - m_pi0)) < 0.01


def test_fitted_photons_used_when_present(tmp_path: Path, rng: np.random.Generator) -> None:
    ev = three_photon(tmp_path, rng, mass=4.0, smear=True)
    with pytest.raises(InputError, match="use_fitted=True"):
        diphoton_candidates(ev, use_fitted=True)
    fit = dict(ev)
    fit["fit_E"] = ev["E"] * 1.1
    fit["fit_theta"] = ev["theta"]
    fit["fit_phi"] = ev["phi"]
    fit["kinfit_chi2"] = np.arange(len(ev["event"]), dtype=float)
    c_auto = diphoton_candidates(fit)
    c_raw = diphoton_candidates(fit, use_fitted=False)
    np.testing.assert_allclose(c_auto["mgg"], 1.1 * c_auto["mgg_raw"], rtol=1e-12)
    np.testing.assert_array_equal(c_raw["mgg"], c_raw["mgg_raw"])
    np.testing.assert_array_equal(c_auto["mgg_raw"], c_raw["mgg_raw"])
    np.testing.assert_array_equal(c_auto["kinfit_chi2"], np.repeat(fit["kinfit_chi2"], 3))
    np.testing.assert_allclose(c_auto["E_recoil"], 1.1 * c_raw["E_recoil"])


def test_bad_input() -> None:
    with pytest.raises(InputError, match="no 'E'"):
        diphoton_candidates({"theta": np.zeros((2, 3))})
    with pytest.raises(InputError, match=r"shape \(n, 3\)"):
        diphoton_candidates({"E": np.zeros((2, 4)), "theta": np.zeros((2, 4)), "phi": np.zeros((2, 4))})


def _toymc():
    try:
        from bumphunt import toymc
    except ImportError:
        return None
    return toymc if hasattr(toymc, "generate") else None


@pytest.mark.skipif(_toymc() is None, reason="bumphunt.toymc.generate not available")
def test_toymc_pi0g_truth_pair_peaks_at_pi0_and_signal_fully_matched(tmp_path: Path) -> None:
    """Full chain on the toy MC: the truth pair of pi0 gamma peaks at m(pi0); signal has one TM pair per matched event."""
    from particle import Particle

    toymc = _toymc()
    # Gaussian energy response: the peak positions, not the calorimeter's low-side tail, are tested here
    files = toymc.generate(tmp_path, lumi_fb=0.01, seed=11, samples=["pi0g", "signal"], data=False,
                           config={"signal": {"masses": [3.0], "n_per_mass": 1500}, "backgrounds": {"pi0g": 1500},
                                   "detector": {"energy_tail": 0.0}})
    m_pi0 = Particle.from_pdgid(111).mass / 1000.0
    ev, cf = preselect(read_events(files["pi0g"]))
    cand = diphoton_candidates(ev)
    m = cand["mgg"][cand["truth_match"]]
    assert len(m) > 0.5 * len(ev["event"])
    assert np.median(m) == pytest.approx(m_pi0, abs=0.01)
    # the pi0 peak is the narrow feature of this sample: most TM pairs within +-30 MeV, few non-TM pairs there
    assert np.mean(np.abs(m - m_pi0) < 0.03) > 0.8
    sig_name = next(n for n in files if n.startswith("signal"))
    sig, _ = preselect(read_events(files[sig_name]))
    cs = diphoton_candidates(sig)
    full = (sig["truth_a1"] >= 0) & (sig["truth_a2"] >= 0) & (sig["truth_recoil"] >= 0)
    assert full.mean() > 0.9
    assert np.all(cs["truth_match"].reshape(-1, 3)[full].sum(axis=1) == 1)
    assert np.median(cs["mgg"][cs["truth_match"]]) == pytest.approx(3.0, rel=0.01)

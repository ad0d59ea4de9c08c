"""Features of the Punzi-net selector: physics identities, registry, bad input."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from bumphunt.errors import InputError
from bumphunt.kinematics import Beam, spherical_from_p4
from bumphunt.selection.features import (
    DEFAULT_FEATURES,
    FEATURES,
    Standardizer,
    candidate_pairs,
    compute_features,
    feature_matrix,
    register_feature,
)
from bumphunt.toymc.three_photon import synthetic_sample

BEAM = Beam.belle2()


def _events_from_cm(p4_cm: np.ndarray) -> dict[str, np.ndarray]:
    """Three-photon dict from CM four-vectors (n, 3, 4)."""
    E, th, ph = spherical_from_p4(BEAM.to_lab(p4_cm))
    n = E.shape[0]
    return {"E": E, "theta": th, "phi": ph, "process": np.ones(n, dtype=np.int32), "weight": np.ones(n)}


def _truth_events(seed: int = 5) -> tuple[dict, dict]:
    """Synthetic sample with the smeared photons replaced by the true ones (exact kinematics)."""
    ev, ng = synthetic_sample(masses=[0.5, 4.0], n_per_mass=300, n_background=600, seed=seed, bb_fraction=0.0)
    ev = dict(ev)
    ev["E"], ev["theta"], ev["phi"] = ev["mc_E"], ev["mc_theta"], ev["mc_phi"]
    return ev, ng


def test_default_list_has_nine_features_and_drops_chi2_without_fit(caplog: pytest.LogCaptureFixture) -> None:
    assert len(DEFAULT_FEATURES) == 9
    ev, _ = _truth_events()
    with caplog.at_level(logging.WARNING):
        f = compute_features(ev, beam=BEAM)
    assert "kinfit_chi2" in caplog.text
    assert list(f) == [n for n in DEFAULT_FEATURES if n != "kinfit_chi2"]
    ev["kinfit_chi2"] = np.linspace(0, 10, ev["E"].shape[0])
    f9 = compute_features(ev, beam=BEAM)
    assert list(f9) == list(DEFAULT_FEATURES)
    np.testing.assert_allclose(f9["kinfit_chi2"], np.repeat(ev["kinfit_chi2"], 3))
    # a fit that did not converge (chi2 = +inf by contract) gets the cap; NaN is an error
    ev["kinfit_chi2"][0] = np.inf
    assert compute_features(ev, beam=BEAM, names=["kinfit_chi2"])["kinfit_chi2"][0] == 1000.0
    ev["kinfit_chi2"][0] = np.nan
    with pytest.raises(InputError, match="kinfit_chi2"):
        compute_features(ev, beam=BEAM, names=["kinfit_chi2"])


def test_energies_obey_three_body_kinematics() -> None:
    ev, _ = _truth_events()
    f = compute_features(ev, beam=BEAM)
    total = f["E_high_cm"] + f["E_low_cm"] + f["E_recoil_cm"]
    np.testing.assert_allclose(total, BEAM.sqrt_s, rtol=1e-9)
    assert np.all(f["E_high_cm"] >= f["E_low_cm"])
    # truth-matched signal pairs: recoil energy (s - m^2) / (2 sqrt s)
    cand = candidate_pairs(ev["E"].shape[0])
    evi = cand["event_index"]
    tm = (ev["process"][evi] == 0) & (
        ((cand["i"] == ev["truth_a1"][evi]) & (cand["j"] == ev["truth_a2"][evi]))
        | ((cand["i"] == ev["truth_a2"][evi]) & (cand["j"] == ev["truth_a1"][evi]))
    )
    m = ev["mc_ma"][evi][tm]
    s = BEAM.s
    np.testing.assert_allclose(f["E_recoil_cm"][tm], (s - m**2) / (2 * BEAM.sqrt_s), rtol=1e-9)


def test_u_t_definition() -> None:
    ev, _ = _truth_events()
    f = compute_features(ev, beam=BEAM)
    np.testing.assert_allclose(f["u_recoil"] + f["t_recoil"], f["E_recoil_cm"] ** 2, rtol=1e-12)
    # cos theta* of the recoil from u, t agrees with a direct computation
    cand = candidate_pairs(ev["E"].shape[0])
    from bumphunt.kinematics import p4_from_spherical

    p4 = BEAM.to_cm(p4_from_spherical(ev["E"], ev["theta"], ev["phi"]))[cand["event_index"], cand["k"]]
    cos = p4[:, :3] @ BEAM.cm_axis() / np.linalg.norm(p4[:, :3], axis=1)
    np.testing.assert_allclose((f["u_recoil"] - f["t_recoil"]) / f["E_recoil_cm"] ** 2, cos, atol=1e-12)


def test_event_shapes_of_symmetric_configurations() -> None:
    e = BEAM.sqrt_s / 3.0
    ang = np.deg2rad([0.0, 120.0, 240.0])
    mercedes = np.stack([e * np.cos(ang), e * np.sin(ang), np.zeros(3), np.full(3, e)], axis=1)[None]
    # two back-to-back photons plus a very soft third one along y
    h = BEAM.sqrt_s / 2.0
    b2b = np.array([[[h, 0, 0, h], [-h, 0, 0, h], [0, 1e-6, 0, 1e-6]]])
    ev = _events_from_cm(np.concatenate([mercedes, b2b]))
    f = compute_features(ev, beam=BEAM, names=["sphericity", "fox_wolfram_r2", "cleo_cone0"])
    sph, r2, cone = (f[k].reshape(2, 3)[:, 0] for k in ("sphericity", "fox_wolfram_r2", "cleo_cone0"))
    np.testing.assert_allclose(sph, [0.75, 0.0], atol=1e-6)
    np.testing.assert_allclose(r2, [0.25, 1.0], atol=1e-6)
    # Mercedes: thrust axis along one photon, only that photon within 10 deg; back-to-back: both hard photons
    np.testing.assert_allclose(cone, [e, 2 * h], rtol=1e-6)
    # event-level features are identical for the three candidates of an event
    assert np.ptp(f["sphericity"].reshape(2, 3), axis=1).max() == 0


def test_subset_of_candidates_matches_full_computation() -> None:
    ev, _ = _truth_events()
    full = compute_features(ev, beam=BEAM)
    cand = candidate_pairs(ev["E"].shape[0])
    sel = np.arange(0, cand["i"].size, 7)
    sub = compute_features(ev, {k: v[sel] for k, v in cand.items()}, beam=BEAM)
    for name in full:
        np.testing.assert_allclose(sub[name], full[name][sel])


def test_uses_fitted_photons_when_present() -> None:
    ev, _ = _truth_events()
    ev2 = dict(ev)
    ev2["fit_E"], ev2["fit_theta"], ev2["fit_phi"] = ev["E"] * 1.01, ev["theta"], ev["phi"]
    a = compute_features(ev2, beam=BEAM, names=["E_recoil_cm"])
    b = compute_features(ev2, beam=BEAM, names=["E_recoil_cm"], use_fitted=False)
    np.testing.assert_allclose(a["E_recoil_cm"], 1.01 * b["E_recoil_cm"], rtol=1e-12)


def test_register_custom_feature() -> None:
    @register_feature("test_pair_energy_sum", unit="GeV", doc="E_high + E_low in the CM")
    def _pair_sum(ctx):  # noqa: ANN001
        hi, lo = ctx.high_low
        return hi[:, 3] + lo[:, 3]

    try:
        ev, _ = _truth_events()
        f = compute_features(ev, beam=BEAM, names=["test_pair_energy_sum", "E_recoil_cm"])
        np.testing.assert_allclose(f["test_pair_energy_sum"] + f["E_recoil_cm"], BEAM.sqrt_s, rtol=1e-9)
    finally:
        FEATURES.pop("test_pair_energy_sum", None)


def test_bad_input_errors() -> None:
    ev, _ = _truth_events()
    no_phi = {k: v for k, v in ev.items() if k != "phi"}
    with pytest.raises(InputError, match="'phi'"):
        compute_features(no_phi, beam=BEAM)
    with pytest.raises(InputError, match="unknown feature"):
        compute_features(ev, beam=BEAM, names=["no_such_feature"])
    with pytest.raises(InputError, match="kinfit_chi2"):
        compute_features(ev, beam=BEAM, names=["kinfit_chi2"])
    bad = dict(ev)
    bad["E"] = ev["E"].copy()
    bad["E"][3, 0] = np.nan
    with pytest.raises(InputError, match="not finite.*event row 3"):
        compute_features(bad, beam=BEAM)
    f = compute_features(ev, beam=BEAM)
    with pytest.raises(InputError, match="missing"):
        feature_matrix(f, ["E_high_cm", "cleo_cone0", "kinfit_chi2"])
    f["sphericity"][0] = np.inf
    with pytest.raises(InputError, match="sphericity"):
        feature_matrix(f, ["sphericity"])


def test_standardizer_roundtrip(rng: np.random.Generator) -> None:
    X = rng.normal([1.0, -3.0, 5.0], [2.0, 0.5, 0.0], size=(5000, 3))
    sc = Standardizer.fit(X, ["a", "b", "c"])
    Z = sc.transform(X)
    np.testing.assert_allclose(Z[:, :2].mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(Z[:, :2].std(axis=0), 1.0, atol=1e-5)
    assert np.all(np.isfinite(Z[:, 2]))  # constant column: std set to 1
    sc2 = Standardizer.from_dict(sc.to_dict())
    np.testing.assert_array_equal(sc2.transform(X), Z)
    with pytest.raises(InputError, match="3 feature columns"):
        sc.transform(X[:, :2])

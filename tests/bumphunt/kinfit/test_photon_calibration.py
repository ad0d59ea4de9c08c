"""Calibration of the photon energy resolution from e+e- -> mu+ mu- gamma (closure tests)."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest

from bumphunt import kinfit
from bumphunt.errors import InputError
from bumphunt.events.detector import REGION_BARREL, REGION_BWD, REGION_FWD, Resolution, TrackResolution, ecl_region
from bumphunt.kinematics import Beam
from bumphunt.toymc.exact import mumugamma_events, three_photon_sample

BEAM = Beam.belle2()
GENERATED = {REGION_FWD: 1.0, REGION_BARREL: 1.2, REGION_BWD: 0.9}


@pytest.fixture(scope="module")
def control() -> dict:
    return mumugamma_events(60000, beam=BEAM, rng=np.random.default_rng(21), resolution=Resolution(energy_scale=GENERATED))


def test_prediction_resolution_is_the_propagated_one(control: dict) -> None:
    e_pred, s_pred = kinfit.predict_photon_energy(control["theta"], control["phi"], control["mu_p3"], BEAM)
    z = (e_pred - control["mc_E"]) / s_pred
    assert abs(z.mean()) < 0.03
    assert z.std() == pytest.approx(1.0, abs=0.03)


def test_calibration_closure_scaled_barrel(control: dict) -> None:
    cal = kinfit.calibrate(control, beam=BEAM)
    assert cal.fit_valid
    for code, true in GENERATED.items():
        p = cal.params[code]
        assert p["calibrated"]
        assert abs(p["scale"] - true) < 3 * p["scale_err"], (code, p)
        assert p["scale_err"] < 0.03
        assert abs(p["bias"]) < 3 * p["bias_err"]
    # binned points agree with the generated resolution
    model_true = kinfit.PhotonCovarianceModel(resolution=Resolution(energy_scale=GENERATED))
    pulls = []
    for b in cal.bins:
        if b["n_events"] > 500:
            pulls.append((b["factor"] - GENERATED[b["region"]]) / b["factor_err"])
    pulls = np.array(pulls)
    assert len(pulls) >= 10
    assert np.abs(pulls).max() < 4
    assert abs(pulls.mean()) < 1.0
    # the calibrated model reproduces the generated sigma_E
    E = np.array([0.5, 1.0, 3.0])
    for code in GENERATED:
        np.testing.assert_allclose(cal.model.sigma_energy(E, code), model_true.sigma_energy(E, code), rtol=0.05)


def test_calibration_relative_to_ntuple_covariance(control: dict) -> None:
    """The control sample's per-photon covariance is the generated one: factors relative to it are 1."""
    cal = kinfit.calibrate(control, beam=BEAM, nominal="ntuple")
    assert cal.model.use_ntuple
    for code in GENERATED:
        p = cal.params[code]
        assert abs(p["scale"] - 1.0) < 3 * p["scale_err"]
    with pytest.raises(InputError, match="needs per-photon covariances"):
        kinfit.calibrate({k: v for k, v in control.items() if k != "cov"}, beam=BEAM, nominal="ntuple")


def test_calibration_with_energy_power_is_consistent(control: dict) -> None:
    cal = kinfit.calibrate(control, beam=BEAM, energy_power=True)
    for code, true in GENERATED.items():
        p = cal.params[code]
        assert abs(p["power"]) < 3 * p["power_err"]
        assert abs(p["scale"] - true) < 3 * p["scale_err"]


def test_wrong_track_resolution_biases_calibration(control: dict) -> None:
    """The prediction error matters: ignoring it overestimates the photon resolution."""
    perfect_tracks = TrackResolution(pt_a=1e-6, pt_b=1e-6, sigma_theta=1e-7, sigma_phi=1e-7)
    cal = kinfit.calibrate(control, beam=BEAM, track_resolution=perfect_tracks)
    p = cal.params[REGION_BARREL]
    assert p["scale"] - GENERATED[REGION_BARREL] > 5 * p["scale_err"]


def test_calibrated_model_gives_unit_pulls_in_kinfit(control: dict, tmp_path) -> None:
    cal = kinfit.calibrate(control, beam=BEAM)
    path = cal.save(tmp_path / "pcm.json")
    model = kinfit.PhotonCovarianceModel.load(path)
    assert model.energy_scale[REGION_BARREL] == pytest.approx(cal.params[REGION_BARREL]["scale"])
    ev = three_photon_sample(20000, beam=BEAM, rng=np.random.default_rng(22), m_a=6.0, resolution=Resolution(energy_scale=GENERATED), sort=False)
    assert not model.use_ntuple
    true_region = ecl_region(ev["mc_theta"])  # the generator evaluates the resolution at the true photon
    nominal_cov = kinfit.PhotonCovarianceModel().covariance(ev["mc_E"], true_region)
    calib_cov = model.covariance(ev["mc_E"], true_region, cov=ev["cov"])  # ntuple covariances ignored
    nom = kinfit.fit(ev["E"], ev["theta"], ev["phi"], nominal_cov, BEAM)
    cal_fit = kinfit.fit(ev["E"], ev["theta"], ev["phi"], calib_cov, BEAM)
    assert nom.chi2[nom.converged].mean() > 4.3
    assert cal_fit.chi2[cal_fit.converged].mean() == pytest.approx(4.0, abs=0.15)
    w = np.nanstd(cal_fit.pulls[cal_fit.converged, :, 0], axis=0)
    np.testing.assert_allclose(w, 1.0, atol=0.05)


def test_control_sample_from_jagged_events() -> None:
    c = mumugamma_events(2000, beam=BEAM, rng=np.random.default_rng(23))
    n = 2000
    # add a soft extra photon to every other event and a third track to the first 100 events
    extra = np.arange(n) % 2 == 0
    counts = np.where(extra, 2, 1)
    gE = ak.unflatten(np.concatenate([np.stack([c["E"], np.full(n, 0.15)], 1)[i, :k] for i, k in enumerate(counts)]), counts)
    gth = ak.unflatten(np.concatenate([np.stack([c["theta"], np.full(n, 1.0)], 1)[i, :k] for i, k in enumerate(counts)]), counts)
    gph = ak.unflatten(np.concatenate([np.stack([c["phi"], np.full(n, 0.3)], 1)[i, :k] for i, k in enumerate(counts)]), counts)
    ntrk = np.where(np.arange(n) < 100, 3, 2)
    mu = c["mu_p3"]
    trk = [np.concatenate([mu[i], np.ones((1, 3))])[:k] for i, k in enumerate(ntrk)]
    q = [np.array([-1, 1, 1])[:k] for k in ntrk]
    flat = np.concatenate(trk)
    events = {"gamma_E": gE, "gamma_theta": gth, "gamma_phi": gph,
              "track_px": ak.unflatten(flat[:, 0], ntrk), "track_py": ak.unflatten(flat[:, 1], ntrk),
              "track_pz": ak.unflatten(flat[:, 2], ntrk), "track_charge": ak.unflatten(np.concatenate(q), ntrk)}
    out = kinfit.control_sample_from_events(events, beam=BEAM)
    keep = (np.arange(n) >= 100) & (ecl_region(c["theta"]) != 0) & (c["E"] > 0.15)
    # events whose hardest ECL photon is the extra one are kept too, so compare the clean subset
    assert out["E"].size >= keep.sum()
    np.testing.assert_allclose(np.sort(out["E"])[-keep.sum():], np.sort(c["E"][keep]))
    assert out["mu_p3"].shape == (out["E"].size, 2, 3)
    with pytest.raises(InputError, match="track_px"):
        kinfit.control_sample_from_events({k: v for k, v in events.items() if k != "track_px"}, beam=BEAM)


def test_calibrate_rejects_missing_fields() -> None:
    with pytest.raises(InputError, match="mu_p3"):
        kinfit.calibrate({"E": np.ones(3), "theta": np.ones(3), "phi": np.ones(3)}, beam=BEAM)


def test_calibration_closure_on_toy_mc_control_sample() -> None:
    """Full toy detector (beam background, thresholds, track smearing; Gaussian energy response, which the
    calibration model assumes): the scaled barrel resolution is recovered."""
    from bumphunt.toymc import DetectorSettings, simulate_control

    generated = {REGION_FWD: 1.0, REGION_BARREL: 1.2, REGION_BWD: 1.0}
    ev = simulate_control(50000, rng=np.random.default_rng(24), beam=BEAM, resolution=Resolution(energy_scale=generated),
                          detector=DetectorSettings(energy_tail=0.0))
    control = kinfit.control_sample_from_events(ev, beam=BEAM)
    cal = kinfit.calibrate(control, beam=BEAM)
    for code, true in generated.items():
        p = cal.params[code]
        assert abs(p["scale"] - true) < 3 * p["scale_err"], (code, p)

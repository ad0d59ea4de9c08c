"""Photon covariance model: parametrisation, ntuple covariances, calibration factors, JSON files."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bumphunt import kinfit
from bumphunt.errors import InputError
from bumphunt.events.detector import REGION_BARREL, REGION_BWD, REGION_FWD, Resolution


def test_covariance_model_default_and_ntuple() -> None:
    E = np.array([[0.5, 2.0, 4.0]])
    region = np.array([[REGION_FWD, REGION_BARREL, REGION_BWD]])
    model = kinfit.PhotonCovarianceModel()
    np.testing.assert_allclose(model.covariance(E, region), Resolution().covariance(E, region))
    ntuple = np.tile(np.diag([1e-3, 4e-6, 9e-6]), (1, 3, 1, 1))
    ntuple[..., 0, 1] = ntuple[..., 1, 0] = 1e-5
    np.testing.assert_allclose(model.covariance(E, region, cov=ntuple), ntuple)
    assert kinfit.PhotonCovarianceModel(use_ntuple=False).covariance(E, region, cov=ntuple)[0, 0, 0, 1] == 0
    scaled = kinfit.PhotonCovarianceModel(energy_scale={REGION_FWD: 1.0, REGION_BARREL: 2.0, REGION_BWD: 1.0})
    c = scaled.covariance(E, region, cov=ntuple)
    assert c[0, 1, 0, 0] == pytest.approx(4 * ntuple[0, 1, 0, 0])
    assert c[0, 1, 0, 1] == pytest.approx(2 * ntuple[0, 1, 0, 1])
    assert c[0, 1, 1, 1] == pytest.approx(ntuple[0, 1, 1, 1])
    assert c[0, 0, 0, 0] == pytest.approx(ntuple[0, 0, 0, 0])
    events = {"E": E, "theta": np.array([[0.4, 1.5, 2.5]]), "region": region}
    np.testing.assert_allclose(model.event_covariance(events), Resolution().covariance(E, region))


def test_json_roundtrip_and_errors(tmp_path) -> None:
    m = kinfit.PhotonCovarianceModel(energy_scale={1: 1.1, 2: 1.2, 3: 1.3}, energy_power={1: 0.0, 2: 0.05, 3: 0.0})
    path = m.save(tmp_path / "m.json")
    back = kinfit.PhotonCovarianceModel.load(path)
    E = np.geomspace(0.1, 6, 20)
    for code in (1, 2, 3):
        np.testing.assert_allclose(back.sigma_energy(E, code), m.sigma_energy(E, code), rtol=1e-12)
    with pytest.raises(InputError, match="not found"):
        kinfit.PhotonCovarianceModel.load(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(InputError, match="not valid JSON"):
        kinfit.PhotonCovarianceModel.load(tmp_path / "bad.json")
    (tmp_path / "other.json").write_text(json.dumps({"kind": "something else"}))
    with pytest.raises(InputError, match="not a photon covariance model"):
        kinfit.PhotonCovarianceModel.load(tmp_path / "other.json")
    d = m.to_dict()
    d["regions"]["2"]["scale"] = -1
    (tmp_path / "neg.json").write_text(json.dumps(d))
    with pytest.raises(InputError, match=r"regions.2.scale"):
        kinfit.PhotonCovarianceModel.load(tmp_path / "neg.json")

"""A scan result records where its signal model and candidates came from, and can be redone from that record alone."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import yaml

import scans
from scans.testing import analytic_signal_model, toy_spectrum

CFG = {"mass": {"min": 1.0, "max": 1.6, "step": 0.2}, "lee": {"toys": 0}, "luminosity_fb": 0.1, "beam": {"sqrt_s": 10.58}}


def _sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_run_config_records_model_file_inputs_and_provenance(tmp_path) -> None:
    model = analytic_signal_model()
    (tmp_path / "model").mkdir()
    model_path = model.save(tmp_path / "model" / "signal_model.json")
    np.savez(tmp_path / "cands.npz", mgg=toy_spectrum(5000, lo=0.5, hi=2.5, seed=1))
    cfg = {**CFG, "inputs": {"files": ["cands.npz"]}, "signal_model": "model/signal_model.json",
           "provenance": {"selector": "sel/model", "working_point": 0.6, "toymc_seed": 7}}
    (tmp_path / "scan.yaml").write_text(yaml.safe_dump(cfg))
    result = scans.run_config(tmp_path / "scan.yaml", out_dir=tmp_path / "out", workers=1)
    # files by absolute path and content hash, computed here independently
    assert result["signal_model"] == {"path": str(model_path.resolve()), "sha256": _sha256(model_path)}
    assert result["inputs"] == [{"path": str((tmp_path / "cands.npz").resolve()), "sha256": _sha256(tmp_path / "cands.npz")}]
    assert result["provenance"] == {"selector": "sel/model", "working_point": 0.6, "toymc_seed": 7}
    written = json.loads((tmp_path / "out" / "scan_result.json").read_text())
    assert written["signal_model"] == result["signal_model"] and written["provenance"] == result["provenance"]
    # the record alone redoes the scan: same candidates, same model, same numbers
    again = scans.scan(np.load(result["inputs"][0]["path"])["mgg"], scans.run.load_signal_model(result["signal_model"]["path"]),
                       config=result["config"], workers=1)
    assert [p.get("ul_nsig_obs") for p in again["points"]] == [p.get("ul_nsig_obs") for p in result["points"]]


def test_analytic_model_in_memory_is_recorded_by_its_parameters() -> None:
    model = analytic_signal_model(efficiency_rel_unc=0.07)
    result = scans.scan(toy_spectrum(5000, lo=0.5, hi=2.5, seed=2), model, config=CFG, workers=1)
    assert result["signal_model"]["analytic"]["efficiency_rel_unc"] == 0.07
    back = scans.run.load_signal_model(None, result["signal_model"]["analytic"])
    assert back.shape(1.3) == model.shape(1.3) and back.efficiency(1.3) == model.efficiency(1.3)
    assert result["provenance"] == {}

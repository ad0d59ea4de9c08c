"""The demo's scan result can be re-plotted and re-scanned from its own recorded provenance alone (issue 18, acceptance 3).

Only the result file is used: the signal model and the candidate files it
records (path and sha256) and its configuration; not the demo's folder layout
nor its ``scan.yaml``, and from another working directory.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from bumphunt.cli import cli

pytest.importorskip("bumphunt.toymc")


@pytest.fixture(scope="module")
def recorded(small_demo) -> dict:
    """The demo's scan result, its recorded files checked against their hashes."""
    from scans.checkpoint import sha256_file

    assert small_demo.exit_code == 0, small_demo.output
    result = json.loads((small_demo.out / "scan" / "scan_result.json").read_text())
    model, inputs = result["signal_model"], result["inputs"]
    assert model and model.get("path") and inputs, "the demo's result records no signal model or no inputs"
    for entry in [model, *inputs]:
        path = Path(entry["path"])
        assert path.is_absolute() and path.is_file(), entry
        assert sha256_file(path) == entry["sha256"], f"{path} changed since the scan"
    prov = result["provenance"]
    assert prov["toymc_seed"] == 3 and prov["working_point"] == result["config"]["inputs"]["selection"]["working_point"]
    return result


def _fitted_mass(result: dict) -> float:
    """A mass of a fitted, converged point near the middle of the scan."""
    pts = [p for p in result["points"] if not p["vetoed"] and p["converged"]]
    return float(pts[len(pts) // 2]["mass"])


def test_replot_with_fits_from_the_result_alone(small_demo, recorded, tmp_path, monkeypatch) -> None:
    alone = tmp_path / "elsewhere" / "result.json"
    alone.parent.mkdir()
    shutil.copy(small_demo.out / "scan" / "scan_result.json", alone)
    monkeypatch.chdir(tmp_path)  # no path may be read relative to the demo's folders
    mass = _fitted_mass(recorded)
    res = CliRunner().invoke(cli, ["plot", str(alone), "--out", str(tmp_path / "plots"), "--fit-masses", f"{mass:g}"])
    assert res.exit_code == 0, res.output
    written = [Path(line) for line in res.output.split() if line.endswith(".png")]
    assert written and all(p.is_file() and p.stat().st_size > 1000 for p in written)
    names = {p.name for p in written}
    assert {"brazil_nsig.png", "brazil_xsec.png", "coupling_exclusion.png"} <= names
    fits = [n for n in names if n.startswith("fit_")]
    assert len(fits) == 1, names


def test_rescan_from_the_recorded_provenance_gives_identical_points(recorded, tmp_path, monkeypatch) -> None:
    # the recorded configuration, with the recorded files given explicitly (its own paths are relative to the demo's folder)
    config = tmp_path / "rescan.yaml"
    config.write_text(yaml.safe_dump(recorded["config"], sort_keys=False))
    monkeypatch.chdir(tmp_path)
    args = ["scan", str(config), "--signal-model", recorded["signal_model"]["path"], "--out", str(tmp_path / "rescan"), "--no-plots"]
    for entry in recorded["inputs"]:
        args += ["--input", entry["path"]]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    again = json.loads((tmp_path / "rescan" / "scan_result.json").read_text())
    assert again["signal_model"] == recorded["signal_model"] and again["inputs"] == recorded["inputs"]
    assert again["n_candidates"] == recorded["n_candidates"]
    assert again["points"] == recorded["points"]  # every number of every point, bit for bit
    assert again["global"] == recorded["global"]

"""``bumphunt project CONFIG --out DIR``: the files, the numbers of the Python API, and one-line errors for bad configurations."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from bumphunt.cli import cli

CONFIG = {
    "collider": "zpole",
    "mass": {"min": 1.0, "max": 40.0, "spacing": "log", "points": 6},
    "signal": {"resolution": {"kind": "polynomial", "coeffs": [0.03, 0.001]}, "efficiency": 0.9},
    "background": {"kind": "exponential", "norm": 200.0, "slope": 0.02},
    "data_range": [0.3, 85.0],
    "references": ["lep_z3gamma_hypercharge"],
}


def _write(tmp_path: Path, config: dict) -> Path:
    path = tmp_path / "project.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_project_writes_the_projection_of_the_api(tmp_path: Path) -> None:
    import scans
    from scans.projection import PeakSignal, project

    out = tmp_path / "out"
    res = CliRunner().invoke(cli, ["project", str(_write(tmp_path, CONFIG)), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "100 fb^-1 at sqrt(s) = 91.1876 GeV, hypercharge coupling" in res.output  # the zpole preset's defaults
    for name in ("projection.json", "projection.csv", "projection_coupling.png", "projection_xsec.png"):
        assert (out / name).is_file()
    doc = scans.load_result(out / "projection.json")
    assert doc["coupling"] == "hypercharge" and doc["config"]["project_config"]["luminosity_fb"] == 100.0
    signal = PeakSignal(lambda m: 0.03 + 0.001 * np.asarray(m), 0.9)
    api = project(np.geomspace(1.0, 40.0, 6), lambda m: 200.0 * np.exp(-0.02 * np.asarray(m)), luminosity_fb=100.0, sqrt_s=91.1876,
                  signal_model=signal, coupling="hypercharge", data_range=(0.3, 85.0))
    np.testing.assert_allclose([p["ul_g_gev_exp"] for p in doc["points"]], api.ul_g_gev_exp, rtol=1e-12)
    np.testing.assert_allclose([p["counting_g_gev"] for p in doc["points"]], api.counting_g_gev, rtol=1e-12)
    rows = (out / "projection.csv").read_text().splitlines()
    assert len(rows) == 7 and rows[0].startswith("mass,sigma,window_lo")


@pytest.mark.parametrize(("change", "message"), [
    ({"mass": {"min": 1.0, "stp": 0.1}}, "mass: Additional properties are not allowed ('stp' was unexpected); allowed keys:"),
    ({"collider": "lhc"}, "collider: unknown collider 'lhc'; known: belle2, babar, zpole"),
    ({"coupling": "axion"}, "coupling: 'axion' is not one of"),
    ({"mass": {"min": 1.0, "max": 95.0}}, "mass.max: m_a = 95 GeV is at or above sqrt(s) = 91.1876 GeV"),
    ({"background": {"kind": "sample"}}, "background: kind sample needs files and luminosity_fb"),
    ({"references": ["nonexistent"]}, "references: unknown reference limit 'nonexistent'; available:"),
])
def test_bad_configuration_is_one_line_naming_the_key(tmp_path: Path, change: dict, message: str) -> None:
    res = CliRunner().invoke(cli, ["project", str(_write(tmp_path, {**CONFIG, **change})), "--out", str(tmp_path / "out")])
    assert res.exit_code != 0
    assert isinstance(res.exception, SystemExit)  # a handled error, no traceback
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and message in lines[0], res.output
    assert "Traceback" not in res.output


def test_belle2_default_with_a_sample_background(tmp_path: Path) -> None:
    from scans.testing import toy_spectrum

    np.save(tmp_path / "bkg.npy", toy_spectrum(20_000, lo=0.2, hi=4.0, slope=0.8, seed=3))
    config = {"luminosity_fb": 10.0, "mass": {"min": 0.5, "max": 3.0, "step": 0.5},
              "background": {"kind": "sample", "files": ["bkg.npy"], "luminosity_fb": 0.5}}
    res = CliRunner().invoke(cli, ["project", str(_write(tmp_path, config)), "--out", str(tmp_path / "out")])
    assert res.exit_code == 0, res.output
    doc = json.loads((tmp_path / "out" / "projection.json").read_text())
    assert doc["coupling"] == "photon" and abs(doc["sqrt_s"] - 10.5739) < 1e-3  # the belle2 preset
    assert all(p["converged"] for p in doc["points"])

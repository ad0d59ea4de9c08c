"""``bumphunt recast RESULT --to MODEL [--sqrt-s GEV] --out FILE``: the recast file, round trips, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from bumphunt.cli import cli


@pytest.fixture(scope="module")
def result_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import scans
    from scans.testing import analytic_signal_model, toy_spectrum

    out = tmp_path_factory.mktemp("scan")
    mgg = toy_spectrum(20_000, lo=0.2, hi=4.0, slope=0.8, seed=4)
    cfg = {"mass": {"min": 0.5, "max": 3.0, "step": 0.5}, "vetoes": {"particles": []}, "lee": {"toys": 0},
           "execution": {"workers": 1, "progress": False}}
    scans.scan(mgg, analytic_signal_model(), config=cfg, out_dir=out)
    return out / "scan_result.json"


def _run(*args: str):
    return CliRunner().invoke(cli, ["recast", *args])


def test_recast_to_hypercharge_and_back(result_file: Path, tmp_path: Path) -> None:
    from scans.recast import recast

    res = _run(str(result_file), "--to", "hypercharge", "--out", str(tmp_path / "h.json"))
    assert res.exit_code == 0, res.output
    assert "photon at sqrt(s) = 10.5739 GeV -> hypercharge at 10.5739 GeV; efficiency flat" in res.output
    original = json.loads(result_file.read_text())
    hyper = json.loads((tmp_path / "h.json").read_text())
    assert hyper == json.loads(json.dumps(recast(original, coupling="hypercharge")))
    res = _run(str(tmp_path / "h.json"), "--to", "photon", "--out", str(tmp_path / "p.json"))
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "p.json").read_text())["points"] == original["points"]


def test_recast_to_the_z_pole_with_a_decay_radius(result_file: Path, tmp_path: Path) -> None:
    res = _run(str(result_file), "--to", "hypercharge", "--sqrt-s", "91.1876", "--decay-radius", "1.5", "--isr", "--out", str(tmp_path / "z.json"))
    assert res.exit_code == 0, res.output
    doc = json.loads((tmp_path / "z.json").read_text())
    step = doc["recast"][-1]
    assert doc["sqrt_s"] == 91.1876 and doc["coupling"] == "hypercharge"
    assert "decays within 1.5 m" in step["efficiency"] and "ISR" in step["cross_section"]


@pytest.mark.parametrize(("args", "message"), [
    (["--to", "axion"], "unknown coupling model 'axion'; known: photon, hypercharge"),
    (["--to", "hypercharge", "--sqrt-s", "2.2"], "m_a = 2.5 GeV of the result is at or above the target sqrt(s) = 2.2 GeV"),
    ([], "nothing to recast: give --to MODEL and/or --sqrt-s GEV"),
])
def test_bad_input_is_one_line(result_file: Path, tmp_path: Path, args: list[str], message: str) -> None:
    res = _run(str(result_file), *args, "--out", str(tmp_path / "x.json"))
    assert res.exit_code != 0 and isinstance(res.exception, SystemExit)
    assert message in res.output and "Traceback" not in res.output
    assert not (tmp_path / "x.json").exists()


@pytest.mark.parametrize(("content", "message"), [
    ('{"mass": 1.0}', "not a scan result, missing key(s) points, sqrt_s, luminosity_fb"),
    ("[1, 2, 3]", "not a scan result (a JSON list, not an object)"),
    ("mass,g\n1,2\n", "not a JSON scan result"),
])
def test_a_file_that_is_not_a_scan_result(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "not_a_result.json"
    path.write_text(content)
    res = _run(str(path), "--to", "hypercharge", "--out", str(tmp_path / "x.json"))
    assert res.exit_code != 0 and isinstance(res.exception, SystemExit)
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and message in lines[0], res.output

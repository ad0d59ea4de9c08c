"""The command line: --help/--version stay light (no TensorFlow), preselect and demo run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from ntuple_fixture import default_meta, make_events, write_ntuple

from bumphunt import __version__
from bumphunt.cli import cli

HEAVY = ("tensorflow", "zfit", "keras")


def _run_in_subprocess(args: list[str]) -> tuple[str, list[str]]:
    code = (
        "import sys\n"
        "from bumphunt.cli import cli\n"
        "try:\n"
        f"    cli({args!r}, prog_name='bumphunt')\n"
        "except SystemExit as e:\n"
        "    assert e.code in (0, None), e.code\n"
        f"print('HEAVY=' + ','.join(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    heavy_line = [line for line in res.stdout.splitlines() if line.startswith("HEAVY=")][-1]
    return res.stdout, [m for m in heavy_line[len("HEAVY="):].split(",") if m]


@pytest.mark.parametrize("args", [["--help"], ["--version"], ["preselect", "--help"], ["demo", "--help"]])
def test_help_and_version_do_not_import_tensorflow(args: list[str]) -> None:
    out, heavy = _run_in_subprocess(args)
    assert heavy == [], f"bumphunt {' '.join(args)} imported {heavy}"
    if args == ["--version"]:
        assert __version__ in out
    elif args == ["--help"]:
        assert "preselect" in out and "demo" in out
    else:
        assert "--out" in out


def test_preselect_cli_writes_events_and_cutflows(tmp_path: Path, rng: np.random.Generator) -> None:
    from bumphunt.events import load_three_photon, preselect, read_events

    sig = write_ntuple(tmp_path / "signal.root", make_events(rng, 300), meta=default_meta("signal"))
    bkg = write_ntuple(tmp_path / "ggg.root", make_events(rng, 200, process="ggg"), meta=default_meta("ggg"))
    out = tmp_path / "out"
    res = CliRunner().invoke(cli, ["preselect", str(tmp_path / "*.root"), "--out", str(out), "--step-size", "64"])
    assert res.exit_code == 0, res.output
    for stem, path in (("signal", sig), ("ggg", bkg)):
        ref, ref_cf = preselect(read_events(path))
        got = load_three_photon(out / f"{stem}_3g.root")
        np.testing.assert_array_equal(got["E"], ref["E"])  # chunked reading gives the same selection
        cf = json.loads((out / f"{stem}_cutflow.json").read_text())
        assert cf == ref_cf.to_dict()
        assert (out / f"{stem}_cutflow.md").read_text().count("|---|") == 1
        assert stem in res.output


def test_preselect_cli_bad_inputs_are_clean_errors(tmp_path: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(cli, ["preselect", str(tmp_path / "missing.root"), "--out", str(tmp_path / "o")])
    assert res.exit_code == 1
    assert "missing.root: file not found" in res.output and "Traceback" not in res.output
    bad = tmp_path / "cuts.yaml"
    bad.write_text("photon_e_minimum: 1\n")
    (tmp_path / "x.root").write_text("not root")
    res = runner.invoke(cli, ["preselect", str(tmp_path / "x.root"), "--out", str(tmp_path / "o"), "--config", str(bad)])
    assert res.exit_code == 1 and "allowed keys" in res.output
    res = runner.invoke(cli, ["preselect", str(tmp_path / "x.root"), "--out", str(tmp_path / "o")])
    assert res.exit_code == 1 and "not a readable ROOT file" in res.output


def _toymc_available() -> bool:
    try:
        from bumphunt import toymc
    except ImportError:
        return False
    return hasattr(toymc, "generate")


@pytest.mark.skipif(not _toymc_available(), reason="bumphunt.toymc.generate not available")
def test_demo_runs(small_demo) -> None:
    # the session's one run of `bumphunt demo --out DIR --small --seed 3` (tests/bumphunt/conftest.py)
    demo = small_demo.out
    assert small_demo.exit_code == 0, small_demo.output
    report = demo / "report.md"
    assert report.is_file() and str(report) in small_demo.output
    text = report.read_text()
    assert "Pre-selection" in text and "Diphoton candidates" in text
    assert (demo / "plots" / "mgg_stacked.png").stat().st_size > 1000
    cf = json.loads((demo / "cutflow.json").read_text())
    assert "signal" in " ".join(cf["processes"])
    for section in ("Kinematic fit", "Punzi-net selector", "Signal model", "Mass scan", "Summary"):
        assert f"## {section}" in text
    # the kinematic fit narrows the signal peak (4C fit: a large gain at high mass)
    kf = json.loads((demo / "kinfit" / "kinfit_summary.json").read_text())["resolution"]
    assert kf and all(v["gain"] > 1.0 for v in kf.values())
    # the scan used the selected candidates and the signal model built from the selected signal grid
    from signal_models import SignalModel

    model = SignalModel.load(demo / "signal_model" / "signal_model.json")
    lo, hi = model.mass_range
    assert lo < 0.5 and hi > 9.0
    assert 0.0 < float(model.efficiency(4.0)) < 1.0
    result = json.loads((demo / "scan" / "scan_result.json").read_text())
    from bumphunt.events import load_three_photon

    n_data_cand = 3 * len(load_three_photon(demo / "preselected" / "data_3g.root")["E"])
    assert 0 < result["n_candidates"] < n_data_cand  # the selector removed part of the pseudo-data
    assert (demo / "selector" / "plots" / "loss_curves.png").stat().st_size > 1000
    for key in ("Scan result (JSON)", "Signal model (JSON)"):
        assert key in small_demo.output


def test_an_unexpected_error_prints_one_message_and_the_log_path_not_a_traceback(tmp_path) -> None:
    code = (
        "import scans.config\n"
        "def boom(*a, **k):\n"
        "    raise KeyError('simulated bug')\n"
        "scans.config.load_scan_config = boom\n"
        "import scans\n"
        "scans.load_scan_config = boom\n"
        "from bumphunt.cli import main\n"
        "main(sys_args)\n"
    )
    for verbose in (False, True):
        args = (["-v"] if verbose else []) + ["scan", "--out", str(tmp_path / "o")]
        res = subprocess.run([sys.executable, "-c", f"sys_args = {args!r}\n" + code], capture_output=True, text=True, timeout=300)
        if verbose:
            assert res.returncode == 1 and "Traceback" in res.stderr and "simulated bug" in res.stderr
            continue
        assert res.returncode == 2, res.stderr
        assert "Traceback" not in res.stderr and "unexpected KeyError: 'simulated bug'" in res.stderr
        log = res.stderr.split("the traceback is in ")[1].split(",")[0]
        assert "Traceback" in Path(log).read_text() and "simulated bug" in Path(log).read_text()
        Path(log).unlink()

"""`bumphunt fit` with nuisances: --impacts (pulls, impacts, ranking plot) and --nll-scan (profile-likelihood crossings, plot)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import fits
from bumphunt.cli import cli
from fits.impacts import impacts
from fits.likelihood_scan import ONE_SIGMA_CL, likelihood_scan
from scans.testing import sample_signal, toy_spectrum
from signal_models.synthetic import TruthCurves

MASS = 1.5


@pytest.fixture(scope="module")
def data_file(tmp_path_factory) -> tuple[Path, np.ndarray]:
    shape = TruthCurves().shape(MASS)
    lo, hi = shape.window(20.0)
    x = np.r_[toy_spectrum(12000, lo=0.1, hi=4.0, slope=0.5, seed=5), sample_signal(shape, 120, lo=lo, hi=hi, seed=6)]
    path = tmp_path_factory.mktemp("cand") / "mgg.npy"
    np.save(path, x)
    return path, x


def _run(args: list[str]) -> object:
    return CliRunner().invoke(cli, args, catch_exceptions=False)


NUIS = ["--yield-unc", "0.1", "--resolution-unc", "0.05", "--shift-unc", "0.002"]


def test_impacts_table_plot_and_json(data_file, tmp_path) -> None:
    path, x = data_file
    plot, out = tmp_path / "imp.png", tmp_path / "fit.json"
    res = _run(["fit", "--mass", str(MASS), "--data", str(path), "--no-limit", *NUIS, "--impacts", "--impacts-plot", str(plot), "--plot", "",
                "--json", str(out)])
    assert res.exit_code == 0, res.output
    for word in ("nuisances profiled", "rank", "nuisance", "pull", "yield", "resolution", "shift", "impacts plot:"):
        assert word in res.output
    assert plot.stat().st_size > 10_000
    got = json.loads(out.read_text())
    assert set(got["impacts"]["names"]) == {"yield", "resolution", "shift"}
    # the same numbers as the library call
    shape = TruthCurves().shape(MASS)
    table = impacts(x, shape, None, yield_uncertainties=[fits.YieldUncertainty("yield", 0.1)],
                    shape_uncertainties=[fits.ShapeUncertainty("resolution", "resolution", 0.05), fits.ShapeUncertainty("shift", "shift", 0.002)])
    assert got["impacts"]["names"] == [table.names[i] for i in table.ranking]
    np.testing.assert_allclose(got["impacts"]["impact_up"], table.impact_up[table.ranking], rtol=1e-12)
    assert got["fit"]["nsig"] == pytest.approx(table.mu_hat, rel=1e-9)
    assert set(got["fit"]["nuisances"]) == {"yield", "resolution", "shift"}


def test_nll_scan_prints_the_crossings_and_writes_the_plot(data_file, tmp_path) -> None:
    path, x = data_file
    plot, out = tmp_path / "scan.png", tmp_path / "fit.json"
    res = _run(["fit", "--mass", str(MASS), "--data", str(path), "--no-limit", "--nll-scan", "--nll-scan-plot", str(plot), "--plot", "",
                "--json", str(out)])
    assert res.exit_code == 0, res.output
    assert "68.27%" in res.output and "95.00%" in res.output and "likelihood-scan plot:" in res.output
    assert plot.stat().st_size > 10_000
    got = json.loads(out.read_text())["nll_scan"]
    scan = likelihood_scan(x, TruthCurves().shape(MASS), None)
    assert got["poi"] == "N_sig"
    iv = scan.interval(ONE_SIGMA_CL)
    assert got["intervals"][0]["lo"] == pytest.approx(iv.lo, rel=1e-9) and got["intervals"][0]["hi"] == pytest.approx(iv.hi, rel=1e-9)
    # without nuisances the scan's minimum is the plain fit's N_sig
    plain = json.loads(out.read_text())["fit"]
    assert scan.mu_hat == pytest.approx(plain["nsig"], abs=1e-3 * plain["nsig_err"])


def test_fit_with_nuisances_and_limit(data_file) -> None:
    path, _ = data_file
    res = _run(["fit", "--mass", str(MASS), "--data", str(path), "--yield-unc", "0.2", "--plot", ""])
    assert res.exit_code == 0, res.output
    assert "nuisance yield: +0.000 +- 1.000" in res.output and "CL CLs upper limit on N_sig" in res.output


def test_bad_options_are_clean_errors(data_file) -> None:
    path, _ = data_file
    res = CliRunner().invoke(cli, ["fit", "--mass", str(MASS), "--data", str(path), "--impacts"])
    assert res.exit_code == 2 and "--impacts needs at least one nuisance" in res.output
    res = CliRunner().invoke(cli, ["fit", "--mass", str(MASS), "--data", str(path), "--toys", "10", "--yield-unc", "0.1"])
    assert res.exit_code == 2 and "--toys does not take nuisances" in res.output
    res = CliRunner().invoke(cli, ["fit", "--mass", str(MASS), "--resolution-unc", "0.7"])
    assert res.exit_code == 2 and "--resolution-unc" in res.output


def test_help_shows_the_new_options_with_units_and_defaults() -> None:
    res = CliRunner().invoke(cli, ["fit", "--help"], terminal_width=200)
    text = " ".join(res.output.split())
    for opt in ("--yield-unc", "--resolution-unc", "--shift-unc", "--impacts", "--impacts-plot", "--nll-scan", "--nll-scan-plot"):
        assert opt in text
    assert "peak position in GeV" in text and "[default: impacts.png]" in text and "[default: nll_scan.png]" in text
    assert "[default: 0.0; x>=0.0]" in text

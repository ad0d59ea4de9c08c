"""Scan driver robustness: kill and resume, process pool and Dask give identical results, early errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

import fits
from scans import CheckpointError, ScanConfigError, ScanInputError, run_config, scan
from scans.testing import analytic_signal_model, toy_spectrum

REPO = Path(__file__).resolve().parent.parent
SMALL = {"mass": {"min": 0.3, "max": 1.5}, "block_size": 2, "lee": {"toys": 0}, "execution": {"workers": 1}}


def _spectrum() -> np.ndarray:
    return toy_spectrum(8000, lo=0.1, hi=3.0, slope=0.5, seed=21)


SCRIPT = textwrap.dedent(
    """
    import json, sys, time
    import fits
    real = fits.evaluate_hypotheses

    def slow(*args, **kwargs):  # the real engine, slowed down so the scan can be killed part-way
        time.sleep(0.5)
        return real(*args, **kwargs)

    fits.evaluate_hypotheses = slow
    from scans import scan
    from scans.testing import analytic_signal_model, toy_spectrum
    x = toy_spectrum(8000, lo=0.1, hi=3.0, slope=0.5, seed=21)
    scan(x, analytic_signal_model(), config=json.loads(sys.argv[2]), out_dir=sys.argv[1], workers=1)
    """
)


def test_killed_scan_resumes_to_identical_result(tmp_path, monkeypatch) -> None:
    out = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT, str(out), json.dumps(SMALL)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    ckpt = out / "checkpoint"
    deadline = time.monotonic() + 300
    try:
        while not list(ckpt.glob("block_*.json")):
            if proc.poll() is not None:
                pytest.fail(f"scan subprocess ended before its first checkpoint: {proc.stderr.read().decode()[-2000:]}")
            if time.monotonic() > deadline:
                pytest.fail("no checkpoint block appeared")
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    done_before = {p.name for p in ckpt.glob("block_*.json")}
    assert not (out / "scan_result.json").exists()

    x = _spectrum()
    model = analytic_signal_model()
    calls = []
    real = fits.evaluate_hypotheses

    def counting(mgg, shapes, windows, **kw):
        calls.append(len(shapes))
        return real(mgg, shapes, windows, **kw)

    monkeypatch.setattr(fits, "evaluate_hypotheses", counting)
    resumed = scan(x, model, config=SMALL, out_dir=out, resume=True)
    n_blocks = len(list(ckpt.glob("block_*.json")))
    assert 0 < len(done_before) < n_blocks
    assert len(calls) == n_blocks - len(done_before)  # only the missing blocks were fitted

    calls.clear()
    fresh = scan(x, model, config=SMALL, out_dir=tmp_path / "fresh")
    assert len(calls) == n_blocks
    assert resumed["points"] == fresh["points"]
    assert json.dumps(resumed, sort_keys=True) == json.dumps(fresh, sort_keys=True)
    masses = [p["mass"] for p in resumed["points"]]
    assert masses == sorted(set(masses))  # none lost or duplicated
    on_disk = json.loads((out / "scan_result.json").read_text())
    assert on_disk["points"] == fresh["points"]

    # a checkpoint made with another configuration is refused
    with pytest.raises(CheckpointError, match="configuration"):
        scan(x, model, config={**SMALL, "bkg_order": 2}, out_dir=out, resume=True)
    with pytest.raises(CheckpointError, match="input"):
        scan(x[:-10], model, config=SMALL, out_dir=out, resume=True)


def test_process_pool_and_dask_cluster_give_identical_results() -> None:
    distributed = pytest.importorskip("distributed")
    x = _spectrum()
    model = analytic_signal_model()
    cfg = {**SMALL, "block_size": 4, "lee": {"toys": 3, "seed": 9, "background_order": 6, "bins": 300}}
    serial = scan(x, model, config=cfg, workers=1)
    pooled = scan(x, model, config=cfg, workers=2)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        assert cluster.scheduler_address.startswith(("tcp://127.0.0.1", "inproc://"))
        with distributed.Client(cluster.scheduler_address) as client:
            on_dask = scan(x, model, config=cfg, dask=client)
    for other in (pooled, on_dask):
        assert other["points"] == serial["points"]
        assert other["global"] == serial["global"]
    assert serial["global"]["n_toys"] == 3


def test_errors_before_any_fit(tmp_path, monkeypatch) -> None:
    def no_fits(*a, **k):
        raise AssertionError("a fit ran although the input was invalid")

    monkeypatch.setattr(fits, "evaluate_hypotheses", no_fits)
    x = _spectrum()
    model = analytic_signal_model(mass_range=(0.1, 5.0))
    with pytest.raises(ScanConfigError, match=r"outside the signal model range \[0.1, 5.0\]"):
        scan(x, model, config={"mass": {"min": 0.3, "max": 9.6}})
    with pytest.raises(ScanConfigError, match="allowed keys"):
        scan(x, model, config={"mass_range": [1, 2]})
    with pytest.raises(ScanConfigError, match=r"mass.max: 1.5 GeV is not below sqrt\(s\)"):
        scan(x, model, config={**SMALL, "beam": {"sqrt_s": 1.2}})
    with pytest.raises(ScanInputError, match="NaN or infinite"):
        scan(np.r_[x, np.nan], model, config=SMALL)
    with pytest.raises(ScanInputError, match="does not overlap the data range"):
        scan(x, model, config={"mass": {"min": 4.0, "max": 4.5}})
    bad_eff = analytic_signal_model(efficiency_coeffs=(0.3, -0.5))
    with pytest.raises(ScanInputError, match=r"efficiency at m = .* \(must be > 0"):
        scan(x, bad_eff, config=SMALL)
    cfg_path = tmp_path / "scan.yaml"
    cfg_path.write_text("inputs:\n  files: [missing.npy]\nlee:\n  toys: 0\n")
    with pytest.raises(ScanInputError, match="missing.npy: input file not found"):
        run_config(cfg_path)
    np.savez(tmp_path / "cands.npz", m=x)
    cfg_path.write_text("inputs:\n  files: [cands.npz]\n")
    with pytest.raises(ScanInputError, match="no array 'mgg' .*has: m"):
        run_config(cfg_path)


def test_cli_scan_resume_and_plot(tmp_path) -> None:
    from click.testing import CliRunner

    from bumphunt.cli import cli

    np.savez(tmp_path / "cands.npz", mgg=_spectrum())
    (tmp_path / "scan.yaml").write_text("inputs:\n  files: [cands.npz]\nmass: {min: 0.3, max: 1.0}\nlee: {toys: 0}\n")
    runner = CliRunner()
    out = tmp_path / "out"
    res = runner.invoke(cli, ["scan", str(tmp_path / "scan.yaml"), "--out", str(out), "--workers", "1", "--no-plots"])
    assert res.exit_code == 0, res.output
    result = json.loads((out / "scan_result.json").read_text())
    assert result["inputs"][0]["path"].endswith("cands.npz") and len(result["inputs"][0]["sha256"]) == 64
    assert (out / "scan_points.csv").read_text().count("\n") == len(result["points"]) + 1
    again = runner.invoke(cli, ["scan", str(tmp_path / "scan.yaml"), "--out", str(out), "--resume", "--no-plots"])
    assert again.exit_code == 0 and json.loads((out / "scan_result.json").read_text())["points"] == result["points"]
    ext = tmp_path / "ext.csv"
    ext.write_text("mass,g\n0.2,1e-3\n1.0,2e-3\n")
    res = runner.invoke(cli, ["plot", str(out / "scan_result.json"), "--out", str(tmp_path / "plots"), "--external", str(ext),
                              "--fit-masses", "0.7"])
    assert res.exit_code == 0, res.output
    assert {p.name for p in (tmp_path / "plots").iterdir()} >= {"brazil_nsig.png", "brazil_xsec.png", "coupling_exclusion.png",
                                                                 "local_p0.png", "fit_0.7000GeV.png"}
    assert all(p.stat().st_size > 10_000 for p in (tmp_path / "plots").iterdir())
    bad = runner.invoke(cli, ["scan", str(tmp_path / "scan.yaml"), "--input", str(tmp_path / "nope.npz")])
    assert bad.exit_code != 0 and "nope.npz: input file not found" in bad.output and "Traceback" not in bad.output

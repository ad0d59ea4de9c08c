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

REPO = Path(__file__).resolve().parents[2]
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


def test_order_fallback_refits_only_failed_hypotheses_at_lower_orders() -> None:
    from scans.worker import with_order_fallback

    need = np.array([3, 1, 0, 2, 9])  # highest background order at which each hypothesis converges (9: never)
    calls = []

    def evaluate(idx, order):
        calls.append((list(idx), order))
        ok = need[idx] >= order
        ok[need[idx] == 9] = False
        return {"converged": ok.tolist(), "nsig": [float(10 * i + order) for i in idx], "reason": ["" if o else "failed" for o in ok]}

    res = with_order_fallback(evaluate, 5, order=3, fallback=True)
    assert calls == [([0, 1, 2, 3, 4], 3), ([1, 2, 3, 4], 2), ([1, 2, 4], 1), ([2, 4], 0)]
    assert res["bkg_order"] == [3, 1, 0, 2, 3]
    assert res["converged"] == [True, True, True, True, False]
    assert res["nsig"] == [3.0, 11.0, 20.0, 32.0, 43.0]  # the never-converging one keeps its first result
    assert with_order_fallback(evaluate, 5, order=3, fallback=False)["bkg_order"] == [3] * 5


@pytest.mark.slow
def test_failed_sparse_window_fits_are_refitted_with_lower_background_orders() -> None:
    # a dense spectrum that stops at 1.5 GeV, with 25 scattered candidates above: the cubic
    # background of windows reaching into the sparse part has no interior minimum there
    rng = np.random.default_rng(3)
    x = np.r_[toy_spectrum(5000, lo=0.1, hi=1.5, slope=0.5, seed=2), rng.uniform(1.5, 3.0, 25)]
    model = analytic_signal_model()
    cfg = {"mass": {"min": 1.6, "max": 2.2, "step": 0.1}, "lee": {"toys": 0}, "execution": {"workers": 1}}
    plain = scan(x, model, config={**cfg, "bkg_order_fallback": False}, workers=1)
    failed = [p for p in plain["points"] if not p["converged"]]
    assert failed and all(p["reason"] for p in failed)
    res = scan(x, model, config=cfg, workers=1)
    pts = res["points"]
    assert all(p["converged"] for p in pts)
    lowered = [p for p in pts if p["bkg_order"] < 3]
    assert {p["mass"] for p in lowered} >= {p["mass"] for p in failed}
    # points that converged at order 3 are untouched, lowered ones equal a direct fit at their order
    for p, q in zip(pts, plain["points"]):
        if q["converged"]:
            assert p["bkg_order"] == 3 and p["nsig"] == q["nsig"] and p["ul_nsig_obs"] == q["ul_nsig_obs"]
    p = lowered[0]
    t = fits.evaluate_hypotheses(np.sort(x), [model.shape(p["mass"])], [p["window"]], bkg_order=p["bkg_order"],
                                 signal_scale=None, limits=True, expected=True)
    assert t.converged[0]
    assert p["nsig"] == pytest.approx(float(t.nsig[0]), rel=1e-9, abs=1e-9)
    assert p["ul_nsig_obs"] == pytest.approx(float(t.ul_nsig_obs[0]), rel=1e-6)

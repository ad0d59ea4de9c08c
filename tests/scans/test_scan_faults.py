"""Faults a shared cluster throws at a scan: killed parents, edited or stale checkpoints, reruns, permissions, strict mode."""

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

from scans import CheckpointError, scan
from scans.testing import analytic_signal_model, toy_spectrum

REPO = Path(__file__).resolve().parents[2]
SMALL = {"mass": {"min": 0.3, "max": 1.5}, "block_size": 2, "lee": {"toys": 0}, "execution": {"workers": 1}}
MODEL = analytic_signal_model()

POOL_SCRIPT = textwrap.dedent(
    """
    import json, sys
    from scans import scan
    from scans.testing import analytic_signal_model, toy_spectrum

    if __name__ == "__main__":
        x = toy_spectrum(200000, lo=0.1, hi=3.0, slope=0.5, seed=21)
        cfg = {"mass": {"min": 0.3, "max": 2.5, "step": 0.002}, "block_size": 8, "lee": {"toys": 0}}
        scan(x, analytic_signal_model(), config=cfg, out_dir=sys.argv[1], workers=2)
    """
)


def _x() -> np.ndarray:
    return toy_spectrum(8000, lo=0.1, hi=3.0, slope=0.5, seed=21)


@pytest.mark.parametrize("after_blocks", [1, 6])
def test_kill_9_of_a_pool_scan_leaves_no_worker_alive_and_resumes_identically(tmp_path, after_blocks: int) -> None:
    psutil = pytest.importorskip("psutil")
    script = tmp_path / "run_scan.py"
    script.write_text(POOL_SCRIPT)
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, str(script), str(out)], env={**os.environ, "PYTHONPATH": str(REPO)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    parent = psutil.Process(proc.pid)
    deadline = time.monotonic() + 300
    children: list = []
    try:
        while len(list((out / "checkpoint").glob("block_*.json"))) < after_blocks:
            if proc.poll() is not None:
                pytest.fail(f"scan ended before block {after_blocks}: {proc.stderr.read().decode()[-2000:]}")
            if time.monotonic() > deadline:
                pytest.fail("not enough checkpoint blocks appeared")
            time.sleep(0.05)
        children = parent.children(recursive=True)
        assert len(children) >= 2  # the two workers (and the resource tracker)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    gone, alive = psutil.wait_procs(children, timeout=20)
    assert not alive, f"processes of the killed scan still running: {[(p.pid, p.cmdline()[:3]) for p in alive]}"
    # resuming gives the result of an uninterrupted run
    x = toy_spectrum(200000, lo=0.1, hi=3.0, slope=0.5, seed=21)
    cfg = {"mass": {"min": 0.3, "max": 2.5, "step": 0.002}, "block_size": 8, "lee": {"toys": 0}}
    resumed = scan(x, analytic_signal_model(), config=cfg, out_dir=out, resume=True, workers=2)
    fresh = scan(x, analytic_signal_model(), config=cfg, out_dir=tmp_path / "fresh", workers=2)
    assert resumed["points"] == fresh["points"] and not list(out.rglob("*.tmp"))


def test_edited_checkpoint_block_is_refused_with_its_name(tmp_path) -> None:
    out = tmp_path / "s"
    first = scan(_x(), MODEL, config=SMALL, out_dir=out)
    block = sorted((out / "checkpoint").glob("block_*.json"))[1]
    content = json.loads(block.read_text())
    content["result"]["ul_nsig_obs"][0] *= 0.5  # a "better" limit
    block.write_text(json.dumps(content))
    with pytest.raises(CheckpointError, match=f"{block.name}: checksum mismatch"):
        scan(_x(), MODEL, config=SMALL, out_dir=out, resume=True)
    block.unlink()
    again = scan(_x(), MODEL, config=SMALL, out_dir=out, resume=True)
    assert again["points"] == first["points"]


def test_stale_temporary_files_do_not_survive_a_resume_and_outputs_follow_the_umask(tmp_path) -> None:
    out = tmp_path / "s"
    scan(_x(), MODEL, config=SMALL, out_dir=out)
    stale = out / "checkpoint" / ".block_000003.json.abcd.tmp"
    stale.write_text("{half a block")
    old = os.umask(0o022)
    try:
        scan(_x(), MODEL, config=SMALL, out_dir=out, resume=True)
    finally:
        os.umask(old)
    assert not list(out.rglob("*.tmp"))
    for name in ("scan_result.json", "scan_points.csv", "checkpoint/manifest.json", "checkpoint/block_000000.json"):
        assert (out / name).stat().st_mode & 0o777 == 0o644, name


def test_rerun_without_resume_into_finished_blocks_stops_unless_overwrite(tmp_path) -> None:
    out = tmp_path / "s"
    first = scan(_x(), MODEL, config=SMALL, out_dir=out)
    n = len(list((out / "checkpoint").glob("block_*.json")))
    with pytest.raises(CheckpointError, match=f"holds {n} finished job\\(s\\) of an earlier scan; continue it with --resume"):
        scan(_x(), MODEL, config=SMALL, out_dir=out)
    assert len(list((out / "checkpoint").glob("block_*.json"))) == n  # nothing was lost
    again = scan(_x(), MODEL, config=SMALL, out_dir=out, overwrite=True)
    assert again["points"] == first["points"]


def test_cli_strict_half_outside_data_and_plot_failure_keeps_the_result(tmp_path) -> None:
    from click.testing import CliRunner

    from bumphunt.cli import cli

    np.save(tmp_path / "c.npy", toy_spectrum(6000, lo=0.1, hi=1.0, slope=0.5, seed=3))
    (tmp_path / "s.yaml").write_text("inputs: {files: [c.npy]}\nmass: {min: 0.5, max: 1.5, step: 0.1}\nvetoes: {particles: []}\nlee: {toys: 0}\n")
    runner = CliRunner()
    res = runner.invoke(cli, ["scan", str(tmp_path / "s.yaml"), "--out", str(tmp_path / "o"), "--workers", "1", "--no-plots", "--strict"])
    assert res.exit_code == 3
    result = json.loads((tmp_path / "o" / "scan_result.json").read_text())
    outside = [p for p in result["points"] if "outside the data range" in p.get("reason", "")]
    assert outside and all("window" not in p for p in outside)
    failed = [p for p in result["points"] if not p["vetoed"] and not p["converged"]]
    assert f"not fitted: {len(failed)} of {len(result['points'])} points (" in res.output
    assert f"{len(outside)} x outside the data range [#, #] GeV" in res.output
    (tmp_path / "o2").mkdir()
    (tmp_path / "o2" / "plots").write_text("a file where the plots folder should go")
    res = runner.invoke(cli, ["scan", str(tmp_path / "s.yaml"), "--out", str(tmp_path / "o2"), "--workers", "1"])
    assert res.exit_code == 1 and "the scan result is written" in res.output and "plots failed" in res.output
    assert "Traceback" not in res.output and (tmp_path / "o2" / "scan_result.json").is_file()


def test_a_full_disk_when_writing_the_result_leaves_no_partial_file_and_the_scan_resumes(tmp_path, monkeypatch) -> None:
    import errno

    import scans.checkpoint as ckpt

    out = tmp_path / "s"
    real = os.replace

    def full_disk(src, dst):  # the result is the file that does not fit
        if str(dst).endswith("scan_result.json"):
            raise OSError(errno.ENOSPC, "No space left on device", str(dst))
        return real(src, dst)

    monkeypatch.setattr(ckpt.os, "replace", full_disk)
    with pytest.raises(OSError, match="No space left"):
        scan(_x(), MODEL, config=SMALL, out_dir=out)
    assert not (out / "scan_result.json").exists() and not list(out.rglob("*.tmp"))
    assert list((out / "checkpoint").glob("block_*.json"))  # the finished work is kept
    monkeypatch.setattr(ckpt.os, "replace", real)
    resumed = scan(_x(), MODEL, config=SMALL, out_dir=out, resume=True)
    fresh = scan(_x(), MODEL, config=SMALL, out_dir=tmp_path / "fresh")
    assert resumed["points"] == fresh["points"] and json.loads((out / "scan_result.json").read_text())["points"] == fresh["points"]


def test_a_dask_worker_killed_mid_scan_does_not_change_the_result(tmp_path) -> None:
    distributed = pytest.importorskip("distributed")
    import threading

    x = toy_spectrum(20000, lo=0.1, hi=3.0, slope=0.5, seed=21)
    cfg = {"mass": {"min": 0.3, "max": 2.5, "step": 0.01}, "block_size": 4, "lee": {"toys": 0}}
    reference = scan(x, MODEL, config={**cfg, "execution": {"workers": 1}})
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
    client = distributed.Client(cluster)
    killed: list[int] = []
    try:
        pids = list(client.run(os.getpid).values())

        def kill_one() -> None:
            deadline = time.monotonic() + 300
            while not list((tmp_path / "d" / "checkpoint").glob("block_*.json")) and time.monotonic() < deadline:
                time.sleep(0.05)
            os.kill(pids[0], signal.SIGKILL)  # the nanny starts a new worker; its tasks are run again
            killed.append(pids[0])

        thread = threading.Thread(target=kill_one)
        thread.start()
        result = scan(x, MODEL, config=cfg, out_dir=tmp_path / "d", dask=client)
        thread.join()
    finally:
        client.close()
        cluster.close()
    assert killed and result["points"] == reference["points"]

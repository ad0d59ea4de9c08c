"""benchmarks/run_all.py on a fake benchmarks folder: JSON collected, --quick passed where accepted, failures recorded, table written."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

RUN_ALL = Path(__file__).resolve().parents[2] / "benchmarks" / "run_all.py"

GOOD = '''"""Tiny benchmark."""
import argparse, json
ap = argparse.ArgumentParser()
ap.add_argument("--quick", action="store_true")
args = ap.parse_args()
print("warming up")
print(json.dumps({"rate_per_s": 1.5e6, "quick": args.quick, "nested": {"n": 3}, "per_mass": [1.0, 2.0]}, indent=1))
'''
NO_QUICK = '''import json, sys
assert len(sys.argv) == 1, sys.argv  # takes no options
print(json.dumps({"value": 7}))
'''
BROKEN = '''raise RuntimeError("benchmark exploded")
'''


def test_run_all_collects_json_and_records_failures(tmp_path) -> None:
    bench = tmp_path / "bench"
    bench.mkdir()
    (bench / "alpha.py").write_text(GOOD)
    (bench / "beta.py").write_text(NO_QUICK)
    (bench / "gamma.py").write_text(BROKEN)
    (bench / "_helper.py").write_text("raise SystemExit('not a benchmark')\n")
    out = tmp_path / "results"
    res = subprocess.run([sys.executable, str(RUN_ALL), "--quick", "--benchmarks-dir", str(bench), "--out", str(out)],
                         capture_output=True, text=True, timeout=300, check=False)
    assert res.returncode == 0, res.stderr  # a failing benchmark is recorded, not fatal
    (js,) = out.glob("*.json")
    (md,) = out.glob("*.md")
    assert js.stem == md.stem
    report = json.loads(js.read_text())
    by_name = {b["name"]: b for b in report["benchmarks"]}
    assert list(by_name) == ["alpha", "beta", "gamma"]
    assert by_name["alpha"]["status"] == "ok" and by_name["alpha"]["quick"] is True
    assert by_name["alpha"]["result"] == {"rate_per_s": 1.5e6, "quick": True, "nested": {"n": 3}, "per_mass": [1.0, 2.0]}
    assert by_name["beta"]["status"] == "ok" and by_name["beta"]["quick"] is False and by_name["beta"]["result"] == {"value": 7}
    assert by_name["gamma"]["status"] == "failed" and by_name["gamma"]["returncode"] != 0
    assert "benchmark exploded" in by_name["gamma"]["error"]
    for b in by_name.values():
        assert b["wall_seconds"] >= 0 and "load_before" in b and "load_after" in b
    m = report["machine"]
    assert m["cores"] >= 1 and m["cpu_model"] and m["python"] == sys.version.split()[0]
    assert report["packages"]["numpy"] and "commit" in report["git"] and report["quick"] is True
    text = md.read_text()
    assert "| benchmark | status | wall / s | CPU / s | quick | load before | load after |" in text
    assert "| alpha | ok |" in text and "| beta | ok |" in text and "| gamma | failed |" in text
    assert "| rate_per_s | 1.5e+06 |" in text and "| nested.n | 3 |" in text
    assert "benchmark exploded" in text and m["cpu_model"] in text
    # a second run the same day does not overwrite the first
    res = subprocess.run([sys.executable, str(RUN_ALL), "--benchmarks-dir", str(bench), "--out", str(out), "--only", "beta", "--strict"],
                         capture_output=True, text=True, timeout=300, check=False)
    assert res.returncode == 0, res.stderr
    assert len(list(out.glob("*.json"))) == 2
    bad = subprocess.run([sys.executable, str(RUN_ALL), "--benchmarks-dir", str(bench), "--out", str(out), "--only", "gamma", "--strict"],
                         capture_output=True, text=True, timeout=300, check=False)
    assert bad.returncode == 1

"""Run every benchmark under benchmarks/ and write one JSON and one Markdown table, to track performance over time.

Each benchmark script prints one JSON object; this runs them one after the
other in subprocesses (``--quick`` is passed to those that accept it),
collects their JSON, and writes ``<date>.json`` and ``<date>.md`` (a
second run on the same day adds the time) into ``benchmarks/results/`` or
``--out DIR``, with the machine (CPU model, cores, memory), Python and key
package versions, the git commit, and the load average before and after
every benchmark (the cores may be shared: wall times depend on the load,
CPU times less so). A benchmark that fails or prints no JSON is recorded with
its exit status and the end of its error output; the others still run, and
the exit status of this script is 0 unless ``--strict`` is given.

Usage: python benchmarks/run_all.py [--quick] [--out DIR] [--benchmarks-dir DIR] [--only A,B] [--timeout S] [--strict]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from bumphunt.validation.provenance import git_info, load_average, machine_info, package_versions, utc_now  # noqa: E402

#: characters of a failed benchmark's error output kept in the record
ERROR_TAIL = 2000
#: scalar metrics listed per benchmark in the Markdown file
MAX_METRICS = 60


def discover(directory: Path) -> list[Path]:
    """The benchmark scripts of ``directory``: every ``*.py`` except this runner and private (``_``) files, sorted by name."""
    return sorted(p for p in directory.glob("*.py") if p.name != Path(__file__).name and not p.name.startswith("_"))


def accepts_quick(script: Path) -> bool:
    """Whether the script declares a ``--quick`` option (read from its source, without running it)."""
    try:
        return '"--quick"' in script.read_text() or "'--quick'" in script.read_text()
    except OSError:
        return False


def parse_output(stdout: str) -> Any:
    """The JSON a benchmark printed: the whole output, else the last top-level JSON object in it."""
    text = stdout.strip()
    try:
        return json.loads(text)
    except ValueError:
        pass
    lines = text.splitlines()
    for i in range(len(lines) - 1, -1, -1):
        if lines[i].startswith("{"):
            try:
                return json.loads("\n".join(lines[i:]))
            except ValueError:
                continue
    raise ValueError("no JSON object in the output")


def _children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def run_one(script: Path, *, quick: bool, timeout: float | None) -> dict[str, Any]:
    """Run one benchmark script; its record (command, status, times, load, result or error)."""
    cmd = [sys.executable, str(script)]
    if quick and accepts_quick(script):
        cmd.append("--quick")
    try:
        shown = str(script.resolve().relative_to(ROOT))
    except ValueError:
        shown = str(script)
    record: dict[str, Any] = {"name": script.stem, "script": script.name, "command": " ".join(["python", shown, *cmd[2:]]),
                              "quick": "--quick" in cmd, "load_before": load_average()}
    env = {**os.environ, "MPLBACKEND": "Agg", "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "3")}
    t0, c0 = time.perf_counter(), _children_cpu()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=env, check=False)
    except subprocess.TimeoutExpired as exc:
        err = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else (exc.stderr or "")
        record.update(status="timeout", returncode=None, error=f"timed out after {timeout} s\n{err[-ERROR_TAIL:]}")
        proc = None
    record["wall_seconds"] = round(time.perf_counter() - t0, 3)
    record["cpu_seconds"] = round(_children_cpu() - c0, 3)
    record["load_after"] = load_average()
    if proc is None:
        return record
    record["returncode"] = proc.returncode
    if proc.returncode != 0:
        record.update(status="failed", error=(proc.stderr or proc.stdout)[-ERROR_TAIL:])
        return record
    try:
        record.update(status="ok", result=parse_output(proc.stdout))
    except ValueError as exc:
        record.update(status="failed", error=f"{exc}; output ends with: {proc.stdout[-ERROR_TAIL:]}")
    return record


def flatten(obj: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """Scalar leaves of a JSON value as (dotted key, value) pairs; lists of scalars stay whole."""
    if isinstance(obj, dict):
        out: list[tuple[str, Any]] = []
        for k, v in obj.items():
            out.extend(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    if isinstance(obj, list) and obj and all(isinstance(v, dict) for v in obj):
        out = []
        for i, v in enumerate(obj):
            out.extend(flatten(v, f"{prefix}[{i}]"))
        return out
    return [(prefix or "value", obj)]


def _fmt(v: Any) -> str:
    if isinstance(v, bool) or v is None:
        return str(v)
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.4g}"
    if isinstance(v, list):
        text = ", ".join(_fmt(x) for x in v[:8]) + (", ..." if len(v) > 8 else "")
        return f"[{text}]"
    return str(v)


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def markdown(report: dict[str, Any]) -> str:
    """The Markdown form: machine, then one table of all benchmarks, then each benchmark's metrics."""
    m = report["machine"]
    git = report["git"]
    pk = ", ".join(f"{k} {v}" for k, v in report["packages"].items() if v)
    lines = [f"# Benchmarks {report['time_utc']}", "",
             f"- machine: {m['cpu_model']}, {m['cores']} cores ({m['cores_usable']} usable), {m['memory_gib']} GiB, {m['platform']}",
             f"- Python {m['python']}; {pk}",
             f"- commit {git.get('commit')}{' (with uncommitted changes)' if git.get('dirty') else ''}; mode {'quick' if report['quick'] else 'full'}",
             f"- load average before {report['load_before']}, after {report['load_after']}; total {report['wall_seconds']:.0f} s", "",
             "| benchmark | status | wall / s | CPU / s | quick | load before | load after |", "|---|---|---|---|---|---|---|"]
    for b in report["benchmarks"]:
        lines.append(f"| {b['name']} | {b['status']} | {b['wall_seconds']:.1f} | {b['cpu_seconds']:.1f} | {'yes' if b['quick'] else 'no'} | "
                     f"{_cell(b['load_before'])} | {_cell(b['load_after'])} |")
    for b in report["benchmarks"]:
        lines += ["", f"## {b['name']}", "", f"`{b['command']}`", ""]
        if b["status"] != "ok":
            lines += [f"**{b['status']}** (exit status {b.get('returncode')}):", "", "```", b.get("error", "").strip()[-ERROR_TAIL:], "```"]
            continue
        items = flatten(b["result"])
        lines += ["| metric | value |", "|---|---|"]
        lines += [f"| {_cell(k)} | {_cell(_fmt(v))} |" for k, v in items[:MAX_METRICS]]
        if len(items) > MAX_METRICS:
            lines.append(f"| ... | {len(items) - MAX_METRICS} more in the JSON file |")
    return "\n".join(lines) + "\n"


def output_paths(out_dir: Path) -> tuple[Path, Path]:
    """``<date>.json`` and ``<date>.md`` in ``out_dir`` (``<date>-<time>`` when a run of the same day exists)."""
    now = datetime.now()

    def taken(stem: str) -> bool:
        return (out_dir / f"{stem}.json").exists() or (out_dir / f"{stem}.md").exists()

    stem = now.strftime("%Y-%m-%d")
    if taken(stem):
        stem = now.strftime("%Y-%m-%d-%H%M%S")
    n = 1
    while taken(stem if n == 1 else f"{stem}-{n}"):
        n += 1
    stem = stem if n == 1 else f"{stem}-{n}"
    return out_dir / f"{stem}.json", out_dir / f"{stem}.md"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="pass --quick to the benchmarks that accept it")
    ap.add_argument("--out", type=Path, default=HERE / "results", help="folder of the JSON and Markdown files [benchmarks/results]")
    ap.add_argument("--benchmarks-dir", type=Path, default=HERE, help="folder of the benchmark scripts [benchmarks/]")
    ap.add_argument("--only", default="", help="comma-separated benchmark names (file stems) to run")
    ap.add_argument("--timeout", type=float, default=None, help="seconds per benchmark before it is stopped and recorded as timed out")
    ap.add_argument("--strict", action="store_true", help="exit status 1 when a benchmark fails")
    args = ap.parse_args(argv)
    scripts = discover(args.benchmarks_dir)
    if args.only:
        wanted = {n.strip() for n in args.only.split(",") if n.strip()}
        unknown = wanted - {s.stem for s in scripts}
        if unknown:
            ap.error(f"unknown benchmark(s) {sorted(unknown)}; found {[s.stem for s in scripts]}")
        scripts = [s for s in scripts if s.stem in wanted]
    if not scripts:
        ap.error(f"no benchmark scripts in {args.benchmarks_dir}")
    report: dict[str, Any] = {"time_utc": utc_now(), "quick": args.quick, "machine": machine_info(), "packages": package_versions(),
                              "git": git_info(ROOT), "load_before": load_average()}
    t0 = time.perf_counter()
    records = []
    for script in scripts:
        print(f"running {script.name}{' --quick' if args.quick and accepts_quick(script) else ''} ...", file=sys.stderr, flush=True)
        rec = run_one(script, quick=args.quick, timeout=args.timeout)
        print(f"  {rec['status']} in {rec['wall_seconds']:.1f} s", file=sys.stderr, flush=True)
        records.append(rec)
    report.update(benchmarks=records, load_after=load_average(), wall_seconds=round(time.perf_counter() - t0, 3))
    args.out.mkdir(parents=True, exist_ok=True)
    js, md = output_paths(args.out)
    js.write_text(json.dumps(report, indent=1) + "\n")
    md.write_text(markdown(report))
    failed = [r["name"] for r in records if r["status"] != "ok"]
    print(f"{len(records) - len(failed)} of {len(records)} benchmarks ok{'; failed: ' + ', '.join(failed) if failed else ''}; wrote {js} and {md}",
          file=sys.stderr)
    return 1 if (failed and args.strict) else 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark: toy-MC generation rate and read + pre-selection rate.

Generates one large e+e- -> ggg sample with ``bumphunt.toymc.generate``
(1e6 events by default), then reads it with ``bumphunt.events.iterate_events``
(only the branches the pre-selection needs, in chunks, as ``bumphunt
preselect`` does; the next chunk is read in the background while the current
one is pre-selected) and pre-selects it with ``bumphunt.events.preselection``.

Prints one JSON object with, for generation and for read + pre-selection:
events per wall-clock second, events per CPU-second (CPU time of this
process, all threads), the cores used on average (CPU time / wall time), the
machine's core count and its load average before and after (other processes
share the cores: on a loaded machine the wall rate understates what the code
does, the CPU rate does not). Read + pre-selection is repeated (``--repeat``)
and the best and median passes are given, with a split into read only and
pre-selection only. For comparison, the same branches are also read with
uproot's own ``TTree.arrays`` (awkward arrays), the previous reader.
The file's compression (per branch) and size are given as well.
The target of the issue is read + pre-selection >= 1e6 events/s.

Usage: python benchmarks/toymc.py [--quick] [--events N] [--step N] [--repeat N]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path

TARGET_READ_PRESELECT = 1.0e6  # events/s


def _clock() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def _rates(n: int, wall: float, cpu: float) -> dict[str, float]:
    return {
        "wall_s": round(wall, 3),
        "cpu_s": round(cpu, 3),
        "events_per_s": round(n / wall, 1),
        "events_per_cpu_s": round(n / cpu, 1),
        "cores_used": round(cpu / wall, 2),
    }


def _read_preselect(path: Path, step: int) -> dict[str, float]:
    """One pass of read + pre-selection over the file (the way ``bumphunt preselect`` does it)."""
    from bumphunt.events import NEEDED_FIELDS, iterate_events, preselect

    n = n_sel = 0
    w0, c0 = _clock()
    for chunk in iterate_events(path, fields=NEEDED_FIELDS, step_size=step):
        out, _ = preselect(chunk)
        n += chunk.n_events
        n_sel += len(out["event"])
    w1, c1 = _clock()
    return {"events": n, "selected": n_sel, **_rates(n, w1 - w0, c1 - c0)}


def _split(path: Path, step: int) -> dict[str, dict[str, float]]:
    """Read only, then pre-selection only (on the chunks held in memory)."""
    from bumphunt.events import NEEDED_FIELDS, iterate_events, preselect

    w0, c0 = _clock()
    chunks = list(iterate_events(path, fields=NEEDED_FIELDS, step_size=step))
    w1, c1 = _clock()
    for chunk in chunks:
        preselect(chunk)
    w2, c2 = _clock()
    n = sum(c.n_events for c in chunks)
    return {"read_only": _rates(n, w1 - w0, c1 - c0), "preselect_only": _rates(n, w2 - w1, c2 - c1)}


def _uproot_arrays(path: Path) -> dict[str, float]:
    """The same branches read with uproot's ``TTree.arrays`` into awkward arrays (no checks, no pre-selection)."""
    import uproot

    from bumphunt.events import NEEDED_FIELDS

    with uproot.open(path) as f:
        tree = f["events"]
        names = [b for b in NEEDED_FIELDS if b in tree.keys()]
        w0, c0 = _clock()
        tree.arrays(names, library="ak", how=dict)
        w1, c1 = _clock()
        return _rates(int(tree.num_entries), w1 - w0, c1 - c0)


def _compression(path: Path) -> dict[str, object]:
    import uproot

    with uproot.open(path) as f:
        tree = f["events"]
        kinds: Counter[str] = Counter()
        for b in tree.branches:
            compressed = int(b.compressed_bytes) < int(b.uncompressed_bytes)
            kinds[str(b.compression or f.file.compression) if compressed else "uncompressed"] += 1
        return {
            "file_mb": round(path.stat().st_size / 1e6, 1),
            "uncompressed_mb": round(sum(int(b.uncompressed_bytes) for b in tree.branches) / 1e6, 1),
            "file_setting": str(f.file.compression),
            "branches_by_storage": dict(kinds),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="200k events instead of 1M, 2 repeats")
    parser.add_argument("--events", type=int, default=None, help="events to generate (default 1e6, 2e5 with --quick)")
    parser.add_argument("--step", type=int, default=250_000, help="events per read chunk (default 250000)")
    parser.add_argument("--repeat", type=int, default=None, help="passes of read + pre-selection (default 5, 2 with --quick)")
    args = parser.parse_args()
    n = args.events or (200_000 if args.quick else 1_000_000)
    repeat = args.repeat or (2 if args.quick else 5)

    from bumphunt import toymc

    result: dict = {
        "benchmark": "toymc",
        "events_generated": n,
        "cpu_count": os.cpu_count(),
        "load_average_start": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "step": args.step,
    }
    with tempfile.TemporaryDirectory() as tmp:
        w0, c0 = _clock()
        files = toymc.generate(Path(tmp) / "gen", lumi_fb=1.0, seed=7, samples=["ggg"], data=False,
                               config={"backgrounds": {"ggg": n}})
        w1, c1 = _clock()
        path = Path(files["ggg"])
        result["generate"] = _rates(n, w1 - w0, c1 - c0)
        result["file"] = _compression(path)
        _read_preselect(path, args.step)  # warm the page cache and the imports
        passes = [_read_preselect(path, args.step) for _ in range(repeat)]
        by_wall = sorted(passes, key=lambda p: p["events_per_s"])
        result["read_preselect"] = {
            "best": by_wall[-1],
            "median_events_per_s": round(statistics.median(p["events_per_s"] for p in passes), 1),
            "median_events_per_cpu_s": round(statistics.median(p["events_per_cpu_s"] for p in passes), 1),
            "passes": repeat,
        }
        result["split"] = _split(path, args.step)
        result["uproot_tree_arrays_reference"] = _uproot_arrays(path)
    result["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    best = result["read_preselect"]["best"]
    cores = result["cpu_count"] or 1
    result["target_read_plus_preselect_events_per_s"] = TARGET_READ_PRESELECT
    result["meets_target_wall"] = bool(best["events_per_s"] >= TARGET_READ_PRESELECT)
    # what the cores would give if this process had them to itself (CPU rate x cores it can use in parallel)
    result["meets_target_cpu_single_core"] = bool(result["read_preselect"]["median_events_per_cpu_s"] >= TARGET_READ_PRESELECT)
    result["note"] = (f"machine load average {result['load_average_start'][0]} on {cores} cores at the start: "
                      "wall rates are shared with other processes; events_per_cpu_s is the rate per fully used core")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

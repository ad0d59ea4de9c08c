"""Benchmark: toy-MC generation rate and read + pre-selection rate.

Generates one large e+e- -> ggg sample with ``bumphunt.toymc.generate``
(>= 1e6 events by default), then reads it with ``bumphunt.io`` (only the
branches the pre-selection needs, in chunks, as ``bumphunt preselect`` does)
and pre-selects it. Prints one JSON object with events/s for each step and
the comparison with the target of 1e6 events/s for read + pre-selection.
Wall-clock rates depend on how busy the machine is (the load average is
printed); CPU seconds of this process (all threads) are given as well.
The same events are also rewritten with ``bumphunt.io.default_compression``
(LZ4) and read again, to show the effect of the file's compression.

Usage: python benchmarks/toymc.py [--quick] [--events N]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

TARGET_READ_PRESELECT = 1.0e6  # events/s


def _read_preselect(path: Path, step: int) -> dict[str, float]:
    from bumphunt.io import iterate_events
    from bumphunt.preselection import NEEDED_FIELDS, preselect

    t_read = t_sel = c_read = c_sel = 0.0
    n = n_sel = 0
    t0, c0 = time.perf_counter(), time.process_time()
    it = iterate_events(path, fields=NEEDED_FIELDS, step_size=step)
    while True:
        try:
            chunk = next(it)
        except StopIteration:
            break
        t1, c1 = time.perf_counter(), time.process_time()
        t_read += t1 - t0
        c_read += c1 - c0
        out, _ = preselect(chunk)
        t0, c0 = time.perf_counter(), time.process_time()
        t_sel += t0 - t1
        c_sel += c0 - c1
        n += chunk.n_events
        n_sel += len(out["event"])
    return {
        "events": n,
        "selected": n_sel,
        "read_s": round(t_read, 3),
        "preselect_s": round(t_sel, 3),
        "read_events_per_s": round(n / t_read, 1),
        "preselect_events_per_s": round(n / t_sel, 1),
        "read_plus_preselect_events_per_s": round(n / (t_read + t_sel), 1),
        "read_cpu_s": round(c_read, 3),
        "preselect_cpu_s": round(c_sel, 3),
        "read_plus_preselect_events_per_cpu_s": round(n / (c_read + c_sel), 1),
        "file_mb": round(path.stat().st_size / 1e6, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100k events instead of 1M")
    parser.add_argument("--events", type=int, default=None, help="events to generate (default 1e6, 1e5 with --quick)")
    parser.add_argument("--step", type=int, default=1_000_000, help="events per read chunk")
    args = parser.parse_args()
    n = args.events or (100_000 if args.quick else 1_000_000)

    from bumphunt import toymc
    from bumphunt.io import read_events, write_events
    from bumphunt.preselection import NEEDED_FIELDS

    result: dict = {"benchmark": "toymc", "events_generated": n, "cpu_count": os.cpu_count(),
                    "load_average_1min_start": round(os.getloadavg()[0], 2), "python": platform.python_version()}
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        files = toymc.generate(Path(tmp) / "gen", lumi_fb=1.0, seed=7, samples=["ggg"], data=False,
                               config={"backgrounds": {"ggg": n}})
        t_gen = time.perf_counter() - t0
        path = Path(files["ggg"])
        result["generate"] = {"seconds": round(t_gen, 2), "events_per_s": round(n / t_gen, 1)}
        _read_preselect(path, args.step)  # warm the page cache and imports
        result["read_preselect"] = _read_preselect(path, args.step)
        if not args.quick:
            ev = read_events(path, fields=NEEDED_FIELDS)
            lz4_path = write_events(Path(tmp) / "ggg_lz4.root", ev)
            del ev
            _read_preselect(lz4_path, args.step)
            result["read_preselect_lz4"] = _read_preselect(lz4_path, args.step)
    result["load_average_1min_end"] = round(os.getloadavg()[0], 2)
    best = max(r["read_plus_preselect_events_per_s"] for k, r in result.items() if k.startswith("read_preselect"))
    result["target_read_plus_preselect_events_per_s"] = TARGET_READ_PRESELECT
    result["meets_target"] = bool(best >= TARGET_READ_PRESELECT)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

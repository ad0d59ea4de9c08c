"""Throughput of the vectorised 4C kinematic fit against the per-event reference.

Runs ``bumphunt.kinfit.fit`` on 10^6 exact toy events (e+e- -> ggg, flat
phase space, smeared with the ECL resolution; half of them with E-theta
correlations) and the same algorithm written per event
(``bumphunt.kinfit.fit_reference``) on a subset, checks that both give
identical results on that subset, and prints one JSON object.

Usage: python benchmarks/kinfit.py [--quick] [--n N] [--n-ref N] [--repeat K]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np

from bumphunt import kinfit
from bumphunt.kinematics import Beam
from bumphunt.kinfit_toys import three_photon_sample


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="10^5 events, 300 reference events")
    ap.add_argument("--n", type=int, default=None, help="events for the vectorised fit (default 10^6)")
    ap.add_argument("--n-ref", type=int, default=None, help="events for the per-event reference (default 2000)")
    ap.add_argument("--repeat", type=int, default=3, help="timing repetitions (best is reported)")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    n = args.n or (100_000 if args.quick else 1_000_000)
    n_ref = args.n_ref or (300 if args.quick else 2000)
    beam = Beam.belle2()
    rng = np.random.default_rng(args.seed)
    half = n // 2
    parts = [three_photon_sample(half, beam=beam, rng=rng), three_photon_sample(n - half, beam=beam, rng=rng, corr_e_theta=0.5)]
    ev = {k: np.concatenate([p[k] for p in parts]) for k in ("E", "theta", "phi", "cov")}
    perm = rng.permutation(n)
    ev = {k: v[perm] for k, v in ev.items()}

    # vectorised fit (wall clock and CPU time, best of --repeat)
    wall, cpu = [], []
    res = None
    for _ in range(args.repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        res = kinfit.fit(ev["E"], ev["theta"], ev["phi"], ev["cov"], beam)
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    assert res is not None

    # per-event reference on a subset
    sub = slice(0, n_ref)
    t0 = time.perf_counter()
    ref = kinfit.fit_reference(ev["E"][sub], ev["theta"][sub], ev["phi"][sub], ev["cov"][sub], beam)
    t_ref = time.perf_counter() - t0
    diffs = {name: float(np.nanmax(np.abs(getattr(res, name)[sub] - getattr(ref, name)))) for name in ("E", "theta", "phi", "chi2", "cov", "pulls")}
    identical = bool(np.array_equal(res.converged[sub], ref.converged) and np.array_equal(res.n_iter[sub], ref.n_iter)
                     and diffs["E"] < 1e-9 and diffs["theta"] < 1e-12 and diffs["phi"] < 1e-12 and diffs["chi2"] < 1e-8)

    rate = n / min(wall)
    rate_cpu = n / min(cpu)
    rate_ref = n_ref / t_ref
    out = {
        "benchmark": "kinfit",
        "n_events": n,
        "vectorised_events_per_s": round(rate),
        "vectorised_events_per_cpu_s": round(rate_cpu),
        "wall_times_s": [round(t, 3) for t in wall],
        "n_reference_events": n_ref,
        "reference_events_per_s": round(rate_ref, 1),
        "speedup_vs_reference": round(rate / rate_ref, 1),
        "identical_on_subset": identical,
        "max_abs_diff_on_subset": diffs,
        "converged_fraction": float(res.converged.mean()),
        "mean_n_iter": float(res.n_iter.mean()),
        "chi2_mean": float(res.chi2[res.converged].mean()),
        "targets": {"events_per_s": 1e6, "speedup": 1000},
        "meets_rate_target": bool(rate >= 1e6),
        "meets_speedup_target": bool(rate / rate_ref >= 1000),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "numpy": np.__version__,
                    "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None},
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()

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


def slsqp_fit(ev: dict, beam: Beam, n: int) -> tuple[np.ndarray, float]:
    """Independent per-event reference: scipy SLSQP on the same chi2 (whitened variables), first n events."""
    from scipy import optimize

    from bumphunt.kinematics import p4_from_spherical

    out = np.empty((n, 9))
    t0 = time.process_time()
    for i in range(n):  # reference: deliberately one event at a time
        a0 = np.stack([ev["E"][i], ev["theta"][i], ev["phi"][i]], 1).ravel()
        V0 = np.zeros((9, 9))
        for k in range(3):
            V0[3 * k:3 * k + 3, 3 * k:3 * k + 3] = ev["cov"][i, k]
        L = np.linalg.cholesky(V0)

        def cons(z: np.ndarray, a0: np.ndarray = a0, L: np.ndarray = L) -> np.ndarray:
            a = a0 + L @ z
            return p4_from_spherical(a[0::3], a[1::3], a[2::3]).sum(0) - beam.p4

        sol = optimize.minimize(lambda z: float(z @ z), np.zeros(9), jac=lambda z: 2 * z, method="SLSQP",
                                constraints=[{"type": "eq", "fun": cons}], options={"ftol": 1e-12, "maxiter": 1000})
        out[i] = a0 + L @ sol.x
    return out, time.process_time() - t0


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
    t0, c0 = time.perf_counter(), time.process_time()
    ref = kinfit.fit_reference(ev["E"][sub], ev["theta"][sub], ev["phi"][sub], ev["cov"][sub], beam)
    t_ref = time.perf_counter() - t0
    c_ref = time.process_time() - c0
    diffs = {name: float(np.nanmax(np.abs(getattr(res, name)[sub] - getattr(ref, name)))) for name in ("E", "theta", "phi", "chi2", "cov", "pulls")}
    identical = bool(np.array_equal(res.converged[sub], ref.converged) and np.array_equal(res.n_iter[sub], ref.n_iter)
                     and diffs["E"] < 1e-9 and diffs["theta"] < 1e-12 and diffs["phi"] < 1e-12 and diffs["chi2"] < 1e-8)

    n_sl = min(n_ref // 10, 200)
    a_sl, c_sl = slsqp_fit(ev, beam, n_sl)
    ours = np.stack([res.E[:n_sl], res.theta[:n_sl], res.phi[:n_sl]], 2).reshape(n_sl, 9)
    d_ang = np.angle(np.exp(1j * (ours - a_sl)))  # phi may differ by 2 pi
    rel_sl = float(np.max(np.abs(np.where(np.arange(9) % 3 == 2, d_ang, ours - a_sl)) / np.abs(a_sl)))
    rate_sl = n_sl / c_sl

    rate = n / min(wall)
    rate_cpu = n / min(cpu)
    rate_ref = n_ref / t_ref
    rate_ref_cpu = n_ref / c_ref
    out = {
        "benchmark": "kinfit",
        "n_events": n,
        "vectorised_events_per_s": round(rate),
        "vectorised_events_per_cpu_s": round(rate_cpu),
        "wall_times_s": [round(t, 3) for t in wall],
        "n_reference_events": n_ref,
        "reference_events_per_s": round(rate_ref, 1),
        "reference_events_per_cpu_s": round(rate_ref_cpu, 1),
        "speedup_vs_reference": round(rate / rate_ref, 1),
        "speedup_vs_reference_cpu_time": round(rate_cpu / rate_ref_cpu, 1),
        "identical_on_subset": identical,
        "n_scipy_slsqp_events": n_sl,
        "scipy_slsqp_events_per_cpu_s": round(rate_sl, 1),
        "speedup_vs_scipy_slsqp_cpu_time": round(rate_cpu / rate_sl, 1),
        "max_rel_diff_vs_scipy_slsqp": rel_sl,
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

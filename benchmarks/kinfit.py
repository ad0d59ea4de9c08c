"""Throughput of the 4C kinematic fit against the per-event reference.

Runs ``bumphunt.kinfit.fit`` on 10^6 exact toy events (e+e- -> ggg, flat
phase space, smeared with the ECL resolution; half of them with E-theta
correlations) with the compiled engine (numba, threaded over events) and with
the vectorised numpy engine, and the same algorithm written per event
(``bumphunt.kinfit.fit_reference``) on a subset; checks that all give
identical results and prints one JSON object with wall-clock and CPU-time
rates, the threads used and the load average (the machine may be shared:
other processes' load lowers the wall-clock rates).

The first call of the compiled engine (kernel compilation, or loading it
from numba's cache) is timed separately and excluded from the rates.

Usage: python benchmarks/kinfit.py [--quick] [--n N] [--n-ref N] [--repeat K] [--engine E]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import numpy as np

from bumphunt import kinfit
from bumphunt.kinematics import Beam
from bumphunt.toymc.exact import three_photon_sample


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
    ap.add_argument("--n", type=int, default=None, help="events for the fit (default 10^6)")
    ap.add_argument("--n-ref", type=int, default=None, help="events for the per-event reference (default 2000)")
    ap.add_argument("--repeat", type=int, default=3, help="timing repetitions (best is reported)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--engine", default="auto", choices=kinfit.ENGINES, help="engine timed against the reference")
    ap.add_argument("--skip-numpy", action="store_true", help="do not time the numpy engine for comparison")
    args = ap.parse_args()
    load_start = list(os.getloadavg())
    n = args.n or (100_000 if args.quick else 1_000_000)
    n_ref = args.n_ref or (300 if args.quick else 2000)
    beam = Beam.belle2()
    rng = np.random.default_rng(args.seed)
    half = n // 2
    parts = [three_photon_sample(half, beam=beam, rng=rng), three_photon_sample(n - half, beam=beam, rng=rng, corr_e_theta=0.5)]
    ev = {k: np.concatenate([p[k] for p in parts]) for k in ("E", "theta", "phi", "cov")}
    perm = rng.permutation(n)
    ev = {k: v[perm] for k, v in ev.items()}

    def timed(engine: str, repeat: int) -> tuple[kinfit.KinFitResult, list[float], list[float]]:
        wall, cpu = [], []
        res = None
        for _ in range(repeat):
            t0, c0 = time.perf_counter(), time.process_time()
            res = kinfit.fit(ev["E"], ev["theta"], ev["phi"], ev["cov"], beam, engine=engine)
            wall.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
        assert res is not None
        return res, wall, cpu

    # first call: compiles the kernel or loads it from the cache
    t0 = time.perf_counter()
    first = kinfit.fit(ev["E"][:1000], ev["theta"][:1000], ev["phi"][:1000], ev["cov"][:1000], beam, engine=args.engine)
    t_first = time.perf_counter() - t0
    engine = first.options["engine"]
    threads, layer = 1, None
    if engine == "numba":
        from bumphunt.kinfit import _engine_numba

        threads, layer = _engine_numba.n_threads(), _engine_numba.layer()

    # the fit (wall clock and CPU time of all threads, best of --repeat)
    res, wall, cpu = timed(args.engine, args.repeat)
    load_fit = list(os.getloadavg())

    # the numpy engine on the same events: same results, and its rate for comparison
    np_rate = np_rate_cpu = None
    engines_identical = None
    max_diff_numpy = None
    if engine != "numpy" and not args.skip_numpy:
        res_np, wall_np, cpu_np = timed("numpy", 1)
        np_rate, np_rate_cpu = n / min(wall_np), n / min(cpu_np)
        with np.errstate(invalid="ignore"):
            max_diff_numpy = {name: float(np.nanmax(np.abs(getattr(res, name) - getattr(res_np, name))))
                              for name in ("E", "theta", "phi", "chi2", "cov", "pulls")}
        engines_identical = bool(np.array_equal(res.status, res_np.status) and np.array_equal(res.n_iter, res_np.n_iter)
                                 and max(v for k, v in max_diff_numpy.items() if k != "pulls") < 1e-11)
        del res_np

    # per-event reference on a subset
    sub = slice(0, n_ref)
    t0, c0 = time.perf_counter(), time.process_time()
    ref = kinfit.fit_reference(ev["E"][sub], ev["theta"][sub], ev["phi"][sub], ev["cov"][sub], beam)
    t_ref = time.perf_counter() - t0
    c_ref = time.process_time() - c0
    diffs = {name: float(np.nanmax(np.abs(getattr(res, name)[sub] - getattr(ref, name)))) for name in ("E", "theta", "phi", "chi2", "cov", "pulls")}
    identical = bool(np.array_equal(res.status[sub], ref.status) and np.array_equal(res.n_iter[sub], ref.n_iter)
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
        "command": "python benchmarks/kinfit.py" + ("" if len(sys.argv) < 2 else " " + " ".join(sys.argv[1:])),
        "n_events": n,
        "engine": engine,
        "threads": threads,
        "threading_layer": layer,
        "first_call_s": round(t_first, 2),
        "events_per_s": round(rate),
        "events_per_cpu_s": round(rate_cpu),
        "wall_times_s": [round(t, 3) for t in wall],
        "cpu_times_s": [round(t, 3) for t in cpu],
        "numpy_engine_events_per_s": None if np_rate is None else round(np_rate),
        "numpy_engine_events_per_cpu_s": None if np_rate_cpu is None else round(np_rate_cpu),
        "identical_to_numpy_engine": engines_identical,
        "max_abs_diff_vs_numpy_engine": max_diff_numpy,
        "n_reference_events": n_ref,
        "reference_events_per_s": round(rate_ref, 1),
        "reference_events_per_cpu_s": round(rate_ref_cpu, 1),
        "speedup_vs_reference": round(rate / rate_ref, 1),
        "speedup_vs_reference_cpu_time": round(rate_cpu / rate_ref_cpu, 1),
        "identical_on_subset": identical,
        "max_abs_diff_on_subset": diffs,
        "n_scipy_slsqp_events": n_sl,
        "scipy_slsqp_events_per_cpu_s": round(rate_sl, 1),
        "speedup_vs_scipy_slsqp_cpu_time": round(rate_cpu / rate_sl, 1),
        "max_rel_diff_vs_scipy_slsqp": rel_sl,
        "converged_fraction": float(res.converged.mean()),
        "mean_n_iter": float(res.n_iter.mean()),
        "chi2_mean": float(res.chi2[res.converged].mean()),
        "targets": {"events_per_s": 1e6, "speedup": 1000},
        "meets_rate_target": bool(rate >= 1e6),
        "meets_speedup_target": bool(rate / rate_ref >= 1000),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "numpy": np.__version__,
                    "shared": "other users' jobs may run on the same cores; compare load_average with cpus",
                    "load_average_start": load_start, "load_average_after_fit": load_fit,
                    "load_average_end": list(os.getloadavg())},
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()

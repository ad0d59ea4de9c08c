"""Benchmark of toy CLs limits: the former ``toy_upper_limit`` against the batched toy engine.

1. One hypothesis with about 3000 events in its window (falling cubic
   background, DSCB + combinatorial signal at 3 GeV): the former
   implementation (``fits.toys.toy_upper_limit_grid``: independent toys at
   each value of a POI grid, 400 per value) against ``fits.toys.toy_upper_limit``
   (the batched engine, 400 toys): wall and CPU time, limits and the new
   path's Monte Carlo errors, the speed ratio.
2. A scan: 24000 candidates in [0.1, 10] GeV (half flat, half falling with
   slope 1.5 GeV; about 2500 events per window), 1000 mass hypotheses from
   0.2 to 9.6 GeV, sigma(m) = 0.002 + 0.01 m GeV, windows +-20 sigma, 1000
   toys each (``evaluate_hypotheses(limit_method="toys")``). ``--hypotheses``
   of them, spread evenly over the range, run in ``--workers`` processes (as
   a scan's workers: each takes a contiguous share); the time for all 1000 is
   extrapolated from the measured CPU time per hypothesis (and from the wall
   time), on the given number of workers.

Wall times depend on the load of the (shared) machine, which is reported;
CPU times less so. Prints one JSON document.

Usage: python benchmarks/toys.py [--quick] [--hypotheses N] [--toys N] [--workers N]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import fits  # noqa: E402
from fits.toys import generate_toys, toy_upper_limit, toy_upper_limit_grid  # noqa: E402
from signal_models import SignalShape  # noqa: E402

SHAPE = SignalShape(mu=3.0, sigma=0.03, alpha_l=1.2, n_l=3.0, alpha_r=1.6, n_r=5.0, comb_fraction=0.15, comb_slope=-0.2)


def one_window(n: float, seed: int) -> np.ndarray:
    """About ``n`` background events in the window of ``SHAPE`` (falling cubic)."""
    lo, hi = SHAPE.window()
    beta = np.array([n, -0.15 * n, 0.02 * n, 0.0]) / (hi - lo)
    return generate_toys(SHAPE, (lo, hi), nsig=0.0, beta=beta, n_toys=1, seed=seed)[0]


def spectrum(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    flat = rng.uniform(0.1, 10.0, n // 2)
    fall = 0.1 + rng.exponential(1.5, 3 * n)
    fall = fall[fall < 10.0][: n - n // 2]
    return np.concatenate([flat, fall])


def shapes_for(masses: np.ndarray) -> list[SignalShape]:
    return [SignalShape(mu=float(m), sigma=0.002 + 0.01 * float(m), alpha_l=1.2, n_l=3.5, alpha_r=1.6, n_r=8.0, comb_fraction=0.1, comb_slope=-0.2) for m in masses]


def timed(f, *args, **kwargs):
    w0, c0 = time.perf_counter(), time.process_time()
    out = f(*args, **kwargs)
    return out, time.perf_counter() - w0, time.process_time() - c0


def _worker(args: tuple) -> dict:
    """One worker's share of the scan: toy limits of its hypotheses; its own CPU time."""
    x, masses, n_toys, seed = args
    shapes = shapes_for(masses)
    windows = np.array([fits.default_window(s, (0.1, 10.0)) for s in shapes])
    fits.evaluate_hypotheses(x, shapes[:1], windows[:1], limit_method="toys", toys=20)  # warm-up: compiled kernels from the cache
    t, wall, cpu = timed(fits.evaluate_hypotheses, x, shapes, windows, limit_method="toys", toys=n_toys, toy_seed=seed)
    return {"wall_s": wall, "cpu_s": cpu, "mass": masses.tolist(), "n_events": t.n_events.tolist(), "converged": t.converged.tolist(),
            "ul_nsig_obs": t.ul_nsig_obs.tolist(), "ul_nsig_obs_err": t.ul_nsig_obs_err.tolist(), "ul_nsig_exp_err": t.ul_nsig_exp_err.tolist()}


def single(n_toys_old: int, n_toys_new: int) -> dict:
    x = one_window(3000, seed=5)
    w = SHAPE.window()
    n_win = int(np.sum((x >= w[0]) & (x <= w[1])))
    toy_upper_limit(x, SHAPE, w, n_toys=20, seed=0)  # warm-up (compiled kernels)
    old, w_old, c_old = timed(toy_upper_limit_grid, x, SHAPE, w, n_toys=n_toys_old, seed=1)
    new, w_new, c_new = timed(toy_upper_limit, x, SHAPE, w, n_toys=n_toys_new, seed=1)
    asym = fits.upper_limit(x, SHAPE, w)
    return {
        "events_in_window": n_win,
        "former_toy_upper_limit": {"toys_per_poi": n_toys_old, "wall_s": w_old, "cpu_s": c_old, "observed": old.observed, "expected": old.expected.tolist(),
                                   "converged": old.converged, "poi_values": len(old.details["poi"])},
        "batched_engine": {"toys": n_toys_new, "wall_s": w_new, "cpu_s": c_new, "observed": new.observed, "observed_err": new.details["observed_err"],
                           "expected": new.expected.tolist(), "expected_err": new.details["expected_err"].tolist(), "converged": new.converged,
                           "poi_values": len(new.details["poi"]), "toy_fits": new.details["n_fits"]},
        "asymptotic": {"observed": asym.observed, "expected": asym.expected.tolist()},
        "speed_ratio_wall": w_old / w_new,
        "speed_ratio_cpu": c_old / c_new,
    }


def scan(n_hyp: int, n_toys: int, workers: int, total: int) -> dict:
    x = spectrum(24_000, 1)
    all_masses = np.linspace(0.2, 9.6, total)
    pick = np.unique(np.linspace(0, total - 1, n_hyp).round().astype(int))
    masses = all_masses[pick]
    shares = np.array_split(masses, workers)
    w0 = time.perf_counter()
    with ProcessPoolExecutor(max_workers=workers) as pool:
        parts = list(pool.map(_worker, [(x, m, n_toys, 0) for m in shares]))
    wall = time.perf_counter() - w0
    cpu = sum(p["cpu_s"] for p in parts)
    cpu_per = cpu / len(masses)
    obs = np.concatenate([p["ul_nsig_obs"] for p in parts])
    err = np.concatenate([p["ul_nsig_obs_err"] for p in parts])
    conv = np.concatenate([p["converged"] for p in parts])
    return {
        "candidates": int(len(x)),
        "hypotheses_run": int(len(masses)),
        "toys_per_hypothesis": n_toys,
        "workers": workers,
        "mean_events_per_window": float(np.mean(np.concatenate([p["n_events"] for p in parts]))),
        "wall_s": wall,
        "worker_wall_s": [p["wall_s"] for p in parts],
        "cpu_s": cpu,
        "cpu_s_per_hypothesis": cpu_per,
        "converged_fraction": float(np.mean(conv)),
        "median_relative_mc_error_observed": float(np.median(err / np.where(obs > 0, obs, 1.0))),
        f"extrapolated_{total}_hypotheses_min_from_cpu": cpu_per * total / workers / 60.0,
        f"extrapolated_{total}_hypotheses_min_from_wall": wall * total / len(masses) / 60.0,
        "target_min": 10.0,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer toys and hypotheses")
    ap.add_argument("--hypotheses", type=int, default=None, help="scan hypotheses actually run [default 100, quick 10]")
    ap.add_argument("--toys", type=int, default=None, help="toys per scan hypothesis [default 1000, quick 200]")
    ap.add_argument("--workers", type=int, default=2, help="worker processes of the scan")
    args = ap.parse_args()
    n_hyp = args.hypotheses if args.hypotheses is not None else (10 if args.quick else 100)
    n_toys = args.toys if args.toys is not None else (200 if args.quick else 1000)
    load0 = os.getloadavg()[0]
    one = single(100 if args.quick else 400, 100 if args.quick else 400)
    sc = scan(n_hyp, n_toys, args.workers, 1000)
    out = {
        "benchmark": "toys",
        "load_average_1min": [load0, os.getloadavg()[0]],
        "cores": os.cpu_count(),
        "one_hypothesis": one,
        "scan": sc,
        "lee_scans": "not measured here (issue 14 item 3, background-only toy scans, is built separately)",
    }
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()

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
3. 1000 LEE background-only scans: the scan benchmark's spectrum
   (``benchmarks/scan.py``: 2e5 candidates in [0.1, 10] GeV, falling with
   slope 0.35/GeV, mass grid 0.175-9.6 GeV in 0.009 GeV steps: ~1000 fitted
   hypotheses with +-20 sigma windows, peak templates near the eta and
   eta'), ``--lee-scans`` toy scans run as the scan driver runs them
   (``scans.jobs.toy_batch_jobs`` -> ``scans.worker.evaluate_toy_batch`` on
   ``--workers`` spawned processes: binned fits, ``scans.lee_batch``): wall
   and CPU time (this process and its workers; target <= 5 minutes). In the
   same run, today's per-toy path (every hypothesis by the unbinned fits of
   the observed scan, ``bin_fraction=None``) and the new one on the first
   ``--lee-old`` toys in this process: CPU and wall per toy scan, their
   ratio, and the agreement of the local Z of the two on those toys; the
   Gross-Vitells check of the toys (``scans.lee.gross_vitells_check``).

Wall times depend on the load of the (shared) machine, which is reported;
CPU times less so. Prints one JSON document.

Usage: python benchmarks/toys.py [--quick] [--hypotheses N] [--toys N] [--workers N] [--lee-scans N] [--lee-old N]
                                 [--parts one,scan,lee]
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


def _cpu() -> float:
    """CPU seconds of this process and of its finished (waited-for) child processes."""
    import resource

    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def lee_scans(n_scans: int, n_old: int, workers: int) -> dict:
    """``n_scans`` background-only toy scans of the scan benchmark as the driver runs them, and today's path on ``n_old`` of them."""
    from dataclasses import replace

    from scans.config import load_scan_config
    from scans.execution import run_jobs
    from scans.jobs import TOYS_PER_JOB, FitSettings, toy_batch_jobs
    from scans.lee import fit_smooth_background, gross_vitells_check, segment_labels, upcrossings
    from scans.plan import plan_scan, sorted_candidates, veto_ranges
    from scans.testing import analytic_signal_model, toy_spectrum
    from scans.worker import evaluate_toy_batch

    x = sorted_candidates(toy_spectrum(200_000, lo=0.1, hi=10.0, slope=0.35, seed=1))
    cfg = load_scan_config({"mass": {"min": 0.175, "max": 9.6, "step": 0.009}, "lee": {"toys": n_scans}})
    plan = plan_scan(x, analytic_signal_model(), cfg)
    fit = FitSettings.from_config(cfg)
    lee = cfg["lee"]
    smooth = fit_smooth_background(x, data_range=plan.data_range, order=lee["background_order"], bins=lee["bins"], exclude=veto_ranges(plan, cfg["vetoes"]))
    bkg = replace(smooth, n_expected=float(np.sum((x >= smooth.lo) & (x <= smooth.hi))))
    jobs = toy_batch_jobs(plan, bkg, n_toys=n_scans, seed=lee["seed"], block_size=cfg["block_size"], fit=fit)
    results: dict[int, object] = {}
    c0, w0 = _cpu(), time.perf_counter()
    run_jobs(evaluate_toy_batch, dict(enumerate(jobs)), on_done=results.__setitem__, workers=workers, show_progress=False)
    wall, cpu = time.perf_counter() - w0, _cpu() - c0
    toys = [t for i in range(len(jobs)) for t in results[i].toys]  # type: ignore[attr-defined]
    z = np.array([t.z_local for t in toys])

    # today's per-toy path and the new one on the same first toys, in this process (kernels loaded, design cached by a warm-up)
    first = replace(jobs[0], count=n_old)
    evaluate_toy_batch(replace(first, count=1, first=n_scans))
    old, w_old, c_old = timed(evaluate_toy_batch, replace(first, bin_fraction=None))
    new, w_new, c_new = timed(evaluate_toy_batch, first)
    dz = np.array([t.z_local for t in new.toys]) - np.array([t.z_local for t in old.toys])
    ncross = upcrossings(np.maximum(z, 0.0) ** 2, lee["c0"], segments=segment_labels(plan.fit_indices))
    check = gross_vitells_check(z.max(axis=1), float(ncross.mean()), float(ncross.std(ddof=1) / np.sqrt(len(ncross))), c0=lee["c0"])
    return {
        "candidates": int(x.size),
        "hypotheses": int(len(plan.fit_indices)),
        "windows_with_peak_templates": int(sum(bool(e) for e in jobs[0].hypotheses.extras)) if jobs[0].hypotheses.extras else 0,
        "mean_candidates_per_window": float(plan.n_events[plan.fit_indices].mean()),
        "scans": n_scans,
        "toys_per_job": TOYS_PER_JOB,
        "bin_fraction_of_sigma": jobs[0].bin_fraction,
        "workers": workers,
        "wall_s": wall,
        "cpu_s": cpu,
        "cpu_s_per_scan": cpu / n_scans,
        "target_wall_s": 300.0,
        "fits_failed": int(sum(t.n_failed for t in toys)),
        "fits_refitted_unbinned": int(sum(t.n_refit for t in toys)),
        "per_toy_scan_today": {"toys": n_old, "wall_s": w_old / n_old, "cpu_s": c_old / n_old},
        "per_toy_scan_new": {"toys": n_old, "wall_s": w_new / n_old, "cpu_s": c_new / n_old},
        "speed_ratio_cpu": c_old / c_new,
        "speed_ratio_wall": w_old / w_new,
        "today_extrapolated_wall_min_on_workers": w_old / n_old * n_scans / workers / 60.0,
        "agreement_z_binned_minus_unbinned": {"rms": float(np.sqrt(np.mean(dz**2))), "max_abs": float(np.abs(dz).max()), "mean": float(dz.mean())},
        "max_z_local": {"mean": float(z.max(axis=1).mean()), "median": float(np.median(z.max(axis=1)))},
        "n_upcrossings_c0": float(ncross.mean()),
        "gross_vitells_check": check,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer toys and hypotheses")
    ap.add_argument("--hypotheses", type=int, default=None, help="scan hypotheses actually run [default 100, quick 10]")
    ap.add_argument("--toys", type=int, default=None, help="toys per scan hypothesis [default 1000, quick 200]")
    ap.add_argument("--workers", type=int, default=2, help="worker processes of the scan")
    ap.add_argument("--lee-scans", type=int, default=None, help="LEE background-only toy scans [default 1000, quick 100]")
    ap.add_argument("--lee-old", type=int, default=None, help="toy scans also run by today's per-toy path [default 3, quick 1]")
    ap.add_argument("--parts", default="one,scan,lee", help="comma-separated parts to run: one, scan, lee [default all]")
    args = ap.parse_args()
    parts = {p.strip() for p in args.parts.split(",")}
    n_hyp = args.hypotheses if args.hypotheses is not None else (10 if args.quick else 100)
    n_toys = args.toys if args.toys is not None else (200 if args.quick else 1000)
    n_lee = args.lee_scans if args.lee_scans is not None else (100 if args.quick else 1000)
    n_old = args.lee_old if args.lee_old is not None else (1 if args.quick else 3)
    load0 = os.getloadavg()[0]
    one = single(100 if args.quick else 400, 100 if args.quick else 400) if "one" in parts else None
    sc = scan(n_hyp, n_toys, args.workers, 1000) if "scan" in parts else None
    lee = lee_scans(n_lee, n_old, args.workers) if "lee" in parts else None
    out = {
        "benchmark": "toys",
        "load_average_1min": [load0, os.getloadavg()[0]],
        "cores": os.cpu_count(),
        "one_hypothesis": one,
        "scan": sc,
        "lee_scans": lee,
    }
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()

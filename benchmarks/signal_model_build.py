"""Benchmark: signal-model build time (200 generated masses) and numpy pdf evaluation rate.

Usage::

    python benchmarks/signal_model_build.py [--quick] [--masses N] [--n-generated N]

Prints one JSON object. Targets: build from 200 masses < 300 s; ``SignalShape.pdf``
>= 1e7 evaluations/s (also reported, for information, with the wrong-pair edge
inside the window, which adds one normal CDF per point). The build reuses one compiled zfit likelihood for all
masses (``signal_models.calibration.CalibrationFitter``).
"""

from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("ZFIT_DISABLE_TF_WARNINGS", "1")

import numpy as np


def _time_pdf(shape, x: np.ndarray, repeats: int) -> tuple[float, float]:
    shape.pdf(x, 4.0, 6.0)
    best, best_cpu = float("inf"), float("inf")
    for _ in range(3):  # best of three: the machine is shared
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(repeats):
            shape.pdf(x, 4.0, 6.0)
        best, best_cpu = min(best, time.perf_counter() - t0), min(best_cpu, time.process_time() - c0)
    return best, best_cpu


def bench_pdf(n_points: int, repeats: int) -> dict[str, float]:
    import dataclasses

    from signal_models import SignalShape

    shape = SignalShape(mu=5.0, sigma=0.05, alpha_l=1.2, n_l=3.0, alpha_r=1.8, n_r=6.0, comb_fraction=0.2, comb_slope=-0.4)
    x = np.random.default_rng(1).uniform(4.0, 6.0, n_points)
    best, best_cpu = _time_pdf(shape, x, repeats)
    # the same with the wrong-pair edge inside the window (signal models near m_a ~ 7.5 GeV)
    edged = dataclasses.replace(shape, comb_edge=5.3, comb_edge_width=0.05)
    best_e, _ = _time_pdf(edged, x, repeats)
    return {
        "pdf_points": n_points,
        "pdf_repeats": repeats,
        "pdf_evals_per_s": n_points * repeats / best,
        "pdf_evals_per_cpu_s": n_points * repeats / best_cpu,
        "pdf_edge_in_window_evals_per_s": n_points * repeats / best_e,
    }


def bench_build(n_masses: int, n_generated: int) -> dict[str, float]:
    from signal_models import build_signal_model
    from signal_models.calibration import CalibrationFitter
    from signal_models.synthetic import TruthCurves, generate_candidates

    truth = TruthCurves()
    masses = np.round(np.linspace(0.5, 9.5, n_masses), 6)
    x, tm, ma, ngen = generate_candidates(masses, n_generated=n_generated, truth=truth, seed=3)
    t0 = time.perf_counter()
    fitter = CalibrationFitter()  # one model and compiled likelihood for every mass
    t_setup = time.perf_counter() - t0
    t1, c1 = time.perf_counter(), time.process_time()
    model = build_signal_model(x, tm, ma, n_generated=ngen, fitter=fitter)
    t_build, cpu_build = time.perf_counter() - t1, time.process_time() - c1
    ok = sum(f.ok for f in model.fits)
    # vectorised evaluation of the model for a scan grid
    grid = np.linspace(*model.mass_range, 10_000)
    t2 = time.perf_counter()
    params = model.shape_params(grid)
    eff = model.efficiency(grid)
    t_eval = time.perf_counter() - t2
    sig_true = truth.sigma0 + truth.sigma1 * grid
    return {
        "n_masses": n_masses,
        "n_generated_per_mass": n_generated,
        "n_candidates": int(x.size),
        "fitter_setup_s_incl_tf_import": t_setup,
        "build_cpu_s": cpu_build,
        "build_s": t_build,
        "build_total_s": t_setup + t_build,
        "per_mass_s": t_build / n_masses,
        "masses_ok": ok,
        "shape_params_10k_masses_s": t_eval,
        "max_rel_sigma_dev_from_truth": float(np.max(np.abs(params["sigma"] / sig_true - 1))),
        "max_abs_eff_dev_from_truth": float(np.max(np.abs(eff - truth.efficiency(grid)))),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="20 masses, smaller pdf benchmark")
    ap.add_argument("--masses", type=int, default=None, help="number of generated masses [200; 20 with --quick]")
    ap.add_argument("--n-generated", type=int, default=4000, help="generated events per mass [4000]")
    args = ap.parse_args()
    n_masses = args.masses or (20 if args.quick else 200)
    out: dict[str, object] = {"benchmark": "signal_models", "cpu_count": os.cpu_count(), "load_average_1min": os.getloadavg()[0]}
    out.update(bench_pdf(1_000_000, 5 if args.quick else 20))
    out.update(bench_build(n_masses, args.n_generated))
    extrapolated = out["build_total_s"] * 200.0 / n_masses  # type: ignore[operator]
    out["targets"] = {
        "build_200_masses_s": {"target": 300.0, "measured_or_extrapolated": extrapolated, "met": extrapolated < 300.0},
        "pdf_evals_per_s": {"target": 1e7, "measured": out["pdf_evals_per_s"], "met": out["pdf_evals_per_s"] >= 1e7},  # type: ignore[operator]
    }
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()

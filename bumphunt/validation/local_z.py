"""Background-only toy scans: the local Z distribution across the scan, and the maximum local Z against Gross-Vitells.

The toys are the scan's own look-elsewhere toys (``scans.jobs.toy_jobs`` run
by ``scans.worker.evaluate_toy``: a Poisson number of candidates drawn from
a smooth spectrum, every grid point fitted as in the scan), drawn from the
known truth of ``ReferenceSpectrum`` over a grid with step
``lee_step_sigma_fraction x sigma(m)``. A well-sampled grid matters for the
Gross-Vitells comparison: its formula describes a continuous process, and
on a grid much coarser than the resolution the points are nearly independent
and the formula overestimates p_global.

- Local Z: signed sqrt(q0) at every point of every toy; mean and width pooled
  over the scan, with errors from the spread of the per-toy values, and per
  mass (figure ``local_z_vs_mass``).
- Gross-Vitells: for each tested level u of the largest local Z,
  ``scans.lee.global_significance`` gives the prediction
  ``p_local(u) + <N(c0)> exp(-(u^2 - c0) / 2)`` (up-crossings of c0 = 1 counted
  in the same toys) and the toys' own fraction of scans whose maximum reaches u.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from scipy import stats

from .figures import plot_local_z, plot_max_local_z
from .settings import (
    GV_MIN_EXCEEDING,
    GV_Z_TOL,
    LOCAL_Z_MEAN_MAX,
    LOCAL_Z_WIDTH_TOL,
    CheckResult,
    ValidationSettings,
)
from .spectrum import ReferenceSpectrum

logger = logging.getLogger(__name__)

__all__ = ["ToyScans", "background_only_scans", "lee_checks"]

#: reference level of the up-crossings (q0 units), the scan's default ``lee.c0``
C0 = 1.0


@dataclasses.dataclass(frozen=True, eq=False)
class ToyScans:
    """Local Z of background-only toy scans.

    Attributes
    ----------
    masses : (k,) float array, GeV
    z : (n_toys, k) float array
        Signed local significance (0 where a toy fit failed).
    segments : (k,) int array
        Segment labels of the grid points (``scans.lee.segment_labels``).
    n_failed : int
        Toy fits that failed.
    """

    masses: NDArray
    z: NDArray
    segments: NDArray
    n_failed: int


def background_only_scans(spec: ReferenceSpectrum, settings: ValidationSettings, *, seed: int) -> ToyScans:
    """``settings.lee_toys`` background-only toy scans of the truth over the grid (run on ``settings.workers`` processes)."""
    from scans.config import load_scan_config
    from scans.execution import run_jobs
    from scans.jobs import FitSettings, toy_jobs
    from scans.lee import segment_labels
    from scans.plan import plan_scan, sorted_candidates
    from scans.worker import evaluate_toy

    cfg = load_scan_config(spec.scan_config(step_sigma_fraction=settings.lee_step_sigma_fraction))
    plan = plan_scan(sorted_candidates(spec.candidates()), spec.signal_model(), cfg)
    fit = dataclasses.replace(FitSettings.from_config(cfg), gof_method="none")
    jobs = toy_jobs(plan, spec.truth(), n_toys=settings.lee_toys, seed=seed, block_size=cfg["block_size"], fit=fit)
    results: dict[int, object] = {}
    run_jobs(evaluate_toy, dict(enumerate(jobs)), on_done=results.__setitem__, workers=settings.workers, description="validation: LEE toys")
    toys = [results[i] for i in range(len(jobs))]
    z = np.array([t.z_local for t in toys], dtype=float)  # type: ignore[attr-defined]
    n_failed = int(sum(t.n_failed for t in toys))  # type: ignore[attr-defined]
    return ToyScans(masses=plan.masses[plan.fit_indices], z=z, segments=segment_labels(plan.fit_indices), n_failed=n_failed)


def _local_z_result(scans_: ToyScans, *, out_dir: Path, seconds: float) -> CheckResult:
    z = scans_.z
    n_toys = z.shape[0]
    mean = float(z.mean())
    mean_err = float(z.mean(axis=1).std(ddof=1) / np.sqrt(n_toys))
    width = float(z.std())
    width_err = float(np.sqrt(np.mean(z**2, axis=1)).std(ddof=1) / np.sqrt(n_toys))
    per_mass_mean, per_mass_width = z.mean(axis=0), z.std(axis=0, ddof=1)
    passed = abs(mean) < LOCAL_Z_MEAN_MAX and abs(width - 1.0) < LOCAL_Z_WIDTH_TOL and scans_.n_failed == 0
    bins = np.linspace(-5.0, 5.0, 81)
    hist, _ = np.histogram(z, bins=bins)
    data = {"n_toys": n_toys, "n_points": int(z.shape[1]), "mean": mean, "mean_err": mean_err, "width": width, "width_err": width_err,
            "n_failed_fits": scans_.n_failed, "masses": scans_.masses, "per_mass_mean": per_mass_mean, "per_mass_width": per_mass_width,
            "per_mass_mean_err": per_mass_width / np.sqrt(n_toys), "per_mass_width_err": per_mass_width / np.sqrt(2.0 * (n_toys - 1)),
            "histogram_edges": bins, "histogram_counts": hist, "fraction_above_3": float(np.mean(z > 3.0)),
            "gaussian_fraction_above_3": float(stats.norm.sf(3.0))}
    figs = plot_local_z(data, out_dir / "local_z.png", out_dir / "local_z_vs_mass.png")
    header = ("quantity", "value", "criterion")
    rows = (("mean local Z", f"{mean:+.4f} +- {mean_err:.4f}", f"|mean| < {LOCAL_Z_MEAN_MAX}"),
            ("width of local Z", f"{width:.4f} +- {width_err:.4f}", f"|width - 1| < {LOCAL_Z_WIDTH_TOL}"),
            ("per-mass mean, range", f"{per_mass_mean.min():+.3f} .. {per_mass_mean.max():+.3f}", "(statistical error per mass "
             f"{1 / np.sqrt(n_toys):.3f})"),
            ("per-mass width, range", f"{per_mass_width.min():.3f} .. {per_mass_width.max():.3f}", ""),
            ("fraction with Z > 3", f"{data['fraction_above_3']:.2e}", f"Gaussian {data['gaussian_fraction_above_3']:.2e}"),
            ("failed toy fits", str(scans_.n_failed), "0"))
    headline = f"mean {mean:+.4f} +- {mean_err:.4f}, width {width:.4f} +- {width_err:.4f} ({n_toys} toy scans x {z.shape[1]} masses)"
    criterion = f"|mean local Z| < {LOCAL_Z_MEAN_MAX} and |width - 1| < {LOCAL_Z_WIDTH_TOL} (pooled over masses and toys), no failed fit"
    return CheckResult(name="local_z", title="Local Z under background only", passed=passed, criterion=criterion, headline=headline,
                       tables=((header, rows),), figures=tuple(f.name for f in figs), data=data, seconds=seconds)


def _z_of(p: float) -> float:
    return float(max(stats.norm.isf(min(max(p, 1e-300), 1.0)), 0.0))


def _gv_result(scans_: ToyScans, levels: tuple[float, ...], *, out_dir: Path, seconds: float) -> CheckResult:
    from scans.lee import global_significance

    z = scans_.z
    n_toys = z.shape[0]
    rows, tested, ok_all = [], [], True
    level_data = []
    for u in levels:
        g = global_significance(np.array([u]), np.array([0.0]), z_toys=z, c0=C0, segments=scans_.segments)
        toys = g["toys"]
        p_gv, p_gv_err, p_t, p_t_err = g["p_global"], g["p_global_err"], toys["p_global"], toys["p_global_err"]
        z_gv, z_t = _z_of(p_gv), _z_of(p_t)
        is_tested = toys["n_exceeding"] >= GV_MIN_EXCEEDING
        ok = (abs(z_gv - z_t) < GV_Z_TOL and p_gv >= p_t - 2.0 * p_t_err) if is_tested else True
        ok_all &= bool(ok)
        tested.append(is_tested)
        level_data.append({"level": u, "p_global_gv": p_gv, "p_global_gv_err": p_gv_err, "p_global_toys": p_t, "p_global_toys_err": p_t_err,
                           "z_global_gv": z_gv, "z_global_toys": z_t, "n_exceeding": toys["n_exceeding"], "tested": is_tested, "pass": ok})
        rows.append((f"{u:g}", f"{p_t:.4f} +- {p_t_err:.4f} ({toys['n_exceeding']})", f"{p_gv:.4f} +- {p_gv_err:.4f}", f"{z_t:.2f}",
                     f"{z_gv:.2f}", ("PASS" if ok else "FAIL") if is_tested else f"not tested (< {GV_MIN_EXCEEDING} toys above)"))
    zmax = z.max(axis=1)
    u_grid = np.linspace(1.0, 4.5, 36)
    curve = [global_significance(np.array([u]), np.array([0.0]), z_toys=z, c0=C0, segments=scans_.segments) for u in u_grid]
    data = {"n_toys": n_toys, "c0": C0, "n_upcrossings": curve[0]["n_upcrossings"], "n_upcrossings_err": curve[0]["n_upcrossings_err"],
            "levels": level_data, "max_z_mean": float(zmax.mean()), "max_z_median": float(np.median(zmax)), "max_z": np.sort(zmax),
            "curve_u": u_grid, "curve_p_gv": [c["p_global"] for c in curve], "curve_p_toys": [c["toys"]["p_global"] for c in curve],
            "curve_p_toys_err": [c["toys"]["p_global_err"] for c in curve]}
    fig = plot_max_local_z(data, out_dir / "max_local_z.png")
    passed = ok_all and any(tested)
    header = ("largest local Z >=", "p_global, toys (toys above)", "p_global, Gross-Vitells", "Z_global toys", "Z_global GV", "verdict")
    med = np.median(zmax)
    headline = (f"<N(c0=1)> = {data['n_upcrossings']:.2f}; max local Z median {med:.2f}; "
                + "; ".join(f"Z_loc {d['level']:g}: p_toys {d['p_global_toys']:.3f} vs GV {d['p_global_gv']:.3f}" for d in level_data))
    criterion = (f"at each level reached by >= {GV_MIN_EXCEEDING} toys: |Z_global(GV) - Z_global(toys)| < {GV_Z_TOL} and GV not below the "
                 "toys by more than 2 errors (conservative); at least one level tested")
    notes = ("The Gross-Vitells formula is asymptotic and describes a continuous process; on a finite grid and at moderate Z it "
             "overestimates p_global somewhat (conservative).",)
    return CheckResult(name="gross_vitells", title="Maximum local Z against Gross-Vitells", passed=passed, criterion=criterion,
                       headline=headline, tables=((header, tuple(rows)),), figures=(fig.name,), data=data, notes=notes, seconds=seconds)


def lee_checks(spec: ReferenceSpectrum, settings: ValidationSettings, *, seed: int, out_dir: Path) -> tuple[CheckResult, CheckResult]:
    """The local-Z and Gross-Vitells checks on one set of background-only toy scans (the toys' time is split evenly)."""
    t0 = time.perf_counter()
    toys = background_only_scans(spec, settings, seed=seed)
    logger.info("LEE toys: %d scans of %d masses in %.1f s (%d failed fits)", *toys.z.shape, time.perf_counter() - t0, toys.n_failed)
    half = 0.5 * (time.perf_counter() - t0)
    return (_local_z_result(toys, out_dir=out_dir, seconds=half),
            _gv_result(toys, tuple(settings.lee_levels), out_dir=out_dir, seconds=half))

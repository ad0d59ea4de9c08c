"""Injection and recovery across the mass range: bias, pull width and linearity of the fitted signal yield.

Runs ``scans.injection.injection_study`` on the reference spectrum with the
known truth as the toys' background (so the study measures the fit, not
features a smooth fit picked up from one sample) and draws its figures with
``scans.injection.plot_injection``.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from .figures import figure_json
from .settings import INJECTION_BIAS_MAX, INJECTION_SLOPE_TOL, INJECTION_WIDTH_TOL, CheckResult, ValidationSettings
from .spectrum import ReferenceSpectrum

logger = logging.getLogger(__name__)

__all__ = ["injection_check"]


def injection_check(spec: ReferenceSpectrum, settings: ValidationSettings, *, seed: int, out_dir: Path) -> CheckResult:
    """Injection study at ``settings.injection_masses`` x ``injection_nsig`` with ``injection_toys`` toys per point."""
    from scans.injection import injection_study, plot_injection

    t0 = time.perf_counter()
    study = injection_study(spec.candidates(), spec.signal_model(), config=spec.scan_config(), masses=settings.injection_masses,
                            nsig=settings.injection_nsig, n_toys=settings.injection_toys, seed=seed, background=spec.truth())
    files = plot_injection(study, out_dir)
    data = study.to_json()
    data["bias_over_error_stat_err"] = 1.0 / np.sqrt(max(study.n_toys, 1))
    for f in files:
        figure_json(f, data)
    boe, width, slope = study.bias_over_error, study.pull_width, study.slope
    ok_bias = np.abs(boe) < INJECTION_BIAS_MAX
    ok_width = np.abs(width - 1.0) < INJECTION_WIDTH_TOL
    ok_slope = (np.abs(slope - 1.0) < INJECTION_SLOPE_TOL) if study.nsig.size >= 2 else np.ones(study.masses.size, bool)
    passed = bool(np.all(ok_bias) and np.all(ok_width) and np.all(ok_slope) and study.n_failed.sum() == 0)
    rows = []
    for i, m in enumerate(study.masses):
        for j, n in enumerate(study.nsig):
            ok = ok_bias[i, j] and ok_width[i, j] and ok_slope[i]
            rows.append((f"{m:g}", f"{n:g}", f"{study.mean_fit[i, j]:.2f}", f"{boe[i, j]:+.3f}",
                         f"{study.pull_mean[i, j]:+.3f} +- {study.pull_mean_err[i, j]:.3f}",
                         f"{width[i, j]:.3f} +- {study.pull_width_err[i, j]:.3f}", f"{slope[i]:.3f}", str(int(study.n_failed[i, j])),
                         "PASS" if ok else "FAIL"))
    header = ("mass / GeV", "injected N_sig", "mean fitted", "bias / error", "pull mean", "pull width", "linearity slope", "failed", "verdict")
    worst = np.unravel_index(int(np.nanargmax(np.abs(boe))), boe.shape)
    headline = (f"max |bias|/error {abs(boe[worst]):.3f} (+- {data['bias_over_error_stat_err']:.3f} stat.), pull width "
                f"{np.nanmin(width):.3f}-{np.nanmax(width):.3f}, slope {np.nanmin(slope):.3f}-{np.nanmax(slope):.3f} "
                f"({study.masses.size} masses x {study.nsig.size} yields x {study.n_toys} toys)")
    criterion = (f"|bias| < {INJECTION_BIAS_MAX} x error at every mass and yield; |pull width - 1| < {INJECTION_WIDTH_TOL}; "
                 f"|slope - 1| < {INJECTION_SLOPE_TOL}; no failed fit")
    return CheckResult(name="injection", title="Injection and recovery", passed=passed, criterion=criterion, headline=headline,
                       tables=((header, tuple(rows)),), figures=tuple(Path(f).name for f in files), data=data,
                       seconds=time.perf_counter() - t0)

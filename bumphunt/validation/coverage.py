"""Coverage of the 95% CLs upper limits versus the true signal strength, asymptotic and with toys.

At each mass the true signal strength is a multiple of the median expected
limit of the reference spectrum. Pseudo-data sets are drawn from the truth
(Poisson background from ``ReferenceSpectrum``, Poisson signal from the
signal shape, exactly by inverse CDF: ``fits.combined_toys.draw_toys``) and
each gets its 95% CLs limit on N_sig:

- asymptotic (``coverage``): all data sets of a point are the hypotheses of
  one vectorised request (``fits.combined_toys.toy_request`` +
  ``fits.combined_table.evaluate_combined``), the scan's one-dataset model;
- toys (``coverage_toys``): ``fits.toy_limits.toy_cls_limits`` on the data
  sets moved apart (``spectrum.stack_datasets``), each limit from its own
  pseudo-experiments.

The coverage is the fraction of data sets whose limit is at or above the true
yield, with its binomial error. CLs is conservative where the signal is
small (coverage above 95%) and tends to 95% for large signals.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .figures import plot_coverage
from .settings import COVERAGE_CL, COVERAGE_N_SE, CheckResult, ValidationSettings
from .spectrum import ReferenceSpectrum, stack_datasets

logger = logging.getLogger(__name__)

__all__ = ["median_expected_limits", "asymptotic_coverage", "toy_coverage"]

#: pseudo-data sets fitted in one request (memory)
CHUNK = 1000


def median_expected_limits(spec: ReferenceSpectrum, masses: NDArray) -> NDArray:
    """Median expected 95% CLs limits (signal events) of the reference sample at ``masses`` (GeV)."""
    import fits

    shapes, windows = spec.hypotheses(masses)
    table = fits.evaluate_hypotheses(spec.candidates(), shapes, windows, cl=COVERAGE_CL)
    return np.asarray(table.ul_nsig_exp)[:, 2]


def _model(spec: ReferenceSpectrum, mass: float) -> tuple[Any, Any, tuple[float, float]]:
    """The one-channel combined model (no nuisances, signal in events), the signal shape and the window at ``mass``."""
    import fits
    from fits.channels import CombinedModel

    (shape,), ((lo, hi),) = spec.hypotheses([mass])
    return CombinedModel.build([fits.Channel(np.array([0.5 * (lo + hi)]), shape, (lo, hi), signal_scale=1.0)]), shape, (lo, hi)


def _binomial(covered: NDArray) -> tuple[float, float]:
    n = max(len(covered), 1)
    p = float(np.mean(covered)) if len(covered) else float("nan")
    return p, float(np.sqrt(p * (1.0 - p) / n)) if len(covered) else float("nan")


def _verdict(cov: NDArray, err: NDArray, failed: NDArray) -> NDArray:
    return (cov + COVERAGE_N_SE * np.maximum(err, 1e-12) >= COVERAGE_CL) & (failed == 0)


def _result(name: str, title: str, data: dict, *, out_dir: Path, seconds: float, method: str) -> CheckResult:
    cov, err, failed = (np.array(data[k], float) for k in ("coverage", "coverage_err", "n_failed"))
    ok = _verdict(cov, err, failed)
    data["pass"] = ok.tolist()
    fig = plot_coverage(data, out_dir / f"{name}.png", title=title)
    rows = []
    for i, m in enumerate(data["masses"]):
        for j, f in enumerate(data["strengths"]):
            rows.append((f"{m:g}", f"{f:g}", f"{data['mu_true'][i][j]:.1f}", f"{cov[i, j]:.4f} +- {err[i, j]:.4f}", str(data["n_sets"]),
                         str(int(failed[i, j])), "PASS" if ok[i, j] else "FAIL"))
    header = ("mass / GeV", "strength / median exp. limit", "true N_sig", "coverage", "data sets", "failed", "verdict")
    worst = np.unravel_index(int(np.argmin(cov + COVERAGE_N_SE * err)), cov.shape)
    where = f"{data['masses'][worst[0]]:g} GeV, {data['strengths'][worst[1]]:g} x exp. limit"
    if cov.size == 1:
        headline = f"{method}: coverage {cov[worst]:.3f} +- {err[worst]:.3f} at {where} ({data['n_sets']} data sets)"
    else:
        headline = (f"{method}: coverage {np.nanmin(cov):.3f}-{np.nanmax(cov):.3f} over {cov.size} points ({data['n_sets']} data sets each); "
                    f"lowest {cov[worst]:.3f} +- {err[worst]:.3f} at {where}")
    criterion = (f"coverage >= {COVERAGE_CL:.2f} - {COVERAGE_N_SE:g} binomial errors at every mass and strength, and no failed limit")
    return CheckResult(name=name, title=title, passed=bool(np.all(ok)), criterion=criterion, headline=headline, tables=((header, tuple(rows)),),
                       figures=(fig.name,), data=data, seconds=seconds)


def asymptotic_coverage(spec: ReferenceSpectrum, settings: ValidationSettings, *, seed: int, out_dir: Path) -> CheckResult:
    """Coverage of the asymptotic CLs limits (``settings.coverage_*``); figure ``coverage.png``."""
    from fits.combined_table import evaluate_combined
    from fits.combined_toys import draw_toys, toy_request

    t0 = time.perf_counter()
    masses = np.asarray(settings.coverage_masses, float)
    strengths = np.asarray(settings.coverage_strengths, float)
    ul_exp = median_expected_limits(spec, masses)
    shape_out = (masses.size, strengths.size)
    cov, err, mean_mu, failed = np.zeros(shape_out), np.zeros(shape_out), np.zeros(shape_out), np.zeros(shape_out, np.int64)
    bkg = spec.background_density()
    for i, m in enumerate(masses):
        model, _, (lo, hi) = _model(spec, float(m))
        n_bkg = spec.expected_in(lo, hi)
        for j, f in enumerate(strengths):
            mu_true = f * ul_exp[i]
            rng = np.random.default_rng(np.random.SeedSequence([seed, i, j]))
            covered, mu_hat = [], []
            for start in range(0, settings.coverage_toys, CHUNK):
                n = min(CHUNK, settings.coverage_toys - start)
                toys = draw_toys(model, n, mu=mu_true, n_bkg=(n_bkg,), background=(bkg,), rng=rng)
                table = evaluate_combined(toy_request(model, toys), cl=COVERAGE_CL, limits=True, expected=False)
                ok = np.asarray(table.converged, bool) & np.isfinite(table.ul_obs)
                failed[i, j] += int((~ok).sum())
                covered.append(table.ul_obs[ok] >= mu_true)
                mu_hat.append(table.mu_hat[ok])
            cov[i, j], err[i, j] = _binomial(np.concatenate(covered))
            mean_mu[i, j] = float(np.mean(np.concatenate(mu_hat)))
            logger.info("coverage at %g GeV, N_sig = %.1f (%g x expected limit): %.4f +- %.4f", m, mu_true, f, cov[i, j], err[i, j])
    data = {"masses": masses.tolist(), "strengths": strengths.tolist(), "median_expected_limit": ul_exp.tolist(),
            "mu_true": (strengths[None, :] * ul_exp[:, None]).tolist(), "coverage": cov.tolist(), "coverage_err": err.tolist(),
            "mean_fitted_nsig": mean_mu.tolist(), "n_failed": failed.tolist(), "n_sets": int(settings.coverage_toys), "cl": COVERAGE_CL,
            "method": "asymptotic CLs (q~_mu, Asimov), vectorised engine"}
    return _result("coverage", "Coverage of the asymptotic 95% CLs limits", data, out_dir=out_dir, seconds=time.perf_counter() - t0,
                   method="asymptotic")


def toy_coverage(spec: ReferenceSpectrum, settings: ValidationSettings, *, seed: int, out_dir: Path) -> CheckResult:
    """Coverage of the toy CLs limits (``fits.toy_limits``; ``settings.toy_coverage_*``); figure ``coverage_toys.png``."""
    from fits.combined_toys import draw_toys
    from fits.toy_limits import toy_cls_limits

    t0 = time.perf_counter()
    masses = np.asarray(settings.toy_coverage_masses, float)
    strengths = np.asarray(settings.toy_coverage_strengths, float)
    ul_exp = median_expected_limits(spec, masses)
    shape_out = (masses.size, strengths.size)
    cov, err, mc_err, failed = np.zeros(shape_out), np.zeros(shape_out), np.zeros(shape_out), np.zeros(shape_out, np.int64)
    bkg = spec.background_density()
    for i, m in enumerate(masses):
        model, shape, window = _model(spec, float(m))
        n_bkg = spec.expected_in(*window)
        for j, f in enumerate(strengths):
            mu_true = f * ul_exp[i]
            rng = np.random.default_rng(np.random.SeedSequence([seed, i, j]))
            toys = draw_toys(model, settings.toy_coverage_datasets, mu=mu_true, n_bkg=(n_bkg,), background=(bkg,), rng=rng)
            x, shapes, windows = stack_datasets(toys.masses[0], toys.counts[:, 0], shape, window)
            table = toy_cls_limits(x, shapes, windows, cl=COVERAGE_CL, n_toys=settings.toy_coverage_toys, seed=seed + 7919 * i + 104729 * j)
            ok = np.asarray(table.converged, bool) & np.isfinite(table.observed)
            failed[i, j] = int((~ok).sum())
            cov[i, j], err[i, j] = _binomial(table.observed[ok] >= mu_true)
            mc_err[i, j] = float(np.median(table.observed_err[ok] / table.observed[ok])) if ok.any() else float("nan")
            logger.info("toy coverage at %g GeV, N_sig = %.1f: %.3f +- %.3f (%d flagged)", m, mu_true, cov[i, j], err[i, j], failed[i, j])
    data = {"masses": masses.tolist(), "strengths": strengths.tolist(), "median_expected_limit": ul_exp.tolist(),
            "mu_true": (strengths[None, :] * ul_exp[:, None]).tolist(), "coverage": cov.tolist(), "coverage_err": err.tolist(),
            "median_relative_mc_error_of_limit": mc_err.tolist(), "n_failed": failed.tolist(), "n_sets": int(settings.toy_coverage_datasets),
            "toys_per_limit": int(settings.toy_coverage_toys), "cl": COVERAGE_CL, "method": "toy CLs (fits.toy_limits.toy_cls_limits)"}
    return _result("coverage_toys", "Coverage of the toy 95% CLs limits", data, out_dir=out_dir, seconds=time.perf_counter() - t0,
                   method="toys")

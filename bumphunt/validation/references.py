"""Agreement with the reference implementations on identical models: zfit + hepstats, and pyhf.

At each reference hypothesis the data are the reference sample plus a few
signal candidates drawn from the signal shape (``reference_signal``).

- zfit + hepstats: the same unbinned model (DSCB + combinatorial signal,
  cubic Chebyshev background, extended likelihood) fitted by zfit/Minuit,
  limits from hepstats' ``AsymptoticCalculator``
  (``fits.upper_limit([Channel], engine="zfit")``: the combined reference
  engine with its unbinned Asimov set). The first ``zfit_single``
  hypotheses also go through the one-hypothesis path
  (``fits.upper_limit(mgg, shape, window, engine="zfit")``, hepstats' binned
  Asimov set), reported as well.
- pyhf: the hypothesis exported with ``fits.export_pyhf`` (background fixed
  to the background-only fit, ``pyhf_bins`` bins, fine enough that binning
  does not matter) and pyhf's own asymptotic CLs limit
  (``fits.pyhf_export.pyhf_upper_limit``, q~_mu), against bumphunt's
  unbinned limit with the same fixed background
  (``fits.upper_limit(..., bkg_fixed=...)``).

Agreement is the relative difference of the observed limit and of each of
the five expected limits.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from .figures import plot_reference
from .settings import REFERENCE_REL_TOL, CheckResult, ValidationSettings
from .spectrum import ReferenceSpectrum

logger = logging.getLogger(__name__)

__all__ = ["reference_check", "background_only_coefficients"]

#: signal yield of the pyhf signal template (the POI is N_sig / NSIG_REF)
NSIG_REF = 10.0


def background_only_coefficients(mgg: np.ndarray, shape: Any, window: tuple[float, float]) -> np.ndarray:
    """Background coefficients (events/GeV per Chebyshev term) of the background-only fit, as ``fits.export_pyhf`` fixes them."""
    from fits.densities import ShapeArrays
    from fits.design import build_design
    from fits.vectorised import Batch

    sh = ShapeArrays.from_shapes([shape])
    lo, hi = window
    batch = Batch(build_design(np.sort(mgg), sh, np.array([lo]), np.array([hi]), 3), sh, 3)
    return np.asarray(batch.fit().zero.theta[0, 1:])


def _row(reference: str, mass: float, ours: Any, ref: Any, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    obs, exp = float(ours.observed), np.asarray(ours.expected, float)
    r_obs, r_exp = float(ref["observed"] if isinstance(ref, dict) else ref.observed), np.asarray(ref["expected"] if isinstance(ref, dict)
                                                                                                     else ref.expected, float)
    rel_obs, rel_exp = (r_obs - obs) / obs, (r_exp - exp) / exp
    row = {"reference": reference, "mass": mass, "observed": obs, "expected": exp, "ref_observed": r_obs, "ref_expected": r_exp,
           "rel_observed": rel_obs, "rel_expected": rel_exp, "max_rel": float(max(abs(rel_obs), np.max(np.abs(rel_exp))))}
    row.update(extra or {})
    return row


def _data(spec: ReferenceSpectrum, x: np.ndarray, mass: float, nsig: float, seed: int) -> tuple[np.ndarray, Any, tuple[float, float]]:
    (shape,), ((lo, hi),) = spec.hypotheses([mass])
    sig = shape.sample(int(nsig), lo, hi, rng=np.random.default_rng(np.random.SeedSequence([seed, int(round(mass * 1e6))])))
    return np.sort(np.concatenate([x, sig])), shape, (float(lo), float(hi))


def _zfit_rows(x: np.ndarray, shape: Any, window: tuple[float, float], mass: float, *, single: bool) -> list[dict[str, Any]]:
    import fits

    channel = [fits.Channel(x, shape, window)]
    ours = fits.upper_limit(channel)
    ref = fits.upper_limit(channel, engine="zfit")
    fit_v, fit_z = ours.fit, ref.fit
    extra = {"converged": bool(ref.converged and ours.converged), "nsig": fit_v.nsig, "ref_nsig": fit_z.nsig,
             "nsig_diff_over_error": (fit_z.nsig - fit_v.nsig) / fit_v.nsig_err, "rel_nsig_err": (fit_z.nsig_err - fit_v.nsig_err) / fit_v.nsig_err,
             "method": ref.method}
    rows = [_row("zfit + hepstats", mass, ours, ref, extra)]
    if single:
        ours1 = fits.upper_limit(x, shape, window)
        ref1 = fits.upper_limit(x, shape, window, engine="zfit")
        rows.append(_row("zfit + hepstats (one-hypothesis path, binned Asimov)", mass, ours1, ref1,
                         {"converged": bool(ours1.converged and ref1.converged), "method": ref1.method}))
    return rows


def _pyhf_row(x: np.ndarray, shape: Any, window: tuple[float, float], mass: float, *, bins: int, out_dir: Path) -> dict[str, Any]:
    import fits
    from fits.pyhf_export import pyhf_upper_limit

    beta0 = background_only_coefficients(x, shape, window)
    ours = fits.upper_limit(x, shape, window, bkg_fixed=beta0)
    path = fits.export_pyhf(x, shape, out_dir / "pyhf" / f"workspace_{mass:g}GeV.json", window, background="fixed", bins=bins, nsig_ref=NSIG_REF,
                            mass=mass)
    spec = json.loads(path.read_text())
    exp = np.asarray(ours.expected, float)
    # pyhf interpolates CLs on a grid of the POI: a fine grid around the region of the limits
    scan = np.linspace(0.5 * min(exp[0], ours.observed), 1.5 * max(exp[4], ours.observed), 400) / NSIG_REF
    ref = pyhf_upper_limit(spec, scan=scan)
    return _row("pyhf", mass, ours, ref, {"converged": bool(ours.converged), "bins": bins, "workspace": str(path.relative_to(out_dir))})


def reference_check(spec: ReferenceSpectrum, settings: ValidationSettings, *, seed: int, out_dir: Path) -> CheckResult:
    """Limits of bumphunt against zfit + hepstats and pyhf at ``settings.reference_masses``."""
    t0 = time.perf_counter()
    x0 = spec.candidates()
    rows: list[dict[str, Any]] = []
    signal = list(settings.reference_signal) + [0.0] * (len(settings.reference_masses) - len(settings.reference_signal))
    for k, (m, ns) in enumerate(zip(settings.reference_masses, signal)):
        x, shape, window = _data(spec, x0, float(m), float(ns), seed)
        rows.extend(_zfit_rows(x, shape, window, float(m), single=k < settings.zfit_single))
        rows.append(_pyhf_row(x, shape, window, float(m), bins=settings.pyhf_bins, out_dir=out_dir))
        for r in rows:
            r.setdefault("injected_nsig", float(ns))
        logger.info("references at %g GeV: %s", m, ", ".join(f"{r['reference']} {r['max_rel']:.2e}" for r in rows if r["mass"] == m))
    for r in rows:
        r["pass"] = bool(r["converged"] and r["max_rel"] < REFERENCE_REL_TOL)
    data = {"tolerance": REFERENCE_REL_TOL, "rows": rows}
    fig = plot_reference(data, out_dir / "reference_agreement.png")
    table_rows = []
    for r in rows:
        table_rows.append((r["reference"], f"{r['mass']:g}", f"{r['injected_nsig']:g}", f"{r['observed']:.3f} / {r['ref_observed']:.3f}",
                           f"{r['expected'][2]:.3f} / {r['ref_expected'][2]:.3f}", f"{100 * r['rel_observed']:+.3f}",
                           " ".join(f"{100 * v:+.3f}" for v in r["rel_expected"]), "PASS" if r["pass"] else "FAIL"))
    header = ("reference", "mass / GeV", "signal added", "observed limit (bumphunt / ref)", "median expected (bumphunt / ref)",
              "obs. diff / %", "expected -2..+2 sigma diff / %", "verdict")
    worst = {ref: max((r["max_rel"] for r in rows if r["reference"] == ref), default=float("nan")) for ref in dict.fromkeys(r["reference"] for r in rows)}
    headline = "; ".join(f"{ref}: max |diff| {100 * v:.3f}%" for ref, v in worst.items()) + f" ({len(settings.reference_masses)} hypotheses)"
    zrows = [r for r in rows if "nsig_diff_over_error" in r]
    notes = (f"zfit fit: max |N_sig difference| / error {max(abs(r['nsig_diff_over_error']) for r in zrows):.2e}, "
             f"max relative difference of the error {max(abs(r['rel_nsig_err']) for r in zrows):.2e}." if zrows else "",
             "pyhf uses a binned likelihood of the exported workspace with the background fixed to the background-only fit; "
             "bumphunt's limit in that row is the unbinned one with the same fixed background.")
    criterion = f"|relative difference| < {REFERENCE_REL_TOL:.0%} for the observed and all five expected limits, every hypothesis and reference"
    return CheckResult(name="references", title="Agreement with zfit + hepstats and pyhf", passed=all(r["pass"] for r in rows),
                       criterion=criterion, headline=headline, tables=((header, tuple(table_rows)),), figures=(fig.name,), data=data,
                       notes=tuple(n for n in notes if n), seconds=time.perf_counter() - t0)

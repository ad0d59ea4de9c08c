"""The mass-scan stage of ``bumphunt demo``: scan the pseudo-data, write the result and the scan plots.

Inputs taken from the demo context (``bumphunt.demo.DemoContext``):

- the candidate masses: ``ctx.extra["selected_mgg"]`` when an earlier stage
  (the selector) left the selected candidates there, else all candidates of
  the ``data`` sample (or, without one, of every background sample);
- the signal model: ``ctx.extra["signal_model"]`` when an earlier stage built
  one, else the analytic model ``scans.testing.analytic_signal_model()``.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

__all__ = ["run_scan_stage"]


def _candidate_masses(ctx: Any) -> tuple[np.ndarray, str]:
    if ctx.extra.get("selected_mgg") is not None:
        return np.asarray(ctx.extra["selected_mgg"], dtype=float), "selected candidates"
    if "data" in ctx.candidates:
        return np.asarray(ctx.candidates["data"]["mgg"], dtype=float), "all pseudo-data candidates (no selector stage)"
    from .stages import sample_kind

    parts = [c["mgg"] for name, c in ctx.candidates.items() if sample_kind(name) == "background"]
    return np.concatenate(parts).astype(float), "all background candidates (unweighted; no pseudo-data sample)"


def run_scan_stage(ctx: Any) -> None:
    """Scan m_a over the pseudo-data; products ``scan_result``, ``scan_points`` and the scan plots."""
    import scans
    from scans.plots import plot_all
    from scans.testing import analytic_signal_model

    mgg, what = _candidate_masses(ctx)
    mgg = mgg[np.isfinite(mgg)]
    model = ctx.extra.get("signal_model") or analytic_signal_model()
    lo, hi = model.mass_range
    config = {
        "mass": {"min": max(0.175, lo), "max": min(9.6, hi), "step": 0.2 if ctx.small else 0.05},
        "luminosity_fb": ctx.lumi_fb,
        "beam": {"e_her": ctx.beam.e_her, "e_ler": ctx.beam.e_ler, "crossing_angle": ctx.beam.crossing_angle},
        "lee": {"toys": 3 if ctx.small else 20, "seed": ctx.seed},
        "block_size": 16,
    }
    out = ctx.folder("scan")
    result = scans.scan(mgg, model, config=config, out_dir=out, workers=1 if ctx.small else 2, show_progress=False)
    ctx.products["scan_result"] = out / "scan_result.json"
    ctx.products["scan_points"] = out / "scan_points.csv"
    for path in plot_all(result, ctx.folder("plots") / "scan"):
        ctx.products[f"plot_scan_{path.stem}"] = path
    ctx.extra["scan_result"] = result
    g = result["global"]
    n_fit = sum(1 for p in result["points"] if not p["vetoed"])
    n_conv = sum(1 for p in result["points"] if not p["vetoed"] and p["converged"])
    ctx.report.append(
        "## Mass scan\n\n"
        f"{len(result['points'])} mass hypotheses from {config['mass']['min']:g} to {config['mass']['max']:g} GeV "
        f"({n_fit - n_conv} of {n_fit} fitted points flagged, {len(result['points']) - n_fit} vetoed) on {mgg.size} "
        f"{what}; signal model: {type(model).__name__}. Largest local excess Z = {g['max_z_local']:.2f} at "
        f"{g['mass_at_max']:.3f} GeV, global Z = {g['z_global']:.2f} ({g['method']}, {g['n_toys']} toys).\n\n"
        "![Brazil band N_sig](plots/scan/brazil_nsig.png)\n\n"
        "![Brazil band cross-section](plots/scan/brazil_xsec.png)\n\n"
        "![Coupling exclusion](plots/scan/coupling_exclusion.png)\n\n"
        "![Local p0](plots/scan/local_p0.png)\n\n"
        "Result: `scan/scan_result.json`, points: `scan/scan_points.csv`.\n"
    )

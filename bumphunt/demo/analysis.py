"""The demo's signal model (from the selected signal grid) and mass scan (of the selected pseudo-data).

The signal model is built by ``bumphunt.chain.signal_model_from_files``, as
``bumphunt signal-model build`` builds it. The scan is written as a
configuration file (``scan/scan.yaml``) next to the candidate file it reads
(``scan/candidates.npz``: M_gg and the selector output of every pseudo-data
candidate, cut at the working point by the configuration) and run with
``scans.run_config``, so ``bumphunt scan DEMO/scan/scan.yaml --out DIR`` repeats it and
the result records its signal model, inputs and provenance.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .selector import SelectorStep, SignalGrid
from .settings import DemoSettings, StepOutput

logger = logging.getLogger(__name__)

__all__ = ["ModelStep", "build_model", "run_scan"]


@dataclass(frozen=True)
class ModelStep:
    """The signal model and its file."""

    model: Any
    path: Path
    output: StepOutput


def build_model(settings: DemoSettings, grid: SignalGrid, selector: SelectorStep) -> ModelStep:
    """Signal model (DSCB + Chebyshev per generated mass, interpolated) of the selected signal grid, with its plots."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from signal_models.plots import plot_all

    from ..chain import signal_model_from_files

    model = signal_model_from_files(list(grid.files), beam=settings.beam, selector=selector.model_dir,
                                    working_point=selector.working_point, min_events=50 if settings.small else 100,
                                    n_prepass=3 if settings.small else 8)
    path = Path(model.save(settings.path("signal_model", "signal_model.json")))
    products = {"signal_model": path}
    for p in plot_all(model, settings.folder("signal_model", "plots"), max_mass_plots=4 if settings.small else 6):
        products[f"plot_signal_model_{Path(p).stem}"] = Path(p)
    plt.close("all")
    lo, hi = model.mass_range
    m = np.linspace(lo, hi, 5)
    eff = np.asarray(model.efficiency(m), dtype=float)
    sig = [model.shape(x) for x in m]
    n_bad = sum(not f.ok for f in model.fits)
    section = (
        "## Signal model\n\n"
        f"Fitted {len(model.fits)} generated masses ({n_bad} skipped or failed), interpolated over "
        f"[{lo:.3f}, {hi:.3f}] GeV. Efficiency (truth-matched selected / generated) at "
        + ", ".join(f"{x:.2f} GeV: {e:.3f}" for x, e in zip(m, eff)) + ".\n\n"
        + "Core width: " + ", ".join(f"{x:.2f} GeV: {1e3 * s.sigma:.1f} MeV" for x, s in zip(m, sig)) + ".\n\n"
        "Model: `signal_model/signal_model.json`, plots in `signal_model/plots/`.\n"
    )
    return ModelStep(model, path, StepOutput(products, section, f"Signal model: [{lo:.3f}, {hi:.3f}] GeV."))


def _write_scan_inputs(settings: DemoSettings, selector: SelectorStep, model: ModelStep) -> Path:
    """``scan/candidates.npz`` and ``scan/scan.yaml`` (paths relative to the configuration)."""
    import os

    import yaml

    folder = settings.folder("scan")
    np.savez(folder / "candidates.npz", mgg=selector.data_mgg, punzi_net=selector.data_score.astype(float))
    lo, hi = model.model.mass_range
    config = {
        "inputs": {"kind": "candidates", "files": ["candidates.npz"], "branch": "mgg",
                   "selection": {"branch": "punzi_net", "working_point": selector.working_point}},
        "signal_model": os.path.relpath(model.path, folder),
        "mass": {"min": float(max(0.175, lo)), "max": float(min(9.6, hi)), "step": 0.2 if settings.small else 0.05},
        "luminosity_fb": settings.lumi_fb,
        "beam": {"e_her": settings.beam.e_her, "e_ler": settings.beam.e_ler, "crossing_angle": settings.beam.crossing_angle},
        "lee": {"toys": 3 if settings.small else 20, "seed": settings.seed},
        "block_size": 16,
        "execution": {"workers": 1 if settings.small else 2},
        "provenance": {"selector": os.path.relpath(selector.model_dir, folder), "working_point": selector.working_point,
                       "toymc_seed": settings.seed, "generated_by": "bumphunt demo"},
    }
    path = folder / "scan.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def run_scan(settings: DemoSettings, selector: SelectorStep, model: ModelStep) -> tuple[dict[str, Any], StepOutput]:
    """Scan m_a over the selected pseudo-data (``scans.run_config`` on the written ``scan.yaml``), with the scan plots."""
    import scans
    from scans.plots import plot_all
    from scans.report import write_report

    config = _write_scan_inputs(settings, selector, model)
    out = config.parent
    result = scans.run_config(config, out_dir=out, show_progress=False, overwrite=True)  # a demo run replaces the last one
    products: dict[str, Path] = {"scan_config": config, "scan_candidates": out / "candidates.npz",
                                 "scan_result": out / "scan_result.json", "scan_points": out / "scan_points.csv"}
    for p in plot_all(result, settings.folder("plots", "scan"), references=("belle2_2020_curve",)):  # the published 2020 curve
        products[f"plot_scan_{p.stem}"] = p
    products["scan_report"] = write_report(result, out, result_path=out / "scan_result.json")  # scan/report.html
    g = result["global"]
    fitted = [p for p in result["points"] if not p["vetoed"]]
    n_conv = sum(1 for p in fitted if p["converged"])
    cfg = result["config"]
    section = (
        "## Mass scan\n\n"
        f"{len(result['points'])} mass hypotheses from {cfg['mass']['min']:g} to {cfg['mass']['max']:g} GeV "
        f"({len(fitted) - n_conv} of {len(fitted)} fitted points flagged, {len(result['points']) - len(fitted)} vetoed) on "
        f"{result['n_candidates']} selected pseudo-data candidates; signal model `signal_model/signal_model.json`. Largest local "
        f"excess Z = {g['max_z_local']:.2f} at {g['mass_at_max']:.3f} GeV, global Z = {g['z_global']:.2f} ({g['method']}, "
        f"{g['n_toys']} toys).\n\n"
        "![Brazil band N_sig](plots/scan/brazil_nsig.png)\n\n"
        "![Brazil band cross-section](plots/scan/brazil_xsec.png)\n\n"
        "![Coupling exclusion](plots/scan/coupling_exclusion.png)\n\n"
        "![Local p0](plots/scan/local_p0.png)\n\n"
        "Result: `scan/scan_result.json`, points: `scan/scan_points.csv`, report (one HTML page): `scan/report.html`. The scan repeats with "
        "`bumphunt scan scan/scan.yaml --out rescan` (its configuration, next to its candidate file `scan/candidates.npz`).\n"
    )
    pts = [p for p in result["points"] if not p["vetoed"] and p["converged"] and p.get("ul_xsec_pb_obs") is not None]
    summary = (f"Scan: {len(result['points'])} mass points, max local Z = {g['max_z_local']:.2f} at {g['mass_at_max']:.3f} GeV, "
               f"global Z = {g['z_global']:.2f}.")
    if pts:
        pick = [pts[int(i)] for i in np.unique(np.linspace(0, len(pts) - 1, 5).round().astype(int))]
        summary += "\n\n| m_a [GeV] | 95% CL UL sigma obs [pb] | expected [pb] | UL g_agg obs [GeV^-1] |\n|---:|---:|---:|---:|"
        for p in pick:
            exp = p.get("ul_xsec_pb_exp") or [float("nan")] * 5
            gg = p.get("ul_g_gev_obs")
            summary += f"\n| {p['mass']:.3f} | {p['ul_xsec_pb_obs']:.3g} | {exp[2]:.3g} | {'-' if gg is None else f'{gg:.3g}'} |"
    return result, StepOutput(products, section, summary)

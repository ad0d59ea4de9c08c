"""The scan result: one record per mass point, the result document (DESIGN.md), its JSON and CSV files.

``scan_points`` merges the block results of the observed scan with the plan
into point records: vetoed points carry only their mass and reason, points
with too few candidates or a failed fit carry ``"converged": false`` and a
reason but no fit numbers, fitted points carry the yields, local Z, limits on
N_sig, the cross-section (pb) and the coupling g_agg (GeV^-1). A fit whose
numbers are not finite, or whose observed limit is implausibly far below the
expected one, is reported as failed: no number in a result is ever NaN.
"""

from __future__ import annotations

import csv
import io
import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from signal_models._common.version import __version__

from .checkpoint import atomic_write_json, atomic_write_text
from .jobs import BlockResult
from .limits import coupling_limit
from .plan import ScanPlan

logger = logging.getLogger(__name__)

__all__ = ["POINT_KEYS", "OPTIONAL_POINT_KEYS", "CSV_COLUMNS", "point_record", "scan_points", "scan_result", "points_csv", "write_result", "log_unfitted", "unfitted_summary", "gof_summary"]

#: keys of a fitted point, in the order of DESIGN.md
POINT_KEYS = (
    "mass", "vetoed", "window", "n_events", "nsig", "nsig_err", "z_local", "converged", "bkg_order",
    "ul_nsig_obs", "ul_nsig_exp", "efficiency", "ul_xsec_pb_obs", "ul_xsec_pb_exp", "ul_g_gev_obs", "ul_g_gev_exp",
)
#: keys a fitted point carries when they apply (goodness of fit; toy limits and their Monte Carlo errors)
OPTIONAL_POINT_KEYS = ("gof_pvalue", "limit_method", "ul_nsig_obs_err", "ul_nsig_exp_err", "ul_xsec_pb_obs_err", "ul_xsec_pb_exp_err")
#: fit numbers that must be finite for a point to count as converged
_FIT_NUMBERS = ("nsig", "nsig_err", "z_local", "ul_nsig_obs", "ul_nsig_exp", "ul_xsec_pb_obs", "ul_xsec_pb_exp", "ul_g_gev_obs", "ul_g_gev_exp")
#: keys a point without fit numbers keeps
_BASE_KEYS = ("mass", "vetoed", "window", "n_events", "efficiency")

_BAND = ("m2", "m1", "med", "p1", "p2")
#: columns of the points CSV
CSV_COLUMNS = ["mass", "vetoed", "converged", "reason", "window_lo", "window_hi", "n_events", "nsig", "nsig_err", "z_local",
               "efficiency", "ul_nsig_obs", *[f"ul_nsig_exp_{s}" for s in _BAND],
               "ul_xsec_pb_obs", *[f"ul_xsec_pb_exp_{s}" for s in _BAND],
               "ul_g_gev_obs", *[f"ul_g_gev_exp_{s}" for s in _BAND], "gof_pvalue"]


def _finite(x: Any) -> bool:
    if isinstance(x, list):
        return all(_finite(v) for v in x)
    return isinstance(x, (int, float)) and math.isfinite(x)


def point_record(plan: ScanPlan, i: int, block: BlockResult | None, j: int) -> dict[str, Any]:
    """The result record of grid point ``i`` (entry ``j`` of its block's result).

    Parameters
    ----------
    plan : ScanPlan
    i : int
        Grid index.
    block : BlockResult or None
        Result of the block holding the point (None for vetoed and empty points).
    j : int
        Position of the point in its block.

    Returns
    -------
    dict
        The point as in the scan result file (DESIGN.md).
    """
    m = float(plan.masses[i])
    if plan.status[i] == "vetoed":
        return {"mass": m, "vetoed": True, "reason": f"veto: {plan.veto[i]}"}
    base = {"mass": m, "vetoed": False, "window": [float(plan.windows[i, 0]), float(plan.windows[i, 1])], "n_events": int(plan.n_events[i])}
    if plan.status[i] == "empty":
        if not plan.windows[i, 1] > plan.windows[i, 0]:  # the mass lies outside the data: no window at all
            lo, hi = plan.data_range
            return {"mass": m, "vetoed": False, "n_events": 0, "converged": False, "efficiency": float(plan.efficiency[i]),
                    "reason": f"outside the data range [{lo:.4g}, {hi:.4g}] GeV (no fit window)"}
        return {**base, "converged": False, "reason": f"fewer than the minimum number of candidates in the window ({plan.n_events[i]})",
                "efficiency": float(plan.efficiency[i])}
    if block is None:
        raise ValueError(f"point_record: fitted point {i} (m = {m:.6g} GeV) needs its block result")
    conv = block.converged[j]
    reason = block.reason[j]
    point = {
        **base,
        "nsig": block.nsig[j],
        "nsig_err": block.nsig_err[j],
        "z_local": block.z_local[j],
        "converged": conv,
        "bkg_order": block.bkg_order[j],
        "ul_nsig_obs": block.ul_nsig_obs[j],
        "ul_nsig_exp": list(block.ul_nsig_exp[j]),
        "efficiency": float(plan.efficiency[i]),
    }
    if block.gof_pvalue is not None and _finite(block.gof_pvalue[j]):
        point["gof_pvalue"] = block.gof_pvalue[j]
    if block.limit_method is not None:  # toy or auto limits: the method of this point and the Monte Carlo errors
        point["limit_method"] = block.limit_method[j]
        for name, key in (("ul_nsig_obs_err", "ul_nsig_obs_err"), ("ul_nsig_exp_err", "ul_nsig_exp_err"),
                          ("ul_xsec_obs_err", "ul_xsec_pb_obs_err"), ("ul_xsec_exp_err", "ul_xsec_pb_exp_err")):
            value = getattr(block, name)
            if value is not None and _finite(list(value[j]) if isinstance(value[j], tuple) else value[j]):
                point[key] = list(value[j]) if isinstance(value[j], tuple) else value[j]
    if conv:
        if block.ul_xsec_obs is not None and block.ul_xsec_exp is not None:
            xs_obs, xs_exp = block.ul_xsec_obs[j], list(block.ul_xsec_exp[j])
        else:  # engine without the systematic: plain division (logged once by scan_points)
            xs_obs = point["ul_nsig_obs"] / plan.scale[i] if _finite(point["ul_nsig_obs"]) else float("nan")
            xs_exp = [v / plan.scale[i] if _finite(v) else float("nan") for v in point["ul_nsig_exp"]]
        point["ul_xsec_pb_obs"] = xs_obs
        point["ul_xsec_pb_exp"] = xs_exp
        if _finite(xs_obs) and _finite(xs_exp) and xs_obs >= 0 and min(xs_exp) >= 0:
            point["ul_g_gev_obs"] = float(coupling_limit(xs_obs, m, plan.sqrt_s))
            point["ul_g_gev_exp"] = coupling_limit(np.asarray(xs_exp), m, plan.sqrt_s).tolist()
        bad = [k for k in POINT_KEYS if k in _FIT_NUMBERS and not _finite(point.get(k))]
        if bad:
            conv = False
            reason = f"non-finite or missing result for {', '.join(bad)} after the fit"
            logger.warning("m = %.4g GeV: %s", m, reason)
        elif not point["ul_nsig_obs"] > 1e-3 * point["ul_nsig_exp"][2]:
            # a CLs limit cannot fall to ~0 events: the limit root finding went wrong
            conv = False
            reason = (f"observed limit {point['ul_nsig_obs']:.3g} events is implausibly far below the expected "
                      f"median {point['ul_nsig_exp'][2]:.3g} (limit root finding failed)")
            logger.warning("m = %.4g GeV: %s", m, reason)
    if not conv:
        # a failed fit carries no fit numbers (the engine's placeholders would look like results)
        keep = {k: v for k, v in point.items() if k in _BASE_KEYS}
        return {**keep, "converged": False, "reason": reason or "fit did not converge"}
    return {k: point[k] for k in (*POINT_KEYS, *OPTIONAL_POINT_KEYS) if k in point}


def scan_points(plan: ScanPlan, blocks: Sequence[BlockResult]) -> list[dict[str, Any]]:
    """The records of all grid points, in mass order, from the plan and the block results (``blocks[b]`` for ``plan.blocks[b]``)."""
    if any(not r.has_xsec for r in blocks):
        logger.warning("fits engine returned no cross-section limits: dividing N_sig limits by eff x L without the systematic")
    where = {int(i): (b, j) for b, idx in enumerate(plan.blocks) for j, i in enumerate(idx)}
    points = []
    for i in range(len(plan.masses)):
        b, j = where.get(i, (None, 0))
        points.append(point_record(plan, i, None if b is None else blocks[b], j))
    return points


def scan_result(
    *,
    config: Mapping[str, Any],
    inputs: Sequence[Mapping[str, str]],
    plan: ScanPlan,
    points: Sequence[Mapping[str, Any]],
    global_significance: Mapping[str, Any],
    hashes: Mapping[str, str],
    n_candidates: int,
    signal_model: Mapping[str, Any] | None = None,
    provenance: Mapping[str, Any] | None = None,
    vetoed_ranges: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """The scan result document (the JSON structure of DESIGN.md plus hashes, candidate count and data range).

    Parameters
    ----------
    config : mapping
        Completed scan configuration.
    inputs : sequence of {"path", "sha256"}
        Input files.
    plan : ScanPlan
    points : sequence of dict
        Point records (``scan_points``).
    global_significance : mapping
        ``max_z_local``, ``mass_at_max``, ``z_global``, ``method``, ... (``scans.lee.global_significance``).
    hashes : mapping
        ``config``, ``inputs`` and ``plan`` hashes of the scan.
    n_candidates : int
        Candidates scanned.
    signal_model : mapping, optional
        Where the signal model came from: ``{"path", "sha256"}`` of its file,
        ``{"analytic": parameters}``, or ``{"object": type name}`` for a model
        handed over in memory.
    provenance : mapping, optional
        How the candidates were made (selector, working point, toy-MC seed,
        event-chain counts, ...), recorded as given.
    vetoed_ranges : sequence of {"lo", "hi", "reason"}
        Mass ranges (GeV) removed by the vetoes (``scans.plan.vetoed_mass_ranges``).
    """
    return {
        "bumphunt_version": __version__,
        "config": config,
        "inputs": list(inputs),
        "signal_model": dict(signal_model) if signal_model is not None else None,
        "provenance": dict(provenance or {}),
        "luminosity_fb": config["luminosity_fb"],
        "sqrt_s": plan.sqrt_s,
        "points": list(points),
        "global": global_significance,
        "hashes": hashes,
        "n_candidates": int(n_candidates),
        "data_range": [float(plan.data_range[0]), float(plan.data_range[1])],
        "vetoed_ranges": [dict(r) for r in vetoed_ranges],
    }


def points_csv(result: Mapping[str, Any]) -> str:
    """The points of a scan result as CSV text (empty cells for numbers a point does not have)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for p in result["points"]:
        row: dict[str, Any] = {k: p.get(k, "") for k in ("mass", "vetoed", "converged", "reason", "n_events", "nsig", "nsig_err",
                                                          "z_local", "efficiency", "ul_nsig_obs", "ul_xsec_pb_obs", "ul_g_gev_obs",
                                                          "gof_pvalue")}
        if "window" in p:
            row["window_lo"], row["window_hi"] = p["window"]
        for key in ("ul_nsig_exp", "ul_xsec_pb_exp", "ul_g_gev_exp"):
            for s, v in zip(_BAND, p.get(key, [""] * 5)):
                row[f"{key}_{s}"] = v
        writer.writerow(row)
    return buf.getvalue()


def write_result(result: Mapping[str, Any], path: str | Path, *, csv_path: str | Path | None = None) -> Path:
    """Write the result JSON (strict: NaN refused) and optionally the points CSV, atomically.

    Parameters
    ----------
    result : mapping
        Scan result (``scans.scan``).
    path : path
        JSON file.
    csv_path : path, optional
        CSV file of the points (``points_csv``).

    Returns
    -------
    Path
        The JSON file.
    """
    path = atomic_write_json(path, result, indent=1)
    if csv_path is not None:
        atomic_write_text(csv_path, points_csv(result))
    logger.info("wrote scan result %s", path)
    return path


def unfitted_summary(points: Sequence[Mapping[str, Any]]) -> tuple[int, str]:
    """How many points (not vetoed) were not fitted, and their commonest reasons (numbers elided so that alike reasons group)."""
    import re
    from collections import Counter

    failed = [p for p in points if not p["vetoed"] and not p.get("converged", False)]
    reasons = Counter(re.sub(r"-?\d[\d.]*(?:e[-+]?\d+)?", "#", str(p.get("reason", "fit did not converge"))) for p in failed)
    return len(failed), "; ".join(f"{n} x {r}" for r, n in reasons.most_common(4))


def log_unfitted(points: Sequence[Mapping[str, Any]]) -> int:
    """Log how many points (not vetoed) were not fitted, and the commonest reasons; returns the count."""
    n, text = unfitted_summary(points)
    if n:
        logger.warning("%d of %d mass points were not fitted: %s", n, len(points), text)
    return n


def gof_summary(points: Sequence[Mapping[str, Any]], section: Mapping[str, Any], *, combined: bool = False) -> dict[str, Any]:
    """The result's ``gof`` record: method, calibration, how many windows were tested, those with a p-value below ``alpha``."""
    method = section["method"]
    if method == "none":
        return {"method": "none"}
    tested = [p for p in points if "gof_pvalue" in p]
    flagged = sorted(({"mass": p["mass"], "pvalue": p["gof_pvalue"]} for p in tested if p["gof_pvalue"] < section["alpha"]),
                     key=lambda r: r["pvalue"])
    sidebands = [p for p in points if "gof_pvalue_sidebands" in p]  # blind points: the sideband-only test
    flagged += sorted(({"mass": p["mass"], "pvalue": p["gof_pvalue_sidebands"], "region": "sidebands"} for p in sidebands
                       if p["gof_pvalue_sidebands"] < section["alpha"]), key=lambda r: r["pvalue"])
    calibration = "toys" if (method == "anderson-darling" or section["toys"] > 0) and not combined else "asymptotic"
    if flagged:
        logger.warning("goodness of fit: %d of %d windows have p < %g (smallest %.2g at %.4g GeV)", len(flagged),
                       len(tested) + len(sidebands), section["alpha"], flagged[0]["pvalue"], flagged[0]["mass"])
    out = {"method": "binned" if combined else method, "calibration": calibration, "alpha": section["alpha"], "n_tested": len(tested),
           "flagged": flagged}
    if sidebands:
        out["n_tested_sidebands"] = len(sidebands)
    return out

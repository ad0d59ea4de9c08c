"""Point records of a combined scan (several datasets, one cross-section).

Each fitted point carries the keys of a one-dataset point (DESIGN.md), with
the signal yields and limits on N_sig summed over the datasets
(``N = sigma x sum_c scale_c``, the expected signal of all datasets at the
limit) and ``efficiency`` the luminosity-weighted total efficiency (signal
model x trigger), plus

- ``xsec_pb``, ``xsec_pb_err``: the fitted cross-section and its error;
- ``channels``: per dataset its window, candidates, fitted signal and
  background events, efficiency, trigger efficiency, expected signal events
  per pb and background order;
- ``nuisances``: per nuisance its post-fit value and error, in units of its
  constraint (0 +- 1 before the fit).

A point whose numbers are not finite is reported as failed with a reason,
as in the one-dataset scan. A blinded point (``scans.blinding``) carries
``"blinded": true`` and only expected quantities: the expected limits (N_sig,
cross-section, coupling), the efficiency, the windows and candidate counts
and, with ``blinding.reference_xsec_pb``, ``z_expected_reference``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from .combined_jobs import CombinedBlockResult
from .combined_plan import CombinedPlan
from .limits import coupling_limit
from .result import POINT_KEYS

logger = logging.getLogger(__name__)

__all__ = ["combined_point_record", "combined_points", "COMBINED_POINT_KEYS"]

#: keys of a fitted combined point beyond POINT_KEYS
COMBINED_POINT_KEYS = ("xsec_pb", "xsec_pb_err", "channels", "nuisances")
_FIT_NUMBERS = ("nsig", "nsig_err", "z_local", "ul_nsig_obs", "ul_nsig_exp", "ul_xsec_pb_obs", "ul_xsec_pb_exp", "ul_g_gev_obs",
                "ul_g_gev_exp", "xsec_pb", "xsec_pb_err")


def _finite(x: Any) -> bool:
    if isinstance(x, list):
        return all(_finite(v) for v in x)
    return isinstance(x, (int, float)) and math.isfinite(x)


def _channels(plan: CombinedPlan, i: int, block: CombinedBlockResult | None, j: int) -> dict[str, dict[str, Any]]:
    out = {}
    for c, name in enumerate(plan.names):
        rec: dict[str, Any] = {
            "window": [float(plan.windows[i, c, 0]), float(plan.windows[i, c, 1])],
            "n_events": int(plan.n_events[i, c]),
            "efficiency": float(plan.efficiency[i, c]),
            "trigger_efficiency": float(plan.trigger[i, c]),
            "signal_per_pb": float(plan.scale[i, c]),
        }
        if not plan.covered[i, c]:
            rec["covered"] = False
        if block is not None:
            rec["nsig"] = float(block.channel_nsig[j][c])
            rec["nbkg"] = float(block.channel_nbkg[j][c])
            rec["bkg_order"] = int(block.bkg_orders[j][c])
        out[name] = rec
    return out


def combined_point_record(plan: CombinedPlan, i: int, block: CombinedBlockResult | None, j: int) -> dict[str, Any]:
    """The result record of grid point ``i`` (entry ``j`` of its block's result; None for vetoed and empty points)."""
    m = float(plan.masses[i])
    if plan.status[i] == "vetoed":
        return {"mass": m, "vetoed": True, "reason": f"veto: {plan.veto[i]}"}
    scale = plan.scale[i]
    total = float(scale.sum())
    lumi = plan.luminosity_fb
    eff_total = float(np.sum(plan.efficiency[i] * plan.trigger[i] * lumi) / lumi.sum())
    base = {
        "mass": m, "vetoed": False,
        "window": [float(plan.windows[i, :, 0].min()), float(plan.windows[i, :, 1].max())],
        "n_events": int(plan.n_events[i].sum()), "efficiency": eff_total,
    }
    if plan.status[i] == "empty":
        return {**base, "converged": False, "channels": _channels(plan, i, None, 0),
                "reason": f"fewer than the minimum number of candidates in every dataset's window ({plan.n_events[i].tolist()})"}
    if block is None:
        raise ValueError(f"combined_point_record: fitted point {i} (m = {m:.6g} GeV) needs its block result")
    if block.blinded and block.blinded[j]:
        return _blinded_record(plan, i, block, j, base, total)
    xs_obs = block.ul_obs[j]
    xs_exp = list(block.ul_exp[j])
    point: dict[str, Any] = {
        **base,
        "nsig": float(sum(block.channel_nsig[j])),
        "nsig_err": block.mu_err[j] * total,
        "z_local": block.z_local[j],
        "converged": block.converged[j],
        "bkg_order": int(max(block.bkg_orders[j])),
        "ul_nsig_obs": xs_obs * total,
        "ul_nsig_exp": [v * total for v in xs_exp],
        "ul_xsec_pb_obs": xs_obs,
        "ul_xsec_pb_exp": xs_exp,
        "xsec_pb": block.mu_hat[j],
        "xsec_pb_err": block.mu_err[j],
    }
    conv, reason = block.converged[j], block.reason[j]
    if conv and _finite(xs_obs) and _finite(xs_exp) and xs_obs >= 0 and min(xs_exp) >= 0:
        point["ul_g_gev_obs"] = float(coupling_limit(xs_obs, m, plan.sqrt_s))
        point["ul_g_gev_exp"] = coupling_limit(np.asarray(xs_exp), m, plan.sqrt_s).tolist()
    if conv:
        bad = [k for k in _FIT_NUMBERS if not _finite(point.get(k))]
        if bad:
            conv, reason = False, f"non-finite or missing result for {', '.join(bad)} after the fit"
            logger.warning("m = %.4g GeV: %s", m, reason)
        elif not xs_obs > 1e-3 * xs_exp[2]:
            conv = False
            reason = f"observed limit {xs_obs:.3g} pb is implausibly far below the expected {xs_exp[2]:.3g} pb (limit search failed)"
            logger.warning("m = %.4g GeV: %s", m, reason)
    channels = _channels(plan, i, block, j)
    if not conv:
        return {**base, "converged": False, "reason": reason or "fit did not converge", "channels": channels}
    nuis = {n: {"value": float(block.nuisance_hat[j][a]), "error": float(block.nuisance_err[j][a])} for a, n in enumerate(plan.nuisance_names)}
    out = {k: point[k] for k in POINT_KEYS}
    out.update({"xsec_pb": point["xsec_pb"], "xsec_pb_err": point["xsec_pb_err"], "channels": channels, "nuisances": nuis})
    if block.gof_pvalue and _finite(block.gof_pvalue[j]):
        out["gof_pvalue"] = block.gof_pvalue[j]
    if reason:
        out["note"] = reason
    return out


def _blinded_record(plan: CombinedPlan, i: int, block: CombinedBlockResult, j: int, base: dict[str, Any], total: float) -> dict[str, Any]:
    """Expected quantities only: nothing the fit of the signal would have said."""
    m = base["mass"]
    xs_exp = list(block.ul_exp[j])
    channels = {name: {k: v for k, v in rec.items() if k not in ("nsig", "nbkg")} for name, rec in _channels(plan, i, block, j).items()}
    if not (block.converged[j] and _finite(xs_exp) and min(xs_exp) >= 0):
        return {**base, "blinded": True, "converged": False, "reason": block.reason[j] or "background-only fit did not converge",
                "channels": channels}
    out = {**base, "blinded": True, "converged": True, "bkg_order": int(max(block.bkg_orders[j])),
           "ul_nsig_exp": [v * total for v in xs_exp], "ul_xsec_pb_exp": xs_exp,
           "ul_g_gev_exp": coupling_limit(np.asarray(xs_exp), m, plan.sqrt_s).tolist(), "channels": channels}
    z_ref = block.z_reference[j] if block.z_reference else float("nan")
    if math.isfinite(z_ref):
        out["z_expected_reference"] = z_ref
    if block.gof_pvalue and _finite(block.gof_pvalue[j]):
        out["gof_pvalue_sidebands"] = block.gof_pvalue[j]  # the background-only fit outside the signal region
    return out


def combined_points(plan: CombinedPlan, blocks: Sequence[CombinedBlockResult]) -> list[dict[str, Any]]:
    """The records of all grid points, in mass order (``blocks[b]`` for ``plan.blocks[b]``)."""
    where = {int(i): (b, j) for b, idx in enumerate(plan.blocks) for j, i in enumerate(idx)}
    points = []
    for i in range(len(plan.masses)):
        b, j = where.get(i, (None, 0))
        points.append(combined_point_record(plan, i, None if b is None else blocks[b], j))
    return points

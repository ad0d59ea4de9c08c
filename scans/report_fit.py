"""The most significant window of a scan result, refitted for the report: the fit and the pulls and impacts.

The candidates and the signal model are re-read from what the result records
(as ``bumphunt plot --fit-masses`` does): the input files (checked against
their sha256) with the configuration's ``inputs`` section, and the signal
model file (checked likewise), or the analytic model's parameters. Callers
may hand them over instead (``mgg``, ``signal_model``), e.g. candidates that
came from raw events through the event chain.

- One dataset: the point's window is refitted with its background order
  (``fits.fit``). Such a scan has no nuisance parameters in the fit of N_sig
  (its eps x L uncertainty enters the cross-section limits only).
- Combined results: the datasets are rebuilt from the result's ``datasets``
  records and the configuration, the scan plan is made again
  (``scans.combined_plan.plan_combined``) and the point's request, with the
  background orders its ``channels`` record, gives the post-fit pulls and
  the impacts on the cross-section (``fits.impacts.impacts_of_request``).
  Where that is not possible (spurious-signal background model, inputs not
  recorded, windows that differ from the record) the point's post-fit
  ``nuisances`` are reported as a pulls table instead, with the reason. The
  fit plots show each dataset's window fitted alone.

Nothing here raises for missing or changed inputs: ``SignificantWindow.notes``
says what could not be done and why. A blind point is never refitted.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .errors import ScanError, ScanInputError

logger = logging.getLogger(__name__)

__all__ = ["FitPanel", "SignificantWindow", "most_significant_point", "recorded_signal_model", "recorded_candidates", "significant_window"]


@dataclass(frozen=True, eq=False)
class FitPanel:
    """One window fitted for the report: ``label`` (dataset), its candidates (GeV) and the ``fits.fit`` result."""

    label: str
    mgg: NDArray
    fit: Any


@dataclass(frozen=True, eq=False)
class SignificantWindow:
    """What the report shows of the most significant window.

    Attributes
    ----------
    point : mapping or None
        The scan point (None when the result has no observed significance).
    panels : tuple of FitPanel
        The refitted windows (empty when the inputs could not be read).
    impacts : fits.impacts.ImpactTable or None
        Pulls and impacts of the nuisances (combined results).
    pulls : tuple of (name, value, error)
        The point's recorded post-fit nuisances, where the impacts could not be computed.
    notes : tuple of str
        What could not be done, and why; differences between the refit and the recorded point.
    """

    point: Mapping[str, Any] | None
    panels: tuple[FitPanel, ...] = ()
    impacts: Any = None
    pulls: tuple[tuple[str, float, float], ...] = ()
    notes: tuple[str, ...] = ()


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def most_significant_point(result: Mapping[str, Any], visible: Sequence[bool]) -> Mapping[str, Any] | None:
    """The point at ``global.mass_at_max``, else the visible converged point with the largest ``z_local`` (None if there is none)."""
    cands = [p for p, ok in zip(result["points"], visible) if ok and not p.get("vetoed") and p.get("converged") and _finite(p.get("z_local"))]
    if not cands:
        return None
    m = (result.get("global") or {}).get("mass_at_max")
    if _finite(m):
        best = min(cands, key=lambda p: abs(float(p["mass"]) - float(m)))
        if abs(float(best["mass"]) - float(m)) <= 1e-9 * max(1.0, abs(float(m))):
            return best
    return max(cands, key=lambda p: float(p["z_local"]))


def recorded_signal_model(source: Any, *, who: str = "") -> Any:
    """The signal model a result records (``{"path", "sha256"}`` or ``{"analytic": ...}``).

    Raises
    ------
    ScanInputError
        Not recorded, handed over in memory, not found, or changed since the scan (sha256).
    """
    from .checkpoint import sha256_file
    from .inputs import load_signal_model

    if not isinstance(source, Mapping):
        raise ScanInputError(f"{who}the result records no signal model")
    if source.get("analytic") is not None:
        return load_signal_model(None, source["analytic"])
    if not source.get("path"):
        raise ScanInputError(f"{who}the signal model was handed over in memory ({source.get('object', 'unknown')}) and is not recorded")
    path = Path(source["path"])
    if not path.is_file():
        raise ScanInputError(f"{who}the recorded signal model {path} is not found")
    if source.get("sha256") and sha256_file(path) != source["sha256"]:
        raise ScanInputError(f"{who}the signal model {path} changed since the scan (sha256 differs)")
    return load_signal_model(path)


def recorded_candidates(inputs: Sequence[Mapping[str, Any]], section: Mapping[str, Any], *, who: str = "") -> NDArray:
    """The candidate masses (GeV) of the recorded input files, read with a configuration ``inputs`` section.

    Raises
    ------
    ScanInputError
        Raw events (the event chain is not re-run here), no files recorded, a file missing or changed (sha256).
    """
    from .checkpoint import sha256_file
    from .inputs import read_candidates

    if section.get("kind") == "events":
        raise ScanInputError(f"{who}the inputs are raw events (inputs.kind: events); the report does not re-run the event chain "
                             "(bumphunt report does, or pass the candidate masses)")
    if not inputs:
        raise ScanInputError(f"{who}the result records no input files (the candidates were handed over in memory)")
    paths = []
    for rec in inputs:
        path = Path(rec["path"])
        if not path.is_file():
            raise ScanInputError(f"{who}the input file {path} is not found")
        if rec.get("sha256") and sha256_file(path) != rec["sha256"]:
            raise ScanInputError(f"{who}the input file {path} changed since the scan (sha256 differs)")
        paths.append(path)
    sel = section.get("selection") or {}
    return read_candidates(paths, tree=section.get("tree") or "candidates", branch=section.get("branch", "mgg"),
                           aliases=section.get("aliases"), selection_branch=sel.get("branch"),
                           working_point=sel.get("working_point", 0.6))


def _fit_panel(label: str, mgg: NDArray, shape: Any, window: Sequence[float], order: int) -> FitPanel:
    import fits

    lo, hi = float(window[0]), float(window[1])
    x = np.asarray(mgg, dtype=float)
    res = fits.fit(x, shape, (lo, hi), bkg_order=int(order))
    return FitPanel(label, x[(x >= lo) & (x <= hi)], res)


def _one_dataset(result: Mapping[str, Any], point: Mapping[str, Any], mgg: Any, signal_model: Any) -> SignificantWindow:
    cfg = result.get("config") or {}
    notes: list[str] = []
    if mgg is None:
        mgg = recorded_candidates(result.get("inputs") or [], cfg.get("inputs") or {})
    if signal_model is None:
        signal_model = recorded_signal_model(result.get("signal_model"))
    m = float(point["mass"])
    panel = _fit_panel("", mgg, signal_model.shape(m), point["window"], int(point.get("bkg_order", cfg.get("bkg_order", 3))))
    res = panel.fit
    if _finite(point.get("nsig")) and _finite(point.get("nsig_err")) and abs(res.nsig - point["nsig"]) > 0.01 * max(point["nsig_err"], 1e-9):
        notes.append(f"The refit gives N_sig = {res.nsig:.4g}, the scan recorded {point['nsig']:.4g} (e.g. a known peak fitted as a "
                     "template in this window, or inputs read differently).")
    notes.append("This scan's fit of N_sig has no nuisance parameters (its eps x L uncertainty enters the cross-section limits only): "
                 "no pulls or impacts.")
    return SignificantWindow(point, (panel,), notes=tuple(notes))


def _recorded_pulls(point: Mapping[str, Any]) -> tuple[tuple[str, float, float], ...]:
    nuis = point.get("nuisances") or {}
    return tuple((str(n), float(v.get("value", float("nan"))), float(v.get("error", float("nan")))) for n, v in nuis.items()
                 if isinstance(v, Mapping))


def _combined_datasets(result: Mapping[str, Any], mgg: Mapping[str, Any] | None, models: Mapping[str, Any] | None) -> list[Any]:
    from .datasets import IMPLICIT_NAME, dataset_from_arrays
    from .trigger import trigger_from_config

    cfg = result.get("config") or {}
    sections = {d.get("name"): d for d in cfg.get("datasets") or ()}
    out = []
    for rec in result["datasets"]:
        name = str(rec["name"])
        who = f"dataset {name}: "
        section = (sections.get(name) or {}).get("inputs") or (cfg.get("inputs") if name == IMPLICIT_NAME else None) or {}
        x = (mgg or {}).get(name)
        if x is None:
            x = recorded_candidates(rec.get("inputs") or [], section, who=who)
        model = (models or {}).get(name)
        if model is None:
            model = recorded_signal_model(rec.get("signal_model"), who=who)
        out.append(dataset_from_arrays(name, x, model, luminosity_fb=float(rec["luminosity_fb"]),
                                       luminosity_rel_unc=float(rec.get("luminosity_rel_unc", 0.0)),
                                       trigger=trigger_from_config(rec.get("trigger_efficiency")), bkg_order=int(rec.get("bkg_order", 3))))
    return out


def _combined(result: Mapping[str, Any], point: Mapping[str, Any], mgg: Mapping[str, Any] | None,
              models: Mapping[str, Any] | None) -> SignificantWindow:
    from fits.impacts import impacts_of_request

    from .combined_jobs import request_of
    from .combined_plan import plan_combined

    cfg = result.get("config") or {}
    pulls = _recorded_pulls(point)
    fallback = "the post-fit nuisances recorded in the scan result are shown instead"
    datasets = _combined_datasets(result, mgg, models)
    m = float(point["mass"])
    channels = point.get("channels") or {}
    panels = []
    for ds in datasets:
        ch = channels.get(ds.name) or {}
        if ch.get("covered", True) and ch.get("n_events", 0) > 0 and "window" in ch:
            panels.append(_fit_panel(ds.name, ds.mgg, ds.signal_model.shape(m), ch["window"], int(ch.get("bkg_order", ds.bkg_order))))
    notes = ["The fit plots show each dataset's window fitted alone; the combined fit's numbers are in the table."]
    method = (cfg.get("background_model") or {}).get("method", "fixed")
    if method == "spurious_signal":
        notes.append(f"Impacts are not recomputed for the spurious_signal background model (its spurious-signal sizes come from the scan's "
                     f"smooth-background fits); {fallback}.")
        return SignificantWindow(point, tuple(panels), pulls=pulls, notes=tuple(notes))
    plan = plan_combined(datasets, cfg, unblind=True)
    i = int(np.argmin(np.abs(plan.masses - m)))
    if abs(float(plan.masses[i]) - m) > 1e-9 * max(1.0, m) or plan.status[i] != "fit":
        notes.append(f"The scan plan made again has no fitted point at {m:.6g} GeV; {fallback}.")
        return SignificantWindow(point, tuple(panels), pulls=pulls, notes=tuple(notes))
    for c, name in enumerate(plan.names):
        rec = (channels.get(name) or {}).get("window")
        if rec is not None and not np.allclose(plan.windows[i, c], rec, rtol=0.0, atol=1e-9):
            notes.append(f"Dataset {name}: the window made again {plan.windows[i, c].tolist()} differs from the recorded {rec}; {fallback}.")
            return SignificantWindow(point, tuple(panels), pulls=pulls, notes=tuple(notes))
    orders = np.array(plan.orders)
    orders[i] = [int((channels.get(n) or {}).get("bkg_order", orders[i, c])) for c, n in enumerate(plan.names)]
    plan = dataclasses.replace(plan, orders=orders)
    table = impacts_of_request(request_of(plan, [i], [ds.mgg for ds in datasets]), poi="mu")[0]
    if method == "envelope":
        notes.append("Envelope background model: the impacts are those of the background orders of the best combination.")
    if _finite(point.get("xsec_pb")) and _finite(point.get("xsec_pb_err")) and abs(table.mu_hat - point["xsec_pb"]) > 0.01 * point["xsec_pb_err"]:
        notes.append(f"The refit gives sigma = {table.mu_hat:.4g} pb, the scan recorded {point['xsec_pb']:.4g} pb.")
    return SignificantWindow(point, tuple(panels), impacts=table if len(table) else None, pulls=() if len(table) else pulls,
                             notes=tuple(notes))


def significant_window(result: Mapping[str, Any], visible: Sequence[bool], *, mgg: Any = None, signal_model: Any = None) -> SignificantWindow:
    """The refit of the most significant visible point of ``result`` (``visible[k]``: point k may show observed numbers).

    Parameters
    ----------
    result : mapping
        Scan result (one dataset or combined).
    visible : sequence of bool
        Per point, whether its observed numbers may be shown (False for blind points).
    mgg : array or mapping, optional
        Candidate masses (GeV) instead of the recorded inputs (combined: dataset name -> array).
    signal_model : SignalModel-like or mapping, optional
        Signal model instead of the recorded one (combined: dataset name -> model).
    """
    from fits.errors import FitInputError

    point = most_significant_point(result, visible)
    if point is None:
        return SignificantWindow(None, notes=("The result has no visible fitted point with a local significance.",))
    try:
        if result.get("datasets"):
            names = [d["name"] for d in result["datasets"]]
            if mgg is not None and not isinstance(mgg, Mapping) and len(names) == 1:  # one dataset's masses handed over as an array
                mgg = {names[0]: mgg}
            if signal_model is not None and not isinstance(signal_model, Mapping) and len(names) == 1:
                signal_model = {names[0]: signal_model}
            return _combined(result, point, mgg, signal_model)
        return _one_dataset(result, point, mgg, signal_model)
    except (ScanError, FitInputError, ValueError, OSError, KeyError) as exc:
        logger.warning("report: the most significant window at %.6g GeV is not refitted: %s", float(point["mass"]), exc)
        why = str(exc) if isinstance(exc, (ScanError, FitInputError)) else f"{type(exc).__name__}: {exc}"
        return SignificantWindow(point, pulls=_recorded_pulls(point),
                                 notes=(f"The candidates or the signal model could not be read, so the window is not refitted: {why}",))

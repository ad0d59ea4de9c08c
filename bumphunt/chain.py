"""Scan inputs from raw ntuples: pre-selection, kinematic fit, candidates and selector, chunk by chunk.

A scan needs one number per selected diphoton candidate, M_gg in GeV. When
the inputs are raw event ntuples (``inputs.kind: events`` in a scan
configuration) this module runs the whole event chain on them:

1. read the events chunk by chunk (``bumphunt.events.io.iterate_events``, so memory
   is bounded by ``step_size`` events, not by the size of the data set);
2. pre-select (three highest-energy photons, event and track cuts);
3. 4C kinematic fit of the three photons to the beam (optional);
4. the three diphoton candidates per event, M_gg from the fitted photons of
   converged fits;
5. the Punzi-net selector and its working point (optional).

The result is the same as running ``bumphunt preselect``, ``bumphunt kinfit``
and ``bumphunt selector apply`` by hand and cutting on the output, without
intermediate files.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .errors import InputError
from .kinematics import Beam

logger = logging.getLogger(__name__)

__all__ = ["EventChainSummary", "candidate_masses", "masses_for_scan_config"]


@dataclass
class EventChainSummary:
    """Counts of the event chain behind a scan's candidate masses.

    Attributes
    ----------
    n_events : int
        Events read.
    n_preselected : int
        Events passing the pre-selection.
    n_kinfit_failed : int
        Pre-selected events whose kinematic fit did not converge (their
        candidates use the measured photons).
    n_candidates : int
        Diphoton candidates (three per pre-selected event).
    n_selected : int
        Candidates passing the selector's working point (all candidates when
        there is no selector).
    files : list of str
        Files read, in order.
    """

    n_events: int = 0
    n_preselected: int = 0
    n_kinfit_failed: int = 0
    n_candidates: int = 0
    n_selected: int = 0
    files: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """The counts as a plain dict (JSON-ready)."""
        return {"n_events": self.n_events, "n_preselected": self.n_preselected,
                "n_kinfit_failed": self.n_kinfit_failed, "n_candidates": self.n_candidates,
                "n_selected": self.n_selected, "files": list(self.files)}


def candidate_masses(
    paths: str | Path | Iterable[str | Path],
    *,
    beam: Beam | None = None,
    tree: str | None = None,
    aliases: str | Path | Mapping[str, Any] | None = None,
    energy_unit: str | None = None,
    cuts: Any = None,
    kinematic_fit: bool = True,
    covariance_model: Any = None,
    selector: Any = None,
    working_point: float | None = None,
    step_size: int = 500_000,
) -> tuple[NDArray[np.float64], EventChainSummary]:
    """M_gg of the selected diphoton candidates of raw event ntuples.

    Parameters
    ----------
    paths : path, glob pattern or list of them
        Raw event ntuples (the toy MC format, or basf2 ntuples through
        ``aliases``).
    beam : Beam, optional
        Beams (default ``Beam.belle2()``); sets sqrt(s) for the pre-selection
        and the beam 4-momentum the photons are fitted to.
    tree, aliases, energy_unit
        Passed to ``bumphunt.events.io.iterate_events``.
    cuts : optional
        Pre-selection cuts (``PreselectionCuts``, mapping or YAML path;
        default the standard cuts).
    kinematic_fit : bool
        Fit the three photons to the beam and compute M_gg from the fitted
        photons (default True).
    covariance_model : PhotonCovarianceModel, optional
        Photon covariances for the fit (e.g. a calibration); default the
        covariances of the events.
    selector : PunziSelector or path, optional
        Selector to apply; None keeps every candidate.
    working_point : float, optional
        Cut on the selector output (candidates with output >= the working
        point are kept); default the working point stored with the selector.
    step_size : int
        Events per chunk.

    Returns
    -------
    mgg : ndarray
        M_gg of the selected candidates (GeV), in file and event order.
    summary : EventChainSummary
        Counts at each step.

    Raises
    ------
    InputError
        Unreadable inputs (from ``bumphunt.events.io``), or a working point outside
        [0, 1].
    """
    from .events import candidates as cand_mod
    from .events import io, preselection

    beam = Beam.belle2() if beam is None else beam
    if selector is not None and not hasattr(selector, "apply"):
        from .selection.core import load_selector

        selector = load_selector(str(selector))
    if selector is not None:
        if working_point is None:
            working_point = _stored_working_point(selector)
        if not 0.0 <= float(working_point) <= 1.0:
            raise InputError(f"working point {working_point!r}: expected a selector-output cut in [0, 1]")
    kinfit = None
    if kinematic_fit:
        from .kinfit import fitter as kinfit

    summary = EventChainSummary()
    parts: list[NDArray[np.float64]] = []
    for chunk in io.iterate_events(paths, tree=tree, aliases=aliases, energy_unit=energy_unit,
                                   step_size=step_size, allow_empty=True):
        for src in getattr(chunk, "files", []):
            if not summary.files or summary.files[-1] != src:
                summary.files.append(src)
        summary.n_events += len(chunk["event"])
        three, _ = preselection.preselect(chunk, beam=beam, cuts=cuts)
        n3 = len(three["E"])
        summary.n_preselected += n3
        if n3 == 0:
            continue
        if kinfit is not None:
            three = kinfit.apply_to_events(three, beam=beam, covariance_model=covariance_model)
            summary.n_kinfit_failed += int(np.count_nonzero(~three["kinfit_converged"]))
        cands = cand_mod.diphoton_candidates(three, beam=beam)
        mgg = np.asarray(cands["mgg"], dtype=np.float64)
        summary.n_candidates += len(mgg)
        if selector is not None:
            out = np.asarray(selector.apply(cands, three, beam=beam))
            mgg = mgg[out >= float(working_point)]
        summary.n_selected += len(mgg)
        parts.append(mgg)
    if summary.n_events == 0:
        raise InputError(f"{_describe(paths)}: no events to scan (every input tree is empty)")
    logger.info("event chain: %d events -> %d pre-selected (%d kinematic fits not converged) -> %d candidates -> %d selected",
                summary.n_events, summary.n_preselected, summary.n_kinfit_failed, summary.n_candidates, summary.n_selected)
    mgg_all = np.concatenate(parts) if parts else np.zeros(0)
    return mgg_all, summary


def _stored_working_point(selector: Any) -> float:
    """The working point saved with a trained selector."""
    thr = getattr(selector, "threshold", None)
    if thr is None:
        raise InputError("the selector has no stored working point: give working_point explicitly")
    return float(thr)


def _describe(paths: Any) -> str:
    if isinstance(paths, (str, Path)):
        return str(paths)
    return ", ".join(str(p) for p in paths)


def masses_for_scan_config(
    cfg: Mapping[str, Any],
    paths: Iterable[str | Path],
    *,
    base: str | Path | None = None,
) -> tuple[NDArray[np.float64], EventChainSummary]:
    """Candidate masses for a validated scan configuration with ``inputs.kind: events``.

    Parameters
    ----------
    cfg : mapping
        Scan configuration as returned by ``scans.load_scan_config`` (beam,
        ``inputs.tree``, ``aliases``/``alias_file``, ``energy_unit``,
        ``kinematic_fit``, ``selection.model`` and ``working_point``).
    paths : iterable of path
        The raw ntuples.
    base : path, optional
        Directory that relative ``alias_file`` and ``selection.model`` paths
        are relative to (the configuration file's directory; default the
        working directory).

    Returns
    -------
    mgg, summary
        As ``candidate_masses``.
    """
    base_dir = Path.cwd() if base is None else Path(base)
    inp = cfg["inputs"]
    b = cfg["beam"]
    beam = Beam(e_her=b["e_her"], e_ler=b["e_ler"], crossing_angle=b["crossing_angle"])

    def _rel(p: str | None) -> Path | None:
        if p is None:
            return None
        return Path(p) if Path(p).is_absolute() else base_dir / p

    aliases: Any = inp.get("aliases") or None
    alias_file = _rel(inp.get("alias_file"))
    if alias_file is not None:
        if aliases:
            raise InputError("inputs: give either aliases or alias_file, not both")
        if not alias_file.is_file():
            raise InputError(f"inputs.alias_file: {alias_file}: file not found")
        aliases = alias_file
    selector = _rel(inp["selection"]["model"])
    if selector is not None and not selector.exists():
        raise InputError(f"inputs.selection.model: {selector}: selector not found")
    return candidate_masses(
        [Path(p) for p in paths], beam=beam, tree=inp.get("tree"), aliases=aliases,
        energy_unit=inp.get("energy_unit"), kinematic_fit=bool(inp.get("kinematic_fit", True)),
        selector=selector, working_point=inp["selection"]["working_point"] if selector is not None else None,
    )

"""The event chain, written once: pre-selection -> 4C kinematic fit -> diphoton candidates -> selector cut.

Every caller that turns events into selected diphoton candidates goes through
this module: the scan on raw ntuples (``inputs.kind: events``), the demo,
``bumphunt signal-model build`` and the Python API. The steps:

1. read the events chunk by chunk (``bumphunt.events.iterate_events``, so
   memory is bounded by ``step_size`` events, not by the size of the data);
2. pre-select (three highest-energy photons, event and track cuts);
3. 4C kinematic fit of the three photons to the beam (optional); candidates
   of events whose fit did not converge use the measured photons;
4. the three diphoton candidates per event;
5. the Punzi-net selector: a candidate is selected when its output is at
   least the working point (optional; without a selector every candidate is
   selected).

``candidates_from_three_photon`` runs steps 3-5 on pre-selected events,
``candidates_from_events`` steps 2-5 on raw events, ``candidate_masses``
steps 1-5 over files, and ``signal_model_from_files`` builds a signal model
from signal MC files through the same steps.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .errors import InputError
from .kinematics import Beam

logger = logging.getLogger(__name__)

__all__ = [
    "ChainCandidates",
    "EventChainSummary",
    "SignalCandidates",
    "candidates_from_three_photon",
    "candidates_from_events",
    "candidate_masses",
    "masses_for_scan_config",
    "load_selector_with_working_point",
    "signal_candidates",
    "signal_model_from_files",
]


@dataclass(frozen=True)
class ChainCandidates:
    """Diphoton candidates of a batch of events after the chain.

    Attributes
    ----------
    events : dict of ndarray
        The three-photon events, with the kinematic-fit keys (``fit_E``,
        ``kinfit_converged``, ...) when the fit ran.
    candidates : dict of ndarray
        All three candidates per event (``bumphunt.events.diphoton_candidates``:
        ``mgg`` in GeV, ``truth_match``, ``mc_ma``, ``weight``, ...).
    score : ndarray or None
        Selector output per candidate (None without a selector).
    selected : ndarray of bool
        Candidates passing the working point (all True without a selector).
    n_kinfit_failed : int
        Events whose kinematic fit did not converge.
    """

    events: dict[str, NDArray]
    candidates: dict[str, NDArray]
    score: NDArray[np.float32] | None
    selected: NDArray[np.bool_]
    n_kinfit_failed: int = 0

    def selected_candidates(self) -> dict[str, NDArray]:
        """The candidate columns of the selected candidates only."""
        return {k: np.asarray(v)[self.selected] for k, v in self.candidates.items()}


@dataclass(frozen=True)
class EventChainSummary:
    """Counts of the event chain behind a set of candidate masses.

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
    files : tuple of str
        Files read, in order.
    """

    n_events: int = 0
    n_preselected: int = 0
    n_kinfit_failed: int = 0
    n_candidates: int = 0
    n_selected: int = 0
    files: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """The counts as a plain dict (JSON-ready)."""
        return {"n_events": self.n_events, "n_preselected": self.n_preselected,
                "n_kinfit_failed": self.n_kinfit_failed, "n_candidates": self.n_candidates,
                "n_selected": self.n_selected, "files": list(self.files)}


def load_selector_with_working_point(selector: Any, working_point: float | None) -> tuple[Any, float | None]:
    """A loaded selector (from a path or as given) and its working point.

    Parameters
    ----------
    selector : PunziSelector, path or None
        The selector, or the directory it was saved to.
    working_point : float, optional
        Cut on the selector output; default the working point stored with the selector.

    Raises
    ------
    InputError
        The selector cannot be loaded, has no stored working point, or the
        working point is outside [0, 1].
    """
    if selector is None:
        if working_point is not None:
            raise InputError(f"working point {working_point!r} given without a selector")
        return None, None
    if not hasattr(selector, "apply"):
        from .selection import load_selector

        try:
            selector = load_selector(str(selector))
        except InputError:
            raise
        except Exception as exc:  # noqa: BLE001 - a saved model that Keras cannot read is the user's input
            raise InputError(f"selector {selector}: cannot load it: {exc}") from None
    if working_point is None:
        working_point = getattr(selector, "threshold", None)
        if working_point is None:
            raise InputError("the selector has no stored working point: give the working point explicitly")
    if not 0.0 <= float(working_point) <= 1.0:
        raise InputError(f"working point {working_point!r}: expected a selector-output cut in [0, 1]")
    return selector, float(working_point)


def candidates_from_three_photon(
    events: Mapping[str, NDArray],
    *,
    beam: Beam,
    kinematic_fit: bool = True,
    covariance_model: Any = None,
    selector: Any = None,
    working_point: float | None = None,
) -> ChainCandidates:
    """Kinematic fit, diphoton candidates and selector cut of pre-selected three-photon events.

    Parameters
    ----------
    events : mapping
        Three-photon events (``bumphunt.events.preselect``); events that
        already carry a kinematic fit (``fit_E``) are not fitted again.
    beam : Beam
        The beams the photons are fitted to.
    kinematic_fit : bool
        Run the 4C fit and use the fitted photons (default True).
    covariance_model : PhotonCovarianceModel, optional
        Photon covariances for the fit (default those of the events).
    selector : PunziSelector, optional
        A loaded selector (``load_selector_with_working_point``); None keeps
        every candidate.
    working_point : float, optional
        Cut on the selector output (``>=``); required with a selector.
    """
    from .events.candidates import diphoton_candidates

    three = dict(events)
    n_failed = 0
    if kinematic_fit and len(three.get("E", ())) and "fit_E" not in three:
        from .kinfit import apply_to_events

        three = apply_to_events(three, beam=beam, covariance_model=covariance_model)
    if "kinfit_converged" in three:
        n_failed = int(np.count_nonzero(~np.asarray(three["kinfit_converged"], dtype=bool)))
    cands = diphoton_candidates(three, beam=beam)
    n = len(cands["mgg"])
    if selector is None or n == 0:
        return ChainCandidates(three, cands, None, np.ones(n, dtype=bool), n_failed)
    if working_point is None:
        raise InputError("a selector needs a working point (see load_selector_with_working_point)")
    score = np.asarray(selector.apply(cands, three, beam=beam))
    return ChainCandidates(three, cands, score, score >= float(working_point), n_failed)


def candidates_from_events(
    events: Mapping[str, Any],
    *,
    beam: Beam,
    cuts: Any = None,
    kinematic_fit: bool = True,
    covariance_model: Any = None,
    selector: Any = None,
    working_point: float | None = None,
) -> tuple[ChainCandidates, Any]:
    """The whole chain on raw events: pre-selection, then ``candidates_from_three_photon``.

    Parameters
    ----------
    events : Events or mapping
        Raw events (``bumphunt.events.read_events``).
    beam : Beam
        Sets sqrt(s) of the pre-selection and the four-momentum of the fit.
    cuts : PreselectionCuts, mapping or YAML path, optional
        Pre-selection cuts (default the standard ones).
    kinematic_fit, covariance_model, selector, working_point
        As ``candidates_from_three_photon``.

    Returns
    -------
    candidates : ChainCandidates
    cutflow : CutFlow
        The pre-selection cut flow of these events.
    """
    from .events import preselect

    three, cutflow = preselect(events, beam=beam, cuts=cuts)
    out = candidates_from_three_photon(three, beam=beam, kinematic_fit=kinematic_fit, covariance_model=covariance_model,
                                       selector=selector, working_point=working_point)
    return out, cutflow


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
    """M_gg of the selected diphoton candidates of raw event ntuples, read chunk by chunk.

    Parameters
    ----------
    paths : path, glob pattern or list of them
        Raw event ntuples (the toy MC format, or basf2 ntuples through ``aliases``).
    beam : Beam, optional
        Beams (default ``Beam.belle2()``).
    tree, aliases, energy_unit
        Passed to ``bumphunt.events.iterate_events``.
    cuts : optional
        Pre-selection cuts (``PreselectionCuts``, mapping or YAML path).
    kinematic_fit : bool
        Fit the three photons to the beam; M_gg from the fitted photons (default True).
    covariance_model : PhotonCovarianceModel, optional
        Photon covariances for the fit.
    selector : PunziSelector or path, optional
        Selector to apply; None keeps every candidate.
    working_point : float, optional
        Cut on the selector output (``>=``); default the selector's stored working point.
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
        Unreadable inputs, a selector that cannot be loaded, or a working point outside [0, 1].
    """
    from .events import iterate_events

    beam = Beam.belle2() if beam is None else beam
    selector, working_point = load_selector_with_working_point(selector, working_point)
    counts = dict(n_events=0, n_preselected=0, n_kinfit_failed=0, n_candidates=0, n_selected=0)
    files: list[str] = []
    parts: list[NDArray[np.float64]] = []
    for chunk in iterate_events(paths, tree=tree, aliases=aliases, energy_unit=energy_unit, step_size=step_size, allow_empty=True):
        for src in getattr(chunk, "files", []):
            if not files or files[-1] != src:
                files.append(src)
        counts["n_events"] += len(chunk["event"])
        out, _ = candidates_from_events(chunk, beam=beam, cuts=cuts, kinematic_fit=kinematic_fit,
                                        covariance_model=covariance_model, selector=selector, working_point=working_point)
        counts["n_preselected"] += len(out.events["E"])
        counts["n_kinfit_failed"] += out.n_kinfit_failed
        mgg = np.asarray(out.candidates["mgg"], dtype=np.float64)
        counts["n_candidates"] += len(mgg)
        mgg = mgg[out.selected]
        counts["n_selected"] += len(mgg)
        parts.append(mgg)
    summary = EventChainSummary(**counts, files=tuple(files))
    if summary.n_events == 0:
        raise InputError(f"{_describe(paths)}: no events to scan (every input tree is empty)")
    logger.info("event chain: %d events -> %d pre-selected (%d kinematic fits not converged) -> %d candidates -> %d selected",
                summary.n_events, summary.n_preselected, summary.n_kinfit_failed, summary.n_candidates, summary.n_selected)
    return (np.concatenate(parts) if parts else np.zeros(0)), summary


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
        Scan configuration as returned by ``scans.load_scan_config`` (beam, or ``beam.collider``: the
        preset's beams, pre-selection cuts and ntuple energy unit,
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
    preset = None
    if b.get("collider") is not None:  # a collider preset: its beams, pre-selection cuts and ntuple energy unit
        from .colliders import collider

        preset = collider(b["collider"])
        beam = preset.beam
    else:
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
    energy_unit = inp.get("energy_unit") or (preset.ntuple_energy_unit if preset is not None else None)
    return candidate_masses(
        [Path(p) for p in paths], beam=beam, tree=inp.get("tree"), aliases=aliases, energy_unit=energy_unit,
        cuts=preset.preselection_cuts() if preset is not None else None, kinematic_fit=bool(inp.get("kinematic_fit", True)),
        selector=selector, working_point=inp["selection"]["working_point"] if selector is not None else None,
    )


# --------------------------------------------------------------------------- signal MC -> signal model


@dataclass(frozen=True)
class SignalCandidates:
    """Selected candidates of signal MC files, with what the signal model needs to know about them.

    Attributes
    ----------
    candidates : dict of ndarray
        Selected candidates (``mgg`` GeV, ``truth_match``, ``mc_ma`` GeV, ``weight``).
    n_generated : dict
        Generated ALP mass (GeV, rounded to 1e-6) -> events generated (the efficiency denominator).
    selection : dict
        How the candidates were selected (inputs, kinematic fit, selector, working point),
        recorded in the signal-model file.
    """

    candidates: dict[str, NDArray]
    n_generated: dict[float, int]
    selection: dict[str, Any] = field(default_factory=dict)


def signal_candidates(
    paths: Sequence[str | Path],
    *,
    beam: Beam | None = None,
    kinematic_fit: bool = True,
    selector: Any = None,
    working_point: float | None = None,
) -> SignalCandidates:
    """Selected diphoton candidates of signal MC files (raw ntuples or three-photon files).

    The files' metadata give the events generated per mass (``n_generated``).
    Only signal events (process 0) are used.

    Raises
    ------
    InputError
        Unreadable files, no signal events, a signal file without ``n_generated``,
        or a selector that cannot be loaded.
    """
    from .selection import load_samples

    beam = Beam.belle2() if beam is None else beam
    events, n_gen, _ = load_samples([str(p) for p in paths], beam=beam)
    proc = np.asarray(events.get("process", np.zeros(0)))
    signal = proc == 0
    if not signal.any():
        raise InputError(f"no signal events (process 0) in {[str(p) for p in paths]}")
    n = len(proc)
    events = {k: (np.asarray(v)[signal] if np.ndim(v) and len(v) == n else v) for k, v in events.items()}
    loaded, wp = load_selector_with_working_point(selector, working_point)
    out = candidates_from_three_photon(events, beam=beam, kinematic_fit=kinematic_fit, selector=loaded, working_point=wp)
    described: dict[str, Any] = {"inputs": [str(p) for p in paths], "kinematic_fit": "fit_E" in out.events}
    if loaded is not None:
        described.update({"selector": str(selector) if isinstance(selector, (str, Path)) else getattr(selector, "path", "in memory"),
                          "working_point": wp, "score": "punzi_net"})
    else:
        described["selector"] = None
    n_generated = {round(float(k), 6): int(v) for k, v in n_gen.items()}
    return SignalCandidates(out.selected_candidates(), n_generated, described)


def signal_model_from_files(
    paths: Sequence[str | Path],
    *,
    beam: Beam | None = None,
    kinematic_fit: bool = True,
    selector: Any = None,
    working_point: float | None = None,
    **build_options: Any,
) -> Any:
    """Signal model (DSCB + Chebyshev per generated mass, interpolated) from signal MC files.

    The candidates come from ``signal_candidates``; the model from
    ``signal_models.build_signal_model`` with ``build_options`` (``holdout``,
    ``n_fixed``, ``fixed_values``, ``half_width``, ``min_events``,
    ``n_prepass``, ``progress`` ...). ``bumphunt signal-model build``, the
    demo and analysis scripts all build their models here.

    Returns
    -------
    SignalModel
    """
    from signal_models import build_signal_model

    sig = signal_candidates(paths, beam=beam, kinematic_fit=kinematic_fit, selector=selector, working_point=working_point)
    c = sig.candidates
    return build_signal_model(
        np.asarray(c["mgg"], dtype=float), np.asarray(c["truth_match"], dtype=bool),
        np.round(np.asarray(c["mc_ma"], dtype=float), 6), n_generated=sig.n_generated,
        weights=np.asarray(c["weight"], dtype=float), selection=sig.selection, event_ids=np.asarray(c["event_index"]), **build_options,
    )

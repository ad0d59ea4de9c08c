"""Pre-selection of e+e- -> 3 photon events and the cut flow.

The cuts follow the Belle II search for e+e- -> gamma a, a -> gamma gamma
(see ``shared/reference/physics.md``):

Photon candidates (clusters)
    E > 0.1 GeV; polar angle inside the CDC acceptance (17 deg < theta <
    150 deg, i.e. 0.2967 < theta < 2.618 rad); |cluster time| < 200 ns.

Photon multiplicity ("event multiplicity three")
    With ``multiplicity="exactly"`` (default, as in the Belle II analysis)
    an event is kept only if exactly three clusters pass the photon cuts.
    With ``multiplicity="at_least"`` events with three or more passing
    clusters are kept and the three most energetic are used. Either way, the
    three kept photons are sorted by energy, highest first.

Event
    0.8 sqrt(s) < M_ggg < 1.05 sqrt(s) with sqrt(s) of the beam; the three
    clusters are simultaneous (max - min of their times below
    ``time_spread_max``); no good track (|dr| < 1 cm, |dz| < 3 cm and polar
    angle inside the CDC acceptance). The default time-spread cut, 20 ns, is
    many times the cluster-time resolution of photons above 0.1 GeV (a few ns)
    while beam-background clusters are spread over hundreds of ns.

Truth
    ``truth_a1``, ``truth_a2``, ``truth_recoil`` are the positions (0..2)
    among the three kept photons of the clusters named by ``mc_idx_a1``,
    ``mc_idx_a2``, ``mc_idx_recoil``; where those are -1 or absent, the
    clusters' ``mc_origin`` (1, 2: ALP or meson daughters, 0: recoil photon)
    is used, so that P -> gamma gamma backgrounds (pi0 g, eta g, ...) are
    truth-matched too. -1: not among the kept photons.

The implementation works on flat numpy arrays with per-event offsets (no
Python loop over events; per-photon quantities of the three kept photons are
handled column by column, and the three are sorted with a three-element
sorting network). Chunks of more than ``2 * PARALLEL_MIN_EVENTS`` events are
split into event ranges pre-selected in parallel threads (numpy releases the
GIL); the cut flow is computed once over the whole chunk, so results do not
depend on the split. ``preselect`` returns the three-photon dict of the
data contract and a ``CutFlow`` with counts and weighted yields per cut and
per process (``cutflow``). ``preselect_files`` pre-selects whole files and
writes the three-photon events (``three_photon``) and the cut flows.

The cut values are in ``cuts``, the cut flow in ``cutflow``, the
three-photon files in ``three_photon``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError, SchemaError
from ..kinematics import Beam
from .cutflow import CutFlow
from .cuts import PreselectionCuts
from .detector import Resolution
from .files import expand_paths
from .jagged import flat_record
from .reader import iterate_events
from .schema import COV_FIELDS
from .threads import WORKER_THREADS
from .three_photon import PHOTON_KEYS, TRUTH_PHOTON_KEYS, combine_three_photon, save_three_photon

logger = logging.getLogger(__name__)

__all__ = [
    "preselect",
    "preselect_files",
    "PreselectedFile",
    "NEEDED_FIELDS",
    "PARALLEL_MIN_EVENTS",
]

#: Schema names the pre-selection reads (pass as ``fields=`` to ``bumphunt.events.read_events``).
NEEDED_FIELDS: tuple[str, ...] = (
    "event", "process", "weight", "mc_ma", "mc_idx_a1", "mc_idx_a2", "mc_idx_recoil",
    "gamma_E", "gamma_theta", "gamma_phi", "gamma_time", "gamma_region",
    *(f"gamma_{name}" for name, _, _ in COV_FIELDS),
    "gamma_mc_E", "gamma_mc_theta", "gamma_mc_phi", "gamma_mc_origin",
    "track_px", "track_py", "track_pz", "track_dr", "track_dz",
)


def _segment_sum(mask: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Number of True entries of ``mask`` in each segment ``offsets[i]:offsets[i+1]``."""
    cs = np.zeros(len(mask) + 1, dtype=np.int64)
    np.cumsum(mask, out=cs[1:])
    return cs[offsets[1:]] - cs[offsets[:-1]]


def _beam_from(events: Mapping[str, Any], beam: Beam | None) -> Beam:
    if beam is not None:
        return beam
    meta = getattr(events, "sample", {}) or {}
    if isinstance(meta.get("beam"), Mapping):
        try:
            return Beam(**meta["beam"])
        except TypeError:
            pass
    logger.info("no beam given and none in the sample metadata: using Beam.belle2()")
    return Beam.belle2()


def preselect(
    events: Mapping[str, Any],
    *,
    beam: Beam | None = None,
    cuts: PreselectionCuts | Mapping[str, Any] | str | Path | None = None,
    resolution: Resolution | None = None,
) -> tuple[dict[str, np.ndarray], CutFlow]:
    """Apply the pre-selection to raw events.

    Parameters
    ----------
    events : Events or mapping
        Raw events (``bumphunt.events.read_events``): event-level arrays
        ``event``, ``process``, ``weight`` (``mc_ma``, ``mc_idx_*`` optional)
        and jagged records ``gamma`` and ``track``.
    beam : Beam, optional
        Beams; sqrt(s) sets the M_ggg window. Default: the ``beam`` of the
        sample metadata, else ``Beam.belle2()``.
    cuts : PreselectionCuts, mapping, YAML path or None
        Cut values (default ``PreselectionCuts()``).
    resolution : Resolution, optional
        Used for the photon covariance when the ntuple has no cov branches.

    Returns
    -------
    three_photon : dict of numpy arrays
        The three-photon events of the data contract (photons sorted by
        energy, highest first).
    cutflow : CutFlow
    """
    if not isinstance(cuts, PreselectionCuts):
        cuts = PreselectionCuts.from_config(cuts)
    beam = _beam_from(events, beam)
    resolution = resolution or Resolution()
    for key in ("gamma", "track", "process", "weight"):
        if key not in events:
            raise InputError(f"preselect: events have no {key!r} (keys: {sorted(events)})")

    n = len(events["gamma"])
    process = np.asarray(events["process"])
    weight = np.asarray(events["weight"], dtype=float)
    if cuts.veto_good_tracks and len(events["track"]) != n:
        raise SchemaError(f"preselect: 'track' has {len(events['track'])} events, 'gamma' has {n}")
    parts = _partition(n)
    if len(parts) == 1:
        out, masks = _select(events, 0, n, beam=beam, cuts=cuts, resolution=resolution)
    else:
        # event ranges in parallel threads (numpy releases the GIL in the array operations)
        pool = WORKER_THREADS.preselection()
        results = list(pool.map(lambda ab: _select(events, *ab, beam=beam, cuts=cuts, resolution=resolution), parts))
        masks = [np.concatenate([r[1][k] for r in results]) for k in range(len(results[0][1]))]
        out = {key: np.concatenate([r[0][key] for r in results]) for key in results[0][0]}
    names = ["all", "photon_multiplicity", "mggg_window", "time_spread", "no_good_track"]
    cutflow = CutFlow.from_masks(names, [np.ones(n, dtype=bool), *masks], process, weight)
    logger.info("pre-selection: %d of %d events kept", len(out["event"]), n)
    return out, cutflow


#: Events per part when a large chunk is pre-selected in parallel threads.
PARALLEL_MIN_EVENTS = 100_000


def _partition(n: int) -> list[tuple[int, int]]:
    """Event ranges for parallel pre-selection: one per core, each at least ``PARALLEL_MIN_EVENTS``."""
    k = max(1, min(os.cpu_count() or 1, n // PARALLEL_MIN_EVENTS))
    bounds = [n * i // k for i in range(k + 1)]
    return list(zip(bounds[:-1], bounds[1:]))


def _select(events: Mapping[str, Any], lo: int, hi: int, *, beam: Beam, cuts: PreselectionCuts,
            resolution: Resolution) -> tuple[dict[str, np.ndarray], list[np.ndarray]]:
    """Pre-select events ``lo:hi``: the three-photon dict and the nested masks of the four cuts."""
    whole = lo == 0 and hi == len(events["gamma"])

    def part(key: str) -> Any:
        value = events[key]
        return value if whole else value[lo:hi]

    g_off, g = flat_record(part("gamma"))
    for key in PHOTON_KEYS:
        if key not in g:
            raise SchemaError(f"preselect: photon field {key!r} missing from events['gamma'] (fields: {sorted(g)})")
    n = len(g_off) - 1
    process = np.asarray(part("process"))
    weight = np.asarray(part("weight"), dtype=float)
    counts = np.diff(g_off)

    # photon candidates: one pass per cut over the flat cluster arrays
    E, theta, t = g["E"], g["theta"], g["time"]
    passing = E > cuts.photon_e_min
    passing &= theta > cuts.photon_theta_min
    passing &= theta < cuts.photon_theta_max
    passing &= t < cuts.photon_time_max
    passing &= t > -cuts.photon_time_max
    # rank of each event's first passing cluster among all passing clusters (cumulative sum; int32 while it fits)
    rank = np.empty(len(passing) + 1, dtype=np.int32 if len(passing) < 2**31 - 1 else np.int64)
    rank[0] = 0
    np.cumsum(passing, out=rank[1:])
    first_rank = rank[g_off]
    n_pass = np.diff(first_rank)
    m_mult = n_pass == 3 if cuts.multiplicity == "exactly" else n_pass >= 3

    # flat indices of the three kept photons per event (columns i0, i1, i2), then sorted by energy
    sel_ev = np.flatnonzero(m_mult)
    if cuts.multiplicity == "exactly":
        passing_idx = np.flatnonzero(passing)
        r = first_rank[sel_ev].astype(np.int64)
        cols = [passing_idx[r], passing_idx[r + 1], passing_idx[r + 2]]
    else:
        # sort passing clusters by (event, -E); take the first three of each event
        cand = np.flatnonzero(passing & np.repeat(m_mult, counts))
        cand_ev = np.searchsorted(g_off, cand, side="right") - 1
        order = np.lexsort((-E[cand], cand_ev))
        cand = cand[order]
        first = np.searchsorted(cand_ev[order], sel_ev)
        cols = [cand[first + k] for k in range(3)]
    energies = [E[c] for c in cols]
    # stable descending sort of three values: a bubble sort network with strict comparisons
    for a, b in ((0, 1), (1, 2), (0, 1)):
        swap = energies[b] > energies[a]
        energies[a], energies[b] = np.where(swap, energies[b], energies[a]), np.where(swap, energies[a], energies[b])
        cols[a], cols[b] = np.where(swap, cols[b], cols[a]), np.where(swap, cols[a], cols[b])

    # event cuts on the pre-selected photons (column by column: no reductions along a length-3 axis).
    # Massless photons: M^2 = sum_{i<j} 2 E_i E_j (1 - cos psi_ij) with
    # cos psi_ij = sin th_i sin th_j cos(phi_i - phi_j) + cos th_i cos th_j: 6 calls of cos (numpy's
    # float64 sin/cos are the costliest operations here) instead of 12, and no cancellation
    # between (sum E)^2 and |sum p|^2; sin th = sqrt((1 - cos th)(1 + cos th)) >= 0 for th in [0, pi].
    phi = g["phi"]
    cos_th = [np.cos(theta[c]) for c in cols]
    sin_th = [np.sqrt((1.0 - ct) * (1.0 + ct)) for ct in cos_th]
    phis = [phi[c] for c in cols]
    m2 = np.zeros(len(sel_ev))
    for a, b in ((0, 1), (0, 2), (1, 2)):
        cos_psi = sin_th[a] * sin_th[b] * np.cos(phis[a] - phis[b]) + cos_th[a] * cos_th[b]
        m2 += 2.0 * energies[a] * energies[b] * (1.0 - cos_psi)
    mggg = np.sqrt(np.clip(m2, 0.0, None))
    sqrt_s = beam.sqrt_s
    ok_mass = (mggg > cuts.mggg_min * sqrt_s) & (mggg < cuts.mggg_max * sqrt_s)
    t0, t1, t2 = (t[c] for c in cols)
    ok_time = (np.maximum(np.maximum(t0, t1), t2) - np.minimum(np.minimum(t0, t1), t2)) < cuts.time_spread_max

    m_mass = np.zeros(n, dtype=bool)
    m_mass[sel_ev[ok_mass]] = True
    m_time = np.zeros(n, dtype=bool)
    m_time[sel_ev[ok_mass & ok_time]] = True

    if cuts.veto_good_tracks:
        t_off, trk = flat_record(part("track"))
        th_trk = np.arctan2(np.hypot(trk["px"], trk["py"]), trk["pz"])
        good = (np.abs(trk["dr"]) < cuts.track_dr_max) & (np.abs(trk["dz"]) < cuts.track_dz_max)
        good &= (th_trk > cuts.track_theta_min) & (th_trk < cuts.track_theta_max)
        m_final = m_time & (_segment_sum(good, t_off) == 0)
    else:
        m_final = m_time

    keep = m_final[sel_ev]
    cols = [c[keep] for c in cols]
    idx = np.stack(cols, axis=1)
    rows = sel_ev[keep]
    out: dict[str, np.ndarray] = {}
    for key in PHOTON_KEYS:
        out[key] = g[key][idx]  # (E, theta, phi, time, region) of the kept photons
    out["region"] = out["region"].astype(np.int32, copy=False)
    out["cov"] = _covariance(g, idx, resolution)
    if all(k in g for k in TRUTH_PHOTON_KEYS):
        for key in TRUTH_PHOTON_KEYS:
            out[key] = g[key][idx]
    out["event"] = np.asarray(part("event"))[rows] if "event" in events else (rows + lo).astype(np.int64)
    out["process"] = process[rows].astype(np.int32)
    out["weight"] = weight[rows]
    out["mc_ma"] = np.asarray(part("mc_ma"), dtype=float)[rows] if "mc_ma" in events else np.full(len(rows), -1.0)
    start_of = g_off[rows]
    local = [c - start_of for c in cols]  # positions of the kept photons in their event's cluster list
    origin = [g["mc_origin"][c] for c in cols] if "mc_origin" in g else None
    for src, dst, code in (("mc_idx_a1", "truth_a1", 1), ("mc_idx_a2", "truth_a2", 2), ("mc_idx_recoil", "truth_recoil", 0)):
        pos = np.full(len(rows), -1, dtype=np.int32)
        if src in events:
            true_idx = np.asarray(part(src))[rows]
            for k in (2, 1, 0):  # the first matching position wins
                pos[(local[k] == true_idx) & (true_idx >= 0)] = k
        if origin is not None:
            # backgrounds with a decaying meson (P -> gamma gamma) flag their photons by mc_origin only
            hits = [o == code for o in origin]
            from_origin = np.where(hits[0], 0, np.where(hits[1], 1, 2)).astype(np.int32)
            unique = (hits[0].astype(np.int8) + hits[1] + hits[2]) == 1
            pos = np.where((pos < 0) & unique, from_origin, pos)
        out[dst] = pos
    return out, [m_mult, m_mass, m_time, m_final]


def _covariance(g: Mapping[str, np.ndarray], idx: np.ndarray, resolution: Resolution) -> np.ndarray:
    """(n, 3, 3, 3) photon covariances: from the cov branches when present, else from ``resolution``."""
    if all(name in g for name in ("cov_EE", "cov_thetatheta", "cov_phiphi")):
        cov = np.empty(idx.shape + (3, 3))
        flat = cov.reshape(-1, 9)
        pick = idx.reshape(-1)
        # filled block by block so that each block of the (9-column) output stays in cache
        block = 16384
        for lo in range(0, len(pick), block):
            rows_ = flat[lo:lo + block]
            p = pick[lo:lo + block]
            for name, a, b in COV_FIELDS:
                rows_[:, 3 * a + b] = g[name][p] if name in g else 0.0
                if a != b:
                    rows_[:, 3 * b + a] = rows_[:, 3 * a + b]
        return cov
    return resolution.covariance(g["E"][idx], g["region"][idx])


# --------------------------------------------------------------------------- whole files


@dataclass(frozen=True)
class PreselectedFile:
    """What ``preselect_files`` wrote for one input file.

    Attributes
    ----------
    events : Path
        The three-photon events (``<name>_3g.root``, ``save_three_photon``).
    cutflow_md, cutflow_json : Path
        The cut flow as markdown and JSON.
    cutflow : CutFlow
    n_selected : int
        Events kept.
    source : Path
        The input file.

    Notes
    -----
    ``result["events"]`` etc. still work (transitional, for callers written
    for the former dict); new code uses the attributes.
    """

    events: Path
    cutflow_md: Path
    cutflow_json: Path
    cutflow: CutFlow
    n_selected: int
    source: Path


def preselect_files(
    inputs: str | Path | Iterable[str | Path],
    out_dir: str | Path,
    *,
    cuts: PreselectionCuts | Mapping[str, Any] | str | Path | None = None,
    beam: Beam | None = None,
    aliases: str | Path | Mapping[str, Any] | None = None,
    energy_unit: str | None = None,
    tree: str | None = None,
    step_size: int = 250_000,
    allow_empty: bool = False,
    show_progress: bool | None = None,
) -> dict[str, PreselectedFile]:
    """Pre-select every input file (one sample per file) and write the results.

    For an input ``<name>.root`` writes ``<out_dir>/<name>_3g.root`` (the
    three-photon events, ``save_three_photon``), ``<name>_cutflow.md`` and
    ``<name>_cutflow.json``. Files are read chunk by chunk (``step_size``
    events), only the branches the pre-selection needs.

    Parameters
    ----------
    inputs : path, glob pattern or list of them
        Input ntuples.
    out_dir : path
        Output folder (created).
    cuts, beam
        As for ``preselect``.
    aliases, energy_unit, tree, step_size, allow_empty
        As for ``bumphunt.events.iterate_events``; empty files skipped with
        ``allow_empty`` get no entry.
    show_progress : bool, optional
        Progress bar over the files (default: when on a terminal).

    Returns
    -------
    dict of str to PreselectedFile
        Per input name (``<name>``, prefixed by its index when names repeat).
    """
    from signal_models._common.progress import progress

    if not isinstance(cuts, PreselectionCuts):
        cuts = PreselectionCuts.from_config(cuts)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = expand_paths(inputs)
    stems = [p.name[: -len(".root")] if p.name.endswith(".root") else p.name for p in paths]
    if len(set(stems)) != len(stems):
        stems = [f"{i:03d}_{s}" for i, s in enumerate(stems)]
    results: dict[str, PreselectedFile] = {}
    for path, stem in progress(list(zip(paths, stems)), description="pre-selection", show=show_progress):
        parts: list[dict[str, np.ndarray]] = []
        flow: CutFlow | None = None
        meta: dict[str, Any] = {}
        for chunk in iterate_events(path, tree=tree, aliases=aliases, energy_unit=energy_unit, step_size=step_size,
                                    fields=NEEDED_FIELDS, allow_empty=allow_empty):
            meta = dict(chunk.sample)
            sel, cf = preselect(chunk, beam=beam, cuts=cuts)
            parts.append(sel)
            flow = cf if flow is None else flow + cf
        if flow is None:  # empty file skipped
            continue
        selected = combine_three_photon(parts)
        meta.update({"source": str(path), "preselection": cuts.to_dict(), "cutflow": flow.to_dict()})
        events_path = save_three_photon(out_dir / f"{stem}_3g.root", selected, meta=meta)
        cutflow_md = out_dir / f"{stem}_cutflow.md"
        cutflow_json = flow.to_json(out_dir / f"{stem}_cutflow.json")
        cutflow_md.write_text(f"# Pre-selection cut flow: {path.name}\n\n" + flow.to_markdown())
        result = PreselectedFile(events=events_path, cutflow_md=cutflow_md, cutflow_json=cutflow_json, cutflow=flow,
                                 n_selected=int(len(selected["event"])), source=path)
        logger.info("%s: %d events selected -> %s", path, result.n_selected, result.events)
        results[stem] = result
    return results

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
per process. ``save_three_photon`` / ``load_three_photon`` write and read
that dict as a ROOT file the io reader understands.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from .detector import CDC_THETA_MAX, CDC_THETA_MIN, Resolution
from ..errors import InputError, SchemaError
from ..kinematics import Beam
from .schema import COV_FIELDS, PROCESS_NAMES, TREE_NAME

logger = logging.getLogger(__name__)

__all__ = [
    "PreselectionCuts",
    "CutFlow",
    "preselect",
    "save_three_photon",
    "load_three_photon",
    "PRESELECTION_SCHEMA",
    "NEEDED_FIELDS",
    "PHOTON_KEYS",
]

#: Per-photon keys of the three-photon dict (arrays of shape (n, 3)).
PHOTON_KEYS = ("E", "theta", "phi", "time", "region")
TRUTH_PHOTON_KEYS = ("mc_E", "mc_theta", "mc_phi")

#: Schema names the pre-selection reads (pass as ``fields=`` to ``bumphunt.events.io.read_events``).
NEEDED_FIELDS: tuple[str, ...] = (
    "event", "process", "weight", "mc_ma", "mc_idx_a1", "mc_idx_a2", "mc_idx_recoil",
    "gamma_E", "gamma_theta", "gamma_phi", "gamma_time", "gamma_region",
    *(f"gamma_{name}" for name, _, _ in COV_FIELDS),
    "gamma_mc_E", "gamma_mc_theta", "gamma_mc_phi", "gamma_mc_origin",
    "track_px", "track_py", "track_pz", "track_dr", "track_dz",
)


@dataclass(frozen=True)
class PreselectionCuts:
    """Pre-selection cut values (GeV, rad, ns, cm).

    Parameters
    ----------
    photon_e_min : float
        Minimum cluster energy (GeV).
    photon_theta_min, photon_theta_max : float
        Polar-angle acceptance of photon candidates (rad), CDC acceptance.
    photon_time_max : float
        Maximum |cluster time| (ns).
    multiplicity : {"exactly", "at_least"}
        Keep events with exactly three passing photon candidates (Belle II),
        or with at least three (then the three most energetic are kept).
    mggg_min, mggg_max : float
        Window on the three-photon mass as fractions of sqrt(s).
    time_spread_max : float
        Maximum spread (max - min) of the three cluster times (ns).
    veto_good_tracks : bool
        Reject events with a good track.
    track_dr_max, track_dz_max : float
        Good track: |dr| < track_dr_max and |dz| < track_dz_max (cm).
    track_theta_min, track_theta_max : float
        Good track: polar angle of its momentum inside this range (rad).
    """

    photon_e_min: float = 0.1
    photon_theta_min: float = float(CDC_THETA_MIN)
    photon_theta_max: float = float(CDC_THETA_MAX)
    photon_time_max: float = 200.0
    multiplicity: str = "exactly"
    mggg_min: float = 0.8
    mggg_max: float = 1.05
    time_spread_max: float = 20.0
    veto_good_tracks: bool = True
    track_dr_max: float = 1.0
    track_dz_max: float = 3.0
    track_theta_min: float = float(CDC_THETA_MIN)
    track_theta_max: float = float(CDC_THETA_MAX)

    def __post_init__(self) -> None:
        if self.multiplicity not in ("exactly", "at_least"):
            raise ValueError(f"multiplicity must be 'exactly' or 'at_least', got {self.multiplicity!r}")
        if not self.mggg_min < self.mggg_max:
            raise ValueError(f"mggg_min ({self.mggg_min}) must be below mggg_max ({self.mggg_max})")
        if not self.photon_theta_min < self.photon_theta_max:
            raise ValueError("photon_theta_min must be below photon_theta_max")

    @classmethod
    def from_config(cls, config: str | Path | Mapping[str, Any] | None) -> "PreselectionCuts":
        """Cuts from a YAML file or mapping (keys = field names; missing keys take the defaults).

        Accepts the keys at the top level or under a ``preselection:`` section.
        """
        from signal_models._common.config import load_config

        if isinstance(config, (str, Path)):
            import yaml

            from ..errors import ConfigError

            path = Path(config)
            if not path.is_file():
                raise ConfigError(f"{path}: configuration file not found")
            try:
                raw = yaml.safe_load(path.read_text()) or {}
            except yaml.YAMLError as exc:
                raise ConfigError(f"{path}: not valid YAML: {exc}") from None
            source = str(path)
        else:
            raw = dict(config or {})
            source = "preselection config"
        if isinstance(raw, Mapping) and "preselection" in raw and isinstance(raw["preselection"], Mapping):
            raw = raw["preselection"]
        cfg = load_config(raw, PRESELECTION_SCHEMA, source=source)
        return cls(**cfg)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _schema() -> dict[str, Any]:
    props: dict[str, Any] = {}
    for f in fields(PreselectionCuts):
        default = f.default
        if isinstance(default, bool):
            props[f.name] = {"type": "boolean", "default": default}
        elif isinstance(default, str):
            props[f.name] = {"enum": ["exactly", "at_least"], "default": default}
        else:
            props[f.name] = {"type": "number", "minimum": 0, "default": default}
    return {"type": "object", "additionalProperties": False, "properties": props}


#: JSON schema of the pre-selection config (YAML keys = ``PreselectionCuts`` fields).
PRESELECTION_SCHEMA: dict[str, Any] = _schema()


# --------------------------------------------------------------------------- cut flow


CUT_DESCRIPTIONS: dict[str, str] = {
    "all": "all events",
    "photon_multiplicity": "three photon candidates (E, theta, time cuts)",
    "mggg_window": "M_ggg window (fraction of sqrt(s))",
    "time_spread": "clusters simultaneous (time spread)",
    "no_good_track": "no good track",
}


@dataclass
class CutFlow:
    """Event counts and weighted yields after each cut, per process.

    ``counts[c, p]`` is the number of events of process ``processes[p]``
    passing cuts ``0..c``; ``yields`` the sum of their weights (events at the
    sample luminosity) and ``sumw2`` the sum of squared weights.
    """

    cuts: list[str]
    processes: list[str]
    counts: np.ndarray
    yields: np.ndarray
    sumw2: np.ndarray
    descriptions: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.counts = np.asarray(self.counts, dtype=np.int64).reshape(len(self.cuts), len(self.processes))
        self.yields = np.asarray(self.yields, dtype=float).reshape(self.counts.shape)
        self.sumw2 = np.asarray(self.sumw2, dtype=float).reshape(self.counts.shape)
        if not self.descriptions:
            self.descriptions = [CUT_DESCRIPTIONS.get(c, c) for c in self.cuts]

    @classmethod
    def from_masks(cls, cuts: list[str], masks: list[np.ndarray], process: np.ndarray, weight: np.ndarray) -> "CutFlow":
        """Build from cumulative (nested) boolean masks, one per cut, over all events."""
        process = np.asarray(process)
        weight = np.asarray(weight, dtype=float)
        if process.size and process.min() >= 0 and process.max() < 4096:
            codes = np.flatnonzero(np.bincount(process))
            lookup = np.zeros(int(process.max()) + 1, dtype=np.int64)
            lookup[codes] = np.arange(len(codes))
            inv = lookup[process]
        else:
            codes, inv = np.unique(process, return_inverse=True)
        names = [PROCESS_NAMES.get(int(c), str(int(c))) for c in codes]
        k, nc = len(codes), len(cuts)
        # number of cuts passed by each event (the masks are nested), then one histogram over (level, process)
        level = np.zeros(process.shape, dtype=np.int64)
        for m in masks:
            level += m
        key = level * k + inv
        size = (nc + 1) * k
        per_level = [np.bincount(key, weights=w, minlength=size).reshape(nc + 1, k) for w in (None, weight, weight * weight)]
        # events passing cut c = events whose level is above c
        counts, yields, sumw2 = (np.cumsum(h[::-1], axis=0)[::-1][1:] for h in per_level)
        return cls(list(cuts), names, np.rint(counts).astype(np.int64), yields, sumw2)

    def __add__(self, other: "CutFlow") -> "CutFlow":
        """Combine two cut flows (e.g. chunks or files); processes are merged."""
        if list(self.cuts) != list(other.cuts):
            raise ValueError(f"cannot add cut flows with different cuts: {self.cuts} vs {other.cuts}")
        procs = list(self.processes) + [p for p in other.processes if p not in self.processes]
        shape = (len(self.cuts), len(procs))
        out = [np.zeros(shape, dtype=np.int64), np.zeros(shape), np.zeros(shape)]
        for cf in (self, other):
            idx = [procs.index(p) for p in cf.processes]
            out[0][:, idx] += cf.counts
            out[1][:, idx] += cf.yields
            out[2][:, idx] += cf.sumw2
        return CutFlow(list(self.cuts), procs, *out, descriptions=list(self.descriptions))

    def count(self, cut: str, process: str | None = None) -> int:
        """Events passing up to ``cut`` (all processes if ``process`` is None)."""
        c = self.cuts.index(cut)
        return int(self.counts[c].sum() if process is None else self.counts[c, self.processes.index(process)])

    def yield_(self, cut: str, process: str | None = None) -> float:
        """Weighted yield passing up to ``cut``."""
        c = self.cuts.index(cut)
        return float(self.yields[c].sum() if process is None else self.yields[c, self.processes.index(process)])

    def efficiency(self) -> np.ndarray:
        """Cumulative efficiency (counts / all events), shape (n_cuts, n_processes)."""
        return np.divide(self.counts, self.counts[:1], out=np.zeros(self.counts.shape), where=self.counts[:1] > 0)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: per cut, per process: count, yield, yield error, cumulative efficiency."""
        eff = self.efficiency()
        rows = []
        for c, cut in enumerate(self.cuts):
            rows.append({
                "cut": cut,
                "description": self.descriptions[c],
                "processes": {
                    p: {"count": int(self.counts[c, i]), "yield": float(self.yields[c, i]),
                        "yield_err": float(np.sqrt(self.sumw2[c, i])), "efficiency": float(eff[c, i])}
                    for i, p in enumerate(self.processes)
                },
            })
        return {"cuts": list(self.cuts), "processes": list(self.processes), "rows": rows}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "CutFlow":
        cuts = list(data["cuts"])
        procs = list(data["processes"])
        rows = {r["cut"]: r for r in data["rows"]}
        counts = [[rows[c]["processes"][p]["count"] for p in procs] for c in cuts]
        yields = [[rows[c]["processes"][p]["yield"] for p in procs] for c in cuts]
        sumw2 = [[rows[c]["processes"][p]["yield_err"] ** 2 for p in procs] for c in cuts]
        return cls(cuts, procs, counts, yields, sumw2, descriptions=[rows[c]["description"] for c in cuts])

    def to_json(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2))
        return path

    def to_markdown(self, *, by: str | None = None) -> str:
        """Markdown table of counts, weighted yields (+- sqrt(sum w^2)) and cumulative efficiencies.

        ``by="cut"``: one row per cut, three columns per process; ``by="process"``:
        one row per process, one column per cut with "events / weighted (eff.)".
        Default: by cut for up to three processes, else by process.
        """
        by = by or ("cut" if len(self.processes) <= 3 else "process")
        eff = self.efficiency()
        if by == "process":
            head = "| process | " + " | ".join(self.descriptions) + " |"
            sep = "|---|" + "---:|" * len(self.cuts)
            lines = [head, sep]
            for i, p in enumerate(self.processes):
                cells = [f"{self.counts[c, i]:d} / {self.yields[c, i]:.4g} ({eff[c, i]:.3f})" for c in range(len(self.cuts))]
                lines.append(f"| {p} | " + " | ".join(cells) + " |")
            return "\n".join(lines) + "\n"
        if by != "cut":
            raise ValueError(f"by must be 'cut' or 'process', got {by!r}")
        head = "| cut | " + " | ".join(f"{p}: events | {p}: weighted | {p}: eff." for p in self.processes) + " |"
        sep = "|---|" + "---:|---:|---:|" * len(self.processes)
        lines = [head, sep]
        for c in range(len(self.cuts)):
            cells = []
            for i in range(len(self.processes)):
                cells += [f"{self.counts[c, i]:d}", f"{self.yields[c, i]:.4g} ± {np.sqrt(self.sumw2[c, i]):.2g}", f"{eff[c, i]:.4f}"]
            lines.append(f"| {self.descriptions[c]} | " + " | ".join(cells) + " |")
        return "\n".join(lines) + "\n"

    def rich_table(self, *, title: str = "Pre-selection cut flow") -> Any:
        """A ``rich.table.Table`` for the terminal."""
        from rich.table import Table

        table = Table(title=title)
        table.add_column("cut")
        for p in self.processes:
            table.add_column(f"{p}\nevents", justify="right")
            table.add_column(f"{p}\nweighted", justify="right")
        for c in range(len(self.cuts)):
            cells = []
            for i in range(len(self.processes)):
                cells += [f"{self.counts[c, i]:d}", f"{self.yields[c, i]:.4g}"]
            table.add_row(self.descriptions[c], *cells)
        return table


# --------------------------------------------------------------------------- pre-selection


def _flat(arr: Any) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Offsets (from 0) and flat numpy content of each field of a jagged awkward record."""
    import awkward as ak

    layout = ak.to_layout(arr)
    if isinstance(layout, ak.contents.ListOffsetArray) and isinstance(layout.content, ak.contents.RecordArray):
        offsets = np.asarray(layout.offsets.data, dtype=np.int64)
        start, stop = int(offsets[0]), int(offsets[-1])
        content = layout.content
        out = {}
        for name in content.fields:
            sub = content.content(name)
            if isinstance(sub, ak.contents.NumpyArray):
                out[name] = np.asarray(sub.data)[start:stop]
            else:
                out[name] = ak.to_numpy(ak.Array(sub[start:stop]))
        return offsets - start, out
    counts = ak.to_numpy(ak.num(arr, axis=1)).astype(np.int64)
    offsets = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    flat = ak.flatten(arr, axis=1)
    return offsets, {name: ak.to_numpy(flat[name]) for name in ak.fields(flat)}


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
        Raw events (``bumphunt.events.io.read_events``): event-level arrays
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
        results = list(_pool().map(lambda ab: _select(events, *ab, beam=beam, cuts=cuts, resolution=resolution), parts))
        masks = [np.concatenate([r[1][k] for r in results]) for k in range(len(results[0][1]))]
        out = {key: np.concatenate([r[0][key] for r in results]) for key in results[0][0]}
    names = ["all", "photon_multiplicity", "mggg_window", "time_spread", "no_good_track"]
    cutflow = CutFlow.from_masks(names, [np.ones(n, dtype=bool), *masks], process, weight)
    logger.info("pre-selection: %d of %d events kept", len(out["event"]), n)
    return out, cutflow


#: Events per part when a large chunk is pre-selected in parallel threads.
PARALLEL_MIN_EVENTS = 100_000
_POOL: Any = None


def _pool() -> Any:
    global _POOL
    if _POOL is None:
        from concurrent.futures import ThreadPoolExecutor

        _POOL = ThreadPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1)), thread_name_prefix="bumphunt-presel")
    return _POOL


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

    g_off, g = _flat(part("gamma"))
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
        t_off, trk = _flat(part("track"))
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


#: position in COV_FIELDS of each element of the row-major 3x3 matrix
_SYM_INDEX = np.array([[next(i for i, (_, a, b) in enumerate(COV_FIELDS) if {a, b} == {r, c} and (a, b) in ((r, c), (c, r)))
                        for c in range(3)] for r in range(3)]).reshape(-1)


# --------------------------------------------------------------------------- ROOT round trip


_COV_NAMES = {(a, b): name[len("cov_"):] for name, a, b in COV_FIELDS}


def save_three_photon(path: str | Path, events: Mapping[str, np.ndarray], *, meta: Mapping[str, Any] | None = None) -> Path:
    """Write a three-photon dict to ROOT (tree ``events``).

    Arrays of shape (n,) become event branches; (n, 3) photon arrays become
    jagged ``gamma_<key>`` branches with ``ngamma`` = 3; (n, 3, 3, 3)
    covariances ``<key>`` become ``gamma_<key>_EE``, ``gamma_<key>_Etheta``, ...
    (for ``cov`` exactly the schema's ``gamma_cov_*``). An empty ``track``
    collection is written too, so ``bumphunt.events.io.read_events`` reads the file.
    """
    from .io import make_jagged_record, write_events

    n = None
    event_level: dict[str, np.ndarray] = {}
    photon: dict[str, np.ndarray] = {}
    for key, value in events.items():
        arr = np.asarray(value)
        if n is None:
            n = arr.shape[0]
        if arr.shape[:1] != (n,):
            raise InputError(f"save_three_photon: {key!r} has {arr.shape[0]} rows, expected {n}")
        if arr.ndim == 1:
            event_level[key] = arr
        elif arr.shape[1:] == (3,):
            photon[key] = arr.reshape(-1)
        elif arr.shape[1:] == (3, 3, 3):
            for (a, b), suffix in _COV_NAMES.items():
                photon[f"{key}_{suffix}"] = arr[:, :, a, b].reshape(-1)
        else:
            raise InputError(f"save_three_photon: {key!r} has shape {arr.shape}; expected (n,), (n, 3) or (n, 3, 3, 3)")
    n = n or 0
    if "E" not in photon:
        raise InputError("save_three_photon: the dict has no photon energies 'E'")
    g_off = np.arange(0, 3 * n + 1, 3, dtype=np.int64)
    out: dict[str, Any] = dict(event_level)
    out["gamma"] = make_jagged_record(g_off, photon)
    out["track"] = make_jagged_record(np.zeros(n + 1, dtype=np.int64), {
        "px": np.zeros(0), "py": np.zeros(0), "pz": np.zeros(0), "charge": np.zeros(0, dtype=np.int32),
        "dr": np.zeros(0), "dz": np.zeros(0)})
    meta = dict(meta or {})
    meta.setdefault("stage", "preselected")
    return write_events(path, out, meta=meta)


def load_three_photon(path: str | Path) -> dict[str, np.ndarray]:
    """Read a file written by ``save_three_photon`` back into the three-photon dict."""
    from .io import _open

    path = Path(path)
    f = _open(path)
    with f:
        if TREE_NAME not in f:
            raise SchemaError(f"{path}: no tree {TREE_NAME!r}")
        tree = f[TREE_NAME]
        keys = [k for k in tree.keys() if k not in ("ntrack",) and not k.startswith("track_")]
        if "ngamma" not in keys:
            raise SchemaError(f"{path}: missing branch 'ngamma' (not a three-photon file)")
        try:
            arrays = {k: tree[k].array(library="ak") for k in keys}
        except Exception as exc:
            raise InputError(f"{path}: cannot read (truncated or corrupt file?): {exc}") from None
    import awkward as ak

    ngamma = ak.to_numpy(arrays.pop("ngamma"))
    if np.any(ngamma != 3):
        bad = int(np.flatnonzero(ngamma != 3)[0])
        raise SchemaError(f"{path}: branch 'ngamma' is {int(ngamma[bad])} in entry {bad}, a three-photon file has 3 everywhere")
    n = len(ngamma)
    out: dict[str, np.ndarray] = {}
    covs: dict[str, np.ndarray] = {}
    suffix_to_ab = {s: ab for ab, s in _COV_NAMES.items()}
    for key, arr in arrays.items():
        if key.startswith("gamma_"):
            flat = ak.to_numpy(ak.flatten(arr, axis=1)).reshape(n, 3)
            name = key[len("gamma_"):]
            base, _, suffix = name.rpartition("_")
            if suffix in suffix_to_ab and base:
                cov = covs.setdefault(base, np.zeros((n, 3, 3, 3)))
                a, b = suffix_to_ab[suffix]
                cov[:, :, a, b] = flat
                cov[:, :, b, a] = flat
            else:
                out[name] = flat
        else:
            out[key] = ak.to_numpy(arr)
    out.update(covs)
    return out


def combine_three_photon(parts: Iterable[Mapping[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Concatenate three-photon dicts (same keys) along the event axis."""
    parts = [p for p in parts]
    if not parts:
        return {}
    keys = list(parts[0])
    return {k: np.concatenate([np.asarray(p[k]) for p in parts]) for k in keys}


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
) -> dict[str, dict[str, Any]]:
    """Pre-select every input file (one sample per file) and write the results.

    For an input ``<name>.root`` writes ``<out_dir>/<name>_3g.root`` (the
    three-photon events, ``save_three_photon``), ``<name>_cutflow.md`` and
    ``<name>_cutflow.json``. Files are read chunk by chunk (``step_size``
    events), only the branches the pre-selection needs.

    Returns
    -------
    dict
        Per input name: ``{"events": path, "cutflow_md": path, "cutflow_json": path,
        "cutflow": CutFlow, "n_selected": int, "source": path}``.
    """
    from .io import expand_paths, iterate_events
    from signal_models._common.progress import progress

    if not isinstance(cuts, PreselectionCuts):
        cuts = PreselectionCuts.from_config(cuts)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = expand_paths(inputs)
    stems = [p.name[: -len(".root")] if p.name.endswith(".root") else p.name for p in paths]
    if len(set(stems)) != len(stems):
        stems = [f"{i:03d}_{s}" for i, s in enumerate(stems)]
    results: dict[str, dict[str, Any]] = {}
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
        out = {
            "events": save_three_photon(out_dir / f"{stem}_3g.root", selected, meta=meta),
            "cutflow_md": out_dir / f"{stem}_cutflow.md",
            "cutflow_json": flow.to_json(out_dir / f"{stem}_cutflow.json"),
            "cutflow": flow,
            "n_selected": int(len(selected["event"])),
            "source": path,
        }
        out["cutflow_md"].write_text(f"# Pre-selection cut flow: {path.name}\n\n" + flow.to_markdown())
        logger.info("%s: %d events selected -> %s", path, out["n_selected"], out["events"])
        results[stem] = out
    return results

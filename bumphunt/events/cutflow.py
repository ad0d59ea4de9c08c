"""The cut flow: event counts and weighted yields after each cut, per process.

``CutFlow.from_masks`` counts, for nested boolean masks (one per cut) over all
events, the events and the sums of weights and squared weights passing each
cut, per process. Cut flows of chunks or files add up (``+``); they are
written as JSON (``to_json``), markdown (``to_markdown``) or a ``rich`` table.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .schema import PROCESS_NAMES

__all__ = ["CutFlow", "CUT_DESCRIPTIONS"]

#: Description of each cut of ``preselect`` (markdown and terminal tables).
CUT_DESCRIPTIONS: dict[str, str] = {
    "all": "all events",
    "photon_multiplicity": "three photon candidates (E, theta, time cuts)",
    "mggg_window": "M_ggg window (fraction of sqrt(s))",
    "time_spread": "clusters simultaneous (time spread)",
    "no_good_track": "no good track",
}


@dataclass(frozen=True)
class CutFlow:
    """Event counts and weighted yields after each cut, per process.

    ``counts[c, p]`` is the number of events of process ``processes[p]``
    passing cuts ``0..c``; ``yields`` the sum of their weights (events at the
    sample luminosity) and ``sumw2`` the sum of squared weights.

    Parameters
    ----------
    cuts : list of str
        Cut names, in order (cumulative: cut ``c`` includes ``0..c-1``).
    processes : list of str
        Process names.
    counts, yields, sumw2 : array-like of shape (n_cuts, n_processes)
        Normalised on construction to int64 / float arrays of that shape.
    descriptions : list of str, optional
        One per cut (default: ``CUT_DESCRIPTIONS`` or the cut name).
    """

    cuts: list[str]
    processes: list[str]
    counts: np.ndarray
    yields: np.ndarray
    sumw2: np.ndarray
    descriptions: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        # frozen: the normalised arrays are set once, here
        counts = np.asarray(self.counts, dtype=np.int64).reshape(len(self.cuts), len(self.processes))
        object.__setattr__(self, "counts", counts)
        object.__setattr__(self, "yields", np.asarray(self.yields, dtype=float).reshape(counts.shape))
        object.__setattr__(self, "sumw2", np.asarray(self.sumw2, dtype=float).reshape(counts.shape))
        if not self.descriptions:
            object.__setattr__(self, "descriptions", [CUT_DESCRIPTIONS.get(c, c) for c in self.cuts])

    @classmethod
    def from_masks(cls, cuts: list[str], masks: list[np.ndarray], process: np.ndarray, weight: np.ndarray) -> CutFlow:
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

    def __add__(self, other: CutFlow) -> CutFlow:
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
    def from_dict(cls, data: Mapping[str, Any]) -> CutFlow:
        """Inverse of ``to_dict`` (yield errors squared back to ``sumw2``)."""
        cuts = list(data["cuts"])
        procs = list(data["processes"])
        rows = {r["cut"]: r for r in data["rows"]}
        counts = [[rows[c]["processes"][p]["count"] for p in procs] for c in cuts]
        yields = [[rows[c]["processes"][p]["yield"] for p in procs] for c in cuts]
        sumw2 = [[rows[c]["processes"][p]["yield_err"] ** 2 for p in procs] for c in cuts]
        return cls(cuts, procs, counts, yields, sumw2, descriptions=[rows[c]["description"] for c in cuts])

    def to_json(self, path: str | Path) -> Path:
        """Write ``to_dict()`` as JSON to ``path``; return the path."""
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

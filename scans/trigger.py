"""Trigger efficiency as a function of the diphoton mass, with its uncertainty.

A ``trigger_efficiency`` section of a scan configuration (top level or per
dataset) is a constant (``value``, ``rel_unc``) or a table of rows
``[mass GeV, efficiency, absolute uncertainty]`` given in the file or read
from a CSV file (columns ``mass,efficiency[,uncertainty]``). Between the
rows the efficiency and its uncertainty are interpolated linearly in mass;
outside the table there is no extrapolation: a scan mass outside the table
is an error naming the dataset and the range, raised before any fit.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .errors import ScanConfigError, ScanInputError

logger = logging.getLogger(__name__)

__all__ = ["TriggerEfficiency", "trigger_from_config"]


@dataclass(frozen=True, eq=False)
class TriggerEfficiency:
    """Trigger efficiency vs mass.

    Attributes
    ----------
    masses : (n,) float array, GeV, or None
        Table masses (increasing); None for a constant.
    values : (n,) float array
        Efficiency at the table masses (or the constant, n = 1).
    uncertainties : (n,) float array
        Absolute uncertainty at the table masses (or of the constant).
    source : str
        Where it was defined (for error messages and the result).
    """

    masses: NDArray[np.float64] | None
    values: NDArray[np.float64]
    uncertainties: NDArray[np.float64]
    source: str = "trigger_efficiency"

    @property
    def is_unity(self) -> bool:
        """A constant efficiency of exactly 1 without uncertainty (changes nothing)."""
        return self.masses is None and float(self.values[0]) == 1.0 and float(self.uncertainties[0]) == 0.0

    def check_covers(self, masses: ArrayLike) -> None:
        """Raise ``ScanConfigError`` when a table does not cover ``masses`` (GeV)."""
        if self.masses is None:
            return
        m = np.asarray(masses, dtype=float)
        if m.size and (m.min() < self.masses[0] or m.max() > self.masses[-1]):
            raise ScanConfigError(
                f"{self.source}: the table covers [{self.masses[0]:g}, {self.masses[-1]:g}] GeV but the scan needs "
                f"[{m.min():g}, {m.max():g}] GeV; extend the table (no extrapolation)"
            )

    def efficiency(self, masses: ArrayLike) -> NDArray[np.float64]:
        """Efficiency at ``masses`` (GeV)."""
        m = np.asarray(masses, dtype=float)
        if self.masses is None:
            return np.full(m.shape, float(self.values[0]))
        return np.interp(m, self.masses, self.values)

    def relative_uncertainty(self, masses: ArrayLike) -> NDArray[np.float64]:
        """Relative uncertainty at ``masses`` (GeV)."""
        m = np.asarray(masses, dtype=float)
        if self.masses is None:
            return np.full(m.shape, float(self.uncertainties[0] / self.values[0]))
        return np.interp(m, self.masses, self.uncertainties) / self.efficiency(m)

    def to_json(self) -> dict[str, Any]:
        """JSON form recorded in the scan result."""
        if self.masses is None:
            return {"value": float(self.values[0]), "rel_unc": float(self.uncertainties[0] / self.values[0])}
        return {"table": np.stack([self.masses, self.values, self.uncertainties], axis=1).tolist()}


def _read_csv(path: Path, *, source: str) -> NDArray[np.float64]:
    if not path.is_file():
        raise ScanInputError(f"{source}.file: {path}: file not found")
    try:
        data = np.genfromtxt(path, delimiter=",", names=True)
    except (OSError, ValueError) as exc:
        raise ScanInputError(f"{source}.file: {path}: cannot be read as CSV ({exc})") from None
    names = data.dtype.names or ()
    for col in ("mass", "efficiency"):
        if col not in names:
            raise ScanInputError(f"{source}.file: {path}: no column {col!r} (has: {', '.join(names)}); expected mass,efficiency[,uncertainty]")
    m = np.atleast_1d(np.asarray(data["mass"], float))
    e = np.atleast_1d(np.asarray(data["efficiency"], float))
    u = np.atleast_1d(np.asarray(data["uncertainty"], float)) if "uncertainty" in names else np.zeros_like(e)
    return np.stack([m, e, u], axis=1)


def trigger_from_config(section: Mapping[str, Any] | None, *, base: Path | None = None, source: str = "trigger_efficiency") -> TriggerEfficiency:
    """The trigger efficiency a configuration section describes.

    Parameters
    ----------
    section : mapping or None
        ``value``, ``rel_unc``, ``table``, ``file`` (None: efficiency 1, no uncertainty).
    base : Path, optional
        Directory that a relative ``file`` is relative to (default the working directory).
    source : str
        Key path used in error messages (e.g. ``datasets[1].trigger_efficiency``).

    Raises
    ------
    ScanConfigError, ScanInputError
        A table that is not increasing in mass, an efficiency outside (0, 1], a
        negative uncertainty, or a file that cannot be read (named).
    """
    section = dict(section or {})
    rows: Any = section.get("table")
    if section.get("file") is not None:
        path = Path(section["file"])
        if not path.is_absolute() and base is not None:
            path = base / path
        rows = _read_csv(path, source=source)
    if rows is None:
        value = float(section.get("value", 1.0))
        rel = float(section.get("rel_unc", 0.0))
        return TriggerEfficiency(None, np.array([value]), np.array([value * rel]), source)
    table = np.array([list(r) + [0.0] * (3 - len(r)) for r in np.asarray(rows, dtype=float).tolist()], dtype=float)
    if table.shape[0] < 2:
        raise ScanConfigError(f"{source}: a table needs at least 2 rows, got {table.shape[0]}")
    bad = ~np.isfinite(table).all(axis=1)
    if bad.any():
        raise ScanConfigError(f"{source}: row {int(np.flatnonzero(bad)[0])} is not finite: {table[bad][0].tolist()}")
    if np.any(np.diff(table[:, 0]) <= 0):
        i = int(np.flatnonzero(np.diff(table[:, 0]) <= 0)[0]) + 1
        raise ScanConfigError(f"{source}: row {i}: masses must increase ({table[i - 1, 0]:g} then {table[i, 0]:g} GeV)")
    out = np.flatnonzero(~((table[:, 1] > 0) & (table[:, 1] <= 1)))
    if out.size:
        raise ScanConfigError(f"{source}: row {int(out[0])}: efficiency {table[out[0], 1]:g} is not in (0, 1]")
    neg = np.flatnonzero(table[:, 2] < 0)
    if neg.size:
        raise ScanConfigError(f"{source}: row {int(neg[0])}: negative uncertainty {table[neg[0], 2]:g}")
    return TriggerEfficiency(table[:, 0].copy(), table[:, 1].copy(), table[:, 2].copy(), source)

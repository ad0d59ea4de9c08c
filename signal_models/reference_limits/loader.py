"""Read the bundled reference limit curves (``signal_models.reference_limits``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from .._common.errors import BumphuntError
from ..alp import ALPError, coupling_model

__all__ = ["ReferenceLimit", "ReferenceLimitError", "available", "load", "load_file"]

_REQUIRED = ("label", "citation", "coupling", "production", "obtained")
#: what a file's points describe (``# shape:``, default ``curve``)
SHAPES = ("curve", "region")


class ReferenceLimitError(BumphuntError, ValueError):
    """Unknown reference curve name or an invalid reference-limit file (the message names it)."""


@dataclass(frozen=True, eq=False)
class ReferenceLimit:
    """One published limit curve.

    Attributes
    ----------
    name : str
        File stem, the name ``load`` takes.
    label : str
        Legend text.
    citation : str
        The publication(s).
    coupling : str
        The coupling model the curve is on (``signal_models.alp.COUPLING_MODELS``).
    production : str
        Process and data set the limit comes from.
    obtained : str
        How the numbers were obtained (read off a figure, a table, a conversion).
    masses : (k,) ndarray, GeV
        ALP masses (read-only): non-decreasing for a curve (a repeated mass is
        a vertical step), the polygon's vertices for a region.
    couplings : (k,) ndarray, GeV^-1
        The 95% CL upper limit on the coupling at each mass, or the region's
        vertices (read-only).
    cl : float
        Confidence level.
    shape : {"curve", "region"}
        ``"curve"``: couplings above the line are excluded; ``"region"``: the
        closed polygon of the vertices is excluded (e.g. a beam dump, which
        excludes a band between a lower and an upper coupling).
    """

    name: str
    label: str
    citation: str
    coupling: str
    production: str
    obtained: str
    masses: NDArray[np.float64] = field(repr=False)
    couplings: NDArray[np.float64] = field(repr=False)
    cl: float = 0.95
    shape: str = "curve"


def _data_dir() -> Path:
    return Path(str(resources.files("signal_models.reference_limits").joinpath("data")))


def available() -> tuple[str, ...]:
    """Names of the bundled curves, sorted."""
    return tuple(sorted(p.stem for p in _data_dir().glob("*.csv")))


def load(name: str) -> ReferenceLimit:
    """The bundled curve called ``name``.

    Raises
    ------
    ReferenceLimitError
        For an unknown name; the message lists the available ones.
    """
    names = available()
    if name not in names:
        raise ReferenceLimitError(f"unknown reference limit {name!r}; available: {', '.join(names)}")
    return load_file(_data_dir() / f"{name}.csv")


def load_file(path: str | Path) -> ReferenceLimit:
    """Read a reference-limit CSV (module docstring of ``signal_models.reference_limits``) and check it.

    Raises
    ------
    ReferenceLimitError
        Missing header keys, an unknown coupling model or shape, non-finite
        or non-positive masses, decreasing masses in a curve, non-positive
        couplings.
    """
    path = Path(path)
    header: dict[str, str] = {}
    rows: list[str] = []
    with open(path) as f:
        for line in f:
            text = line.strip()
            if not text:
                continue
            if text.startswith("#"):
                key, sep, value = text.lstrip("#").partition(":")
                if sep:
                    header.setdefault(key.strip().lower(), value.strip())
            else:
                rows.append(text)
    missing = [k for k in _REQUIRED if not header.get(k)]
    if missing:
        raise ReferenceLimitError(f"{path}: header line(s) missing: {', '.join(f'# {k}:' for k in missing)}")
    try:
        coupling_model(header["coupling"])
    except ALPError as exc:
        raise ReferenceLimitError(f"{path}: {exc}") from None
    if not rows or [c.strip() for c in rows[0].split(",")] != ["mass_gev", "g_gev"]:
        raise ReferenceLimitError(f"{path}: the first data line must be the column names mass_gev,g_gev")
    try:
        values = np.array([[float(v) for v in r.split(",")] for r in rows[1:]], dtype=float).reshape(-1, 2)
    except ValueError as exc:
        raise ReferenceLimitError(f"{path}: unreadable row ({exc})") from None
    masses, couplings = values[:, 0].copy(), values[:, 1].copy()
    shape = header.get("shape", "curve")
    if shape not in SHAPES:
        raise ReferenceLimitError(f"{path}: '# shape:' must be one of {', '.join(SHAPES)}, got {shape!r}")
    if len(masses) < (3 if shape == "region" else 1):
        raise ReferenceLimitError(f"{path}: {'a region needs at least 3 vertices' if shape == 'region' else 'no points'}")
    if not (np.all(np.isfinite(values)) and np.all(masses > 0)):
        raise ReferenceLimitError(f"{path}: masses must be finite and positive, couplings finite")
    if shape == "curve" and not np.all(np.diff(masses) >= 0):
        raise ReferenceLimitError(f"{path}: the masses of a curve must not decrease (a region of any outline needs '# shape: region')")
    if np.any(couplings <= 0):
        raise ReferenceLimitError(f"{path}: couplings must be > 0 GeV^-1")
    masses.flags.writeable = False
    couplings.flags.writeable = False
    try:
        cl = float(header.get("cl", 0.95))
    except ValueError:
        raise ReferenceLimitError(f"{path}: '# cl:' must be a number, got {header['cl']!r}") from None
    return ReferenceLimit(name=path.stem, label=header["label"], citation=header["citation"], coupling=header["coupling"],
                          production=header["production"], obtained=header["obtained"], masses=masses, couplings=couplings, cl=cl,
                          shape=shape)

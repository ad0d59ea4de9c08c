"""Blind analyses: which scan points may show observed numbers.

The ``blinding`` section of a scan configuration:

``mode: none`` (default)
    every point is fitted and its observed numbers are reported;
``mode: blind``
    no point shows an observed number: the data are fitted only with the
    signal fixed at zero (background only, nuisances profiled), whose Asimov
    set gives the expected limits; the fitted signal, the local significance
    and the observed limits are neither computed nor written (result,
    checkpoints, logs, plots);
``mode: windows``
    as ``blind`` for the points whose signal region ``m +- signal_region_n_sigma
    sigma(m)`` overlaps one of ``windows`` ([lo, hi] GeV), the others unblinded.

``bumphunt scan CONFIG --unblind`` (``scans.run_config(..., unblind=True)``)
runs the full scan; the result records ``"blinding": {"mode": ..., "unblinded": true}``.
A blinded scan may report, for a reference signal (``reference_xsec_pb``), its
median expected significance.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np
from numpy.typing import NDArray

logger = logging.getLogger(__name__)

__all__ = ["BLINDING_SCHEMA", "BLINDING_MODES", "blinded_mask", "blinding_record"]

#: what ``blinding.mode`` may say
BLINDING_MODES = ("none", "blind", "windows")

BLINDING_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "default": {},
    "description": "Blind analysis: which points report observed numbers (bumphunt scan --unblind to see them).",
    "properties": {
        "mode": {"enum": list(BLINDING_MODES), "default": "none"},
        "windows": {"type": "array", "items": {"type": "array", "items": {"type": "number"}, "minItems": 2, "maxItems": 2}, "default": [],
                    "description": "mode windows: blinded mass ranges [lo, hi] GeV."},
        "signal_region_n_sigma": {"type": "number", "exclusiveMinimum": 0, "default": 3.0,
                                  "description": "mode windows: a point is blind when m +- this x sigma(m) overlaps a blinded range."},
        "reference_xsec_pb": {"type": ["number", "null"], "exclusiveMinimum": 0, "default": None,
                              "description": "Blinded points: report the median expected significance of this cross-section (pb)."},
    },
}


def blinded_mask(masses: NDArray, sigmas: NDArray, section: Mapping[str, Any], *, unblind: bool = False) -> NDArray:
    """Which points (k,) are blind.

    Parameters
    ----------
    masses, sigmas : (k,) arrays, GeV
        Hypothesis masses and signal widths.
    section : mapping
        The ``blinding`` section.
    unblind : bool
        ``--unblind``: nothing is blind.
    """
    m = np.asarray(masses, dtype=float)
    if unblind or section["mode"] == "none":
        return np.zeros(m.shape, dtype=bool)
    if section["mode"] == "blind":
        return np.ones(m.shape, dtype=bool)
    half = section["signal_region_n_sigma"] * np.asarray(sigmas, dtype=float)
    out = np.zeros(m.shape, dtype=bool)
    for lo, hi in section["windows"]:
        out |= (m + half >= lo) & (m - half <= hi)
    return out


def blinding_record(section: Mapping[str, Any], *, unblind: bool, n_blind: int) -> dict[str, Any]:
    """What the result records about blinding."""
    return {"mode": section["mode"], "unblinded": bool(unblind), "windows": [list(w) for w in section["windows"]],
            "blinded_points": int(n_blind)}

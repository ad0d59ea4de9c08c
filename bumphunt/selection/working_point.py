"""Evaluating a selection: efficiency and background per mass window, the working point, the cut-based reference, generalisation.

The network output of each candidate is either a weight (the soft sums of the
Punzi loss) or cut at a threshold; per mass hypothesis the efficiency counts
truth-matched signal generated at that mass inside its window (over
``N_gen``), the background sums the weighted background inside the window
(``bumphunt.selection.training_data.window_sums``). The working point is one
global cut on the output for all masses, chosen for the lowest mean
minimum detectable cross-section (``bumphunt.selection.figures_of_merit``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ..errors import InputError
from .figures_of_merit import punzi_sensitivity
from .training_data import PunziData, window_sums

__all__ = [
    "efficiency_and_background",
    "sensitivity_per_mass",
    "WorkingPoint",
    "scan_working_point",
    "cut_based_mask",
    "optimise_cut_based",
    "generalisation_table",
]


def efficiency_and_background(
    data: PunziData, outputs: ArrayLike, *, threshold: float | None = None, split: int | None = None
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Per-mass efficiency and background for network outputs (soft or cut).

    Parameters
    ----------
    data : PunziData
    outputs : array_like (n,)
        Network output per row of ``data``.
    threshold : float, optional
        Hard cut ``output > threshold``; None uses the outputs as weights
        (the soft sums of the Punzi loss).
    split : {0, 1, None}
        Restrict to training (0) or validation (1) rows; the sums are then
        scaled by the inverse event fraction of the split.

    Returns
    -------
    eps, B : ndarray (n_masses,)
    """
    y = np.asarray(outputs, dtype=float)
    if y.shape != data.label.shape:
        raise InputError(f"outputs have shape {y.shape}, expected {data.label.shape}")
    if threshold is not None:
        y = (y > threshold).astype(float)
    rows = data.rows(split)
    f = data.split_fraction(split)
    sig = rows & (data.label == 1) & data.in_window
    eps = np.bincount(data.mass_idx[sig], weights=y[sig] * data.weight[sig], minlength=data.n_masses) / f
    b_rows = data.sorted_background(split)
    B = window_sums(data.mgg[b_rows], y[b_rows] * data.weight[b_rows], data.lo, data.hi) / f
    return eps, B


def sensitivity_per_mass(
    data: PunziData, outputs: ArrayLike | None, *, threshold: float | None = 0.5, split: int | None = None,
    a: float = 5.0, b: float = 1.28, formula: str = "basic",
) -> dict[str, NDArray]:
    """Efficiency, background and sigma_min (pb) per mass for a cut on the outputs.

    ``outputs=None`` means no selection (every candidate passes).

    Returns
    -------
    dict
        ``mass`` (GeV), ``efficiency``, ``background`` (events at
        ``data.lumi_fb``) and ``sigma_min_pb``, arrays of length n_masses.
    """
    y = np.ones(data.label.size) if outputs is None else outputs
    eps, B = efficiency_and_background(data, y, threshold=threshold if outputs is not None else None, split=split)
    eps = np.clip(eps, 0.0, 1.0)
    return {"mass": data.masses, "efficiency": eps, "background": B,
            "sigma_min_pb": punzi_sensitivity(eps, B, data.lumi_fb, a, b, formula=formula)}


@dataclass(frozen=True)
class WorkingPoint:
    """One global cut on the network output and its per-mass sensitivity.

    Attributes
    ----------
    threshold : float
        The chosen cut (candidates with output > threshold pass).
    mean_sigma_min_pb : float
        Mean sigma_min (pb) over the masses of the scan at that cut.
    thresholds, mean_curve : ndarray
        The scanned cuts and the mean sigma_min (pb) at each.
    per_mass : dict
        ``sensitivity_per_mass`` at the chosen cut.
    """

    threshold: float
    mean_sigma_min_pb: float
    thresholds: NDArray[np.float64]
    mean_curve: NDArray[np.float64]
    per_mass: dict[str, NDArray]

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly copy (non-finite numbers as None)."""
        return {"threshold": float(self.threshold), "mean_sigma_min_pb": float(self.mean_sigma_min_pb),
                "thresholds": self.thresholds.tolist(), "mean_curve": [float(x) if np.isfinite(x) else None for x in self.mean_curve],
                "per_mass": {k: [float(x) if np.isfinite(x) else None for x in np.asarray(v)] for k, v in self.per_mass.items()}}


def scan_working_point(
    data: PunziData, outputs: ArrayLike, *, thresholds: ArrayLike | None = None, masses: str = "trained",
    split: int | None = None, a: float = 5.0, b: float = 1.28, formula: str = "basic",
) -> WorkingPoint:
    """Scan a global output cut; pick the one with the lowest mean sigma_min over masses.

    ``masses`` selects which hypotheses enter the mean ("trained" or "all").
    Cuts that leave a mass with zero efficiency give an infinite mean and are
    never chosen. The loop is over thresholds (each O(n) with cumulative sums).
    """
    thr = np.linspace(0.0, 0.99, 100) if thresholds is None else np.asarray(thresholds, dtype=float)
    sel = data.trained if masses == "trained" else np.ones(data.n_masses, dtype=bool)
    y = np.asarray(outputs, dtype=float)
    curve = np.empty(thr.size)
    for q, c in enumerate(thr):  # loop over cut values, not events
        eps, B = efficiency_and_background(data, y, threshold=c, split=split)
        s = punzi_sensitivity(np.clip(eps, 0, 1), B, data.lumi_fb, a, b, formula=formula)[sel]
        curve[q] = np.mean(s)
    if not np.any(np.isfinite(curve)):
        raise InputError("every cut leaves some mass with zero signal efficiency")
    best = int(np.nanargmin(np.where(np.isfinite(curve), curve, np.inf)))
    per = sensitivity_per_mass(data, y, threshold=thr[best], split=split, a=a, b=b, formula=formula)
    return WorkingPoint(float(thr[best]), float(curve[best]), thr, curve, per)


# ---------------------------------------------------------------------------
# cut-based reference selection


def cut_based_mask(features: Mapping[str, NDArray], *, cos_max: float, ratio_min: float) -> NDArray[np.bool_]:
    """A simple rectangular selection to compare the network with.

    Keeps candidates whose recoil photon is central in the CM,
    ``|cos theta*_recoil| = |u - t| / (u + t) < cos_max`` (QED ggg photons are
    forward-peaked, the signal recoil follows 1 + cos^2), and whose pair
    shares its energy not too asymmetrically, ``E_low / E_high > ratio_min``
    (ALP photons: flat in the CM decay angle; ggg: soft photons).
    """
    for key in ("u_recoil", "t_recoil", "E_low_cm", "E_high_cm"):
        if key not in features:
            raise InputError(f"cut-based selection needs feature {key!r}")
    u, t = np.asarray(features["u_recoil"]), np.asarray(features["t_recoil"])
    cos = np.abs(u - t) / np.maximum(u + t, 1e-300)
    ratio = np.asarray(features["E_low_cm"]) / np.maximum(np.asarray(features["E_high_cm"]), 1e-300)
    return (cos < cos_max) & (ratio > ratio_min)


def optimise_cut_based(
    data: PunziData, *, cos_grid: ArrayLike = (0.5, 0.6, 0.7, 0.8, 0.9, 1.01), ratio_grid: ArrayLike = (0.0, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5),
    a: float = 5.0, b: float = 1.28, formula: str = "basic",
) -> dict[str, Any]:
    """Grid-optimise the two cuts of ``cut_based_mask`` for the best mean sigma_min over trained masses.

    Returns
    -------
    dict
        ``cos_max``, ``ratio_min``, ``mean_sigma_min_pb`` (pb) and ``per_mass``
        (``sensitivity_per_mass`` at the best cuts).
    """
    best: dict[str, Any] = {"mean_sigma_min_pb": np.inf}
    for c in cos_grid:
        for r in ratio_grid:
            mask = cut_based_mask(data.features, cos_max=float(c), ratio_min=float(r)).astype(float)
            per = sensitivity_per_mass(data, mask, threshold=0.5, a=a, b=b, formula=formula)
            mean = float(np.mean(per["sigma_min_pb"][data.trained]))
            if mean < best["mean_sigma_min_pb"]:
                best = {"cos_max": float(c), "ratio_min": float(r), "mean_sigma_min_pb": mean, "per_mass": per}
    return best


# ---------------------------------------------------------------------------
# generalisation


def generalisation_table(masses: NDArray, sigma_min: NDArray, trained: NDArray, heldout: NDArray, *,
                         efficiency: NDArray | None = None, n_gen: NDArray | None = None) -> list[dict[str, float]]:
    """Held-out sensitivity vs linear interpolation between the neighbouring trained masses.

    Returns one row per held-out mass: ``mass``, ``sigma_min_pb``,
    ``interpolated_pb``, ``ratio`` (held-out / interpolated) and the
    neighbours used. With ``efficiency`` and ``n_gen`` (per mass) also
    ``ratio_stat_unc``: the binomial uncertainty of the three efficiencies
    involved propagated to the ratio (the background is common to
    neighbouring windows and neglected), to judge a deviation against the
    signal-MC statistics.
    """
    rows = []
    tm = np.flatnonzero(trained & np.isfinite(sigma_min))
    rel = None
    if efficiency is not None and n_gen is not None:
        eps = np.clip(np.asarray(efficiency, dtype=float), 1e-12, 1.0)
        rel = np.sqrt(eps * (1.0 - eps) / np.asarray(n_gen, dtype=float)) / eps
    for h in np.flatnonzero(heldout):
        left = tm[masses[tm] < masses[h]]
        right = tm[masses[tm] > masses[h]]
        if left.size == 0 or right.size == 0:
            continue
        l, r = left[-1], right[0]
        w = (masses[h] - masses[l]) / (masses[r] - masses[l])
        interp = (1 - w) * sigma_min[l] + w * sigma_min[r]
        row = {"mass": float(masses[h]), "sigma_min_pb": float(sigma_min[h]), "interpolated_pb": float(interp),
               "ratio": float(sigma_min[h] / interp), "left": float(masses[l]), "right": float(masses[r])}
        if rel is not None:
            rel_interp = np.hypot((1 - w) * sigma_min[l] * rel[l], w * sigma_min[r] * rel[r]) / interp
            row["ratio_stat_unc"] = float(row["ratio"] * np.hypot(rel[h], rel_interp))
        rows.append(row)
    return rows


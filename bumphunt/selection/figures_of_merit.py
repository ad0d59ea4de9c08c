"""Figures of merit of a selection: the Punzi minimum detectable signal and cross-section, the Asimov significance.

For a selection with signal efficiency ``eps`` (truth-matched candidates
passing inside the mass window / events generated) and ``B`` expected
background candidates in the window, the minimum detectable cross-section is
``sigma_min = S_min(B) / (eps L)`` (Punzi, arXiv:physics/0308063) with

- ``formula="basic"``:    ``S_min = b^2/2 + a sqrt(B) + (b/2) sqrt(b^2 + 4 a sqrt(B) + 4 B)``
- ``formula="extended"``: ``S_min = a^2/8 + 9 b^2/13 + a sqrt(B) + (b/2) sqrt(b^2 + 4 a sqrt(B) + 4 B)``

``a`` is the discovery significance and ``b`` the power, in one-sided Gaussian
sigmas (a = 5, b = 1.28 by default). The same formulas, written for
TensorFlow tensors, are the Punzi loss of ``bumphunt.selection.loss``.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ..errors import InputError

__all__ = ["FORMULAS", "punzi_smin", "punzi_sensitivity", "asimov_significance"]

#: The two variants of Punzi's S_min (module docstring).
FORMULAS = ("basic", "extended")


def punzi_smin(background: ArrayLike, a: float = 5.0, b: float = 1.28, *, formula: str = "basic") -> NDArray[np.float64]:
    """Punzi minimum detectable signal ``S_min(B)`` (events) for ``B`` background events.

    Parameters
    ----------
    background : array_like
        Expected background events in the mass window (finite, >= 0).
    a, b : float
        Significance and power in one-sided Gaussian sigmas.
    formula : {"basic", "extended"}
        Which Punzi S_min (module docstring).
    """
    if formula not in FORMULAS:
        raise ValueError(f"formula must be one of {FORMULAS}, got {formula!r}")
    B = np.asarray(background, dtype=float)
    if np.any(B < 0) or not np.all(np.isfinite(B)):
        raise InputError(f"punzi_smin: background must be finite and >= 0, got min {np.min(B)}")
    sb = np.sqrt(B)
    core = a * sb + 0.5 * b * np.sqrt(b * b + 4.0 * a * sb + 4.0 * B)
    const = b * b / 2.0 if formula == "basic" else a * a / 8.0 + 9.0 * b * b / 13.0
    return const + core


def punzi_sensitivity(
    efficiency: ArrayLike,
    background: ArrayLike,
    lumi: float,
    a: float = 5.0,
    b: float = 1.28,
    *,
    formula: str = "basic",
) -> NDArray[np.float64]:
    """Minimum detectable cross-section ``S_min(B) / (eps L)`` in pb.

    Parameters
    ----------
    efficiency : array_like
        Signal efficiency in [0, 1] (truth-matched passing / generated).
    background : array_like
        Expected background events in the mass window (>= 0).
    lumi : float
        Integrated luminosity in fb^-1 (> 0).
    a, b : float
        Significance and power in one-sided Gaussian sigmas.
    formula : {"basic", "extended"}
        Which Punzi S_min (module docstring).

    Returns
    -------
    ndarray
        sigma_min in pb; ``inf`` where the efficiency is zero (nothing can be
        detected), never NaN.

    Examples
    --------
    >>> from bumphunt.selection import punzi_sensitivity
    >>> round(float(punzi_sensitivity(0.3, 100.0, 1.0, 2.0, 5.0)), 4)   # pb, for eps = 0.3, B = 100, 1 fb^-1
    0.2956
    """
    eps = np.asarray(efficiency, dtype=float)
    if not np.all(np.isfinite(eps)) or np.any(eps < 0) or np.any(eps > 1 + 1e-9):
        raise InputError(f"punzi_sensitivity: efficiency must be in [0, 1], got range [{np.min(eps)}, {np.max(eps)}]")
    if not (np.isfinite(lumi) and lumi > 0):
        raise InputError(f"punzi_sensitivity: lumi must be > 0 fb^-1, got {lumi}")
    smin = punzi_smin(background, a, b, formula=formula)
    denom = eps * lumi * 1000.0  # fb^-1 -> pb^-1
    with np.errstate(divide="ignore"):
        return np.where(denom > 0, smin / np.where(denom > 0, denom, 1.0), np.inf)


def asimov_significance(signal: ArrayLike, background: ArrayLike) -> NDArray[np.float64]:
    """Median discovery significance ``sqrt(2((S+B) ln(1+S/B) - S))`` (Asimov); 0 where S = 0.

    ``signal`` and ``background`` are expected event counts.
    """
    S = np.asarray(signal, dtype=float)
    B = np.maximum(np.asarray(background, dtype=float), 1e-300)
    return np.sqrt(np.maximum(2.0 * ((S + B) * np.log1p(S / B) - S), 0.0))

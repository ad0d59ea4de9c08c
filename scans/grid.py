"""Mass grid, fit windows and vetoes of a scan.

Masses in GeV. The grid is either a fixed step or a step that is a fraction
of the local resolution sigma(m); windows are ``m +- n sigma(m)`` clipped to
the data range (and to the domain of the signal's combinatorial Chebyshev);
vetoes remove hypotheses near the known pi0, eta, eta' peaks (PDG masses from
the `particle` package) or inside explicit ranges.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

from signal_models._common.pdg import particle_mass

logger = logging.getLogger(__name__)

__all__ = ["mass_grid", "fit_windows", "veto_points", "particle_mass"]

#: safety limit on the number of hypotheses of a sigma-fraction grid
MAX_POINTS = 1_000_000


def mass_grid(
    lo: float,
    hi: float,
    *,
    step: float | None = None,
    step_sigma_fraction: float | None = None,
    sigma: Callable[[float], float] | None = None,
) -> NDArray[np.float64]:
    """Mass hypotheses from ``lo`` to ``hi`` GeV (both included when on the grid).

    Parameters
    ----------
    step : float, optional
        Fixed step in GeV; masses ``lo + i step`` rounded to 1e-9 GeV.
    step_sigma_fraction : float, optional
        If given, the step at m is ``step_sigma_fraction * sigma(m)`` (takes
        precedence over ``step``); needs ``sigma``.
    sigma : callable, optional
        Resolution sigma(m) in GeV.
    """
    if step_sigma_fraction is not None:
        if sigma is None:
            raise ValueError("mass_grid: step_sigma_fraction needs the resolution function sigma(m)")
        out = []
        m = float(lo)
        while m <= hi * (1 + 1e-12):
            out.append(round(m, 9))
            s = float(sigma(m))
            if not (np.isfinite(s) and s > 0):
                raise ValueError(f"mass_grid: sigma({m:.6g} GeV) = {s} is not a positive number")
            m += step_sigma_fraction * s
            if len(out) > MAX_POINTS:
                raise ValueError(f"mass_grid: more than {MAX_POINTS} points; increase step_sigma_fraction")
        return np.asarray(out)
    if step is None or step <= 0:
        raise ValueError("mass_grid: give a positive step (GeV) or step_sigma_fraction")
    n = int(np.floor((hi - lo) / step + 1e-9)) + 1
    return np.round(lo + step * np.arange(n), 9)


def fit_windows(
    masses: ArrayLike,
    sigmas: ArrayLike,
    *,
    n_sigma: float,
    data_range: tuple[float, float],
    comb_domain: ArrayLike | None = None,
    mus: ArrayLike | None = None,
) -> NDArray[np.float64]:
    """Windows (k, 2) in GeV: ``m +- n_sigma sigma`` clipped to ``data_range``
    and, if given, to the Chebyshev domain ``mu +- comb_domain sigma`` of the signal shape."""
    m = np.asarray(masses, dtype=float)
    s = np.asarray(sigmas, dtype=float)
    lo = np.maximum(m - n_sigma * s, data_range[0])
    hi = np.minimum(m + n_sigma * s, data_range[1])
    if comb_domain is not None:
        mu = m if mus is None else np.asarray(mus, dtype=float)
        half = np.asarray(comb_domain, dtype=float) * s
        lo = np.maximum(lo, mu - half)
        hi = np.minimum(hi, mu + half)
    return np.stack([lo, hi], axis=-1)


def veto_points(
    masses: ArrayLike,
    sigmas: ArrayLike,
    *,
    particles: Sequence[str] = ("pi0", "eta", "eta'(958)"),
    n_sigma: float = 3.0,
    ranges: Sequence[Sequence[float]] = (),
) -> list[str]:
    """Which hypotheses are vetoed, and why.

    A point at m is vetoed when ``|m - m_P| < n_sigma sigma(m)`` for a listed
    particle P, or when m lies in one of ``ranges`` ([lo, hi] GeV).

    Returns
    -------
    list of str
        Per point: "" when not vetoed, else the reason (e.g. "pi0", "range [0.5, 0.6]").
    """
    m = np.asarray(masses, dtype=float)
    s = np.asarray(sigmas, dtype=float)
    reason = [""] * len(m)
    for name in particles:
        mp = particle_mass(name)
        hit = np.abs(m - mp) < n_sigma * s
        for i in np.flatnonzero(hit):
            reason[i] = reason[i] or name
    for lo, hi in ranges:
        hit = (m >= lo) & (m <= hi)
        for i in np.flatnonzero(hit):
            reason[i] = reason[i] or f"range [{lo:g}, {hi:g}] GeV"
    return reason

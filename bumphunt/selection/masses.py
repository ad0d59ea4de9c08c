"""Signal-mass hypotheses of the selector: the mass grid, held-out masses and the diphoton mass resolution.

Each mass hypothesis ``m`` owns the optimisation window ``m +- n_sigma sigma(m)``
in M_gg (``n_sigma = 10`` by default, see
``bumphunt.selection.training_data``). ``sigma(m)`` is a callable, an array,
or ``default_mass_resolution`` propagated from the photon resolution.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ..errors import InputError
from ..events.detector import Resolution
from ..kinematics import Beam

__all__ = ["default_mass_resolution", "mass_grid", "choose_heldout", "mass_resolution"]


def default_mass_resolution(m: ArrayLike, *, beam: Beam | None = None, resolution: Resolution | None = None) -> NDArray[np.float64]:
    """Diphoton mass resolution sigma(m) in GeV propagated from the photon resolution.

    Symmetric decay of an ALP with its CM energy ``(s + m^2) / (2 sqrt(s))``
    into two photons of half that energy with opening angle ``alpha``,
    ``m = 2 E_1 sin(alpha/2)``: ``sigma_m / m = 1/2 sqrt(2 (sigma_E/E)^2 +
    (cot(alpha/2) sigma_alpha)^2)`` with ``sigma_alpha^2 = sigma_theta^2 +
    sigma_phi^2`` of a barrel photon (``bumphunt.events.detector.Resolution``).
    Good to ~10% against the smeared toy (before any kinematic fit).

    Parameters
    ----------
    m : array_like
        ALP masses in GeV.
    beam : Beam, optional
        Default ``Beam.belle2()`` (sets sqrt(s)).
    resolution : Resolution, optional
        Photon resolution model (default ``Resolution()``).
    """
    beam = beam or Beam.belle2()
    res = resolution or Resolution()
    m = np.asarray(m, dtype=float)
    sqrt_s = beam.sqrt_s
    e1 = 0.5 * (sqrt_s**2 + m**2) / (2.0 * sqrt_s)
    s_e, s_t, s_p = res.sigmas(e1, np.full(np.shape(e1), 2))
    half = np.arcsin(np.clip(m / (2.0 * e1), 0.0, 1.0))
    cot = np.cos(half) / np.maximum(np.sin(half), 1e-12)
    rel = 0.5 * np.sqrt(2.0 * (s_e / e1) ** 2 + (cot * np.sqrt(s_t**2 + s_p**2)) ** 2)
    return rel * m


def mass_grid(lo: float = 0.175, hi: float = 10.375, step: float = 0.05, *, n: int | None = None) -> NDArray[np.float64]:
    """Signal masses (GeV): ``lo..hi`` in ``step`` (default 205 masses), or ``n`` evenly spaced."""
    if n is not None:
        if n < 1:
            raise ValueError(f"mass_grid: n must be >= 1, got {n}")
        return np.linspace(lo, hi, n)
    k = int(np.floor((hi - lo) / step + 1e-9)) + 1
    return np.round(lo + step * np.arange(k), 10)


def choose_heldout(masses: ArrayLike, n_heldout: int) -> NDArray[np.float64]:
    """``n_heldout`` masses (GeV) spread evenly over the interior of the grid (never the end points)."""
    masses = np.sort(np.asarray(masses, dtype=float))
    if n_heldout <= 0:
        return np.zeros(0)
    if len(masses) < 2 * n_heldout + 1:
        raise InputError(f"cannot hold out {n_heldout} of {len(masses)} masses and keep trained neighbours on both sides")
    idx = np.unique(np.round(np.linspace(1, len(masses) - 2, n_heldout + 2)[1:-1]).astype(int))
    return masses[idx]


def mass_resolution(masses: NDArray[np.float64], sigma: Callable[[NDArray], ArrayLike] | ArrayLike | None, *, beam: Beam) -> NDArray[np.float64]:
    """sigma(m) in GeV for each mass from a callable, an array (or one number) or None (``default_mass_resolution``).

    Raises
    ------
    InputError
        A resolution that is not positive and finite for every mass, or has
        the wrong shape.
    """
    if sigma is None:
        out = default_mass_resolution(masses, beam=beam)
    elif callable(sigma):
        out = np.asarray(sigma(masses), dtype=float)
    else:
        out = np.broadcast_to(np.asarray(sigma, dtype=float), masses.shape).copy()
    if out.shape != masses.shape or np.any(~np.isfinite(out)) or np.any(out <= 0):
        raise InputError(f"mass resolution sigma(m) must be positive and finite for every mass, got {out}")
    return out

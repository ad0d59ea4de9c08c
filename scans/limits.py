"""From limits on signal events to limits on the cross-section and on the coupling g_agg.

sigma_UL(m) = N_UL(m) / (eps(m) L) with L in pb^-1 (1 fb^-1 = 1000 pb^-1),
and g_UL(m) from sigma(e+e- -> gamma a) = alpha g^2 / 24 (1 - m^2/s)^3
(``signal_models.alp.coupling_from_cross_section``).

For long-lived ALPs the efficiency depends on the coupling through the decay
length, so the set of excluded couplings at a mass need not be an interval
that extends to infinity: a large coupling gives a short-lived ALP (seen), a
small one a long-lived ALP that escapes before decaying and a small
cross-section. ``lifetime_exclusion`` computes the excluded region on a
(m, g) grid for a user efficiency function eps(m, decay length).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from signal_models import alp

logger = logging.getLogger(__name__)

__all__ = ["signal_scale", "relative_uncertainty", "xsec_from_nsig", "coupling_limit", "LifetimeExclusion", "lifetime_exclusion"]

PB_PER_FB = 1000.0


def signal_scale(efficiency: ArrayLike, luminosity_fb: float) -> NDArray[np.float64]:
    """Signal events per pb of cross-section: eps x L (L in fb^-1 converted to pb^-1)."""
    return np.asarray(efficiency, dtype=float) * luminosity_fb * PB_PER_FB


def relative_uncertainty(*rel: ArrayLike) -> NDArray[np.float64]:
    """Relative uncertainties added in quadrature (broadcast)."""
    total = np.zeros(np.broadcast_shapes(*[np.shape(r) for r in rel]) if rel else ())
    for r in rel:
        total = total + np.asarray(r, dtype=float) ** 2
    return np.sqrt(total)


def xsec_from_nsig(nsig: ArrayLike, efficiency: ArrayLike, luminosity_fb: float) -> NDArray[np.float64]:
    """Cross-section in pb giving ``nsig`` signal events (no systematic): N / (eps L)."""
    scale = signal_scale(efficiency, luminosity_fb)
    nsig = np.asarray(nsig, dtype=float)
    return nsig / (scale.reshape(scale.shape + (1,) * (nsig.ndim - scale.ndim)) if nsig.ndim > scale.ndim else scale)


def coupling_limit(xsec_pb: ArrayLike, masses: ArrayLike, sqrt_s: float) -> NDArray[np.float64]:
    """g_agg (GeV^-1) whose cross-section equals ``xsec_pb`` at each mass (broadcast over trailing axes)."""
    xsec = np.asarray(xsec_pb, dtype=float)
    m = np.asarray(masses, dtype=float)
    if xsec.ndim > m.ndim:
        m = m.reshape(m.shape + (1,) * (xsec.ndim - m.ndim))
    return alp.coupling_from_cross_section(xsec, np.broadcast_to(m, xsec.shape), sqrt_s)


@dataclass
class LifetimeExclusion:
    """Excluded region of the (m_a, g_agg) plane.

    Attributes
    ----------
    masses : (k,) GeV
    couplings : (n,) GeV^-1, increasing
    excluded : (k, n) bool, True where the expected signal exceeds the upper limit
    lower_edge, upper_edge : (k,) GeV^-1
        Smallest and largest excluded coupling per mass on the grid (NaN where
        nothing is excluded). Couplings above ``upper_edge`` are allowed again
        only when the grid shows it (``upper_edge < couplings[-1]``).
    """

    masses: NDArray[np.float64]
    couplings: NDArray[np.float64]
    excluded: NDArray[np.bool_]
    lower_edge: NDArray[np.float64]
    upper_edge: NDArray[np.float64]


def lifetime_exclusion(
    masses: ArrayLike,
    ul_nsig: ArrayLike,
    efficiency: Callable[[NDArray, NDArray], NDArray],
    *,
    luminosity_fb: float,
    sqrt_s: float,
    couplings: ArrayLike | None = None,
    beta_gamma: Callable[[NDArray], NDArray] | None = None,
) -> LifetimeExclusion:
    """Excluded (m, g) region when the efficiency depends on the ALP decay length.

    The expected signal is N(m, g) = sigma(m, g) L eps(m, l(m, g)) with
    l = beta gamma hbar c / Gamma(m, g) and Gamma = g^2 m^3 / (64 pi); a point
    is excluded when N(m, g) > N_UL(m).

    Parameters
    ----------
    masses : (k,) GeV
    ul_nsig : (k,)
        Upper limit on the number of signal events at each mass.
    efficiency : callable
        ``efficiency(m, decay_length_m)`` -> efficiency; called with arrays of
        shape (k, n) (broadcast), decay lengths in m.
    luminosity_fb : float
        Integrated luminosity in fb^-1.
    sqrt_s : float
        CM energy in GeV.
    couplings : (n,) GeV^-1, optional
        Coupling grid (default 200 log-spaced values from 1e-6 to 1 GeV^-1).
    beta_gamma : callable, optional
        ALP beta*gamma as a function of mass; default p/m with the CM momentum
        p = (s - m^2) / (2 sqrt(s)) (the boost of the CM frame is neglected).
    """
    m = np.asarray(masses, dtype=float)
    ul = np.asarray(ul_nsig, dtype=float)
    g = np.logspace(-6, 0, 200) if couplings is None else np.asarray(couplings, dtype=float)
    bg = (alp.alp_momentum_cm(m, sqrt_s) / m) if beta_gamma is None else np.asarray(beta_gamma(m), dtype=float)
    M, G = np.meshgrid(m, g, indexing="ij")
    length = alp.decay_length(M, G, bg[:, None])
    n_exp = alp.cross_section_pb(M, G, sqrt_s) * luminosity_fb * PB_PER_FB * np.asarray(efficiency(M, length), dtype=float)
    excluded = n_exp > ul[:, None]
    any_ex = excluded.any(axis=1)
    first = np.argmax(excluded, axis=1)
    last = n_exp.shape[1] - 1 - np.argmax(excluded[:, ::-1], axis=1)
    lower = np.where(any_ex, g[first], np.nan)
    upper = np.where(any_ex, g[last], np.nan)
    return LifetimeExclusion(masses=m, couplings=g, excluded=excluded, lower_edge=lower, upper_edge=upper)

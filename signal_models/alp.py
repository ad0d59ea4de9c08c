"""ALP physics: width, decay length, e+e- -> gamma a cross-section and coupling conversion.

Natural units (GeV) unless a name says otherwise; cross-sections in pb,
lengths in m, couplings g_agg in GeV^-1.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "ALPHA_EM",
    "HBARC_GEV_M",
    "GEV2_TO_PB",
    "decay_width",
    "decay_length",
    "recoil_energy_cm",
    "alp_momentum_cm",
    "cross_section_pb",
    "coupling_from_cross_section",
    "decay_probability",
]

#: Fine-structure constant at low energy.
ALPHA_EM = 1.0 / 137.035999
#: hbar c in GeV m.
HBARC_GEV_M = 1.973269804e-16
#: (hbar c)^2 = 0.3894 mb GeV^2 expressed in pb GeV^2.
GEV2_TO_PB = 0.3893793721e9


def decay_width(m_a: ArrayLike, g_agg: ArrayLike) -> NDArray[np.float64]:
    """Gamma(a -> gamma gamma) = g^2 m^3 / (64 pi), in GeV."""
    m_a = np.asarray(m_a, dtype=float)
    g_agg = np.asarray(g_agg, dtype=float)
    return g_agg**2 * m_a**3 / (64.0 * np.pi)


def recoil_energy_cm(m_a: ArrayLike, sqrt_s: float) -> NDArray[np.float64]:
    """Recoil-photon energy in the CM frame, (s - m^2) / (2 sqrt(s)), in GeV."""
    m_a = np.asarray(m_a, dtype=float)
    return (sqrt_s**2 - m_a**2) / (2.0 * sqrt_s)


def alp_momentum_cm(m_a: ArrayLike, sqrt_s: float) -> NDArray[np.float64]:
    """ALP momentum in the CM frame (equal to the recoil-photon energy), GeV."""
    return recoil_energy_cm(m_a, sqrt_s)


def decay_length(m_a: ArrayLike, g_agg: ArrayLike, beta_gamma: ArrayLike) -> NDArray[np.float64]:
    """Mean decay length in m for an ALP moving with ``beta_gamma = p / m``."""
    width = decay_width(m_a, g_agg)
    return np.asarray(beta_gamma, dtype=float) * HBARC_GEV_M / width


def decay_probability(L: ArrayLike, dL: ArrayLike, length: ArrayLike) -> NDArray[np.float64]:
    """Probability to decay between ``L`` and ``L + dL`` for mean decay length ``length`` (all m)."""
    L = np.asarray(L, dtype=float)
    length = np.asarray(length, dtype=float)
    return np.exp(-L / length) * (-np.expm1(-np.asarray(dL, dtype=float) / length))


def cross_section_pb(m_a: ArrayLike, g_agg: ArrayLike, sqrt_s: float) -> NDArray[np.float64]:
    """sigma(e+e- -> gamma a) = alpha g^2 / 24 (1 - m^2/s)^3, in pb.

    Zero at and above threshold (m_a >= sqrt(s)).
    """
    m_a = np.asarray(m_a, dtype=float)
    g_agg = np.asarray(g_agg, dtype=float)
    x = np.clip(1.0 - m_a**2 / sqrt_s**2, 0.0, None)
    return ALPHA_EM * g_agg**2 / 24.0 * x**3 * GEV2_TO_PB


def coupling_from_cross_section(xsec_pb: ArrayLike, m_a: ArrayLike, sqrt_s: float) -> NDArray[np.float64]:
    """Invert ``cross_section_pb``: the g_agg (GeV^-1) giving ``xsec_pb`` at ``m_a``.

    Raises
    ------
    ValueError
        If a mass is at or above threshold, or a cross-section is negative.
    """
    xsec_pb = np.asarray(xsec_pb, dtype=float)
    m_a = np.asarray(m_a, dtype=float)
    if np.any(xsec_pb < 0):
        raise ValueError("coupling_from_cross_section: cross-sections must be >= 0 pb")
    if np.any(m_a >= sqrt_s):
        raise ValueError(f"coupling_from_cross_section: m_a must be below sqrt(s) = {sqrt_s} GeV")
    per_g2 = cross_section_pb(m_a, 1.0, sqrt_s)
    return np.sqrt(xsec_pb / per_g2)

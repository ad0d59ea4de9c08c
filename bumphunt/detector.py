"""Belle II-like electromagnetic calorimeter: acceptance regions and resolution.

The photon resolution parametrisation is the one basf2 uses for barrel photons
at low beam background (see ``shared/reference/physics.md``); the endcaps are
modelled as the barrel resolution times region-dependent factors. Photon
covariance matrices are ordered ``(E, theta, phi)``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike, NDArray

logger = logging.getLogger(__name__)

__all__ = [
    "REGION_NONE",
    "REGION_FWD",
    "REGION_BARREL",
    "REGION_BWD",
    "REGION_NAMES",
    "ECL_RADIUS_M",
    "CDC_THETA_MIN",
    "CDC_THETA_MAX",
    "ecl_region",
    "Resolution",
]

# Region codes stored in the ntuples (branch ``gamma_region``).
REGION_NONE = 0
REGION_FWD = 1
REGION_BARREL = 2
REGION_BWD = 3
REGION_NAMES = {REGION_NONE: "gap/outside", REGION_FWD: "forward endcap", REGION_BARREL: "barrel", REGION_BWD: "backward endcap"}

_DEG = np.pi / 180.0
#: Polar-angle edges of the ECL parts (rad): forward endcap, barrel, backward endcap.
ECL_EDGES = {
    REGION_FWD: (12.4 * _DEG, 31.4 * _DEG),
    REGION_BARREL: (32.2 * _DEG, 128.7 * _DEG),
    REGION_BWD: (130.7 * _DEG, 155.1 * _DEG),
}
#: Inner radius of the barrel calorimeter in m (decays beyond it are lost).
ECL_RADIUS_M = 1.25
#: CDC polar-angle acceptance (rad), 17 to 150 degrees.
CDC_THETA_MIN = 17.0 * _DEG
CDC_THETA_MAX = 150.0 * _DEG


def ecl_region(theta: ArrayLike) -> NDArray[np.int8]:
    """ECL region code for each polar angle (rad); ``REGION_NONE`` in gaps and outside."""
    theta = np.asarray(theta, dtype=float)
    out = np.full(theta.shape, REGION_NONE, dtype=np.int8)
    for code, (lo, hi) in ECL_EDGES.items():
        out[(theta >= lo) & (theta <= hi)] = code
    return out


def _basf2_rel_energy(E: NDArray) -> NDArray:
    """sigma_E / E (fraction) for barrel photons, E in GeV."""
    return 0.01 * (-0.0473491 / E + 1.02015 / np.sqrt(E) - 0.705164 / E**0.25 + 1.77086)


def _basf2_theta(E: NDArray) -> NDArray:
    """sigma_theta in rad for barrel photons, E in GeV."""
    return 1e-3 * (-0.221073 / E + 2.19876 / np.sqrt(E) + 1.50833 / E**0.25 + 0.359609)


def _basf2_phi(E: NDArray) -> NDArray:
    """sigma_phi in rad for barrel photons, E in GeV."""
    return 1e-3 * (-0.21842 / E + 0.648976 / np.sqrt(E) + 7.1901 / E**0.25 - 3.10025)


@dataclass(frozen=True)
class Resolution:
    """Photon resolution model: barrel parametrisation times per-region factors.

    Parameters
    ----------
    endcap_energy_factor, endcap_angle_factor : float
        Multipliers applied in the forward and backward endcaps (default 1.5
        and 1.3: the endcaps sit behind more material and see more beam
        background).
    energy_scale : dict, optional
        Extra per-region multiplier of sigma_E (1 by default); this is what a
        calibration from e+e- -> mu+ mu- gamma adjusts.
    min_energy : float
        Energy (GeV) below which the parametrisation is evaluated at this
        value, since the formulas are fitted above ~50 MeV.
    """

    endcap_energy_factor: float = 1.5
    endcap_angle_factor: float = 1.3
    energy_scale: dict[int, float] = field(
        default_factory=lambda: {REGION_FWD: 1.0, REGION_BARREL: 1.0, REGION_BWD: 1.0}
    )
    min_energy: float = 0.05

    def _factors(self, region: NDArray) -> tuple[NDArray, NDArray]:
        region = np.asarray(region)
        endcap = (region == REGION_FWD) | (region == REGION_BWD)
        fe = np.where(endcap, self.endcap_energy_factor, 1.0)
        scale = np.ones(region.shape)
        for code, value in self.energy_scale.items():
            scale = np.where(region == int(code), float(value), scale)
        fa = np.where(endcap, self.endcap_angle_factor, 1.0)
        return fe * scale, fa

    def sigmas(self, E: ArrayLike, region: ArrayLike) -> tuple[NDArray, NDArray, NDArray]:
        """Resolutions ``(sigma_E [GeV], sigma_theta [rad], sigma_phi [rad])``.

        Parameters
        ----------
        E : array_like
            True (or measured) photon energy in GeV.
        region : array_like of int
            ECL region codes (``ecl_region``); gaps use the barrel values.
        """
        E = np.asarray(E, dtype=float)
        Ec = np.clip(E, self.min_energy, None)
        fe, fa = self._factors(np.broadcast_to(region, E.shape))
        s_e = _basf2_rel_energy(Ec) * Ec * fe
        s_t = _basf2_theta(Ec) * fa
        s_p = _basf2_phi(Ec) * fa
        return s_e, s_t, s_p

    def covariance(self, E: ArrayLike, region: ArrayLike) -> NDArray[np.float64]:
        """Diagonal photon covariance in ``(E, theta, phi)``, shape ``E.shape + (3, 3)``."""
        s_e, s_t, s_p = self.sigmas(E, region)
        cov = np.zeros(np.shape(s_e) + (3, 3))
        cov[..., 0, 0] = s_e**2
        cov[..., 1, 1] = s_t**2
        cov[..., 2, 2] = s_p**2
        return cov

"""Electromagnetic calorimeters: acceptance regions and photon resolution.

The Belle II ECL (``ecl_region``, ``Resolution``): the photon resolution
parametrisation is the one basf2 uses for barrel photons at low beam
background (see ``shared/reference/physics.md``); the endcaps are modelled as
the barrel resolution times region-dependent factors. Other calorimeters
(``Calorimeter`` for the polar-angle regions, ``ParametrisedResolution`` for
the textbook form sigma_E/E = a/E^p (+) b (+) c/E) describe the detectors of
the other collider presets (``bumphunt.colliders``). Photon covariance
matrices are ordered ``(E, theta, phi)``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike, NDArray

from signal_models._common.pdg import particle_mass

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
    "TrackResolution",
    "Calorimeter",
    "BELLE2_ECL",
    "ParametrisedResolution",
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


@dataclass(frozen=True)
class TrackResolution:
    """Charged-track momentum resolution (Belle II CDC-like, as in the toy MC).

    ``sigma_pT / pT = sqrt((pt_a * pT)^2 + (pt_b / beta)^2)`` with pT in GeV
    and beta = p / E for the given ``mass`` (GeV; None, the default, is the PDG muon mass), and
    Gaussian polar/azimuthal angle errors ``sigma_theta``, ``sigma_phi`` (rad).
    """

    pt_a: float = 0.0011
    pt_b: float = 0.0025
    sigma_theta: float = 1.0e-3
    sigma_phi: float = 1.0e-3
    mass: float | None = None

    def _sigmas(self, pt: NDArray, p: NDArray) -> tuple[NDArray, float, float]:
        mass = particle_mass("mu") if self.mass is None else self.mass
        beta = p / np.sqrt(p * p + mass**2)
        return pt * np.hypot(self.pt_a * pt, self.pt_b / beta), self.sigma_theta, self.sigma_phi

    def covariance(self, p3: ArrayLike) -> NDArray[np.float64]:
        """Momentum covariance (GeV^2) in (px, py, pz), shape ``p3.shape[:-1] + (3, 3)``."""
        p3 = np.asarray(p3, dtype=float)
        px, py, pz = p3[..., 0], p3[..., 1], p3[..., 2]
        pt = np.hypot(px, py)
        phi = np.arctan2(py, px)
        theta = np.arctan2(pt, pz)
        s_pt, s_t, s_p = self._sigmas(pt, np.linalg.norm(p3, axis=-1))
        st = np.sin(theta)
        cot = np.cos(theta) / st
        J = np.zeros(p3.shape[:-1] + (3, 3))
        J[..., 0, 0], J[..., 1, 0], J[..., 2, 0] = np.cos(phi), np.sin(phi), cot
        J[..., 2, 1] = -pt / st**2
        J[..., 0, 2], J[..., 1, 2] = -pt * np.sin(phi), pt * np.cos(phi)
        d = np.stack(np.broadcast_arrays(s_pt**2, s_t**2 + 0 * pt, s_p**2 + 0 * pt), axis=-1)
        return np.einsum("...ik,...k,...jk->...ij", J, d, J)

    def smear(self, p3: ArrayLike, *, rng: np.random.Generator) -> NDArray[np.float64]:
        """Measured momenta: Gaussian smearing of (pT, theta, phi)."""
        p3 = np.asarray(p3, dtype=float)
        pt = np.hypot(p3[..., 0], p3[..., 1])
        phi = np.arctan2(p3[..., 1], p3[..., 0])
        theta = np.arctan2(pt, p3[..., 2])
        s_pt, s_t, s_p = self._sigmas(pt, np.linalg.norm(p3, axis=-1))
        pt_m = pt + s_pt * rng.standard_normal(pt.shape)
        th_m = theta + s_t * rng.standard_normal(pt.shape)
        ph_m = phi + s_p * rng.standard_normal(pt.shape)
        return np.stack([pt_m * np.cos(ph_m), pt_m * np.sin(ph_m), pt_m / np.tan(th_m)], axis=-1)

    def to_dict(self) -> dict[str, float]:
        return {"pt_a": self.pt_a, "pt_b": self.pt_b, "sigma_theta": self.sigma_theta, "sigma_phi": self.sigma_phi, "mass": self.mass}


@dataclass(frozen=True)
class Calorimeter:
    """Polar-angle regions of a calorimeter (lab frame, rad), with the region codes of the ntuples.

    A photon whose polar angle lies in none of the regions (a gap, or outside)
    gets ``REGION_NONE`` and is not reconstructed by the toy MC. Regions are
    assigned in the order forward, barrel, backward (a later one wins where
    two overlap), as ``ecl_region`` does for Belle II.

    Parameters
    ----------
    name : str
        Short description, e.g. ``"Belle II ECL"``.
    barrel : (float, float)
        Polar-angle range of the barrel (rad).
    forward, backward : (float, float) or None
        Ranges of the forward and backward endcaps (rad); None: no such endcap.
    """

    name: str
    barrel: tuple[float, float]
    forward: tuple[float, float] | None = None
    backward: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        for label, rng in (("barrel", self.barrel), ("forward", self.forward), ("backward", self.backward)):
            if rng is not None and not (0.0 <= rng[0] < rng[1] <= np.pi):
                raise ValueError(f"Calorimeter {self.name!r}: {label} range {rng} rad must satisfy 0 <= lo < hi <= pi")

    @property
    def edges(self) -> dict[int, tuple[float, float]]:
        """Region code -> (theta_lo, theta_hi) in rad, forward first."""
        out = {}
        for code, rng in ((REGION_FWD, self.forward), (REGION_BARREL, self.barrel), (REGION_BWD, self.backward)):
            if rng is not None:
                out[code] = (float(rng[0]), float(rng[1]))
        return out

    @property
    def theta_range(self) -> tuple[float, float]:
        """Smallest and largest polar angle covered (rad)."""
        e = self.edges.values()
        return min(lo for lo, _ in e), max(hi for _, hi in e)

    def region(self, theta: ArrayLike) -> NDArray[np.int8]:
        """Region code for each polar angle (rad); ``REGION_NONE`` in gaps and outside."""
        theta = np.asarray(theta, dtype=float)
        out = np.full(theta.shape, REGION_NONE, dtype=np.int8)
        for code, (lo, hi) in self.edges.items():
            out[(theta >= lo) & (theta <= hi)] = code
        return out

    def to_dict(self) -> dict[str, object]:
        """Plain-dict form (rad), for metadata."""
        return {"name": self.name, "forward": self.forward, "barrel": self.barrel, "backward": self.backward}


#: The Belle II ECL (``ECL_EDGES``); ``BELLE2_ECL.region`` equals ``ecl_region``.
BELLE2_ECL = Calorimeter("Belle II ECL", barrel=ECL_EDGES[REGION_BARREL], forward=ECL_EDGES[REGION_FWD], backward=ECL_EDGES[REGION_BWD])


@dataclass(frozen=True)
class ParametrisedResolution:
    """Photon resolution of the form sigma_E / E = a / E^p (+) b (+) c / E, angles a' / sqrt(E) (+) b'.

    E in GeV, (+) addition in quadrature. The polar and azimuthal angles get
    the same resolution (rad), independent of the region; the interface is the
    one of ``Resolution`` (``sigmas``, ``covariance``), so the toy MC and the
    pre-selection use either.

    Parameters
    ----------
    energy_stochastic : float
        a, the stochastic term (fraction at 1 GeV), e.g. 0.17 for 17% / sqrt(E).
    energy_power : float
        p, the power of E in the stochastic term (0.5 for a sampling
        calorimeter; 0.25 for BaBar's CsI(Tl) parametrisation).
    energy_constant : float
        b, the constant term (fraction).
    energy_noise : float
        c, the noise term (GeV).
    angle_stochastic : float
        a' in rad GeV^1/2.
    angle_constant : float
        b' in rad.
    min_energy : float
        Energy (GeV) below which the formulas are evaluated at this value.
    """

    energy_stochastic: float
    energy_power: float = 0.5
    energy_constant: float = 0.0
    energy_noise: float = 0.0
    angle_stochastic: float = 0.0
    angle_constant: float = 0.0
    min_energy: float = 0.05

    def __post_init__(self) -> None:
        values = (self.energy_stochastic, self.energy_power, self.energy_constant, self.energy_noise,
                  self.angle_stochastic, self.angle_constant)
        if any(not np.isfinite(v) or v < 0 for v in values) or not self.min_energy > 0:
            raise ValueError(f"ParametrisedResolution: terms must be finite and >= 0 (min_energy > 0), got {self}")
        if self.angle_stochastic == 0 and self.angle_constant == 0:
            raise ValueError("ParametrisedResolution: the angular resolution must not be zero")

    def sigmas(self, E: ArrayLike, region: ArrayLike) -> tuple[NDArray, NDArray, NDArray]:
        """Resolutions ``(sigma_E [GeV], sigma_theta [rad], sigma_phi [rad])`` at energy ``E`` (GeV).

        ``region`` is accepted for the interface of ``Resolution`` and not used.
        """
        E = np.asarray(E, dtype=float)
        Ec = np.clip(E, self.min_energy, None)
        rel = np.sqrt((self.energy_stochastic / Ec**self.energy_power) ** 2 + self.energy_constant**2
                      + (self.energy_noise / Ec) ** 2)
        ang = np.sqrt(self.angle_stochastic**2 / Ec + self.angle_constant**2)
        return rel * Ec, ang, ang.copy()

    def covariance(self, E: ArrayLike, region: ArrayLike) -> NDArray[np.float64]:
        """Diagonal photon covariance in ``(E, theta, phi)``, shape ``E.shape + (3, 3)``."""
        s_e, s_t, s_p = self.sigmas(E, region)
        cov = np.zeros(np.shape(s_e) + (3, 3))
        cov[..., 0, 0] = s_e**2
        cov[..., 1, 1] = s_t**2
        cov[..., 2, 2] = s_p**2
        return cov

    def to_dict(self) -> dict[str, float]:
        """Plain-dict form, for metadata."""
        return {f: getattr(self, f) for f in ("energy_stochastic", "energy_power", "energy_constant", "energy_noise",
                                              "angle_stochastic", "angle_constant", "min_energy")}

"""Beams, four-vectors and Lorentz boosts, vectorised over events.

Conventions
-----------
Four-vectors are numpy arrays whose last axis holds ``(px, py, pz, E)`` in GeV.
Angles are in radians: ``theta`` is the polar angle to the +z axis (the
solenoid axis, pointing roughly along the electron beam), ``phi`` the azimuth
in the x-y plane. All functions broadcast over any leading axes, so an array of
shape ``(n_events, 3, 4)`` holds the three photons of ``n_events`` events.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from signal_models._common.beams import COLLIDER_BEAMS

logger = logging.getLogger(__name__)

__all__ = [
    "Beam",
    "p4_from_spherical",
    "spherical_from_p4",
    "invariant_mass",
    "boost",
    "cos_angle",
]


def p4_from_spherical(
    E: ArrayLike, theta: ArrayLike, phi: ArrayLike, mass: ArrayLike = 0.0
) -> NDArray[np.float64]:
    """Four-vectors from energy and direction.

    Parameters
    ----------
    E : array_like
        Energy in GeV.
    theta, phi : array_like
        Polar and azimuthal angle in rad.
    mass : array_like, optional
        Rest mass in GeV (0 for photons).

    Returns
    -------
    ndarray
        Shape ``broadcast(E, theta, phi) + (4,)``, ``(px, py, pz, E)`` in GeV.
    """
    E = np.asarray(E, dtype=float)
    theta = np.asarray(theta, dtype=float)
    phi = np.asarray(phi, dtype=float)
    p = np.sqrt(np.clip(E * E - np.asarray(mass, dtype=float) ** 2, 0.0, None))
    st = np.sin(theta)
    out = np.stack(
        np.broadcast_arrays(p * st * np.cos(phi), p * st * np.sin(phi), p * np.cos(theta), E),
        axis=-1,
    )
    return out


def spherical_from_p4(p4: ArrayLike) -> tuple[NDArray, NDArray, NDArray]:
    """Energy (GeV), polar angle and azimuth (rad) of four-vectors."""
    p4 = np.asarray(p4, dtype=float)
    px, py, pz, E = np.moveaxis(p4, -1, 0)
    p = np.sqrt(px * px + py * py + pz * pz)
    theta = np.arccos(np.clip(np.divide(pz, p, out=np.ones_like(p), where=p > 0), -1.0, 1.0))
    phi = np.arctan2(py, px)
    return E, theta, phi


def invariant_mass(*p4s: ArrayLike) -> NDArray[np.float64]:
    """Invariant mass (GeV) of the sum of the given four-vectors.

    Negative mass squared from rounding is clipped to zero.
    """
    total = np.sum(np.broadcast_arrays(*[np.asarray(p, dtype=float) for p in p4s]), axis=0)
    px, py, pz, E = np.moveaxis(total, -1, 0)
    m2 = E * E - px * px - py * py - pz * pz
    return np.sqrt(np.clip(m2, 0.0, None))


def boost(p4: ArrayLike, beta: ArrayLike) -> NDArray[np.float64]:
    """Lorentz-boost four-vectors by velocity ``beta``.

    A particle at rest in a frame moving with velocity ``beta`` (3-vector,
    units of c) relative to frame S has, after ``boost(p4_rest, beta)``, its
    four-momentum in S. ``boost(p4, -beta)`` is the inverse.

    Parameters
    ----------
    p4 : array_like, shape (..., 4)
    beta : array_like, shape (..., 3)
        Broadcast against ``p4[..., :3]``; ``|beta| < 1``.
    """
    p4 = np.asarray(p4, dtype=float)
    beta = np.asarray(beta, dtype=float)
    b2 = np.sum(beta * beta, axis=-1)
    if np.any(b2 >= 1.0):
        raise ValueError("boost: |beta| must be < 1")
    gamma = 1.0 / np.sqrt(1.0 - b2)
    p = p4[..., :3]
    E = p4[..., 3]
    bp = np.sum(beta * p, axis=-1)
    # (gamma - 1) / beta^2, written to stay finite as beta -> 0
    g2 = np.where(b2 > 0, (gamma - 1.0) / np.where(b2 > 0, b2, 1.0), 0.5)
    p_new = p + (g2 * bp + gamma * E)[..., None] * beta
    E_new = gamma * (E + bp)
    return np.concatenate([p_new, E_new[..., None]], axis=-1)


def cos_angle(a: ArrayLike, b: ArrayLike) -> NDArray[np.float64]:
    """Cosine of the opening angle between the 3-momenta of two four-vectors."""
    a = np.asarray(a, dtype=float)[..., :3]
    b = np.asarray(b, dtype=float)[..., :3]
    num = np.sum(a * b, axis=-1)
    den = np.sqrt(np.sum(a * a, axis=-1) * np.sum(b * b, axis=-1))
    return np.clip(np.divide(num, den, out=np.zeros_like(num), where=den > 0), -1.0, 1.0)


@dataclass(frozen=True)
class Beam:
    """Colliding e+e- beams.

    The electron beam (HER) and the positron beam (LER) cross at the origin;
    each is tilted by half the crossing angle from the z axis in the x-z
    plane, so that the total beam momentum has a small +x component (as at
    Belle II, where the solenoid axis bisects the two beams' directions).

    Parameters
    ----------
    e_her : float
        Electron-beam energy in GeV (moves along +z).
    e_ler : float
        Positron-beam energy in GeV (moves along -z).
    crossing_angle : float
        Full crossing angle in rad.
    e_spread_her, e_spread_ler : float
        Relative beam-energy spreads (1 sigma), used by the toy MC and the
        optional soft beam constraint of the kinematic fit.

    Examples
    --------
    >>> from bumphunt.kinematics import Beam
    >>> beam = Beam.belle2()
    >>> round(beam.sqrt_s, 3)  # GeV
    10.574
    >>> beam.p4.round(3)  # (px, py, pz, E) in GeV, in the lab
    array([ 0.456,  0.   ,  2.997, 11.   ])
    >>> round(Beam.babar().sqrt_s, 3), round(Beam.z_pole().sqrt_s, 2)
    (10.564, 91.19)
    """

    e_her: float = 7.0
    e_ler: float = 4.0
    crossing_angle: float = 0.083
    e_spread_her: float = 6.4e-4
    e_spread_ler: float = 8.0e-4

    def __post_init__(self) -> None:
        if not (self.e_her > 0 and self.e_ler > 0):
            raise ValueError(f"Beam energies must be positive, got e_her={self.e_her}, e_ler={self.e_ler} GeV")
        if not (0 <= self.crossing_angle < np.pi / 2):
            raise ValueError(f"crossing_angle must be in [0, pi/2) rad, got {self.crossing_angle}")

    @classmethod
    def belle2(cls) -> Beam:
        """SuperKEKB at the Upsilon(4S): 7 GeV e-, 4 GeV e+, 83 mrad crossing."""
        return cls(**COLLIDER_BEAMS["belle2"])

    @classmethod
    def babar(cls) -> Beam:
        """PEP-II at the Upsilon(4S): 9.0 GeV e- on 3.1 GeV e+, head-on.

        sqrt(s) = 2 sqrt(9.0 x 3.1) = 10.564 GeV (quoted as 10.58 GeV for
        PEP-II's nominal energies), beta gamma = 0.56. The relative beam-energy
        spreads are assumed equal to SuperKEKB's (a CM spread of about 5 MeV).
        """
        return cls(**COLLIDER_BEAMS["babar"])

    @classmethod
    def z_pole(cls, *, crossing_angle: float = 0.0) -> Beam:
        """Symmetric beams at sqrt(s) = m_Z (PDG mass from ``particle``)."""
        from signal_models._common.pdg import particle_mass

        m_z = particle_mass("Z")
        e = m_z / 2.0 / np.cos(crossing_angle / 2.0) if crossing_angle else m_z / 2.0
        return cls(e_her=e, e_ler=e, crossing_angle=crossing_angle, e_spread_her=1.0e-3, e_spread_ler=1.0e-3)

    @property
    def p4_her(self) -> NDArray[np.float64]:
        """Electron-beam four-vector (GeV), electron mass neglected."""
        a = self.crossing_angle / 2.0
        return np.array([self.e_her * np.sin(a), 0.0, self.e_her * np.cos(a), self.e_her])

    @property
    def p4_ler(self) -> NDArray[np.float64]:
        """Positron-beam four-vector (GeV), electron mass neglected."""
        a = self.crossing_angle / 2.0
        return np.array([self.e_ler * np.sin(a), 0.0, -self.e_ler * np.cos(a), self.e_ler])

    @property
    def p4(self) -> NDArray[np.float64]:
        """Total initial-state four-vector in the lab, ``(px, py, pz, E)`` in GeV."""
        return self.p4_her + self.p4_ler

    @property
    def sqrt_s(self) -> float:
        """Centre-of-mass energy in GeV."""
        return float(invariant_mass(self.p4))

    @property
    def s(self) -> float:
        """Mandelstam s in GeV^2."""
        return self.sqrt_s**2

    @property
    def boost(self) -> NDArray[np.float64]:
        """Velocity (units of c) of the CM frame in the lab."""
        p4 = self.p4
        return p4[:3] / p4[3]

    @property
    def beta_gamma(self) -> float:
        """|p| / sqrt(s) of the CM system in the lab (about 0.28 at Belle II)."""
        p4 = self.p4
        return float(np.linalg.norm(p4[:3]) / self.sqrt_s)

    def to_cm(self, p4: ArrayLike) -> NDArray[np.float64]:
        """Transform lab four-vectors to the CM frame (z along the HER in the CM)."""
        return boost(p4, -self.boost)

    def to_lab(self, p4: ArrayLike) -> NDArray[np.float64]:
        """Transform CM four-vectors to the lab frame."""
        return boost(p4, self.boost)

    def cm_axis(self) -> NDArray[np.float64]:
        """Unit vector of the electron-beam direction in the CM frame.

        Angular distributions of e+e- processes (e.g. 1 + cos^2 theta*) are
        defined relative to this axis.
        """
        her_cm = self.to_cm(self.p4_her)[:3]
        return her_cm / np.linalg.norm(her_cm)

    def to_dict(self) -> dict[str, float]:
        """Plain-dict form, for result files."""
        return {
            "e_her": self.e_her,
            "e_ler": self.e_ler,
            "crossing_angle": self.crossing_angle,
            "e_spread_her": self.e_spread_her,
            "e_spread_ler": self.e_spread_ler,
        }

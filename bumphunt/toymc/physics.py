"""Generator-level kinematics of the toy MC: two-body and three-body final states in the CM.

Everything is vectorised over events. Four-vectors are ``(px, py, pz, E)`` in
GeV. Angular distributions are defined relative to the electron-beam axis in
the CM frame (``Beam.cm_axis``); momenta are built in a frame whose z axis is
that beam axis and then rotated into CM coordinates and boosted to the lab.

Three-body final states (e+e- -> gamma gamma gamma and the processes whose
kinematics borrow it) are drawn from the lowest-order QED matrix element of
e+e- -> 3 gamma in the massless limit,

    |M|^2 = e^6 s sum_i a_i b_i (a_i^2 + b_i^2) / prod_j (a_j b_j),
    a_i = p+ . k_i,  b_i = p- . k_i,

whose normalisation is fixed by the soft-photon limit (it reduces to the
eikonal factor times |M(e+e- -> gamma gamma)|^2 = 2 e^4 (u/t + t/u)). It is
sampled by importance sampling (energies log-enhanced towards soft photons,
directions enhanced towards the beam axis as 1/sin^2) followed by
accept-reject, and its integral over the generation cuts gives the
e+e- -> 3 gamma cross-section (``ggg_cross_section_pb``).
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from ..kinematics import Beam, boost

logger = logging.getLogger(__name__)

__all__ = [
    "cm_basis",
    "sample_one_plus_cos2",
    "two_body_cm",
    "EventBeams",
    "event_beams",
    "decay_two_photons",
    "ThreeBodyCuts",
    "ggg_matrix_element",
    "sample_three_body_cm",
    "ggg_cross_section_pb",
    "give_masses",
]

ALPHA_EM = 1.0 / 137.035999
GEV2_TO_PB = 0.3893793721e9


def cm_basis(beam: Beam) -> NDArray[np.float64]:
    """Orthonormal basis (rows e1, e2, e3) of the CM frame with e3 along the electron beam.

    A vector with components ``v`` in the beam frame has CM components ``v @ basis``.
    """
    e3 = beam.cm_axis()
    x = np.array([1.0, 0.0, 0.0])
    e1 = x - np.dot(x, e3) * e3
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(e3, e1)
    return np.stack([e1, e2, e3])


def _unit(cos_t: NDArray, phi: NDArray) -> NDArray:
    sin_t = np.sqrt(np.clip(1.0 - cos_t * cos_t, 0.0, None))
    return np.stack([sin_t * np.cos(phi), sin_t * np.sin(phi), cos_t], axis=-1)


def sample_one_plus_cos2(n: int, rng: np.random.Generator) -> NDArray[np.float64]:
    """``n`` values of cos(theta) in [-1, 1] distributed as 1 + cos^2(theta).

    Inverse-CDF sampling: F(c) = (c + c^3/3 + 4/3) / (8/3), whose inverse is the
    real root of the depressed cubic c^3 + 3c - 3y = 0 (Cardano).
    """
    u = rng.random(n)
    y = 8.0 * u / 3.0 - 4.0 / 3.0  # c + c^3/3 = y
    q = 1.5 * y
    d = np.sqrt(q * q + 1.0)
    return np.cbrt(q + d) + np.cbrt(q - d)


@dataclass(frozen=True)
class EventBeams:
    """Per-event beams: CM energy (GeV) and CM velocity in the lab, shapes (n,) and (n, 3)."""

    sqrt_s: NDArray
    beta: NDArray

    def to_lab(self, p4: NDArray) -> NDArray[np.float64]:
        """Boost per-event CM four-vectors, shape (n, 4) or (n, k, 4), to the lab."""
        beta = self.beta if p4.ndim == 2 else self.beta[:, None, :]
        return boost(p4, beta)

    def scale_from_nominal(self, p4_cm: NDArray, nominal_sqrt_s: float) -> NDArray[np.float64]:
        """Rescale massless CM momenta generated at the nominal sqrt(s) to each event's sqrt(s)."""
        f = self.sqrt_s / nominal_sqrt_s
        return p4_cm * (f[:, None, None] if p4_cm.ndim == 3 else f[:, None])


def event_beams(n: int, beam: Beam, rng: np.random.Generator, *, spread: bool) -> EventBeams:
    """Beams of ``n`` events, with Gaussian beam-energy spreads (``Beam.e_spread_her/ler``) if ``spread``.

    The beam directions are kept; the CM-frame beam axis changes by O(1e-4) rad
    event to event, which is neglected (the nominal ``Beam.cm_axis`` is used).
    """
    if not spread or (beam.e_spread_her == 0 and beam.e_spread_ler == 0):
        return EventBeams(np.full(n, beam.sqrt_s), np.broadcast_to(beam.boost, (n, 3)))
    f_her = 1.0 + beam.e_spread_her * rng.standard_normal(n)
    f_ler = 1.0 + beam.e_spread_ler * rng.standard_normal(n)
    total = f_her[:, None] * beam.p4_her[None, :] + f_ler[:, None] * beam.p4_ler[None, :]
    m2 = total[:, 3] ** 2 - np.sum(total[:, :3] ** 2, axis=1)
    return EventBeams(np.sqrt(m2), total[:, :3] / total[:, 3:4])


def two_body_cm(
    n: int, m_x: float, rng: np.random.Generator, beam: Beam, *, sqrt_s: NDArray | None = None
) -> tuple[NDArray, NDArray]:
    """e+e- -> gamma X in the CM with a 1 + cos^2(theta*) distribution about the beam axis.

    Parameters
    ----------
    sqrt_s : ndarray, optional
        Per-event CM energies (GeV); default the nominal ``beam.sqrt_s``.

    Returns
    -------
    gamma, x : ndarray, shape (n, 4)
        CM four-vectors of the recoil photon and of X (mass ``m_x`` GeV).
    """
    w = np.full(n, beam.sqrt_s) if sqrt_s is None else np.asarray(sqrt_s, dtype=float)
    if not (m_x >= 0.0 and np.all(m_x < w)):
        raise ValueError(f"two_body_cm: mass {m_x} GeV must be in [0, sqrt(s) = {np.min(w):.4f}) GeV")
    e_gamma = (w**2 - m_x**2) / (2.0 * w)
    cos_t = sample_one_plus_cos2(n, rng)
    phi = rng.uniform(-np.pi, np.pi, n)
    u = _unit(cos_t, phi) @ cm_basis(beam)
    gamma = np.concatenate([e_gamma[:, None] * u, e_gamma[:, None]], axis=1)
    x = np.concatenate([-e_gamma[:, None] * u, (w - e_gamma)[:, None]], axis=1)
    return gamma, x


def decay_two_photons(p4: NDArray, mass: float | NDArray, rng: np.random.Generator) -> tuple[NDArray, NDArray]:
    """Isotropic decay X -> gamma gamma in the X rest frame, boosted with X's four-momentum.

    Parameters
    ----------
    p4 : ndarray, shape (n, 4)
        Four-momenta of the parents (any frame).
    mass : float or ndarray
        Parent mass in GeV.
    """
    n = len(p4)
    mass = np.broadcast_to(np.asarray(mass, dtype=float), (n,))
    cos_t = rng.uniform(-1.0, 1.0, n)
    phi = rng.uniform(-np.pi, np.pi, n)
    u = _unit(cos_t, phi) * (mass / 2.0)[:, None]
    g1 = np.concatenate([u, (mass / 2.0)[:, None]], axis=1)
    g2 = np.concatenate([-u, (mass / 2.0)[:, None]], axis=1)
    beta = p4[:, :3] / p4[:, 3:4]
    return boost(g1, beta), boost(g2, beta)


@dataclass(frozen=True)
class ThreeBodyCuts:
    """Generation cuts of the three-body engine, in the CM frame.

    Parameters
    ----------
    e_min : float
        Minimum energy of each of the three particles in GeV (infrared cut).
    cos_max : float
        Maximum |cos(theta*)| of each particle about the beam axis (collinear cut).
        The default 0.966 (15 to 165 degrees) contains the whole Belle II ECL
        after the boost to the lab.
    """

    e_min: float = 0.05
    cos_max: float = 0.966


def ggg_matrix_element(E: NDArray, cos_t: NDArray) -> NDArray[np.float64]:
    """Spin-summed and averaged |M|^2 of e+e- -> 3 gamma (massless), dimension GeV^-2.

    Parameters
    ----------
    E : ndarray, shape (..., 3)
        Photon energies in the CM (GeV).
    cos_t : ndarray, shape (..., 3)
        Cosine of each photon's angle to the beam axis in the CM.

    Notes
    -----
    With a_i b_i = s/4 E_i^2 sin^2 and a_i^2 + b_i^2 = s/2 E_i^2 (1 + cos^2), the
    matrix element in the module docstring becomes
    8 e^6 sum_i E_i^2 (1 + c_i^2) / prod_{j != i} (E_j^2 sin^2_j).
    """
    e2 = 4.0 * np.pi * ALPHA_EM
    d = E * E * (1.0 - cos_t * cos_t)  # E_j^2 sin^2_j
    num = E * E * (1.0 + cos_t * cos_t)
    prod = d[..., 0] * d[..., 1] * d[..., 2]
    total = num[..., 0] * d[..., 0] + num[..., 1] * d[..., 1] + num[..., 2] * d[..., 2]
    return 8.0 * e2**3 * total / prod


def _dalitz_proposal(n: int, x_min: float, rng: np.random.Generator) -> tuple[NDArray, NDArray]:
    """Energy fractions x_i = 2 E_i / sqrt(s) (sum 2, each <= 1), soft-enhanced.

    Mixture over which particle is soft: x_i log-uniform on [x_min, 1], x_k uniform
    on [1 - x_i, 1] for k = i+1. Returns ``x`` (n, 3) and the proposal density
    relative to the uniform density on the Dalitz triangle.
    """
    L = np.log(1.0 / x_min)
    chan = rng.integers(0, 3, n)
    xi = x_min ** rng.random(n)
    xk = 1.0 - xi + xi * rng.random(n)
    xl = 2.0 - xi - xk
    x = np.empty((n, 3))
    rows = np.arange(n)
    x[rows, chan] = xi
    x[rows, (chan + 1) % 3] = xk
    x[rows, (chan + 2) % 3] = xl
    # density in (x1, x2): (1/3) sum_i 1[x_i >= x_min] / (x_i^2 L); uniform density is 2
    with np.errstate(divide="ignore"):
        q = np.sum(np.where(x >= x_min, 1.0 / (np.maximum(x, 1e-300) ** 2 * L), 0.0), axis=1) / 3.0
    return x, q / 2.0


def _orient(x: NDArray, sqrt_s: float, cos_max: float, rng: np.random.Generator) -> tuple[dict, NDArray, NDArray]:
    """Place three momenta with energy fractions ``x`` in space, beam-enhanced.

    One particle j (chosen uniformly) gets a direction d with density
    proportional to 1/(1 - cos^2) for |cos| < cos_max, uniform azimuth, and the
    event plane a uniform rotation psi about d. Returns the orientation
    parameters (for ``_directions``), the cosines of the three momenta to the
    beam axis (n, 3) and the orientation density relative to the uniform
    (Haar) measure. Only the z components are computed here, since the weight
    needs nothing else; full vectors are built for accepted events only.
    """
    n = len(x)
    E = x * (sqrt_s / 2.0)
    # in-plane polar angles of the three momenta: particle 0 at angle 0,
    # particle 1 at the opening angle, particle 2 balancing both
    c01 = np.clip((E[:, 2] ** 2 - E[:, 0] ** 2 - E[:, 1] ** 2) / (2.0 * E[:, 0] * E[:, 1]), -1.0, 1.0)
    alpha = np.empty((n, 3))
    alpha[:, 0] = 0.0
    alpha[:, 1] = np.arccos(c01)
    alpha[:, 2] = np.arctan2(-E[:, 1] * np.sin(alpha[:, 1]), -E[:, 0] - E[:, 1] * c01)
    j = rng.integers(0, 3, n)
    rel = alpha - alpha[np.arange(n), j][:, None]
    eta_max = np.arctanh(cos_max)
    cj = np.tanh(rng.uniform(-eta_max, eta_max, n))
    sj = np.sqrt(1.0 - cj * cj)
    phij = rng.uniform(-np.pi, np.pi, n)
    psi = rng.uniform(-np.pi, np.pi, n)
    # u_k = sin(rel_k) perp + cos(rel_k) d, perp = cos(psi) e_theta(d) + sin(psi) e_phi(d)
    cos_t = -np.sin(rel) * (np.cos(psi) * sj)[:, None] + np.cos(rel) * cj[:, None]
    inside = np.abs(cos_t) < cos_max
    # density of cos for the chosen particle: 1/(2 eta_max (1 - c^2)); the uniform one is 1/2
    g = np.where(inside, 1.0 / (eta_max * (1.0 - np.where(inside, cos_t, 0.0) ** 2)), 0.0)
    params = {"rel": rel, "cj": cj, "sj": sj, "phij": phij, "psi": psi}
    return params, cos_t, np.mean(g, axis=1)


def _directions(params: dict, idx: NDArray) -> NDArray:
    """Unit vectors (m, 3, 3) in the beam frame of the proposals ``idx``."""
    rel = params["rel"][idx]
    cj, sj, phij, psi = (params[k][idx] for k in ("cj", "sj", "phij", "psi"))
    cp, sp = np.cos(phij), np.sin(phij)
    d = np.stack([sj * cp, sj * sp, cj], axis=1)
    e_theta = np.stack([cj * cp, cj * sp, -sj], axis=1)
    e_phi = np.stack([-sp, cp, np.zeros_like(sp)], axis=1)
    perp = np.cos(psi)[:, None] * e_theta + np.sin(psi)[:, None] * e_phi
    return np.sin(rel)[:, :, None] * perp[:, None, :] + np.cos(rel)[:, :, None] * d[:, None, :]


def _three_body_weighted(n: int, sqrt_s: float, cuts: ThreeBodyCuts, rng: np.random.Generator) -> tuple[NDArray, dict, NDArray]:
    """Proposal events: energies (n, 3), orientation parameters and weights.

    The weight is |M|^2 times the cut indicator divided by the proposal density
    relative to uniform massless three-body phase space, so that
    <w> = integral of |M|^2 dPhi_3 / Phi_3 within the cuts.
    """
    x_min = 2.0 * cuts.e_min / sqrt_s
    x, q_x = _dalitz_proposal(n, x_min, rng)
    params, cos_t, g = _orient(x, sqrt_s, cuts.cos_max, rng)
    E = x * (sqrt_s / 2.0)
    ok = np.all(x >= x_min, axis=1) & np.all(np.abs(cos_t) < cuts.cos_max, axis=1) & np.all(x <= 1.0, axis=1)
    w = np.zeros(n)
    w[ok] = ggg_matrix_element(E[ok], cos_t[ok]) / (q_x[ok] * g[ok])
    return E, params, w


@functools.lru_cache(maxsize=32)
def _pilot(sqrt_s: float, e_min: float, cos_max: float, n: int = 300_000) -> tuple[float, float, float]:
    """Mean weight, its standard error and the maximum weight from a fixed-seed pilot run."""
    rng = np.random.default_rng(np.random.SeedSequence(0x6767_6767))
    _, _, w = _three_body_weighted(n, sqrt_s, ThreeBodyCuts(e_min, cos_max), rng)
    mean = float(np.mean(w))
    err = float(np.std(w) / np.sqrt(n))
    w_max = float(np.max(w))
    logger.debug("three-body pilot: <w> = %.4g +- %.2g, w_max/<w> = %.1f", mean, err, w_max / mean)
    return mean, err, w_max


def ggg_cross_section_pb(sqrt_s: float, cuts: ThreeBodyCuts = ThreeBodyCuts()) -> tuple[float, float]:
    """Lowest-order sigma(e+e- -> 3 gamma) within the CM generation cuts, in pb.

    sigma = 1/(2s) * 1/3! * Phi_3 * <|M|^2>, with the massless three-body
    phase-space volume Phi_3 = s / (256 pi^3) and the average taken by Monte
    Carlo integration (fixed-seed pilot of 3e5 points, about 0.5% precision).

    Returns
    -------
    (sigma, error) : tuple of float
        Cross-section and its Monte Carlo integration error in pb.
    """
    mean, err, _ = _pilot(float(sqrt_s), float(cuts.e_min), float(cuts.cos_max))
    s = sqrt_s**2
    factor = 1.0 / (2.0 * s) / 6.0 * s / (256.0 * np.pi**3) * GEV2_TO_PB
    return mean * factor, err * factor


def sample_three_body_cm(n: int, rng: np.random.Generator, beam: Beam, cuts: ThreeBodyCuts = ThreeBodyCuts()) -> NDArray[np.float64]:
    """``n`` unweighted e+e- -> 3 gamma events in the CM, shape (n, 3, 4).

    Accept-reject on the importance-sampling weight with the maximum weight of
    the pilot run (weights above it, which are very rare, are accepted with
    probability one). The three particles are in random order.
    """
    sqrt_s = beam.sqrt_s
    mean, _, w_max = _pilot(float(sqrt_s), float(cuts.e_min), float(cuts.cos_max))
    basis = cm_basis(beam)
    out = np.empty((n, 3, 4))
    have = 0
    eff = max(mean / w_max, 1e-4)
    while have < n:
        need = n - have
        m = int(min(max(1.3 * need / eff, 1000), 250_000))  # cache-friendly batches
        E, params, w = _three_body_weighted(m, sqrt_s, cuts, rng)
        keep = rng.random(m) * w_max < w
        idx = np.nonzero(keep)[0][:need]
        k = len(idx)
        out[have : have + k, :, :3] = E[idx, :, None] * (_directions(params, idx) @ basis)
        out[have : have + k, :, 3] = E[idx]
        have += k
    return out


def give_masses(p4: NDArray, masses: NDArray) -> NDArray[np.float64]:
    """Give CM momenta (summing to zero) masses at fixed total energy (RAMBO-style rescaling).

    Solves sum_i sqrt(m_i^2 + xi^2 |p_i|^2) = sqrt(s) for xi by Newton's method
    and scales all three-momenta by xi; momentum conservation is kept exactly.
    The small phase-space weight of this mapping is neglected.

    Parameters
    ----------
    p4 : ndarray, shape (n, k, 4)
        Massless CM four-vectors.
    masses : ndarray, shape (n, k) or (k,)
        Masses in GeV.
    """
    p = p4[..., :3]
    pp = np.sum(p * p, axis=-1)
    w = np.sum(p4[..., 3], axis=-1)
    m2 = np.broadcast_to(np.asarray(masses, dtype=float) ** 2, pp.shape)
    xi = np.ones(pp.shape[0])
    for _ in range(50):
        e = np.sqrt(m2 + (xi**2)[:, None] * pp)
        f = np.sum(e, axis=1) - w
        df = np.sum(xi[:, None] * pp / e, axis=1)
        step = f / df
        xi = xi - step
        if np.max(np.abs(step)) < 1e-13:
            break
    out = np.empty_like(p4)
    out[..., :3] = p * xi[:, None, None]
    out[..., 3] = np.sqrt(m2 + (xi**2)[:, None] * pp)
    return out

"""Checks and preparation of the inputs of a kinematic fit.

Whole-call checks raise ``InputError`` (array shapes, the beam, the beam
covariance); per-event tests (``event_status``) never raise: an invalid
event gets a status code and is returned with its measured values.
Units: GeV, rad.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ..errors import InputError
from ..kinematics import Beam
from .options import SYMMETRY_TOL
from .result import BAD_COV, BAD_ENERGY, BAD_FINITE, BAD_THETA, OK

__all__ = ["check_arrays", "resolve_beam", "beam_covariance", "resolve_beam_cov", "event_status", "BeamCovSpec"]

Array = NDArray[np.float64]
#: What ``fit(..., beam_cov=)`` accepts: None/False (hard beam constraint), True or "spread"
#: (covariance from the beam-energy spreads) or a (4, 4) covariance of (px, py, pz, E) in GeV^2.
BeamCovSpec = bool | str | ArrayLike | None


def check_arrays(E: ArrayLike, theta: ArrayLike, phi: ArrayLike, cov: ArrayLike) -> tuple[Array, Array, Array, Array]:
    """The photon arrays as float64: ``E, theta, phi`` (n, 3) and ``cov`` (n, 3, 3, 3).

    Raises
    ------
    InputError
        Non-numeric input or wrong shapes.
    """
    arrs = []
    for name, x in (("E", E), ("theta", theta), ("phi", phi)):
        try:
            a = np.asarray(x, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise InputError(f"kinfit: {name} must be a numeric array of shape (n, 3), got {type(x).__name__}") from exc
        if a.ndim != 2 or a.shape[1] != 3:
            raise InputError(f"kinfit: {name} must have shape (n, 3) (three photons per event), got {a.shape}")
        arrs.append(a)
    n = arrs[0].shape[0]
    for name, a in zip(("theta", "phi"), arrs[1:]):
        if a.shape[0] != n:
            raise InputError(f"kinfit: {name} has {a.shape[0]} events but E has {n}")
    try:
        c = np.asarray(cov, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputError("kinfit: cov must be a numeric array of shape (n, 3, 3, 3)") from exc
    if c.shape != (n, 3, 3, 3):
        raise InputError(f"kinfit: cov must have shape (n, 3, 3, 3) = ({n}, 3, 3, 3) (per photon 3x3 in E, theta, phi), got {c.shape}")
    return arrs[0], arrs[1], arrs[2], c


def resolve_beam(beam: Beam | None) -> Beam:
    """``beam``, or ``Beam.belle2()`` when None; InputError for anything that is not a ``Beam``."""
    beam = Beam.belle2() if beam is None else beam
    if not isinstance(beam, Beam):
        raise InputError(f"kinfit: beam must be a bumphunt.kinematics.Beam, got {type(beam).__name__}")
    return beam


def beam_covariance(beam: Beam) -> Array:
    """Covariance (4x4, GeV^2) of the lab beam four-momentum from the energy spreads.

    Each beam's energy fluctuates independently with relative width
    ``e_spread_her`` / ``e_spread_ler``; a massless beam particle's
    four-vector scales with its energy, so ``Vb = sum_b sigma_b^2 u_b u_b^T``
    with ``u_b = p4_b / E_b``. The matrix has rank 2.
    """
    out = np.zeros((4, 4))
    for p4, e, spread in ((beam.p4_her, beam.e_her, beam.e_spread_her), (beam.p4_ler, beam.e_ler, beam.e_spread_ler)):
        u = p4 / e
        out += (spread * e) ** 2 * np.outer(u, u)
    return out


def resolve_beam_cov(beam: Beam, beam_cov: BeamCovSpec) -> Array | None:
    """The covariance (4, 4) in GeV^2 of the beam four-momentum, or None for a hard beam constraint.

    ``beam_cov`` is None/False (hard constraint), True or ``"spread"``
    (``beam_covariance(beam)``) or a symmetric positive semi-definite
    (4, 4) array of (px, py, pz, E), which is returned symmetrised.
    """
    if beam_cov is None or beam_cov is False:
        return None
    if beam_cov is True or (isinstance(beam_cov, str) and beam_cov == "spread"):
        return beam_covariance(beam)
    if isinstance(beam_cov, str):
        raise InputError(f"kinfit: beam_cov must be None, 'spread' or a 4x4 covariance in GeV^2, got {beam_cov!r}")
    Vb = np.asarray(beam_cov, dtype=np.float64)
    if Vb.shape != (4, 4) or not np.all(np.isfinite(Vb)):
        raise InputError(f"kinfit: beam_cov must be a finite (4, 4) covariance of (px, py, pz, E) in GeV^2, got shape {Vb.shape}")
    if not np.allclose(Vb, Vb.T, rtol=1e-10, atol=1e-15) or np.linalg.eigvalsh(Vb).min() < -1e-12 * max(np.abs(Vb).max(), 1e-300):
        raise InputError("kinfit: beam_cov must be symmetric positive semi-definite")
    return 0.5 * (Vb + Vb.T)


def event_status(ET: Array, tT: Array, pT: Array, cT: Array) -> NDArray[np.int8]:
    """Status per event from the input tests (``OK`` = 0 when the event can be fitted).

    Parameters
    ----------
    ET, tT, pT : ndarray, shape (3, m)
        Measured E (GeV), theta, phi (rad), component-first (photon, event).
    cT : ndarray, shape (3, 3, 3, m)
        Photon covariances as (a, b, photon, event).

    Returns
    -------
    ndarray of int8, shape (m,)
        The first failed test in the order ``BAD_FINITE`` (NaN/inf anywhere),
        ``BAD_ENERGY`` (E <= 0), ``BAD_THETA`` (theta outside (0, pi)),
        ``BAD_COV`` (a photon covariance not symmetric to ``SYMMETRY_TOL`` or
        with a leading minor <= 0), else ``OK``. The compiled engine applies
        the same tests in the same order inside its kernel.
    """
    m = ET.shape[1]
    status = np.zeros(m, dtype=np.int8)
    with np.errstate(invalid="ignore", over="ignore"):
        finite = np.isfinite(ET).all(0) & np.isfinite(tT).all(0) & np.isfinite(pT).all(0)
        finite &= np.isfinite(cT.reshape(27, m)).all(0)
        status[~finite] = BAD_FINITE
        status[(status == OK) & ~(ET > 0).all(0)] = BAD_ENERGY
        status[(status == OK) & ~((tT > 0) & (tT < np.pi)).all(0)] = BAD_THETA
        c00, c11, c22 = cT[0, 0], cT[1, 1], cT[2, 2]
        c01, c02, c12 = cT[0, 1], cT[0, 2], cT[1, 2]
        d01, d02, d12 = c01 - cT[1, 0], c02 - cT[2, 0], c12 - cT[2, 1]
        if d01.any() or d02.any() or d12.any():
            scale = np.sqrt(np.abs(c00 * c11)) + np.sqrt(np.abs(c00 * c22)) + np.sqrt(np.abs(c11 * c22))
            asym = (np.abs(d01) + np.abs(d02) + np.abs(d12)) > SYMMETRY_TOL * scale
        else:
            asym = np.zeros(c00.shape, dtype=bool)
        m2 = c00 * c11 - c01 * c01
        det = c00 * (c11 * c22 - c12 * c12) - c01 * (c01 * c22 - c12 * c02) + c02 * (c01 * c12 - c11 * c02)
        notpd = ~((c00 > 0) & (m2 > 0) & (det > 0)) | asym
    status[(status == OK) & notpd.any(0)] = BAD_COV
    return status

"""Exact toy events for validating the kinematic fit and the photon calibration.

These generators produce final states that satisfy four-momentum
conservation exactly (massless photons, no beam-energy spread, no cluster
merging, prompt decays) and smear them with Gaussian noise of exactly the
covariance they return. On such events the 4C fit must give unit-width pulls,
a chi2 with 4 degrees of freedom and flat p-values, which is what the tests
check. The full detector simulation lives in ``bumphunt.toymc``.

Units: GeV, rad.
"""

from __future__ import annotations

import logging

import numpy as np
from numpy.typing import NDArray

from ..events.detector import REGION_BARREL, REGION_NONE, Resolution, TrackResolution, ecl_region
from ..kinematics import Beam, boost, spherical_from_p4

logger = logging.getLogger(__name__)

__all__ = ["random_directions", "signal_events", "ggg_events", "smear_photons", "mumugamma_events", "three_photon_sample"]


def random_directions(n: int, rng: np.random.Generator, *, axis_weight: bool = False) -> NDArray[np.float64]:
    """Unit vectors, isotropic or distributed as 1 + cos^2(theta) about z. Shape (n, 3)."""
    if axis_weight:
        # accept-reject on 1 + c^2 (max 2)
        c = np.empty(0)
        while c.size < n:
            cand = rng.uniform(-1, 1, 2 * n)
            keep = rng.uniform(0, 2, cand.size) < 1 + cand**2
            c = np.concatenate([c, cand[keep]])
        c = c[:n]
    else:
        c = rng.uniform(-1, 1, n)
    phi = rng.uniform(-np.pi, np.pi, n)
    s = np.sqrt(1 - c * c)
    return np.stack([s * np.cos(phi), s * np.sin(phi), c], axis=-1)


def _cm_frame_rotate(v: NDArray, beam: Beam) -> NDArray:
    """Rotate CM vectors given about +z so that +z becomes the CM electron axis."""
    ax = beam.cm_axis()
    z = np.array([0.0, 0.0, 1.0])
    k = np.cross(z, ax)
    s = np.linalg.norm(k)
    c = float(np.dot(z, ax))
    if s < 1e-15:
        return v
    k = k / s
    K = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    R = np.eye(3) + s * K + (1 - c) * K @ K
    return v @ R.T


def signal_events(n: int, m_a: float, *, beam: Beam, rng: np.random.Generator) -> NDArray[np.float64]:
    """True lab four-momenta (n, 3, 4) of e+e- -> gamma a, a -> gamma gamma.

    Photon order: 0, 1 from the ALP, 2 the recoil photon. The recoil direction
    follows 1 + cos^2(theta*) about the electron axis in the CM; the decay is
    isotropic in the ALP rest frame.
    """
    rs = beam.sqrt_s
    if not (0 < m_a < rs):
        raise ValueError(f"m_a must be in (0, sqrt(s) = {rs:.3f}) GeV, got {m_a}")
    k = (rs * rs - m_a * m_a) / (2 * rs)
    u = _cm_frame_rotate(random_directions(n, rng, axis_weight=True), beam)
    recoil = np.concatenate([k * u, np.full((n, 1), k)], axis=1)
    a = np.concatenate([-k * u, np.full((n, 1), rs - k)], axis=1)
    d = random_directions(n, rng)
    g1 = np.concatenate([0.5 * m_a * d, np.full((n, 1), 0.5 * m_a)], axis=1)
    g2 = np.concatenate([-0.5 * m_a * d, np.full((n, 1), 0.5 * m_a)], axis=1)
    beta_a = a[:, :3] / a[:, 3:]
    g1 = boost(g1, beta_a)
    g2 = boost(g2, beta_a)
    cm = np.stack([g1, g2, recoil], axis=1)
    return beam.to_lab(cm)


def ggg_events(n: int, *, beam: Beam, rng: np.random.Generator, e_min_cm: float = 0.3) -> NDArray[np.float64]:
    """True lab four-momenta (n, 3, 4) of three massless photons, flat three-body phase space in the CM.

    Each photon has at least ``e_min_cm`` GeV in the CM.
    """
    rs = beam.sqrt_s
    out = np.empty((0, 2))
    while out.shape[0] < n:
        x = rng.uniform(0, rs / 2, (2 * n + 10, 2))
        e3 = rs - x.sum(1)
        ok = (e3 <= rs / 2) & (e3 >= e_min_cm) & (x.min(1) >= e_min_cm)
        out = np.concatenate([out, x[ok]])
    e1, e2 = out[:n, 0], out[:n, 1]
    e3 = rs - e1 - e2
    # photon 1 along z, photon 2 in the x-z plane; momentum balance fixes the angle
    c12 = (rs * rs - 2 * rs * (e1 + e2) + 2 * e1 * e2) / (2 * e1 * e2)
    c12 = np.clip(c12, -1, 1)
    s12 = np.sqrt(1 - c12 * c12)
    p1 = np.stack([np.zeros(n), np.zeros(n), e1], -1)
    p2 = np.stack([e2 * s12, np.zeros(n), e2 * c12], -1)
    p3 = -(p1 + p2)
    # random rotation (uniform on SO(3)) from a random unit quaternion
    q = rng.normal(size=(n, 4))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    w, xq, yq, zq = q.T
    R = np.stack([
        np.stack([1 - 2 * (yq * yq + zq * zq), 2 * (xq * yq - zq * w), 2 * (xq * zq + yq * w)], -1),
        np.stack([2 * (xq * yq + zq * w), 1 - 2 * (xq * xq + zq * zq), 2 * (yq * zq - xq * w)], -1),
        np.stack([2 * (xq * zq - yq * w), 2 * (yq * zq + xq * w), 1 - 2 * (xq * xq + yq * yq)], -1),
    ], -2)
    ps = np.stack([p1, p2, p3], 1)
    ps = np.einsum("nij,nkj->nki", R, ps)
    es = np.stack([e1, e2, e3], 1)
    cm = np.concatenate([ps, es[..., None]], -1)
    return beam.to_lab(cm)


def smear_photons(
    p4: NDArray,
    *,
    rng: np.random.Generator,
    resolution: Resolution | None = None,
    corr_e_theta: float = 0.0,
    cov: NDArray | None = None,
) -> dict[str, NDArray]:
    """Gaussian smearing of photons in (E, theta, phi) with a known covariance.

    Parameters
    ----------
    p4 : ndarray, shape (n, k, 4)
        True photon four-momenta (GeV).
    resolution : Resolution, optional
        Resolution model evaluated at the true energy and region (barrel
        values outside the ECL acceptance). Default ``Resolution()``.
    corr_e_theta : float
        Correlation coefficient between E and theta added to each photon's
        covariance (0 by default).
    cov : ndarray, shape (n, k, 3, 3), optional
        Use this covariance instead of the resolution model.

    Returns
    -------
    dict
        ``E, theta, phi, region`` (n, k) measured, ``cov`` (n, k, 3, 3) the
        covariance used for the smearing, ``mc_E, mc_theta, mc_phi`` truth.
    """
    resolution = Resolution() if resolution is None else resolution
    E, th, ph = spherical_from_p4(p4)
    region = ecl_region(th)
    if cov is None:
        reg_eval = np.where(region == REGION_NONE, REGION_BARREL, region)
        cov = resolution.covariance(E, reg_eval)
        if corr_e_theta:
            c = corr_e_theta * np.sqrt(cov[..., 0, 0] * cov[..., 1, 1])
            cov[..., 0, 1] = c
            cov[..., 1, 0] = c
    Lc = np.linalg.cholesky(cov)
    z = rng.standard_normal(E.shape + (3,))
    d = np.einsum("...ij,...j->...i", Lc, z)
    Em = E + d[..., 0]
    tm = th + d[..., 1]
    pm = ph + d[..., 2]
    pm = np.mod(pm + np.pi, 2 * np.pi) - np.pi
    return {"E": Em, "theta": tm, "phi": pm, "region": ecl_region(tm).astype(np.int32), "cov": cov,
            "mc_E": E, "mc_theta": th, "mc_phi": ph}


def mumugamma_events(
    n: int,
    *,
    beam: Beam,
    rng: np.random.Generator,
    resolution: Resolution | None = None,
    track_resolution: TrackResolution | None = None,
    e_gamma_range: tuple[float, float] = (0.2, 4.5),
) -> dict[str, NDArray]:
    """Control events e+e- -> mu+ mu- gamma with smeared photon and muon tracks.

    The photon energy in the CM is drawn from ``1/k`` in ``e_gamma_range``
    (GeV), its direction isotropically; the muon pair decays isotropically in
    its rest frame. Photons are smeared with ``resolution`` (Gaussian, exact
    covariance), muons with ``track_resolution``.

    Returns
    -------
    dict
        Photon ``E, theta, phi, region, cov, mc_E`` (n,) and muon momenta
        ``mu_p3`` (n, 2, 3) measured, ``mu_p3_true`` (n, 2, 3), ``mu_charge`` (n, 2).
    """
    from signal_models._common.pdg import particle_mass


    track_resolution = TrackResolution() if track_resolution is None else track_resolution
    rs = beam.sqrt_s
    lo, hi = e_gamma_range
    k = lo * (hi / lo) ** rng.uniform(0, 1, n)
    u = random_directions(n, rng)
    gam = np.concatenate([k[:, None] * u, k[:, None]], 1)
    M2 = rs * rs - 2 * rs * k
    M = np.sqrt(M2)
    pair = np.concatenate([-k[:, None] * u, (rs - k)[:, None]], 1)
    pst = np.sqrt(np.clip(M2 / 4 - particle_mass("mu") ** 2, 0, None))
    d = random_directions(n, rng)
    m1 = np.concatenate([pst[:, None] * d, (M / 2)[:, None]], 1)
    m2 = np.concatenate([-pst[:, None] * d, (M / 2)[:, None]], 1)
    beta = pair[:, :3] / pair[:, 3:]
    m1 = boost(m1, beta)
    m2 = boost(m2, beta)
    lab = beam.to_lab(np.stack([gam, m1, m2], 1))
    ph = smear_photons(lab[:, :1], rng=rng, resolution=resolution)
    mu_true = lab[:, 1:, :3]
    mu_meas = track_resolution.smear(mu_true, rng=rng)
    out = {key: v[:, 0] for key, v in ph.items()}
    out["mu_p3"] = mu_meas
    out["mu_p3_true"] = mu_true
    out["mu_charge"] = np.tile(np.array([-1, 1], dtype=np.int32), (n, 1))
    return out


def three_photon_sample(
    n: int,
    *,
    beam: Beam,
    rng: np.random.Generator,
    m_a: float | None = None,
    resolution: Resolution | None = None,
    corr_e_theta: float = 0.0,
    sort: bool = True,
    p4: NDArray | None = None,
) -> dict[str, NDArray]:
    """A three-photon dict (contract of ``bumphunt.events.preselection``) of exact toy events.

    Signal when ``m_a`` is given (before sorting: 0, 1 ALP photons, 2 the
    recoil), else flat-phase-space ggg; or the given true four-momenta
    ``p4`` (n, 3, 4). With ``sort`` (default) the photons are ordered by
    measured energy (descending) as the pre-selection does; note that this
    ordering selects upward fluctuations for the first photon, so unbiased
    per-position pull tests use ``sort=False``.
    """
    if p4 is None:
        p4 = signal_events(n, m_a, beam=beam, rng=rng) if m_a is not None else ggg_events(n, beam=beam, rng=rng)
    sm = smear_photons(p4, rng=rng, resolution=resolution, corr_e_theta=corr_e_theta)
    order = np.argsort(-sm["E"], axis=1) if sort else np.tile(np.arange(3), (n, 1))
    ev: dict[str, NDArray] = {}
    for key in ("E", "theta", "phi", "region", "mc_E", "mc_theta", "mc_phi"):
        ev[key] = np.take_along_axis(sm[key], order, 1)
    ev["cov"] = np.take_along_axis(sm["cov"], order[:, :, None, None], 1)
    ev["time"] = np.zeros((n, 3))
    inv = np.argsort(order, axis=1)  # original position -> sorted position
    if m_a is not None:
        ev["truth_a1"] = inv[:, 0].astype(np.int32)
        ev["truth_a2"] = inv[:, 1].astype(np.int32)
        ev["truth_recoil"] = inv[:, 2].astype(np.int32)
        ev["mc_ma"] = np.full(n, float(m_a))
        ev["process"] = np.zeros(n, dtype=np.int32)
    else:
        for key in ("truth_a1", "truth_a2", "truth_recoil"):
            ev[key] = np.full(n, -1, dtype=np.int32)
        ev["mc_ma"] = np.full(n, -1.0)
        ev["process"] = np.ones(n, dtype=np.int32)
    ev["event"] = np.arange(n, dtype=np.int64)
    ev["weight"] = np.ones(n)
    return ev

"""Small, fast three-photon event generator for selector development and tests.

This is *not* the toy MC of ``bumphunt.toymc`` (which writes full ntuples with
tracks, timing, beam background and metadata). It produces directly the
"three-photon events" dict of the data contracts (exactly three photons per
event, sorted by energy), so the feature and Punzi-net code can be tested and
benchmarked on its own:

- signal: e+e- -> gamma a, a -> gamma gamma with the recoil photon at the CM
  energy ``(s - m^2) / (2 sqrt(s))``, a ``1 + cos^2 theta*`` angular
  distribution about the electron-beam axis, and an isotropic ALP decay in
  its rest frame;
- background (``ggg``): three massless photons from three-body phase space,
  with a soft-photon enhancement (density ``~ 1 / (x_min + 0.03)`` in the
  Dalitz plane, ``x_i = 2 E_i / sqrt(s)``) and a forward-peaked orientation
  of the hardest photon (``~ (1 + c^2) / (1 - 0.995 c^2)``, ``c`` its CM
  ``cos theta*``), a caricature of the QED process;
- background (``gg_bb``, stored with the ``eeg`` process code): two hard
  back-to-back photons (e+e- -> gamma gamma-like, or e+e- -> e+e- with both
  tracks lost, ``(1 + c^2) / (1 - 0.995 c^2)``) plus one unrelated
  beam-background cluster (exponential energy, mean 0.25 GeV, isotropic in
  the lab, random time). Such events do not satisfy three-body kinematics,
  which the features (and a kinematic fit) can see.

Photons are smeared with ``bumphunt.events.detector.Resolution`` and must pass a
simple acceptance (E > 0.1 GeV, 17 deg < theta < 150 deg lab, ALP photons
separated by more than ``min_separation`` rad, 0.8 < M_ggg / sqrt(s) < 1.05).
All loops are over rejection-sampling rounds, never over events.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ..events.detector import CDC_THETA_MAX, CDC_THETA_MIN, Resolution, ecl_region
from ..kinematics import Beam, invariant_mass, p4_from_spherical, spherical_from_p4

logger = logging.getLogger(__name__)

__all__ = ["signal_events", "background_events", "beam_background_events", "synthetic_data", "concatenate_events", "synthetic_sample"]

PHOTON_KEYS = ("E", "theta", "phi", "time", "region", "mc_E", "mc_theta", "mc_phi")


def _cm_basis(beam: Beam) -> NDArray[np.float64]:
    """Orthonormal basis (rows e1, e2, e3) of the CM frame with e3 along the electron beam."""
    e3 = beam.cm_axis()
    trial = np.array([1.0, 0.0, 0.0]) if abs(e3[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    e1 = trial - np.dot(trial, e3) * e3
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(e3, e1)
    return np.stack([e1, e2, e3])


def _sample_cos(n: int, rng: np.random.Generator, density: Any, dmax: float) -> NDArray[np.float64]:
    """Rejection-sample n values of cos(theta) in [-1, 1] from an unnormalised density (max ``dmax``)."""
    out = np.empty(0)
    while out.size < n:
        c = rng.uniform(-1.0, 1.0, size=2 * (n - out.size) + 16)
        keep = rng.uniform(0.0, dmax, size=c.size) < density(c)
        out = np.concatenate([out, c[keep]])
    return out[:n]


def _sample_forward(n: int, rng: np.random.Generator, beta: float) -> NDArray[np.float64]:
    """n values of cos(theta) from ``(1 + c^2) / (1 - beta^2 c^2)``: inverse transform of the pole, rejection on 1 + c^2."""
    out = np.empty(0)
    while out.size < n:
        k = 2 * (n - out.size) + 16
        c = np.tanh(rng.uniform(-1.0, 1.0, k) * np.arctanh(beta)) / beta
        out = np.concatenate([out, c[rng.uniform(0.0, 2.0, k) < 1.0 + c * c]])
    return out[:n]


def _directions(cos_t: NDArray, phi: NDArray, basis: NDArray) -> NDArray[np.float64]:
    s = np.sqrt(np.clip(1.0 - cos_t**2, 0.0, None))
    local = np.stack([s * np.cos(phi), s * np.sin(phi), cos_t], axis=-1)
    return local @ basis


def _smear_and_pack(p4_lab: NDArray, rng: np.random.Generator, resolution: Resolution) -> dict[str, NDArray]:
    """Detector smearing of true lab photons (n, 3, 4) -> photon columns (n, 3)."""
    E_t, th_t, ph_t = spherical_from_p4(p4_lab)
    region = ecl_region(th_t)
    s_e, s_t, s_p = resolution.sigmas(E_t, region)
    E = E_t + s_e * rng.standard_normal(E_t.shape)
    theta = th_t + s_t * rng.standard_normal(E_t.shape)
    phi = ph_t + s_p * rng.standard_normal(E_t.shape)
    phi = (phi + np.pi) % (2 * np.pi) - np.pi
    time = rng.normal(0.0, 5.0, size=E_t.shape)
    return {"E": E, "theta": theta, "phi": phi, "time": time, "region": ecl_region(theta).astype(np.int32),
            "mc_E": E_t, "mc_theta": th_t, "mc_phi": ph_t}


def _accept(ph: dict[str, NDArray], sqrt_s: float) -> NDArray[np.bool_]:
    ok = np.all((ph["E"] > 0.1) & (ph["theta"] > CDC_THETA_MIN) & (ph["theta"] < CDC_THETA_MAX), axis=1)
    m3 = invariant_mass(*[p4_from_spherical(ph["E"][:, q], ph["theta"][:, q], ph["phi"][:, q]) for q in range(3)])
    return ok & (m3 > 0.8 * sqrt_s) & (m3 < 1.05 * sqrt_s)


def _sort_by_energy(ph: dict[str, NDArray], truth: NDArray) -> tuple[dict[str, NDArray], NDArray]:
    """Sort the three photons of each event by measured energy (descending); remap truth positions."""
    order = np.argsort(-ph["E"], axis=1)
    out = {k: np.take_along_axis(v, order, axis=1) for k, v in ph.items()}
    inverse = np.argsort(order, axis=1)  # original position -> new position
    new_truth = np.take_along_axis(inverse, truth, axis=1)
    return out, new_truth


def signal_events(
    m_a: ArrayLike,
    n_per_mass: int,
    *,
    rng: np.random.Generator,
    beam: Beam | None = None,
    resolution: Resolution | None = None,
    min_separation: float = 0.02,
) -> tuple[dict[str, NDArray], dict[float, int]]:
    """Generate ``n_per_mass`` signal events at each ALP mass and keep those in acceptance.

    Parameters
    ----------
    m_a : array_like
        ALP masses in GeV (each ``< sqrt(s)``).
    n_per_mass : int
        Events generated per mass (before acceptance): the ``N_gen`` of the
        efficiency.
    rng : numpy.random.Generator
    beam : Beam, optional
        Default ``Beam.belle2()``.
    resolution : Resolution, optional
        Photon resolution; default ``Resolution()``.
    min_separation : float
        Minimal lab opening angle (rad) of the two ALP photons; closer pairs
        merge into one cluster and the event is lost.

    Returns
    -------
    events : dict
        Three-photon events dict (contracts), ``process`` 0, ``weight`` 1.
    n_generated : dict
        ``{mass: n_per_mass}``.
    """
    beam = beam or Beam.belle2()
    resolution = resolution or Resolution()
    masses = np.atleast_1d(np.asarray(m_a, dtype=float))
    sqrt_s = beam.sqrt_s
    if np.any(masses <= 0) or np.any(masses >= sqrt_s):
        raise ValueError(f"signal_events: masses must be in (0, {sqrt_s:.3f}) GeV, got {masses}")
    m = np.repeat(masses, n_per_mass)
    n = m.size
    basis = _cm_basis(beam)
    e_rec = (sqrt_s**2 - m**2) / (2.0 * sqrt_s)
    cos_r = _sample_cos(n, rng, lambda c: 1.0 + c * c, 2.0)
    n_rec = _directions(cos_r, rng.uniform(-np.pi, np.pi, n), basis)
    p_rec = np.concatenate([e_rec[:, None] * n_rec, e_rec[:, None]], axis=1)
    p_alp = np.concatenate([-e_rec[:, None] * n_rec, (sqrt_s - e_rec)[:, None]], axis=1)
    # isotropic two-body decay in the ALP rest frame
    d = _directions(rng.uniform(-1.0, 1.0, n), rng.uniform(-np.pi, np.pi, n), np.eye(3))
    half = 0.5 * m[:, None]
    g1 = np.concatenate([half * d, half], axis=1)
    g2 = np.concatenate([-half * d, half], axis=1)
    from ..kinematics import boost

    beta = p_alp[:, :3] / p_alp[:, 3:4]
    g1, g2 = boost(g1, beta), boost(g2, beta)
    p4_cm = np.stack([g1, g2, p_rec], axis=1)
    p4_lab = beam.to_lab(p4_cm)
    ph = _smear_and_pack(p4_lab, rng, resolution)
    cosang = np.sum(p4_lab[:, 0, :3] * p4_lab[:, 1, :3], axis=1) / (p4_lab[:, 0, 3] * p4_lab[:, 1, 3])
    ok = _accept(ph, sqrt_s) & (np.arccos(np.clip(cosang, -1, 1)) > min_separation)
    ph = {k: v[ok] for k, v in ph.items()}
    truth = np.tile(np.arange(3), (int(ok.sum()), 1))
    ph, truth = _sort_by_energy(ph, truth)
    events = dict(ph)
    nk = int(ok.sum())
    events.update(
        event=np.arange(nk, dtype=np.int64),
        process=np.zeros(nk, dtype=np.int32),
        weight=np.ones(nk),
        mc_ma=m[ok],
        truth_a1=truth[:, 0].astype(np.int32),
        truth_a2=truth[:, 1].astype(np.int32),
        truth_recoil=truth[:, 2].astype(np.int32),
    )
    _add_cov(events, resolution)
    return events, {float(x): int(n_per_mass) for x in masses}


def background_events(
    n: int,
    *,
    rng: np.random.Generator,
    beam: Beam | None = None,
    resolution: Resolution | None = None,
    xsec_pb: float = 40.0,
    lumi_fb: float = 1.0,
) -> dict[str, NDArray]:
    """Generate ``n`` toy e+e- -> ggg events; keep those in acceptance.

    ``weight`` normalises the sample to ``lumi_fb`` (fb^-1) for a cross-section
    of ``xsec_pb`` (pb) before acceptance: ``xsec_pb * 1000 * lumi_fb / n``.
    """
    beam = beam or Beam.belle2()
    resolution = resolution or Resolution()
    sqrt_s = beam.sqrt_s
    # Dalitz plane of massless three-body phase space: (x1, x2) uniform in the triangle
    x = np.empty((0, 3))
    while x.shape[0] < n:
        k = 3 * (n - x.shape[0]) + 16
        x1, x2 = rng.uniform(0, 1, k), rng.uniform(0, 1, k)
        x3 = 2.0 - x1 - x2
        xs = np.stack([x1, x2, x3], axis=1)
        ok = (x3 <= 1.0) & (x3 >= 0.0)
        xs = xs[ok]
        w = 0.03 / (xs.min(axis=1) + 0.03)
        xs = xs[rng.uniform(0, 1, xs.shape[0]) < w]
        x = np.concatenate([x, xs])
    x = x[:n]
    E = 0.5 * sqrt_s * x
    # momenta in the event plane: photon 0 along +X, photon 1 at angle a01, photon 2 balancing
    cos01 = np.clip(1.0 - 2.0 * (1.0 - x[:, 2]) / np.maximum(x[:, 0] * x[:, 1], 1e-12), -1.0, 1.0)
    sin01 = np.sqrt(1.0 - cos01**2)
    p0 = np.stack([E[:, 0], np.zeros(n), np.zeros(n)], axis=1)
    p1 = np.stack([E[:, 1] * cos01, E[:, 1] * sin01, np.zeros(n)], axis=1)
    p2 = -(p0 + p1)
    # random orientation: hardest photon direction forward-peaked, random roll about it
    hard = np.argmax(E, axis=1)
    basis = _cm_basis(beam)
    cos_h = _sample_forward(n, rng, 0.995 ** 0.5)
    axis_h = _directions(cos_h, rng.uniform(-np.pi, np.pi, n), basis)
    P = np.stack([p0, p1, p2], axis=1)  # (n, 3, 3)
    ph = P[np.arange(n), hard]
    u1 = ph / np.linalg.norm(ph, axis=1, keepdims=True)
    nrm = np.cross(P[:, 0], P[:, 1] + 1e-12 * np.array([0, 0, 1.0]))
    nrm = np.where(np.linalg.norm(nrm, axis=1, keepdims=True) > 0, nrm, np.array([0, 0, 1.0]))
    u3 = nrm / np.linalg.norm(nrm, axis=1, keepdims=True)
    u2 = np.cross(u3, u1)
    src = np.stack([u1, u2, u3], axis=1)  # rows: orthonormal frame attached to the event
    # target frame: axis_h and a random perpendicular pair
    roll = rng.uniform(-np.pi, np.pi, n)
    trial = np.where(np.abs(axis_h[:, :1]) < 0.9, np.array([1.0, 0, 0]), np.array([0, 1.0, 0]))
    v1 = trial - np.sum(trial * axis_h, axis=1, keepdims=True) * axis_h
    v1 /= np.linalg.norm(v1, axis=1, keepdims=True)
    v2 = np.cross(axis_h, v1)
    t2 = np.cos(roll)[:, None] * v1 + np.sin(roll)[:, None] * v2
    t3 = np.cross(axis_h, t2)
    dst = np.stack([axis_h, t2, t3], axis=1)
    R = np.einsum("nki,nkj->nij", dst, src)  # maps src frame onto dst frame
    Prot = np.einsum("nij,naj->nai", R, P)
    p4_cm = np.concatenate([Prot, E[:, :, None]], axis=2)
    p4_lab = beam.to_lab(p4_cm)
    ph_cols = _smear_and_pack(p4_lab, rng, resolution)
    ok = _accept(ph_cols, sqrt_s)
    ph_cols = {k: v[ok] for k, v in ph_cols.items()}
    nk = int(ok.sum())
    ph_cols, _ = _sort_by_energy(ph_cols, np.tile(np.arange(3), (nk, 1)))
    events = dict(ph_cols)
    events.update(
        event=np.arange(nk, dtype=np.int64),
        process=np.ones(nk, dtype=np.int32),
        weight=np.full(nk, xsec_pb * 1000.0 * lumi_fb / n),
        mc_ma=np.full(nk, -1.0),
        truth_a1=np.full(nk, -1, dtype=np.int32),
        truth_a2=np.full(nk, -1, dtype=np.int32),
        truth_recoil=np.full(nk, -1, dtype=np.int32),
    )
    _add_cov(events, resolution)
    return events


def beam_background_events(
    n: int,
    *,
    rng: np.random.Generator,
    beam: Beam | None = None,
    resolution: Resolution | None = None,
    xsec_pb: float = 20.0,
    lumi_fb: float = 1.0,
    mean_bb_energy: float = 0.25,
) -> dict[str, NDArray]:
    """Generate ``n`` toy "two hard photons + beam-background cluster" events (process code of ``eeg``)."""
    from ..events.schema import PROCESS_CODES

    beam = beam or Beam.belle2()
    resolution = resolution or Resolution()
    sqrt_s = beam.sqrt_s
    basis = _cm_basis(beam)
    e_hard = 0.5 * sqrt_s * np.ones(n)
    d = _directions(_sample_forward(n, rng, 0.995**0.5), rng.uniform(-np.pi, np.pi, n), basis)
    h1 = np.concatenate([e_hard[:, None] * d, e_hard[:, None]], axis=1)
    h2 = np.concatenate([-e_hard[:, None] * d, e_hard[:, None]], axis=1)
    lab = beam.to_lab(np.stack([h1, h2], axis=1))
    e_bb = rng.exponential(mean_bb_energy, n)
    d_bb = _directions(rng.uniform(-1, 1, n), rng.uniform(-np.pi, np.pi, n), np.eye(3))
    bb = np.concatenate([e_bb[:, None] * d_bb, e_bb[:, None]], axis=1)
    p4_lab = np.concatenate([lab, bb[:, None, :]], axis=1)
    ph = _smear_and_pack(p4_lab, rng, resolution)
    ph["time"][:, 2] = rng.uniform(-150.0, 150.0, n)
    ok = _accept(ph, sqrt_s)
    ph = {k: v[ok] for k, v in ph.items()}
    nk = int(ok.sum())
    ph, _ = _sort_by_energy(ph, np.tile(np.arange(3), (nk, 1)))
    events = dict(ph)
    events.update(
        event=np.arange(nk, dtype=np.int64),
        process=np.full(nk, PROCESS_CODES["eeg"], dtype=np.int32),
        weight=np.full(nk, xsec_pb * 1000.0 * lumi_fb / n),
        mc_ma=np.full(nk, -1.0),
        truth_a1=np.full(nk, -1, dtype=np.int32),
        truth_a2=np.full(nk, -1, dtype=np.int32),
        truth_recoil=np.full(nk, -1, dtype=np.int32),
    )
    _add_cov(events, resolution)
    return events


def _add_cov(events: dict[str, NDArray], resolution: Resolution) -> None:
    events["cov"] = resolution.covariance(events["E"], events["region"])


def concatenate_events(*parts: dict[str, NDArray]) -> dict[str, NDArray]:
    """Concatenate three-photon dicts with the same keys; ``event`` is renumbered."""
    keys = set(parts[0])
    for p in parts[1:]:
        keys &= set(p)
    out = {k: np.concatenate([p[k] for p in parts]) for k in keys}
    out["event"] = np.arange(out["E"].shape[0], dtype=np.int64)
    return out


def synthetic_sample(
    *,
    masses: ArrayLike,
    n_per_mass: int,
    n_background: int,
    seed: int = 1,
    beam: Beam | None = None,
    lumi_fb: float = 1.0,
    xsec_pb: float = 40.0,
    bb_fraction: float = 0.5,
    bb_xsec_pb: float = 20.0,
) -> tuple[dict[str, NDArray], dict[float, int]]:
    """Signal at ``masses`` plus ggg and two-photon + beam-background events in one three-photon dict.

    ``n_background`` events are generated in total, ``bb_fraction`` of them of
    the second kind. Returns the events and ``n_generated`` per signal mass.
    """
    rng = np.random.default_rng(seed)
    sig, n_gen = signal_events(masses, n_per_mass, rng=rng, beam=beam)
    n_bb = int(round(bb_fraction * n_background))
    parts = [sig, background_events(n_background - n_bb, rng=rng, beam=beam, xsec_pb=xsec_pb, lumi_fb=lumi_fb)]
    if n_bb > 0:
        parts.append(beam_background_events(n_bb, rng=rng, beam=beam, xsec_pb=bb_xsec_pb, lumi_fb=lumi_fb))
    events = concatenate_events(*parts)
    logger.info("synthetic sample: %d signal events (%d masses), %d background events", sig["E"].shape[0], len(n_gen),
                events["E"].shape[0] - sig["E"].shape[0])
    return events, n_gen


def synthetic_data(
    *,
    lumi_fb: float,
    seed: int = 2,
    beam: Beam | None = None,
    xsec_pb: float = 40.0,
    bb_xsec_pb: float = 20.0,
) -> dict[str, NDArray]:
    """Toy "data": background-only events for ``lumi_fb`` with unit weights and process code ``data``.

    The numbers of generated events are ``xsec * lumi`` (so every event has
    weight 1, as real data) for the same two processes ``synthetic_sample``
    simulates, from an independent seed.
    """
    from ..events.schema import PROCESS_CODES

    rng = np.random.default_rng(seed)
    n1 = int(rng.poisson(xsec_pb * 1000.0 * lumi_fb))
    n2 = int(rng.poisson(bb_xsec_pb * 1000.0 * lumi_fb))
    parts = [background_events(n1, rng=rng, beam=beam, xsec_pb=xsec_pb, lumi_fb=lumi_fb)]
    if n2 > 0:
        parts.append(beam_background_events(n2, rng=rng, beam=beam, xsec_pb=bb_xsec_pb, lumi_fb=lumi_fb))
    ev = concatenate_events(*parts)
    ev["process"] = np.full(ev["E"].shape[0], PROCESS_CODES["data"], dtype=np.int32)
    ev["weight"] = np.ones(ev["E"].shape[0])
    return ev

"""Detector response of the toy MC: ECL clusters (merging, acceptance, smearing, timing) and tracks.

Input is the generator-level final state of a batch of events with a fixed
number ``k`` of particles per event (``TruthParticles``); output is columnar:
flat per-event arrays plus jagged ``gamma`` and ``track`` awkward records.
All steps are array operations over events; the only Python loops run over
the (at most six) particle pairs of an event for cluster merging.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import awkward as ak
import numpy as np
from numpy.typing import NDArray

from ..events.detector import (
    CDC_THETA_MAX,
    CDC_THETA_MIN,
    ECL_EDGES,
    REGION_BWD,
    REGION_FWD,
    Calorimeter,
    ParametrisedResolution,
    Resolution,
    ecl_region,
)
from .calorimeter import sample_response

logger = logging.getLogger(__name__)

__all__ = ["DetectorSettings", "TruthParticles", "detector_response", "ORIGIN"]

#: speed of light in m/ns
C_M_PER_NS = 0.299792458

#: ``mc_origin`` codes of clusters
ORIGIN = {"recoil": 0, "a1": 1, "a2": 2, "other": 3, "electron": 4, "beam": 5, "merged": 6}

PID_PHOTON = 22


@dataclass(frozen=True)
class DetectorSettings:
    """Settings of the toy detector. Units: rad, GeV, ns, m (ECL geometry), cm (track impact parameters).

    Parameters
    ----------
    energy_tail : float
        Tail parameter of the Novosibirsk photon energy response
        (``bumphunt.toymc.calorimeter``): shower leakage and fluctuations put a
        low-side tail on E_meas / E_true around a core of the basf2 width.
        Default 0.4, the typical value of Belle II's photon-energy leakage
        calibration; 0 gives a Gaussian response.
    merge_angle : float
        Photons whose cluster positions are closer than this angle (rad) merge
        into one cluster. Default 0.028 rad = Moliere radius 3.5 cm / 1.25 m.
    cluster_threshold : float
        Clusters with measured energy below this (GeV) are not reconstructed.
    ecl_radius, ecl_z_forward, ecl_z_backward : float
        Inner surface of the ECL used for displaced decays: a barrel cylinder of
        radius 1.25 m closed by the endcap planes z = +1.96 m and z = -1.02 m
        (where the barrel edges at 32.2 and 128.7 degrees meet the endcaps).
    time_sigma_const, time_sigma_stoch : float
        Cluster-time resolution sigma_t = sqrt(const^2 + (stoch / E)^2) in ns
        (E in GeV) for clusters from the collision.
    beam_bkg_rate : float
        Mean number of beam-background photons per event (Poisson) in the ECL
        polar range before acceptance gaps and the threshold.
    beam_bkg_min_energy, beam_bkg_mean_energy : float
        Beam-background photon energy: min + exponential with this mean (GeV).
    beam_bkg_time_window : float
        Beam-background cluster times are uniform in +- this (ns).
    fake_track_rate : float
        Mean number of beam-background (fake) tracks per event (Poisson).
    tracking_inefficiency : float
        Probability that a charged particle inside the CDC acceptance has no track.
    track_pt_res_a, track_pt_res_b : float
        Transverse-momentum resolution sigma_pT / pT = sqrt((a pT)^2 + (b / beta)^2),
        pT in GeV (defaults a = 0.0011 / GeV, b = 0.0025, Belle II CDC + VXD).
    track_angle_res : float
        Resolution of the track polar and azimuthal angles (rad).
    good_dr_sigma, good_dz_sigma : float
        Impact-parameter resolution of tracks from the IP (cm); dr = |N(0, sigma)|.
    fake_dr_mean, fake_dz_half_range : float
        Fake tracks: dr exponential with this mean (cm), dz uniform in +- range (cm).
    """

    energy_tail: float = 0.4
    merge_angle: float = 0.028
    cluster_threshold: float = 0.02
    ecl_radius: float = 1.25
    ecl_z_forward: float = 1.96
    ecl_z_backward: float = -1.02
    time_sigma_const: float = 2.0
    time_sigma_stoch: float = 0.2
    beam_bkg_rate: float = 2.0
    beam_bkg_min_energy: float = 0.02
    beam_bkg_mean_energy: float = 0.04
    beam_bkg_time_window: float = 1000.0
    fake_track_rate: float = 0.2
    tracking_inefficiency: float = 0.01
    track_pt_res_a: float = 0.0011
    track_pt_res_b: float = 0.0025
    track_angle_res: float = 0.001
    good_dr_sigma: float = 0.02
    good_dz_sigma: float = 0.05
    fake_dr_mean: float = 4.0
    fake_dz_half_range: float = 30.0


@dataclass
class TruthParticles:
    """Generator-level final state of ``n`` events with ``k`` particles each (lab frame).

    Attributes
    ----------
    p4 : ndarray (n, k, 4)
        Lab four-momenta (GeV).
    pid : ndarray (n, k)
        PDG code: 22 photon, 11/-11 electron/positron, 13/-13 muons.
    origin : ndarray (n, k)
        ``mc_origin`` code each cluster of this particle gets.
    alive : ndarray (n, k) of bool
        The particle reaches the detector (False e.g. for ALP photons decaying beyond the ECL).
    tracked : ndarray (n, k) of bool
        A charged particle that is reconstructed as a track.
    vertex : ndarray (n, k, 3) or None
        Production point in m (None: all at the IP).
    t0 : ndarray (n, k) or None
        Production time in ns (None: 0).
    roles : dict
        ``{"a1": column, "a2": column, "recoil": column}`` for truth indices.
    """

    p4: NDArray
    pid: NDArray
    origin: NDArray
    alive: NDArray
    tracked: NDArray | None = None
    vertex: NDArray | None = None
    t0: NDArray | None = None
    roles: dict[str, int] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return self.p4.shape[0]


def _normalise(v: NDArray) -> NDArray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def ecl_hit(vertex: NDArray, direction: NDArray, settings: DetectorSettings) -> tuple[NDArray, NDArray]:
    """Where rays from ``vertex`` (m) along unit ``direction`` hit the ECL inner surface.

    Returns the hit points (..., 3) in m and a mask of vertices inside the ECL
    volume (rays from outside are lost).
    """
    R, zf, zb = settings.ecl_radius, settings.ecl_z_forward, settings.ecl_z_backward
    vx, vy, vz = vertex[..., 0], vertex[..., 1], vertex[..., 2]
    dx, dy, dz = direction[..., 0], direction[..., 1], direction[..., 2]
    a = dx * dx + dy * dy
    b = 2.0 * (vx * dx + vy * dy)
    c = vx * vx + vy * vy - R * R
    inside = (c < 0) & (vz < zf) & (vz > zb)
    disc = np.clip(b * b - 4.0 * a * c, 0.0, None)
    with np.errstate(divide="ignore", invalid="ignore"):
        t_cyl = np.where(a > 0, (-b + np.sqrt(disc)) / (2.0 * np.where(a > 0, a, 1.0)), np.inf)
        t_end = np.where(dz > 0, (zf - vz) / np.where(dz > 0, dz, 1.0), np.where(dz < 0, (zb - vz) / np.where(dz < 0, dz, -1.0), np.inf))
    t = np.minimum(t_cyl, t_end)
    t = np.where(inside, t, 0.0)
    return vertex + t[..., None] * direction, inside


def _wrap(phi: NDArray) -> NDArray:
    return np.mod(phi + np.pi, 2.0 * np.pi) - np.pi


def _flat_order(ev: NDArray, n: int, rng: np.random.Generator) -> tuple[NDArray, NDArray, NDArray]:
    """Random order of entries within each event: permutation, counts, position within event."""
    # event number plus a random fraction: one float sort instead of a lexsort
    order = np.argsort(ev + 0.999 * rng.random(len(ev)))
    counts = np.bincount(ev, minlength=n)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    pos = np.arange(len(ev)) - starts[ev[order]]
    return order, counts, pos


def detector_response(
    truth: TruthParticles,
    *,
    rng: np.random.Generator,
    settings: DetectorSettings | None = None,
    resolution: Resolution | ParametrisedResolution | None = None,
    calorimeter: Calorimeter | None = None,
) -> dict:
    """Simulate clusters and tracks for a batch of events.

    ``calorimeter`` sets the polar-angle regions of the clusters (default the
    Belle II ECL, ``ecl_region``); ``resolution`` the photon resolution
    (default ``Resolution()``, the Belle II ECL).

    Returns
    -------
    dict
        ``mc_idx_a1``, ``mc_idx_a2``, ``mc_idx_recoil`` (n,) int32 and the
        jagged awkward records ``gamma`` (GAMMA_FIELDS) and ``track`` (TRACK_FIELDS).

    Notes
    -----
    Cluster angles are smeared with Gaussians whose widths are
    ``resolution.sigmas`` evaluated at the TRUE energy and region of the
    cluster; cluster energies with the Novosibirsk response of
    ``settings.energy_tail`` whose core width (FWHM / 2.355) is the energy
    width there. These widths (squared) are written as the diagonal of the
    cluster covariance: (measured - true) / sqrt(cov) has unit width in the
    angles and a unit core with a low-side tail in the energy.
    """
    settings = settings or DetectorSettings()
    resolution = resolution or Resolution()
    n, k = truth.pid.shape
    p4 = truth.p4
    pmag = np.linalg.norm(p4[..., :3], axis=-1)
    pdir = p4[..., :3] / np.where(pmag > 0, pmag, 1.0)[..., None]

    # ---------------- clusters from the hard particles ----------------
    is_ecl = truth.alive & ((truth.pid == PID_PHOTON) | (np.abs(truth.pid) == 11))
    E = p4[..., 3].copy()
    t_true = np.zeros((n, k)) if truth.t0 is None else truth.t0.copy()
    if truth.vertex is None:
        hit_dir = pdir.copy()
    else:
        hit, inside = ecl_hit(truth.vertex, pdir, settings)
        is_ecl &= inside
        hit_r = np.linalg.norm(hit, axis=-1)
        path = np.linalg.norm(hit - truth.vertex, axis=-1)
        t_true = t_true + (path - hit_r) / C_M_PER_NS
        hit_dir = hit / np.where(hit_r > 0, hit_r, 1.0)[..., None]
        prompt = np.all(truth.vertex == 0.0, axis=-1)
        hit_dir[prompt] = pdir[prompt]
    mc_dir = pdir.copy()
    origin = truth.origin.astype(np.int32).copy()
    merged = np.zeros((n, k), dtype=bool)
    cos_merge = np.cos(settings.merge_angle)
    for i in range(k):
        for j in range(i + 1, k):
            close = is_ecl[:, i] & is_ecl[:, j] & (np.sum(hit_dir[:, i] * hit_dir[:, j], axis=-1) > cos_merge)
            if not np.any(close):
                continue
            ei, ej = E[close, i], E[close, j]
            hit_dir[close, i] = _normalise(ei[:, None] * hit_dir[close, i] + ej[:, None] * hit_dir[close, j])
            mc_dir[close, i] = _normalise(ei[:, None] * mc_dir[close, i] + ej[:, None] * mc_dir[close, j])
            t_true[close, i] = (ei * t_true[close, i] + ej * t_true[close, j]) / (ei + ej)
            E[close, i] = ei + ej
            origin[close, i] = ORIGIN["merged"]
            is_ecl[close, j] = False
            merged[close, i] = True
            merged[close, j] = True
    theta = np.arccos(np.clip(hit_dir[..., 2], -1.0, 1.0))
    phi = np.arctan2(hit_dir[..., 1], hit_dir[..., 0])
    region_of = ecl_region if calorimeter is None else calorimeter.region
    region = region_of(theta).astype(np.int32)
    is_ecl &= region > 0

    rows, cols = np.nonzero(is_ecl)
    h_E = E[rows, cols]
    h = {
        "ev": rows,
        "slot": cols,
        "merged": merged[rows, cols],
        "E_true": h_E,
        "theta": theta[rows, cols],
        "phi": phi[rows, cols],
        "region": region[rows, cols],
        "t": t_true[rows, cols] + rng.normal(size=len(rows)) * np.hypot(settings.time_sigma_const, settings.time_sigma_stoch / h_E),
        "mc_E": h_E,
        "mc_theta": np.arccos(np.clip(mc_dir[rows, cols, 2], -1.0, 1.0)),
        "mc_phi": np.arctan2(mc_dir[rows, cols, 1], mc_dir[rows, cols, 0]),
        "origin": origin[rows, cols],
    }

    # ---------------- beam-background photons ----------------
    nb = rng.poisson(settings.beam_bkg_rate, n)
    ev_b = np.repeat(np.arange(n), nb)
    m = len(ev_b)
    if calorimeter is None:
        lo = np.cos(ECL_EDGES[REGION_BWD][1])
        hi = np.cos(ECL_EDGES[REGION_FWD][0])
    else:
        hi, lo = np.cos(calorimeter.theta_range)
    th_b = np.arccos(rng.uniform(lo, hi, m))
    b = {
        "ev": ev_b,
        "slot": np.full(m, -1),
        "merged": np.zeros(m, dtype=bool),
        "E_true": settings.beam_bkg_min_energy + rng.exponential(settings.beam_bkg_mean_energy, m),
        "theta": th_b,
        "phi": rng.uniform(-np.pi, np.pi, m),
        "region": region_of(th_b).astype(np.int32),
        "t": rng.uniform(-settings.beam_bkg_time_window, settings.beam_bkg_time_window, m),
        "mc_E": np.full(m, -1.0),
        "origin": np.full(m, ORIGIN["beam"], dtype=np.int32),
    }
    b["mc_theta"] = b["theta"].copy()
    b["mc_phi"] = b["phi"].copy()
    keep_b = b["region"] > 0
    cl = {key: np.concatenate([h[key], b[key][keep_b]]) for key in h}

    # ---------------- smearing with the covariance that is written out ----------------
    s_e, s_t, s_p = resolution.sigmas(cl["E_true"], cl["region"])
    nc = len(cl["ev"])
    z = rng.normal(size=(3, nc))
    E_meas = cl["E_true"] + s_e * sample_response(z[0], settings.energy_tail)
    th_meas = cl["theta"] + s_t * z[1]
    ph_meas = _wrap(cl["phi"] + s_p * z[2])
    keep = E_meas >= settings.cluster_threshold
    sel = {key: val[keep] for key, val in cl.items()}
    E_meas, th_meas, ph_meas = E_meas[keep], th_meas[keep], ph_meas[keep]
    s_e, s_t, s_p = s_e[keep], s_t[keep], s_p[keep]

    order, counts, pos = _flat_order(sel["ev"], n, rng)
    zeros = np.zeros(len(order))
    gamma_cols = {
        "E": E_meas[order],
        "theta": th_meas[order],
        "phi": ph_meas[order],
        "time": sel["t"][order],
        "region": sel["region"][order].astype(np.int32),
        "cov_EE": (s_e**2)[order],
        "cov_Etheta": zeros,
        "cov_Ephi": zeros.copy(),
        "cov_thetatheta": (s_t**2)[order],
        "cov_thetaphi": zeros.copy(),
        "cov_phiphi": (s_p**2)[order],
        "mc_E": sel["mc_E"][order],
        "mc_theta": sel["mc_theta"][order],
        "mc_phi": sel["mc_phi"][order],
        "mc_origin": sel["origin"][order].astype(np.int32),
    }
    bad = [name for name in ("E", "theta", "phi", "time") if not np.all(np.isfinite(gamma_cols[name]))]
    if bad:
        raise FloatingPointError(f"toy MC detector simulation produced non-finite cluster values in {', '.join(bad)}")
    out: dict = {}
    ev_sorted = sel["ev"][order]
    slot_sorted = sel["slot"][order]
    merged_sorted = sel["merged"][order]
    for role in ("a1", "a2", "recoil"):
        idx = np.full(n, -1, dtype=np.int32)
        col = truth.roles.get(role)
        if col is not None:
            hit_role = (slot_sorted == col) & ~merged_sorted
            idx[ev_sorted[hit_role]] = pos[hit_role]
        out[f"mc_idx_{role}"] = idx
    out["gamma"] = ak.unflatten(ak.zip(gamma_cols), counts)

    # ---------------- tracks ----------------
    out["track"] = _tracks(truth, rng, settings, n)
    return out


def _tracks(truth: TruthParticles, rng: np.random.Generator, settings: DetectorSettings, n: int) -> ak.Array:
    """Smeared tracks of reconstructed charged particles plus beam-background fake tracks."""
    tracked = truth.tracked if truth.tracked is not None else np.zeros(truth.pid.shape, dtype=bool)
    rows, cols = np.nonzero(tracked & truth.alive)
    p4 = truth.p4[rows, cols]
    charge = -np.sign(truth.pid[rows, cols]).astype(np.int32)  # PDG: 11, 13 negative
    p = np.linalg.norm(p4[:, :3], axis=1)
    pt = np.hypot(p4[:, 0], p4[:, 1])
    theta = np.arccos(np.clip(p4[:, 2] / p, -1.0, 1.0))
    phi = np.arctan2(p4[:, 1], p4[:, 0])
    beta = p / p4[:, 3]
    m = len(rows)
    rel = np.hypot(settings.track_pt_res_a * pt, settings.track_pt_res_b / beta)
    pt_m = pt * (1.0 + rel * rng.normal(size=m))
    th_m = theta + settings.track_angle_res * rng.normal(size=m)
    ph_m = phi + settings.track_angle_res * rng.normal(size=m)
    dr = np.abs(rng.normal(0.0, settings.good_dr_sigma, m))
    dz = rng.normal(0.0, settings.good_dz_sigma, m)
    # fake tracks from beam background
    nf = rng.poisson(settings.fake_track_rate, n)
    ev_f = np.repeat(np.arange(n), nf)
    mf = len(ev_f)
    pt_f = 0.05 + rng.exponential(0.1, mf)
    th_f = np.arccos(rng.uniform(np.cos(CDC_THETA_MAX), np.cos(CDC_THETA_MIN), mf))
    ph_f = rng.uniform(-np.pi, np.pi, mf)
    ch_f = rng.choice(np.array([-1, 1], dtype=np.int32), mf)
    dr_f = rng.exponential(settings.fake_dr_mean, mf)
    dz_f = rng.uniform(-settings.fake_dz_half_range, settings.fake_dz_half_range, mf)

    ev = np.concatenate([rows, ev_f])
    pt_all = np.concatenate([pt_m, pt_f])
    th_all = np.concatenate([th_m, th_f])
    ph_all = np.concatenate([ph_m, ph_f])
    order, counts, _ = _flat_order(ev, n, rng)
    cols_out = {
        "px": (pt_all * np.cos(ph_all))[order],
        "py": (pt_all * np.sin(ph_all))[order],
        "pz": (pt_all / np.tan(th_all))[order],
        "charge": np.concatenate([charge, ch_f]).astype(np.int32)[order],
        "dr": np.concatenate([dr, dr_f])[order],
        "dz": np.concatenate([dz, dz_f])[order],
    }
    return ak.unflatten(ak.zip(cols_out), counts)


def in_cdc(theta: NDArray) -> NDArray:
    """True where a polar angle (rad) is inside the CDC acceptance (17 to 150 degrees)."""
    return (theta > CDC_THETA_MIN) & (theta < CDC_THETA_MAX)


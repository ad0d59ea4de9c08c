"""A tiny, independent ntuple maker for the io / pre-selection / candidate tests.

It writes schema-conformant ROOT files with uproot directly (not through
``bumphunt.events``), so the reader is tested against files it did not write, and
it can write deliberately broken files (missing branch, wrong dtype, NaN, MeV,
empty tree).

Events: e+e- -> gamma X, X -> gamma gamma at the Belle II beams, generated in
the CM frame (1 + cos^2 theta recoil, isotropic X decay), boosted to the lab,
optionally smeared; plus soft beam-background clusters with random times,
out-of-acceptance photons and, in some events, a good or a displaced track.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import uproot

from bumphunt.events.detector import ecl_region
from bumphunt.events.schema import PROCESS_CODES
from bumphunt.kinematics import Beam, p4_from_spherical, spherical_from_p4


def _isotropic(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    cos = rng.uniform(-1, 1, n)
    return np.arccos(cos), rng.uniform(-np.pi, np.pi, n)


def _one_plus_cos2(rng: np.random.Generator, n: int) -> np.ndarray:
    # accept-reject on 1 + cos^2 (max 2)
    out = np.empty(0)
    while out.size < n:
        c = rng.uniform(-1, 1, 2 * n)
        keep = rng.uniform(0, 2, 2 * n) < 1 + c * c
        out = np.concatenate([out, c[keep]])
    return out[:n]


def three_photon_truth(rng: np.random.Generator, n: int, mass: float, beam: Beam) -> np.ndarray:
    """Lab four-vectors (n, 3, 4) of (a1, a2, recoil) for e+e- -> gamma X(mass), X -> gamma gamma."""
    sqrt_s = beam.sqrt_s
    e_rec = (sqrt_s**2 - mass**2) / (2 * sqrt_s)
    cos = _one_plus_cos2(rng, n)
    phi = rng.uniform(-np.pi, np.pi, n)
    rec = p4_from_spherical(e_rec, np.arccos(cos), phi)
    x = np.stack([-rec[:, 0], -rec[:, 1], -rec[:, 2], sqrt_s - rec[:, 3]], axis=-1)
    th, ph = _isotropic(rng, n)
    d1 = p4_from_spherical(mass / 2, th, ph)
    d2 = d1.copy()
    d2[:, :3] *= -1
    beta = x[:, :3] / x[:, 3:4]
    from bumphunt.kinematics import boost

    a1 = boost(d1, beta)
    a2 = boost(d2, beta)
    cm = np.stack([a1, a2, rec], axis=1)
    return beam.to_lab(cm)


def make_events(
    rng: np.random.Generator,
    n: int,
    *,
    mass: float = 2.0,
    process: str = "signal",
    beam: Beam | None = None,
    smear: bool = True,
    n_background_max: int = 3,
    track_fraction: float = 0.1,
    weight: float = 0.5,
    with_cov: bool = True,
) -> dict[str, Any]:
    """Columnar events (event arrays + flat per-cluster/per-track arrays with counts)."""
    beam = beam or Beam.belle2()
    truth = three_photon_truth(rng, n, mass, beam)
    E, th, ph = spherical_from_p4(truth)
    mcE, mcth, mcph = E.copy(), th.copy(), ph.copy()
    if smear:
        E = E * (1 + 0.02 * rng.standard_normal(E.shape))
        th = th + 0.004 * rng.standard_normal(E.shape)
        ph = ph + 0.005 * rng.standard_normal(E.shape)
    t = 2.0 * rng.standard_normal(E.shape)
    # extra beam-background clusters
    nbkg = rng.integers(0, n_background_max + 1, n)
    counts = 3 + nbkg
    offsets = np.concatenate([[0], np.cumsum(counts)])
    tot = int(offsets[-1])
    gE = rng.exponential(0.08, tot) + 0.02
    gth = np.arccos(rng.uniform(-0.95, 0.95, tot))
    gph = rng.uniform(-np.pi, np.pi, tot)
    gt = rng.uniform(-400, 400, tot)
    gmcE = np.full(tot, -1.0)
    gmcth = np.full(tot, -1.0)
    gmcph = np.full(tot, -1.0)
    origin = np.full(tot, 5, dtype=np.int32)
    # place the three hard photons at random positions within each event
    pos = np.argsort(rng.random((n, int(counts.max()))) + (np.arange(int(counts.max())) >= counts[:, None]) * 10, axis=1)[:, :3]
    flat_idx = offsets[:-1, None] + pos
    gE[flat_idx] = E
    gth[flat_idx] = th
    gph[flat_idx] = ph
    gt[flat_idx] = t
    gmcE[flat_idx] = mcE
    gmcth[flat_idx] = mcth
    gmcph[flat_idx] = mcph
    origin[flat_idx] = np.array([1, 2, 0], dtype=np.int32)
    region = ecl_region(gth).astype(np.int32)
    gamma = {
        "E": gE, "theta": gth, "phi": gph, "time": gt, "region": region,
        "mc_E": gmcE, "mc_theta": gmcth, "mc_phi": gmcph, "mc_origin": origin,
    }
    if with_cov:
        from bumphunt.events.detector import Resolution

        cov = Resolution().covariance(gE, region)
        gamma.update({"cov_EE": cov[:, 0, 0], "cov_Etheta": np.zeros(tot), "cov_Ephi": np.zeros(tot),
                      "cov_thetatheta": cov[:, 1, 1], "cov_thetaphi": np.zeros(tot), "cov_phiphi": cov[:, 2, 2]})
    # tracks: some events with one track, half of them "good", half displaced
    ntrk = (rng.random(n) < track_fraction).astype(np.int64)
    ttot = int(ntrk.sum())
    tth = np.arccos(rng.uniform(-0.9, 0.9, ttot))
    tph = rng.uniform(-np.pi, np.pi, ttot)
    p = rng.uniform(0.2, 3.0, ttot)
    displaced = rng.random(ttot) < 0.5
    track = {
        "px": p * np.sin(tth) * np.cos(tph), "py": p * np.sin(tth) * np.sin(tph), "pz": p * np.cos(tth),
        "charge": rng.choice([-1, 1], ttot).astype(np.int32),
        "dr": np.where(displaced, rng.uniform(2, 10, ttot), rng.uniform(0, 0.5, ttot)),
        "dz": np.where(displaced, rng.uniform(5, 20, ttot), rng.uniform(-1, 1, ttot)),
    }
    code = PROCESS_CODES[process]
    return {
        "event": np.arange(n, dtype=np.int64),
        "process": np.full(n, code, dtype=np.int32),
        "weight": np.full(n, weight),
        "mc_ma": np.full(n, mass if process == "signal" else -1.0),
        "mc_decay_length": np.zeros(n),
        "mc_idx_a1": pos[:, 0].astype(np.int32),
        "mc_idx_a2": pos[:, 1].astype(np.int32),
        "mc_idx_recoil": pos[:, 2].astype(np.int32),
        "ngamma": counts.astype(np.int64),
        "gamma": gamma,
        "ntrack": ntrk,
        "track": track,
    }


def to_awkward(events: dict[str, Any]) -> dict[str, Any]:
    """Branch dict ready for uproot (jagged records built from flat arrays + counts)."""
    out: dict[str, Any] = {}
    for key, value in events.items():
        if key in ("ngamma", "ntrack"):
            continue
        if isinstance(value, dict):
            counts = events["n" + key]
            out[key] = ak.zip({f: ak.unflatten(v, counts) for f, v in value.items()})
        else:
            out[key] = value
    return out


def write_ntuple(path: Path, events: dict[str, Any], *, meta: dict[str, Any] | None = None, tree: str = "events",
                 branches: dict[str, Any] | None = None) -> Path:
    """Write events (``make_events`` output) as a TTree with uproot; ``branches`` replaces/adds raw branches."""
    data = to_awkward(events)
    if branches is not None:
        data = branches
    with uproot.recreate(path) as f:
        types = {k: (v.type if isinstance(v, ak.Array) else np.asarray(v).dtype) for k, v in data.items()}
        t = f.mktree(tree, types)
        t.extend(data)
        if meta is not None:
            f["bumphunt_meta"] = json.dumps(meta)
    return path


def flat_branches(events: dict[str, Any]) -> dict[str, Any]:
    """Branch dict with jagged branches as individual awkward arrays named gamma_<field>, counters implicit."""
    out: dict[str, Any] = {}
    for key, value in events.items():
        if key in ("ngamma", "ntrack"):
            continue
        if isinstance(value, dict):
            counts = events["n" + key]
            for f, v in value.items():
                out[f"{key}_{f}"] = ak.unflatten(v, counts)
        else:
            out[key] = value
    return out


def default_meta(process: str = "signal", *, n: int = 100, lumi_fb: float = 1.0, xsec_pb: float = 50.0) -> dict[str, Any]:
    return {"process": process, "xsec_pb": xsec_pb, "n_generated": n, "lumi_fb": lumi_fb, "seed": 1,
            "beam": Beam.belle2().to_dict()}


def to_mev(events: dict[str, Any]) -> dict[str, Any]:
    """The same events with energies, momenta and the energy covariance in MeV (``-1`` markers kept)."""
    ev = {**events, "gamma": dict(events["gamma"]), "track": dict(events["track"])}
    for f, scale in (("E", 1e3), ("mc_E", 1e3), ("cov_EE", 1e6)):
        v = ev["gamma"][f]
        ev["gamma"][f] = np.where(v > 0, v * scale, v) if f != "cov_EE" else v * scale
    for f in ("px", "py", "pz"):
        ev["track"][f] = ev["track"][f] * 1e3
    ev["mc_ma"] = ev["mc_ma"] * 1e3
    return ev

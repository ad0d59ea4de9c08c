"""Physics processes of the toy MC: ALP signal, backgrounds and the mu mu gamma control sample.

Each ``simulate_*`` function generates ``n`` events and returns columnar
arrays (no file is written): a dict with the event-level numpy arrays
``process``, ``weight`` (1, except for the weighted ``eeg`` MC; the writer
multiplies it by sigma L / N), ``mc_ma``,
``mc_decay_length``, ``mc_idx_a1``, ``mc_idx_a2``, ``mc_idx_recoil`` and the
jagged awkward records ``gamma`` and ``track`` (schema of ``bumphunt.events.schema``).

Cross-sections (pb, ``cross_section_pb``) refer to the generated phase space:
- ``signal``: sigma(e+e- -> gamma a) = alpha g^2 / 24 (1 - m^2/s)^3 (full angular range).
- ``ggg``: lowest-order QED e+e- -> 3 gamma integrated within the CM generation
  cuts (each photon E* > 0.05 GeV and 15 deg < theta* < 165 deg), see
  ``bumphunt.toymc.physics``.
- ``eeg``: radiative Bhabha e+e- -> e+e- gamma where neither lepton leaves a
  track (both outside the CDC acceptance, or lost by the tracking
  inefficiency). Kinematics approximated by the 3-gamma matrix element with
  the softest particle as the photon and the more forward lepton as the
  electron; sigma = k_eeg x sigma_ggg x (fraction with no track), with an
  effective k_eeg = 2 (a toy normalisation, not a prediction: the true
  radiative Bhabha rate is larger, but only the small fraction with two lost
  tracks inside the CDC survives a photon selection in the CDC acceptance).
- ``mumug``: e+e- -> mu+ mu- gamma with both muons reconstructed as tracks and
  a photon of at least 0.25 GeV (lab);
  same kinematic approximation (softest particle = photon, muon masses given
  by RAMBO-style rescaling); sigma = k_mumug x sigma_ggg x (fraction with two
  tracks), k_mumug = 0.5.
- ``P g`` (pi0, eta, eta'): e+e- -> P gamma with 1 + cos^2(theta*), P -> gamma gamma
  isotropic; ``P g g``: 3-gamma kinematics with one of the two harder particles
  (chosen at random) given the P mass, the softest being the extra photon.
  The cross-sections are effective values sigma x BR(P -> gamma gamma)
  (table ``MESON_XSEC_PB``): pi0 g 7.26e-3 pb and pi0 g g 1.68 pb (Belle II
  simulation), eta g 1.8e-3 pb and eta' g 1.2e-4 pb (BaBar sigma(e+e- -> eta/eta' gamma)
  = 4.5 / 5.4 fb at 10.58 GeV times BR = 39.4% / 2.2%), eta g g 3.0 pb and
  eta' g g 3.0 pb (toy values, not measurements, chosen so that the eta and
  eta' peaks stand out clearly above e+e- -> 3 gamma in 1 fb^-1 after
  pre-selection: about 500 peak events on about 2000 (eta) and 4000 (eta')
  continuum candidates within +-30 MeV).
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass

import awkward as ak
import numpy as np
from numpy.typing import NDArray

from signal_models._common.pdg import particle_mass

from ..events.detector import Calorimeter, ParametrisedResolution, Resolution
from ..events.schema import PROCESS_CODES
from ..kinematics import Beam
from .detector_sim import ORIGIN, DetectorSettings, TruthParticles, detector_response, in_cdc
from .physics import (
    ThreeBodyCuts,
    decay_two_photons,
    event_beams,
    ggg_cross_section_pb,
    give_masses,
    sample_three_body_cm,
    two_body_cm,
)

logger = logging.getLogger(__name__)

__all__ = [
    "BACKGROUNDS",
    "MESONS",
    "MESON_XSEC_PB",
    "GeneratorSettings",
    "simulate_signal",
    "simulate_background",
    "simulate_control",
    "cross_section_pb",
    "concatenate",
]

#: Background processes (schema process names).
BACKGROUNDS: tuple[str, ...] = ("ggg", "eeg", "pi0g", "etag", "etapg", "pi0gg", "etagg", "etapgg")
#: Meson of each P g (g) process.
MESONS: dict[str, str] = {"pi0g": "pi0", "etag": "eta", "etapg": "etap", "pi0gg": "pi0", "etagg": "eta", "etapgg": "etap"}
#: Effective cross-sections sigma x BR(P -> gamma gamma) in pb (see module docstring).
MESON_XSEC_PB: dict[str, float] = {
    "pi0g": 7.26e-3,
    "etag": 1.8e-3,
    "etapg": 1.2e-4,
    "pi0gg": 1.68,
    "etagg": 3.0,
    "etapgg": 3.0,
}

PID_E, PID_MU, PID_G = 11, 13, 22


@dataclass(frozen=True)
class GeneratorSettings:
    """Generator-level settings (CM frame; GeV).

    Parameters
    ----------
    e_min_cm : float
        Minimum CM energy of each particle of three-body final states (GeV).
    cos_max_cm : float
        Maximum |cos theta*| about the beam axis of each particle of three-body final states.
    k_eeg, k_mumug : float
        Cross-section factors relative to e+e- -> 3 gamma (module docstring).
    beam_energy_spread : bool
        Draw each event's beam energies with the Gaussian spreads of ``Beam``
        (``e_spread_her``, ``e_spread_ler``); the final state is generated in
        that event's CM frame. False: every event at the nominal sqrt(s).
    mumug_photon_min_energy : float
        The control sample keeps only events whose photon has at least this
        lab energy (GeV): softer photons do not help the calibration.
    """

    e_min_cm: float = 0.05
    cos_max_cm: float = 0.966
    k_eeg: float = 2.0
    k_mumug: float = 0.5
    mumug_photon_min_energy: float = 0.25
    beam_energy_spread: bool = True

    @property
    def cuts(self) -> ThreeBodyCuts:
        return ThreeBodyCuts(self.e_min_cm, self.cos_max_cm)


def _event_arrays(n: int, process: str, det: dict, *, mc_ma: float = -1.0, decay_length: NDArray | None = None) -> dict:
    out = {
        "process": np.full(n, PROCESS_CODES[process], dtype=np.int32),
        "weight": np.ones(n),
        "mc_ma": np.full(n, float(mc_ma)),
        "mc_decay_length": np.zeros(n) if decay_length is None else np.asarray(decay_length, dtype=float),
    }
    out.update(det)
    return out


def simulate_signal(
    m_a: float,
    n: int,
    *,
    rng: np.random.Generator,
    beam: Beam | None = None,
    g_agg: float | None = None,
    resolution: Resolution | ParametrisedResolution | None = None,
    detector: DetectorSettings | None = None,
    generator: GeneratorSettings | None = None,
    calorimeter: Calorimeter | None = None,
) -> dict:
    """e+e- -> gamma a, a -> gamma gamma at ALP mass ``m_a`` (GeV).

    The recoil photon follows 1 + cos^2(theta*) about the beam axis in the CM;
    the ALP decays isotropically in its rest frame. With ``g_agg`` (GeV^-1)
    the ALP flies an exponentially distributed distance with mean
    beta gamma hbar c / Gamma(m_a, g_agg) before decaying; its photons' clusters
    sit where they hit the ECL (directions from the IP are then biased) and
    decays beyond the ECL inner surface lose both photons. Without ``g_agg``
    the decay is prompt. Truth indices ``mc_idx_a1/a2/recoil`` point into
    each event's ``gamma`` list (-1 when lost or merged).
    """
    from signal_models.alp import decay_length as mean_decay_length

    beam = beam or Beam.belle2()
    gen = generator or GeneratorSettings()
    eb = event_beams(n, beam, rng, spread=gen.beam_energy_spread)
    gamma_cm, a_cm = two_body_cm(n, float(m_a), rng, beam, sqrt_s=eb.sqrt_s)
    gamma_lab = eb.to_lab(gamma_cm)
    a_lab = eb.to_lab(a_cm)
    g1, g2 = decay_two_photons(a_lab, float(m_a), rng)
    p4 = np.stack([gamma_lab, g1, g2], axis=1)
    pid = np.full((n, 3), PID_G)
    origin = np.array([ORIGIN["recoil"], ORIGIN["a1"], ORIGIN["a2"]])[None, :].repeat(n, axis=0)
    vertex = t0 = None
    flight = np.zeros(n)
    if g_agg is not None:
        p_a = np.linalg.norm(a_lab[:, :3], axis=1)
        mean = mean_decay_length(float(m_a), float(g_agg), p_a / float(m_a))
        flight = rng.exponential(1.0, n) * mean
        vertex = np.zeros((n, 3, 3))
        v = a_lab[:, :3] / p_a[:, None] * flight[:, None]
        vertex[:, 1] = v
        vertex[:, 2] = v
        beta = p_a / a_lab[:, 3]
        t0 = np.zeros((n, 3))
        t0[:, 1] = t0[:, 2] = flight / (beta * 0.299792458)
    truth = TruthParticles(p4=p4, pid=pid, origin=origin, alive=np.ones((n, 3), dtype=bool), vertex=vertex, t0=t0, roles={"recoil": 0, "a1": 1, "a2": 2})
    det = detector_response(truth, rng=rng, settings=detector, resolution=resolution, calorimeter=calorimeter)
    return _event_arrays(n, "signal", det, mc_ma=m_a, decay_length=flight)


def _three_body_assign(cm: NDArray, beam: Beam) -> NDArray:
    """Reorder three-body CM events: column 0 the softest particle, 1 the more forward, 2 the other."""
    E = cm[..., 3]
    soft = np.argmin(E, axis=1)
    rest = np.stack([(soft + 1) % 3, (soft + 2) % 3], axis=1)
    axis = beam.cm_axis()
    n = len(cm)
    rows = np.arange(n)[:, None]
    cos_rest = (cm[rows, rest, :3] @ axis) / E[rows, rest]
    first = np.where(cos_rest[:, 0] >= cos_rest[:, 1], rest[:, 0], rest[:, 1])
    second = np.where(cos_rest[:, 0] >= cos_rest[:, 1], rest[:, 1], rest[:, 0])
    order = np.stack([soft, first, second], axis=1)
    return cm[rows, order]


def _charged_final_state(
    n: int, lepton: str, rng: np.random.Generator, beam: Beam, gen: GeneratorSettings, det: DetectorSettings
) -> tuple[NDArray, NDArray, NDArray]:
    """``n`` candidate e e gamma / mu mu gamma events: lab p4 (n, 3, 4), pid (n, 3), tracked (n, 3)."""
    eb = event_beams(n, beam, rng, spread=gen.beam_energy_spread)
    cm = eb.scale_from_nominal(_three_body_assign(sample_three_body_cm(n, rng, beam, gen.cuts), beam), beam.sqrt_s)
    pid_l = PID_E if lepton == "e" else PID_MU
    if lepton == "mu":
        cm = give_masses(cm, np.array([0.0, particle_mass("mu"), particle_mass("mu")]))
    lab = eb.to_lab(cm)
    pid = np.broadcast_to(np.array([PID_G, pid_l, -pid_l]), (n, 3)).copy()
    theta = np.arccos(np.clip(lab[..., 2] / np.linalg.norm(lab[..., :3], axis=-1), -1.0, 1.0))
    tracked = in_cdc(theta) & (rng.random((n, 3)) >= det.tracking_inefficiency)
    tracked[:, 0] = False
    return lab, pid, tracked


def _filtered(process: str, n: int, rng: np.random.Generator, beam: Beam, gen: GeneratorSettings, det: DetectorSettings) -> tuple[NDArray, NDArray, NDArray]:
    """Generate until ``n`` events pass the process filter (eeg: no lepton track; mumug: both tracks)."""
    lepton = "e" if process == "eeg" else "mu"
    eff = max(_filter_efficiency(process, beam, gen, det)[0], 1e-3)
    parts = [(np.zeros((0, 3, 4)), np.zeros((0, 3), dtype=int), np.zeros((0, 3), dtype=bool))]
    have = 0
    while have < n:
        m = int(min(max(1.2 * (n - have) / eff, 500), 100_000))
        lab, pid, tracked = _charged_final_state(m, lepton, rng, beam, gen, det)
        ok = _filter(process, tracked, lab, gen)
        idx = np.nonzero(ok)[0][: n - have]
        parts.append((lab[idx], pid[idx], tracked[idx]))
        have += len(idx)
    return tuple(np.concatenate([p[i] for p in parts]) for i in range(3))  # type: ignore[return-value]


def _filter(process: str, tracked: NDArray, lab: NDArray, gen: GeneratorSettings) -> NDArray:
    if process == "eeg":
        return ~tracked[:, 1] & ~tracked[:, 2]
    return tracked[:, 1] & tracked[:, 2] & (lab[:, 0, 3] >= gen.mumug_photon_min_energy)


@functools.lru_cache(maxsize=32)
def _filter_efficiency(process: str, beam: Beam, gen: GeneratorSettings, det: DetectorSettings, n: int = 50_000) -> tuple[float, float]:
    """Fraction (and binomial error) of three-body events passing the eeg / mumug filter (fixed-seed pilot)."""
    rng = np.random.default_rng(np.random.SeedSequence(0x5eed_f11e))
    lab, _, tracked = _charged_final_state(n, "e" if process == "eeg" else "mu", rng, beam, gen, det)
    f = float(np.mean(_filter(process, tracked, lab, gen)))
    return f, float(np.sqrt(f * (1 - f) / n))


def cross_section_pb(
    process: str,
    *,
    beam: Beam | None = None,
    generator: GeneratorSettings | None = None,
    detector: DetectorSettings | None = None,
    m_a: float | None = None,
    g_agg: float | None = None,
    overrides: dict[str, float] | None = None,
    coupling: str = "photon",
) -> float:
    """Cross-section in pb of a process within its generated phase space (module docstring).

    ``overrides`` maps process names to fixed values (pb) that replace the built-in ones.
    For ``signal``, ``g_agg`` is the coupling of the model ``coupling``
    (``signal_models.alp``; GeV^-1): g_agg for ``"photon"``, g_aBB for
    ``"hypercharge"`` (photon and Z exchange).
    """
    beam = beam or Beam.belle2()
    gen = generator or GeneratorSettings()
    det = detector or DetectorSettings()
    if overrides and process in overrides:
        return float(overrides[process])
    if process == "signal":
        from signal_models.alp import cross_section_pb as alp_xsec

        if m_a is None or g_agg is None:
            raise ValueError("cross_section_pb('signal') needs m_a (GeV) and g_agg (GeV^-1)")
        if coupling == "photon":
            return float(alp_xsec(m_a, g_agg, beam.sqrt_s))
        return float(alp_xsec(m_a, g_agg, beam.sqrt_s, coupling=coupling))
    if process in MESON_XSEC_PB:
        return MESON_XSEC_PB[process]
    sigma_ggg = ggg_cross_section_pb(beam.sqrt_s, gen.cuts)[0]
    if process == "ggg":
        return sigma_ggg
    if process == "eeg":
        return gen.k_eeg * sigma_ggg * _filter_efficiency("eeg", beam, gen, det)[0]
    if process == "mumug":
        return gen.k_mumug * sigma_ggg * _filter_efficiency("mumug", beam, gen, det)[0]
    raise ValueError(f"unknown process {process!r}; expected one of signal, mumug, {', '.join(BACKGROUNDS)}")


def simulate_background(
    process: str,
    n: int,
    *,
    rng: np.random.Generator,
    beam: Beam | None = None,
    resolution: Resolution | ParametrisedResolution | None = None,
    detector: DetectorSettings | None = None,
    generator: GeneratorSettings | None = None,
    unweighted: bool = False,
    calorimeter: Calorimeter | None = None,
) -> dict:
    """``n`` events of a background process (``BACKGROUNDS``), columnar (module docstring).

    All processes give unweighted events (``weight`` 1) except ``eeg`` with
    ``unweighted=False`` (the default, used for MC samples): every generated
    e+e- -> e+e- gamma event is kept with both leptons untracked and weighted
    by the probability of losing both tracks (1 outside the CDC acceptance,
    the tracking inefficiency inside), normalised to a mean of 1; this
    populates the rare case of two lost tracks inside the CDC, which is what
    survives a track veto. ``unweighted=True`` instead keeps events by
    accept-reject on that probability (pseudo-data).
    """
    weight = None
    beam = beam or Beam.belle2()
    gen = generator or GeneratorSettings()
    det = detector or DetectorSettings()
    if process not in BACKGROUNDS:
        raise ValueError(f"unknown background process {process!r}; expected one of {', '.join(BACKGROUNDS)}")
    tracked = None
    if process == "ggg":
        eb = event_beams(n, beam, rng, spread=gen.beam_energy_spread)
        p4 = eb.to_lab(eb.scale_from_nominal(sample_three_body_cm(n, rng, beam, gen.cuts), beam.sqrt_s))
        pid = np.full((n, 3), PID_G)
        origin = np.full((n, 3), ORIGIN["other"])
    elif process == "eeg":
        if unweighted:
            p4, pid, tracked = _filtered("eeg", n, rng, beam, gen, det)
        else:
            # every event kept with both leptons untracked, weighted by the probability of that
            p4, pid, tracked = _charged_final_state(n, "e", rng, beam, gen, det)
            theta = np.arccos(np.clip(p4[..., 2] / np.linalg.norm(p4[..., :3], axis=-1), -1.0, 1.0))
            p_lost = np.where(in_cdc(theta[:, 1:]), det.tracking_inefficiency, 1.0)
            weight = np.prod(p_lost, axis=1) / _filter_efficiency("eeg", beam, gen, det)[0]
            tracked[:] = False
        origin = np.broadcast_to(np.array([ORIGIN["other"], ORIGIN["electron"], ORIGIN["electron"]]), (n, 3)).copy()
    else:
        m_p = particle_mass(MESONS[process])
        eb = event_beams(n, beam, rng, spread=gen.beam_energy_spread)
        if process.endswith("gg"):
            cm = eb.scale_from_nominal(sample_three_body_cm(n, rng, beam, gen.cuts), beam.sqrt_s)
            # the meson is one of the two harder particles (at random); the softest is the
            # extra (radiated) photon, often too soft or too close to the beam to be seen
            soft = np.argmin(cm[..., 3], axis=1)
            col = (soft + 1 + rng.integers(0, 2, n)) % 3
            masses = np.where(np.arange(3)[None, :] == col[:, None], m_p, 0.0)
            cm = give_masses(cm, masses)
            rows = np.arange(n)
            others = np.stack([(col + 1) % 3, (col + 2) % 3], axis=1)
            meson = eb.to_lab(cm[rows, col])
            photons = eb.to_lab(cm[rows[:, None], others])
            d1, d2 = decay_two_photons(meson, m_p, rng)
            p4 = np.concatenate([photons, d1[:, None], d2[:, None]], axis=1)
            origin = np.broadcast_to(np.array([ORIGIN["other"], ORIGIN["other"], ORIGIN["a1"], ORIGIN["a2"]]), (n, 4)).copy()
        else:
            g_cm, p_cm = two_body_cm(n, m_p, rng, beam, sqrt_s=eb.sqrt_s)
            meson = eb.to_lab(p_cm)
            d1, d2 = decay_two_photons(meson, m_p, rng)
            p4 = np.stack([eb.to_lab(g_cm), d1, d2], axis=1)
            origin = np.broadcast_to(np.array([ORIGIN["recoil"], ORIGIN["a1"], ORIGIN["a2"]]), (n, 3)).copy()
        pid = np.full(p4.shape[:2], PID_G)
    truth = TruthParticles(p4=p4, pid=pid, origin=origin, alive=np.ones(pid.shape, dtype=bool), tracked=tracked)
    det_out = detector_response(truth, rng=rng, settings=det, resolution=resolution, calorimeter=calorimeter)
    out = _event_arrays(n, process, det_out)
    if weight is not None:
        out["weight"] = weight
    return out


def simulate_control(
    n: int,
    *,
    rng: np.random.Generator,
    beam: Beam | None = None,
    resolution: Resolution | ParametrisedResolution | None = None,
    detector: DetectorSettings | None = None,
    generator: GeneratorSettings | None = None,
    calorimeter: Calorimeter | None = None,
) -> dict:
    """``n`` e+e- -> mu+ mu- gamma events with both muons reconstructed (process ``mumug``).

    Only events whose photon has at least ``generator.mumug_photon_min_energy``
    (default 0.25 GeV, lab) are kept (the cross-section accounts for this).

    The muon tracks are smeared with the tracker resolution of
    ``DetectorSettings`` (sigma_pT/pT = sqrt((a pT)^2 + (b/beta)^2), angles
    1 mrad); muons leave no photon candidates (their ECL deposits are
    track-matched and not simulated). The photon (truth ``mc_origin`` 0, index
    ``mc_idx_recoil``) can be predicted from the beam and the muons to
    calibrate the photon energy resolution.
    """
    beam = beam or Beam.belle2()
    gen = generator or GeneratorSettings()
    det = detector or DetectorSettings()
    p4, pid, tracked = _filtered("mumug", n, rng, beam, gen, det)
    origin = np.broadcast_to(np.array([ORIGIN["recoil"], ORIGIN["other"], ORIGIN["other"]]), (n, 3)).copy()
    truth = TruthParticles(p4=p4, pid=pid, origin=origin, alive=np.ones((n, 3), dtype=bool), tracked=tracked, roles={"recoil": 0})
    det_out = detector_response(truth, rng=rng, settings=det, resolution=resolution, calorimeter=calorimeter)
    return _event_arrays(n, "mumug", det_out)


def concatenate(batches: list[dict]) -> dict:
    """Concatenate columnar batches (same keys) along the event axis."""
    out = {}
    for key in batches[0]:
        vals = [b[key] for b in batches]
        out[key] = ak.concatenate(vals) if isinstance(vals[0], ak.Array) else np.concatenate(vals)
    return out


def take(batch: dict, index: NDArray | slice) -> dict:
    """Events ``index`` of a columnar batch."""
    return {key: val[index] for key, val in batch.items()}

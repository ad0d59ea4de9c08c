"""The Z-pole (Giga-Z) search on toy MC: selected diphoton masses, a Z-pole signal model, and the scan.

The chain at the ``zpole`` preset (``bumphunt.colliders``): toy MC of
e+e- -> Z/gamma* -> a gamma -> 3 gamma (hypercharge coupling, cross-section
``signal_models.alp.cross_section_pb(..., coupling="hypercharge")``) and of
QED e+e- -> 3 gamma (``bumphunt.toymc``); the preset's pre-selection (exactly
three photons above 2 GeV within 8-172 deg); the 4C kinematic fit to the
beams; the three diphoton candidates per event; the Giga-Z selection
(``bumphunt.events.gigaz``, scan form ``candidate_mask``).

``select_candidates`` runs that chain over ntuples. ``measure_signal`` takes
truth-matched signal candidates at one generated mass to the resolution,
efficiency and wrong-pair fraction there, and ``zpole_signal_model`` fits
them with polynomials in m_a: the signal model of the Z-pole scan is the
analytic model (``signal_models.AnalyticSignalModel``) whose sigma(m) and
efficiency(m) follow the Z-pole toy MC (DSCB tails at their defaults; the
4C fit makes the truth-matched M_gg close to Gaussian, sigma from 30 MeV at
1 GeV to 70 MeV at 50 GeV). Below ~1 GeV the Delta R > 0.035 requirement
makes the efficiency fall steeply (the ALP photons' opening peaks at
4 m_a / m_Z); a model for that region needs its own mass range.

``run_zpole_search`` does everything at once and writes, beside the toy MC,
``zpole_mgg.npy`` (selected candidates of the pseudo-data),
``zpole_signal_model.json`` and ``scan_zpole.yaml`` (``beam.collider: zpole``,
runnable with ``bumphunt scan``); with ``scan=True`` it runs the scan too.

This module sits above ``bumphunt.chain`` (it strings the stages together).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .colliders import Collider, collider
from .errors import InputError
from .events.gigaz import GigaZSelection

logger = logging.getLogger(__name__)

__all__ = ["ZPoleCandidates", "SignalPoint", "ZPoleSearchSettings", "ZPoleSearchResult", "select_candidates",
           "measure_signal", "zpole_signal_model", "run_zpole_search"]


@dataclass(frozen=True)
class ZPoleCandidates:
    """Selected diphoton candidates of a set of ntuples (arrays of one entry per candidate).

    Attributes
    ----------
    mgg : ndarray
        M_gg in GeV (from the fitted photons where the 4C fit ran).
    weight, truth_match, mc_ma, process : ndarray
        Candidate weight, whether it is the true ALP pair, the generated ALP
        mass (GeV, -1 for background) and the process code.
    n_events, n_preselected, n_selected_events : int
        Events read, passing the pre-selection, and with a selected candidate.
    """

    mgg: NDArray[np.float64]
    weight: NDArray[np.float64]
    truth_match: NDArray[np.bool_]
    mc_ma: NDArray[np.float64]
    process: NDArray[np.int32]
    n_events: int
    n_preselected: int
    n_selected_events: int


def select_candidates(
    paths: str | Path | Iterable[str | Path],
    *,
    collider_name: str | Collider = "zpole",
    selection: GigaZSelection | None = None,
    kinematic_fit: bool = True,
    step_size: int = 200_000,
) -> ZPoleCandidates:
    """Pre-selection, 4C fit, candidates and the Giga-Z selection over ntuples, chunk by chunk.

    Parameters
    ----------
    paths : path, glob or list
        Toy-MC (or schema-compatible) ntuples in GeV.
    collider_name : str or Collider
        Preset whose beams and pre-selection cuts are used (default ``zpole``).
    selection : GigaZSelection, optional
        Cut values (default the published ones).
    kinematic_fit : bool
        Fit the photons to the beams (default True).
    step_size : int
        Events per chunk.
    """
    from .chain import candidates_from_events
    from .events import iterate_events

    preset = collider(collider_name)
    selection = selection or GigaZSelection()
    cuts = preset.preselection_cuts()
    parts: list[dict[str, NDArray]] = []
    n_events = n_pre = n_sel_events = 0
    for chunk in iterate_events(paths, energy_unit="GeV", step_size=step_size, allow_empty=True):
        n_events += len(chunk["event"])
        out, _ = candidates_from_events(chunk, beam=preset.beam, cuts=cuts, kinematic_fit=kinematic_fit)
        n_pre += len(out.events["E"])
        if not len(out.events["E"]):
            continue
        keep = selection.candidate_mask(out.events, out.candidates, preset.sqrt_s)
        n_sel_events += int(np.count_nonzero(keep.reshape(-1, 3).any(axis=1)))
        parts.append({k: np.asarray(out.candidates[k])[keep] for k in ("mgg", "weight", "truth_match", "mc_ma", "process")})
    if n_events == 0:
        raise InputError(f"{paths}: no events")

    def cat(key: str, dtype: Any) -> NDArray:
        return np.concatenate([p[key] for p in parts]).astype(dtype) if parts else np.zeros(0, dtype=dtype)

    logger.info("Z-pole selection: %d events -> %d pre-selected -> %d with a selected candidate", n_events, n_pre, n_sel_events)
    return ZPoleCandidates(mgg=cat("mgg", np.float64), weight=cat("weight", np.float64), truth_match=cat("truth_match", bool),
                           mc_ma=cat("mc_ma", np.float64), process=cat("process", np.int32), n_events=n_events,
                           n_preselected=n_pre, n_selected_events=n_sel_events)


@dataclass(frozen=True)
class SignalPoint:
    """Signal at one generated mass after the selection (GeV).

    Attributes
    ----------
    mass, n_generated : float, int
        Generated ALP mass and events.
    peak, sigma : float
        Median and core width (interquartile range / 1.349) of the truth-matched M_gg.
    efficiency, efficiency_err : float
        Truth-matched selected candidates per generated event, and its binomial error.
    comb_fraction : float
        Wrong pairs among the selected candidates within +-``half_width`` sigma of the peak.
    """

    mass: float
    n_generated: int
    peak: float
    sigma: float
    efficiency: float
    efficiency_err: float
    comb_fraction: float


def measure_signal(candidates: ZPoleCandidates, mass: float, n_generated: int, *, half_width: float = 20.0) -> SignalPoint:
    """Resolution, efficiency and wrong-pair fraction of signal candidates generated at ``mass`` (GeV)."""
    at = candidates.mc_ma == mass
    tm = at & candidates.truth_match
    n_tm = int(np.count_nonzero(tm))
    if n_tm < 20:
        raise InputError(f"signal at m_a = {mass} GeV: {n_tm} truth-matched candidates selected; need at least 20")
    m = candidates.mgg[tm]
    q25, q50, q75 = np.percentile(m, [25, 50, 75])
    sigma = float((q75 - q25) / 1.349)
    window = at & (np.abs(candidates.mgg - q50) < half_width * sigma)
    n_win = int(np.count_nonzero(window))
    eff = n_tm / n_generated
    return SignalPoint(mass=float(mass), n_generated=int(n_generated), peak=float(q50), sigma=sigma, efficiency=eff,
                       efficiency_err=float(np.sqrt(eff * (1 - eff) / n_generated)),
                       comb_fraction=float(1.0 - np.count_nonzero(window & candidates.truth_match) / max(n_win, 1)))


def zpole_signal_model(points: Sequence[SignalPoint], *, sigma_degree: int = 1, efficiency_degree: int = 2,
                       mass_range: tuple[float, float] | None = None) -> Any:
    """An ``AnalyticSignalModel`` whose sigma(m) and efficiency(m) are polynomial fits to the measured points.

    Parameters
    ----------
    points : sequence of SignalPoint
        At least ``max(sigma_degree, efficiency_degree) + 1`` masses.
    sigma_degree, efficiency_degree : int
        Polynomial degrees in m_a (GeV).
    mass_range : (float, float), optional
        Valid range (GeV); default the measured masses' range.
    """
    from signal_models.analytic import AnalyticSignalModel

    if len(points) < max(sigma_degree, efficiency_degree) + 1:
        raise InputError(f"zpole_signal_model: {len(points)} signal masses for polynomials of degree "
                         f"{max(sigma_degree, efficiency_degree)}; need more masses")
    m = np.array([p.mass for p in points])
    s = np.array([p.sigma for p in points])
    e = np.array([p.efficiency for p in points])
    e_err = np.array([max(p.efficiency_err, 1e-4) for p in points])
    sigma_coeffs = np.polynomial.polynomial.polyfit(m, s, sigma_degree)
    eff_coeffs = np.polynomial.polynomial.polyfit(m, e, efficiency_degree, w=1.0 / e_err)
    rel_unc = float(np.max(np.abs(np.polynomial.polynomial.polyval(m, eff_coeffs) - e) / e))
    comb = float(np.clip(np.mean([p.comb_fraction for p in points]), 0.0, 0.99))
    rng = mass_range or (float(m.min()), float(m.max()))
    return AnalyticSignalModel(sigma_coeffs=tuple(float(c) for c in sigma_coeffs),
                               efficiency_coeffs=tuple(float(c) for c in eff_coeffs),
                               efficiency_rel_unc=max(rel_unc, 0.02), mass_range=(float(rng[0]), float(rng[1])),
                               comb_fraction=comb)


@dataclass(frozen=True)
class ZPoleSearchSettings:
    """What ``run_zpole_search`` generates and scans (GeV, fb^-1, GeV^-1).

    Attributes
    ----------
    lumi_fb : float
        Luminosity of the pseudo-data and the scan (100 fb^-1: the Giga-Z run).
    signal_masses : tuple of float
        Signal-MC masses for the signal model.
    n_signal_per_mass, n_ggg : int
        Signal events per mass; e+e- -> 3 gamma MC events.
    g_abb : float
        Hypercharge coupling of the signal (1e-3 GeV^-1 = 1 TeV^-1).
    seed : int
        Master seed of the toy MC.
    inject : dict or None
        Signal in the pseudo-data, ``{"mass": GeV, "n_events": mean}``.
    scan_range : (float, float)
        Mass range of the scan (GeV), inside ``signal_masses``' range.
    step_sigma_fraction : float
        Scan step in units of sigma(m).
    selection : GigaZSelection
        The Giga-Z cut values.
    """

    lumi_fb: float = 100.0
    signal_masses: tuple[float, ...] = (1.0, 2.0, 5.0, 10.0, 20.0, 35.0, 50.0)
    n_signal_per_mass: int = 4000
    n_ggg: int = 50_000
    g_abb: float = 1.0e-3
    seed: int = 0
    inject: dict[str, float] | None = None
    scan_range: tuple[float, float] = (1.0, 50.0)
    step_sigma_fraction: float = 2.0
    selection: GigaZSelection = field(default_factory=GigaZSelection)


@dataclass(frozen=True)
class ZPoleSearchResult:
    """Files written by ``run_zpole_search`` and what they hold.

    Attributes
    ----------
    toy_files : dict
        Toy-MC sample name -> ROOT file.
    mgg_file, signal_model_file, scan_config : Path
        Selected pseudo-data masses (.npy), the signal model (JSON), the scan configuration (YAML).
    signal_points : tuple of SignalPoint
        The measured signal at each generated mass.
    data : ZPoleCandidates
        The selected pseudo-data candidates.
    expected_background : float
        Weighted e+e- -> 3 gamma MC candidates after the selection, in the scan range.
    scan_result : dict or None
        The scan result when ``scan=True``.
    """

    toy_files: dict[str, Path]
    mgg_file: Path
    signal_model_file: Path
    scan_config: Path
    signal_points: tuple[SignalPoint, ...]
    data: ZPoleCandidates
    expected_background: float
    scan_result: dict[str, Any] | None = None


def run_zpole_search(out_dir: str | Path, settings: ZPoleSearchSettings | None = None, *, scan: bool = False,
                     scan_overrides: dict[str, Any] | None = None) -> ZPoleSearchResult:
    """Toy MC, selection, signal model and scan configuration of the Z-pole search (module docstring).

    Parameters
    ----------
    out_dir : path
        Folder for everything (toy MC under ``toymc/``).
    settings : ZPoleSearchSettings, optional
    scan : bool
        Also run the scan (``scans.run_config``; results under ``scan/``).
    scan_overrides : dict, optional
        Scan-configuration keys replacing the written ones (e.g. ``{"lee": {"toys": 0}}``).
    """
    import json

    import yaml

    from .toymc import generate

    st = settings or ZPoleSearchSettings()
    lo, hi = st.scan_range
    if not min(st.signal_masses) <= lo < hi <= max(st.signal_masses):
        raise InputError(f"scan range {st.scan_range} GeV must lie inside the signal masses' range "
                         f"[{min(st.signal_masses)}, {max(st.signal_masses)}] GeV")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cfg = {"collider": "zpole", "seed": st.seed, "lumi_fb": st.lumi_fb,
           "signal": {"masses": list(st.signal_masses), "n_per_mass": st.n_signal_per_mass, "coupling": "hypercharge", "g_abb": st.g_abb},
           "backgrounds": {"ggg": st.n_ggg}, "data": {"enabled": True, "inject": st.inject}}
    files = generate(out / "toymc", config=cfg)
    points = []
    for m in st.signal_masses:
        sig = select_candidates(files[f"signal_m{float(m):.3f}"], selection=st.selection)
        points.append(measure_signal(sig, float(m), st.n_signal_per_mass))
    model = zpole_signal_model(points)
    model_path = model.save(out / "zpole_signal_model.json")
    data = select_candidates(files["data"], selection=st.selection)
    mgg_path = out / "zpole_mgg.npy"
    np.save(mgg_path, data.mgg)
    ggg = select_candidates(files["ggg"], selection=st.selection)
    in_range = (ggg.mgg >= lo) & (ggg.mgg <= hi)
    scan_cfg: dict[str, Any] = {
        "inputs": {"files": [mgg_path.name], "kind": "candidates"},
        "signal_model": Path(model_path).name,
        "luminosity_fb": st.lumi_fb,
        "beam": {"collider": "zpole"},
        "mass": {"min": lo, "max": hi, "step": None, "step_sigma_fraction": st.step_sigma_fraction},
        "vetoes": {"particles": []},
        "output": {"dir": "scan"},
    }
    for key, value in (scan_overrides or {}).items():
        scan_cfg[key] = {**scan_cfg[key], **value} if isinstance(value, dict) and isinstance(scan_cfg.get(key), dict) else value
    cfg_path = out / "scan_zpole.yaml"
    header = ("# Z-pole (Giga-Z) search on toy MC, written by bumphunt.zpole.run_zpole_search\n"
              f"# signal points: {json.dumps([p.__dict__ for p in points])}\n")
    cfg_path.write_text(header + yaml.safe_dump(scan_cfg, sort_keys=False))
    result = None
    if scan:
        from scans.run import run_config

        result = run_config(cfg_path, out_dir=out / "scan", show_progress=False)
    return ZPoleSearchResult(toy_files=files, mgg_file=mgg_path, signal_model_file=Path(model_path), scan_config=cfg_path,
                             signal_points=tuple(points), data=data, expected_background=float(np.sum(ggg.weight[in_range])),
                             scan_result=result)

"""The plan of a scan: everything decided before the first fit.

``plan_scan(mgg, signal_model, config)`` turns a validated scan configuration
and the sorted candidate masses into a ``ScanPlan``: the mass grid, each
hypothesis' signal shape, fit window, number of candidates in the window,
efficiency and signal scale, the vetoes and the known peaks inside windows
(``scans.peaks``: floated as background templates or cut out), the status of every point and
the blocks of consecutive fitted points that are the unit of parallel work
and checkpointing. Everything that can be checked cheaply (mass range inside
the signal model, positive efficiencies, candidates finite) is checked here,
before any fit. Masses and widths in GeV.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from signal_models import SignalShape
from signal_models._common.pdg import particle_mass

from .config import sqrt_s_from_config
from .errors import ScanConfigError, ScanInputError
from .grid import fit_windows, mass_grid
from .limits import relative_uncertainty, signal_scale
from .peaks import peaks_in_windows

logger = logging.getLogger(__name__)

__all__ = ["ScanPlan", "plan_scan", "sorted_candidates", "signal_efficiency", "veto_ranges", "vetoed_mass_ranges"]


def _read_only(a: ArrayLike, dtype: Any = None) -> NDArray:
    out = np.array(a, dtype=dtype)
    out.setflags(write=False)
    return out


@dataclass(frozen=True, eq=False)
class ScanPlan:
    """Everything about a scan that is decided before the first fit (arrays over the k grid points).

    Attributes
    ----------
    masses : (k,) float array, GeV
        Mass hypotheses.
    sigmas : (k,) float array, GeV
        Core width of the signal shape at each mass.
    windows : (k, 2) float array, GeV
        Fit windows ``[lo, hi]``.
    n_events : (k,) int array
        Candidates inside each window.
    efficiency, efficiency_unc : (k,) float arrays
        Signal efficiency normalising N_sig and its absolute uncertainty.
    scale : (k,) float array, events / pb
        Signal events per pb of cross-section (efficiency x luminosity).
    rel_unc : (k,) float array
        Relative uncertainty of ``scale`` (luminosity, efficiency, trigger, other).
    veto : tuple of str
        Per point the veto reason, "" when not vetoed.
    status : tuple of str
        Per point ``"fit"``, ``"vetoed"`` or ``"empty"`` (too few candidates).
    shapes : tuple of SignalShape or None
        Signal shape per point, None for vetoed points.
    extras : tuple of tuples of SignalShape
        Per point the known peaks fitted as background templates (empty
        unless ``vetoes.mode`` is ``"float"``).
    blocks : tuple of (int arrays)
        Grid indices of the fitted points, in blocks of ``block_size``
        consecutive points.
    data_range : (float, float), GeV
        M_gg range of the data.
    sqrt_s : float, GeV
        Centre-of-mass energy.
    """

    masses: NDArray[np.float64]
    sigmas: NDArray[np.float64]
    windows: NDArray[np.float64]
    n_events: NDArray[np.int64]
    efficiency: NDArray[np.float64]
    efficiency_unc: NDArray[np.float64]
    scale: NDArray[np.float64]
    rel_unc: NDArray[np.float64]
    veto: tuple[str, ...]
    status: tuple[str, ...]
    shapes: tuple[SignalShape | None, ...]
    extras: tuple[tuple[SignalShape, ...], ...]
    blocks: tuple[NDArray[np.int64], ...]
    data_range: tuple[float, float]
    sqrt_s: float

    @property
    def fit_indices(self) -> NDArray[np.int64]:
        """Grid indices of the points that are fitted (status ``"fit"``), increasing."""
        return np.flatnonzero(np.asarray(self.status) == "fit")

    @property
    def has_extras(self) -> bool:
        """Whether any point fits known peaks as background templates."""
        return any(self.extras)

    def digest(self) -> str:
        """sha256 of the plan (masses, windows, signal scales, shapes, templates, status, blocks); guards resuming."""
        blob = json.dumps(
            {
                "masses": self.masses.tolist(),
                "windows": self.windows.tolist(),
                "scale": self.scale.tolist(),
                "rel_unc": self.rel_unc.tolist(),
                "shapes": [None if s is None else s.to_dict() for s in self.shapes],
                **({"extras": [[e.to_dict() for e in ex] for ex in self.extras]} if self.has_extras else {}),
                "status": list(self.status),
                "blocks": [b.tolist() for b in self.blocks],
            },
            sort_keys=True,
        )
        return hashlib.sha256(blob.encode()).hexdigest()


def sorted_candidates(candidates_mgg: ArrayLike, *, what: str = "candidate masses") -> NDArray[np.float64]:
    """The candidate masses (GeV) as a sorted 1-D float array, after checking them.

    Parameters
    ----------
    candidates_mgg : array
    what : str
        How the masses are named in error messages (e.g. ``"dataset 'run1': candidate masses"``).

    Raises
    ------
    ScanInputError
        Not a 1-D array of numbers, empty, or with NaN or infinite values.
    """
    try:
        mgg = np.asarray(candidates_mgg, dtype=float)
    except (TypeError, ValueError) as exc:
        raise ScanInputError(f"{what}: cannot be read as an array of floats ({exc})") from None
    if mgg.ndim != 1:
        raise ScanInputError(f"{what}: expected a 1-D array of M_gg in GeV, got shape {mgg.shape}")
    if mgg.size == 0:
        raise ScanInputError(f"{what}: no candidates (empty array)")
    bad = ~np.isfinite(mgg)
    if bad.any():
        raise ScanInputError(f"{what}: {int(bad.sum())} of {mgg.size} values are NaN or infinite")
    return np.sort(mgg)


def signal_efficiency(signal_model: Any, masses: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Efficiency that normalises the fitted signal yield, and its absolute uncertainty.

    N_sig counts every signal candidate the shape ``shape(m)`` describes
    (truth-matched DSCB and combinatorial part), so the conversion to a
    cross-section uses ``efficiency_total(m)`` (all signal candidates in the
    window per generated event) when the model provides it, else
    ``efficiency(m)``.

    Parameters
    ----------
    signal_model : SignalModel-like
    masses : (k,) float array, GeV

    Returns
    -------
    efficiency, uncertainty : (k,) float arrays
        The uncertainty is 0 when the model provides none.
    """
    if hasattr(signal_model, "efficiency_total"):
        eff = signal_model.efficiency_total(masses)
        unc = signal_model.efficiency_total_uncertainty(masses) if hasattr(signal_model, "efficiency_total_uncertainty") else None
    else:
        eff = signal_model.efficiency(masses)
        unc = signal_model.efficiency_uncertainty(masses) if hasattr(signal_model, "efficiency_uncertainty") else None
    eff = np.asarray(eff, dtype=float).reshape(masses.shape)
    unc = np.zeros_like(eff) if unc is None else np.asarray(unc, dtype=float).reshape(masses.shape)
    return eff, unc


def _model_range(signal_model: Any) -> tuple[float, float]:
    try:
        lo, hi = map(float, signal_model.mass_range)
    except Exception as exc:  # the object does not follow the SignalModel interface
        raise ScanInputError(f"signal model: no usable mass_range ({exc})") from None
    return lo, hi


def _check_mass_range(mass: Mapping[str, Any], *, model_range: tuple[float, float], data_range: tuple[float, float], sqrt_s: float) -> None:
    model_lo, model_hi = model_range
    if mass["min"] < model_lo or mass["max"] > model_hi:
        raise ScanConfigError(
            f"mass: scan range [{mass['min']}, {mass['max']}] GeV lies outside the signal model range [{model_lo}, {model_hi}] GeV"
        )
    if mass["max"] >= sqrt_s:
        raise ScanConfigError(f"mass.max: {mass['max']} GeV is not below sqrt(s) = {sqrt_s:.4g} GeV (no e+e- -> gamma a)")
    if mass["max"] < data_range[0] or mass["min"] > data_range[1]:
        raise ScanInputError(
            f"mass: scan range [{mass['min']}, {mass['max']}] GeV does not overlap the data range [{data_range[0]:.4g}, {data_range[1]:.4g}] GeV"
        )


def _point_status(
    masses: NDArray[np.float64],
    veto: Sequence[str],
    *,
    n_events: NDArray[np.int64],
    windows: NDArray[np.float64],
    efficiency: NDArray[np.float64],
    efficiency_unc: NDArray[np.float64],
    min_window_events: int,
) -> list[str]:
    """Status of every point: ``"vetoed"``, ``"empty"`` (too few candidates) or ``"fit"``.

    Raises
    ------
    ScanInputError
        A point that is not vetoed has a non-positive efficiency or a negative uncertainty.
    """
    status = []
    for i, m in enumerate(masses):
        if veto[i]:
            status.append("vetoed")
            continue
        if not (np.isfinite(efficiency[i]) and efficiency[i] > 0):
            raise ScanInputError(f"signal model: efficiency at m = {m:.6g} GeV is {efficiency[i]} (must be > 0 to convert limits)")
        if not (np.isfinite(efficiency_unc[i]) and efficiency_unc[i] >= 0):
            raise ScanInputError(f"signal model: efficiency uncertainty at m = {m:.6g} GeV is {efficiency_unc[i]} (must be >= 0)")
        status.append("empty" if n_events[i] < max(min_window_events, 1) or windows[i, 1] <= windows[i, 0] else "fit")
    return status


def plan_scan(mgg: NDArray[np.float64], signal_model: Any, config: Mapping[str, Any]) -> ScanPlan:
    """Mass grid, windows, vetoes, efficiencies and blocks of a scan; fails fast on bad input.

    Parameters
    ----------
    mgg : (n,) float array, GeV
        Candidate masses, sorted (as returned by ``sorted_candidates``).
    signal_model : SignalModel-like
        ``shape(m)``, ``efficiency(m)`` (or ``efficiency_total``), optional
        uncertainties, ``mass_range``.
    config : mapping
        Completed scan configuration (``scans.load_scan_config``).

    Raises
    ------
    ScanConfigError, ScanInputError
        Scan range outside the signal model or the data, mass above sqrt(s),
        non-positive efficiency, or no point that can be fitted.
    """
    mc = config["mass"]
    data_range = tuple(mc["data_range"]) if mc["data_range"] is not None else (float(mgg[0]), float(mgg[-1]))
    model_lo, model_hi = _model_range(signal_model)
    sqrt_s = sqrt_s_from_config(config)
    _check_mass_range(mc, model_range=(model_lo, model_hi), data_range=data_range, sqrt_s=sqrt_s)

    def sigma_at(m: float) -> float:
        return float(signal_model.shape(min(max(m, model_lo), model_hi)).sigma)

    masses = mass_grid(mc["min"], mc["max"], step=mc["step"], step_sigma_fraction=mc["step_sigma_fraction"], sigma=sigma_at)
    masses = masses[masses <= model_hi]
    shapes_all = [signal_model.shape(float(m)) for m in masses]  # loop over hypotheses, not events
    sigmas = np.array([s.sigma for s in shapes_all])
    windows = fit_windows(
        masses,
        sigmas,
        n_sigma=config["window_n_sigma"],
        data_range=data_range,
        comb_domain=np.array([s.comb_domain for s in shapes_all]),
        mus=np.array([s.mu for s in shapes_all]),
    )
    veto, extras, windows = peaks_in_windows(signal_model, config["vetoes"], masses=masses, sigmas=sigmas, windows=windows,
                                             model_range=(model_lo, model_hi))
    lo_idx = np.searchsorted(mgg, windows[:, 0], side="left")
    hi_idx = np.searchsorted(mgg, windows[:, 1], side="right")
    n_events = np.where(windows[:, 1] > windows[:, 0], hi_idx - lo_idx, 0)

    eff, eff_unc = signal_efficiency(signal_model, masses)
    if config["systematics"]["efficiency"] != "model":
        eff_unc = np.zeros_like(eff)
    status = _point_status(masses, veto, n_events=n_events, windows=windows, efficiency=eff, efficiency_unc=eff_unc,
                           min_window_events=config["min_window_events"])
    scale = signal_scale(eff, config["luminosity_fb"])
    syst = config["systematics"]
    rel_unc = relative_uncertainty(
        np.full_like(eff, config["luminosity_rel_unc"]),
        np.divide(eff_unc, eff, out=np.zeros_like(eff), where=eff > 0),
        np.full_like(eff, syst["trigger_rel"]),
        np.full_like(eff, syst["other_rel"]),
    )
    fit_idx = np.flatnonzero(np.asarray(status) == "fit")
    if len(fit_idx) == 0:
        raise ScanInputError(
            f"scan: none of the {len(masses)} mass points can be fitted ({status.count('vetoed')} vetoed, "
            f"{status.count('empty')} with fewer than {max(config['min_window_events'], 1)} candidates in the window; "
            f"data range [{data_range[0]:.4g}, {data_range[1]:.4g}] GeV)"
        )
    bs = config["block_size"]
    return ScanPlan(
        masses=_read_only(masses),
        sigmas=_read_only(sigmas),
        windows=_read_only(windows),
        n_events=_read_only(n_events, dtype=int),
        efficiency=_read_only(eff),
        efficiency_unc=_read_only(eff_unc),
        scale=_read_only(scale),
        rel_unc=_read_only(rel_unc),
        veto=tuple(veto),
        status=tuple(status),
        shapes=tuple(None if st == "vetoed" else sh for st, sh in zip(status, shapes_all)),
        extras=tuple(() if st == "vetoed" else tuple(e) for st, e in zip(status, extras)),
        blocks=tuple(_read_only(fit_idx[i : i + bs]) for i in range(0, len(fit_idx), bs)),
        data_range=(data_range[0], data_range[1]),
        sqrt_s=sqrt_s,
    )


def veto_ranges(plan: ScanPlan, vetoes: Mapping[str, Any]) -> list[list[float]]:
    """Mass ranges [lo, hi] GeV around the known peaks and the explicit veto ranges.

    Left out of the smooth background fit of the look-elsewhere toys: a peak
    extends ``max(n_sigma, 3) sigma`` around its PDG mass, sigma taken at the
    grid point nearest to it.

    Parameters
    ----------
    plan : ScanPlan
    vetoes : mapping
        The ``vetoes`` section of the scan configuration.
    """
    out = [list(r) for r in vetoes["ranges"]]
    for name in vetoes["particles"]:
        mp = particle_mass(name)
        i = int(np.argmin(np.abs(plan.masses - mp)))
        half = max(vetoes["n_sigma"], 3.0) * float(plan.sigmas[i])
        out.append([mp - half, mp + half])
    return out


def vetoed_mass_ranges(plan: ScanPlan, vetoes: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The mass ranges the vetoes remove from the scan, for plots and readers of the result.

    A listed particle vetoes ``m_P +- n_sigma sigma`` (sigma at the grid point
    nearest to m_P) in ``vetoes.mode: veto``; explicit ``vetoes.ranges`` are
    vetoed in every mode. Only ranges that overlap the scanned masses and hold a
    vetoed point are returned.

    Returns
    -------
    list of {"lo", "hi", "reason"}
        GeV, sorted by ``lo``.
    """
    if len(plan.masses) == 0:
        return []
    out = [{"lo": float(lo), "hi": float(hi), "reason": f"range [{lo:g}, {hi:g}] GeV"} for lo, hi in vetoes["ranges"]]
    if vetoes.get("mode", "veto") == "veto":
        for name in vetoes["particles"]:
            mp = particle_mass(name)
            i = int(np.argmin(np.abs(plan.masses - mp)))
            half = vetoes["n_sigma"] * float(plan.sigmas[i])
            out.append({"lo": mp - half, "hi": mp + half, "reason": name})
    vetoed = plan.masses[np.array([s == "vetoed" for s in plan.status])]
    keep = [r for r in out if np.any((vetoed >= r["lo"] - 1e-12) & (vetoed <= r["hi"] + 1e-12))]
    return sorted(keep, key=lambda r: r["lo"])

"""The plan of a combined scan: per mass point and dataset, the window, signal shape, expected signal per pb and nuisances.

The parameter of interest of every hypothesis is the cross-section in pb;
dataset c expects ``scale_c(m) = eps_c(m) x trigger_c(m) x L_c`` signal
events per pb (``L`` in pb^-1). The plan also holds the constrained
nuisances of each hypothesis:

- per dataset one yield nuisance ``yield_<dataset>`` for its uncorrelated
  relative uncertainties (luminosity, signal-model efficiency, trigger table),
  log-normal with ``ln kappa = sqrt(sum_i ln(1 + r_i)^2)``: profiling
  independent log-normal factors that act only through their product is
  exactly one factor of that width (``fits.combine_rel_unc``);
- ``syst_other``: the flat ``systematics.trigger_rel`` and ``other_rel``,
  common to all datasets (correlated);
- the configured ``nuisances``: ``yield`` ones (correlated over the
  datasets they name) and the shape ones (``resolution``, ``shift``).

The mass grid follows the narrowest dataset (the smallest sigma(m)); a point
is vetoed when any dataset vetoes it, and fitted when at least one dataset
has ``min_window_events`` candidates in its window (a dataset without
candidates at a point is fitted with the others and flagged in the point).
Known peaks inside a window are handled as ``vetoes.in_window: cut`` (the
combined engine has no peak templates); ``template`` is read as ``cut``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from signal_models import SignalShape

from .blinding import blinded_mask
from .config import sqrt_s_from_config
from .config_datasets import check_nuisances
from .datasets import Dataset
from .errors import ScanConfigError, ScanInputError
from .grid import fit_windows, mass_grid
from .limits import PB_PER_FB
from .peaks import peaks_in_windows
from .plan import signal_efficiency

logger = logging.getLogger(__name__)

__all__ = ["CombinedPlan", "plan_combined", "yield_nuisances", "with_spurious"]


def _ro(a: Any, dtype: Any = None) -> NDArray:
    out = np.array(a, dtype=dtype)
    out.setflags(write=False)
    return out


@dataclass(frozen=True, eq=False)
class CombinedPlan:
    """Everything about a combined scan decided before the first fit (k points x C datasets).

    Attributes
    ----------
    masses, sigmas : (k,) float arrays, GeV
        Mass hypotheses and the narrowest dataset's core width there.
    status, veto : tuple of str
        Per point ``"fit"``, ``"vetoed"`` or ``"empty"``; the veto reason ("" if none).
    blocks : tuple of int arrays
        Grid indices of the fitted points, in blocks.
    data_range : (float, float), GeV
        Union of the datasets' M_gg ranges.
    sqrt_s : float, GeV
    names : tuple of str
        Dataset names (C).
    channel_ranges : (C, 2) float array, GeV
        Each dataset's M_gg range (candidates outside it are not used).
    covered : (k, C) bool array
        Whether the point lies inside the dataset's range; a dataset that does not
        cover a point takes no part in its fit (no signal expected, no candidates).
    windows : (k, C, 2) float array, GeV
    n_events : (k, C) int array
    shapes : tuple of C tuples of k SignalShape (None at vetoed points)
    efficiency, trigger : (k, C) float arrays
        Signal-model efficiency and trigger efficiency.
    scale : (k, C) float array, events / pb
    luminosity_fb : (C,) float array, fb^-1
    orders : (k, C) int array
        Configured background orders.
    yield_names : tuple of str (K)
    yield_coeff : (k, K, C) float array
        ``ln(1 + r)`` (log-normal) or ``r`` (Gaussian) per point, nuisance and dataset.
    yield_lognormal : (K,) bool array
    shape_names, shape_kinds : tuple of str (J)
    shape_relative : tuple of bool (J)
    shape_widths : (J, C) float array
        Relative (resolution, relative shift) or GeV (shift); 0 where a nuisance does not act.
    spurious_names : tuple of str (A)
        Spurious-signal nuisances (``background_model.method: spurious_signal``; empty otherwise).
    spurious_size : (k, A, C) float array, events
        Their sizes per point and dataset.
    blinded : (k,) bool array or None
        Points that report expected quantities only (``scans.blinding``).
    """

    masses: NDArray
    sigmas: NDArray
    status: tuple[str, ...]
    veto: tuple[str, ...]
    blocks: tuple[NDArray, ...]
    data_range: tuple[float, float]
    sqrt_s: float
    names: tuple[str, ...]
    channel_ranges: NDArray
    covered: NDArray
    windows: NDArray
    n_events: NDArray
    shapes: tuple[tuple[SignalShape | None, ...], ...]
    efficiency: NDArray
    trigger: NDArray
    scale: NDArray
    luminosity_fb: NDArray
    orders: NDArray
    yield_names: tuple[str, ...]
    yield_coeff: NDArray
    yield_lognormal: NDArray
    shape_names: tuple[str, ...]
    shape_kinds: tuple[str, ...]
    shape_relative: tuple[bool, ...]
    shape_widths: NDArray
    spurious_names: tuple[str, ...] = ()
    spurious_size: NDArray | None = None
    blinded: NDArray | None = None

    @property
    def fit_indices(self) -> NDArray[np.int64]:
        """Grid indices of the fitted points, increasing."""
        return np.flatnonzero(np.asarray(self.status) == "fit")

    @property
    def n_channels(self) -> int:
        return len(self.names)

    def digest(self) -> str:
        """sha256 of the plan; guards resuming."""
        blob = json.dumps(
            {
                "masses": self.masses.tolist(),
                "names": list(self.names),
                "windows": self.windows.tolist(),
                "ranges": self.channel_ranges.tolist(),
                "scale": self.scale.tolist(),
                "orders": self.orders.tolist(),
                "yield": [list(self.yield_names), self.yield_coeff.tolist(), self.yield_lognormal.tolist()],
                "shape": [list(self.shape_names), list(self.shape_kinds), list(self.shape_relative), self.shape_widths.tolist()],
                "shapes": [[None if s is None else s.to_dict() for s in per] for per in self.shapes],
                "status": list(self.status),
                "blocks": [b.tolist() for b in self.blocks],
                **({"spurious": [list(self.spurious_names), self.spurious_size.tolist()]} if self.spurious_size is not None else {}),
                **({"blinded": self.blinded.tolist()} if self.blinded is not None and self.blinded.any() else {}),
            },
            sort_keys=True,
        )
        return hashlib.sha256(blob.encode()).hexdigest()

    @property
    def nuisance_names(self) -> tuple[str, ...]:
        """All nuisances in the order of the fit's parameter vector: yields, spurious signals, shapes."""
        return self.yield_names + self.spurious_names + self.shape_names


def _model_range(ds: Dataset) -> tuple[float, float]:
    try:
        lo, hi = map(float, ds.signal_model.mass_range)
    except Exception as exc:  # the object does not follow the SignalModel interface
        raise ScanInputError(f"dataset {ds.name!r}: signal model has no usable mass_range ({exc})") from None
    return lo, hi


def yield_nuisances(
    datasets: Sequence[Dataset], config: Mapping[str, Any], *, masses: NDArray, efficiency: NDArray, efficiency_unc: NDArray
) -> tuple[tuple[str, ...], NDArray, NDArray]:
    """Names, coefficients (k, K, C) and log-normal flags (K,) of the yield nuisances (module docstring)."""
    k, C = len(masses), len(datasets)
    names: list[str] = []
    coeffs: list[NDArray] = []
    logn: list[bool] = []
    use_eff = config["systematics"]["efficiency"] == "model"
    for c, ds in enumerate(datasets):
        rel_eff = np.divide(efficiency_unc[:, c], efficiency[:, c], out=np.zeros(k), where=efficiency[:, c] > 0) if use_eff else np.zeros(k)
        parts = [np.full(k, ds.luminosity_rel_unc), rel_eff, ds.trigger.relative_uncertainty(masses)]
        ln_kappa = np.sqrt(sum(np.log1p(p) ** 2 for p in parts))
        if np.any(ln_kappa > 0):
            a = np.zeros((k, C))
            a[:, c] = ln_kappa
            names.append(f"yield_{ds.name}")
            coeffs.append(a)
            logn.append(True)
    syst = config["systematics"]
    flat = float(np.sqrt(np.log1p(syst["trigger_rel"]) ** 2 + np.log1p(syst["other_rel"]) ** 2))
    if flat > 0:
        names.append("syst_other")
        coeffs.append(np.full((k, C), flat))
        logn.append(True)
    ds_names = [d.name for d in datasets]
    for nu in config["nuisances"]:
        if nu["kind"] != "yield":
            continue
        acts = nu["datasets"] or ds_names
        r = nu["rel_unc"]
        rel = np.array([float(r.get(n, 0.0)) if isinstance(r, Mapping) else float(r) for n in ds_names])
        rel = np.where(np.isin(ds_names, acts), rel, 0.0)
        gauss = nu["constraint"] == "gaussian"
        if gauss and np.any(rel >= 1):
            raise ScanConfigError(f"nuisances ({nu['name']}).rel_unc: a Gaussian yield uncertainty must be below 1, got {rel.max()}")
        names.append(nu["name"])
        coeffs.append(np.broadcast_to(rel if gauss else np.log1p(rel), (k, C)).copy())
        logn.append(not gauss)
    coeff = np.stack(coeffs, axis=1) if coeffs else np.zeros((k, 0, C))
    return tuple(names), coeff, np.array(logn, dtype=bool)


def _shape_nuisances(datasets: Sequence[Dataset], config: Mapping[str, Any]) -> tuple[tuple[str, ...], tuple[str, ...], tuple[bool, ...], NDArray]:
    ds_names = [d.name for d in datasets]
    rows, names, kinds, rel = [], [], [], []
    for nu in config["nuisances"]:
        if nu["kind"] == "yield":
            continue
        acts = nu["datasets"] or ds_names
        rows.append(np.where(np.isin(ds_names, acts), float(nu["width"]), 0.0))
        names.append(nu["name"])
        kinds.append(nu["kind"])
        rel.append(bool(nu["relative"]))
    widths = np.stack(rows) if rows else np.zeros((0, len(datasets)))
    return tuple(names), tuple(kinds), tuple(rel), widths


def plan_combined(datasets: Sequence[Dataset], config: Mapping[str, Any], *, unblind: bool = False) -> CombinedPlan:
    """Mass grid, per-dataset windows, shapes, signal scales and nuisances of a combined scan; fails fast on bad input.

    Raises
    ------
    ScanConfigError, ScanInputError
        Scan range outside a dataset's signal model or data, a trigger table
        not covering the scan, a non-positive efficiency, or nothing to fit;
        the message names the dataset.
    """
    mc = config["mass"]
    check_nuisances(config["nuisances"], [ds.name for ds in datasets], source="scan config")
    sqrt_s = sqrt_s_from_config(config)
    if mc["max"] >= sqrt_s:
        raise ScanConfigError(f"mass.max: {mc['max']} GeV is not below sqrt(s) = {sqrt_s:.4g} GeV (no e+e- -> gamma a)")
    C = len(datasets)
    ranges, data_ranges = [], []
    for ds in datasets:
        lo, hi = _model_range(ds)
        if mc["min"] < lo or mc["max"] > hi:
            raise ScanConfigError(f"mass: scan range [{mc['min']}, {mc['max']}] GeV lies outside dataset {ds.name!r}'s signal model "
                                  f"range [{lo}, {hi}] GeV")
        dr = tuple(mc["data_range"]) if mc["data_range"] is not None else (float(ds.mgg[0]), float(ds.mgg[-1]))
        if mc["max"] < dr[0] or mc["min"] > dr[1]:
            raise ScanInputError(f"dataset {ds.name!r}: scan range [{mc['min']}, {mc['max']}] GeV does not overlap its data range "
                                 f"[{dr[0]:.4g}, {dr[1]:.4g}] GeV")
        ranges.append((lo, hi))
        data_ranges.append(dr)

    def sigma_at(m: float) -> float:
        return min(float(ds.signal_model.shape(min(max(m, lo), hi)).sigma) for ds, (lo, hi) in zip(datasets, ranges))

    masses = mass_grid(mc["min"], mc["max"], step=mc["step"], step_sigma_fraction=mc["step_sigma_fraction"], sigma=sigma_at)
    masses = masses[masses <= min(hi for _, hi in ranges)]
    k = len(masses)
    for ds in datasets:
        ds.trigger.check_covers(masses)
    vetoes = {**config["vetoes"], "in_window": "cut" if config["vetoes"]["in_window"] == "template" else config["vetoes"]["in_window"]}
    windows = np.zeros((k, C, 2))
    covered = np.zeros((k, C), dtype=bool)
    n_events = np.zeros((k, C), dtype=np.int64)
    shapes, veto = [], [""] * k
    sig = np.zeros((k, C))
    eff, eff_unc = np.zeros((k, C)), np.zeros((k, C))
    for c, ds in enumerate(datasets):
        sh = [ds.signal_model.shape(float(m)) for m in masses]  # loop over hypotheses, not events
        sig[:, c] = [s.sigma for s in sh]
        w = fit_windows(masses, sig[:, c], n_sigma=config["window_n_sigma"], data_range=data_ranges[c],
                        comb_domain=np.array([s.comb_domain for s in sh]), mus=np.array([s.mu for s in sh]))
        v, _, w = peaks_in_windows(ds.signal_model, vetoes, masses=masses, sigmas=sig[:, c], windows=w, model_range=ranges[c])
        veto = [a or b for a, b in zip(veto, v)]
        # a mass outside this dataset's data range: the dataset does not take part in that hypothesis (no signal expected,
        # no candidates); its window is the unclipped one, outside the data range, to keep the densities defined
        covered[:, c] = w[:, 1] > w[:, 0]
        half = config["window_n_sigma"] * sig[:, c]
        w[~covered[:, c]] = np.stack([masses - half, masses + half], axis=1)[~covered[:, c]]
        windows[:, c] = w
        inside = ds.mgg[(ds.mgg >= data_ranges[c][0]) & (ds.mgg <= data_ranges[c][1])]
        n_events[:, c] = np.where(covered[:, c], np.searchsorted(inside, w[:, 1], side="right") - np.searchsorted(inside, w[:, 0], side="left"), 0)
        shapes.append(sh)
        eff[:, c], eff_unc[:, c] = signal_efficiency(ds.signal_model, masses)
    trig = np.stack([ds.trigger.efficiency(masses) for ds in datasets], axis=1)
    status = []
    min_ev = max(config["min_window_events"], 1)
    for i, m in enumerate(masses):
        if veto[i]:
            status.append("vetoed")
            continue
        for c, ds in enumerate(datasets):
            if not (np.isfinite(eff[i, c]) and eff[i, c] > 0):
                raise ScanInputError(f"dataset {ds.name!r}: signal efficiency at m = {m:.6g} GeV is {eff[i, c]} (must be > 0)")
            if not (np.isfinite(eff_unc[i, c]) and eff_unc[i, c] >= 0):
                raise ScanInputError(f"dataset {ds.name!r}: efficiency uncertainty at m = {m:.6g} GeV is {eff_unc[i, c]} (must be >= 0)")
        status.append("fit" if np.any(n_events[i] >= min_ev) and covered[i].any() else "empty")
    lumi = np.array([ds.luminosity_fb for ds in datasets])
    scale = np.where(covered, eff * trig * lumi[None, :] * PB_PER_FB, 0.0)
    y_names, y_coeff, y_logn = yield_nuisances(datasets, config, masses=masses, efficiency=eff, efficiency_unc=eff_unc)
    s_names, s_kinds, s_rel, s_widths = _shape_nuisances(datasets, config)
    clash = sorted(set(y_names) & set(s_names))
    if clash or len(set(y_names)) != len(y_names):
        raise ScanConfigError(f"nuisances: name {(clash or [y_names[0]])[0]!r} is used twice (yield_<dataset> and syst_other are built in)")
    fit_idx = np.flatnonzero(np.asarray(status) == "fit")
    if len(fit_idx) == 0:
        raise ScanInputError(f"scan: none of the {k} mass points can be fitted ({status.count('vetoed')} vetoed, "
                             f"{status.count('empty')} with fewer than {min_ev} candidates in every dataset's window)")
    bs = config["block_size"]
    orders = np.broadcast_to(np.array([ds.bkg_order for ds in datasets], dtype=np.int64), (k, C))
    return CombinedPlan(
        masses=_ro(masses), sigmas=_ro(sig.min(axis=1)), status=tuple(status), veto=tuple(veto),
        blocks=tuple(_ro(fit_idx[i : i + bs]) for i in range(0, len(fit_idx), bs)),
        data_range=(min(r[0] for r in data_ranges), max(r[1] for r in data_ranges)), sqrt_s=sqrt_s,
        names=tuple(ds.name for ds in datasets), channel_ranges=_ro(np.array(data_ranges, dtype=float)), covered=_ro(covered),
        windows=_ro(windows), n_events=_ro(n_events),
        shapes=tuple(tuple(None if st == "vetoed" else s for st, s in zip(status, per)) for per in shapes),
        efficiency=_ro(eff), trigger=_ro(trig), scale=_ro(scale), luminosity_fb=_ro(lumi), orders=_ro(orders),
        yield_names=y_names, yield_coeff=_ro(y_coeff), yield_lognormal=_ro(y_logn),
        shape_names=s_names, shape_kinds=s_kinds, shape_relative=s_rel, shape_widths=_ro(s_widths),
        blinded=_ro(blinded_mask(masses, sig.min(axis=1), config["blinding"], unblind=unblind)),
    )


def with_spurious(plan: CombinedPlan, sizes: NDArray, orders: NDArray) -> CombinedPlan:
    """The plan with one spurious-signal nuisance per dataset (``spurious_<dataset>``, sizes (k, C) events) and the
    background orders (k, C) the spurious-signal test chose."""
    k, C = sizes.shape
    size = np.zeros((k, C, C))
    size[:, np.arange(C), np.arange(C)] = sizes
    return dataclasses.replace(plan, spurious_names=tuple(f"spurious_{n}" for n in plan.names), spurious_size=_ro(size),
                               orders=_ro(orders, dtype=np.int64))

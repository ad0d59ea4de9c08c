"""The scan driver: selected candidates + signal model -> scan result.

``scan(mgg, signal_model, config=...)``

1. builds the mass grid (fixed step or a fraction of sigma(m)), the fit
   windows ``m +- n sigma(m)`` clipped to the data range, and the vetoes;
2. checks everything that can be checked cheaply (mass range inside the
   signal model, positive efficiency, candidates finite) before any fit;
3. splits the fitted points into blocks of ``block_size`` consecutive masses
   and evaluates each block with ``fits.evaluate_hypotheses`` (vectorised
   fits, local Z, observed and expected CLs limits on N_sig and, with the
   efficiency x luminosity and its uncertainty as a constrained nuisance, on
   the cross-section) on a process pool or a Dask cluster; every finished
   block is checkpointed atomically;
4. converts cross-section limits to g_agg limits;
5. runs background-only toy scans for the look-elsewhere effect (also
   checkpointed) and computes the global significance;
6. writes the JSON result (format of DESIGN.md) and a CSV of the points.

Blocks and toy seeds do not depend on the executor or the number of workers,
and each block's result depends only on its payload, so local, Dask and
resumed runs give identical results.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import logging
import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from signal_models._common.version import __version__

from .checkpoint import CheckpointStore, atomic_write_json, atomic_write_text, sha256_array
from .config import config_hash, load_scan_config, sqrt_s_from_config
from .errors import ScanConfigError, ScanInputError
from .execution import run_jobs
from .grid import fit_windows, mass_grid, particle_mass, veto_points
from .lee import SmoothBackground, fit_smooth_background, global_significance, toy_seed
from .limits import coupling_limit, relative_uncertainty, signal_scale

logger = logging.getLogger(__name__)

__all__ = ["scan", "ScanPlan", "plan_scan", "write_result", "points_csv", "version"]

#: keys of a fitted point, in the order of DESIGN.md
POINT_KEYS = (
    "mass", "vetoed", "window", "n_events", "nsig", "nsig_err", "z_local", "converged", "bkg_order",
    "ul_nsig_obs", "ul_nsig_exp", "efficiency", "ul_xsec_pb_obs", "ul_xsec_pb_exp", "ul_g_gev_obs", "ul_g_gev_exp",
)


def version() -> str:
    """The package version written into scan results."""
    return __version__


# ---------------------------------------------------------------------------
# plan


class ScanPlan:
    """Everything about a scan that is decided before the first fit.

    Attributes (arrays over the k grid points)
    ------------------------------------------
    masses, sigmas, windows (k, 2), n_events, efficiency, efficiency_unc,
    scale (events per pb), rel_unc, veto (reason or ""), status ("fit",
    "vetoed", "empty"), shapes (list of SignalShape or None for vetoed points),
    blocks (list of index arrays of fitted points), data_range, sqrt_s.
    """

    def __init__(self, **kw: Any) -> None:
        self.__dict__.update(kw)

    @property
    def fit_indices(self) -> NDArray[np.int64]:
        return np.flatnonzero(np.asarray(self.status) == "fit")

    def digest(self) -> str:
        """sha256 of the plan: masses, shapes, windows, signal scales."""
        blob = json.dumps(
            {
                "masses": self.masses.tolist(),
                "windows": self.windows.tolist(),
                "scale": self.scale.tolist(),
                "rel_unc": self.rel_unc.tolist(),
                "shapes": [None if s is None else s.to_dict() for s in self.shapes],
                **({"extras": [[e.to_dict() for e in ex] for ex in self.extras]} if any(getattr(self, "extras", [])) else {}),
                "status": list(self.status),
                "blocks": [b.tolist() for b in self.blocks],
            },
            sort_keys=True,
        )
        return hashlib.sha256(blob.encode()).hexdigest()


def _as_mgg(candidates_mgg: ArrayLike) -> NDArray[np.float64]:
    try:
        mgg = np.asarray(candidates_mgg, dtype=float)
    except (TypeError, ValueError) as exc:
        raise ScanInputError(f"candidate masses: cannot be read as an array of floats ({exc})") from None
    if mgg.ndim != 1:
        raise ScanInputError(f"candidate masses: expected a 1-D array of M_gg in GeV, got shape {mgg.shape}")
    if mgg.size == 0:
        raise ScanInputError("candidate masses: no candidates (empty array)")
    bad = ~np.isfinite(mgg)
    if bad.any():
        raise ScanInputError(f"candidate masses: {int(bad.sum())} of {mgg.size} values are NaN or infinite")
    return np.sort(mgg)


def signal_efficiency(signal_model: Any, masses: NDArray) -> tuple[NDArray, NDArray]:
    """Efficiency that normalises the fitted signal yield, and its absolute uncertainty.

    N_sig counts every signal candidate the shape ``shape(m)`` describes
    (truth-matched DSCB and combinatorial part), so the conversion to a
    cross-section uses ``efficiency_total(m)`` (all signal candidates in the
    window per generated event) when the model provides it, else
    ``efficiency(m)``.
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


_DEGENERATE_SIGMA = 0.5  # float mode: hypotheses closer than this (in sigma(m)) to a floated peak are vetoed


def plan_scan(mgg: NDArray[np.float64], signal_model: Any, cfg: Mapping[str, Any]) -> ScanPlan:
    """Mass grid, windows, vetoes, efficiencies and blocks; fails fast on bad input.

    ``mgg`` must be sorted (as returned by the driver's input check).
    """
    mc = cfg["mass"]
    data_range = tuple(mc["data_range"]) if mc["data_range"] is not None else (float(mgg[0]), float(mgg[-1]))
    try:
        model_lo, model_hi = map(float, signal_model.mass_range)
    except Exception as exc:  # the object does not follow the SignalModel interface
        raise ScanInputError(f"signal model: no usable mass_range ({exc})") from None
    if mc["min"] < model_lo or mc["max"] > model_hi:
        raise ScanConfigError(
            f"mass: scan range [{mc['min']}, {mc['max']}] GeV lies outside the signal model range [{model_lo}, {model_hi}] GeV"
        )
    sqrt_s = sqrt_s_from_config(cfg)
    if mc["max"] >= sqrt_s:
        raise ScanConfigError(f"mass.max: {mc['max']} GeV is not below sqrt(s) = {sqrt_s:.4g} GeV (no e+e- -> gamma a)")
    if mc["max"] < data_range[0] or mc["min"] > data_range[1]:
        raise ScanInputError(
            f"mass: scan range [{mc['min']}, {mc['max']}] GeV does not overlap the data range [{data_range[0]:.4g}, {data_range[1]:.4g}] GeV"
        )

    def sigma_at(m: float) -> float:
        return float(signal_model.shape(min(max(m, model_lo), model_hi)).sigma)

    masses = mass_grid(mc["min"], mc["max"], step=mc["step"], step_sigma_fraction=mc["step_sigma_fraction"], sigma=sigma_at)
    masses = masses[masses <= model_hi]
    shapes_all = [signal_model.shape(float(m)) for m in masses]  # loop over hypotheses, not events
    sigmas = np.array([s.sigma for s in shapes_all])
    windows = fit_windows(
        masses,
        sigmas,
        n_sigma=cfg["window_n_sigma"],
        data_range=data_range,
        comb_domain=np.array([s.comb_domain for s in shapes_all]),
        mus=np.array([s.mu for s in shapes_all]),
    )
    float_peaks = cfg["vetoes"].get("mode", "veto") == "float"
    extras: list[list[Any]] = [[] for _ in masses]
    if float_peaks:
        # search through the known peaks: only the explicit ranges are vetoed; each listed peak inside a
        # window becomes a fixed-shape background template with a floating yield (signal shape at m_P)
        veto = veto_points(masses, sigmas, particles=(), n_sigma=cfg["vetoes"]["n_sigma"], ranges=cfg["vetoes"]["ranges"])
        for name in cfg["vetoes"]["particles"]:
            mp = particle_mass(name)
            in_window = np.flatnonzero((windows[:, 0] <= mp) & (mp <= windows[:, 1]))
            if len(in_window) == 0:
                continue
            if not model_lo <= mp <= model_hi:
                raise ScanConfigError(
                    f"vetoes.particles: {name} (m = {mp:.6g} GeV) lies outside the signal model range [{model_lo}, {model_hi}] GeV, "
                    "so its peak shape is unknown; use vetoes.mode 'veto' or drop it"
                )
            # the peak's DSCB core only: its wrong-pair combinatorics is smooth and absorbed by the polynomial
            peak = dataclasses.replace(signal_model.shape(mp), comb_fraction=0.0)
            for i in in_window:
                if abs(masses[i] - mp) < _DEGENERATE_SIGMA * sigmas[i]:
                    # the signal shape is (nearly) the peak shape: the two yields cannot be separated
                    veto[i] = veto[i] or f"{name} (signal indistinguishable from the floating peak)"
                extras[i].append(peak)
    else:
        veto = veto_points(masses, sigmas, particles=cfg["vetoes"]["particles"], n_sigma=cfg["vetoes"]["n_sigma"], ranges=cfg["vetoes"]["ranges"])
    lo_idx = np.searchsorted(mgg, windows[:, 0], side="left")
    hi_idx = np.searchsorted(mgg, windows[:, 1], side="right")
    n_events = np.where(windows[:, 1] > windows[:, 0], hi_idx - lo_idx, 0)

    eff, eff_unc = signal_efficiency(signal_model, masses)
    if cfg["systematics"]["efficiency"] != "model":
        eff_unc = np.zeros_like(eff)
    status = []
    for i, m in enumerate(masses):
        if veto[i]:
            status.append("vetoed")
            continue
        if not (np.isfinite(eff[i]) and eff[i] > 0):
            raise ScanInputError(f"signal model: efficiency at m = {m:.6g} GeV is {eff[i]} (must be > 0 to convert limits)")
        if not (np.isfinite(eff_unc[i]) and eff_unc[i] >= 0):
            raise ScanInputError(f"signal model: efficiency uncertainty at m = {m:.6g} GeV is {eff_unc[i]} (must be >= 0)")
        status.append("empty" if n_events[i] < max(cfg["min_window_events"], 1) or windows[i, 1] <= windows[i, 0] else "fit")
    scale = signal_scale(eff, cfg["luminosity_fb"])
    syst = cfg["systematics"]
    rel_unc = relative_uncertainty(
        np.full_like(eff, cfg["luminosity_rel_unc"]),
        np.divide(eff_unc, eff, out=np.zeros_like(eff), where=eff > 0),
        np.full_like(eff, syst["trigger_rel"]),
        np.full_like(eff, syst["other_rel"]),
    )
    fit_idx = np.flatnonzero(np.asarray(status) == "fit")
    if len(fit_idx) == 0:
        raise ScanInputError(
            f"scan: none of the {len(masses)} mass points can be fitted ({status.count('vetoed')} vetoed, "
            f"{status.count('empty')} with fewer than {max(cfg['min_window_events'], 1)} candidates in the window; "
            f"data range [{data_range[0]:.4g}, {data_range[1]:.4g}] GeV)"
        )
    bs = cfg["block_size"]
    blocks = [fit_idx[i : i + bs] for i in range(0, len(fit_idx), bs)]
    shapes = [None if st == "vetoed" else sh for st, sh in zip(status, shapes_all)]
    extras = [[] if st == "vetoed" else e for st, e in zip(status, extras)]
    return ScanPlan(
        masses=masses,
        sigmas=sigmas,
        windows=windows,
        n_events=n_events.astype(int),
        efficiency=eff,
        efficiency_unc=eff_unc,
        scale=scale,
        rel_unc=rel_unc,
        veto=veto,
        status=status,
        shapes=shapes,
        extras=extras,
        blocks=blocks,
        data_range=data_range,
        sqrt_s=sqrt_s,
    )


# ---------------------------------------------------------------------------
# work units (module level: they are pickled to worker processes)

_TABLE_FIELDS = ("n_events", "nsig", "nsig_err", "nbkg", "nll", "z_local", "converged", "reason",
                 "ul_nsig_obs", "ul_nsig_exp", "ul_xsec_obs", "ul_xsec_exp")


def _table_to_lists(table: Any) -> dict[str, list]:
    out: dict[str, list] = {}
    for name in _TABLE_FIELDS:
        if not hasattr(table, name):
            continue
        value = getattr(table, name)
        if value is None:
            continue
        if name == "reason":
            out[name] = [str(r) for r in value]
        elif name == "converged":
            out[name] = [bool(c) for c in np.asarray(value)]
        elif name == "n_events":
            out[name] = [int(c) for c in np.asarray(value)]
        else:
            arr = np.asarray(value, dtype=float)
            # JSON has no NaN: keep non-finite values as strings; the driver flags such points
            out[name] = [_num(v) for v in arr.tolist()]
    return out


def _num(v: Any) -> Any:
    if isinstance(v, list):
        return [_num(x) for x in v]
    return v if math.isfinite(v) else repr(v)


def _with_order_fallback(evaluate: Any, k: int, order: int, fallback: bool) -> dict[str, list]:
    """Evaluate k hypotheses at background order ``order``; refit failed ones at lower orders.

    ``evaluate(idx, order)`` fits the hypotheses ``idx`` and returns the
    table as lists. In sparse windows (a few tens of candidates) a
    polynomial of the configured order can go negative between the events,
    where nothing pulls it back, and the fit has no interior minimum; such
    hypotheses are refitted with orders ``order - 1, ..., 0`` until they
    converge. The order used per hypothesis is returned as ``bkg_order``.
    """
    res = evaluate(np.arange(k), order)
    res["bkg_order"] = [order] * k
    if not fallback:
        return res
    for lower in range(order - 1, -1, -1):
        failed = np.flatnonzero(~np.asarray(res["converged"], dtype=bool))
        if failed.size == 0:
            break
        sub = evaluate(failed, lower)
        for jj, j in enumerate(failed):
            if not sub["converged"][jj]:
                continue
            for key, values in sub.items():
                if key in res:
                    res[key][j] = values[jj]
            res["bkg_order"][j] = lower
    return res


def _evaluate_block(payload: Mapping[str, Any]) -> dict[str, list]:
    """Fit one block of hypotheses with ``fits.evaluate_hypotheses`` (lower background orders for failed fits)."""
    import fits

    shapes, extras = payload["shapes"], payload.get("extras")

    def evaluate(idx: NDArray[np.int64], order: int) -> dict[str, list]:
        table = fits.evaluate_hypotheses(
            payload["mgg"],
            [shapes[i] for i in idx],
            np.asarray(payload["windows"])[idx],
            bkg_order=order,
            cl=payload["cl"],
            limits=payload["limits"],
            expected=payload["expected"],
            signal_scale=np.asarray(payload["scale"])[idx],
            signal_scale_rel_unc=np.asarray(payload["rel_unc"])[idx],
            engine=payload["engine"],
            extra_shapes=None if extras is None else [extras[i] for i in idx],
        )
        return _table_to_lists(table)

    return _with_order_fallback(evaluate, len(shapes), payload["bkg_order"], payload.get("order_fallback", True))


def _evaluate_toy(payload: Mapping[str, Any]) -> dict[str, list]:
    """One background-only toy scan: local Z at every fitted point (0 where a toy fit fails)."""
    import fits

    bkg = SmoothBackground(**payload["background"])
    rng = np.random.default_rng(toy_seed(payload["seed"], payload["index"]))
    mgg = bkg.sample(rng)
    windows = np.asarray(payload["windows"])
    shapes = payload["shapes"]
    z = np.zeros(len(shapes))
    failed = 0
    bs = payload["block_size"]
    extras = payload.get("extras")
    for start in range(0, len(shapes), bs):
        sl = slice(start, start + bs)
        w = windows[sl]
        a = int(np.searchsorted(mgg, w[:, 0].min(), side="left"))
        b = int(np.searchsorted(mgg, w[:, 1].max(), side="right"))
        blk_shapes = shapes[sl]
        blk_extras = None if extras is None else extras[sl]

        def evaluate(idx: NDArray[np.int64], order: int, a: int = a, b: int = b, w: NDArray = w,
                     blk_shapes: list = blk_shapes, blk_extras: list | None = blk_extras) -> dict[str, list]:
            table = fits.evaluate_hypotheses(
                mgg[a:b], [blk_shapes[i] for i in idx], w[idx], bkg_order=order, cl=payload["cl"], limits=False,
                expected=False, engine=payload["engine"],
                extra_shapes=None if blk_extras is None else [blk_extras[i] for i in idx],
            )
            return {"z_local": np.asarray(table.z_local, dtype=float).tolist(),
                    "converged": [bool(c) for c in np.asarray(table.converged)]}

        res = _with_order_fallback(evaluate, len(blk_shapes), payload["bkg_order"], payload.get("order_fallback", True))
        zz = np.asarray(res["z_local"], dtype=float)
        ok = np.asarray(res["converged"], dtype=bool) & np.isfinite(zz)
        failed += int((~ok).sum())
        z[sl] = np.where(ok, zz, 0.0)
    return {"z_local": z.tolist(), "n_failed": failed, "n_candidates": int(mgg.size)}


# ---------------------------------------------------------------------------
# driver


def _finite(x: Any) -> bool:
    if isinstance(x, list):
        return all(_finite(v) for v in x)
    return isinstance(x, (int, float)) and math.isfinite(x)


def _build_point(plan: ScanPlan, i: int, fit: Mapping[str, Any] | None, j: int) -> dict[str, Any]:
    m = float(plan.masses[i])
    if plan.status[i] == "vetoed":
        return {"mass": m, "vetoed": True, "reason": f"veto: {plan.veto[i]}"}
    base = {"mass": m, "vetoed": False, "window": [float(plan.windows[i, 0]), float(plan.windows[i, 1])], "n_events": int(plan.n_events[i])}
    if plan.status[i] == "empty":
        return {**base, "converged": False, "reason": f"fewer than the minimum number of candidates in the window ({plan.n_events[i]})",
                "efficiency": float(plan.efficiency[i])}
    assert fit is not None
    conv = bool(fit["converged"][j])
    reason = fit.get("reason", [""] * (j + 1))[j] if "reason" in fit else ""
    point = {
        **base,
        "nsig": fit["nsig"][j],
        "nsig_err": fit["nsig_err"][j],
        "z_local": fit["z_local"][j],
        "converged": conv,
        "bkg_order": int(fit["bkg_order"][j]),
        "ul_nsig_obs": fit["ul_nsig_obs"][j],
        "ul_nsig_exp": list(fit["ul_nsig_exp"][j]),
        "efficiency": float(plan.efficiency[i]),
    }
    if conv:
        if "ul_xsec_obs" in fit:
            xs_obs, xs_exp = fit["ul_xsec_obs"][j], list(fit["ul_xsec_exp"][j])
        else:  # engine without the systematic: plain division (logged once by the driver)
            xs_obs = point["ul_nsig_obs"] / plan.scale[i] if _finite(point["ul_nsig_obs"]) else float("nan")
            xs_exp = [v / plan.scale[i] if _finite(v) else float("nan") for v in point["ul_nsig_exp"]]
        point["ul_xsec_pb_obs"] = xs_obs
        point["ul_xsec_pb_exp"] = xs_exp
        if _finite(xs_obs) and _finite(xs_exp) and xs_obs >= 0 and min(xs_exp) >= 0:
            point["ul_g_gev_obs"] = float(coupling_limit(xs_obs, m, plan.sqrt_s))
            point["ul_g_gev_exp"] = coupling_limit(np.asarray(xs_exp), m, plan.sqrt_s).tolist()
        bad = [k for k in POINT_KEYS if k in ("nsig", "nsig_err", "z_local", "ul_nsig_obs", "ul_nsig_exp", "ul_xsec_pb_obs",
                                               "ul_xsec_pb_exp", "ul_g_gev_obs", "ul_g_gev_exp") and not _finite(point.get(k))]
        if bad:
            conv = False
            reason = f"non-finite or missing result for {', '.join(bad)} after the fit"
            logger.warning("m = %.4g GeV: %s", m, reason)
        elif not point["ul_nsig_obs"] > 1e-3 * point["ul_nsig_exp"][2]:
            # a CLs limit cannot fall to ~0 events: the limit root finding went wrong
            conv = False
            reason = (f"observed limit {point['ul_nsig_obs']:.3g} events is implausibly far below the expected "
                      f"median {point['ul_nsig_exp'][2]:.3g} (limit root finding failed)")
            logger.warning("m = %.4g GeV: %s", m, reason)
    if not conv:
        # a failed fit carries no fit numbers (the engine's placeholders would look like results)
        keep = {k: v for k, v in point.items() if k in ("mass", "vetoed", "window", "n_events", "efficiency")}
        return {**keep, "converged": False, "reason": reason or "fit did not converge"}
    return {k: point[k] for k in POINT_KEYS}


def _segments(indices: NDArray[np.int64]) -> NDArray[np.int64]:
    """Label runs of consecutive grid indices (points separated by vetoed or empty points start a new segment)."""
    if len(indices) == 0:
        return np.zeros(0, dtype=int)
    return np.concatenate([[0], np.cumsum(np.diff(indices) != 1)])


def _veto_ranges(plan: ScanPlan, cfg: Mapping[str, Any], model_range: tuple[float, float]) -> list[list[float]]:
    out = [list(r) for r in cfg["vetoes"]["ranges"]]
    for name in cfg["vetoes"]["particles"]:
        mp = particle_mass(name)
        i = int(np.argmin(np.abs(plan.masses - mp)))
        half = max(cfg["vetoes"]["n_sigma"], 3.0) * float(plan.sigmas[i])
        out.append([mp - half, mp + half])
    return out


def scan(
    candidates_mgg: ArrayLike,
    signal_model: Any,
    *,
    config: str | Path | Mapping[str, Any] | None = None,
    inputs: Sequence[Mapping[str, str]] | None = None,
    out_dir: str | Path | None = None,
    resume: bool = False,
    workers: int | None = None,
    dask: Any = None,
    lee_toys: int | None = None,
    show_progress: bool | None = None,
) -> dict[str, Any]:
    """Run a mass scan and return the scan result (the JSON structure of DESIGN.md).

    Parameters
    ----------
    candidates_mgg : array
        M_gg of the selected candidates in GeV.
    signal_model : SignalModel-like
        Object with ``shape(m)``, ``efficiency(m)``, ``efficiency_uncertainty(m)``
        and ``mass_range`` (e.g. ``signal_models.SignalModel`` or
        ``scans.testing.analytic_signal_model()``).
    config : path, mapping or None
        Scan configuration (see ``docs/reference/scan_config.md``); None = defaults.
    inputs : list of {"path", "sha256"}, optional
        Input files recorded in the result; their hashes guard ``resume``.
        Without it the hash of the candidate array is used.
    out_dir : path, optional
        Where to write the result JSON, the points CSV and the checkpoints.
        Without it nothing is written (and nothing can be resumed).
    resume : bool
        Reuse finished blocks in ``out_dir``'s checkpoint (refused if the
        configuration, inputs or plan differ).
    workers : int, optional
        Local worker processes (default ``execution.workers``; 1 for small scans).
    dask : str or distributed.Client, optional
        Run blocks and toys on a Dask cluster: scheduler address, ``"local"``
        or a Client (default ``execution.dask``).
    lee_toys : int, optional
        Override ``lee.toys``.
    show_progress : bool, optional
        Progress bars (default: only on a terminal).

    Raises
    ------
    ScanConfigError, ScanInputError, CheckpointError
        Before any fit, naming the key, file or value.
    """
    t_start = time.perf_counter()
    cfg = load_scan_config(config)
    if lee_toys is not None:
        cfg["lee"]["toys"] = int(lee_toys)
    mgg = _as_mgg(candidates_mgg)
    plan = plan_scan(mgg, signal_model, cfg)
    n_fit = len(plan.fit_indices)
    logger.info("scan: %d mass points (%d fitted, %d vetoed, %d flagged empty) in %d blocks",
                len(plan.masses), n_fit, plan.status.count("vetoed"), plan.status.count("empty"), len(plan.blocks))
    execution = cfg["execution"]
    if workers is None:
        workers = execution["workers"] if len(plan.blocks) > 1 else 1
    if dask is None:
        dask = execution["dask"]
    if show_progress is None:
        show_progress = execution["progress"]

    if inputs is None:
        input_hash = sha256_array(mgg)
        inputs_record: list[dict[str, str]] = []
    else:
        inputs_record = [{"path": str(d["path"]), "sha256": str(d["sha256"])} for d in inputs]
        input_hash = hashlib.sha256("".join(sorted(d["sha256"] for d in inputs_record)).encode()).hexdigest()
        input_hash = hashlib.sha256((input_hash + sha256_array(mgg)).encode()).hexdigest()
    hashes = {"config": config_hash(cfg), "inputs": input_hash, "plan": plan.digest()}

    out = Path(out_dir) if out_dir is not None else None
    store = CheckpointStore(out / cfg["output"]["checkpoint_dir"], hashes, resume=resume) if out is not None else None
    if resume and store is None:
        raise ScanConfigError("resume: needs an output directory holding the checkpoint (out_dir)")

    # -- observed scan --------------------------------------------------------
    results: dict[int, dict[str, list]] = {}
    if store is not None:
        for b in sorted(store.done("block")):
            if b < len(plan.blocks):
                results[b] = store.load("block", b)
        if results:
            logger.info("resume: %d of %d blocks already done", len(results), len(plan.blocks))
    common = {"bkg_order": cfg["bkg_order"], "order_fallback": cfg["bkg_order_fallback"], "cl": cfg["cl"], "engine": cfg["engine"]}
    payloads = {}
    for b, idx in enumerate(plan.blocks):
        if b in results:
            continue
        w = plan.windows[idx]
        a = int(np.searchsorted(mgg, w[:, 0].min(), side="left"))
        z = int(np.searchsorted(mgg, w[:, 1].max(), side="right"))
        payloads[b] = {
            **common,
            "mgg": mgg[a:z],
            "shapes": [plan.shapes[i] for i in idx],
            "extras": [plan.extras[i] for i in idx] if any(getattr(plan, "extras", [])) else None,
            "windows": w,
            "scale": plan.scale[idx],
            "rel_unc": plan.rel_unc[idx],
            "limits": True,
            "expected": True,
        }

    def done_block(b: int, res: dict[str, list]) -> None:
        # identical JSON round trip whether or not the block is checkpointed
        res = json.loads(json.dumps(res))
        if store is not None:
            store.save("block", b, res)
        results[b] = res

    run_jobs(_evaluate_block, payloads, on_done=done_block, workers=workers, dask=dask,
             description="mass scan", show_progress=show_progress)

    points: list[dict[str, Any]] = []
    where = {int(i): (b, j) for b, idx in enumerate(plan.blocks) for j, i in enumerate(idx)}
    if results and any("ul_xsec_obs" not in r for r in results.values()):
        logger.warning("fits engine returned no cross-section limits: dividing N_sig limits by eff x L without the systematic")
    for i in range(len(plan.masses)):
        b, j = where.get(i, (None, 0))
        points.append(_build_point(plan, i, results.get(b) if b is not None else None, j))

    # -- look-elsewhere effect --------------------------------------------------
    scanned = [i for i in plan.fit_indices]
    z_obs = np.array([points[i].get("z_local", 0.0) if points[i]["converged"] else 0.0 for i in scanned])
    n_toys = cfg["lee"]["toys"]
    z_toys = None
    if n_toys > 0:
        bkg = fit_smooth_background(
            mgg, data_range=plan.data_range, order=cfg["lee"]["background_order"], bins=cfg["lee"]["bins"],
            exclude=_veto_ranges(plan, cfg, tuple(signal_model.mass_range)),
        )
        toy_common = {
            **common,
            "background": {"lo": bkg.lo, "hi": bkg.hi, "coeffs": bkg.coeffs, "n_expected": float(np.sum((mgg >= bkg.lo) & (mgg <= bkg.hi)))},
            "seed": cfg["lee"]["seed"],
            "windows": plan.windows[scanned],
            "shapes": [plan.shapes[i] for i in scanned],
            "extras": [plan.extras[i] for i in scanned] if any(getattr(plan, "extras", [])) else None,
            "block_size": cfg["block_size"],
        }
        toys: dict[int, dict[str, Any]] = {}
        if store is not None:
            for t in sorted(store.done("toy")):
                if t < n_toys:
                    toys[t] = store.load("toy", t)
        toy_payloads = {t: {**toy_common, "index": t} for t in range(n_toys) if t not in toys}

        def done_toy(t: int, res: dict[str, Any]) -> None:
            res = json.loads(json.dumps(res))
            if store is not None:
                store.save("toy", t, res)
            toys[t] = res

        run_jobs(_evaluate_toy, toy_payloads, on_done=done_toy, workers=workers if n_toys > 1 else 1, dask=dask,
                 description="LEE toys", show_progress=show_progress)
        z_toys = np.array([toys[t]["z_local"] for t in range(n_toys)])
        n_failed = sum(toys[t]["n_failed"] for t in range(n_toys))
        if n_failed:
            logger.warning("LEE toys: %d toy fits failed and count as Z = 0", n_failed)
    global_ = global_significance(z_obs, plan.masses[scanned], z_toys=z_toys, c0=cfg["lee"]["c0"], segments=_segments(np.asarray(scanned)))
    global_["seed"] = cfg["lee"]["seed"]

    result = {
        "bumphunt_version": version(),
        "config": cfg,
        "inputs": inputs_record,
        "luminosity_fb": cfg["luminosity_fb"],
        "sqrt_s": plan.sqrt_s,
        "points": points,
        "global": global_,
        "hashes": hashes,
        "n_candidates": int(mgg.size),
        "data_range": [float(plan.data_range[0]), float(plan.data_range[1])],
    }
    if out is not None:
        write_result(result, out / cfg["output"]["result"], csv_path=out / cfg["output"]["csv"])
    logger.info("scan finished in %.1f s: max local Z %.2f at %.4g GeV, global Z %.2f (%s)",
                time.perf_counter() - t_start, global_["max_z_local"], global_["mass_at_max"], global_["z_global"], global_["method"])
    return result


# ---------------------------------------------------------------------------
# output

_CSV_COLUMNS = ["mass", "vetoed", "converged", "reason", "window_lo", "window_hi", "n_events", "nsig", "nsig_err", "z_local",
                "efficiency", "ul_nsig_obs", *[f"ul_nsig_exp_{s}" for s in ("m2", "m1", "med", "p1", "p2")],
                "ul_xsec_pb_obs", *[f"ul_xsec_pb_exp_{s}" for s in ("m2", "m1", "med", "p1", "p2")],
                "ul_g_gev_obs", *[f"ul_g_gev_exp_{s}" for s in ("m2", "m1", "med", "p1", "p2")]]


def points_csv(result: Mapping[str, Any]) -> str:
    """The points of a scan result as CSV text (empty cells for numbers a point does not have)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=_CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for p in result["points"]:
        row: dict[str, Any] = {k: p.get(k, "") for k in ("mass", "vetoed", "converged", "reason", "n_events", "nsig", "nsig_err",
                                                          "z_local", "efficiency", "ul_nsig_obs", "ul_xsec_pb_obs", "ul_g_gev_obs")}
        if "window" in p:
            row["window_lo"], row["window_hi"] = p["window"]
        for key in ("ul_nsig_exp", "ul_xsec_pb_exp", "ul_g_gev_exp"):
            for s, v in zip(("m2", "m1", "med", "p1", "p2"), p.get(key, [""] * 5)):
                row[f"{key}_{s}"] = v
        writer.writerow(row)
    return buf.getvalue()


def write_result(result: Mapping[str, Any], path: str | Path, *, csv_path: str | Path | None = None) -> Path:
    """Write the result JSON (strict: NaN refused) and optionally the points CSV, atomically."""
    path = atomic_write_json(path, result, indent=1)
    if csv_path is not None:
        atomic_write_text(csv_path, points_csv(result))
    logger.info("wrote scan result %s", path)
    return path

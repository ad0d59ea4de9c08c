"""The combined scan: several datasets (or one, with shape nuisances, a background-model rule or a trigger table) -> scan result.

``scan_datasets(datasets, config=...)`` follows the steps of
``scans.driver.scan`` with a combined fit at every mass hypothesis:

1. plan (``scans.combined_plan``): grid, per-dataset windows, shapes,
   signal per pb, nuisances; for ``background_model.method:
   spurious_signal`` the spurious signal of every point and dataset is
   measured on the dataset's smooth background (``fits.spurious_template``)
   and enters as a constrained yield;
2. fit every block (``scans.combined_worker``) through the checkpointed
   pipeline, on a process pool or Dask;
3. point records (``scans.combined_result``) with per-dataset yields and
   post-fit nuisances;
4. look-elsewhere toys: every dataset drawn from its own smooth background,
   all fitted together as in the observed scan;
5. the result document (DESIGN.md) with ``datasets`` (what each dataset
   was) and ``luminosity_fb`` the total.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .blinding import blinding_record
from .checkpoint import CheckpointStore, inputs_digest, sha256_array
from .combined_jobs import CombinedBlockResult, CombinedSettings, combined_block_jobs, combined_toy_jobs, request_of
from .combined_plan import CombinedPlan, plan_combined, with_spurious
from .combined_result import combined_points
from .combined_worker import evaluate_combined_block, evaluate_combined_toy
from .config import config_hash, load_scan_config
from .datasets import Dataset
from .errors import ScanConfigError
from .execution import Execution
from .jobs import ToyResult
from .lee import SmoothBackground, fit_smooth_background, global_significance, segment_labels
from .pipeline import Stage, run_checkpointed
from .plan import veto_ranges, vetoed_mass_ranges
from .result import gof_summary, log_unfitted, scan_result, write_result

logger = logging.getLogger(__name__)

__all__ = ["scan_datasets", "smooth_backgrounds"]

#: the observed combined scan: one job per block of mass points
COMBINED_BLOCKS: Stage[Any, CombinedBlockResult] = Stage(kind="cblock", description="combined mass scan", work=evaluate_combined_block,
                                                         from_json=CombinedBlockResult.from_json)
#: look-elsewhere toys of a combined scan
COMBINED_TOYS: Stage[Any, ToyResult] = Stage(kind="ctoy", description="LEE toys", work=evaluate_combined_toy, from_json=ToyResult.from_json)


def smooth_backgrounds(datasets: Sequence[Dataset], plan: CombinedPlan, config: Mapping[str, Any]) -> list[SmoothBackground]:
    """Per dataset, the smooth exp(Chebyshev) fit of its whole spectrum (vetoed ranges left out), normalised to its candidates."""
    lee = config["lee"]
    out = []
    for ds in datasets:
        lo, hi = (config["mass"]["data_range"] or (float(ds.mgg[0]), float(ds.mgg[-1])))
        smooth = fit_smooth_background(ds.mgg, data_range=(lo, hi), order=lee["background_order"], bins=lee["bins"],
                                       exclude=veto_ranges(plan, config["vetoes"]))  # type: ignore[arg-type]
        n = float(np.sum((ds.mgg >= smooth.lo) & (ds.mgg <= smooth.hi)))
        out.append(SmoothBackground(lo=smooth.lo, hi=smooth.hi, coeffs=smooth.coeffs, n_expected=n))
    return out


def _measure_spurious(plan: CombinedPlan, backgrounds: Sequence[SmoothBackground], config: Mapping[str, Any]) -> CombinedPlan:
    from fits.spurious_template import template_spurious_signal

    bm = config["background_model"]
    fit_idx = plan.fit_indices
    req = request_of(plan, fit_idx, [np.zeros(0) for _ in plan.names])
    dens = [b.density for b in backgrounds]
    choice = template_spurious_signal(req, dens, orders=bm["orders"], max_fraction=bm["spurious_max_fraction"])
    sizes = np.zeros((len(plan.masses), plan.n_channels))
    orders = np.array(plan.orders, dtype=np.int64)
    sizes[fit_idx] = choice.size
    orders[fit_idx] = choice.orders
    logger.info("spurious signal: orders chosen %s; largest size %.3g events", sorted(set(choice.orders.ravel().tolist())),
                float(choice.size.max(initial=0.0)))
    return with_spurious(plan, sizes, orders)


def _global(plan: CombinedPlan, points: Sequence[Mapping[str, Any]], backgrounds: Sequence[SmoothBackground] | None,
            config: Mapping[str, Any], settings: CombinedSettings, store: CheckpointStore | None, execution: Execution) -> dict[str, Any]:
    lee = config["lee"]
    blind = np.zeros(len(plan.masses), bool) if plan.blinded is None else np.asarray(plan.blinded)
    scanned = plan.fit_indices[~blind[plan.fit_indices]]
    if len(scanned) == 0:
        return {"blinded": True, "method": "blinded: no observed significance"}
    z_obs = np.array([points[i].get("z_local", 0.0) if points[i]["converged"] else 0.0 for i in scanned])
    z_toys = None
    if lee["toys"] > 0 and backgrounds is not None:
        jobs = combined_toy_jobs(plan, backgrounds, n_toys=lee["toys"], seed=lee["seed"], settings=settings)
        toys = run_checkpointed(COMBINED_TOYS, jobs, store=store, execution=execution)
        z_toys = np.array([t.z_local for t in toys])
        n_failed = sum(t.n_failed for t in toys)
        if n_failed:
            logger.warning("LEE toys: %d toy fits failed and count as Z = 0", n_failed)
    if blind.any() and z_toys is not None:
        z_toys = z_toys[:, ~blind[plan.fit_indices]]  # the toys cover the unblinded points only
    result = global_significance(z_obs, plan.masses[scanned], z_toys=z_toys, c0=lee["c0"], segments=segment_labels(scanned))
    result["seed"] = lee["seed"]
    if blind.any():
        result["blinded_points_excluded"] = int(blind[plan.fit_indices].sum())
    return result


def scan_datasets(
    datasets: Sequence[Dataset],
    *,
    config: str | Path | Mapping[str, Any] | None = None,
    out_dir: str | Path | None = None,
    resume: bool = False,
    workers: int | None = None,
    dask: Any = None,
    lee_toys: int | None = None,
    show_progress: bool | None = None,
    provenance: Mapping[str, Any] | None = None,
    unblind: bool = False,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Run a combined scan of ``datasets`` and return the scan result (DESIGN.md, plus ``datasets``).

    Parameters
    ----------
    datasets : sequence of Dataset
        ``scans.datasets.datasets_from_config`` or ``dataset_from_arrays``.
    config : path, mapping or None
        Scan configuration (its ``datasets`` section is only recorded; the datasets are the argument).
    out_dir, resume, workers, dask, lee_toys, show_progress, provenance
        As for ``scans.scan``.
    unblind : bool
        Fit every point in full although the configuration's ``blinding`` says otherwise (recorded in the result).
    overwrite : bool
        Discard the finished blocks of an earlier scan in ``out_dir``.

    Returns
    -------
    dict
        The scan result; ``luminosity_fb`` is the total over the datasets.
    """
    t0 = time.perf_counter()
    cfg = load_scan_config(config)
    if lee_toys is not None:
        cfg["lee"]["toys"] = int(lee_toys)
    if resume and out_dir is None:
        raise ScanConfigError("resume: needs an output directory holding the checkpoint (out_dir)")
    if not datasets:
        raise ScanConfigError("datasets: no dataset to scan")
    plan = plan_combined(datasets, cfg, unblind=unblind)
    n_blind = int(np.asarray(plan.blinded)[plan.fit_indices].sum()) if plan.blinded is not None else 0
    if n_blind == len(plan.fit_indices):
        cfg["lee"]["toys"] = 0  # nothing observed to correct for the look-elsewhere effect
    settings = CombinedSettings.from_config(cfg)
    backgrounds = None
    if settings.method == "spurious_signal" or cfg["lee"]["toys"] > 0:
        backgrounds = smooth_backgrounds(datasets, plan, cfg)
    if settings.method == "spurious_signal":
        assert backgrounds is not None
        plan = _measure_spurious(plan, backgrounds, cfg)
    logger.info("combined scan of %d dataset(s) %s: %d mass points (%d fitted, %d vetoed, %d empty) in %d blocks; nuisances %s; "
                "background model %s", len(datasets), list(plan.names), len(plan.masses), len(plan.fit_indices), plan.status.count("vetoed"),
                plan.status.count("empty"), len(plan.blocks), list(plan.nuisance_names), settings.method)
    execution = Execution.from_config(cfg["execution"], workers=workers, dask=dask, show_progress=show_progress)
    inputs = [d for ds in datasets for d in ds.inputs]
    masses_digest = sha256_array(np.concatenate([np.frombuffer(ds.name.encode(), np.uint8).astype(float) for ds in datasets]
                                                + [ds.mgg for ds in datasets]))
    hashes = {"config": config_hash(cfg), "inputs": inputs_digest(np.array([]), [masses_digest, *[d["sha256"] for d in inputs]]),
              "plan": plan.digest()}
    out = Path(out_dir) if out_dir is not None else None
    store = CheckpointStore(out / cfg["output"]["checkpoint_dir"], hashes, resume=resume, overwrite=overwrite) if out is not None else None

    blocks = run_checkpointed(COMBINED_BLOCKS, combined_block_jobs(plan, [ds.mgg for ds in datasets], settings=settings), store=store,
                              execution=execution)
    points = combined_points(plan, blocks)
    log_unfitted(points)
    global_ = _global(plan, points, backgrounds, cfg, settings, store, execution)
    sources = {ds.name: ds.signal_model_source for ds in datasets}
    result = scan_result(config=cfg, inputs=inputs, plan=plan, points=points, global_significance=global_, hashes=hashes,  # type: ignore[arg-type]
                         n_candidates=sum(ds.mgg.size for ds in datasets),
                         signal_model=datasets[0].signal_model_source if len(datasets) == 1 else {"datasets": sources},
                         provenance=cfg["provenance"] if provenance is None else provenance,
                         vetoed_ranges=vetoed_mass_ranges(plan, cfg["vetoes"]))  # type: ignore[arg-type]
    result["luminosity_fb"] = float(plan.luminosity_fb.sum())
    result["datasets"] = [ds.describe() for ds in datasets]
    result["nuisances"] = list(plan.nuisance_names)
    result["background_model"] = settings.method
    result["blinding"] = blinding_record(cfg["blinding"], unblind=unblind, n_blind=n_blind)
    result["gof"] = gof_summary(points, cfg["gof"], combined=True)
    if out is not None:
        write_result(result, out / cfg["output"]["result"], csv_path=out / cfg["output"]["csv"])
    if "max_z_local" in global_:
        logger.info("combined scan finished in %.1f s: max local Z %.2f at %.4g GeV, global Z %.2f (%s)", time.perf_counter() - t0,
                    global_["max_z_local"], global_["mass_at_max"], global_["z_global"], global_["method"])
    else:
        logger.info("combined scan finished in %.1f s (blind: expected quantities only)", time.perf_counter() - t0)
    return result

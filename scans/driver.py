"""The scan driver: selected candidates + signal model -> scan result.

``scan(mgg, signal_model, config=...)``

1. plans the scan (``scans.plan``): the mass grid (fixed step or a fraction
   of sigma(m)), the fit windows ``m +- n sigma(m)`` clipped to the data
   range, the vetoes and the blocks of consecutive fitted points, after
   checking everything that can be checked cheaply (mass range inside the
   signal model, positive efficiency, candidates finite);
2. fits every block (``scans.worker.evaluate_block``: vectorised fits, local
   Z, observed and expected CLs limits on N_sig and, with the efficiency x
   luminosity and its uncertainty as a constrained nuisance, on the
   cross-section) through the checkpointed pipeline (``scans.pipeline``) on
   a process pool or a Dask cluster;
3. turns the block results into point records with cross-section and g_agg
   limits (``scans.result``);
4. runs background-only toy scans for the look-elsewhere effect through the
   same pipeline (``scans.worker.evaluate_toy``) and computes the global
   significance (``scans.lee``);
5. writes the JSON result (format of DESIGN.md) and a CSV of the points.

Jobs and toy seeds do not depend on the executor or the number of workers,
and each job's result depends only on the job, so local, Dask and resumed
runs give identical results.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from signal_models._common.version import __version__

from .blinding import blinding_record
from .checkpoint import CheckpointStore, inputs_digest
from .config import config_hash, load_scan_config
from .config_datasets import is_combined
from .errors import CheckpointError, ScanConfigError
from .execution import Execution
from .inputs import describe_signal_model
from .jobs import BlockResult, FitSettings, ToyBatchResult, ToyResult, block_jobs, toy_batch_jobs
from .lee import fit_smooth_background, global_significance, segment_labels
from .pipeline import Stage, run_checkpointed
from .plan import ScanPlan, plan_scan, signal_efficiency, sorted_candidates, veto_ranges, vetoed_mass_ranges
from .result import POINT_KEYS, gof_summary, log_unfitted, points_csv, scan_points, scan_result, write_result
from .worker import evaluate_block, evaluate_toy, evaluate_toy_batch

logger = logging.getLogger(__name__)

# ScanPlan, plan_scan, signal_efficiency, POINT_KEYS, points_csv and write_result keep their
# old import path scans.driver (their homes are scans.plan and scans.result)
__all__ = ["scan", "ScanPlan", "plan_scan", "signal_efficiency", "write_result", "points_csv", "POINT_KEYS", "version"]

#: the observed scan: one job per block of mass points
OBSERVED_BLOCKS: Stage[Any, BlockResult] = Stage(kind="block", description="mass scan", work=evaluate_block, from_json=BlockResult.from_json)
#: the look-elsewhere effect: one job per background-only toy scan
LEE_TOYS: Stage[Any, ToyResult] = Stage(kind="toy", description="LEE toys", work=evaluate_toy, from_json=ToyResult.from_json)


def version() -> str:
    """The bumphunt version written into scan results."""
    return __version__


def _global_significance(
    plan: ScanPlan,
    mgg: NDArray[np.float64],
    points: Sequence[Mapping[str, Any]],
    lee: Mapping[str, Any],
    *,
    vetoes: Mapping[str, Any],
    block_size: int,
    fit: FitSettings,
    store: CheckpointStore | None,
    execution: Execution,
) -> dict[str, Any]:
    """Global significance of the largest local excess, with ``lee["toys"]`` background-only toy scans.

    The toys are drawn from a smooth fit to the whole spectrum (vetoed
    ranges left out), normalised to the number of candidates in the data
    range, and fitted as fine histograms in the scan's windows
    (``scans.lee_batch``), ``scans.jobs.TOYS_PER_JOB`` toys per job and
    checkpoint file (``lee_<job>.json``); failed toy fits count as Z = 0.
    """
    scanned = plan.fit_indices
    z_obs = np.array([points[i].get("z_local", 0.0) if points[i]["converged"] else 0.0 for i in scanned])
    z_toys = None
    n_failed = n_refit = 0
    if lee["toys"] > 0:
        smooth = fit_smooth_background(mgg, data_range=plan.data_range, order=lee["background_order"], bins=lee["bins"],
                                       exclude=veto_ranges(plan, vetoes))
        background = dataclasses.replace(smooth, n_expected=float(np.sum((mgg >= smooth.lo) & (mgg <= smooth.hi))))
        jobs = toy_batch_jobs(plan, background, n_toys=lee["toys"], seed=lee["seed"], block_size=block_size, fit=fit)
        stage: Stage[Any, ToyBatchResult] = Stage(kind="lee", description="LEE toys", work=evaluate_toy_batch, from_json=ToyBatchResult.from_json)
        batches = run_checkpointed(stage, jobs, store=store, execution=execution)
        for i, (job, batch) in enumerate(zip(jobs, batches)):
            if batch.first != job.first or len(batch.toys) != job.count:
                where = store.path(stage.kind, i) if store is not None else f"{stage.kind} {i}"
                raise CheckpointError(f"{where}: holds toys {batch.first}..{batch.first + len(batch.toys) - 1}, the job is toys "
                                      f"{job.first}..{job.first + job.count - 1}; remove it and resume")
        toys = [t for b in batches for t in b.toys]
        z_toys = np.array([t.z_local for t in toys])
        n_failed = sum(t.n_failed for t in toys)
        n_refit = sum(t.n_refit for t in toys)
        if n_failed:
            logger.warning("LEE toys: %d toy fits failed and count as Z = 0", n_failed)
    result = global_significance(z_obs, plan.masses[scanned], z_toys=z_toys, c0=lee["c0"], segments=segment_labels(scanned))
    result["seed"] = lee["seed"]
    if z_toys is not None:
        binned = jobs[0].bin_fraction is not None and fit.engine == "vectorised"
        result["toy_fits"] = {"method": "binned (scans.lee_batch)" if binned else "unbinned", "n_failed": int(n_failed), "n_refit_unbinned": int(n_refit),
                              **({"bin_fraction_of_sigma": jobs[0].bin_fraction} if binned else {})}
    return result


def _scan_one_combined(candidates_mgg: ArrayLike, signal_model: Any, cfg: dict[str, Any], *, inputs: Sequence[Mapping[str, str]] | None,
                       signal_model_source: Mapping[str, Any] | None, **run: Any) -> dict[str, Any]:
    """``scan`` of one dataset whose configuration needs the combined engine (nuisances, background model, trigger table)."""
    from .combined_driver import scan_datasets
    from .datasets import IMPLICIT_NAME, dataset_from_arrays
    from .trigger import trigger_from_config

    if cfg["datasets"]:
        raise ScanConfigError("datasets: a configuration with datasets names its own candidates; run it with scans.run_config "
                              "(or `bumphunt scan CONFIG`), or pass scans.datasets.Dataset objects to scans.combined_driver.scan_datasets")
    ds = dataset_from_arrays(IMPLICIT_NAME, candidates_mgg, signal_model, luminosity_fb=cfg["luminosity_fb"],
                             luminosity_rel_unc=cfg["luminosity_rel_unc"], trigger=trigger_from_config(cfg["trigger_efficiency"]),
                             bkg_order=cfg["bkg_order"], inputs=inputs or (),
                             signal_model_source=signal_model_source or describe_signal_model(signal_model))
    return scan_datasets([ds], config=cfg, **run)


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
    signal_model_source: Mapping[str, Any] | None = None,
    provenance: Mapping[str, Any] | None = None,
    unblind: bool = False,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Run a mass scan and return the scan result (the JSON structure of DESIGN.md).

    Parameters
    ----------
    candidates_mgg : array
        M_gg of the selected candidates in GeV.
    signal_model : SignalModel-like
        Object with ``shape(m)``, ``efficiency(m)``, ``efficiency_uncertainty(m)``
        and ``mass_range`` (GeV) (e.g. ``signal_models.SignalModel`` or
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
        Reuse finished blocks and toys in ``out_dir``'s checkpoint (refused if
        the configuration, inputs or plan differ).
    workers : int, optional
        Local worker processes (default ``execution.workers``; never more
        than there are jobs).
    dask : str or distributed.Client, optional
        Run blocks and toys on a Dask cluster: scheduler address, ``"local"``
        or a Client (default ``execution.dask``).
    lee_toys : int, optional
        Override ``lee.toys``.
    show_progress : bool, optional
        Progress bars (default: only on a terminal).
    signal_model_source : mapping, optional
        Recorded as the result's ``signal_model``: ``{"path", "sha256"}`` of
        the model file, or ``{"analytic": parameters}``. Default: the analytic
        parameters for an analytic model, else the model's type name.
    provenance : mapping, optional
        How the candidates were made (selector, working point, toy-MC seed,
        ...), recorded in the result; default the configuration's
        ``provenance`` section.
    unblind : bool
        With a ``blinding`` section: fit every point in full (recorded in the result).
    overwrite : bool
        Discard the finished blocks of an earlier scan in ``out_dir`` (without it, and without
        ``resume``, such a directory is refused).

    Returns
    -------
    dict
        ``bumphunt_version``, ``config``, ``inputs``, ``luminosity_fb`` (fb^-1),
        ``sqrt_s`` (GeV), ``points``, ``global``, ``hashes``, ``n_candidates``,
        ``data_range`` (GeV).

    Raises
    ------
    ScanConfigError, ScanInputError, CheckpointError
        Before any fit, naming the key, file or value.

    Examples
    --------
    A scan of a smooth toy spectrum with the analytic stand-in signal model,
    from 1 to 2 GeV in steps of 0.1 GeV:

    >>> import scans
    >>> from scans.testing import analytic_signal_model, toy_spectrum
    >>> data = toy_spectrum(5000, lo=0.5, hi=3.0, slope=0.5, seed=1)
    >>> config = {"mass": {"min": 1.0, "max": 2.0, "step": 0.1}, "lee": {"toys": 0},
    ...           "vetoes": {"particles": []}, "execution": {"workers": 1}}
    >>> result = scans.scan(data, analytic_signal_model(), config=config)
    >>> len(result["points"])
    11
    >>> point = result["points"][0]
    >>> point["mass"], len(point["ul_nsig_exp"])  # GeV; the expected limit's -2, -1, 0, +1, +2 sigma
    (1.0, 5)
    >>> all(p["ul_nsig_exp"][1] < p["ul_nsig_exp"][2] < p["ul_nsig_exp"][3] for p in result["points"])
    True
    >>> bool(result["global"]["max_z_local"] < 3)  # no signal in the toy
    True
    """
    t_start = time.perf_counter()
    cfg = load_scan_config(config)
    if lee_toys is not None:
        cfg["lee"]["toys"] = int(lee_toys)
    if resume and out_dir is None:
        raise ScanConfigError("resume: needs an output directory holding the checkpoint (out_dir)")
    if is_combined(cfg):
        return _scan_one_combined(candidates_mgg, signal_model, cfg, inputs=inputs, out_dir=out_dir, resume=resume, workers=workers,
                                  dask=dask, show_progress=show_progress, signal_model_source=signal_model_source, provenance=provenance,
                                  lee_toys=lee_toys, unblind=unblind, overwrite=overwrite)
    mgg = sorted_candidates(candidates_mgg)
    plan = plan_scan(mgg, signal_model, cfg)
    logger.info("scan: %d mass points (%d fitted, %d vetoed, %d flagged empty) in %d blocks",
                len(plan.masses), len(plan.fit_indices), plan.status.count("vetoed"), plan.status.count("empty"), len(plan.blocks))
    execution = Execution.from_config(cfg["execution"], workers=workers, dask=dask, show_progress=show_progress)

    inputs_record = [] if inputs is None else [{"path": str(d["path"]), "sha256": str(d["sha256"])} for d in inputs]
    hashes = {
        "config": config_hash(cfg),
        "inputs": inputs_digest(mgg, None if inputs is None else [d["sha256"] for d in inputs_record]),
        "plan": plan.digest(),
    }
    out = Path(out_dir) if out_dir is not None else None
    store = CheckpointStore(out / cfg["output"]["checkpoint_dir"], hashes, resume=resume, overwrite=overwrite) if out is not None else None

    fit = FitSettings.from_config(cfg)
    blocks = run_checkpointed(OBSERVED_BLOCKS, block_jobs(plan, mgg, fit=fit), store=store, execution=execution)
    points = scan_points(plan, blocks)
    log_unfitted(points)
    global_ = _global_significance(plan, mgg, points, cfg["lee"], vetoes=cfg["vetoes"], block_size=cfg["block_size"], fit=fit,
                                   store=store, execution=execution)

    result = scan_result(config=cfg, inputs=inputs_record, plan=plan, points=points, global_significance=global_, hashes=hashes,
                         n_candidates=mgg.size, signal_model=signal_model_source or describe_signal_model(signal_model),
                         provenance=cfg["provenance"] if provenance is None else provenance,
                         vetoed_ranges=vetoed_mass_ranges(plan, cfg["vetoes"]))
    result["blinding"] = blinding_record(cfg["blinding"], unblind=unblind, n_blind=0)
    result["gof"] = gof_summary(points, cfg["gof"])
    if out is not None:
        write_result(result, out / cfg["output"]["result"], csv_path=out / cfg["output"]["csv"])
    logger.info("scan finished in %.1f s: max local Z %.2f at %.4g GeV, global Z %.2f (%s)",
                time.perf_counter() - t_start, global_["max_z_local"], global_["mass_at_max"], global_["z_global"], global_["method"])
    return result

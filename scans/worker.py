"""The work that runs in worker processes: fitting the hypotheses of a job with ``fits.evaluate_hypotheses``.

``evaluate_block(BlockJob) -> BlockResult``, ``evaluate_toy(ToyJob) ->
ToyResult`` and ``evaluate_toy_batch(ToyBatchJob) -> ToyBatchResult`` are
module-level functions, so a spawned process pool or a Dask worker can import
them. Toy scans are fitted as fine histograms (``scans.lee_batch``); the
fits that path cannot take, and every fit of a job without binning, go
through ``unbinned_toy_fits``, the fits of the observed scan. A job's result
depends only on the job (seeds included), so the same jobs give the same
results on any executor and in any order. Hypotheses whose fit fails are refitted with lower background orders
(``with_order_fallback``). ``fits`` is imported when a job runs, not when
this module is imported.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .jobs import (
    BLOCK_COLUMNS,
    TOY_LIMIT_COLUMNS,
    BlockJob,
    BlockResult,
    FitSettings,
    Hypotheses,
    ToyBatchJob,
    ToyBatchResult,
    ToyJob,
    ToyResult,
    window_slice,
)
from .lee_batch import binned_toy_scans, toy_spectrum

logger = logging.getLogger(__name__)

__all__ = ["table_columns", "with_order_fallback", "fit_hypotheses", "evaluate_block", "evaluate_toy", "evaluate_toy_batch", "unbinned_toy_fits",
           "TOY_COLUMNS"]

#: columns a toy scan needs
TOY_COLUMNS = ("z_local", "converged")


def table_columns(table: Any, *, columns: Sequence[str] = BLOCK_COLUMNS) -> dict[str, list]:
    """Columns of a ``fits.HypothesisTable`` as lists of Python numbers, bools and strings (absent ones left out)."""
    out: dict[str, list] = {}
    for name in columns:
        value = getattr(table, name, None)
        if value is None:
            continue
        if name == "reason":
            out[name] = [str(r) for r in value]
        elif name == "converged":
            out[name] = [bool(c) for c in np.asarray(value)]
        elif name == "n_events":
            out[name] = [int(c) for c in np.asarray(value)]
        else:
            out[name] = np.asarray(value, dtype=float).tolist()
    return out


def with_order_fallback(
    evaluate: Callable[[NDArray[np.int64], int], dict[str, list]], k: int, *, order: int, fallback: bool
) -> dict[str, list]:
    """Evaluate k hypotheses at background order ``order``; refit failed ones at lower orders.

    In sparse windows (a few tens of candidates) a polynomial of the
    configured order can go negative between the events, where nothing pulls
    it back, and the fit has no interior minimum; such hypotheses are refitted
    with orders ``order - 1, ..., 0`` until they converge.

    Parameters
    ----------
    evaluate : callable
        ``evaluate(idx, order)`` fits the hypotheses ``idx`` (int array) and
        returns columns (lists, one entry per hypothesis in ``idx``) with at
        least ``converged``.
    k : int
        Number of hypotheses.
    order : int
        Configured background order.
    fallback : bool
        Whether to refit failed hypotheses at lower orders.

    Returns
    -------
    dict of lists
        The columns of the converged (or first) fit of every hypothesis, plus
        ``bkg_order``, the order used per hypothesis.
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


def fit_hypotheses(
    mgg: NDArray[np.float64], hypotheses: Hypotheses, fit: FitSettings, *, limits: bool, columns: Sequence[str] = BLOCK_COLUMNS
) -> dict[str, list]:
    """Fit hypotheses with ``fits.evaluate_hypotheses`` (failed ones again at lower background orders).

    Parameters
    ----------
    mgg : (n,) float array, GeV
        Candidate masses covering the windows.
    hypotheses : Hypotheses
        With ``scale`` and ``rel_unc``, the limits include cross-section limits.
    fit : FitSettings
    limits : bool
        Compute observed and expected CLs limits (else fits and local Z only).
    columns : sequence of str
        Columns of the table to return.

    Returns
    -------
    dict of lists
        ``columns`` (as far as the engine gives them) and ``bkg_order``.
    """
    import fits

    def evaluate(idx: NDArray[np.int64], order: int) -> dict[str, list]:
        sub = hypotheses.take(idx)
        table = fits.evaluate_hypotheses(
            mgg,
            list(sub.shapes),
            sub.windows,
            bkg_order=order,
            cl=fit.cl,
            limits=limits,
            expected=limits,
            signal_scale=sub.scale,
            signal_scale_rel_unc=sub.rel_unc,
            engine=fit.engine,
            extra_shapes=None if sub.extras is None else list(sub.extras),
            limit_method=fit.limit_method if limits else "asymptotic",
            toys=fit.toys,
            toy_seed=fit.toy_seed,
        )
        cols = table_columns(table, columns=columns)
        if limits and fit.limit_method != "asymptotic":
            cols["limit_method"] = [str(m) for m in getattr(table, "limit_method", ("asymptotic",) * len(sub))]
            for name in TOY_LIMIT_COLUMNS[1:]:
                value = getattr(table, name, None)
                if value is not None:
                    cols[name] = np.asarray(value, dtype=float).tolist()
        if limits and fit.gof_method != "none":
            cols["gof_pvalue"] = _gof_pvalues(mgg, sub, table, fit, order)
        return cols

    return with_order_fallback(evaluate, len(hypotheses), order=fit.bkg_order, fallback=fit.order_fallback)


def _gof_pvalues(mgg: NDArray[np.float64], hypotheses: Hypotheses, table: Any, fit: FitSettings, order: int) -> list[float]:
    """Goodness-of-fit p-values of fitted hypotheses (NaN where not computable, e.g. windows with peak templates)."""
    from fits.goodness_of_fit import gof_pvalues

    valid = np.asarray(table.converged, bool)
    if hypotheses.extras is not None:
        valid &= np.array([len(e) == 0 for e in hypotheses.extras])  # a peak template is not in (nsig, beta)
    if not valid.any() or table.beta is None:
        return [float("nan")] * len(hypotheses)
    first = float(hypotheses.shapes[0].mu)
    seed = np.random.SeedSequence([fit.gof_seed, int(round(first * 1e6)), order])  # the block's own seed: any worker, any order
    res = gof_pvalues(mgg, list(hypotheses.shapes), hypotheses.windows, table.nsig, table.beta, method=fit.gof_method,
                      toys=fit.gof_toys or None, seed=seed, bkg_order=order, valid=valid)
    return [float(p) if ok else float("nan") for p, ok in zip(res.pvalue, res.ok)]


def evaluate_block(job: BlockJob) -> BlockResult:
    """Fit a block of the observed scan: yields, local Z, N_sig and cross-section limits."""
    return BlockResult.from_json(fit_hypotheses(job.mgg, job.hypotheses, job.fit, limits=True))


def unbinned_toy_fits(mgg: NDArray[np.float64], hypotheses: Hypotheses, fit: FitSettings, *, block_size: int) -> tuple[NDArray, NDArray]:
    """Local Z of the hypotheses on one toy spectrum by the unbinned fits of the observed scan.

    Parameters
    ----------
    mgg : (n,) float array, GeV
        Sorted toy candidates.
    hypotheses : Hypotheses
    fit : FitSettings
    block_size : int
        Hypotheses fitted together (``fit_hypotheses``, with its lower-order fallback).

    Returns
    -------
    z, ok : (k,) float and bool arrays
        Signed local Z (0 where the fit failed) and whether it succeeded.
    """
    n = len(hypotheses)
    z = np.zeros(n)
    ok = np.zeros(n, dtype=bool)
    for start in range(0, n, block_size):
        sl = slice(start, start + block_size)
        chunk = hypotheses.take(sl)
        res = fit_hypotheses(mgg[window_slice(mgg, chunk.windows)], chunk, fit, limits=False, columns=TOY_COLUMNS)
        zz = np.asarray(res["z_local"], dtype=float)
        good = np.asarray(res["converged"], dtype=bool) & np.isfinite(zz)
        z[sl] = np.where(good, zz, 0.0)
        ok[sl] = good
    return z, ok


def evaluate_toy_batch(job: ToyBatchJob) -> ToyBatchResult:
    """Background-only toy scans ``job.first ..``: local Z at every fitted point (0 where a toy fit fails).

    Binned fits (``scans.lee_batch``) unless ``job.bin_fraction`` is None or the engine is not the
    vectorised one; each toy's result depends only on its number and the job's settings.
    """
    indices = range(job.first, job.first + job.count)
    if job.bin_fraction is not None and job.fit.engine == "vectorised":

        def refit(mgg: NDArray[np.float64], idx: NDArray[np.int64]) -> tuple[NDArray, NDArray]:
            return unbinned_toy_fits(mgg, job.hypotheses.take(idx), job.fit, block_size=job.block_size)

        toys = binned_toy_scans(job.background, job.hypotheses, order=job.fit.bkg_order, seed=job.seed, indices=indices,
                                bin_fraction=job.bin_fraction, refit=refit)
        return ToyBatchResult(first=job.first, toys=tuple(toys))
    out = []
    for i in indices:
        mgg = toy_spectrum(job.background, job.seed, i)
        z, ok = unbinned_toy_fits(mgg, job.hypotheses, job.fit, block_size=job.block_size)
        out.append(ToyResult(z_local=tuple(z.tolist()), n_failed=int(np.sum(~ok)), n_candidates=int(mgg.size)))
    return ToyBatchResult(first=job.first, toys=tuple(out))


def evaluate_toy(job: ToyJob) -> ToyResult:
    """One background-only toy scan: local Z at every fitted point (0 where a toy fit fails)."""
    batch = ToyBatchJob(background=job.background, hypotheses=job.hypotheses, seed=job.seed, first=job.index, count=1, block_size=job.block_size,
                        fit=job.fit, bin_fraction=job.bin_fraction)
    return evaluate_toy_batch(batch).toys[0]

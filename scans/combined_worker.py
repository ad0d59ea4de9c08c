"""What a worker does with a combined job: fits of all datasets together, per block of hypotheses.

``evaluate_combined_block(CombinedBlockJob) -> CombinedBlockResult`` and
``evaluate_combined_toy(CombinedToyJob) -> ToyResult`` are module-level, so
a spawned process pool or a Dask worker can import them; a job's result
depends only on the job (seeds included). The background model of the
settings decides how each hypothesis is fitted:

- ``fixed`` and ``spurious_signal``: the plan's orders
  (``fits.combined_table.evaluate_combined``; the spurious-signal yields
  are already in the request);
- ``ftest``: orders chosen per hypothesis and dataset by
  ``fits.background_choice.ftest_orders``, then fitted;
- ``envelope``: discrete profiling over the candidate orders
  (``fits.envelope.evaluate_envelope``).

Hypotheses whose fit fails are refitted with every dataset's order capped
one lower, down to 0 (as in the one-dataset scan).

Blinded points (``scans.blinding``) are fitted with the signal fixed at
zero only (``fits.combined_table.evaluate_combined_expected``): their
orders come from the same rules applied to background-only fits (the
F-test is one already; the envelope takes the best background-only
combination), and no fitted signal, significance or observed limit is
computed for them.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .combined_jobs import CombinedBlockJob, CombinedBlockResult, CombinedSettings, CombinedToyJob
from .jobs import ToyResult
from .lee import toy_seed
from .worker import with_order_fallback

logger = logging.getLogger(__name__)

__all__ = ["fit_request", "evaluate_combined_block", "evaluate_combined_toy"]


def _take(req: Any, idx: NDArray, cap: int) -> Any:
    """The request's hypotheses ``idx`` with every order capped at ``cap``."""
    return dataclasses.replace(
        req, shapes=tuple(s.take(idx) for s in req.shapes), lo=req.lo[idx], hi=req.hi[idx], scale=req.scale[idx],
        orders=np.minimum(req.orders[idx], cap), yield_coeff=req.yield_coeff[idx], shape_widths=req.shape_widths[idx],
        spurious_size=req.spurious_size[idx],
    )


def _columns(table: Any, *, limits: bool) -> dict[str, list]:
    out: dict[str, list] = {
        "mu_hat": np.asarray(table.mu_hat, float).tolist(),
        "mu_err": np.asarray(table.mu_err, float).tolist(),
        "z_local": np.asarray(table.z_local, float).tolist(),
        "converged": [bool(c) for c in table.converged],
        "reason": [str(r) for r in table.reason],
        "n_events": np.asarray(table.n_events, int).tolist(),
        "bkg_orders": np.asarray(table.bkg_orders, int).tolist(),
        "channel_nsig": np.asarray(table.channel_nsig, float).tolist(),
        "channel_nbkg": np.asarray(table.channel_nbkg, float).tolist(),
        "nuisance_hat": np.asarray(table.nuisance_hat, float).tolist(),
        "nuisance_err": np.asarray(table.nuisance_err, float).tolist(),
    }
    if limits:
        out["ul_obs"] = np.asarray(table.ul_obs, float).tolist()
        out["ul_exp"] = np.asarray(table.ul_exp, float).tolist()
    gof = getattr(table, "gof_pvalue", None)
    out["gof_pvalue"] = [float("nan")] * len(table.mu_hat) if gof is None else np.asarray(gof, float).tolist()
    return out


def _evaluate(req: Any, settings: CombinedSettings, *, limits: bool) -> Any:
    if settings.method == "envelope":
        from fits.envelope import evaluate_envelope

        return evaluate_envelope(req, orders=settings.orders, penalty=settings.penalty, cl=settings.cl, limits=limits, expected=limits)
    if settings.method == "ftest":
        from fits.background_choice import ftest_orders

        choice = ftest_orders(req, orders=settings.orders, pvalue=settings.ftest_pvalue)
        req = dataclasses.replace(req, orders=choice.orders)
    from fits.combined_table import evaluate_combined

    return evaluate_combined(req, cl=settings.cl, limits=limits, expected=limits, gof=settings.gof and limits)


def _evaluate_blind(req: Any, settings: CombinedSettings) -> tuple[Any, NDArray | None]:
    from fits.combined_table import evaluate_combined_expected

    if settings.method == "envelope":
        from fits.envelope import background_only_orders

        req = dataclasses.replace(req, orders=background_only_orders(req, orders=settings.orders, penalty=settings.penalty))
    elif settings.method == "ftest":
        from fits.background_choice import ftest_orders

        req = dataclasses.replace(req, orders=ftest_orders(req, orders=settings.orders, pvalue=settings.ftest_pvalue).orders)
    return evaluate_combined_expected(req, cl=settings.cl, reference_mu=settings.reference_xsec,
                                      gof_sideband_n_sigma=settings.blind_n_sigma if settings.gof else None)


def _blind_columns(req: Any, settings: CombinedSettings) -> dict[str, list]:
    table, z_ref = _evaluate_blind(req, settings)
    out = _columns(table, limits=False)
    out["ul_obs"] = [float("nan")] * req.k
    out["ul_exp"] = np.asarray(table.ul_exp, float).tolist()
    out["blinded"] = [True] * req.k
    out["z_reference"] = [float("nan")] * req.k if z_ref is None else np.asarray(z_ref, float).tolist()
    return out


def _merge(parts: list[tuple[NDArray, dict[str, list]]], k: int) -> dict[str, list]:
    """Columns of disjoint subsets (positions, columns) merged back into hypothesis order."""
    keys = parts[0][1].keys()
    out: dict[str, list] = {key: [None] * k for key in keys}
    for pos, cols in parts:
        for key in keys:
            for p, v in zip(pos, cols[key]):
                out[key][p] = v
    return out


def fit_request(req: Any, settings: CombinedSettings, *, limits: bool, blinded: NDArray | None = None) -> dict[str, list]:
    """Fit the hypotheses of a combined request (failed ones again with lower orders); columns as lists.

    Parameters
    ----------
    req : fits.combined_rows.CombinedRequest
    settings : CombinedSettings
    limits : bool
        Observed and expected CLs limits (else fits and local Z only).
    blinded : (k,) bool array, optional
        Hypotheses fitted background-only (expected limits; no observed number computed).
    """
    top = int(np.max(req.orders)) if settings.method in ("fixed", "spurious_signal") else max(settings.orders)
    blind = np.zeros(req.k, bool) if blinded is None else np.asarray(blinded, bool)

    def open_columns(sub: Any, sett: CombinedSettings) -> dict[str, list]:
        cols = _columns(_evaluate(sub, sett, limits=limits), limits=limits)
        cols["blinded"] = [False] * sub.k
        cols["z_reference"] = [float("nan")] * sub.k
        if not limits:
            cols["ul_obs"] = [float("nan")] * sub.k
            cols["ul_exp"] = [[float("nan")] * 5] * sub.k
        return cols

    def evaluate(idx: NDArray[np.int64], order: int) -> dict[str, list]:
        sub = _take(req, idx, order)
        sett = settings
        if settings.method in ("ftest", "envelope"):
            allowed = tuple(o for o in settings.orders if o <= order) or (min(settings.orders),)
            sub = dataclasses.replace(sub, orders=np.full_like(sub.orders, max(allowed)))
            sett = dataclasses.replace(settings, orders=allowed)
        bl = blind[idx]
        parts = []
        if (~bl).any():
            pos = np.flatnonzero(~bl)
            parts.append((pos, open_columns(_take(sub, pos, order), sett)))
        if bl.any():
            pos = np.flatnonzero(bl)
            parts.append((pos, _blind_columns(_take(sub, pos, order), sett)))
        return parts[0][1] if len(parts) == 1 else _merge(parts, len(idx))

    res = with_order_fallback(evaluate, req.k, order=top, fallback=settings.order_fallback)
    res.pop("bkg_order", None)
    return res


def evaluate_combined_block(job: CombinedBlockJob) -> CombinedBlockResult:
    """Fit a block of combined hypotheses: cross-section, local Z, CLs limits, per-dataset yields, nuisances."""
    return CombinedBlockResult.from_json(fit_request(job.request, job.settings, limits=True, blinded=job.blinded))


def evaluate_combined_toy(job: CombinedToyJob) -> ToyResult:
    """One background-only toy scan of all datasets: local Z at every fitted point (0 where a toy fit fails)."""
    rng = np.random.default_rng(toy_seed(job.seed, job.index))
    samples = [bkg.sample(rng) for bkg in job.backgrounds]  # sorted, inside each dataset's range
    z: list[float] = []
    failed = 0
    for block in job.blocks:
        req = dataclasses.replace(block, sorted_mgg=tuple(samples))
        res = fit_request(req, job.settings, limits=False)
        zz = np.asarray(res["z_local"], dtype=float)
        ok = np.asarray(res["converged"], dtype=bool) & np.isfinite(zz)
        failed += int((~ok).sum())
        z.extend(np.where(ok, zz, 0.0).tolist())
    return ToyResult(z_local=tuple(z), n_failed=failed, n_candidates=int(sum(s.size for s in samples)))

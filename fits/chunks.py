"""One chunk of hypotheses on the vectorised engine: the request, its evaluation and its result.

``fits.evaluate_hypotheses`` cuts the hypotheses of a scan into chunks of
bounded padded size and hands each to ``evaluate_chunk`` as a
``HypothesisRequest`` (sorted masses, shape arrays, windows and their index
ranges, what to compute). The chunk is fitted as one ``fits.vectorised.Batch``;
its numbers come back as a ``ChunkResult`` (arrays over the chunk's
hypotheses), which the caller places into its table.

Sparse windows: a hypothesis whose fit has no minimum (the signal running
away where no events pull the density back) or whose fitted background goes
negative somewhere in the window is refitted with the density held positive
over the window (``fits.design.build_guarded_design``) before any limit is
computed; a hypothesis whose limits fail on the plain design is retried the
same way. Both are logged at INFO level.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import ArrayLike, NDArray

from signal_models._common.defaults import DEFAULT_CL

from .asymptotic import N_SIGMA
from .densities import ShapeArrays, background_nonnegative
from .design import Design, build_design, build_guarded_design
from .nuisances import Syst
from .vectorised import Batch, BatchFit

logger = logging.getLogger(__name__)

__all__ = ["HypothesisRequest", "ChunkResult", "evaluate_chunk"]


@dataclass(frozen=True)
class HypothesisRequest:
    """What to compute for k hypotheses on the vectorised engine (arrays of length k).

    Attributes
    ----------
    sorted_mgg : ndarray (n,)
        All candidate masses in GeV, sorted ascending.
    shapes : ShapeArrays
        The fixed signal shapes.
    lo, hi : ndarray (k,)
        Windows in GeV.
    start, stop : ndarray (k,)
        The events of window ``j`` are ``sorted_mgg[start[j]:stop[j]]``.
    bkg_order : int
        Order of the background polynomial.
    cl : float
        Confidence level of the limits.
    limits, expected : bool
        Compute the observed limits / the expected band.
    scale : ndarray (k,), optional
        Events per pb: cross-section limits (pb) as well.
    syst : Syst, optional
        Yield uncertainty profiled in the cross-section limits.
    bkg_fixed : ndarray (k, bkg_order+1), optional
        Background coefficients (events/GeV) held fixed.
    """

    sorted_mgg: NDArray
    shapes: ShapeArrays
    lo: NDArray
    hi: NDArray
    start: NDArray
    stop: NDArray
    bkg_order: int
    cl: float = DEFAULT_CL
    limits: bool = True
    expected: bool = True
    scale: NDArray | None = None
    syst: Syst | None = None
    bkg_fixed: NDArray | None = None

    @property
    def k(self) -> int:
        return len(self.lo)

    @property
    def n_events(self) -> NDArray:
        """Candidates per window (k,)."""
        return (self.stop - self.start).astype(int)

    def take(self, idx: ArrayLike) -> HypothesisRequest:
        """The same request for the hypotheses at positions (or boolean mask) ``idx``."""
        return replace(
            self,
            shapes=self.shapes.take(idx),
            lo=self.lo[idx],
            hi=self.hi[idx],
            start=self.start[idx],
            stop=self.stop[idx],
            scale=None if self.scale is None else self.scale[idx],
            syst=None if self.syst is None else self.syst.take(idx),
            bkg_fixed=None if self.bkg_fixed is None else self.bkg_fixed[idx],
        )


@dataclass(frozen=True)
class ChunkResult:
    """Fit and limit numbers of k hypotheses (arrays of length k).

    Yields and yield limits in signal events, ``beta`` in events/GeV, cross-section
    limits in pb (``None`` without a signal scale). Numbers not computed (limits
    not asked for, hypotheses not fitted) are 0; ``reason`` is empty for good fits.
    """

    nsig: NDArray
    nsig_err: NDArray
    nbkg: NDArray
    nll: NDArray
    z_local: NDArray
    beta: NDArray
    bkg_nonnegative: NDArray
    converged: NDArray
    reason: tuple[str, ...]
    ul_nsig_obs: NDArray
    ul_nsig_exp: NDArray
    ul_xsec_obs: NDArray | None = None
    ul_xsec_exp: NDArray | None = None

    @classmethod
    def empty(cls, k: int, bkg_order: int, *, with_xsec: bool, reason: Sequence[str] | None = None) -> ChunkResult:
        """k hypotheses not fitted: zeros, not converged, background non-negative, ``reason`` (default empty)."""
        n_exp = len(N_SIGMA)
        return cls(
            nsig=np.zeros(k),
            nsig_err=np.zeros(k),
            nbkg=np.zeros(k),
            nll=np.zeros(k),
            z_local=np.zeros(k),
            beta=np.zeros((k, bkg_order + 1)),
            bkg_nonnegative=np.ones(k, bool),
            converged=np.zeros(k, bool),
            reason=tuple(reason) if reason is not None else ("",) * k,
            ul_nsig_obs=np.zeros(k),
            ul_nsig_exp=np.zeros((k, n_exp)),
            ul_xsec_obs=np.zeros(k) if with_xsec else None,
            ul_xsec_exp=np.zeros((k, n_exp)) if with_xsec else None,
        )

    def __len__(self) -> int:
        return len(self.nsig)

    def with_rows(self, rows: ArrayLike, other: ChunkResult) -> ChunkResult:
        """This result with the hypotheses at positions ``rows`` replaced by those of ``other`` (in order)."""
        rows = np.asarray(rows, dtype=np.int64)
        new: dict[str, object] = {}
        for name in ("nsig", "nsig_err", "nbkg", "nll", "z_local", "beta", "bkg_nonnegative", "converged", "ul_nsig_obs", "ul_nsig_exp", "ul_xsec_obs", "ul_xsec_exp"):
            mine = getattr(self, name)
            if mine is None:
                continue
            a = mine.copy()
            a[rows] = getattr(other, name)
            new[name] = a
        reason = list(self.reason)
        for jj, j in enumerate(rows):
            reason[j] = other.reason[jj]
        return replace(self, reason=tuple(reason), **new)


def evaluate_chunk(request: HypothesisRequest, *, guarded: bool = False, checked: bool = False) -> ChunkResult:
    """Fit and set limits for the hypotheses of ``request`` as one batch.

    Parameters
    ----------
    request : HypothesisRequest
        The hypotheses (all with enough events to be fitted).
    guarded : bool
        Fit with the density held positive over each window from the start.
    checked : bool
        The plain fit is known to have a minimum with a non-negative
        background (skip that check; the retry of failed limits still applies).

    Returns
    -------
    ChunkResult
    """
    req = request
    index_range = (req.start, req.stop)
    if guarded:
        design = build_guarded_design(req.sorted_mgg, req.shapes, req.lo, req.hi, req.bkg_order, index_range=index_range)
    else:
        design = build_design(req.sorted_mgg, req.shapes, req.lo, req.hi, req.bkg_order, index_range=index_range)
    batch = Batch(design, req.shapes, req.bkg_order, bkg_fixed=req.bkg_fixed)
    bf = batch.fit()
    if not guarded and not checked and req.bkg_fixed is None:
        # a fit without a minimum (signal running away in a sparse window) or a background-only
        # density that goes negative in the window (its Asimov set would not be a valid data set):
        # redo those hypotheses with the density held positive, before any limit is computed
        order = req.bkg_order
        redo = ~bf.converged | ~background_nonnegative(bf.zero.theta[:, 1:], order) | ~background_nonnegative(bf.hat.theta[:, 1:], order)
        if np.any(redo):
            return _split_plain_and_guarded(req, redo)
    result = _results_of(req, design, batch, bf)
    if guarded or req.bkg_fixed is not None or np.all(result.converged):
        return result
    return _retry_guarded(req, result)


def _split_plain_and_guarded(req: HypothesisRequest, redo: NDArray) -> ChunkResult:
    """The hypotheses ``~redo`` on the plain design, those in ``redo`` with the density held positive."""
    result = ChunkResult.empty(req.k, req.bkg_order, with_xsec=req.scale is not None)
    if np.any(~redo):
        result = result.with_rows(np.flatnonzero(~redo), evaluate_chunk(req.take(~redo), checked=True))
    result = result.with_rows(np.flatnonzero(redo), evaluate_chunk(req.take(redo), guarded=True))
    n_events = req.n_events
    for j in np.flatnonzero(redo):
        logger.info("m = %.6g GeV (%d events): fitted with the density held positive over the window%s", req.shapes.mu[j],
                    n_events[j], "" if result.converged[j] else f" and still flagged: {result.reason[j]}")
    return result


def _retry_guarded(req: HypothesisRequest, result: ChunkResult) -> ChunkResult:
    """A limit that failed on the plain design: retry those hypotheses with the density held positive."""
    failed = np.flatnonzero(~result.converged)
    retried = evaluate_chunk(req.take(failed), guarded=True)
    reason = list(retried.reason)
    n_events = req.n_events
    for jj, j in enumerate(failed):
        if retried.converged[jj]:
            logger.info("m = %.6g GeV: converged with the density held positive over the window (%d events; before: %s)",
                        req.shapes.mu[j], n_events[j], result.reason[j])
        else:
            reason[jj] = f"{result.reason[j]}; with the density held positive: {retried.reason[jj]}"
    return result.with_rows(failed, replace(retried, reason=tuple(reason)))


def _results_of(req: HypothesisRequest, design: Design, batch: Batch, bf: BatchFit) -> ChunkResult:
    """The fit numbers of a fitted batch, and the limits the request asks for."""
    k, order, cl = req.k, req.bkg_order, req.cl
    beta = bf.hat.theta[:, 1:]
    nbkg = np.einsum("kp,kp->k", design.integ[:, 1:], beta)
    conv = bf.converged.copy()
    err = np.where(np.isfinite(bf.mu_err), bf.mu_err, 0.0)
    reason = [""] * k
    for j in np.flatnonzero(~conv):
        if not bf.hat.converged[j]:
            reason[j] = "signal + background fit did not converge (Newton, after retry)"
        elif not bf.zero.converged[j]:
            reason[j] = "background-only fit did not converge (Newton)"
        else:
            reason[j] = "Hessian not positive definite at the minimum"
    empty = ChunkResult.empty(k, order, with_xsec=req.scale is not None)
    ul_obs, ul_exp = empty.ul_nsig_obs, empty.ul_nsig_exp
    xs_obs, xs_exp = empty.ul_xsec_obs, empty.ul_xsec_exp
    if req.limits:
        obs, ok = batch.observed_limit(cl=cl)
        ul_obs = np.nan_to_num(obs)
        _flag(reason, ok, "observed limit root finding did not converge")
        conv &= ok
    if req.expected:
        exp, ok = batch.expected_limits(cl=cl)
        ul_exp = np.nan_to_num(exp)
        _flag(reason, ok, "expected limit did not converge")
        conv &= ok
    if req.scale is not None:
        sc = req.scale
        if req.syst is None:
            xs_obs = ul_obs / sc
            xs_exp = ul_exp / sc[:, None]
        else:
            if req.limits:
                obs, ok = batch.observed_limit(cl=cl, scale=sc, syst=req.syst)
                xs_obs = np.nan_to_num(obs)
                _flag(reason, ok, "observed cross-section limit did not converge")
                conv &= ok
            if req.expected:
                exp, ok = batch.expected_limits(cl=cl, scale=sc, syst=req.syst)
                xs_exp = np.nan_to_num(exp)
                _flag(reason, ok, "expected cross-section limit did not converge")
                conv &= ok
    return ChunkResult(
        nsig=np.nan_to_num(bf.mu_hat),
        nsig_err=err,
        nbkg=np.nan_to_num(nbkg),
        nll=np.nan_to_num(bf.nll_hat),
        z_local=np.nan_to_num(bf.z_local),
        beta=np.array(beta),
        bkg_nonnegative=background_nonnegative(beta, order),
        converged=conv,
        reason=tuple(reason),
        ul_nsig_obs=ul_obs,
        ul_nsig_exp=ul_exp,
        ul_xsec_obs=xs_obs,
        ul_xsec_exp=xs_exp,
    )


def _flag(reason: list[str], ok: NDArray, msg: str) -> None:
    """Give the hypotheses with ``ok`` False the reason ``msg`` unless they already have one."""
    for j in np.flatnonzero(~np.asarray(ok, bool)):
        if not reason[j]:
            reason[j] = msg

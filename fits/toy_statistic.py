"""The test statistic ``q~_mu`` of many data sets at once (toys and data alike), from batched Newton fits.

Every data set is a row of one ``fits.design.Design``: compact rows (per-event
signal density and scaled mass) run on the compiled kernels, rows with the
positivity guard of sparse windows (``fits.design.build_guarded_design``) on
the numpy path of ``fits.newton.minimise``. Toys of many hypotheses and POI
values are rows of the same batch.

``q~_mu`` (arXiv:1007.1727, eq. 16) needs the minimum NLL at ``mu``, and at
``max(mu_hat, 0)``. The profiled NLL is convex in ``mu``, so the sign of its
derivative, the gradient component ``dNLL/dmu`` at a conditional minimum (the
background gradient vanishes there), says on which side ``mu_hat`` lies:

- at ``mu``: a negative derivative means ``mu_hat > mu`` and ``q~ = 0``
  (no further fit);
- at 0: a positive derivative means ``mu_hat < 0`` and the reference is the
  background-only fit; only otherwise is the unconditional fit run (from the
  background-only solution), and its minimum exists (the NLL grows without
  bound as ``mu -> +inf``). A signal yield running away to minus infinity in
  a sparse toy therefore never needs a fit.

With a yield constraint the conditional fits profile the nuisance
(``mode="syst"``); the unconditional and background-only minima do not
depend on it (its constraint is minimised at the global observable), so the
base fits are the same.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from .densities import background_nonnegative
from .design import Design
from .newton import NewtonResult, minimise

logger = logging.getLogger(__name__)

__all__ = ["BaseFits", "Conditional", "base_fits", "conditional_fits", "q_from", "q_tilde_fits"]

#: Newton iterations of a toy fit (warm starts converge in a handful; the line searches of
#: the guarded numpy path may need more)
MAX_ITER = 60
MAX_ITER_GUARDED = 200


def _max_iter(design: Design) -> int:
    return MAX_ITER if design.compact else MAX_ITER_GUARDED


def _bkg_ok(beta: NDArray, design: Design) -> NDArray:
    """Backgrounds non-negative over the window; always true with the positivity guard (which holds the density positive instead)."""
    if not design.compact:
        return np.ones(len(beta), bool)
    return background_nonnegative(beta, design.order)


@dataclass(frozen=True)
class BaseFits:
    """Background-only and (where needed) unconditional fits of k data sets (arrays over rows).

    ``theta_zero``, ``hess_zero``: the background-only solution and its
    Hessian in (mu, beta) (warm starts of the conditional fits); ``grad_zero``
    ``dNLL/dmu`` there; ``mu_hat`` the unconditional signal yield where it was
    fitted (``-inf`` where only its sign is known: negative); ``nll_ref`` the
    reference NLL of ``q~`` (unconditional minimum if ``mu_hat >= 0``, else
    background-only); ``converged`` all fits of the row converged and, without
    the positivity guard, their backgrounds are non-negative over the window
    (a fit whose background dips below zero between the events may have no
    minimum at all, the likelihood only sees the events; such data sets are
    fitted again with the guard, as ``fits.chunks`` does for the data).
    """

    nll_zero: NDArray
    theta_zero: NDArray
    hess_zero: NDArray
    grad_zero: NDArray
    mu_hat: NDArray
    nll_ref: NDArray
    converged: NDArray

    def take(self, idx: NDArray) -> BaseFits:
        """The rows ``idx``."""
        return BaseFits(*(getattr(self, f)[idx] for f in self.__dataclass_fields__))

    @staticmethod
    def concatenate(parts: list[BaseFits]) -> BaseFits:
        """Rows of several results one after the other."""
        return BaseFits(*(np.concatenate([getattr(p, f) for p in parts]) for f in BaseFits.__dataclass_fields__))


def base_fits(design: Design, beta_start: NDArray, *, rows: NDArray | None = None, free_all: bool = False, near: Conditional | None = None) -> BaseFits:
    """Background-only fits from ``beta_start`` (k, order + 1) and the unconditional fits the sign rule asks for.

    ``rows``: the design's rows to fit (k entries; all rows by default).
    ``free_all``: fit every row unconditionally (``mu_hat`` of every row,
    e.g. to compare its spread with the Asimov error). ``near``: conditional
    fits of the same rows at a positive yield; the background-only fits then
    start from their first-order prediction at 0, and the unconditional fits
    from the root of ``dNLL/dmu`` interpolated between the two (otherwise from
    one Newton step off the background-only solution).
    """
    rmap = np.arange(design.k) if rows is None else np.asarray(rows, dtype=np.int64)
    k, P = len(rmap), design.n_par
    th = np.zeros((k, P))
    th[:, 1:] = beta_start
    alt = None
    if near is not None:
        alt = th
        th = _predicted(near.theta_lin, near.hess, np.zeros(k))
    zero = minimise(design, th, mode="fixed", max_iter=_max_iter(design), theta_alt=alt, rows=rmap)
    g0 = zero.grad_lin[:, 0]
    mu_hat = np.full(k, -np.inf)
    nll_ref = zero.nll.copy()
    conv = zero.converged & _bkg_ok(zero.theta[:, 1:], design)
    sel = np.flatnonzero((g0 <= 0) | free_all) if k else np.zeros(0, int)
    if len(sel):
        rows = sel
        t0, h0, gr = zero.theta[rows], zero.hess_lin[rows], g0[rows]
        with np.errstate(divide="ignore", invalid="ignore"):
            guess = -gr / _profile_curvature(h0)
            if near is not None:
                mu_n, g_n = near.mu[rows], near.grad_mu[rows]
                secant = mu_n * gr / (gr - g_n)
                guess = np.where((gr <= 0) & (g_n > gr) & np.isfinite(secant), secant, guess)
        guess = np.where(np.isfinite(guess), guess, 0.0)
        hat = minimise(design, _predicted(t0, h0, guess), mode="free", max_iter=_max_iter(design), theta_alt=t0, rows=rmap[rows])
        mu_hat[rows] = hat.mu
        # the reference is the background-only fit where mu_hat < 0; the unconditional
        # minimum cannot lie above the background-only one (rounding)
        nll_ref[rows] = np.where(hat.mu < 0, zero.nll[rows], np.minimum(hat.nll, zero.nll[rows]))
        conv[rows] &= hat.converged & _bkg_ok(hat.theta[:, 1:], design)
    return BaseFits(nll_zero=zero.nll, theta_zero=zero.theta, hess_zero=zero.hess_lin, grad_zero=g0, mu_hat=mu_hat, nll_ref=nll_ref, converged=conv)


def _profile_curvature(hess: NDArray) -> NDArray:
    """``d2 NLL / dmu2`` with the background profiled, ``H_mm - H_mb H_bb^-1 H_bm`` (k,), from Hessians in (mu, beta)."""
    Hbb = hess[:, 1:, 1:]
    Hbm = hess[:, 1:, 0][:, :, None]
    try:
        y = np.linalg.solve(Hbb, Hbm)[:, :, 0]
    except np.linalg.LinAlgError:
        y = np.full(Hbm.shape[:2], np.nan)
        for j in range(len(y)):  # per row, only for a batch with a singular Hessian
            try:
                y[j] = np.linalg.solve(Hbb[j], Hbm[j])[:, 0]
            except np.linalg.LinAlgError:
                pass
    return hess[:, 0, 0] - (hess[:, 0, 1:] * y).sum(axis=1)


@dataclass(frozen=True)
class Conditional:
    """Conditional fits at a signal model (arrays over rows).

    ``mu``: the fitted signal yield (events; with a yield constraint
    ``c exp(a u)`` or ``c (1 + a u)`` at the fitted nuisance), ``u`` the
    nuisance (0 without one), ``beta`` the background (events/GeV), ``nll``
    the minimum (constraint included), ``grad_mu`` ``dNLL/dmu`` and ``hess``
    the Hessian in (mu, beta) there; ``converged`` as in ``BaseFits``.
    """

    mu: NDArray
    u: NDArray
    beta: NDArray
    nll: NDArray
    grad_mu: NDArray
    hess: NDArray
    converged: NDArray

    @property
    def theta_lin(self) -> NDArray:
        """``(mu, beta)`` (k, P)."""
        return np.column_stack([self.mu, self.beta])

    def take(self, idx: NDArray) -> Conditional:
        """The rows ``idx``."""
        return Conditional(*(getattr(self, f)[idx] for f in self.__dataclass_fields__))


def _conditional_of(res: NewtonResult, syst: bool, design: Design) -> Conditional:
    u = res.theta[:, 0].copy() if syst else np.zeros(len(res.nll))
    beta = res.theta[:, 1:].copy()
    return Conditional(mu=res.mu.copy(), u=u, beta=beta, nll=res.nll, grad_mu=res.grad_lin[:, 0].copy(), hess=res.hess_lin,
                       converged=res.converged & _bkg_ok(beta, design))


def conditional_fits(design: Design, c: NDArray, start_beta: NDArray, *, rows: NDArray | None = None, syst_a: NDArray | None = None,
                     syst_kind: str = "lognormal", predict_from: tuple[NDArray, NDArray] | None = None) -> Conditional:
    """Fits with the signal yield fixed at ``c`` (k,) events, or ``c kappa^u`` with a profiled nuisance.

    ``syst_a`` (k,): the nuisance coefficients (``fits.nuisances.Syst.a``;
    none: no nuisance). ``start_beta`` (k, order + 1): background start;
    ``predict_from = (theta, hess_lin)``: a solution elsewhere whose
    first-order prediction at ``c`` is the start instead (as ``fits.newton.predict_conditional``),
    with ``start_beta`` as the fallback where that start is not feasible.
    ``rows``: the design's rows to fit (one per entry of ``c``; all rows by default).
    """
    k, P = len(c), design.n_par
    th = np.zeros((k, P))
    th[:, 1:] = start_beta
    if syst_a is not None:
        res = minimise(design, th, mode="syst", syst_c=c, syst_a=syst_a, syst_kind=syst_kind, max_iter=_max_iter(design), rows=rows)
        return _conditional_of(res, True, design)
    th[:, 0] = c
    alt = None
    if predict_from is not None:
        alt = th
        th = _predicted(predict_from[0], predict_from[1], c)
    res = minimise(design, th, mode="fixed", max_iter=_max_iter(design), theta_alt=alt, rows=rows)
    return _conditional_of(res, False, design)


def _predicted(theta: NDArray, hess_lin: NDArray, c: NDArray) -> NDArray:
    """The first-order prediction of ``fits.newton.predict_conditional``, solved row by row where needed.

    A batched solve fails as a whole on one singular matrix; rows must not
    depend on which others share their batch, so such a batch is solved row by
    row (a row whose own Hessian is singular keeps its background).
    """
    Hbb = hess_lin[:, 1:, 1:]
    Hbm = hess_lin[:, 1:, 0][:, :, None]
    try:
        db = np.linalg.solve(Hbb, Hbm)[:, :, 0]
    except np.linalg.LinAlgError:
        db = np.zeros(Hbm.shape[:2])
        for j in range(len(db)):  # per row (not per event), only for a batch with a singular Hessian
            try:
                db[j] = np.linalg.solve(Hbb[j], Hbm[j])[:, 0]
            except np.linalg.LinAlgError:
                pass
    db = np.where(np.isfinite(db), db, 0.0)
    out = theta.copy()
    out[:, 1:] = theta[:, 1:] - db * (c - theta[:, 0])[:, None]
    out[:, 0] = c
    return out


def q_from(cond: Conditional, nll_ref: NDArray) -> NDArray:
    """``q~`` from the conditional fits and the reference NLL: 0 where ``dNLL/dmu < 0`` at the tested yield (``mu_hat`` above it)."""
    return np.where(cond.grad_mu < 0, 0.0, np.maximum(2.0 * (cond.nll - nll_ref), 0.0))


def q_tilde_fits(design: Design, c: NDArray, start_beta: NDArray, *, rows: NDArray | None = None, syst_a: NDArray | None = None,
                 syst_kind: str = "lognormal") -> tuple[NDArray, NDArray, Conditional]:
    """``q~`` of data sets at the signal yields ``c`` (k,) from scratch, whether all their fits converged, and the conditional fits.

    The conditional fit first (from ``start_beta``), then the base fits only
    where ``dNLL/dmu >= 0`` there (``mu_hat`` below the tested yield), started
    from it. ``rows``, ``syst_a``, ``syst_kind`` as in ``conditional_fits``.
    """
    cond = conditional_fits(design, c, start_beta, rows=rows, syst_a=syst_a, syst_kind=syst_kind)
    need = np.flatnonzero(cond.grad_mu >= 0)
    ref = np.full(len(c), np.inf)
    conv = cond.converged.copy()
    if len(need):
        rmap = np.arange(design.k) if rows is None else np.asarray(rows, dtype=np.int64)
        bf = base_fits(design, start_beta[need], rows=rmap[need], near=cond.take(need))
        ref[need] = bf.nll_ref
        conv[need] &= bf.converged
    return q_from(cond, ref), conv, cond

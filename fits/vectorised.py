"""Vectorised engine: fits, profile likelihood and asymptotic CLs limits for a batch of hypotheses.

One ``Batch`` holds the design matrices of k hypotheses (events padded into a
(k, n_max) array) and the Asimov design (Gauss-Legendre nodes per window).
Everything below is array arithmetic over the batch:

- unconditional fit (``mu`` free, may be negative: the density only has to
  stay positive at the events) and the conditional fit at ``mu = 0``;
- the Asimov data set of the background-only hypothesis is the *analytic*
  expectation: ``NLL_A(theta) = int lambda_theta - int lambda_0 log lambda_theta``
  evaluated by composite Gauss-Legendre quadrature per window (equivalently,
  weighted Asimov events at the quadrature nodes), with ``lambda_0`` the
  background from the conditional ``mu = 0`` fit to the data (clipped at 0 if
  that polynomial dips below zero somewhere in the window);
- observed limit: bracketed root finding (Illinois false position on the
  probit of CLs) of ``CLs(mu) = 1 - cl``, all hypotheses stepping together;
  each step is one conditional fit to the data and one to the Asimov set; the
  bracket expands until CLs crosses, so a limit is never missing;
- expected band: ``sqrt(q_A(mu)) = Phi^-1(1 - alpha Phi(N)) + N`` solved by
  secant iteration on the Asimov set (exact q_A(mu), no constant-sigma
  approximation), i.e. the closed form ``mu_N = sigma (...)`` with ``sigma``
  evaluated at the limit itself.

Yield systematics enter as a constrained nuisance ``u`` in the conditional
fits (``mu = poi * scale * kappa^u``, see ``fits.newton``); the unconditional
fit does not depend on them (``u_hat = 0``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import NDArray
from scipy.special import ndtri

from signal_models._common.defaults import DEFAULT_CL

from .asymptotic import N_SIGMA, cls_asymptotic, expected_band_targets, q_tilde, z_from_q0
from .densities import ShapeArrays
from .design import Design, build_asimov_design
from .limit_search import expected_limit_search, observed_limit_search, observed_start
from .newton import NewtonResult, linear_lambda, minimise, predict_conditional, start_values
from .nuisances import Syst

logger = logging.getLogger(__name__)

# ``Syst`` (``fits.nuisances``) is re-exported: batches take it for their yield systematics
__all__ = ["Batch", "BatchFit", "Syst", "initial_theta"]


def initial_theta(design: Design) -> NDArray:
    """Start values: no signal, background from the event moments."""
    return start_values(design)


def _cov00(H: NDArray) -> NDArray:
    """Variance of the first parameter from a batch of Hessians (NaN where singular)."""
    out = np.full(H.shape[0], np.nan)
    try:
        inv = np.linalg.inv(H)
        out = inv[:, 0, 0]
    except np.linalg.LinAlgError:
        for j in range(H.shape[0]):
            try:
                out[j] = np.linalg.inv(H[j])[0, 0]
            except np.linalg.LinAlgError:
                pass
    return out


@dataclass(frozen=True)
class BatchFit:
    """Unconditional and background-only fits of a batch (arrays over hypotheses).

    ``mu_hat`` and ``mu_err`` in signal events; ``nll_hat``, ``nll_zero`` the
    minimum NLL with the yield free and at 0; ``z_local`` the signed
    ``sqrt(q0)``; ``converged`` both fits converged with a finite error.
    """

    hat: NewtonResult
    zero: NewtonResult
    mu_hat: NDArray
    mu_err: NDArray
    nll_hat: NDArray
    nll_zero: NDArray
    z_local: NDArray
    converged: NDArray


class Batch:
    """Fits and limits for a batch of hypotheses sharing one parameter layout."""

    def __init__(self, design: Design, shapes: ShapeArrays, order: int, *, n_gl: int = 12, bkg_fixed: NDArray | None = None) -> None:
        self.design = design
        self.bkg_fixed = None if bkg_fixed is None else np.asarray(bkg_fixed, float).reshape(design.k, order + 1)
        self.shapes = shapes
        self.order = order
        self.n_gl = n_gl
        self.fit_: BatchFit | None = None
        self._asimov: Design | None = None
        self._asimov_nll0: NDArray | None = None

    # -- fits --------------------------------------------------------------
    def fit(self, *, max_iter: int = 200) -> BatchFit:
        d = self.design
        fb = self.bkg_fixed is not None
        th_init = initial_theta(d)
        if fb:
            th_init[:, 1:] = self.bkg_fixed
        hat = minimise(d, th_init, mode="free", max_iter=max_iter, fix_bkg=fb)
        bad = ~hat.converged
        if np.any(bad) and not fb:  # retry from a different start with more iterations
            idx = np.flatnonzero(bad)
            sub = d.take(idx)
            th = np.zeros((sub.k, sub.n_par))
            th[:, 1] = 2.0 * np.maximum(sub.w.sum(axis=1), 1.0) / (sub.hi - sub.lo)
            retry = minimise(sub, th, mode="free", max_iter=4 * max_iter)
            better = retry.converged | (retry.nll < hat.nll[idx])
            hat = _merged(hat, retry, idx, better)
        th0 = hat.theta.copy()
        th0[:, 0] = 0.0
        alt = None
        if not fb:
            alt = th0.copy()
            # a large signal makes the unconditional background a poor start: use the event moments
            big = np.abs(hat.mu) > 0.2 * np.maximum(d.n_events, 1)
            if np.any(big):
                alt[big] = start_values(d.take(np.flatnonzero(big)))
            th0 = predict_conditional(hat.theta, hat.hess_lin, np.zeros(d.k))
        zero = minimise(d, th0, mode="fixed", max_iter=max_iter, fix_bkg=fb, theta_alt=alt)
        mu_hat = hat.mu
        var = _cov00(hat.hess)
        mu_err = np.sqrt(np.where(var > 0, var, np.nan))
        nll_zero = zero.nll
        # the unconditional minimum cannot be above the conditional one (rounding)
        hat = replace(hat, nll=np.minimum(hat.nll, nll_zero))
        z = z_from_q0(nll_zero, hat.nll, mu_hat)
        conv = hat.converged & zero.converged & np.isfinite(mu_err) & np.isfinite(hat.nll)
        self.fit_ = BatchFit(hat, zero, mu_hat, mu_err, hat.nll, nll_zero, z, conv)
        return self.fit_

    def conditional(self, poi: NDArray, *, scale: NDArray | None = None, syst: Syst | None = None, start: NDArray | None = None, asimov: bool = False,
                    start_hess: NDArray | None = None) -> NewtonResult:
        """Conditional fits at POI values ``poi`` (k,) (``mu = poi * scale``).

        ``start``: previous solution (its ``[:, 0]`` the signal yield there);
        with ``start_hess`` (its Hessian in (mu, beta)) the background start
        is extrapolated to the new yield (``predict_conditional``).
        """
        d = self.asimov_design() if asimov else self.design
        bf = self.fit_
        assert bf is not None
        scale = np.ones(d.k) if scale is None else scale
        if start is None:
            start = (self._asimov_theta0() if asimov else bf.hat.theta).copy()
        th = start.copy()
        c = poi * scale
        fb = self.bkg_fixed is not None
        if syst is None or np.all(syst.rel_unc <= 0):
            alt = None
            if start_hess is not None and not fb:
                alt = th.copy()
                alt[:, 0] = c
                th = predict_conditional(th, start_hess, c)
            else:
                th[:, 0] = c
            return minimise(d, th, mode="fixed", fix_bkg=fb, theta_alt=alt)
        th[:, 0] = 0.0
        return minimise(d, th, mode="syst", syst_c=c, syst_a=syst.a, syst_kind=syst.kind, fix_bkg=fb)

    # -- Asimov ------------------------------------------------------------
    def _asimov_theta0(self) -> NDArray:
        assert self.fit_ is not None
        th = self.fit_.zero.theta.copy()
        th[:, 0] = 0.0
        return th

    def asimov_design(self) -> Design:
        """Quadrature design of the background-only Asimov set (weights = w_q * lambda_0(x))."""
        if self._asimov is None:
            base, _ = build_asimov_design(self.shapes, self.design.lo, self.design.hi, self.order, n_gl=self.n_gl)
            th0 = self._asimov_theta0()
            lam0 = np.maximum(linear_lambda(base.F, th0), 0.0)
            w = base.w * lam0
            self._asimov = base.with_weights(w)
            lam = np.maximum(lam0, 1e-300)
            self._asimov_nll0 = np.einsum("kp,kp->k", base.integ, th0) - np.einsum("kn,kn->k", w, np.log(lam))
        return self._asimov

    @property
    def asimov_nll0(self) -> NDArray:
        """NLL (k,) of the Asimov set at its own (background-only) parameters."""
        self.asimov_design()
        assert self._asimov_nll0 is not None
        return self._asimov_nll0

    def q_asimov(self, poi: NDArray, *, scale: NDArray | None = None, syst: Syst | None = None, start: NDArray | None = None) -> tuple[NDArray, NewtonResult]:
        """``q_mu`` of the Asimov set at POI values ``poi`` (k,) and the conditional fits there."""
        a = self.conditional(poi, scale=scale, syst=syst, start=start, asimov=True)
        return np.maximum(2.0 * (a.nll - self._asimov_nll0), 0.0), a

    def asimov_sigma(self, *, scale: NDArray | None = None) -> NDArray:
        """Asimov standard deviation of the POI from the Hessian at the true parameters."""
        d = self.asimov_design()
        th0 = self._asimov_theta0()
        lam = np.maximum(linear_lambda(d.F, th0), 1e-300)
        G = d.F * (np.sqrt(d.w) / lam)[:, None, :]
        H = np.matmul(G, np.swapaxes(G, 1, 2))
        s = np.sqrt(np.abs(_cov00(H)))
        if scale is not None:
            s = s / scale
        return np.where(np.isfinite(s) & (s > 0), s, 1.0)

    # -- limits ------------------------------------------------------------
    def cls(self, poi: NDArray, *, scale: NDArray | None = None, syst: Syst | None = None, start: NDArray | None = None, start_a: NDArray | None = None,
            start_hess: NDArray | None = None) -> tuple[NDArray, NewtonResult, NewtonResult]:
        """Asymptotic CLs at POI values ``poi`` (k,)."""
        bf = self.fit_
        assert bf is not None
        sc = np.ones(self.design.k) if scale is None else scale
        c = self.conditional(poi, scale=sc, syst=syst, start=start, start_hess=start_hess)
        q = q_tilde(c.nll, bf.nll_hat, bf.nll_zero, poi * sc, bf.mu_hat)
        qa, a = self.q_asimov(poi, scale=sc, syst=syst, start=start_a)
        cls, _, _ = cls_asymptotic(q, qa)
        return cls, c, a

    def expected_limits(self, *, cl: float = DEFAULT_CL, scale: NDArray | None = None, syst: Syst | None = None, n_sigma: NDArray = N_SIGMA, max_iter: int = 30,
                        rtol: float = 1e-5) -> tuple[NDArray, NDArray]:
        """Expected limits (k, len(n_sigma)) in POI units and a convergence flag (k,) (``fits.limit_search``)."""
        alpha = 1.0 - cl
        k = self.design.k
        targets = expected_band_targets(alpha, n_sigma=n_sigma)  # (m,)
        m = len(targets)
        sigma = self.asimov_sigma(scale=scale)
        sc = np.ones(k) if scale is None else scale
        # stack the m band positions as m copies of the batch
        rep = _RepeatedBatch(self, m)
        tgt = np.repeat(targets[None, :], k, axis=0).T.reshape(-1)  # (m*k,)
        scl = np.tile(sc, m)
        sy = None if syst is None else syst.tile(m)
        state = {"start": np.tile(self._asimov_theta0(), (m, 1))}

        def qa_of(x: NDArray) -> NDArray:
            qa, res = rep.q_asimov(x, scale=scl, syst=sy, start=state["start"])
            state["start"] = res.theta.copy() if sy is None else _with_mu0(res.theta, state["start"])
            return qa

        x, done = expected_limit_search(qa_of, tgt * np.tile(sigma, m), tgt, max_iter=max_iter, rtol=rtol)
        lim = x.reshape(m, k).T
        ok = done.reshape(m, k).all(axis=0)
        return lim, ok

    def observed_limit(self, *, cl: float = DEFAULT_CL, scale: NDArray | None = None, syst: Syst | None = None, max_iter: int = 60, htol: float = 2e-4, rtol: float = 1e-6) -> tuple[NDArray, NDArray]:
        """Observed CLs limits (k,) in POI units and a convergence flag (k,) (``fits.limit_search``)."""
        bf = self.fit_
        assert bf is not None
        alpha = 1.0 - cl
        k = self.design.k
        sc = np.ones(k) if scale is None else scale
        target = ndtri(alpha)
        mu_hat = bf.mu_hat / sc
        sig = np.where(np.isfinite(bf.mu_err), bf.mu_err, self.asimov_sigma() * 1.0) / sc
        x0, sg = observed_start(mu_hat, sig, alpha)
        start = bf.hat.theta.copy()
        if syst is not None:
            start[:, 0] = 0.0
        state = {"start": start, "start_a": self._asimov_theta0(), "start_h": None if syst is not None else bf.hat.hess_lin.copy()}

        def h_of(xx: NDArray, act: NDArray) -> NDArray:
            cls, c, a = self.cls(xx, scale=sc, syst=syst, start=state["start"], start_a=state["start_a"], start_hess=state["start_h"])
            h = ndtri(np.clip(cls, 1e-300, 1.0 - 1e-16)) - target
            if syst is not None:
                st_new, sta_new, sth_new = _with_mu0(c.theta, state["start"]), _with_mu0(a.theta, state["start_a"]), None
            else:
                st_new, sta_new, sth_new = c.theta, a.theta, c.hess_lin
            state["start"] = np.where(act[:, None], st_new, state["start"])
            state["start_a"] = np.where(act[:, None], sta_new, state["start_a"])
            if state["start_h"] is not None:
                state["start_h"] = np.where(act[:, None, None], sth_new, state["start_h"])
            return h

        return observed_limit_search(h_of, x0, sg, max_iter=max_iter, htol=htol, rtol=rtol)


def _with_mu0(theta: NDArray, like: NDArray) -> NDArray:
    """Conditional solution as a start for the next conditional fit (nuisance reset to 0)."""
    out = theta.copy()
    out[:, 0] = 0.0
    return out


class _RepeatedBatch:
    """m stacked copies of a batch's Asimov set (expected band positions in one solve)."""

    def __init__(self, batch: Batch, m: int) -> None:
        self.design = batch.asimov_design().tile(m)
        self.nll0 = np.tile(batch.asimov_nll0, m)
        self.fix_bkg = batch.bkg_fixed is not None

    def q_asimov(self, poi: NDArray, *, scale: NDArray, syst: Syst | None, start: NDArray) -> tuple[NDArray, NewtonResult]:
        th = start.copy()
        c = poi * scale
        if syst is None or np.all(syst.rel_unc <= 0):
            th[:, 0] = c
            r = minimise(self.design, th, mode="fixed", fix_bkg=self.fix_bkg)
        else:
            th[:, 0] = 0.0
            r = minimise(self.design, th, mode="syst", syst_c=c, syst_a=syst.a, syst_kind=syst.kind, fix_bkg=self.fix_bkg)
        return np.maximum(2.0 * (r.nll - self.nll0), 0.0), r


def _merged(dst: NewtonResult, src: NewtonResult, idx: NDArray, take: NDArray) -> NewtonResult:
    """``dst`` with rows ``idx[take]`` replaced by the rows ``take`` of ``src`` (a fit of ``idx``)."""
    j = idx[take]
    rows = {}
    for name in ("theta", "mu", "nll", "hess", "grad_lin", "hess_lin", "converged"):
        a = getattr(dst, name).copy()
        a[j] = getattr(src, name)[take]
        rows[name] = a
    return replace(dst, **rows)

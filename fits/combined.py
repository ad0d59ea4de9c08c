"""Combined fits: channels sharing one parameter of interest, with yield, spurious-signal and shape nuisances.

The likelihood of hypothesis h is the product over its channels c of the
extended unbinned likelihoods with densities

    lambda_c(x) = N_c s_c(x; nu) + sum_m beta_cm T_m(x'_c),
    N_c = mu * scale_c * prod_k kappa_kc(u_k) + sum_a size_ac theta_a,

(see ``fits.channels``) times standard-normal constraints on ``u``, ``theta``
and ``nu``. Its parameters are the shared ones ``(mu, u, theta, nu)`` and each
channel's background coefficients ``beta_c``. The Newton step solves the
block-arrow system of the Hessian by a Schur complement: each channel's
background block is eliminated (small dense solves, all hypotheses and
channels at once), the shared system is solved, and the backgrounds are back
substituted. The per-event sums of every channel come from the compiled
``fits._kernels.morph_pass`` (exact gradient and Hessian, including the
curvature of the shape interpolation); the shared block is made positive
definite by clipping its eigenvalues when the nuisances make the problem
locally non-convex, and every step is accepted by an Armijo line search on
the NLL (a step that makes a density non-positive at an event is refused).

The Asimov data set for the expected limits is the expectation of the
background-only fit (mu = 0, nuisances at their fitted values) at
Gauss-Legendre nodes of each window; its constraints are centred at those
fitted values, so that the Asimov minimum is exactly the generating point.

Written by hand for the same reason as ``fits.newton``: thousands of small
coupled fits at numpy speed; the zfit reference engine
(``fits.zfit_combined``) builds the identical model.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from .combined_rows import CombinedRequest, Rows, asimov_rows, data_rows
from .newton import background_from_moments

logger = logging.getLogger(__name__)

__all__ = ["CombinedState", "CombinedFit", "CombinedBatch"]

#: Newton convergence: the decrement -g.d below this (NLL units)
TOL = 1e-8


@dataclass(frozen=True, eq=False)
class CombinedState:
    """Parameters of k hypotheses: shared (k, S) = (mu, u, theta, nu) and backgrounds (k, C, P)."""

    shared: NDArray
    beta: NDArray

    def take(self, idx: NDArray) -> CombinedState:
        return CombinedState(self.shared[idx], self.beta[idx])

    def tile(self, m: int) -> CombinedState:
        return CombinedState(np.tile(self.shared, (m, 1)), np.tile(self.beta, (m, 1, 1)))

    def with_mu(self, mu: NDArray) -> CombinedState:
        s = self.shared.copy()
        s[:, 0] = mu
        return CombinedState(s, self.beta)


@dataclass(frozen=True, eq=False)
class _Eval:
    """NLL, gradient and Hessian blocks of k hypotheses at one state."""

    nll: NDArray  # (k,)
    bad: NDArray  # (k,) bool: a density <= 0 at an event, or a Gaussian yield factor <= 0
    gs: NDArray  # (k, S)
    Hs: NDArray  # (k, S, S)
    Hsb: NDArray  # (k, C, S, P)
    Hbb: NDArray  # (k, C, P, P)
    gb: NDArray  # (k, C, P)


@dataclass(frozen=True, eq=False)
class _Solution:
    state: CombinedState
    nll: NDArray
    converged: NDArray
    cov_shared: NDArray  # (k, S, S) inverse of the shared block after eliminating the backgrounds


@dataclass(frozen=True, eq=False)
class CombinedFit:
    """Unconditional and background-only fits of k hypotheses.

    Attributes
    ----------
    mu_hat, mu_err : ndarray (k,)
        Fitted parameter of interest and its error (inverse Hessian).
    nll_hat, nll_zero : ndarray (k,)
        NLL at the unconditional minimum and at mu = 0.
    z_local : ndarray (k,)
        Signed ``sqrt(2 (nll_zero - nll_hat))``.
    nuisance_hat, nuisance_err : ndarray (k, S - 1)
        Post-fit nuisances (in units of their constraints) and errors.
    channel_yields : ndarray (k, C)
        Fitted signal events per channel, ``N_c``.
    channel_background : ndarray (k, C)
        Fitted background events per channel in its window.
    converged : ndarray (k,) bool
    hat, zero : CombinedState
    """

    mu_hat: NDArray
    mu_err: NDArray
    nll_hat: NDArray
    nll_zero: NDArray
    z_local: NDArray
    nuisance_hat: NDArray
    nuisance_err: NDArray
    channel_yields: NDArray
    channel_background: NDArray
    converged: NDArray
    hat: CombinedState
    zero: CombinedState


class CombinedBatch:
    """Fits, Asimov sets and limit ingredients of k combined hypotheses (``CombinedRequest``)."""

    def __init__(self, request: CombinedRequest) -> None:
        self.req = request
        self.data = data_rows(request)
        self.k, self.C = request.k, request.n_channels
        self.K, self.A, self.J = request.n_yield, request.n_spurious, request.n_shape
        self.S = request.n_shared
        self.P = request.max_order + 1
        self.fit_: CombinedFit | None = None
        self._asimov: Rows | None = None
        self._asimov_centre: NDArray | None = None
        self._asimov_nll0: NDArray | None = None

    # -- the model ------------------------------------------------------------
    def yields(self, shared: NDArray, hyp: NDArray) -> tuple[NDArray, NDArray, NDArray, NDArray]:
        """N (k, C), dN/dshared (k, C, S), d2N (k, C, S, S) and whether a Gaussian factor is <= 0 (k,)."""
        req, K, A = self.req, self.K, self.A
        mu = shared[:, 0]
        u = shared[:, 1 : 1 + K]
        th = shared[:, 1 + K : 1 + K + A]
        coeff = req.yield_coeff[hyp]  # (k, K, C)
        logn = req.yield_lognormal[None, :, None]
        arg = 1.0 + coeff * u[:, :, None]
        bad = np.any(~logn & (arg <= 0), axis=(1, 2)) if K else np.zeros(len(mu), bool)
        safe = np.where(arg > 0, arg, 1.0)
        lk = np.where(logn, coeff * u[:, :, None], np.log(safe))
        d1 = np.where(logn, coeff, coeff / safe)
        d2 = np.where(logn, 0.0, -((coeff / safe) ** 2))
        F = req.scale[hyp] * np.exp(np.clip(lk.sum(axis=1), -700.0, 700.0))  # (k, C); clipped: a wild trial step must not overflow
        size = req.spurious_size[hyp]  # (k, A, C)
        N = mu[:, None] * F + np.einsum("ka,kac->kc", th, size)
        k = len(mu)
        dN = np.zeros((k, self.C, self.S))
        dN[:, :, 0] = F
        dN[:, :, 1 : 1 + K] = (mu[:, None, None] * F[:, :, None]) * np.swapaxes(d1, 1, 2)
        dN[:, :, 1 + K : 1 + K + A] = np.swapaxes(size, 1, 2)
        d2N = np.zeros((k, self.C, self.S, self.S))
        if K:
            d1c = np.swapaxes(d1, 1, 2)  # (k, C, K)
            d2N[:, :, 0, 1 : 1 + K] = F[:, :, None] * d1c
            d2N[:, :, 1 : 1 + K, 0] = F[:, :, None] * d1c
            uu = d1c[:, :, :, None] * d1c[:, :, None, :] + np.eye(K)[None, None] * np.swapaxes(d2, 1, 2)[:, :, :, None]
            d2N[:, :, 1 : 1 + K, 1 : 1 + K] = (mu[:, None, None, None] * F[:, :, None, None]) * uu
        return N, dN, d2N, bad

    def evaluate(self, rows: Rows, state: CombinedState, blocks: NDArray, centre: NDArray | None) -> _Eval:
        """NLL, gradient and Hessian blocks of the row blocks ``blocks`` (block b: rows ``b C .. b C + C - 1``).

        Block b holds hypothesis ``b mod k`` of the request (several copies of the hypotheses
        when the rows are tiled); ``centre`` (one row per block) centres the constraints.
        """
        from ._kernels import morph_pass

        C, J, P, S = self.C, self.J, self.P, self.S
        k = len(blocks)
        hyp = blocks % self.k
        N, dN, d2N, bad_y = self.yields(state.shared, hyp)
        th_rows = np.zeros((k, C, 1 + J + P))
        th_rows[:, :, 0] = N
        th_rows[:, :, 1 : 1 + J] = state.shared[:, None, S - J :]
        th_rows[:, :, 1 + J :] = state.beta
        ridx = (blocks[:, None] * C + np.arange(C)[None, :]).reshape(-1)
        R = rows.n_rows
        full = np.zeros((R, 1 + J + P))
        full[ridx] = th_rows.reshape(-1, 1 + J + P)
        nll_r = np.zeros(R)
        g_r = np.zeros((R, 1 + J + P))
        H_r = np.zeros((R, 1 + J + P, 1 + J + P))
        nb = np.zeros(R, np.int64)
        morph_pass(np.ascontiguousarray(ridx, dtype=np.int64), rows.s0, rows.dA, rows.dB, rows.xp, rows.w, rows.n_ev, full, P - 1, rows.unit,
                   nll_r, g_r, H_r, nb)
        nll_r, g_r, H_r, nb = nll_r[ridx].reshape(k, C), g_r[ridx].reshape(k, C, -1), H_r[ridx].reshape(k, C, 1 + J + P, 1 + J + P), nb[ridx]
        integ = rows.integ[ridx].reshape(k, C, P)
        free = rows.beta_free[ridx].reshape(k, C, P)
        nll_r = nll_r + N + np.einsum("kcp,kcp->kc", integ, state.beta)
        g_r = g_r.copy()
        g_r[:, :, 0] += 1.0
        g_r[:, :, 1 + J :] += integ
        nuis = state.shared[:, 1:]
        c0 = np.zeros_like(nuis) if centre is None else centre[blocks]
        nll = nll_r.sum(axis=1) + 0.5 * np.sum((nuis - c0) ** 2, axis=1)
        # chain rule from the row parameters (N, nu) to the shared ones
        Jr = np.zeros((k, C, 1 + J, S))
        Jr[:, :, 0, :] = dN
        for j in range(J):
            Jr[:, :, 1 + j, S - J + j] = 1.0
        gl, Hl = g_r[:, :, : 1 + J], H_r[:, :, : 1 + J, : 1 + J]
        gs = np.einsum("kcas,kca->ks", Jr, gl)
        Hs = np.einsum("kcas,kcab,kcbt->kst", Jr, Hl, Jr) + np.einsum("kc,kcst->kst", g_r[:, :, 0], d2N)
        gs[:, 1:] += nuis - c0
        Hs[:, 1:, 1:] += np.eye(S - 1)
        Hsb = np.einsum("kcas,kcab->kcsb", Jr, H_r[:, :, : 1 + J, 1 + J :])
        Hbb = H_r[:, :, 1 + J :, 1 + J :].copy()
        gb = g_r[:, :, 1 + J :].copy()
        # fixed background coefficients: identity rows, no gradient, no coupling
        fixed = ~free
        Hsb[np.broadcast_to(fixed[:, :, None, :], Hsb.shape)] = 0.0
        Hbb[np.broadcast_to(fixed[:, :, :, None], Hbb.shape)] = 0.0
        Hbb[np.broadcast_to(fixed[:, :, None, :], Hbb.shape)] = 0.0
        kk, cc, pp = np.nonzero(fixed)
        Hbb[kk, cc, pp, pp] = 1.0
        gb[fixed] = 0.0
        bad = (nb.reshape(k, C).sum(axis=1) > 0) | bad_y | ~np.isfinite(nll)
        return _Eval(nll, bad, gs, Hs, Hsb, Hbb, gb)

    # -- Newton ---------------------------------------------------------------
    def newton_direction(self, ev: _Eval, free_shared: NDArray) -> tuple[NDArray, NDArray, NDArray, NDArray]:
        """Newton direction (ds, db), the decrement and the shared covariance (Schur complement inverse)."""
        try:
            Hbb_inv = np.linalg.inv(ev.Hbb)
        except np.linalg.LinAlgError:
            Hbb_inv = np.linalg.pinv(ev.Hbb)
        Hbb_inv = np.where(np.isfinite(Hbb_inv), Hbb_inv, 0.0)
        M = ev.Hs - np.einsum("kcsp,kcpq,kctq->kst", ev.Hsb, Hbb_inv, ev.Hsb)
        r = ev.gs - np.einsum("kcsp,kcpq,kcq->ks", ev.Hsb, Hbb_inv, ev.gb)
        f = np.flatnonzero(free_shared)
        Mf = M[:, f][:, :, f]
        Mf = 0.5 * (Mf + np.swapaxes(Mf, 1, 2))
        w, V = np.linalg.eigh(Mf)
        w = np.where(np.isfinite(w), w, 0.0)
        floor = 1e-10 * np.maximum(np.abs(w).max(axis=1, keepdims=True, initial=0.0), 1e-300)
        w_pos = np.maximum(np.abs(w), floor)  # |eigenvalues|: a descent direction of sensible length where the nuisances make the problem non-convex
        Minv = np.einsum("kij,kj,klj->kil", V, 1.0 / w_pos, V)
        ds = np.zeros_like(ev.gs)
        ds[:, f] = -np.einsum("kij,kj->ki", Minv, r[:, f])
        db = -np.einsum("kcpq,kcq->kcp", Hbb_inv, ev.gb + np.einsum("kcsp,ks->kcp", ev.Hsb, ds))
        dec = -(np.einsum("ks,ks->k", ev.gs, ds) + np.einsum("kcp,kcp->k", ev.gb, db))
        cov = np.full((len(ev.nll), self.S, self.S), np.nan)
        cov[np.ix_(np.arange(len(ev.nll)), f, f)] = np.where(np.all(w > 0, axis=1)[:, None, None], Minv, np.nan)
        return ds, db, dec, cov

    def minimise(self, rows: Rows, start: CombinedState, *, mu_fixed: bool, blocks: NDArray | None = None, centre: NDArray | None = None,
                 max_iter: int = 100, tol: float = TOL, fixed_shared: NDArray | None = None) -> _Solution:
        """Minimise the NLL of the row blocks ``blocks`` (default all) of ``rows`` from ``start`` (mu fixed or free).

        Damped Newton: direction from the Schur complement (``_direction``), step halved until the
        Armijo condition holds with every density positive; each block stops on its own when the
        Newton decrement falls below ``tol``. ``fixed_shared`` (bool, (S,) or one row per block,
        mu at index 0) holds those shared parameters at their start values: their gradient and
        couplings are removed from the Newton system and their covariance entries are NaN.
        """
        blocks = np.arange(rows.n_rows // self.C) if blocks is None else np.asarray(blocks)
        free_shared = np.ones(self.S, bool)
        free_shared[0] = not mu_fixed
        pin = None if fixed_shared is None else np.broadcast_to(np.asarray(fixed_shared, bool), (len(blocks), self.S))

        def hold(e: _Eval, idx: NDArray) -> _Eval:
            """The fixed parameters of blocks ``idx`` decoupled: no gradient, unit diagonal."""
            if pin is not None:
                kk, ss = np.nonzero(pin[idx])
                e.gs[kk, ss] = 0.0
                e.Hs[kk, ss, :] = 0.0
                e.Hs[kk, :, ss] = 0.0
                e.Hs[kk, ss, ss] = 1.0
                e.Hsb[kk, :, ss, :] = 0.0
            return e

        shared, beta = start.shared.copy(), start.beta.copy()
        ev = hold(self.evaluate(rows, CombinedState(shared, beta), blocks, centre), np.arange(len(blocks)))
        n = len(blocks)
        conv = np.zeros(n, bool)
        cov = np.full((n, self.S, self.S), np.nan)
        active = ~ev.bad
        for _ in range(max_iter):
            ds, db, dec, cov_it = self.newton_direction(ev, free_shared)
            if pin is not None:
                ds[pin] = 0.0
                cov_it[pin] = np.nan
                cov_it[np.broadcast_to(pin[:, None, :], cov_it.shape)] = np.nan
            cov[active] = cov_it[active]
            newly = active & ((dec < tol) | ~np.isfinite(dec))
            conv |= newly & np.isfinite(dec)
            active &= ~newly
            if not active.any():
                break
            pend = np.flatnonzero(active)
            t = np.ones(len(pend))
            for _ in range(40):
                trial = CombinedState(shared[pend] + t[:, None] * ds[pend], beta[pend] + t[:, None, None] * db[pend])
                ev_t = hold(self.evaluate(rows, trial, blocks[pend], centre), pend)
                base = ev.nll[pend]
                ok = ~ev_t.bad & (ev_t.nll <= base - 1e-4 * t * dec[pend] + 1e-12 * np.abs(base))
                if ok.any():
                    acc = pend[ok]
                    shared[acc] = trial.shared[ok]
                    beta[acc] = trial.beta[ok]
                    for name in ("nll", "bad", "gs", "Hs", "Hsb", "Hbb", "gb"):
                        getattr(ev, name)[acc] = getattr(ev_t, name)[ok]
                pend, t = pend[~ok], 0.5 * t[~ok]
                if not len(pend):
                    break
            if len(pend):
                # no step decreases the NLL: the minimum is reached to numerical precision
                conv[pend] = dec[pend] < 1e-3
                active[pend] = False
        return _Solution(CombinedState(shared, beta), ev.nll.copy(), conv & ~ev.bad, cov)

    # -- fits -----------------------------------------------------------------
    def start(self) -> CombinedState:
        """mu = 0, nuisances 0, backgrounds from the event moments (flat where the projection is negative)."""
        k, C, P = self.k, self.C, self.P
        rows = self.data
        lo, hi = self.req.lo.reshape(-1), self.req.hi.reshape(-1)
        beta = background_from_moments(rows.cheb_sums, lo, hi).reshape(k, C, P)
        beta = np.where(rows.beta_free.reshape(k, C, P), beta, 0.0)  # each row's own order before the positivity check
        flat = (np.maximum(rows.n_ev, 1) / (hi - lo)).reshape(k, C)
        # a projection that dips below zero would stall the line search: start those flat
        xs = np.linspace(-1.0, 1.0, 33)
        T = np.polynomial.chebyshev.chebvander(xs, P - 1)
        low = np.einsum("np,kcp->kcn", T, beta).min(axis=2) <= 0
        beta[low] = 0.0
        beta[..., 0] = np.where(low, flat, beta[..., 0])
        beta = np.where(rows.beta_free.reshape(k, C, P), beta, 0.0)
        return CombinedState(np.zeros((k, self.S)), beta)

    def fit(self, *, max_iter: int = 100) -> CombinedFit:
        """Background-only (mu = 0) and unconditional fits of every hypothesis."""
        s0 = self.start()
        zero = self.minimise(self.data, s0, mu_fixed=True, max_iter=max_iter)
        hat = self.minimise(self.data, zero.state, mu_fixed=False, max_iter=max_iter)
        nll_hat = np.minimum(hat.nll, zero.nll)
        mu_hat = hat.state.shared[:, 0]
        var = hat.cov_shared[:, 0, 0]
        mu_err = np.sqrt(np.where(var > 0, var, np.nan))
        z = np.sign(mu_hat) * np.sqrt(np.maximum(2.0 * (zero.nll - nll_hat), 0.0))
        nuis_err = np.sqrt(np.abs(np.diagonal(hat.cov_shared, axis1=1, axis2=2)[:, 1:]))
        N, _, _, _ = self.yields(hat.state.shared, np.arange(self.k))
        integ = self.data.integ.reshape(self.k, self.C, self.P)
        nbkg = np.einsum("kcp,kcp->kc", integ, hat.state.beta)
        conv = hat.converged & zero.converged & np.isfinite(mu_err)
        self.fit_ = CombinedFit(mu_hat, mu_err, nll_hat, zero.nll, z, hat.state.shared[:, 1:], nuis_err, N, nbkg, conv, hat.state, zero.state)
        return self.fit_

    def conditional(self, poi: NDArray, start: CombinedState) -> _Solution:
        """Fits of the data at mu = ``poi`` (k,)."""
        return self.minimise(self.data, start.with_mu(poi), mu_fixed=True)

    # -- Asimov ---------------------------------------------------------------
    def asimov(self) -> tuple[Rows, NDArray, NDArray]:
        """The Asimov rows (weights = quadrature weight x expected density of the background-only fit),
        the constraint centres and the Asimov NLL at the generating point."""
        if self._asimov is None:
            bf = self.fit_
            assert bf is not None, "fit() first"
            base, nodes = asimov_rows(self.req)
            gen = bf.zero
            N, _, _, _ = self.yields(gen.shared, np.arange(self.k))
            J, P = self.J, self.P
            nu = gen.shared[:, self.S - J :]
            M = base.s0.shape[1]
            s = base.s0.reshape(self.k, self.C, M) + np.einsum("kj,kcjn->kcn", nu, base.dA.reshape(self.k, self.C, J, M)) + np.einsum(
                "kj,kcjn->kcn", nu**2, base.dB.reshape(self.k, self.C, J, M))
            T = np.polynomial.chebyshev.chebvander(base.xp.reshape(self.k, self.C, M), P - 1)
            lam0 = np.maximum(N[:, :, None] * s + np.einsum("kcnp,kcp->kcn", T, gen.beta), 0.0)
            self._asimov = base.with_weights(base.w * lam0.reshape(base.w.shape))
            self._asimov_centre = gen.shared[:, 1:].copy()
            self._asimov_nll0 = self.evaluate(self._asimov, gen, np.arange(self.k), self._asimov_centre).nll
        assert self._asimov_centre is not None and self._asimov_nll0 is not None
        return self._asimov, self._asimov_centre, self._asimov_nll0

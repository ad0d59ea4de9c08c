"""Batched Newton minimiser of the extended unbinned NLL (vectorised engine).

For each hypothesis j the negative log-likelihood is::

    NLL(theta) = integ . theta - sum_i w_i log(lambda_i),   lambda_i = F[:, i] . theta

(plus ``u^2/2`` for a constrained yield nuisance, below). It is convex in
``theta = (mu, beta_0..beta_p)``: the gradient is ``integ - F @ (w/lambda)`` and
the Hessian ``(F sqrt(w)/lambda)(F sqrt(w)/lambda)^T``, both exact. All
hypotheses of a batch take their Newton steps together (batched
``np.matmul`` and ``np.linalg.solve``); each step is damped by a backtracking
line search that keeps ``lambda > 0`` at every event and never increases the
NLL. Convergence is declared when the Newton decrement ``-g.d`` falls below
``tol`` (in NLL units).

Modes for the first parameter (the signal yield ``mu``):

- ``"free"``: ``mu`` is a free parameter (unconditional fit);
- ``"fixed"``: ``mu`` fixed to its starting value (conditional fit);
- ``"syst"``: the first parameter is a standard-normal nuisance ``u`` with
  ``mu = c * exp(a u)`` (log-normal, ``a = ln(1 + rel_unc)``) or
  ``mu = c * (1 + a u)`` (Gaussian, ``a = rel_unc``) and the NLL gains
  ``u^2/2``; ``c`` is the fixed POI value times its scale (conditional fit with
  a constrained yield uncertainty). This part is not convex in ``u``, so the
  Hessian is regularised when it is not positive definite.

Written by hand because no library minimises thousands of tiny convex
problems at once at numpy speed; ``fits.zfit_engine`` cross-checks it with
zfit + Minuit.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from .design import Design, moment_layout

logger = logging.getLogger(__name__)

__all__ = ["NewtonResult", "minimise", "linear_lambda", "start_values", "predict_conditional", "background_from_moments"]


def predict_conditional(theta: NDArray, hess_lin: NDArray, mu_new: NDArray) -> NDArray:
    """First-order prediction of the conditional minimum at ``mu_new`` from a solution at ``theta[:, 0]``.

    ``beta(mu_new) = beta - H_bb^-1 H_bmu (mu_new - mu)`` (implicit-function
    theorem on the gradient); a warm start that saves Newton iterations.
    """
    out = theta.copy()
    dmu = mu_new - theta[:, 0]
    Hbb = hess_lin[:, 1:, 1:]
    Hbm = hess_lin[:, 1:, 0]
    try:
        db = np.linalg.solve(Hbb, Hbm[:, :, None])[:, :, 0]
    except np.linalg.LinAlgError:
        db = np.zeros_like(Hbm)
    db = np.where(np.isfinite(db), db, 0.0)
    out[:, 1:] = theta[:, 1:] - db * dmu[:, None]
    out[:, 0] = mu_new
    return out


@dataclass(frozen=True)
class NewtonResult:
    """Solution of a batch of fits (arrays over hypotheses; yields in events)."""

    theta: NDArray  # (k, P) parameters (first entry: mu, or u in "syst" mode)
    mu: NDArray  # (k,) signal yield at the solution
    nll: NDArray  # (k,)
    hess: NDArray  # (k, P, P) Hessian of the free parameters at the solution
    grad_lin: NDArray  # (k, P) gradient with respect to (mu, beta) at the solution
    hess_lin: NDArray  # (k, P, P) Hessian with respect to (mu, beta)
    converged: NDArray  # (k,) bool
    n_iter: int


def linear_lambda(F: NDArray, theta_lin: NDArray) -> NDArray:
    """``lambda = theta . F`` for each hypothesis: (k, P) x (k, P, n) -> (k, n)."""
    return np.matmul(theta_lin[:, None, :], F)[:, 0, :]


def _mu_of(p0: NDArray, mode: str, c: NDArray | None, a: NDArray | None, kind: str) -> tuple[NDArray, NDArray, NDArray]:
    """mu and its first and second derivative with respect to the first parameter."""
    if mode != "syst":
        return p0, np.ones_like(p0), np.zeros_like(p0)
    if kind == "lognormal":
        m = c * np.exp(a * p0)
        return m, a * m, a * a * m
    m = c * (1.0 + a * p0)
    return m, c * a, np.zeros_like(p0)


@functools.lru_cache(maxsize=16)
def _legendre_in_chebyshev(p: int) -> NDArray:
    """Matrix L with P_l = sum_m L[l, m] T_m (l, m = 0..p)."""
    L = np.zeros((p + 1, p + 1))
    for ell in range(p + 1):
        coef = np.polynomial.Legendre.basis(ell).convert(kind=np.polynomial.Chebyshev).coef
        L[ell, : len(coef)] = coef
    return L


def _initial_background(design: Design) -> NDArray:
    """Background start values from the Legendre moments of the events (orthogonal projection).

    Returns beta (k, p+1) in events/GeV; rows whose projection is not positive
    at every event are replaced later by a flat start.
    """
    p = design.order
    if design.cheb_sums is not None:
        S = design.cheb_sums
    else:
        S = np.einsum("kmn,kn->km", design.M[:, 1 : p + 2, :], design.w)  # sum_i T_m(x'_i)
    return background_from_moments(S, design.lo, design.hi)


def background_from_moments(cheb_sums: NDArray, lo: NDArray, hi: NDArray) -> NDArray:
    """Chebyshev coefficients (k, p+1) in events/GeV of the orthogonal projection of the events.

    ``cheb_sums[j, m] = sum_i T_m(x'_i)`` over the events of window ``j`` ([lo, hi] GeV): the
    Legendre moments give the density's Legendre coefficients in ``x'``, converted to Chebyshev.
    """
    p = cheb_sums.shape[1] - 1
    L = _legendre_in_chebyshev(p)
    c = (2 * np.arange(p + 1) + 1) / 2.0 * _rowmat(cheb_sums, L.T)  # Legendre coefficients of the density in x'
    b = _rowmat(c, L)  # Chebyshev coefficients
    return b * (2.0 / (hi - lo))[:, None]


def _rowmat(A: NDArray, B: NDArray) -> NDArray:
    """``A @ B`` for a batch of rows, summed in a fixed order per row.

    BLAS rounds a row differently depending on how many rows the batch has,
    and start values must not depend on how hypotheses are split into batches
    (resumed and distributed scans are bit-identical).
    """
    out = A[:, :1] * B[:1, :]
    for m in range(1, B.shape[0]):
        out = out + A[:, m : m + 1] * B[m : m + 1, :]
    return out


def start_values(design: Design) -> NDArray:
    """Unconditional start: no signal, background from the event moments (flat if not positive)."""
    k, P = design.k, design.n_par
    th = np.zeros((k, P))
    th[:, 1:] = _initial_background(design)
    if design.compact:
        # positivity is checked by the compiled Newton kernel (flat start where it fails)
        return th
    lam = linear_lambda(design.F, th)
    bad = ~(lam.min(axis=1) > 0)
    if np.any(bad):
        th[bad, 1:] = 0.0
        th[bad, 1] = np.maximum(design.w[bad].sum(axis=1), 1.0) / (design.hi - design.lo)[bad]
    return th


def _flat_start(design: Design, rows: NDArray | None = None) -> NDArray:
    n, lo, hi = design.n_events, design.lo, design.hi
    if rows is not None:
        n, lo, hi = n[rows], lo[rows], hi[rows]
    th = np.zeros((len(n), design.n_par))
    th[:, 1] = np.maximum(n, 1.0) / (hi - lo)
    return th


def _row_map(design: Design, rows: NDArray | None) -> NDArray:
    return np.arange(design.k, dtype=np.int64) if rows is None else np.ascontiguousarray(rows, dtype=np.int64)


def _minimise_compiled(design: Design, theta0: NDArray, *, mode: str, max_iter: int, tol: float, theta_alt: NDArray | None,
                       rows: NDArray | None = None) -> NewtonResult | None:
    """``minimise`` for data designs by the compiled kernel (``fits._kernels.newton_fit``).

    Same step control, stopping rule and outputs as the numpy path; each
    hypothesis iterates on its own. ``rows``: fit ``j`` is of the design's row
    ``rows[j]`` (all rows in order by default). Returns None when numba is not importable.
    """
    try:
        from ._kernels import newton_fit
    except ImportError:  # pragma: no cover - numba is a dependency
        return None
    rmap = _row_map(design, rows)
    k, P = len(rmap), design.n_par
    th0 = np.ascontiguousarray(theta0, dtype=float)
    if theta_alt is None:
        alt = _flat_start(design, rows)
        if mode == "fixed":
            alt[:, 0] = th0[:, 0]
        use_alt = np.ones(k, bool)
    else:
        alt = np.ascontiguousarray(theta_alt, dtype=float)
        use_alt = np.ones(k, bool)
    theta = np.empty((k, P))
    nll = np.empty(k)
    g = np.empty((k, P))
    H = np.empty((k, P, P))
    conv = np.empty(k, bool)
    n_it = np.empty(k, np.int64)
    newton_fit(design.s, design.xp, rmap, np.ascontiguousarray(design.n_events, dtype=np.int64), np.ascontiguousarray(design.integ), th0, alt, use_alt,
               mode == "fixed", int(max_iter), float(tol), theta, nll, g, H, conv, n_it)
    hess = H.copy()
    if mode == "fixed":
        hess[:, 0, :] = 0.0
        hess[:, :, 0] = 0.0
        hess[:, 0, 0] = 1.0
    return NewtonResult(theta=theta, mu=theta[:, 0].copy(), nll=nll, hess=hess, grad_lin=g, hess_lin=H, converged=conv, n_iter=int(n_it.max(initial=0)))


def _minimise_compiled_syst(design: Design, theta0: NDArray, *, syst_c: NDArray, syst_a: NDArray, syst_kind: str, max_iter: int, tol: float,
                            rows: NDArray | None = None) -> NewtonResult | None:
    """``minimise`` in "syst" mode for data designs by the compiled kernel (``fits._kernels.newton_fit_syst``).

    Same parametrisation, step control (line search), stopping rule and
    outputs as the numpy path; each hypothesis iterates on its own; ``rows``
    as for ``_minimise_compiled``. Returns None when numba is not importable.
    """
    try:
        from ._kernels import newton_fit_syst
    except ImportError:  # pragma: no cover - numba is a dependency
        return None
    rmap = _row_map(design, rows)
    k, P = len(rmap), design.n_par
    th0 = np.ascontiguousarray(theta0, dtype=float)
    c = np.ascontiguousarray(np.broadcast_to(np.asarray(syst_c, dtype=float), (k,)))
    a = np.ascontiguousarray(np.broadcast_to(np.asarray(syst_a, dtype=float), (k,)))
    theta = np.empty((k, P))
    mu = np.empty(k)
    nll = np.empty(k)
    g = np.empty((k, P))
    H = np.empty((k, P, P))
    Hf = np.empty((k, P, P))
    conv = np.empty(k, bool)
    n_it = np.empty(k, np.int64)
    newton_fit_syst(design.s, design.xp, rmap, np.ascontiguousarray(design.n_events, dtype=np.int64), np.ascontiguousarray(design.integ), th0, c, a,
                    syst_kind == "lognormal", int(max_iter), float(tol), theta, mu, nll, g, H, Hf, conv, n_it)
    return NewtonResult(theta=theta, mu=mu, nll=nll, hess=Hf, grad_lin=g, hess_lin=H, converged=conv, n_iter=int(n_it.max(initial=0)))


def minimise(
    design: Design,
    theta0: NDArray,
    *,
    mode: str = "free",
    syst_c: NDArray | None = None,
    syst_a: NDArray | None = None,
    syst_kind: str = "lognormal",
    max_iter: int = 60,
    tol: float = 1e-9,
    fix_bkg: bool = False,
    theta_alt: NDArray | None = None,
    rows: NDArray | None = None,
) -> NewtonResult:
    """Minimise the NLL of every hypothesis in ``design`` from ``theta0`` (k, P).

    See the module docstring for ``mode``. In "fixed" mode ``theta0[:, 0]`` is
    the fixed signal yield; in "syst" mode ``theta0[:, 0]`` is the starting
    nuisance value and ``syst_c`` (k,) the nominal yield. ``fix_bkg`` keeps
    the background coefficients at their start values (background fixed, e.g.
    from a sideband fit). ``theta_alt`` (k, P): fallback start for rows where
    ``theta0`` is not feasible (density not positive at every event).

    Step control: for data (unit weights) outside "syst" mode the NLL is a
    standard self-concordant function and the damped Newton step
    ``t = 1/(1 + delta)`` (``delta^2`` the Newton decrement; full steps once
    ``delta < 0.5``) is guaranteed feasible and decreasing, so no NLL
    evaluation is needed inside the loop. Otherwise (Asimov weights,
    systematics) a backtracking line search keeps ``lambda > 0`` and enforces
    an Armijo decrease. Data designs with per-event values (``design.compact``)
    run on the compiled kernels of ``fits._kernels`` ("free", "fixed" and
    "syst" without ``fix_bkg``), with the same mathematics and outputs.

    ``rows``: fit the design's rows ``rows`` (one fit per entry, a row may
    repeat; ``theta0`` and the results have one row per entry). The compiled
    kernels read those rows in place; other paths fit ``design.take(rows)``.
    """
    if design.compact and mode in ("free", "fixed") and not fix_bkg:
        res = _minimise_compiled(design, theta0, mode=mode, max_iter=max_iter, tol=tol, theta_alt=theta_alt, rows=rows)
        if res is not None:
            return res
    if design.compact and mode == "syst" and not fix_bkg and theta_alt is None and syst_c is not None and syst_a is not None:
        res = _minimise_compiled_syst(design, theta0, syst_c=syst_c, syst_a=syst_a, syst_kind=syst_kind, max_iter=max_iter, tol=tol, rows=rows)
        if res is not None:
            return res
    if rows is not None:
        design = design.take(np.asarray(rows, dtype=np.int64))
    M, w, integ = design.M, design.w, design.integ
    k, R, n = M.shape
    P = design.n_par
    F = M[:, :P, :]
    _, A, B = moment_layout(design.order)
    p = np.array(theta0, dtype=float, copy=True)
    if mode == "syst" and (syst_c is None or syst_a is None):
        raise ValueError("mode='syst' needs syst_c and syst_a")
    damped = design.unit_weights and mode != "syst"
    eye = np.eye(P)

    def lin(pp: NDArray) -> tuple[NDArray, NDArray, NDArray, NDArray]:
        m, dm, d2m = _mu_of(pp[:, 0], mode, syst_c, syst_a, syst_kind)
        tl = pp.copy()
        tl[:, 0] = m
        return tl, m, dm, d2m

    def nll_of(tl: NDArray, lam: NDArray, pp: NDArray) -> NDArray:
        with np.errstate(divide="ignore", invalid="ignore"):
            val = np.einsum("kp,kp->k", integ, tl) - np.einsum("kn,kn->k", w, np.log(lam))
        if mode == "syst":
            val = val + 0.5 * pp[:, 0] ** 2
        return val

    tl, m, dm, d2m = lin(p)
    lam = linear_lambda(F, tl)
    if theta_alt is not None:
        infeasible = ~(lam.min(axis=1) > 0)
        if np.any(infeasible):
            p[infeasible] = theta_alt[infeasible]
            tl, m, dm, d2m = lin(p)
            lam[infeasible] = linear_lambda(F[infeasible], tl[infeasible])
    # make the start feasible: raise the constant background term where needed
    lam_min = lam.min(axis=1)
    bad = ~(lam_min > 0)
    if np.any(bad) and fix_bkg:
        # only the signal yield can move: raise it (or fail for a background that is not positive)
        if mode == "free":
            smin = np.where(bad, (-lam_min) / np.maximum(F[:, 0, :].min(axis=1), 1e-300), 0.0)
            p[:, 0] += np.where(bad, smin * 1.01 + 1e-9, 0.0)
            tl, m, dm, d2m = lin(p)
            lam = linear_lambda(F, tl)
    elif np.any(bad):
        span = np.maximum(design.hi - design.lo, 1e-12)
        scale = (np.abs(integ[:, 1:] * tl[:, 1:]).sum(axis=1) + np.abs(m) + 1.0) / span
        shift = np.where(bad, np.nan_to_num(-lam_min, nan=0.0, posinf=0.0, neginf=0.0) + 0.1 * scale, 0.0)
        p[:, 1] += shift
        tl[:, 1] += shift
        lam = lam + shift[:, None]
    nll = None if damped else nll_of(tl, lam, p)
    converged = np.zeros(k, dtype=bool)
    stuck = np.zeros(k, dtype=bool)
    # rows whose line search found no acceptable step twice in a row far from the minimum:
    # no further progress is possible; they stop iterating and stay not converged
    stalls = np.zeros(k, dtype=int)
    gave_up = np.zeros(k, dtype=bool)
    V = np.empty((k, 2, n))
    g = np.zeros((k, P))
    H = np.tile(eye, (k, 1, 1))
    g_lin = np.zeros((k, P))
    H_lin = np.zeros((k, P, P))
    n_iter = 0
    for n_iter in range(1, max_iter + 1):  # noqa: B007 - the count is returned after the loop
        np.divide(w, lam, out=V[:, 0])
        np.divide(V[:, 0], lam, out=V[:, 1])
        mom = np.matmul(M, np.swapaxes(V, 1, 2))  # (k, R, 2)
        g_lin = integ - mom[:, :P, 0]
        h = mom[:, :, 1]
        H_lin = 0.5 * (h[:, A] + h[:, B])
        g = g_lin.copy()
        H = H_lin.copy()
        if mode == "fixed":
            g[:, 0] = 0.0
            H[:, 0, :] = 0.0
            H[:, :, 0] = 0.0
            H[:, 0, 0] = 1.0
        elif mode == "syst":
            g[:, 0] = g_lin[:, 0] * dm + p[:, 0]
            H[:, 0, 1:] *= dm[:, None]
            H[:, 1:, 0] *= dm[:, None]
            H[:, 0, 0] = H_lin[:, 0, 0] * dm * dm + g_lin[:, 0] * d2m + 1.0
        if fix_bkg:
            g[:, 1:] = 0.0
            H[:, 1:, :] = 0.0
            H[:, :, 1:] = 0.0
            H[:, range(1, P), range(1, P)] = 1.0
            if mode == "fixed":
                H[:, 0, 0] = 1.0
        # tiny relative ridge so that a degenerate batch member cannot break the batched solve
        diag = np.abs(np.diagonal(H, axis1=1, axis2=2))
        Hr = H + (1e-13 * diag + 1e-300)[:, :, None] * eye
        try:
            d = np.linalg.solve(Hr, -g[:, :, None])[:, :, 0]
        except np.linalg.LinAlgError:
            d = np.empty_like(g)
            for j in range(k):  # rare: fall back per hypothesis
                try:
                    d[j] = np.linalg.solve(Hr[j], -g[j])
                except np.linalg.LinAlgError:
                    d[j] = -g[j] / np.maximum(diag[j], 1e-300)
        dec = -np.einsum("kp,kp->k", g, d)
        nondescent = ~(dec > 0) | ~np.all(np.isfinite(d), axis=1)
        if np.any(nondescent):
            # not positive definite (only possible in "syst" mode): scaled gradient step
            dg = -g / np.maximum(diag, 1e-300)
            d = np.where(nondescent[:, None], dg, d)
            dec = -np.einsum("kp,kp->k", g, d)
        # damped (self-concordant) path: the full step taken at dec = delta^2 < 3e-5 leaves
        # delta+ <= (delta / (1 - delta))^2 ~ 3e-5, i.e. NLL - NLL_min ~ delta+^2 / 2 < 1e-9 and
        # parameters within 3e-5 of their errors; the line-search path stops before stepping
        finished = (dec < (max(tol, 3e-5) if damped else tol)) | stuck
        converged = finished & ~gave_up
        finished = finished | gave_up
        active = ~finished
        if damped:
            # the step at dec < tol is still taken (it costs nothing and squares the error)
            delta = np.sqrt(np.maximum(dec, 0.0))
            t = np.where(delta > 0.5, 1.0 / (1.0 + delta), 1.0)
            p = p + t[:, None] * d
            tl, m, dm, d2m = lin(p)
            lam = linear_lambda(F, tl)
            if np.all(finished):
                break
            neg = ~(lam.min(axis=1) > 0)
            if np.any(neg):  # cannot happen in exact arithmetic; undo and halve
                p = np.where(neg[:, None], p - 0.5 * t[:, None] * d, p)
                tl, m, dm, d2m = lin(p)
                lam = linear_lambda(F, tl)
                stuck |= neg & (dec < 1e-6)
            continue
        if np.all(finished):
            break
        # line search: full step, halved until feasible and not increasing the NLL
        t = np.where(active, 1.0, 0.0)
        Fdb = linear_lambda(F[:, 1:, :], d[:, 1:])
        ok = ~active
        for _ in range(60):
            p_t = p + t[:, None] * d
            tl_t, m_t, _, _ = lin(p_t)
            lam_t = lam + (m_t - m)[:, None] * F[:, 0, :] + t[:, None] * Fdb
            feas = lam_t.min(axis=1) > 0
            nll_t = np.where(feas, nll_of(tl_t, np.where(feas[:, None], lam_t, 1.0), p_t), np.inf)
            ok = feas & (nll_t <= nll + 1e-4 * t * (-dec) + 1e-12 * np.abs(nll))
            ok |= ~active
            if np.all(ok):
                break
            t = np.where(ok, t, 0.5 * t)
        # accept the steps that passed; the others keep their point
        p = np.where(ok[:, None], p_t, p)
        lam = np.where(ok[:, None], lam_t, lam)
        nll = np.where(ok, nll_t, nll)
        tl, m, dm, d2m = lin(p)
        stalled = active & (~ok | (t < 1e-12))
        stuck |= stalled & (dec < 1e-6)
        stalls = np.where(stalled & ~stuck, stalls + 1, 0)
        gave_up |= stalls >= 2
    else:
        logger.debug("Newton: %d of %d hypotheses not converged after %d iterations", int((~converged).sum()), k, max_iter)
    if damped or nll is None:
        nll = nll_of(tl, lam, p)
    return NewtonResult(theta=p, mu=m, nll=nll, hess=H, grad_lin=g_lin, hess_lin=H_lin, converged=converged, n_iter=n_iter)

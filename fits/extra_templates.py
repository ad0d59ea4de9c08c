"""Fits with extra fixed-shape background templates (known peaks) whose yields float.

The model in a window [lo, hi] (GeV) is

    lambda(x) = mu s(x) + sum_j nu_j p_j(x) + sum_k beta_k T_k(x'),   x' = 2 (x - lo)/(hi - lo) - 1,

with s and p_j fixed shapes normalised on the window (events, 1/GeV) and the yields
mu, nu_j and the Chebyshev coefficients beta_k (events/GeV) floating. The model is
linear in all parameters, so the extended NLL is convex; it is minimised here with a
damped Newton iteration on the analytic gradient and Hessian, one hypothesis at a
time (numpy path; the compiled kernels handle only the signal + polynomial model).
Limits use the asymptotic CLs formulae for the q~_mu statistic, with q~_mu from
profile fits and sigma_A from the covariance of the background-only fit.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import NDArray
from scipy import optimize, stats

from signal_models._common.defaults import DEFAULT_CL
from signal_models.shapes import SignalShape

from .asymptotic import N_SIGMA
from .densities import ShapeArrays, chebyshev_basis, chebyshev_integrals, signal_pdf

logger = logging.getLogger(__name__)

__all__ = ["TemplateFit", "design_columns", "nll", "minimise", "fit_with_templates"]


def design_columns(x: NDArray, shape: SignalShape, extra: Sequence[SignalShape], lo: float, hi: float, order: int) -> tuple[NDArray, NDArray]:
    """Design matrix ``F`` (n, 1 + m + order + 1) at the events ``x`` and the window integral of each column."""
    shapes = [shape, *extra]
    m = len(shapes)
    sh = ShapeArrays.from_shapes(shapes)
    dens = signal_pdf(np.broadcast_to(x, (m, len(x))), sh, np.full(m, lo), np.full(m, hi))
    xp = 2.0 * (x - lo) / (hi - lo) - 1.0
    F = np.vstack([dens, chebyshev_basis(xp, order)]).T
    integ = np.concatenate([np.ones(m), 0.5 * (hi - lo) * chebyshev_integrals(order)])
    return F, integ


def nll(theta: NDArray, F: NDArray, integ: NDArray) -> float:
    """Extended NLL (constant terms dropped); +inf where the intensity is not positive."""
    lam = F @ theta
    if np.any(lam <= 0) or not np.all(np.isfinite(lam)):
        return np.inf
    return float(integ @ theta - np.sum(np.log(lam)))


def minimise(F: NDArray, integ: NDArray, theta0: NDArray, *, fix_mu: float | None = None, max_iter: int = 200) -> tuple[NDArray, float, NDArray, bool]:
    """Damped Newton minimisation (mu = column 0 held at ``fix_mu`` if given).

    ``theta0`` must give a positive intensity at every event. Returns
    (theta, nll, Hessian, converged).
    """
    th = np.asarray(theta0, float).copy()
    free = np.ones(len(th), bool)
    if fix_mu is not None:
        th[0] = fix_mu
        free[0] = False
    f0 = nll(th, F, integ)
    if not np.isfinite(f0):
        return th, f0, np.full((len(th), len(th)), np.nan), False
    conv = False
    for _ in range(max_iter):
        lam = F @ th
        g = integ - F.T @ (1.0 / lam)
        H = (F / lam[:, None] ** 2).T @ F
        gf, Hf = g[free], H[np.ix_(free, free)]
        step = np.linalg.lstsq(Hf, -gf, rcond=None)[0]
        dec = float(-gf @ step)  # Newton decrement^2
        if dec < 1e-10:
            conv = True
            break
        t, cand, fc = 1.0, th, f0
        while t > 1e-12:
            cand = th.copy()
            cand[free] += t * step
            fc = nll(cand, F, integ)
            if fc <= f0 - 1e-4 * t * dec:
                break
            t *= 0.5
        else:
            break
        th, f0 = cand, fc
    lam = F @ th
    H = (F / lam[:, None] ** 2).T @ F
    return th, f0, H, conv


@dataclass(frozen=True)
class TemplateFit:
    """Fit and limits of one hypothesis with extra peak templates.

    ``nsig``, ``nsig_err`` and the limits (``ul_nsig_exp``: -2..+2 sigma) in
    signal events, ``beta`` in events/GeV; numbers not computed are 0 and
    ``converged`` is False with a ``reason`` when the fit or a limit failed.
    """

    nsig: float
    nsig_err: float
    nll: float
    z_local: float
    beta: NDArray
    converged: bool
    reason: str
    ul_nsig_obs: float
    ul_nsig_exp: NDArray

    @classmethod
    def failed(cls, order: int, reason: str) -> TemplateFit:
        """A fit that failed for ``reason``: zeros everywhere."""
        return cls(nsig=0.0, nsig_err=0.0, nll=0.0, z_local=0.0, beta=np.zeros(order + 1), converged=False, reason=reason, ul_nsig_obs=0.0,
                   ul_nsig_exp=np.zeros(len(N_SIGMA)))


def fit_with_templates(
    x: NDArray, shape: SignalShape, extra: Sequence[SignalShape], lo: float, hi: float, order: int, *, cl: float = DEFAULT_CL, limits: bool = True,
    expected: bool = True,
) -> TemplateFit:
    """Fit, local significance and (optionally) CLs limits of one hypothesis.

    ``x`` are the candidate masses (GeV) inside [lo, hi] (GeV); ``extra`` the
    peak templates whose yields float beside the signal and the polynomial of
    order ``order``. The expected band is for -2..+2 sigma.
    """
    F, integ = design_columns(x, shape, extra, lo, hi, order)
    m = 1 + len(extra)
    th0 = np.zeros(F.shape[1])
    th0[m] = len(x) / (hi - lo)  # flat background with all events
    th_b, f_b, H_b, ok_b = minimise(F, integ, th0, fix_mu=0.0)
    th, f, H, ok = minimise(F, integ, th_b)
    if not ok:
        return TemplateFit.failed(order, "signal + background + peaks fit did not converge (Newton)")
    if not ok_b:
        return TemplateFit.failed(order, "background-only (+ peaks) fit did not converge (Newton)")
    try:
        cov = np.linalg.inv(H)
        # sigma_A: covariance at the background-only minimum (Wald approximation)
        cov_b = np.linalg.inv((F / (F @ th_b)[:, None] ** 2).T @ F)
    except np.linalg.LinAlgError:
        cov = cov_b = np.full_like(H, np.nan)
    if not (np.isfinite(cov[0, 0]) and cov[0, 0] > 0 and np.isfinite(cov_b[0, 0]) and cov_b[0, 0] > 0) or np.linalg.cond(H) > 1e14:
        return TemplateFit.failed(order, "Hessian not positive definite at the minimum (signal degenerate with a peak template)")
    mu_hat = float(th[0])
    fit = TemplateFit(nsig=mu_hat, nsig_err=float(np.sqrt(cov[0, 0])), nll=f, z_local=float(np.sign(mu_hat) * np.sqrt(max(2.0 * (f_b - f), 0.0))),
                      beta=th[m:].copy(), converged=True, reason="", ul_nsig_obs=0.0, ul_nsig_exp=np.zeros(len(N_SIGMA)))
    sig_a = float(np.sqrt(cov_b[0, 0]))
    alpha = 1.0 - cl
    if expected:
        fit = replace(fit, ul_nsig_exp=sig_a * (stats.norm.ppf(1.0 - alpha * stats.norm.cdf(N_SIGMA)) + N_SIGMA))
    if limits:
        ref_th, ref_f = (th, f) if mu_hat > 0 else (th_b, f_b)

        def cls_minus(mu: float) -> float:
            if mu <= mu_hat:
                return 1.0 - alpha
            _, fm, _, _ = minimise(F, integ, ref_th, fix_mu=mu)
            q = max(2.0 * (fm - ref_f), 0.0)
            qa = (mu / sig_a) ** 2
            sq, sqa = np.sqrt(q), np.sqrt(qa)
            if q <= qa:
                clsb, clb = stats.norm.sf(sq), stats.norm.cdf(sqa - sq)
            else:
                clsb, clb = stats.norm.sf((q + qa) / (2 * sqa)), stats.norm.sf((q - qa) / (2 * sqa))
            return clsb / max(clb, 1e-300) - alpha

        hi_mu = max(mu_hat, 0.0) + 3.0 * sig_a
        for _ in range(20):
            if cls_minus(hi_mu) < 0:
                break
            hi_mu *= 2.0
        try:
            fit = replace(fit, ul_nsig_obs=float(optimize.brentq(cls_minus, max(mu_hat, 0.0) + 1e-9 * sig_a, hi_mu, xtol=1e-6 * sig_a)))
        except ValueError:
            fit = replace(fit, reason="observed limit root finding did not converge", converged=False)
    return fit

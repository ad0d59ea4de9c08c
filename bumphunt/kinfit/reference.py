"""Per-event reference implementation of the kinematic fit (a Python loop with dense matrices).

``fit_reference`` runs the algorithm of ``bumphunt.kinfit`` event by event
with dense 9x9 / 4x9 matrices and ``np.linalg.solve``. It is slow and simple
on purpose: it cross-checks the two vectorised engines (same decisions, same
numbers to rounding) and measures their speed-up (``benchmarks/kinfit.py``).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ..kinematics import Beam
from .inputs import BeamCovSpec, check_arrays, event_status, resolve_beam, resolve_beam_cov
from .options import MAX_PHYSICAL_HALVINGS, FitOptions
from .result import MAX_ITER, OK, KinFitResult, pvalue_ndf4

__all__ = ["fit_reference"]


def fit_reference(
    E: ArrayLike,
    theta: ArrayLike,
    phi: ArrayLike,
    cov: ArrayLike,
    beam: Beam | None = None,
    *,
    max_iter: int = FitOptions.max_iter,
    max_halvings: int = FitOptions.max_halvings,
    tol_chi2: float = FitOptions.tol_chi2,
    tol_constraint: float = FitOptions.tol_constraint,
    beam_cov: BeamCovSpec = None,
) -> KinFitResult:
    """Per-event reference implementation of ``fit`` (a Python loop with dense matrices).

    Same algorithm, convergence criterion and outputs as ``fit`` (without
    ``cov_full`` and ``beam_p4``), written event by event with
    ``np.linalg.solve``; it exists to cross-check the vectorised closed-form
    engines and to measure their speed-up. Invalid events are flagged exactly
    as in ``fit``. Parameters as for ``fit`` (GeV, rad).
    """
    beam = resolve_beam(beam)
    options = FitOptions.checked(max_iter=max_iter, max_halvings=max_halvings, tol_chi2=tol_chi2,
                         tol_constraint=tol_constraint)
    E, theta, phi, cov = check_arrays(E, theta, phi, cov)
    Vb = resolve_beam_cov(beam, beam_cov)
    P0 = np.asarray(beam.p4, dtype=np.float64)
    n = E.shape[0]
    rE, rt, rp, rcov = E.copy(), theta.copy(), phi.copy(), cov.copy()
    chi2 = np.full(n, np.inf)
    pulls = np.full((n, 3, 3), np.nan)
    n_iter = np.zeros(n, dtype=np.int16)
    status = np.full(n, MAX_ITER, dtype=np.int8)
    valid = event_status(np.ascontiguousarray(E.T), np.ascontiguousarray(theta.T), np.ascontiguousarray(phi.T),
                         np.ascontiguousarray(np.transpose(cov, (2, 3, 1, 0))))
    for i in range(n):  # reference implementation: deliberately one event at a time
        if valid[i] != OK:
            status[i] = valid[i]
            continue
        a0 = np.stack([E[i], theta[i], phi[i]], axis=1).ravel()
        V0 = np.zeros((9, 9))
        for k in range(3):
            V0[3 * k:3 * k + 3, 3 * k:3 * k + 3] = cov[i, k]
        a, Vfit, c2, it, ok = _fit_one(a0, V0, P0, Vb, options)
        n_iter[i] = it
        if ok:
            status[i] = OK
            chi2[i] = c2
            rE[i], rt[i], rp[i] = a[0::3], a[1::3], np.mod(a[2::3] + np.pi, 2 * np.pi) - np.pi
            for k in range(3):
                rcov[i, k] = Vfit[3 * k:3 * k + 3, 3 * k:3 * k + 3]
            pulls[i] = ((a0 - a) / np.sqrt(np.diag(V0) - np.diag(Vfit))).reshape(3, 3)
    converged = status == OK
    pvalue = np.where(converged, pvalue_ndf4(np.where(converged, chi2, 0.0)), 0.0)
    return KinFitResult(E=rE, theta=rt, phi=rp, cov=rcov, chi2=chi2, pvalue=pvalue, converged=converged,
                        n_iter=n_iter, pulls=pulls, status=status)


def _fit_one(a0: NDArray, V0: NDArray, P0: NDArray, Vb: NDArray | None,
             options: FitOptions) -> tuple[NDArray, NDArray, float, int, bool]:
    """Fit one event: ``a0`` (9,) photon-major (E, theta, phi) and its covariance ``V0`` (9, 9).

    Returns the fitted parameters, their covariance, chi2, the number of
    linearisations and whether the fit converged (if not: the last point,
    ``V0`` and chi2 = inf).
    """
    max_iter, max_halvings = options.max_iter, options.max_halvings
    tol_chi2, tol_constraint = options.tol_chi2, options.tol_constraint

    def balance(a: NDArray) -> tuple[NDArray, NDArray]:
        E, th, ph = a[0::3], a[1::3], a[2::3]
        st, ct, sp, cp = np.sin(th), np.cos(th), np.sin(ph), np.cos(ph)
        p = np.stack([E * st * cp, E * st * sp, E * ct, E], axis=0)  # (4, 3)
        D = np.zeros((4, 9))
        D[:, 0::3] = np.stack([st * cp, st * sp, ct, np.ones(3)])
        D[:, 1::3] = np.stack([E * ct * cp, E * ct * sp, -E * st, np.zeros(3)])
        D[:, 2::3] = np.stack([-E * st * sp, E * st * cp, np.zeros(3), np.zeros(3)])
        return p.sum(1) - P0, D

    a = a0.copy()
    lamb = np.zeros(4)
    prev = step = None
    lamb_prev = lamb_step = None
    t = 1.0
    n_halv = 0
    h_prev = np.inf
    chi2_prev = np.inf
    for it in range(1, max_iter * (max_halvings + 1) + 1):
        Hraw, D = balance(a)
        S = D @ V0 @ D.T + (Vb if Vb is not None else 0.0)
        H = Hraw - (Vb @ lamb if Vb is not None else 0.0)
        h = float(H @ np.linalg.solve(S, H))
        if it > 1 and h > h_prev and h > tol_chi2 and n_halv < max_halvings:
            t *= 0.5
            n_halv += 1
            a = prev + t * (step - prev)
            lamb = lamb_prev + t * (lamb_step - lamb_prev)
            if it >= max_iter:
                return a, V0, np.inf, it, False
            continue
        r = D @ (a0 - a) + Hraw
        lam = np.linalg.solve(S, r)
        chi2 = float(r @ lam)
        new = a0 - V0 @ D.T @ lam
        if abs(chi2 - chi2_prev) < tol_chi2 and np.abs(H).max() < tol_constraint:
            Vfit = V0 - V0 @ D.T @ np.linalg.solve(S, D @ V0)
            return new, Vfit, chi2, it, True
        if it >= max_iter:
            return a, V0, np.inf, it, False
        prev, step, lamb_prev, lamb_step = a, new, lamb, lam
        t, n_halv, h_prev, chi2_prev = 1.0, 0, h, chi2
        a, lamb = new, lam
        for _h in range(MAX_PHYSICAL_HALVINGS):
            if not (np.any(a[0::3] <= 0) or np.any(a[1::3] <= 0) or np.any(a[1::3] >= np.pi)):
                break
            t *= 0.5
            a = prev + t * (step - prev)
            lamb = lamb_prev + t * (lamb_step - lamb_prev)
    return a, V0, np.inf, max_iter, False

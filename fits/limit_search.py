"""Root finding of asymptotic CLs limits for a batch of hypotheses, independent of the likelihood model.

Both engines of the vectorised kind (``fits.vectorised.Batch``, one channel
per hypothesis, and ``fits.combined.CombinedBatch``, several channels sharing
the parameter of interest) find their limits here; they provide the CLs or
``q_A`` of every hypothesis at trial values of the parameter of interest and
keep their own warm starts.

Observed limit: ``h(x) = probit(CLs(x)) - probit(1 - cl)`` decreases with x
with a slope of about ``-1/sigma``. A safeguarded secant keeps a bracket
``[a, b]`` with ``h(a) > 0 > h(b)`` (``a = 0`` is always valid since
``CLs(0) = 1``); steps that leave the bracket are replaced by bisection, and
without an upper end the step grows until CLs crosses, so a limit is never
missing.

Expected band: ``sqrt(q_A(x)) = Phi^-1(1 - alpha Phi(N)) + N`` solved by
secant iteration on the Asimov set (exact ``q_A``, no constant-sigma
approximation), falling back to the fixed-point update ``x tgt / sqrt(q_A)``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray
from scipy.special import ndtr, ndtri

__all__ = ["observed_start", "observed_limit_search", "expected_limit_search", "pooled_roots"]


def observed_start(mu_hat: NDArray, sigma: NDArray, alpha: float) -> tuple[NDArray, NDArray]:
    """Start values of the observed-limit search and the POI scale ``sg`` (both (k,), POI units).

    In the Gaussian approximation (``q~ = (x - mu_hat)^2 / sigma^2``, ``q_A = x^2 / sigma^2``)
    ``CLs = Phi(-(x - mu_hat)/sigma) / Phi(mu_hat/sigma)`` in both regimes, which is solved
    for ``CLs = alpha``.
    """
    sg = np.maximum(sigma, 1e-300)
    x = mu_hat + sg * ndtri(1.0 - alpha * ndtr(mu_hat / sg))
    x = np.where(np.isfinite(x) & (x > 0), x, np.maximum(2.0 * sigma, 1e-6))
    return x, sg


def observed_limit_search(
    h_of: Callable[[NDArray, NDArray], NDArray],
    x0: NDArray,
    sg: NDArray,
    *,
    max_iter: int = 60,
    htol: float = 2e-4,
    rtol: float = 1e-6,
) -> tuple[NDArray, NDArray]:
    """Observed limits (k,) and a convergence flag (k,).

    Parameters
    ----------
    h_of : callable
        ``h_of(x, active)`` returns ``probit(CLs(x)) - probit(1 - cl)`` (k,) at trial
        values ``x``; the caller updates its warm starts for the ``active`` rows only.
    x0, sg : ndarray (k,)
        Start values and POI scale (``observed_start``).
    """
    k = len(x0)
    x = x0
    a_x = np.zeros(k)
    b_x = np.full(k, np.inf)
    x_prev = np.full(k, np.nan)
    h_prev = np.full(k, np.nan)
    done = np.zeros(k, bool)
    h = np.zeros(k)
    for _ in range(max_iter):
        act = ~done
        h_new = h_of(x, act)
        h = np.where(act, h_new, h)
        pos = h > 0
        a_x = np.where(act & pos, np.maximum(a_x, x), a_x)
        b_x = np.where(act & ~pos, np.minimum(b_x, x), b_x)
        done |= np.abs(h) < htol
        have_b = np.isfinite(b_x)
        done |= have_b & (np.abs(b_x - a_x) <= rtol * np.maximum(np.abs(b_x), 1e-12))
        if np.all(done):
            break
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            slope = (h - h_prev) / (x - x_prev)
            slope = np.where(np.isfinite(slope) & (slope < 0), slope, -1.0 / sg)
            step = -h / slope
        step = np.clip(step, -0.8 * x, 4.0 * np.maximum(x, sg))
        x_new = x + step
        inside = (x_new > a_x) & (x_new < b_x)
        x_new = np.where(inside, x_new, np.where(have_b, 0.5 * (a_x + b_x), np.maximum(2.0 * x, x + sg)))
        x_prev = np.where(act, x, x_prev)
        h_prev = np.where(act, h, h_prev)
        x = np.where(done, x, x_new)
    result = np.where(np.abs(h) < htol, x, np.where(np.isfinite(b_x), 0.5 * (a_x + b_x), x))
    return result, done


def expected_limit_search(
    qa_of: Callable[[NDArray], NDArray],
    x0: NDArray,
    tgt: NDArray,
    *,
    max_iter: int = 30,
    rtol: float = 1e-5,
) -> tuple[NDArray, NDArray]:
    """Solutions of ``sqrt(q_A(x)) = tgt`` (one per entry) and a convergence flag per entry.

    Parameters
    ----------
    qa_of : callable
        ``qa_of(x)`` returns ``q_A`` at trial values ``x`` (and updates the caller's warm starts).
    x0, tgt : ndarray
        Start values (``tgt`` times the Asimov sigma) and targets ``Phi^-1(1 - alpha Phi(N)) + N``.
    """
    x = x0
    x_prev = f_prev = None
    done = np.zeros(len(x0), bool)
    for _ in range(max_iter):
        qa = qa_of(x)
        fx = np.sqrt(qa) - tgt
        with np.errstate(divide="ignore", invalid="ignore"):
            fp = x * tgt / np.sqrt(np.maximum(qa, 1e-300))
            if x_prev is not None:
                slope = (fx - f_prev) / (x - x_prev)
                sec = x - fx / slope
                x_new = np.where(np.isfinite(sec) & (sec > 0) & (slope > 0), sec, fp)
            else:
                x_new = fp
        x_new = np.clip(x_new, 0.25 * x, 4.0 * x)
        done = np.abs(x_new - x) <= rtol * np.abs(x)
        x_prev, f_prev = x, fx
        x = np.where(done, x, x_new)
        if np.all(done):
            break
    return x, done


def pooled_roots(g_of: Callable[[float, int], NDArray], x0: NDArray, sg: float, *, htol: float = 1e-3, rtol: float = 1e-7,
                 max_rounds: int = 12, pool: tuple[list[float], list[NDArray]] | None = None) -> tuple[NDArray, NDArray]:
    """Roots ``x_i > 0`` of m decreasing curves ``g_i`` that are computed together (limits from CLs curves).

    ``g_of(x, i)`` returns the m values at ``x`` (NaN for curves not computed there), at least
    ``g_i``; every evaluation joins a pool that all curves use. Each round proposes, for every curve
    not yet solved, the inverse interpolation (through its three pooled points of smallest ``|g|``)
    kept inside its bracket ``g > 0 > g`` (bisection otherwise; doubling while there is no upper
    end: ``g_i(0) > 0``). A curve is solved when a pooled point has ``|g_i| < htol`` or its
    bracket is narrower than ``rtol`` relative. ``pool``: points already evaluated (x, values).
    Returns the roots and a flag per curve.
    """
    m = len(x0)
    xs: list[float] = [] if pool is None else list(pool[0])
    gs: list[NDArray] = [] if pool is None else [np.asarray(g, float) for g in pool[1]]
    roots = np.full(m, np.nan)
    done = np.zeros(m, bool)
    proposals = {i: float(x0[i]) for i in range(m)}
    for _ in range(max_rounds):
        for i, x in proposals.items():
            if any(xv == x and np.isfinite(gv[i]) for xv, gv in zip(xs, gs)):
                continue
            xs.append(x)
            gs.append(np.asarray(g_of(x, i), float))
        X, G = np.array(xs), np.array(gs)
        proposals = {}
        for i in np.flatnonzero(~done):
            ok = np.isfinite(G[:, i])
            x, g = X[ok], G[ok, i]
            best = int(np.argmin(np.abs(g)))
            a = float(x[g > 0].max(initial=0.0))
            b = float(x[g < 0].min(initial=np.inf))
            if abs(g[best]) < htol or (np.isfinite(b) and b - a <= rtol * b):
                roots[i] = x[best] if abs(g[best]) < htol else 0.5 * (a + b)
                done[i] = True
                continue
            near = np.argsort(np.abs(g))[:3]
            xn, gn = x[near], g[near]
            if len(np.unique(gn)) == len(gn) and len(gn) > 1:
                # Lagrange interpolation of x as a polynomial in g, at g = 0
                x_new = sum(xn[p] * np.prod([gn[q] / (gn[q] - gn[p]) for q in range(len(gn)) if q != p]) for p in range(len(gn)))
            else:
                x_new = xn[0] + gn[0] * sg
            if not np.isfinite(b):
                x_new = min(x_new, a + 4.0 * max(a, sg))  # no upper end yet: grow, but not without bound
            if not (a < x_new < b):
                x_new = 0.5 * (a + b) if np.isfinite(b) else max(2.0 * a, a + sg)
            proposals[int(i)] = float(x_new)
        if not proposals:
            break
    return roots, done

"""Compiled kernel of binned extended-likelihood fits (numba): ``q0`` of many (data set, hypothesis) rows.

The model of a hypothesis is linear in its parameters, ``lambda(x) = theta . F(x)``
(signal shape, optional peak templates, Chebyshev background; see
``fits.binned``). With Poisson counts ``c_b`` in bins ``b`` of width ``h``
and the bin-averaged design rows ``Fbar_b = (1/h) int_b F``, the binned
extended negative log-likelihood is, up to a constant,

    NLL(theta) = integ . theta - sum_b c_b log(theta . Fbar_b),

the unbinned form with ``c_b`` events of weight 1 at a point where the design
row is ``Fbar_b``. Its gradient ``integ - sum c_b Fbar_b / lambda_b`` and
Hessian ``sum c_b Fbar_b Fbar_b^T / lambda_b^2`` are exact. With integer
counts every term ``-c_b log(lambda_b)`` is standard self-concordant
(``|f'''| = 2 f''^{3/2} / sqrt(c_b)``), so the damped Newton step of
``fits.newton.minimise`` (``t = 1 / (1 + delta)``, full steps once
``delta < 0.5``, ``delta^2`` the Newton decrement) keeps the density positive
at every occupied bin and decreases the NLL, with no line search; the same
stopping rule (decrement below ``max(tol, 3e-5)``, then one last full step).

``binned_q0`` fits, for each row (one data set's counts in the bins of one
hypothesis' window), the background-only model (signal yield fixed at 0)
from the orthogonal projection of the counts onto the Legendre polynomials
(a flat background where that start is not positive at every occupied
bin), then the unconditional model from the background-only solution, and
writes ``mu_hat``, both minimum NLLs, whether the background polynomial of
each fit is non-negative over the window (as ``fits.densities.background_nonnegative``,
on the same Chebyshev-Lobatto grid with the same tolerance) and a status
code (``STATUS_*``; a fit whose density is not positive in every bin, empty
ones included, is flagged: in sparse windows the unbinned fits of a scan
hold the density positive there, which these fits do not). Rows are computed one after the other in a plain loop,
each on its own inputs in a fixed order of operations: a row's numbers do not
depend on the other rows of the call. No fast-math flags. Imported only by
the functions that use it.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from ._kernels import _solve  # the Cholesky Newton direction of the unbinned kernels, shared

__all__ = ["binned_q0", "edge_positions", "STATUS_OK", "STATUS_EMPTY", "STATUS_ZERO_FIT", "STATUS_FREE_FIT", "STATUS_NOT_PD", "STATUS_NEGATIVE"]

#: both fits converged with a positive definite Hessian at the unconditional minimum
STATUS_OK = 0
#: fewer counts than free parameters + 2 (the row is not fitted)
STATUS_EMPTY = 1
#: the background-only fit did not converge
STATUS_ZERO_FIT = 2
#: the unconditional fit did not converge
STATUS_FREE_FIT = 3
#: the Hessian at the unconditional minimum is not positive definite
STATUS_NOT_PD = 4
#: the unconditional density is not positive in every bin (occupied or not): in a sparse window the
#: signal yield runs towards the boundary where nothing pulls the density up between the events
STATUS_NEGATIVE = 5


@njit(cache=True, error_model="numpy")
def edge_positions(x, keys, right, key_index, pos_out):  # pragma: no cover - compiled
    """Positions of bin edges in a sorted sample by one merge: ``pos_out[key_index[q]]`` = the number of
    ``x < keys[q]`` (``x <= keys[q]`` where ``right[q]``), for ``keys`` sorted ascending with, among equal
    keys, the ``right`` ones last (``numpy.searchsorted`` with ``side="left"`` / ``"right"``)."""
    i = 0
    n = len(x)
    for q in range(len(keys)):
        k = keys[q]
        if right[q]:
            while i < n and x[i] <= k:
                i += 1
        else:
            while i < n and x[i] < k:
                i += 1
        pos_out[key_index[q]] = i


@njit(cache=True, error_model="numpy")
def _pass5(F, b0, nb, counts, c0, th, g, H):  # pragma: no cover - compiled
    """``_pass`` for five parameters (signal and a cubic background, the default): accumulators in registers."""
    t0, t1, t2, t3, t4 = th[0], th[1], th[2], th[3], th[4]
    g0 = g1 = g2 = g3 = g4 = 0.0
    h00 = h10 = h11 = h20 = h21 = h22 = h30 = h31 = h32 = h33 = h40 = h41 = h42 = h43 = h44 = 0.0
    bad = 0
    for b in range(nb):
        c = counts[c0 + b]
        if c == 0:
            continue
        i = b0 + b
        f0, f1, f2, f3, f4 = F[i, 0], F[i, 1], F[i, 2], F[i, 3], F[i, 4]
        lam = (((t0 * f0 + t1 * f1) + t2 * f2) + t3 * f3) + t4 * f4
        if not lam > 0.0:
            bad += 1
            continue
        w = c / lam
        w2 = w / lam
        g0 += w * f0
        g1 += w * f1
        g2 += w * f2
        g3 += w * f3
        g4 += w * f4
        a0, a1, a2, a3, a4 = w2 * f0, w2 * f1, w2 * f2, w2 * f3, w2 * f4
        h00 += a0 * f0
        h10 += a1 * f0
        h11 += a1 * f1
        h20 += a2 * f0
        h21 += a2 * f1
        h22 += a2 * f2
        h30 += a3 * f0
        h31 += a3 * f1
        h32 += a3 * f2
        h33 += a3 * f3
        h40 += a4 * f0
        h41 += a4 * f1
        h42 += a4 * f2
        h43 += a4 * f3
        h44 += a4 * f4
    g[0], g[1], g[2], g[3], g[4] = g0, g1, g2, g3, g4
    H[0, 0] = h00
    H[1, 0] = H[0, 1] = h10
    H[1, 1] = h11
    H[2, 0] = H[0, 2] = h20
    H[2, 1] = H[1, 2] = h21
    H[2, 2] = h22
    H[3, 0] = H[0, 3] = h30
    H[3, 1] = H[1, 3] = h31
    H[3, 2] = H[2, 3] = h32
    H[3, 3] = h33
    H[4, 0] = H[0, 4] = h40
    H[4, 1] = H[1, 4] = h41
    H[4, 2] = H[2, 4] = h42
    H[4, 3] = H[3, 4] = h43
    H[4, 4] = h44
    return bad


@njit(cache=True, error_model="numpy")
def _pass(F, b0, nb, counts, c0, th, P, g, H):  # pragma: no cover - compiled
    """Sums ``g = sum c Fbar / lambda`` and ``H = sum c Fbar Fbar^T / lambda^2`` (lower triangle, then mirrored)
    over the occupied bins at ``th``; returns the number of occupied bins with ``lambda <= 0`` or NaN."""
    if P == 5:
        return _pass5(F, b0, nb, counts, c0, th, g, H)
    for a in range(P):
        g[a] = 0.0
        for e in range(P):
            H[a, e] = 0.0
    bad = 0
    for b in range(nb):
        c = counts[c0 + b]
        if c == 0:
            continue
        row = F[b0 + b]
        lam = th[0] * row[0]
        for a in range(1, P):
            lam += th[a] * row[a]
        if not lam > 0.0:
            bad += 1
            continue
        w = c / lam
        w2 = w / lam
        for a in range(P):
            fa = row[a]
            g[a] += w * fa
            wa = w2 * fa
            for e in range(a + 1):
                H[a, e] += wa * row[e]
    for a in range(P):
        for e in range(a + 1, P):
            H[a, e] = H[e, a]
    return bad


@njit(cache=True, error_model="numpy")
def _slog(F, b0, nb, counts, c0, th, P):  # pragma: no cover - compiled
    """``sum c_b log(lambda_b)`` over the occupied bins (libm ``log``), and the number with ``lambda <= 0``."""
    s = 0.0
    bad = 0
    for b in range(nb):
        c = counts[c0 + b]
        if c == 0:
            continue
        row = F[b0 + b]
        lam = th[0] * row[0]
        for a in range(1, P):
            lam += th[a] * row[a]
        if not lam > 0.0:
            bad += 1
            continue
        s += c * math.log(lam)
    return s, bad


@njit(cache=True, error_model="numpy")
def _newton(F, b0, nb, counts, c0, integ, th, P, f0, max_iter, tol, g, H, L, d, ready):  # pragma: no cover - compiled
    """Damped Newton minimisation from a feasible ``th`` (parameters ``f0 .. P-1`` free; ``th`` updated in place).

    ``ready``: ``g`` and ``H`` already hold the sums of ``_pass`` at ``th``. Returns ``(converged, nll, pd)``:
    ``pd`` whether the Cholesky factorisation of the free block succeeded at the last iterate (the Hessian
    at the minimum, up to the last step of size ~ the stopping threshold, is positive definite).
    """
    if not ready:
        _pass(F, b0, nb, counts, c0, th, P, g, H)
    conv = False
    stuck = False
    ok = False
    t = 0.0
    for _ in range(max_iter):
        for a in range(P):
            g[a] = integ[a] - g[a]
        ok = _solve(H, g, f0, P, d, L)
        dec = 0.0
        for a in range(f0, P):
            dec -= g[a] * d[a]
        if not ok or not dec > 0.0 or not math.isfinite(dec):
            dec = 0.0
            for a in range(f0, P):
                d[a] = -g[a] / max(abs(H[a, a]), 1e-300)
                dec -= g[a] * d[a]
        finished = dec < max(tol, 3e-5) or stuck
        delta = math.sqrt(max(dec, 0.0))
        t = 1.0 / (1.0 + delta) if delta > 0.5 else 1.0
        for a in range(f0, P):
            th[a] += t * d[a]
        if finished:
            conv = True
            break
        bad = _pass(F, b0, nb, counts, c0, th, P, g, H)
        if bad > 0:  # cannot happen in exact arithmetic: undo half the step
            for a in range(f0, P):
                th[a] -= 0.5 * t * d[a]
            if dec < 1e-6:
                stuck = True
            _pass(F, b0, nb, counts, c0, th, P, g, H)
    slog, bad = _slog(F, b0, nb, counts, c0, th, P)
    if bad > 0:  # rounding at the last step: undo it
        for a in range(f0, P):
            th[a] -= t * d[a]
        slog, bad = _slog(F, b0, nb, counts, c0, th, P)
    lin = 0.0
    for a in range(P):
        lin += integ[a] * th[a]
    nll = lin - slog if bad == 0 else np.inf
    return conv and bad == 0, nll, ok


@njit(cache=True, error_model="numpy")
def _nonnegative(th, k0, p, grid):  # pragma: no cover - compiled
    """Whether ``sum_m th[k0 + m] T_m`` is >= 0 on the grid (``grid[m, i] = T_m(x_i)``), with the tolerance
    of ``fits.densities.background_nonnegative`` (1e-9 of the largest absolute value)."""
    vmin = np.inf
    vmax = 0.0
    for i in range(grid.shape[1]):
        v = th[k0] * grid[0, i]
        for m in range(1, p + 1):
            v += th[k0 + m] * grid[m, i]
        vmin = min(vmin, v)
        vmax = max(vmax, abs(v))
    return vmin >= -1e-9 * max(vmax, 1e-300)


@njit(cache=True, error_model="numpy")
def _positive(F, b0, nb, th, P):  # pragma: no cover - compiled
    """Whether the density ``th . Fbar_b`` is positive in every bin of the window."""
    for b in range(nb):
        row = F[b0 + b]
        lam = th[0] * row[0]
        for a in range(1, P):
            lam += th[a] * row[a]
        if not lam > 0.0:
            return False
    return True


@njit(cache=True, error_model="numpy")
def binned_q0(F, bin_start, n_par, bkg_col, integ, width, start_map, grid, counts, count_start, rows, max_iter, tol,
              mu_out, nll0_out, nll1_out, bkg0_ok, bkg1_ok, status_out):  # pragma: no cover - compiled
    """Background-only and unconditional binned fits of the rows (see the module docstring).

    ``F`` (bins, Pmax): bin-averaged design rows of every hypothesis' bins; hypothesis ``j`` owns the
    bins ``bin_start[j] .. bin_start[j+1]``, its first ``n_par[j]`` columns (signal first, the Chebyshev
    terms from column ``bkg_col[j]``), window integrals ``integ[j]`` and window width ``width[j]`` (GeV).
    ``start_map`` ((p+1, p+1)): counts' Chebyshev sums -> Legendre projection of the background
    (times ``width / 2``); ``grid`` ((p+1, g)): Chebyshev basis on the positivity-check grid.
    Row ``r`` fits hypothesis ``rows[r]`` to ``counts[count_start[r] + b]`` for its bins ``b``.
    """
    p = start_map.shape[0] - 1
    Pmax = F.shape[1]
    g = np.empty(Pmax)
    H = np.empty((Pmax, Pmax))
    L = np.zeros((Pmax, Pmax))
    d = np.empty(Pmax)
    th = np.empty(Pmax)
    S = np.empty(p + 1)
    for r in range(len(rows)):
        j = rows[r]
        P = n_par[j]
        k0 = bkg_col[j]
        b0 = bin_start[j]
        nb = bin_start[j + 1] - b0
        c0 = count_start[r]
        mu_out[r] = 0.0
        nll0_out[r] = 0.0
        nll1_out[r] = 0.0
        bkg0_ok[r] = False
        bkg1_ok[r] = False
        n = 0
        for m in range(p + 1):
            S[m] = 0.0
        for b in range(nb):
            c = counts[c0 + b]
            if c == 0:
                continue
            n += c
            for m in range(p + 1):
                S[m] += c * F[b0 + b, k0 + m]
        if n < P + 2:
            status_out[r] = STATUS_EMPTY
            continue
        # background-only start: Legendre projection of the counts; flat where it is not positive
        for a in range(P):
            th[a] = 0.0
        for m in range(p + 1):
            v = 0.0
            for q in range(p + 1):
                v += S[q] * start_map[q, m]
            th[k0 + m] = v * 2.0 / width[j]
        ready = _pass(F, b0, nb, counts, c0, th, P, g, H) == 0
        if not ready:
            for m in range(p + 1):
                th[k0 + m] = 0.0
            th[k0] = n / width[j]
        conv0, nll0, _ = _newton(F, b0, nb, counts, c0, integ[j], th, P, 1, max_iter, tol, g, H, L, d, ready)
        bkg0_ok[r] = _nonnegative(th, k0, p, grid)
        nll0_out[r] = nll0
        if not conv0:
            status_out[r] = STATUS_ZERO_FIT
            continue
        conv1, nll1, pd = _newton(F, b0, nb, counts, c0, integ[j], th, P, 0, max_iter, tol, g, H, L, d, False)
        bkg1_ok[r] = _nonnegative(th, k0, p, grid)
        mu_out[r] = th[0]
        nll1_out[r] = min(nll1, nll0)
        if not conv1:
            status_out[r] = STATUS_FREE_FIT
        elif not pd:
            status_out[r] = STATUS_NOT_PD
        elif not _positive(F, b0, nb, th, P):
            status_out[r] = STATUS_NEGATIVE
        else:
            status_out[r] = STATUS_OK

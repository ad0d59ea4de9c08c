"""Compiled kernels of the vectorised engine for data fits (numba).

The numpy engine (``fits.model`` / ``fits.newton``) stores a (k, R, n) moment
matrix per batch and runs every Newton iteration as several passes over it.
For data fits (unit weights, yield free or fixed) these kernels do the same
mathematics without the moment matrix:

- ``event_values``: per window, the signal density ``s(x_i)`` (1/GeV,
  normalised on the window, exactly ``fits.model.signal_pdf``), the scaled
  coordinate ``x'_i`` and the Chebyshev sums ``sum_i T_m(x'_i)`` (start
  values), one pass over the window's events taken straight from the sorted
  masses;
- ``newton_fit``: the damped Newton minimisation of
  ``NLL = integ . theta - sum_i log(theta . F_i)`` for each hypothesis, with
  ``F_i = (s_i, T_0(x'_i), ..., T_p(x'_i))`` rebuilt block-wise in L1 cache
  from ``s`` and ``x'``; one pass over the events per iteration accumulates
  the exact gradient ``integ - sum F_i / lambda_i``, the Hessian
  ``sum F_i F_i^T / lambda_i^2`` and the smallest ``lambda_i``; the Newton
  system (``P <= 10`` parameters) is solved by Cholesky. Step control is
  the self-concordant damped step of ``fits.newton.minimise`` (``t = 1 / (1 +
  delta)``, full steps once ``delta < 0.5``) and the same stopping rule; each
  hypothesis stops on its own;
- ``newton_fit_syst``: the conditional fit with a constrained signal-yield
  nuisance (``mode="syst"`` of ``fits.newton.minimise``): chain-rule gradient
  and Hessian in the nuisance, backtracking line search on the NLL (the
  problem is not self-concordant there), same stopping rule.

Hypotheses are distributed over threads (``prange``). Compiled with
``cache=True`` (machine code stored next to this file, or in
``NUMBA_CACHE_DIR``): the first call after installing or changing this file
compiles for a few seconds. Imported only by the functions that use it.

Written by hand because no library fits thousands of small convex
likelihoods over tens of thousands of events each at this speed; the numpy
engine and the zfit reference engine cross-check it (tests).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

__all__ = ["event_values", "newton_fit", "newton_fit_syst"]

#: events per block: the block's design rows (P x _BLOCK doubles) stay in L1 cache
_BLOCK = 256
# No fast-math flags: with reassociation or FMA contraction, a freshly compiled
# kernel and the same kernel loaded from numba's cache gave results differing at
# 1e-12, which breaks bit-identical resumed and distributed scans.
_FM = False


_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10
_SHIFT = 6755399441055744.0  # 1.5 * 2**52

@njit(cache=True, fastmath=False, error_model="numpy")
def _vlog_ge1(y, out, ibuf, n):  # pragma: no cover - compiled
    """``out[:n] = log(y[:n])`` for finite ``y >= 1`` (error < 1 ulp of the result + 2e-16).

    Branch-free (vectorises, unlike calls to libm): exponent and mantissa
    from the bits, ``m`` in [sqrt(2)/2, sqrt(2)), ``log m = 2 atanh(f)`` with
    ``f = (m-1)/(m+1)``, ``|f| < 0.172``, series to ``f^21`` (remainder < 1e-17).
    ``ibuf``: int64 scratch of length >= n.
    """
    fb = ibuf.view(np.float64)
    for e in range(n):
        fb[e] = y[e]
    for e in range(n):
        b = ibuf[e]
        ex = (b >> 52) - 1023
        mb = (b & 0xFFFFFFFFFFFFF) | 0x3FF0000000000000
        big = mb > 0x3FF6A09E667F3BCD  # mantissa > sqrt(2): use m / 2 and exponent + 1
        ibuf[e] = mb - (0x0010000000000000 if big else 0)  # divide by 2
        out[e] = ex + (1 if big else 0)  # exponent as float below
    for e in range(n):
        m = fb[e]
        f = (m - 1.0) / (m + 1.0)
        f2 = f * f
        p = 1.0 / 21.0
        p = p * f2 + 1.0 / 19.0
        p = p * f2 + 1.0 / 17.0
        p = p * f2 + 1.0 / 15.0
        p = p * f2 + 1.0 / 13.0
        p = p * f2 + 1.0 / 11.0
        p = p * f2 + 1.0 / 9.0
        p = p * f2 + 1.0 / 7.0
        p = p * f2 + 1.0 / 5.0
        p = p * f2 + 1.0 / 3.0
        p = p * f2 + 1.0
        k = out[e]
        out[e] = k * _LN2_HI + (2.0 * f * p + k * _LN2_LO)

@njit(cache=True, fastmath=False, error_model="numpy")
def _vexp_neg(z, out, ibuf, n):  # pragma: no cover - compiled
    """``out[:n] = exp(z[:n])`` for ``z <= 0`` (0 below -700; relative error ~ 1 ulp).

    Branch-free (vectorises): ``z = k ln 2 + r``, ``|r| <= ln(2)/2``, Taylor
    series of ``exp(r)`` to ``r^13`` (remainder < 1e-17), ``2^k`` built from the bits.
    """
    fb = ibuf.view(np.float64)
    for e in range(n):
        zin = z[e]
        zz = max(zin, -700.0)
        kf = zz * 1.4426950408889634 + _SHIFT
        fb[e] = kf
        kr = kf - _SHIFT
        r = (zz - kr * _LN2_HI) - kr * _LN2_LO
        p = 1.0 / 6227020800.0
        p = p * r + 1.0 / 479001600.0
        p = p * r + 1.0 / 39916800.0
        p = p * r + 1.0 / 3628800.0
        p = p * r + 1.0 / 362880.0
        p = p * r + 1.0 / 40320.0
        p = p * r + 1.0 / 5040.0
        p = p * r + 1.0 / 720.0
        p = p * r + 1.0 / 120.0
        p = p * r + 1.0 / 24.0
        p = p * r + 1.0 / 6.0
        p = p * r + 0.5
        p = p * r + 1.0
        p = p * r + 1.0
        out[e] = p if zin > -700.0 else 0.0
    for e in range(n):
        k = ibuf[e] - 0x4338000000000000
        ibuf[e] = (k + 1023) << 52
    for e in range(n):
        out[e] = out[e] * fb[e]


@njit(cache=True, fastmath=_FM, error_model="numpy")
def event_values(x, start, counts, par, order, s_out, xp_out, cheb_out):  # pragma: no cover - compiled
    """Signal density and scaled coordinate of every event slot of every window.

    ``x``: sorted masses (GeV); window ``j`` holds ``x[start[j] : start[j] + counts[j]]``.
    ``par`` (k, 14): ``mu, sigma, alpha_l, n_l, alpha_r, n_r, 1/norm (DSCB),
    comb_fraction, comb_scale, comb_slope, 1/cnorm, lo, hi, (unused)``.
    Padding slots ``e >= counts[j]`` repeat the first event (or the window
    centre for an empty window). ``cheb_out[j, m] = sum_i T_m(x'_i)``.
    """
    k, n_max = s_out.shape
    for j in prange(k):
        mu = par[j, 0]
        isig = 1.0 / par[j, 1]
        al = par[j, 2]
        nl = par[j, 3]
        ar = par[j, 4]
        nr = par[j, 5]
        cs = (1.0 - par[j, 7]) * par[j, 6]
        f = par[j, 7]
        iscale = 1.0 / par[j, 8] if f > 0.0 else 0.0
        slope = par[j, 9]
        cc = f * par[j, 10]
        lo = par[j, 11]
        hi = par[j, 12]
        a2 = 2.0 / (hi - lo)
        b2 = (lo + hi) / (hi - lo)
        pref_l = math.exp(-0.5 * al * al)
        pref_r = math.exp(-0.5 * ar * ar)
        kl = al / nl
        kr = ar / nr
        n = counts[j]
        s0 = start[j]
        for m in range(order + 1):
            cheb_out[j, m] = 0.0
        # DSCB in one branch-free form: exp(-tc^2/2 - n log y), tc = t clipped to the core,
        # y = 1 + (alpha/n) (distance beyond the tail start) (y = 1 in the core)
        ybuf = np.empty(256)
        zbuf = np.empty(256)
        nbuf = np.empty(256)
        ibuf = np.empty(256, np.int64)
        for b0 in range(0, n, 256):
            m = min(256, n - b0)
            for e in range(m):
                t = (x[s0 + b0 + e] - mu) * isig
                tc = min(max(t, -al), ar)
                ybuf[e] = 1.0 + kl * max(-t - al, 0.0) + kr * max(t - ar, 0.0)
                nbuf[e] = nl if t < -al else nr
                zbuf[e] = -0.5 * tc * tc
            _vlog_ge1(ybuf, ybuf, ibuf, m)
            for e in range(m):
                zbuf[e] = zbuf[e] - nbuf[e] * ybuf[e]
            _vexp_neg(zbuf, zbuf, ibuf, m)
            for e in range(m):
                xx = x[s0 + b0 + e]
                s_out[j, b0 + e] = cs * zbuf[e] + cc * (1.0 + slope * (xx - mu) * iscale)
                xp_out[j, b0 + e] = a2 * xx - b2
        # Chebyshev sums (start values), block-wise so that the sums vectorise
        T = np.empty((order + 1, 256))
        for b0 in range(0, n, 256):
            m = min(256, n - b0)
            for e in range(m):
                T[0, e] = 1.0
            if order >= 1:
                for e in range(m):
                    T[1, e] = xp_out[j, b0 + e]
            for q in range(2, order + 1):
                for e in range(m):
                    T[q, e] = 2.0 * T[1, e] * T[q - 1, e] - T[q - 2, e]
            for q in range(order + 1):
                acc = 0.0
                for e in range(m):
                    acc += T[q, e]
                cheb_out[j, q] += acc
        if n == 0:
            xx = 0.5 * (lo + hi)
            t = (xx - mu) * isig
            if t < -al:
                d = pref_l * math.exp(-nl * math.log(1.0 + kl * (-t - al)))
            elif t > ar:
                d = pref_r * math.exp(-nr * math.log(1.0 + kr * (t - ar)))
            else:
                d = math.exp(-0.5 * t * t)
            v = cs * d
            if f > 0.0:
                v += cc * (1.0 + slope * (xx - mu) * iscale)
            fill_s = v
            fill_xp = 0.0
        else:
            fill_s = s_out[j, 0]
            fill_xp = xp_out[j, 0]
        for e in range(n, n_max):
            s_out[j, e] = fill_s
            xp_out[j, e] = fill_xp


@njit(cache=True, fastmath=_FM, error_model="numpy")
def _pass(s, xp, n, th, P, want_nll, F, lam, r, g, H, hT, hsT):  # pragma: no cover - compiled
    """One pass over a window's events at ``th``: ``g = sum F / lambda``, ``H = sum F F^T /
    lambda^2``; returns (number of events with lambda <= 0 or NaN, sum log lambda or 0).

    Rows of the block buffer ``F``: ``s, T_0, ..., T_{2p}``. The Hessian needs only
    ``sum s^2 r^2``, ``sum s T_m r^2`` (m <= p) and ``sum T_m r^2`` (m <= 2p), because
    ``T_j T_k = (T_{j+k} + T_{|j-k|}) / 2`` (as ``fits.model.moment_layout``).
    """
    p = P - 2
    nT = 2 * p + 1
    for a in range(P):
        g[a] = 0.0
    for m in range(nT):
        hT[m] = 0.0
    for m in range(p + 1):
        hsT[m] = 0.0
    hss = 0.0
    nbad = 0
    slog = 0.0
    B = F.shape[1]
    for b0 in range(0, n, B):
        m = min(B, n - b0)
        for e in range(m):
            F[0, e] = s[b0 + e]
            F[1, e] = 1.0
        if nT > 1:
            for e in range(m):
                F[2, e] = xp[b0 + e]
        for q in range(3, nT + 1):
            for e in range(m):
                F[q, e] = 2.0 * F[2, e] * F[q - 1, e] - F[q - 2, e]
        for e in range(m):
            lam[e] = th[0] * F[0, e] + th[1]
        for q in range(2, P):
            tq = th[q]
            for e in range(m):
                lam[e] += tq * F[q, e]
        for e in range(m):
            nbad += 0 if lam[e] > 0.0 else 1
        if want_nll:
            for e in range(m):
                slog += math.log(lam[e])
        for e in range(m):
            r[e] = 1.0 / lam[e]
        acc = 0.0
        for e in range(m):
            acc += F[0, e] * r[e]
        g[0] += acc
        acc = 0.0
        for e in range(m):
            acc += r[e]
        g[1] += acc
        for a in range(2, P):
            acc = 0.0
            for e in range(m):
                acc += F[a, e] * r[e]
            g[a] += acc
        for e in range(m):
            r[e] = r[e] * r[e]
        acc = 0.0
        for e in range(m):
            acc += r[e]
        hT[0] += acc
        for q in range(1, nT):
            acc = 0.0
            for e in range(m):
                acc += F[1 + q, e] * r[e]
            hT[q] += acc
        for e in range(m):
            r[e] = r[e] * F[0, e]
        acc = 0.0
        for e in range(m):
            acc += F[0, e] * r[e]
        hss += acc
        acc = 0.0
        for e in range(m):
            acc += r[e]
        hsT[0] += acc
        for q in range(1, p + 1):
            acc = 0.0
            for e in range(m):
                acc += F[1 + q, e] * r[e]
            hsT[q] += acc
    H[0, 0] = hss
    for q in range(p + 1):
        H[0, 1 + q] = hsT[q]
        H[1 + q, 0] = hsT[q]
        for c in range(p + 1):
            H[1 + q, 1 + c] = 0.5 * (hT[q + c] + hT[abs(q - c)])
    return nbad, slog


@njit(cache=True, fastmath=_FM, error_model="numpy")
def _pass3(s, xp, n, th, want_nll, g, H):  # pragma: no cover - compiled
    """``_pass`` for the default cubic background (P = 5), fused into one loop over the
    events with scalar accumulators (vectorises across events; about 3x faster)."""
    t0, t1, t2, t3, t4 = th[0], th[1], th[2], th[3], th[4]
    g0 = g1 = g2 = g3 = g4 = 0.0
    h0 = h1 = h2 = h3 = h4 = h5 = h6 = 0.0
    ss = s0 = s1 = s2 = s3 = 0.0
    nbad = 0
    for e in range(n):
        x = xp[e]
        sv = s[e]
        T2 = 2.0 * x * x - 1.0
        T3 = 2.0 * x * T2 - x
        lam = t0 * sv + t1 + t2 * x + t3 * T2 + t4 * T3
        nbad += 0 if lam > 0.0 else 1
        r = 1.0 / lam
        g0 += sv * r
        g1 += r
        g2 += x * r
        g3 += T2 * r
        g4 += T3 * r
        r2 = r * r
        T4 = 2.0 * x * T3 - T2
        T5 = 2.0 * x * T4 - T3
        T6 = 2.0 * x * T5 - T4
        h0 += r2
        h1 += x * r2
        h2 += T2 * r2
        h3 += T3 * r2
        h4 += T4 * r2
        h5 += T5 * r2
        h6 += T6 * r2
        sr2 = sv * r2
        ss += sv * sr2
        s0 += sr2
        s1 += x * sr2
        s2 += T2 * sr2
        s3 += T3 * sr2
    slog = 0.0
    if want_nll and nbad == 0:
        for e in range(n):
            x = xp[e]
            T2 = 2.0 * x * x - 1.0
            T3 = 2.0 * x * T2 - x
            slog += math.log(t0 * s[e] + t1 + t2 * x + t3 * T2 + t4 * T3)
    g[0] = g0
    g[1] = g1
    g[2] = g2
    g[3] = g3
    g[4] = g4
    hT = (h0, h1, h2, h3, h4, h5, h6)
    hsT = (s0, s1, s2, s3)
    H[0, 0] = ss
    for q in range(4):
        H[0, 1 + q] = hsT[q]
        H[1 + q, 0] = hsT[q]
        for c in range(4):
            H[1 + q, 1 + c] = 0.5 * (hT[q + c] + hT[abs(q - c)])
    return nbad, slog


@njit(cache=True, error_model="numpy")
def _pass_any(s, xp, n, th, P, want_nll, F, lam, r, g, H, hT, hsT):  # pragma: no cover - compiled
    if P == 5:
        return _pass3(s, xp, n, th, want_nll, g, H)
    return _pass(s, xp, n, th, P, want_nll, F, lam, r, g, H, hT, hsT)


@njit(cache=True, error_model="numpy")
def _lam_min(s, xp, n, th, P):  # pragma: no cover - compiled
    """Smallest density ``theta . F_i`` over the events (rarely needed: infeasible starts)."""
    lmin = np.inf
    for e in range(n):
        x = xp[e]
        lam = th[0] * s[e] + th[1]
        tm2 = 1.0
        tm1 = x
        if P > 2:
            lam += th[2] * x
        for q in range(3, P):
            tm = 2.0 * x * tm1 - tm2
            lam += th[q] * tm
            tm2 = tm1
            tm1 = tm
        if not lam > lmin:
            lmin = lam
    return lmin


@njit(cache=True, error_model="numpy")
def _solve(H, g, f0, P, d, L):  # pragma: no cover - compiled
    """Newton direction d = -H^-1 g on the parameters f0..P-1 (Cholesky with a tiny
    relative ridge); returns False if the matrix is not positive definite."""
    for a in range(P):
        d[a] = 0.0
    for a in range(f0, P):
        for c in range(f0, a + 1):
            v = H[a, c]
            if a == c:
                v += 1e-13 * abs(H[a, a]) + 1e-300
            for q in range(f0, c):
                v -= L[a, q] * L[c, q]
            if a == c:
                if not v > 0.0:
                    return False
                L[a, a] = math.sqrt(v)
            else:
                L[a, c] = v / L[c, c]
    # forward: L y = -g
    for a in range(f0, P):
        v = -g[a]
        for q in range(f0, a):
            v -= L[a, q] * d[q]
        d[a] = v / L[a, a]
    # backward: L^T d = y
    for a in range(P - 1, f0 - 1, -1):
        v = d[a]
        for q in range(a + 1, P):
            v -= L[q, a] * d[q]
        d[a] = v / L[a, a]
    return True


@njit(cache=True, error_model="numpy")
def newton_fit(s, xp, counts, integ, theta0, theta_alt, use_alt, fixed, max_iter, tol, theta_out, nll_out, g_out, H_out, conv_out, iter_out):  # pragma: no cover - compiled
    """Damped Newton fits of k hypotheses on their events (see the module docstring).

    ``fixed``: the signal yield ``theta[:, 0]`` stays at its start value.
    ``use_alt[j]``: use ``theta_alt[j]`` where ``theta0[j]`` is not feasible.
    Writes the solution, NLL, gradient and Hessian in (mu, beta) at the
    solution, convergence flag and iteration count.
    """
    k = s.shape[0]
    P = integ.shape[1]
    f0 = 1 if fixed else 0
    for j in prange(k):
        F = np.empty((2 * P - 2, 256))
        hT = np.empty(2 * P - 3)
        hsT = np.empty(P - 1)
        lam = np.empty(256)
        r = np.empty(256)
        g = np.empty(P)
        H = np.empty((P, P))
        L = np.zeros((P, P))
        d = np.empty(P)
        th = theta0[j].copy()
        n = counts[j]
        sj = s[j]
        xj = xp[j]
        bad, _ = _pass_any(sj, xj, n, th, P, False, F, lam, r, g, H, hT, hsT)
        if bad > 0 and use_alt[j]:
            th2 = theta_alt[j].copy()
            bad2, _ = _pass_any(sj, xj, n, th2, P, False, F, lam, r, g, H, hT, hsT)
            if bad2 == 0:
                th = th2
                bad = 0
        if bad > 0:
            # raise the constant background term until the density is positive at every event
            lmin = _lam_min(sj, xj, n, th, P)
            span = max(integ[j, 1], 1e-12)
            sc = abs(th[0]) + 1.0
            for q in range(1, P):
                sc += abs(integ[j, q] * th[q])
            shift = -lmin if math.isfinite(lmin) else 0.0
            th[1] += shift + 0.1 * sc / span
            bad, _ = _pass_any(sj, xj, n, th, P, False, F, lam, r, g, H, hT, hsT)
        conv = False
        stuck = False
        it = 0
        t = 0.0
        for it in range(1, max_iter + 1):
            for a in range(P):
                g[a] = integ[j, a] - g[a]
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
            bad, _ = _pass_any(sj, xj, n, th, P, False, F, lam, r, g, H, hT, hsT)
            if bad > 0:  # cannot happen in exact arithmetic: undo half the step
                for a in range(f0, P):
                    th[a] -= 0.5 * t * d[a]
                if dec < 1e-6:
                    stuck = True
                bad, _ = _pass_any(sj, xj, n, th, P, False, F, lam, r, g, H, hT, hsT)
        # final pass at the solution: NLL, gradient and Hessian there
        bad, slog = _pass_any(sj, xj, n, th, P, True, F, lam, r, g, H, hT, hsT)
        if bad > 0:  # rounding at the last step: undo it
            for a in range(f0, P):
                th[a] -= t * d[a]
            bad, slog = _pass_any(sj, xj, n, th, P, True, F, lam, r, g, H, hT, hsT)
        lin = 0.0
        for a in range(P):
            lin += integ[j, a] * th[a]
            g_out[j, a] = integ[j, a] - g[a]
            theta_out[j, a] = th[a]
            for c in range(P):
                H_out[j, a, c] = H[a, c]
        nll_out[j] = lin - slog if bad == 0 else np.inf
        conv_out[j] = conv and bad == 0
        iter_out[j] = it


@njit(cache=True, fastmath=_FM, error_model="numpy")
def _slog(s, xp, n, th, P):  # pragma: no cover - compiled
    """Sum of ``log(theta . F_i)`` over the events and the number of events with a density
    that is not positive (the sum is only valid when that number is 0)."""
    nbad = 0
    slog = 0.0
    for e in range(n):
        x = xp[e]
        lam = th[0] * s[e] + th[1]
        tm2 = 1.0
        tm1 = x
        if P > 2:
            lam += th[2] * x
        for q in range(3, P):
            tm = 2.0 * x * tm1 - tm2
            lam += th[q] * tm
            tm2 = tm1
            tm1 = tm
        nbad += 0 if lam > 0.0 else 1
        slog += math.log(max(lam, 1e-300))
    return nbad, slog


@njit(cache=True, error_model="numpy")
def _mu_syst(u, c, a, lognormal):  # pragma: no cover - compiled
    if lognormal:
        m = c * math.exp(a * u)
        return m, a * m, a * a * m
    return c * (1.0 + a * u), c * a, 0.0


@njit(cache=True, error_model="numpy")
def newton_fit_syst(s, xp, counts, integ, theta0, syst_c, syst_a, lognormal, max_iter, tol, theta_out, mu_out, nll_out, g_out, H_out, Hf_out, conv_out, iter_out):  # pragma: no cover - compiled
    """Newton fits with a constrained signal-yield nuisance (``mode="syst"`` of ``fits.newton.minimise``).

    The first parameter is the standard-normal nuisance ``u``: the signal
    yield is ``mu = c exp(a u)`` (``lognormal``) or ``mu = c (1 + a u)`` and
    the NLL gains ``u^2 / 2``. Same mathematics, step control and stopping
    rule as the numpy path: Newton direction on the chain-rule gradient and
    Hessian in ``(u, beta)`` (scaled gradient step where that Hessian is not
    positive definite), backtracking line search (halving, at most 60 times)
    that keeps the density positive at every event with an Armijo decrease,
    stop when the Newton decrement falls below ``tol``. Writes ``(u, beta)``,
    ``mu``, the NLL, the gradient and Hessian in ``(mu, beta)``, the Hessian
    in ``(u, beta)``, the convergence flag and the iteration count.
    """
    k = s.shape[0]
    P = integ.shape[1]
    for j in prange(k):
        F = np.empty((2 * P - 2, 256))
        hT = np.empty(2 * P - 3)
        hsT = np.empty(P - 1)
        lam = np.empty(256)
        r = np.empty(256)
        gs = np.empty(P)
        gl = np.empty(P)
        Hl = np.empty((P, P))
        Hs = np.empty((P, P))
        L = np.zeros((P, P))
        d = np.empty(P)
        tl = np.empty(P)
        pt = np.empty(P)
        p = theta0[j].copy()
        n = counts[j]
        sj = s[j]
        xj = xp[j]
        c = syst_c[j]
        a = syst_a[j]
        m, dm, d2m = _mu_syst(p[0], c, a, lognormal)
        for q in range(P):
            tl[q] = p[q]
        tl[0] = m
        bad, _ = _slog(sj, xj, n, tl, P)
        if bad > 0:
            # raise the constant background term until the density is positive at every event
            lmin = _lam_min(sj, xj, n, tl, P)
            span = max(integ[j, 1], 1e-12)
            sc = abs(m) + 1.0
            for q in range(1, P):
                sc += abs(integ[j, q] * tl[q])
            shift = -lmin if math.isfinite(lmin) else 0.0
            shift += 0.1 * sc / span
            p[1] += shift
            tl[1] += shift
        bad, slog = _slog(sj, xj, n, tl, P)
        lin = 0.0
        for q in range(P):
            lin += integ[j, q] * tl[q]
        nll = lin - slog + 0.5 * p[0] * p[0] if bad == 0 else np.inf
        conv = False
        stuck = False
        it = 0
        for it in range(1, max_iter + 1):
            _pass_any(sj, xj, n, tl, P, False, F, lam, r, gl, Hl, hT, hsT)
            for q in range(P):
                gl[q] = integ[j, q] - gl[q]
                gs[q] = gl[q]
                for q2 in range(P):
                    Hs[q, q2] = Hl[q, q2]
            gs[0] = gl[0] * dm + p[0]
            for q in range(1, P):
                Hs[0, q] *= dm
                Hs[q, 0] *= dm
            Hs[0, 0] = Hl[0, 0] * dm * dm + gl[0] * d2m + 1.0
            ok = _solve(Hs, gs, 0, P, d, L)
            dec = 0.0
            fin = True
            for q in range(P):
                dec -= gs[q] * d[q]
                fin = fin and math.isfinite(d[q])
            if not ok or not dec > 0.0 or not fin:
                dec = 0.0
                for q in range(P):
                    d[q] = -gs[q] / max(abs(Hs[q, q]), 1e-300)
                    dec -= gs[q] * d[q]
            if dec < tol or stuck:
                conv = True
                break
            # line search: full step, halved until feasible and not increasing the NLL
            t = 1.0
            accepted = False
            nll_t = np.inf
            for _ in range(60):
                for q in range(P):
                    pt[q] = p[q] + t * d[q]
                mt, _, _ = _mu_syst(pt[0], c, a, lognormal)
                for q in range(P):
                    tl[q] = pt[q]
                tl[0] = mt
                bad, slog = _slog(sj, xj, n, tl, P)
                if bad == 0:
                    lin = 0.0
                    for q in range(P):
                        lin += integ[j, q] * tl[q]
                    nll_t = lin - slog + 0.5 * pt[0] * pt[0]
                    if nll_t <= nll + 1e-4 * t * (-dec) + 1e-12 * abs(nll):
                        accepted = True
                        break
                t = 0.5 * t
            if accepted:
                for q in range(P):
                    p[q] = pt[q]
                nll = nll_t
            if (not accepted or t < 1e-12) and dec < 1e-6:
                stuck = True
            m, dm, d2m = _mu_syst(p[0], c, a, lognormal)
            for q in range(P):
                tl[q] = p[q]
            tl[0] = m
        for q in range(P):
            theta_out[j, q] = p[q]
            g_out[j, q] = gl[q]
            for q2 in range(P):
                H_out[j, q, q2] = Hl[q, q2]
                Hf_out[j, q, q2] = Hs[q, q2]
        mu_out[j] = m
        nll_out[j] = nll
        conv_out[j] = conv
        iter_out[j] = it

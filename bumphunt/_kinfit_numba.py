"""Compiled per-event kernel of the 4C kinematic fit (numba).

This module holds the ``engine="numba"`` implementation behind
``bumphunt.kinfit.fit``. It is imported only when that engine is used (never
by ``import bumphunt`` or the CLI's ``--help``), because importing numba and
loading the compiled kernel takes about a second.

The algorithm is the one described in ``bumphunt.kinfit`` (iterated
linearisation with Lagrange multipliers, step halving on growing constraint
violation, halving back into the physical region, convergence on the chi2
change and the constraint residuals, optional soft beam constraint), written
for one event with scalar closed-form algebra: 3x3 blocks per photon, the
4x4 constraint system ``S = D V0 D^T (+ Vb)`` factorised by Cholesky. Every
floating-point expression is evaluated in the same order as in the numpy
engine, so both give the same numbers to rounding (the only differences come
from the last bit of sin/cos/exp in different math libraries); the tests
check agreement to 1e-12.

Events are distributed over threads in blocks (``prange``); each block
allocates its small scratch arrays once, nothing is allocated per event.
Input validation is done beforehand in numpy (``bumphunt.kinfit``); the
kernel receives the per-event status (0 for valid events) and writes every
output field of every event, so the caller allocates with ``np.empty``.

Compilation: ``cache=True`` stores the machine code next to this file
(``__pycache__``, or ``NUMBA_CACHE_DIR``); the first call after installing or
changing this file compiles for a few seconds, later processes load the
cached kernel.

This kernel is hand-written because no library fits millions of tiny
constrained least-squares problems at this speed; it mirrors the numpy
engine line by line.
"""

from __future__ import annotations

import math
import threading

import numpy as np
from numba import get_num_threads, njit, prange, threading_layer

__all__ = ["fit_kernel", "KERNEL_LOCK", "n_threads", "layer"]

#: Serialises kernel launches from concurrent Python threads (the kernel
#: already uses every core; this also keeps thread-unsafe threading layers safe).
KERNEL_LOCK = threading.Lock()

# status codes (must match bumphunt.kinfit)
_OK, _BAD_S, _MAX_ITER, _BAD_ITER = 0, 5, 6, 7
_POLY_MAX = 0.02  # rad, as bumphunt.kinfit._POLY_MAX
_TWO_PI = 2 * np.pi
_BLOCK = 512  # events per scheduling block


def n_threads() -> int:
    """Number of threads the kernel runs on (``NUMBA_NUM_THREADS`` / ``numba.set_num_threads``)."""
    return int(get_num_threads())


def layer() -> str:
    """Name of the numba threading layer in use (after the first kernel call)."""
    try:
        return str(threading_layer())
    except ValueError:  # no parallel region has run yet
        return "not initialised"


@njit(cache=True, fastmath=False)
def _chol4(S00, S01, S02, S03, S11, S12, S13, S22, S23, S33):  # type: ignore[no-untyped-def]
    """Cholesky factor of a symmetric 4x4 matrix (diagonal stored inverted), as ``kinfit._chol4``."""
    ok = S00 > 0
    i0 = 1.0 / math.sqrt(S00 if S00 > 0 else 1.0)
    L10 = S01 * i0
    L20 = S02 * i0
    L30 = S03 * i0
    d1 = S11 - L10 * L10
    ok = ok and d1 > 0
    i1 = 1.0 / math.sqrt(d1 if d1 > 0 else 1.0)
    L21 = (S12 - L20 * L10) * i1
    L31 = (S13 - L30 * L10) * i1
    d2 = S22 - L20 * L20 - L21 * L21
    ok = ok and d2 > 0
    i2 = 1.0 / math.sqrt(d2 if d2 > 0 else 1.0)
    L32 = (S23 - L30 * L20 - L31 * L21) * i2
    d3 = S33 - L30 * L30 - L31 * L31 - L32 * L32
    ok = ok and d3 > 0
    i3 = 1.0 / math.sqrt(d3 if d3 > 0 else 1.0)
    return i0, L10, L20, L30, i1, L21, L31, i2, L32, i3, ok


@njit(cache=True, fastmath=False)
def _fwd4(L, b0, b1, b2, b3):  # type: ignore[no-untyped-def]
    """Solve ``L y = b`` (forward substitution)."""
    i0, L10, L20, L30, i1, L21, L31, i2, L32, i3 = L
    y0 = b0 * i0
    y1 = (b1 - L10 * y0) * i1
    y2 = (b2 - L20 * y0 - L21 * y1) * i2
    y3 = (b3 - L30 * y0 - L31 * y1 - L32 * y2) * i3
    return y0, y1, y2, y3


@njit(cache=True, fastmath=False)
def _bwd4(L, y0, y1, y2, y3):  # type: ignore[no-untyped-def]
    """Solve ``L^T x = y`` (back substitution)."""
    i0, L10, L20, L30, i1, L21, L31, i2, L32, i3 = L
    x3 = y3 * i3
    x2 = (y2 - L32 * x3) * i2
    x1 = (y1 - L21 * x2 - L31 * x3) * i1
    x0 = (y0 - L10 * x1 - L20 * x2 - L30 * x3) * i0
    return x0, x1, x2, x3


@njit(cache=True, fastmath=False)
def _trig_step(old, new, s, c):  # type: ignore[no-untyped-def]
    """sin, cos of ``new`` from those of ``old`` (angle addition, Taylor series of the step), as ``kinfit._trig_update``."""
    d = new - old
    if abs(d) > _POLY_MAX:
        return math.sin(new), math.cos(new)
    d2 = d * d
    t = d2 * (1.0 / 20.0)
    t = 1.0 - t
    t = t * d2
    t = t * (1.0 / 6.0)
    t = 1.0 - t
    sd = t * d
    u = d2 * (1.0 / 30.0)
    u = 1.0 - u
    u = u * d2
    u = u * (1.0 / 12.0)
    u = 1.0 - u
    u = u * d2
    u = u * 0.5
    cd = 1.0 - u
    return s * cd + c * sd, c * cd - s * sd


@njit(parallel=True, cache=True, fastmath=False)
def fit_kernel(E, th, ph, cov, status0, P0, Vb, has_vb, max_iter, max_halvings, tol_chi2, tol_constraint, full_cov,  # type: ignore[no-untyped-def]
               oE, oth, oph, ocov, ochi2, opval, opulls, ostatus, oniter, oconv, ocovf, obeam):
    """Fit all events (threads over blocks of events); writes every output of every event.

    Parameters are C-contiguous arrays: ``E, th, ph`` (n, 3); ``cov`` (n, 3, 3, 3);
    ``status0`` (n,) int8, 0 for valid events, else the validation failure code
    (those events get the measured values and ``n_iter = 0``); ``P0`` (4,);
    ``Vb`` (4, 4) used when ``has_vb``. Outputs: ``oE, oth, oph`` (n, 3),
    ``ocov`` (n, 3, 3, 3), ``ochi2, opval`` (n,), ``opulls`` (n, 3, 3),
    ``ostatus`` int8, ``oniter`` int16, ``oconv`` bool (n,), ``ocovf`` (n, 9, 9)
    when ``full_cov`` (else any size), ``obeam`` (n, 4) when ``has_vb``.

    The event loop is written as one function body on purpose: passing the
    arrays to a per-event helper costs a reference-count update per array and
    call, more than the fit itself. Per-block scratch arrays:
    ``V[k]`` = (VEE, VEt, VEp, Vtt, Vtp, Vpp) of photon k (symmetrised);
    ``cur/prev/stp/new[k]`` = (E, theta, phi) of the current point, the last
    accepted point, the full step from it and the new linearised solution;
    ``trig[k]`` = (sin th, cos th, sin ph, cos ph) at ``cur``;
    ``D[k]`` = (DxE, DyE, Dxt, Dyt, Dzt, Dxp, Dyp) (DzE = cos th, DeE = 1);
    ``G[k, row, param]`` = D V0 (rows x, y, z, e); ``K[k, param]`` = L^-1 G column.
    """
    n = E.shape[0]
    nblk = (n + _BLOCK - 1) // _BLOCK
    total_passes = max_iter * (max_halvings + 1)
    for blk in prange(nblk):
        V = np.empty((3, 6))
        cur = np.empty((3, 3))
        trig = np.empty((3, 4))
        prev = np.zeros((3, 3))
        stp = np.zeros((3, 3))
        new = np.zeros((3, 3))
        D = np.empty((3, 7))
        G = np.empty((3, 4, 3))
        K = np.empty((3, 3, 4))
        lamb = np.zeros(4)
        lprev = np.zeros(4)
        lstep = np.zeros(4)
        lo = blk * _BLOCK
        hi = min(n, lo + _BLOCK)
        for i in range(lo, hi):
            code = status0[i]
            niter = 0
            converged = False
            L = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 1.0, 0.0, 1.0)
            lam = (0.0, 0.0, 0.0, 0.0)
            chi2_new = 0.0
            if code == _OK:
                code = _MAX_ITER
                for k in range(3):
                    V[k, 0] = cov[i, k, 0, 0]
                    V[k, 1] = 0.5 * (cov[i, k, 0, 1] + cov[i, k, 1, 0])
                    V[k, 2] = 0.5 * (cov[i, k, 0, 2] + cov[i, k, 2, 0])
                    V[k, 3] = cov[i, k, 1, 1]
                    V[k, 4] = 0.5 * (cov[i, k, 1, 2] + cov[i, k, 2, 1])
                    V[k, 5] = cov[i, k, 2, 2]
                    cur[k, 0] = E[i, k]
                    cur[k, 1] = th[i, k]
                    cur[k, 2] = ph[i, k]
                # sin(theta) >= 0 on (0, pi); away from the poles sqrt(1 - cos^2) is exact to ~1e-15
                away = True
                for k in range(3):
                    if not (cur[k, 1] > 0.05 and cur[k, 1] < np.pi - 0.05):
                        away = False
                for k in range(3):
                    ct = math.cos(cur[k, 1])
                    trig[k, 1] = ct
                    trig[k, 0] = math.sqrt(1.0 - ct * ct) if away else math.sin(cur[k, 1])
                    trig[k, 2] = math.sin(cur[k, 2])
                    trig[k, 3] = math.cos(cur[k, 2])
                for q in range(4):
                    lamb[q] = 0.0
                tstep = 1.0
                n_halv = 0
                h_prev = np.inf
                chi2_prev = np.inf
                for it in range(total_passes):
                    niter += 1
                    # --- linearise at the current point ----------------------------
                    Hx = 0.0
                    Hy = 0.0
                    Hz = 0.0
                    He = 0.0
                    S00 = 0.0
                    S01 = 0.0
                    S02 = 0.0
                    S03 = 0.0
                    S11 = 0.0
                    S12 = 0.0
                    S13 = 0.0
                    S22 = 0.0
                    S23 = 0.0
                    S33 = 0.0
                    for k in range(3):
                        Ek = cur[k, 0]
                        st = trig[k, 0]
                        ct = trig[k, 1]
                        sp = trig[k, 2]
                        cp = trig[k, 3]
                        VEE = V[k, 0]
                        VEt = V[k, 1]
                        VEp = V[k, 2]
                        Vtt = V[k, 3]
                        Vtp = V[k, 4]
                        Vpp = V[k, 5]
                        DxE = st * cp
                        DyE = st * sp
                        px = Ek * DxE
                        py = Ek * DyE
                        pz = Ek * ct
                        Dxt = pz * cp
                        Dyt = pz * sp
                        Dzt = -(Ek * st)
                        Dxp = -py
                        Dyp = px
                        Hx += px
                        Hy += py
                        Hz += pz
                        He += Ek
                        GxE = DxE * VEE + Dxt * VEt + Dxp * VEp
                        Gxt = DxE * VEt + Dxt * Vtt + Dxp * Vtp
                        Gxp = DxE * VEp + Dxt * Vtp + Dxp * Vpp
                        GyE = DyE * VEE + Dyt * VEt + Dyp * VEp
                        Gyt = DyE * VEt + Dyt * Vtt + Dyp * Vtp
                        Gyp = DyE * VEp + Dyt * Vtp + Dyp * Vpp
                        GzE = ct * VEE + Dzt * VEt
                        Gzt = ct * VEt + Dzt * Vtt
                        Gzp = ct * VEp + Dzt * Vtp
                        S00 += GxE * DxE + Gxt * Dxt + Gxp * Dxp
                        S01 += GxE * DyE + Gxt * Dyt + Gxp * Dyp
                        S02 += GxE * ct + Gxt * Dzt
                        S03 += GxE
                        S11 += GyE * DyE + Gyt * Dyt + Gyp * Dyp
                        S12 += GyE * ct + Gyt * Dzt
                        S13 += GyE
                        S22 += GzE * ct + Gzt * Dzt
                        S23 += GzE
                        S33 += VEE
                        D[k, 0] = DxE
                        D[k, 1] = DyE
                        D[k, 2] = Dxt
                        D[k, 3] = Dyt
                        D[k, 4] = Dzt
                        D[k, 5] = Dxp
                        D[k, 6] = Dyp
                        G[k, 0, 0] = GxE
                        G[k, 0, 1] = Gxt
                        G[k, 0, 2] = Gxp
                        G[k, 1, 0] = GyE
                        G[k, 1, 1] = Gyt
                        G[k, 1, 2] = Gyp
                        G[k, 2, 0] = GzE
                        G[k, 2, 1] = Gzt
                        G[k, 2, 2] = Gzp
                        G[k, 3, 0] = VEE
                        G[k, 3, 1] = VEt
                        G[k, 3, 2] = VEp
                    Hx -= P0[0]
                    Hy -= P0[1]
                    Hz -= P0[2]
                    He -= P0[3]
                    if has_vb:
                        S00 += Vb[0, 0]
                        S01 += Vb[0, 1]
                        S02 += Vb[0, 2]
                        S03 += Vb[0, 3]
                        S11 += Vb[1, 1]
                        S12 += Vb[1, 2]
                        S13 += Vb[1, 3]
                        S22 += Vb[2, 2]
                        S23 += Vb[2, 3]
                        S33 += Vb[3, 3]
                    c = _chol4(S00, S01, S02, S03, S11, S12, S13, S22, S23, S33)
                    ok = c[10]
                    L = (c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7], c[8], c[9])
                    if has_vb:  # constraint residual including the beam shift
                        Hcx = Hx - (Vb[0, 0] * lamb[0] + Vb[0, 1] * lamb[1] + Vb[0, 2] * lamb[2] + Vb[0, 3] * lamb[3])
                        Hcy = Hy - (Vb[1, 0] * lamb[0] + Vb[1, 1] * lamb[1] + Vb[1, 2] * lamb[2] + Vb[1, 3] * lamb[3])
                        Hcz = Hz - (Vb[2, 0] * lamb[0] + Vb[2, 1] * lamb[1] + Vb[2, 2] * lamb[2] + Vb[2, 3] * lamb[3])
                        Hce = He - (Vb[3, 0] * lamb[0] + Vb[3, 1] * lamb[1] + Vb[3, 2] * lamb[2] + Vb[3, 3] * lamb[3])
                    else:
                        Hcx = Hx
                        Hcy = Hy
                        Hcz = Hz
                        Hce = He
                    y = _fwd4(L, Hcx, Hcy, Hcz, Hce)
                    h = y[0] * y[0] + y[1] * y[1] + y[2] * y[2] + y[3] * y[3]
                    # --- step control: reject points whose constraint violation grew --
                    reject = it > 0 and h > h_prev and h > tol_chi2 and n_halv < max_halvings and ok
                    # --- linearised solution ------------------------------------------
                    if it == 0:  # linearised at the measurement: r = H
                        rx = Hx
                        ry = Hy
                        rz = Hz
                        re = He
                    else:
                        rx = 0.0
                        ry = 0.0
                        rz = 0.0
                        re = 0.0
                        for k in range(3):
                            dE = E[i, k] - cur[k, 0]
                            dt = th[i, k] - cur[k, 1]
                            dp = ph[i, k] - cur[k, 2]
                            rx += D[k, 0] * dE + D[k, 2] * dt + D[k, 5] * dp
                            ry += D[k, 1] * dE + D[k, 3] * dt + D[k, 6] * dp
                            rz += trig[k, 1] * dE + D[k, 4] * dt
                            re += dE
                        rx = rx + Hx
                        ry = ry + Hy
                        rz = rz + Hz
                        re = re + He
                    yr = _fwd4(L, rx, ry, rz, re)
                    lam = _bwd4(L, yr[0], yr[1], yr[2], yr[3])
                    chi2_new = yr[0] * yr[0] + yr[1] * yr[1] + yr[2] * yr[2] + yr[3] * yr[3]  # = r^T S^-1 r
                    for k in range(3):
                        sE = G[k, 0, 0] * lam[0] + G[k, 1, 0] * lam[1] + G[k, 2, 0] * lam[2] + G[k, 3, 0] * lam[3]
                        sT = G[k, 0, 1] * lam[0] + G[k, 1, 1] * lam[1] + G[k, 2, 1] * lam[2] + G[k, 3, 1] * lam[3]
                        sP = G[k, 0, 2] * lam[0] + G[k, 1, 2] * lam[1] + G[k, 2, 2] * lam[2] + G[k, 3, 2] * lam[3]
                        new[k, 0] = E[i, k] - sE
                        new[k, 1] = th[i, k] - sT
                        new[k, 2] = ph[i, k] - sP
                    finite = math.isfinite(chi2_new)
                    accept = ok and not reject
                    if (accept and finite and abs(chi2_new - chi2_prev) < tol_chi2 and abs(Hcx) < tol_constraint
                            and abs(Hcy) < tol_constraint and abs(Hcz) < tol_constraint and abs(Hce) < tol_constraint):
                        converged = True
                        code = _OK
                        break
                    if not ok:
                        code = _BAD_S
                        break
                    if accept and not finite:
                        code = _BAD_ITER
                        break
                    if niter >= max_iter:
                        break
                    # --- advance: accepted -> new solution; rejected -> half-way back --
                    if accept:
                        for k in range(3):
                            for a in range(3):
                                prev[k, a] = cur[k, a]
                                stp[k, a] = new[k, a]
                            s_, c_ = _trig_step(cur[k, 1], new[k, 1], trig[k, 0], trig[k, 1])
                            trig[k, 0] = s_
                            trig[k, 1] = c_
                            s_, c_ = _trig_step(cur[k, 2], new[k, 2], trig[k, 2], trig[k, 3])
                            trig[k, 2] = s_
                            trig[k, 3] = c_
                            for a in range(3):
                                cur[k, a] = new[k, a]
                        if has_vb:
                            for q in range(4):
                                lprev[q] = lamb[q]
                                lstep[q] = lam[q]
                                lamb[q] = lam[q]
                        tstep = 1.0
                        n_halv = 0
                        h_prev = h
                        chi2_prev = chi2_new
                    else:  # rejected: half-way back towards the last accepted point
                        tstep *= 0.5
                        n_halv += 1
                    # keep iterates physical (E > 0, 0 < theta < pi): halve towards the
                    # last accepted point, at most 60 times
                    moved = not accept
                    for _h in range(61):
                        if moved:  # cur = prev + t (stp - prev), sin/cos evaluated there
                            for k in range(3):
                                for a in range(3):
                                    p_ = prev[k, a]
                                    cur[k, a] = p_ + tstep * (stp[k, a] - p_)
                                trig[k, 0] = math.sin(cur[k, 1])
                                trig[k, 1] = math.cos(cur[k, 1])
                                trig[k, 2] = math.sin(cur[k, 2])
                                trig[k, 3] = math.cos(cur[k, 2])
                            if has_vb:
                                for q in range(4):
                                    p_ = lprev[q]
                                    lamb[q] = p_ + tstep * (lstep[q] - p_)
                        if _h == 60:
                            break
                        unphys = False
                        for k in range(3):
                            if cur[k, 0] <= 0 or cur[k, 1] <= 0 or cur[k, 1] >= np.pi:
                                unphys = True
                        if not unphys:
                            break
                        tstep *= 0.5
                        moved = True
            ostatus[i] = code
            oniter[i] = niter
            oconv[i] = converged
            if converged:
                # fitted point, its covariance V0 - (L^-1 G)^T (L^-1 G), pulls, chi2, p-value
                for k in range(3):
                    for b in range(3):
                        kk = _fwd4(L, G[k, 0, b], G[k, 1, b], G[k, 2, b], G[k, 3, b])
                        K[k, b, 0] = kk[0]
                        K[k, b, 1] = kk[1]
                        K[k, b, 2] = kk[2]
                        K[k, b, 3] = kk[3]
                for k in range(3):
                    q = 0
                    for a in range(3):
                        for b in range(a, 3):
                            red = (K[k, a, 0] * K[k, b, 0] + K[k, a, 1] * K[k, b, 1] + K[k, a, 2] * K[k, b, 2]
                                   + K[k, a, 3] * K[k, b, 3])
                            val = V[k, q] - red
                            ocov[i, k, a, b] = val
                            ocov[i, k, b, a] = val
                            if a == b:
                                meas = E[i, k] if a == 0 else (th[i, k] if a == 1 else ph[i, k])
                                opulls[i, k, a] = (meas - new[k, a]) / math.sqrt(max(red, 1e-300))
                            q += 1
                    oE[i, k] = new[k, 0]
                    oth[i, k] = new[k, 1]
                    oph[i, k] = (new[k, 2] + np.pi) % _TWO_PI - np.pi
                if full_cov:
                    for k in range(3):
                        for j in range(3):
                            for a in range(3):
                                for b in range(3):
                                    if j == k:
                                        v = ocov[i, k, a, b]
                                    else:
                                        s = K[k, a, 0] * K[j, b, 0] + K[k, a, 1] * K[j, b, 1]
                                        s += K[k, a, 2] * K[j, b, 2] + K[k, a, 3] * K[j, b, 3]
                                        v = -s
                                    ocovf[i, 3 * k + a, 3 * j + b] = v
                ochi2[i] = chi2_new
                hh = 0.5 * chi2_new
                opval[i] = math.exp(-hh) * (1.0 + hh)
                if has_vb:
                    for q in range(4):
                        obeam[i, q] = P0[q] + Vb[q, 0] * lam[0] + Vb[q, 1] * lam[1] + Vb[q, 2] * lam[2] + Vb[q, 3] * lam[3]
            else:
                # not converged (or invalid input): measured values, chi2 = inf, p = 0, NaN pulls
                for k in range(3):
                    oE[i, k] = E[i, k]
                    oth[i, k] = th[i, k]
                    oph[i, k] = ph[i, k]
                    for a in range(3):
                        opulls[i, k, a] = np.nan
                        for b in range(3):
                            ocov[i, k, a, b] = cov[i, k, a, b]
                ochi2[i] = np.inf
                opval[i] = 0.0
                if full_cov:
                    for r in range(9):
                        for c2 in range(9):
                            ocovf[i, r, c2] = 0.0
                    for k in range(3):
                        for a in range(3):
                            for b in range(3):
                                ocovf[i, 3 * k + a, 3 * k + b] = cov[i, k, a, b]
                if has_vb:
                    for q in range(4):
                        obeam[i, q] = P0[q]

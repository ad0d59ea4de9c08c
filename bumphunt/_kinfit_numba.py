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
from numba import config, get_num_threads, njit, prange, threading_layer

# Unless the user chose a threading layer (NUMBA_THREADING_LAYER), use a fork-safe
# one: with GNU OpenMP, a process forked after a parallel kernel ran (e.g. a
# multiprocessing pool started after a fit) aborts when it runs the kernel itself.
# Thread safety is provided by KERNEL_LOCK below.
if config.THREADING_LAYER == "default":
    config.THREADING_LAYER = "forksafe"

__all__ = ["fit_kernel", "KERNEL_LOCK", "n_threads", "layer"]

#: Serialises kernel launches from concurrent Python threads (the kernel
#: already uses every core; this also keeps thread-unsafe threading layers safe).
KERNEL_LOCK = threading.Lock()

# status codes (must match bumphunt.kinfit)
_OK, _BAD_S, _MAX_ITER, _BAD_ITER = 0, 5, 6, 7
_POLY_MAX = 0.02  # rad, as bumphunt.kinfit._POLY_MAX
_TWO_PI = 2 * np.pi
_BLOCK = 2048  # events per scheduling block (one thread at a time)
_LANES = 8  # events fitted side by side within a block


def n_threads() -> int:
    """Number of threads the kernel runs on (``NUMBA_NUM_THREADS`` / ``numba.set_num_threads``)."""
    return int(get_num_threads())


def layer() -> str:
    """Name of the numba threading layer in use (after the first kernel call)."""
    try:
        return str(threading_layer())
    except ValueError:  # no parallel region has run yet
        return "not initialised"


@njit(cache=True, fastmath=False, error_model="numpy")
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


@njit(cache=True, fastmath=False, error_model="numpy")
def _fwd4(L, b0, b1, b2, b3):  # type: ignore[no-untyped-def]
    """Solve ``L y = b`` (forward substitution)."""
    i0, L10, L20, L30, i1, L21, L31, i2, L32, i3 = L
    y0 = b0 * i0
    y1 = (b1 - L10 * y0) * i1
    y2 = (b2 - L20 * y0 - L21 * y1) * i2
    y3 = (b3 - L30 * y0 - L31 * y1 - L32 * y2) * i3
    return y0, y1, y2, y3


@njit(cache=True, fastmath=False, error_model="numpy")
def _bwd4(L, y0, y1, y2, y3):  # type: ignore[no-untyped-def]
    """Solve ``L^T x = y`` (back substitution)."""
    i0, L10, L20, L30, i1, L21, L31, i2, L32, i3 = L
    x3 = y3 * i3
    x2 = (y2 - L32 * x3) * i2
    x1 = (y1 - L21 * x2 - L31 * x3) * i1
    x0 = (y0 - L10 * x1 - L20 * x2 - L30 * x3) * i0
    return x0, x1, x2, x3


@njit(cache=True, fastmath=False, error_model="numpy")
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


_BAD_FINITE, _BAD_ENERGY, _BAD_THETA, _BAD_COV = 1, 2, 3, 4


@njit(cache=True, fastmath=False, error_model="numpy", inline="always")
def _validate_event(i, E, th, ph, cov):  # type: ignore[no-untyped-def]
    """Status of event ``i`` before fitting (0 valid), the same tests in the same order as ``kinfit._validate``.

    Non-finite input, then E <= 0, then theta outside (0, pi), then a photon
    covariance that is not symmetric (relative 1e-9) positive definite
    (leading minors > 0).
    """
    finite = True
    for k in range(3):
        if not (math.isfinite(E[i, k]) and math.isfinite(th[i, k]) and math.isfinite(ph[i, k])):
            finite = False
        for a in range(3):
            for b in range(3):
                if not math.isfinite(cov[i, k, a, b]):
                    finite = False
    if not finite:
        return _BAD_FINITE
    for k in range(3):
        if not E[i, k] > 0:
            return _BAD_ENERGY
    for k in range(3):
        if not (th[i, k] > 0 and th[i, k] < np.pi):
            return _BAD_THETA
    for k in range(3):
        c00 = cov[i, k, 0, 0]
        c11 = cov[i, k, 1, 1]
        c22 = cov[i, k, 2, 2]
        c01 = cov[i, k, 0, 1]
        c02 = cov[i, k, 0, 2]
        c12 = cov[i, k, 1, 2]
        d01 = c01 - cov[i, k, 1, 0]
        d02 = c02 - cov[i, k, 2, 0]
        d12 = c12 - cov[i, k, 2, 1]
        asym = False
        if d01 != 0 or d02 != 0 or d12 != 0:
            scale = math.sqrt(abs(c00 * c11)) + math.sqrt(abs(c00 * c22)) + math.sqrt(abs(c11 * c22))
            asym = (abs(d01) + abs(d02) + abs(d12)) > 1e-9 * scale
        m2 = c00 * c11 - c01 * c01
        det = c00 * (c11 * c22 - c12 * c12) - c01 * (c01 * c22 - c12 * c02) + c02 * (c01 * c12 - c11 * c02)
        if not (c00 > 0 and m2 > 0 and det > 0) or asym:
            return _BAD_COV
    return _OK


@njit(cache=True, fastmath=False, error_model="numpy")
def _write_measured(i, code, niter, E, th, ph, cov, P0, has_vb, full_cov,  # type: ignore[no-untyped-def]
                    oE, oth, oph, ocov, ochi2, opval, opulls, ostatus, oniter, oconv, ocovf, obeam):
    """Outputs of an event that did not converge (rare): measured values, chi2 = inf, p = 0, NaN pulls."""
    ostatus[i] = code
    oniter[i] = niter
    oconv[i] = False
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
            for c in range(9):
                ocovf[i, r, c] = 0.0
        for k in range(3):
            for a in range(3):
                for b in range(3):
                    ocovf[i, 3 * k + a, 3 * k + b] = cov[i, k, a, b]
    if has_vb:
        for q in range(4):
            obeam[i, q] = P0[q]


@njit(parallel=True, cache=True, fastmath=False, error_model="numpy")
def fit_kernel(E, th, ph, cov, P0, Vb, has_vb, max_iter, max_halvings, tol_chi2, tol_constraint, full_cov,  # type: ignore[no-untyped-def]
               oE, oth, oph, ocov, ochi2, opval, opulls, ostatus, oniter, oconv, ocovf, obeam):
    """Fit all events; writes every output of every event.

    Parameters are C-contiguous arrays: ``E, th, ph`` (n, 3); ``cov`` (n, 3, 3, 3);
    ``P0`` (4,);
    ``Vb`` (4, 4) used when ``has_vb``. Outputs: ``oE, oth, oph`` (n, 3),
    ``ocov`` (n, 3, 3, 3), ``ochi2, opval`` (n,), ``opulls`` (n, 3, 3),
    ``ostatus`` int8, ``oniter`` int16, ``oconv`` bool (n,), ``ocovf`` (n, 9, 9)
    when ``full_cov`` (else any size), ``obeam`` (n, 4) when ``has_vb``.

    Each event is first validated exactly as ``bumphunt.kinfit._validate``
    does (``_validate_event``); invalid events get the measured values, their
    status code and ``n_iter = 0``.

    Scheduling: threads take blocks of ``_BLOCK`` events. Inside a block,
    ``_LANES`` events are fitted side by side, one per lane: every pass
    linearises and solves all lanes in straight-line loops over the lane
    index (independent dependency chains the CPU overlaps, and the compiler
    may vectorise), then each lane takes its own decision (converged,
    failed, accept, halve) and a finished lane is refilled with the next
    event. Each lane performs exactly the operations of the per-event
    algorithm, so the lane count does not change any result.

    Lane state (last axis = lane): ``cur/prev/stp/new[param, photon]`` with
    param (E, theta, phi): the current point, the last accepted point, the
    full step from it and the new linearised solution; ``meas`` the
    measurement; ``trig[(sin th, cos th, sin ph, cos ph), photon]`` at
    ``cur``; ``V[(EE, Et, Ep, tt, tp, pp), photon]`` (symmetrised);
    ``D[(xE, yE, xt, yt, zt, xp, yp), photon]`` the Jacobian (zE = cos th,
    eE = 1); ``G[row, param, photon]`` = D V0 with rows (x, y, z, e);
    ``S`` the 10 components of D V0 D^T (+ Vb); ``L`` its Cholesky factor.
    """
    n = E.shape[0]
    nblk = (n + _BLOCK - 1) // _BLOCK
    W = _LANES
    for blk in prange(nblk):
        lo = blk * _BLOCK
        hi = min(n, lo + _BLOCK)
        meas = np.zeros((3, 3, W))
        cur = np.zeros((3, 3, W))
        prev = np.zeros((3, 3, W))
        stp = np.zeros((3, 3, W))
        new = np.zeros((3, 3, W))
        trig = np.zeros((4, 3, W))
        V = np.zeros((6, 3, W))
        D = np.zeros((7, 3, W))
        G = np.zeros((4, 3, 3, W))
        S = np.zeros((10, W))
        H = np.zeros((4, W))
        Hc = np.zeros((4, W))
        Lf = np.zeros((10, W))
        lam = np.zeros((4, W))
        lamb = np.zeros((4, W))
        lprev = np.zeros((4, W))
        lstep = np.zeros((4, W))
        hh = np.zeros(W)
        chi2n = np.zeros(W)
        okl = np.zeros(W, dtype=np.bool_)
        K = np.zeros((3, 3, 4))  # L^-1 G columns of a converged lane (full covariance)
        ev = np.full(W, -1, dtype=np.int64)
        niter = np.zeros(W, dtype=np.int64)
        n_halv = np.zeros(W, dtype=np.int64)
        tstep = np.ones(W)
        h_prev = np.zeros(W)
        chi2_prev = np.zeros(W)
        nxt = lo
        while True:
            # --- refill idle lanes with the next valid events --------------------------
            n_active = 0
            for l in range(W):
                if ev[l] < 0:
                    while nxt < hi:
                        code = _validate_event(nxt, E, th, ph, cov)
                        if code == _OK:
                            break
                        _write_measured(nxt, code, 0, E, th, ph, cov, P0, has_vb, full_cov, oE, oth, oph,
                                        ocov, ochi2, opval, opulls, ostatus, oniter, oconv, ocovf, obeam)
                        nxt += 1
                    if nxt < hi:
                        i = nxt
                        nxt += 1
                        ev[l] = i
                        away = True  # sin(theta) >= 0 on (0, pi): away from the poles sqrt(1 - cos^2) is exact to ~1e-15
                        for k in range(3):
                            if not (th[i, k] > 0.05 and th[i, k] < np.pi - 0.05):
                                away = False
                        for k in range(3):
                            meas[0, k, l] = E[i, k]
                            meas[1, k, l] = th[i, k]
                            meas[2, k, l] = ph[i, k]
                            cur[0, k, l] = E[i, k]
                            cur[1, k, l] = th[i, k]
                            cur[2, k, l] = ph[i, k]
                            V[0, k, l] = cov[i, k, 0, 0]
                            V[1, k, l] = 0.5 * (cov[i, k, 0, 1] + cov[i, k, 1, 0])
                            V[2, k, l] = 0.5 * (cov[i, k, 0, 2] + cov[i, k, 2, 0])
                            V[3, k, l] = cov[i, k, 1, 1]
                            V[4, k, l] = 0.5 * (cov[i, k, 1, 2] + cov[i, k, 2, 1])
                            V[5, k, l] = cov[i, k, 2, 2]
                            ct = math.cos(th[i, k])
                            trig[1, k, l] = ct
                            trig[0, k, l] = math.sqrt(1.0 - ct * ct) if away else math.sin(th[i, k])
                            trig[2, k, l] = math.sin(ph[i, k])
                            trig[3, k, l] = math.cos(ph[i, k])
                        for q in range(4):
                            lamb[q, l] = 0.0
                        niter[l] = 0
                        n_halv[l] = 0
                        tstep[l] = 1.0
                        h_prev[l] = np.inf
                        chi2_prev[l] = np.inf
                if ev[l] >= 0:
                    n_active += 1
            if n_active == 0:
                break
            # --- linearise every lane: Jacobian, G = D V0, S = D V0 D^T, balance H -----
            for q in range(10):
                for l in range(W):
                    S[q, l] = 0.0
            for q in range(4):
                for l in range(W):
                    H[q, l] = 0.0
            for k in range(3):
                for l in range(W):
                    Ek = cur[0, k, l]
                    st = trig[0, k, l]
                    ct = trig[1, k, l]
                    sp = trig[2, k, l]
                    cp = trig[3, k, l]
                    VEE = V[0, k, l]
                    VEt = V[1, k, l]
                    VEp = V[2, k, l]
                    Vtt = V[3, k, l]
                    Vtp = V[4, k, l]
                    Vpp = V[5, k, l]
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
                    H[0, l] += px
                    H[1, l] += py
                    H[2, l] += pz
                    H[3, l] += Ek
                    GxE = DxE * VEE + Dxt * VEt + Dxp * VEp
                    Gxt = DxE * VEt + Dxt * Vtt + Dxp * Vtp
                    Gxp = DxE * VEp + Dxt * Vtp + Dxp * Vpp
                    GyE = DyE * VEE + Dyt * VEt + Dyp * VEp
                    Gyt = DyE * VEt + Dyt * Vtt + Dyp * Vtp
                    Gyp = DyE * VEp + Dyt * Vtp + Dyp * Vpp
                    GzE = ct * VEE + Dzt * VEt
                    Gzt = ct * VEt + Dzt * Vtt
                    Gzp = ct * VEp + Dzt * Vtp
                    S[0, l] += GxE * DxE + Gxt * Dxt + Gxp * Dxp
                    S[1, l] += GxE * DyE + Gxt * Dyt + Gxp * Dyp
                    S[2, l] += GxE * ct + Gxt * Dzt
                    S[3, l] += GxE
                    S[4, l] += GyE * DyE + Gyt * Dyt + Gyp * Dyp
                    S[5, l] += GyE * ct + Gyt * Dzt
                    S[6, l] += GyE
                    S[7, l] += GzE * ct + Gzt * Dzt
                    S[8, l] += GzE
                    S[9, l] += VEE
                    D[0, k, l] = DxE
                    D[1, k, l] = DyE
                    D[2, k, l] = Dxt
                    D[3, k, l] = Dyt
                    D[4, k, l] = Dzt
                    D[5, k, l] = Dxp
                    D[6, k, l] = Dyp
                    G[0, 0, k, l] = GxE
                    G[0, 1, k, l] = Gxt
                    G[0, 2, k, l] = Gxp
                    G[1, 0, k, l] = GyE
                    G[1, 1, k, l] = Gyt
                    G[1, 2, k, l] = Gyp
                    G[2, 0, k, l] = GzE
                    G[2, 1, k, l] = Gzt
                    G[2, 2, k, l] = Gzp
                    G[3, 0, k, l] = VEE
                    G[3, 1, k, l] = VEt
                    G[3, 2, k, l] = VEp
            if has_vb:
                for l in range(W):
                    S[0, l] += Vb[0, 0]
                    S[1, l] += Vb[0, 1]
                    S[2, l] += Vb[0, 2]
                    S[3, l] += Vb[0, 3]
                    S[4, l] += Vb[1, 1]
                    S[5, l] += Vb[1, 2]
                    S[6, l] += Vb[1, 3]
                    S[7, l] += Vb[2, 2]
                    S[8, l] += Vb[2, 3]
                    S[9, l] += Vb[3, 3]
            # --- solve every lane: Cholesky of S, constraint violation h, new solution ----
            # (the factorisation, a chain of square roots and divisions, gets a loop of its
            # own so that the lanes' chains overlap in the CPU)
            for l in range(W):
                c = _chol4(S[0, l], S[1, l], S[2, l], S[3, l], S[4, l], S[5, l], S[6, l], S[7, l], S[8, l], S[9, l])
                okl[l] = c[10]
                Lf[0, l] = c[0]
                Lf[1, l] = c[1]
                Lf[2, l] = c[2]
                Lf[3, l] = c[3]
                Lf[4, l] = c[4]
                Lf[5, l] = c[5]
                Lf[6, l] = c[6]
                Lf[7, l] = c[7]
                Lf[8, l] = c[8]
                Lf[9, l] = c[9]
            for l in range(W):
                Hx = H[0, l] - P0[0]
                Hy = H[1, l] - P0[1]
                Hz = H[2, l] - P0[2]
                He = H[3, l] - P0[3]
                L = (Lf[0, l], Lf[1, l], Lf[2, l], Lf[3, l], Lf[4, l], Lf[5, l], Lf[6, l], Lf[7, l], Lf[8, l], Lf[9, l])
                if has_vb:  # constraint residual including the beam shift
                    Hcx = Hx - (Vb[0, 0] * lamb[0, l] + Vb[0, 1] * lamb[1, l] + Vb[0, 2] * lamb[2, l] + Vb[0, 3] * lamb[3, l])
                    Hcy = Hy - (Vb[1, 0] * lamb[0, l] + Vb[1, 1] * lamb[1, l] + Vb[1, 2] * lamb[2, l] + Vb[1, 3] * lamb[3, l])
                    Hcz = Hz - (Vb[2, 0] * lamb[0, l] + Vb[2, 1] * lamb[1, l] + Vb[2, 2] * lamb[2, l] + Vb[2, 3] * lamb[3, l])
                    Hce = He - (Vb[3, 0] * lamb[0, l] + Vb[3, 1] * lamb[1, l] + Vb[3, 2] * lamb[2, l] + Vb[3, 3] * lamb[3, l])
                else:
                    Hcx = Hx
                    Hcy = Hy
                    Hcz = Hz
                    Hce = He
                Hc[0, l] = Hcx
                Hc[1, l] = Hcy
                Hc[2, l] = Hcz
                Hc[3, l] = Hce
                y = _fwd4(L, Hcx, Hcy, Hcz, Hce)
                hh[l] = y[0] * y[0] + y[1] * y[1] + y[2] * y[2] + y[3] * y[3]
                # r = D (alpha0 - alpha) + H (= H exactly at the first pass, where alpha = alpha0)
                rx = 0.0
                ry = 0.0
                rz = 0.0
                re = 0.0
                for k in range(3):
                    dE = meas[0, k, l] - cur[0, k, l]
                    dt = meas[1, k, l] - cur[1, k, l]
                    dp = meas[2, k, l] - cur[2, k, l]
                    rx += D[0, k, l] * dE + D[2, k, l] * dt + D[5, k, l] * dp
                    ry += D[1, k, l] * dE + D[3, k, l] * dt + D[6, k, l] * dp
                    rz += trig[1, k, l] * dE + D[4, k, l] * dt
                    re += dE
                rx = rx + Hx
                ry = ry + Hy
                rz = rz + Hz
                re = re + He
                yr = _fwd4(L, rx, ry, rz, re)
                la = _bwd4(L, yr[0], yr[1], yr[2], yr[3])
                chi2n[l] = yr[0] * yr[0] + yr[1] * yr[1] + yr[2] * yr[2] + yr[3] * yr[3]  # = r^T S^-1 r
                for q in range(4):
                    lam[q, l] = la[q]
                for k in range(3):
                    for a in range(3):
                        sh = G[0, a, k, l] * la[0] + G[1, a, k, l] * la[1] + G[2, a, k, l] * la[2] + G[3, a, k, l] * la[3]
                        new[a, k, l] = meas[a, k, l] - sh
            # --- per-lane decisions -------------------------------------------------------
            for l in range(W):
                i = ev[l]
                if i < 0:
                    continue
                niter[l] += 1
                ok = okl[l]
                h = hh[l]
                chi2_new = chi2n[l]
                reject = h > h_prev[l] and h > tol_chi2 and n_halv[l] < max_halvings and ok
                accept = ok and not reject
                finite = math.isfinite(chi2_new)
                if (accept and finite and abs(chi2_new - chi2_prev[l]) < tol_chi2 and abs(Hc[0, l]) < tol_constraint
                        and abs(Hc[1, l]) < tol_constraint and abs(Hc[2, l]) < tol_constraint
                        and abs(Hc[3, l]) < tol_constraint):
                    # converged: fitted point, covariance V0 - (L^-1 G)^T (L^-1 G), pulls, chi2, p-value
                    L = (Lf[0, l], Lf[1, l], Lf[2, l], Lf[3, l], Lf[4, l], Lf[5, l], Lf[6, l], Lf[7, l], Lf[8, l], Lf[9, l])
                    for k in range(3):
                        k0 = _fwd4(L, G[0, 0, k, l], G[1, 0, k, l], G[2, 0, k, l], G[3, 0, k, l])
                        k1 = _fwd4(L, G[0, 1, k, l], G[1, 1, k, l], G[2, 1, k, l], G[3, 1, k, l])
                        k2 = _fwd4(L, G[0, 2, k, l], G[1, 2, k, l], G[2, 2, k, l], G[3, 2, k, l])
                        r00 = k0[0] * k0[0] + k0[1] * k0[1] + k0[2] * k0[2] + k0[3] * k0[3]
                        r01 = k0[0] * k1[0] + k0[1] * k1[1] + k0[2] * k1[2] + k0[3] * k1[3]
                        r02 = k0[0] * k2[0] + k0[1] * k2[1] + k0[2] * k2[2] + k0[3] * k2[3]
                        r11 = k1[0] * k1[0] + k1[1] * k1[1] + k1[2] * k1[2] + k1[3] * k1[3]
                        r12 = k1[0] * k2[0] + k1[1] * k2[1] + k1[2] * k2[2] + k1[3] * k2[3]
                        r22 = k2[0] * k2[0] + k2[1] * k2[1] + k2[2] * k2[2] + k2[3] * k2[3]
                        v00 = V[0, k, l] - r00
                        v01 = V[1, k, l] - r01
                        v02 = V[2, k, l] - r02
                        v11 = V[3, k, l] - r11
                        v12 = V[4, k, l] - r12
                        v22 = V[5, k, l] - r22
                        ocov[i, k, 0, 0] = v00
                        ocov[i, k, 0, 1] = v01
                        ocov[i, k, 0, 2] = v02
                        ocov[i, k, 1, 0] = v01
                        ocov[i, k, 1, 1] = v11
                        ocov[i, k, 1, 2] = v12
                        ocov[i, k, 2, 0] = v02
                        ocov[i, k, 2, 1] = v12
                        ocov[i, k, 2, 2] = v22
                        fE = new[0, k, l]
                        fT = new[1, k, l]
                        fP = new[2, k, l]
                        opulls[i, k, 0] = (meas[0, k, l] - fE) / math.sqrt(max(r00, 1e-300))
                        opulls[i, k, 1] = (meas[1, k, l] - fT) / math.sqrt(max(r11, 1e-300))
                        opulls[i, k, 2] = (meas[2, k, l] - fP) / math.sqrt(max(r22, 1e-300))
                        oE[i, k] = fE
                        oth[i, k] = fT
                        x = fP + np.pi  # phi in (-pi, pi]: (phi + pi) mod 2 pi - pi, fmod only when needed
                        if not (x >= 0.0 and x < _TWO_PI):
                            x = x % _TWO_PI
                        oph[i, k] = x - np.pi
                        if full_cov:
                            for q in range(4):
                                K[k, 0, q] = k0[q]
                                K[k, 1, q] = k1[q]
                                K[k, 2, q] = k2[q]
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
                    half = 0.5 * chi2_new
                    opval[i] = math.exp(-half) * (1.0 + half)
                    if has_vb:
                        for q in range(4):
                            obeam[i, q] = (P0[q] + Vb[q, 0] * lam[0, l] + Vb[q, 1] * lam[1, l] + Vb[q, 2] * lam[2, l]
                                           + Vb[q, 3] * lam[3, l])
                    ostatus[i] = _OK
                    oniter[i] = niter[l]
                    oconv[i] = True
                    ev[l] = -1
                    continue
                code = -1
                if not ok:
                    code = _BAD_S
                elif accept and not finite:
                    code = _BAD_ITER
                elif niter[l] >= max_iter:
                    code = _MAX_ITER
                if code >= 0:
                    _write_measured(i, code, niter[l], E, th, ph, cov, P0, has_vb, full_cov, oE, oth, oph, ocov, ochi2,
                                    opval, opulls, ostatus, oniter, oconv, ocovf, obeam)
                    ev[l] = -1
                    continue
                # --- advance: accepted -> new solution; rejected -> half-way back ------------
                if accept:
                    for k in range(3):
                        for a in range(3):
                            prev[a, k, l] = cur[a, k, l]
                            stp[a, k, l] = new[a, k, l]
                        s_, c_ = _trig_step(cur[1, k, l], new[1, k, l], trig[0, k, l], trig[1, k, l])
                        trig[0, k, l] = s_
                        trig[1, k, l] = c_
                        s_, c_ = _trig_step(cur[2, k, l], new[2, k, l], trig[2, k, l], trig[3, k, l])
                        trig[2, k, l] = s_
                        trig[3, k, l] = c_
                        for a in range(3):
                            cur[a, k, l] = new[a, k, l]
                    if has_vb:
                        for q in range(4):
                            lprev[q, l] = lamb[q, l]
                            lstep[q, l] = lam[q, l]
                            lamb[q, l] = lam[q, l]
                    tstep[l] = 1.0
                    n_halv[l] = 0
                    h_prev[l] = h
                    chi2_prev[l] = chi2_new
                else:
                    tstep[l] *= 0.5
                    n_halv[l] += 1
                # keep iterates physical (E > 0, 0 < theta < pi): halve towards the last
                # accepted point, at most 60 times
                moved = not accept
                for _h in range(61):
                    if moved:  # cur = prev + t (stp - prev), sin/cos evaluated there
                        t = tstep[l]
                        for k in range(3):
                            for a in range(3):
                                p_ = prev[a, k, l]
                                cur[a, k, l] = p_ + t * (stp[a, k, l] - p_)
                            trig[0, k, l] = math.sin(cur[1, k, l])
                            trig[1, k, l] = math.cos(cur[1, k, l])
                            trig[2, k, l] = math.sin(cur[2, k, l])
                            trig[3, k, l] = math.cos(cur[2, k, l])
                        if has_vb:
                            for q in range(4):
                                p_ = lprev[q, l]
                                lamb[q, l] = p_ + t * (lstep[q, l] - p_)
                    if _h == 60:
                        break
                    unphys = False
                    for k in range(3):
                        if cur[0, k, l] <= 0 or cur[1, k, l] <= 0 or cur[1, k, l] >= np.pi:
                            unphys = True
                    if not unphys:
                        break
                    tstep[l] *= 0.5
                    moved = True

"""Compiled engine of the 4C kinematic fit (numba), vectorised across events.

This module holds the ``engine="numba"`` implementation behind
``bumphunt.kinfit.fit``: ``fit_numba`` allocates the outputs and launches
``fit_kernel``. It is imported only when that engine is used (never by
``import bumphunt`` or the CLI's ``--help``), because importing numba and
loading the compiled kernel takes about a second. Importing it does no work:
numba's settings (``configure_numba``) are applied when the engine is first
chosen (``bumphunt.kinfit.api.resolve_engine``) and again, idempotently, by
``fit_numba``.

Why one long file: the kernel is one unit. Every function below shares the
layout of the lane scratch vector (the row offsets ``_MEAS`` ... ``_OKC``) and
is inlined into the next (``inline="always"``), and numba caches compiled
code per function keyed on the timestamp of the file that defines it: a
helper in another file could change without invalidating the cached kernels
that inlined it. Keeping the kernel in one file keeps its cache consistent.
The numbers it shares with the other engines (status codes from
``bumphunt.kinfit.result``, ``POLY_MAX`` and the other constants of
``bumphunt.kinfit.options``) are imported from there once; numba freezes them
as compile-time constants, so after changing one of them delete the cached
kernel (see ``bumphunt.kinfit.options``).

The algorithm is the one described in ``bumphunt.kinfit`` (iterated
linearisation with Lagrange multipliers, step halving on growing constraint
violation, halving back into the physical region, convergence on the chi2
change and the constraint residuals, optional soft beam constraint), written
in scalar closed-form algebra: 3x3 blocks per photon, the 4x4 constraint
system ``S = D V0 D^T (+ Vb)`` factorised by Cholesky. Every floating-point
expression is evaluated in the same order as in the numpy engine
(``bumphunt.kinfit.engine_numpy``), so both give the same numbers to rounding
(the only differences come from the last bit of sin/cos/exp); the tests check
agreement to 1e-12. The two engines are deliberately independent
implementations, so that each checks the other.

Layout (SIMD across events)
---------------------------
Events are distributed over threads in blocks of ``_BLOCK`` (``prange``).
A block is first *staged* (``_stage_block``): validity tests, the
symmetrised covariance and sin/cos of the measured angles of all its photons,
in loops vectorised over photons. Its events are then fitted in batches of
``_NL``, one per *lane*, with the state of all lanes in one scratch vector
holding one row of ``_R`` doubles per quantity (structure of arrays). One
pass (``_lane_pass``) linearises, solves and takes the step decisions of
every lane in a single loop over the lanes whose body has no branches
(decisions are selects), which LLVM vectorises across events (AVX2/AVX-512)
without any reassociation: each lane performs exactly the IEEE operations of
the per-event algorithm, so results do not depend on the lane, the batch,
the block or the number of threads. The rows are a compile-time stride
apart and the loops have compile-time trip counts, which lets LLVM prove
that the rows do not overlap and vectorise without masked tails. Lanes that
have converged or failed keep their point (recomputing its linearisation
reproduces the converged values bit for bit) until the whole batch is done;
with about three linearisations for almost every event, batches waste
little. The rare cases (a rejected step to halve, an angle step too large
for the angle-addition update, a step out of the physical region) are only
flagged by the vector loop and handled by scalar code (``_step_control``).
Fitted covariances and pulls are computed for the whole batch in a second
vectorised loop (``_finish_outputs``), then written out (``_write_batch``).

sin/cos are not vectorised by LLVM (no vector math library here): the
measured angles' sin/cos come from ``sincos``, a vectorisable Cody-Waite
reduction by pi/2 with Taylor polynomials (within 2 ulp of libm); after a
step they come from the angle-addition theorem with a short Taylor series of
the (small) step, as in the numpy engine.

Input validation applies the tests of ``bumphunt.kinfit.inputs.event_status``
with the same precedence; the kernel writes every output field of every
event, so the caller allocates with ``np.empty``.

Compilation: ``cache=True`` stores the machine code next to this file
(``__pycache__``, or ``NUMBA_CACHE_DIR``); the first call after installing or
changing this file compiles for a minute on a busy machine, later processes
load the cached kernel. No fast-math flags are used, so freshly compiled and
cached kernels give bit-identical results.

Threads: numba's thread pool, serialised between Python threads by
``KERNEL_LOCK``. Unless the user chose a threading layer
(``NUMBA_THREADING_LAYER``), ``configure_numba`` selects a fork-safe one
before the kernel first runs: with GNU OpenMP, a process forked after a
parallel kernel ran (e.g. a multiprocessing pool started after a fit) aborts
when it runs the kernel itself.

This kernel is hand-written because no library fits millions of tiny
constrained least-squares problems at this speed; it mirrors the numpy
engine line by line.
"""

from __future__ import annotations

import math
import threading

import numpy as np
from numba import config, get_num_threads, njit, prange, threading_layer
from numpy.typing import NDArray

from .options import MAX_PHYSICAL_HALVINGS, POLE_MARGIN, POLY_MAX, SYMMETRY_TOL, VARIANCE_FLOOR, FitOptions
from .result import BAD_COV, BAD_ENERGY, BAD_FINITE, BAD_ITER, BAD_S, BAD_THETA, MAX_ITER, OK, KinFitResult

__all__ = ["fit_numba", "configure_numba", "fit_kernel", "KERNEL_LOCK", "n_threads", "layer", "sincos", "SINCOS_MAX"]

#: Serialises kernel launches from concurrent Python threads (the kernel
#: already uses every core; this also keeps thread-unsafe threading layers safe).
KERNEL_LOCK = threading.Lock()

#: Guards ``configure_numba`` (applied once per process).
_SETTINGS_LOCK = threading.Lock()
_configured = False

_TWO_PI = 2 * np.pi
_BLOCK = 128  # events per scheduling block (one thread at a time; its staged input stays in L2)
_NL = 16  # lanes: events fitted side by side in a block
_R = 16  # row stride of the lane scratch vector (>= _NL, a compile-time constant)
_CHUNK = 16  # events in the vectorised loops over the staged block (compile-time trip count)
_NCHUNKS = 64  # chunks of blocks shared among the threads (each allocates its scratch once)

# rows of the lane scratch vector (photon k = 0, 1, 2 is the fastest index of each group)
_MEAS = 0  # measured (E, theta, phi): _MEAS + 3 a + k
_V = 9  # measured covariance (EE, Et, Ep, tt, tp, pp), symmetrised: _V + 3 q + k
_CUR = 18 + 9  # current linearisation point (E, theta, phi)
_TRIG = 36  # sin theta, cos theta, sin phi, cos phi at _CUR: _TRIG + 3 j + k
_PREV = 48  # last accepted point
_STP = 57  # full step target from _PREV
_LAMB = 66  # beam multipliers (soft beam constraint): current, previous, step target
_LPREV = 70
_LSTEP = 74
_TSTEP = 78  # step fraction
_NHALV = 79  # halvings of the current step
_HPREV = 80  # constraint violation h of the last accepted point
_C2PREV = 81  # chi2 of the last accepted point
_NITER = 82  # linearisations so far
_LF = 83  # Cholesky factor of S (10; diagonal inverted)
_NEW = 93  # linearised solution (E, theta, phi)
_LAM = 102  # Lagrange multipliers (4)
_CHI2 = 106  # chi2 of the linearised solution
_FLAG = 107  # step control needed after the pass: 0 no, 3 accepted step (large angle step or unphysical), 4 rejected
_DONE = 108  # lane state: 0 iterating, -1 converged, else its status code (failed or invalid; -2 no event)
_OCOV = 109  # fitted covariance (EE, Et, Ep, tt, tp, pp): _OCOV + 3 q + k
_OPULL = 127  # pulls (E, theta, phi): _OPULL + 3 a + k
_OKC = 136  # L^-1 G columns for the full covariance: _OKC + 12 k + 4 a + q
_NROWS = 172

# rows of the block's staged input (index 3 (i - lo) + k)
_IE, _IT, _IP = 0, 1, 2  # measured E, theta, phi
_IV = 3  # symmetrised covariance (EE, Et, Ep, tt, tp, pp)
_IST, _ICT, _ISQ, _ISP, _ICP = 9, 10, 11, 12, 13  # sin theta, cos theta, sqrt(1 - cos^2 theta), sin phi, cos phi
_INF, _INE, _INT, _INC = 14, 15, 16, 17  # 1.0 if the test failed: non-finite, E <= 0, theta, covariance
_IROWS = 18

# pi/2 = _PIO2_1 + _PIO2_2 + _PIO2_3 (the first two with 33 significant bits, so k * _PIO2_1 and
# k * _PIO2_2 are exact for |k| < 2^20), and 2/pi
_PIO2_1 = 1.5707963267341256
_PIO2_2 = 6.077100506303966e-11
_PIO2_3 = 2.0222662487959506e-21
_TWO_OVER_PI = 0.6366197723675814
SINCOS_MAX = 1.0e5  # |x| (rad) up to which sincos is used; beyond, math.sin/cos


def configure_numba() -> None:
    """Apply numba's settings for the compiled engine; call before the kernel first runs.

    Unless the user chose a threading layer (``NUMBA_THREADING_LAYER``),
    select numba's fork-safe one (``forksafe``: TBB if installed, else
    ``workqueue``): with GNU OpenMP a process forked after a parallel kernel
    ran aborts when it runs the kernel itself. numba reads the setting when
    it first starts its thread pool, so it must be applied before the first
    parallel kernel of the process. Idempotent and thread-safe.
    """
    global _configured
    if _configured:
        return
    with _SETTINGS_LOCK:
        if not _configured:
            if config.THREADING_LAYER == "default":
                config.THREADING_LAYER = "forksafe"
            _configured = True


def n_threads() -> int:
    """Number of threads the kernel runs on (``NUMBA_NUM_THREADS`` / ``numba.set_num_threads``)."""
    configure_numba()  # starting the thread pool fixes the threading layer
    return int(get_num_threads())


def layer() -> str:
    """Name of the numba threading layer in use (after the first kernel call)."""
    try:
        return str(threading_layer())
    except ValueError:  # no parallel region has run yet
        return "not initialised"


@njit(cache=True, fastmath=False, error_model="numpy", inline="always")
def sincos(x):  # type: ignore[no-untyped-def]
    """sin(x), cos(x) for |x| <= SINCOS_MAX without branches (vectorisable), within 2 ulp of libm.

    x = k pi/2 + r with |r| <= pi/4 (three-part Cody-Waite reduction), then the
    Taylor series of sin r (to r^17, truncation < 1e-19) and cos r (to r^18,
    < 1e-20), and the quadrant k mod 4 picks and signs them.
    """
    kf = math.floor(x * _TWO_OVER_PI + 0.5)
    r = x - kf * _PIO2_1
    r = r - kf * _PIO2_2
    r = r - kf * _PIO2_3
    z = r * r
    ps = 1.0 / 355687428096000.0  # 1/17!
    ps = ps * z - 1.0 / 1307674368000.0  # 1/15!
    ps = ps * z + 1.0 / 6227020800.0  # 1/13!
    ps = ps * z - 1.0 / 39916800.0  # 1/11!
    ps = ps * z + 1.0 / 362880.0  # 1/9!
    ps = ps * z - 1.0 / 5040.0  # 1/7!
    ps = ps * z + 1.0 / 120.0  # 1/5!
    ps = ps * z - 1.0 / 6.0  # 1/3!
    sr = r + r * z * ps
    pc = -1.0 / 6402373705728000.0  # 1/18!
    pc = pc * z + 1.0 / 20922789888000.0  # 1/16!
    pc = pc * z - 1.0 / 87178291200.0  # 1/14!
    pc = pc * z + 1.0 / 479001600.0  # 1/12!
    pc = pc * z - 1.0 / 3628800.0  # 1/10!
    pc = pc * z + 1.0 / 40320.0  # 1/8!
    pc = pc * z - 1.0 / 720.0  # 1/6!
    pc = pc * z + 1.0 / 24.0  # 1/4!
    cr = 1.0 - 0.5 * z + z * z * pc
    q = np.int64(kf) & 3
    odd = (q & 1) != 0
    s = cr if odd else sr
    c = sr if odd else cr
    s = -s if (q & 2) != 0 else s
    c = -c if ((q + 1) & 2) != 0 else c
    return s, c


@njit(cache=True, fastmath=False, error_model="numpy", inline="always")
def _chol4(S00, S01, S02, S03, S11, S12, S13, S22, S23, S33):  # type: ignore[no-untyped-def]
    """Cholesky factor of a symmetric 4x4 matrix (diagonal stored inverted), as ``algebra.chol4``."""
    ok = S00 > 0
    i0 = 1.0 / math.sqrt(S00 if S00 > 0 else 1.0)
    L10 = S01 * i0
    L20 = S02 * i0
    L30 = S03 * i0
    d1 = S11 - L10 * L10
    ok = ok & (d1 > 0)
    i1 = 1.0 / math.sqrt(d1 if d1 > 0 else 1.0)
    L21 = (S12 - L20 * L10) * i1
    L31 = (S13 - L30 * L10) * i1
    d2 = S22 - L20 * L20 - L21 * L21
    ok = ok & (d2 > 0)
    i2 = 1.0 / math.sqrt(d2 if d2 > 0 else 1.0)
    L32 = (S23 - L30 * L20 - L31 * L21) * i2
    d3 = S33 - L30 * L30 - L31 * L31 - L32 * L32
    ok = ok & (d3 > 0)
    i3 = 1.0 / math.sqrt(d3 if d3 > 0 else 1.0)
    return i0, L10, L20, L30, i1, L21, L31, i2, L32, i3, ok


@njit(cache=True, fastmath=False, error_model="numpy", inline="always")
def _fwd4(i0, L10, L20, L30, i1, L21, L31, i2, L32, i3, b0, b1, b2, b3):  # type: ignore[no-untyped-def]
    """Solve ``L y = b`` (forward substitution)."""
    y0 = b0 * i0
    y1 = (b1 - L10 * y0) * i1
    y2 = (b2 - L20 * y0 - L21 * y1) * i2
    y3 = (b3 - L30 * y0 - L31 * y1 - L32 * y2) * i3
    return y0, y1, y2, y3


@njit(cache=True, fastmath=False, error_model="numpy", inline="always")
def _trig_poly(d, s, c):  # type: ignore[no-untyped-def]
    """sin, cos of ``old + d`` from s, c of ``old`` (angle addition, Taylor series of d), as ``algebra.trig_update``."""
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


@njit(cache=True, fastmath=False, error_model="numpy", inline="always")
def _finite(x):  # type: ignore[no-untyped-def]
    """``math.isfinite`` as a comparison (vectorisable)."""
    return abs(x) < np.inf


@njit(cache=True, fastmath=False, error_model="numpy", inline="always")
def _transpose_row(cf, CT, b, r):  # type: ignore[no-untyped-def]
    """Covariance row r = 3 (photon) + a of the block into CT[c * 3 * 3 _BLOCK + r], c = 0, 1, 2."""
    B3 = 3 * _BLOCK
    w = 3 * (3 * b + r)
    CT[r] = cf[w]
    CT[3 * B3 + r] = cf[w + 1]
    CT[6 * B3 + r] = cf[w + 2]


@njit(cache=True, fastmath=False, error_model="numpy", inline="always")
def _stage_photon(Ef, tf, pf, CT, IN, b, q):  # type: ignore[no-untyped-def]
    """Photon q of the block (see ``_stage_block``); True when its angles need math.sin/cos."""
    B3 = 3 * _BLOCK
    g = b + q
    E = Ef[g]
    t = tf[g]
    p = pf[g]
    c00 = CT[3 * q]
    c10 = CT[3 * q + 1]
    c20 = CT[3 * q + 2]
    c01 = CT[3 * B3 + 3 * q]
    c11 = CT[3 * B3 + 3 * q + 1]
    c21 = CT[3 * B3 + 3 * q + 2]
    c02 = CT[6 * B3 + 3 * q]
    c12 = CT[6 * B3 + 3 * q + 1]
    c22 = CT[6 * B3 + 3 * q + 2]
    fin = (_finite(E) & _finite(t) & _finite(p) & _finite(c00) & _finite(c01) & _finite(c02) & _finite(c10)
           & _finite(c11) & _finite(c12) & _finite(c20) & _finite(c21) & _finite(c22))
    d01 = c01 - c10
    d02 = c02 - c20
    d12 = c12 - c21
    # the numpy engine evaluates this only when some d != 0; otherwise 0 > SYMMETRY_TOL * scale is False anyway
    scale = math.sqrt(abs(c00 * c11)) + math.sqrt(abs(c00 * c22)) + math.sqrt(abs(c11 * c22))
    asym = (abs(d01) + abs(d02) + abs(d12)) > SYMMETRY_TOL * scale
    m2 = c00 * c11 - c01 * c01
    det = c00 * (c11 * c22 - c12 * c12) - c01 * (c01 * c22 - c12 * c02) + c02 * (c01 * c12 - c11 * c02)
    pd = (c00 > 0) & (m2 > 0) & (det > 0) & (not asym)
    IN[_INF * B3 + q] = 0.0 if fin else 1.0
    IN[_INE * B3 + q] = 0.0 if E > 0 else 1.0
    IN[_INT * B3 + q] = 0.0 if (t > 0) & (t < np.pi) else 1.0
    IN[_INC * B3 + q] = 0.0 if pd else 1.0
    IN[_IE * B3 + q] = E
    IN[_IT * B3 + q] = t
    IN[_IP * B3 + q] = p
    IN[(_IV + 0) * B3 + q] = c00
    IN[(_IV + 1) * B3 + q] = 0.5 * (c01 + c10)
    IN[(_IV + 2) * B3 + q] = 0.5 * (c02 + c20)
    IN[(_IV + 3) * B3 + q] = c11
    IN[(_IV + 4) * B3 + q] = 0.5 * (c12 + c21)
    IN[(_IV + 5) * B3 + q] = c22
    st, ct = sincos(t)
    IN[_IST * B3 + q] = st
    IN[_ICT * B3 + q] = ct
    IN[_ISQ * B3 + q] = math.sqrt(1.0 - ct * ct)
    sp, cp = sincos(p)
    IN[_ISP * B3 + q] = sp
    IN[_ICP * B3 + q] = cp
    return (abs(t) > SINCOS_MAX) | (abs(p) > SINCOS_MAX)


@njit(cache=True, fastmath=False, error_model="numpy")
def _stage_block(Ef, tf, pf, cf, lo, hi, IN, CT):  # type: ignore[no-untyped-def]
    """Measured values, symmetrised covariance, sin/cos and validity of the photons of events lo..hi-1.

    Vectorised over (event, photon) pairs; writes ``IN[row * 3 _BLOCK + 3 (i - lo) + k]``
    with the rows ``_IE`` ... ``_INC`` (flat input views: ``Ef, tf, pf`` (3 n,),
    ``cf`` (27 n,)). ``_INF, _INE, _INT, _INC`` flag the failed tests of the
    photon: non-finite input, E <= 0, theta outside (0, pi), covariance not
    symmetric (relative ``SYMMETRY_TOL``) positive definite (leading minors > 0); the
    event's status follows the precedence of ``inputs.event_status``. sin/cos of
    angles beyond ``SINCOS_MAX`` are redone with math.sin/cos afterwards.
    """
    B3 = 3 * _BLOCK
    lo = max(lo, 0)  # lets LLVM drop numba's negative-index wraparound
    b = 3 * lo
    m = 3 * (hi - lo)
    # covariance rows r = (photon, a) transposed first, column c to CT[c * 3 B3 + r]: reading a
    # photon's nine elements directly (stride 9) would not be vectorised, rows of three (stride 3) are
    for c in range(m // _CHUNK):
        for u in range(3 * _CHUNK):
            _transpose_row(cf, CT, b, 3 * _CHUNK * c + u)
    for r in range(3 * _CHUNK * (m // _CHUNK), 3 * m):
        _transpose_row(cf, CT, b, r)
    n_big = 0
    for c in range(m // _CHUNK):
        for u in range(_CHUNK):
            n_big += _stage_photon(Ef, tf, pf, CT, IN, b, _CHUNK * c + u)
    for q in range(_CHUNK * (m // _CHUNK), m):
        n_big += _stage_photon(Ef, tf, pf, CT, IN, b, q)
    if n_big > 0:
        for q in range(m):
            t = tf[b + q]
            p = pf[b + q]
            if abs(t) > SINCOS_MAX:
                IN[_IST * B3 + q] = math.sin(t)
                IN[_ICT * B3 + q] = math.cos(t)
            if abs(p) > SINCOS_MAX:
                IN[_ISP * B3 + q] = math.sin(p)
                IN[_ICP * B3 + q] = math.cos(p)


@njit(cache=True, fastmath=False, error_model="numpy", inline="always")
def _jacobian_g(X, l, k):  # type: ignore[no-untyped-def]
    """Jacobian D and G = D V0 of photon k of lane l at its current point (the same expressions wherever used)."""
    R = _R
    Ek = X[(_CUR + k) * R + l]
    st = X[(_TRIG + k) * R + l]
    ct = X[(_TRIG + 3 + k) * R + l]
    sp = X[(_TRIG + 6 + k) * R + l]
    cp = X[(_TRIG + 9 + k) * R + l]
    VEE = X[(_V + k) * R + l]
    VEt = X[(_V + 3 + k) * R + l]
    VEp = X[(_V + 6 + k) * R + l]
    Vtt = X[(_V + 9 + k) * R + l]
    Vtp = X[(_V + 12 + k) * R + l]
    Vpp = X[(_V + 15 + k) * R + l]
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
    GxE = DxE * VEE + Dxt * VEt + Dxp * VEp
    Gxt = DxE * VEt + Dxt * Vtt + Dxp * Vtp
    Gxp = DxE * VEp + Dxt * Vtp + Dxp * Vpp
    GyE = DyE * VEE + Dyt * VEt + Dyp * VEp
    Gyt = DyE * VEt + Dyt * Vtt + Dyp * Vtp
    Gyp = DyE * VEp + Dyt * Vtp + Dyp * Vpp
    GzE = ct * VEE + Dzt * VEt
    Gzt = ct * VEt + Dzt * Vtt
    Gzp = ct * VEp + Dzt * Vtp
    return (Ek, ct, px, py, pz, DxE, DyE, Dxt, Dyt, Dzt, Dxp, Dyp, VEE,
            GxE, Gxt, Gxp, GyE, Gyt, Gyp, GzE, Gzt, Gzp)


@njit(cache=True, fastmath=False, error_model="numpy", inline="always")
def _photon_lin(X, l, k):  # type: ignore[no-untyped-def]
    """Photon k of lane l at the current point: its terms of H, S and r, and G = D V0."""
    R = _R
    (Ek, ct, px, py, pz, DxE, DyE, Dxt, Dyt, Dzt, Dxp, Dyp, VEE,
     GxE, Gxt, Gxp, GyE, Gyt, Gyp, GzE, Gzt, Gzp) = _jacobian_g(X, l, k)
    Tk = X[(_CUR + 3 + k) * R + l]
    Pk = X[(_CUR + 6 + k) * R + l]
    s0 = GxE * DxE + Gxt * Dxt + Gxp * Dxp
    s1 = GxE * DyE + Gxt * Dyt + Gxp * Dyp
    s2 = GxE * ct + Gxt * Dzt
    s4 = GyE * DyE + Gyt * Dyt + Gyp * Dyp
    s5 = GyE * ct + Gyt * Dzt
    s7 = GzE * ct + Gzt * Dzt
    dE = X[(_MEAS + k) * R + l] - Ek
    dt = X[(_MEAS + 3 + k) * R + l] - Tk
    dp = X[(_MEAS + 6 + k) * R + l] - Pk
    tx = DxE * dE + Dxt * dt + Dxp * dp
    ty = DyE * dE + Dyt * dt + Dyp * dp
    tz = ct * dE + Dzt * dt
    return (px, py, pz, Ek, s0, s1, s2, GxE, s4, s5, GyE, s7, GzE, VEE, tx, ty, tz, dE,
            (GxE, Gxt, Gxp, GyE, Gyt, Gyp, GzE, Gzt, Gzp))


@njit(cache=True, fastmath=False, error_model="numpy", inline="always")
def _param_step(X, l, k, a, x0, x1, x2, x3, adv, G0, G1, G2):  # type: ignore[no-untyped-def]
    """Parameter a of photon k of lane l: new solution; when ``adv``, the step to it. Returns (new, old)."""
    R = _R
    G3 = X[(_V + 3 * a + k) * R + l]
    sh = G0 * x0 + G1 * x1 + G2 * x2 + G3 * x3
    nv = X[(_MEAS + 3 * a + k) * R + l] - sh
    X[(_NEW + 3 * a + k) * R + l] = nv
    cv = X[(_CUR + 3 * a + k) * R + l]
    pv = X[(_PREV + 3 * a + k) * R + l]
    sv = X[(_STP + 3 * a + k) * R + l]
    X[(_PREV + 3 * a + k) * R + l] = cv if adv else pv
    X[(_STP + 3 * a + k) * R + l] = nv if adv else sv
    X[(_CUR + 3 * a + k) * R + l] = nv if adv else cv
    return nv, cv


@njit(cache=True, fastmath=False, error_model="numpy", inline="always")
def _angle_step(X, l, k, a, nv, cv, adv):  # type: ignore[no-untyped-def]
    """sin/cos of angle a (1 theta, 2 phi) of photon k after an accepted step; True if the step is large."""
    R = _R
    d = nv - cv
    so = X[(_TRIG + 6 * (a - 1) + k) * R + l]
    co = X[(_TRIG + 6 * (a - 1) + 3 + k) * R + l]
    sn, cn = _trig_poly(d, so, co)
    X[(_TRIG + 6 * (a - 1) + k) * R + l] = sn if adv else so
    X[(_TRIG + 6 * (a - 1) + 3 + k) * R + l] = cn if adv else co
    return abs(d) > POLY_MAX


@njit(cache=True, fastmath=False, error_model="numpy", inline="always")
def _photon_step(X, l, k, x0, x1, x2, x3, adv, g):  # type: ignore[no-untyped-def]
    """Photon k of lane l: new solution and accepted step (g: its G = D V0); returns (large angle step, unphysical)."""
    nE, cE = _param_step(X, l, k, 0, x0, x1, x2, x3, adv, g[0], g[3], g[6])
    nT, cT = _param_step(X, l, k, 1, x0, x1, x2, x3, adv, g[1], g[4], g[7])
    nP, cP = _param_step(X, l, k, 2, x0, x1, x2, x3, adv, g[2], g[5], g[8])
    big = _angle_step(X, l, k, 1, nT, cT, adv) | _angle_step(X, l, k, 2, nP, cP, adv)
    unphys = (nE <= 0) | (nT <= 0) | (nT >= np.pi)
    return big, unphys


@njit(cache=True, fastmath=False, error_model="numpy", inline="always")
def _lamb_step(X, l, q, adv):  # type: ignore[no-untyped-def]
    """Beam multiplier q of lane l after an accepted step (soft beam constraint)."""
    R = _R
    lb = X[(_LAMB + q) * R + l]
    lm = X[(_LAM + q) * R + l]
    lp = X[(_LPREV + q) * R + l]
    ls = X[(_LSTEP + q) * R + l]
    X[(_LPREV + q) * R + l] = lb if adv else lp
    X[(_LSTEP + q) * R + l] = lm if adv else ls
    X[(_LAMB + q) * R + l] = lm if adv else lb


@njit(cache=True, fastmath=False, error_model="numpy")
def _lane_pass(X, P0, Vb, has_vb, max_iter, max_halvings, tol_chi2, tol_constraint):  # type: ignore[no-untyped-def]
    """One linearisation of every lane: Jacobian, S, Cholesky, solution, decisions, and the accepted step.

    Lanes that are done (row ``_DONE`` != 0) keep their state: their
    linearisation is recomputed from the same point, giving bit for bit the
    values (``_LF``, ``_NEW``, ``_CHI2``, ``_LAM``, and G) of the pass in
    which they converged. Open lanes that converge get ``_DONE = -1``, failing
    ones their status code; ``_FLAG`` marks lanes that need scalar step
    control (3: accepted step with a large angle step or an unphysical
    point, 4: rejected step). Accepted steps are already taken. Returns the
    numbers of lanes still open and of lanes needing step control.
    The loop body has no branches, so it is vectorised across lanes.
    """
    R = _R
    P0x = P0[0]
    P0y = P0[1]
    P0z = P0[2]
    P0e = P0[3]
    b00 = Vb[0, 0]
    b01 = Vb[0, 1]
    b02 = Vb[0, 2]
    b03 = Vb[0, 3]
    b10 = Vb[1, 0]
    b11 = Vb[1, 1]
    b12 = Vb[1, 2]
    b13 = Vb[1, 3]
    b20 = Vb[2, 0]
    b21 = Vb[2, 1]
    b22 = Vb[2, 2]
    b23 = Vb[2, 3]
    b30 = Vb[3, 0]
    b31 = Vb[3, 1]
    b32 = Vb[3, 2]
    b33 = Vb[3, 3]
    f_max_iter = float(max_iter)
    f_max_halv = float(max_halvings)
    n_open = 0
    n_ctl = 0
    for l in range(_NL):
        # --- linearise: Jacobian, G = D V0, S = D V0 D^T, balance H, r = D (alpha0 - alpha) ---
        S0 = 0.0
        S1 = 0.0
        S2 = 0.0
        S3 = 0.0
        S4 = 0.0
        S5 = 0.0
        S6 = 0.0
        S7 = 0.0
        S8 = 0.0
        S9 = 0.0
        H0 = 0.0
        H1 = 0.0
        H2 = 0.0
        H3 = 0.0
        rx = 0.0
        ry = 0.0
        rz = 0.0
        re = 0.0
        px, py, pz, Ek, s0, s1, s2, s3, s4, s5, s6, s7, s8, s9, tx, ty, tz, dE, g0 = _photon_lin(X, l, 0)
        H0 += px
        H1 += py
        H2 += pz
        H3 += Ek
        S0 += s0
        S1 += s1
        S2 += s2
        S3 += s3
        S4 += s4
        S5 += s5
        S6 += s6
        S7 += s7
        S8 += s8
        S9 += s9
        rx += tx
        ry += ty
        rz += tz
        re += dE
        px, py, pz, Ek, s0, s1, s2, s3, s4, s5, s6, s7, s8, s9, tx, ty, tz, dE, g1 = _photon_lin(X, l, 1)
        H0 += px
        H1 += py
        H2 += pz
        H3 += Ek
        S0 += s0
        S1 += s1
        S2 += s2
        S3 += s3
        S4 += s4
        S5 += s5
        S6 += s6
        S7 += s7
        S8 += s8
        S9 += s9
        rx += tx
        ry += ty
        rz += tz
        re += dE
        px, py, pz, Ek, s0, s1, s2, s3, s4, s5, s6, s7, s8, s9, tx, ty, tz, dE, g2 = _photon_lin(X, l, 2)
        H0 += px
        H1 += py
        H2 += pz
        H3 += Ek
        S0 += s0
        S1 += s1
        S2 += s2
        S3 += s3
        S4 += s4
        S5 += s5
        S6 += s6
        S7 += s7
        S8 += s8
        S9 += s9
        rx += tx
        ry += ty
        rz += tz
        re += dE
        if has_vb:
            S0 += b00
            S1 += b01
            S2 += b02
            S3 += b03
            S4 += b11
            S5 += b12
            S6 += b13
            S7 += b22
            S8 += b23
            S9 += b33
        # --- solve: Cholesky of S, constraint violation h, new solution -----------------
        i0, L10, L20, L30, i1, L21, L31, i2, L32, i3, ok = _chol4(S0, S1, S2, S3, S4, S5, S6, S7, S8, S9)
        Hx = H0 - P0x
        Hy = H1 - P0y
        Hz = H2 - P0z
        He = H3 - P0e
        la0 = X[(_LAMB + 0) * R + l]
        la1 = X[(_LAMB + 1) * R + l]
        la2 = X[(_LAMB + 2) * R + l]
        la3 = X[(_LAMB + 3) * R + l]
        if has_vb:  # constraint residual including the beam shift
            Hcx = Hx - (b00 * la0 + b01 * la1 + b02 * la2 + b03 * la3)
            Hcy = Hy - (b10 * la0 + b11 * la1 + b12 * la2 + b13 * la3)
            Hcz = Hz - (b20 * la0 + b21 * la1 + b22 * la2 + b23 * la3)
            Hce = He - (b30 * la0 + b31 * la1 + b32 * la2 + b33 * la3)
        else:
            Hcx = Hx
            Hcy = Hy
            Hcz = Hz
            Hce = He
        y0, y1, y2, y3 = _fwd4(i0, L10, L20, L30, i1, L21, L31, i2, L32, i3, Hcx, Hcy, Hcz, Hce)
        h = y0 * y0 + y1 * y1 + y2 * y2 + y3 * y3
        rx = rx + Hx
        ry = ry + Hy
        rz = rz + Hz
        re = re + He
        u0, u1, u2, u3 = _fwd4(i0, L10, L20, L30, i1, L21, L31, i2, L32, i3, rx, ry, rz, re)
        x3 = u3 * i3
        x2 = (u2 - L32 * x3) * i2
        x1 = (u1 - L21 * x2 - L31 * x3) * i1
        x0 = (u0 - L10 * x1 - L20 * x2 - L30 * x3) * i0
        chi2_new = u0 * u0 + u1 * u1 + u2 * u2 + u3 * u3  # = r^T S^-1 r
        X[(_LF + 0) * R + l] = i0
        X[(_LF + 1) * R + l] = L10
        X[(_LF + 2) * R + l] = L20
        X[(_LF + 3) * R + l] = L30
        X[(_LF + 4) * R + l] = i1
        X[(_LF + 5) * R + l] = L21
        X[(_LF + 6) * R + l] = L31
        X[(_LF + 7) * R + l] = i2
        X[(_LF + 8) * R + l] = L32
        X[(_LF + 9) * R + l] = i3
        X[(_LAM + 0) * R + l] = x0
        X[(_LAM + 1) * R + l] = x1
        X[(_LAM + 2) * R + l] = x2
        X[(_LAM + 3) * R + l] = x3
        X[_CHI2 * R + l] = chi2_new
        # --- decisions (as selects) ----------------------------------------------------
        done0 = X[_DONE * R + l]
        is_open = done0 == 0.0
        niter = X[_NITER * R + l] + (1.0 if is_open else 0.0)
        X[_NITER * R + l] = niter
        h_prev = X[_HPREV * R + l]
        reject = (h > h_prev) & (h > tol_chi2) & (X[_NHALV * R + l] < f_max_halv) & ok
        accept = ok & (not reject)
        finite = abs(chi2_new) < np.inf
        hc_ok = (abs(Hcx) < tol_constraint) & (abs(Hcy) < tol_constraint) & (abs(Hcz) < tol_constraint) & (
            abs(Hce) < tol_constraint)
        conv = is_open & accept & finite & (abs(chi2_new - X[_C2PREV * R + l]) < tol_chi2) & hc_ok
        bad_iter = accept & (not finite)
        code = 0.0
        code = float(MAX_ITER) if niter >= f_max_iter else code
        code = float(BAD_ITER) if bad_iter else code
        code = float(BAD_S) if not ok else code
        code = code if is_open else 0.0
        adv = is_open & accept & (not conv) & (code == 0.0)  # accepted step, the lane continues
        # --- advance accepted lanes to the new solution (sin/cos by angle addition) -------
        big0, unp0 = _photon_step(X, l, 0, x0, x1, x2, x3, adv, g0)
        big1, unp1 = _photon_step(X, l, 1, x0, x1, x2, x3, adv, g1)
        big2, unp2 = _photon_step(X, l, 2, x0, x1, x2, x3, adv, g2)
        big = big0 | big1 | big2
        unphys = unp0 | unp1 | unp2
        if has_vb:
            _lamb_step(X, l, 0, adv)
            _lamb_step(X, l, 1, adv)
            _lamb_step(X, l, 2, adv)
            _lamb_step(X, l, 3, adv)
        ts = X[_TSTEP * R + l]
        nh = X[_NHALV * R + l]
        c2p = X[_C2PREV * R + l]
        X[_TSTEP * R + l] = 1.0 if adv else ts
        X[_NHALV * R + l] = 0.0 if adv else nh
        X[_HPREV * R + l] = h if adv else h_prev
        X[_C2PREV * R + l] = chi2_new if adv else c2p
        ctl = 3.0 if adv & (big | unphys) else 0.0
        ctl = 4.0 if is_open & (not accept) & (code == 0.0) else ctl
        X[_FLAG * R + l] = ctl
        done1 = code if code != 0.0 else done0
        done1 = -1.0 if conv else done1
        X[_DONE * R + l] = done1
        n_open += np.int64(done1 == 0.0)
        n_ctl += np.int64(ctl != 0.0)
    return n_open, n_ctl


@njit(cache=True, fastmath=False, error_model="numpy")
def _step_control(X, l, accept, has_vb):  # type: ignore[no-untyped-def]
    """Scalar step control of lane l after ``_lane_pass`` flagged it (rare), as in the per-event algorithm.

    Accepted steps: sin/cos of angles that moved by more than ``POLY_MAX``
    are evaluated directly. Rejected steps: the step from the last accepted
    point is halved. Then the point is halved back towards the last accepted
    point while it is unphysical (E <= 0, theta outside (0, pi)), at most
    ``MAX_PHYSICAL_HALVINGS`` times.
    """
    R = _R
    if accept:
        for k in range(3):
            for a in (1, 2):
                new = X[(_CUR + 3 * a + k) * R + l]
                if abs(new - X[(_PREV + 3 * a + k) * R + l]) > POLY_MAX:
                    X[(_TRIG + 6 * (a - 1) + k) * R + l] = math.sin(new)
                    X[(_TRIG + 6 * (a - 1) + 3 + k) * R + l] = math.cos(new)
    else:
        X[_TSTEP * R + l] *= 0.5
        X[_NHALV * R + l] += 1.0
    moved = not accept
    for _h in range(MAX_PHYSICAL_HALVINGS + 1):
        if moved:  # cur = prev + t (stp - prev), sin/cos evaluated there
            t = X[_TSTEP * R + l]
            for k in range(3):
                for a in range(3):
                    p_ = X[(_PREV + 3 * a + k) * R + l]
                    X[(_CUR + 3 * a + k) * R + l] = p_ + t * (X[(_STP + 3 * a + k) * R + l] - p_)
                tk = X[(_CUR + 3 + k) * R + l]
                pk = X[(_CUR + 6 + k) * R + l]
                X[(_TRIG + k) * R + l] = math.sin(tk)
                X[(_TRIG + 3 + k) * R + l] = math.cos(tk)
                X[(_TRIG + 6 + k) * R + l] = math.sin(pk)
                X[(_TRIG + 9 + k) * R + l] = math.cos(pk)
            if has_vb:
                for q in range(4):
                    p_ = X[(_LPREV + q) * R + l]
                    X[(_LAMB + q) * R + l] = p_ + t * (X[(_LSTEP + q) * R + l] - p_)
        if _h == MAX_PHYSICAL_HALVINGS:
            break
        unphys = False
        for k in range(3):
            Ek = X[(_CUR + k) * R + l]
            tk = X[(_CUR + 3 + k) * R + l]
            if Ek <= 0 or tk <= 0 or tk >= np.pi:
                unphys = True
        if not unphys:
            break
        X[_TSTEP * R + l] *= 0.5
        moved = True


@njit(cache=True, fastmath=False, error_model="numpy", inline="always")
def _floor_variance(x):  # type: ignore[no-untyped-def]
    """``max(x, VARIANCE_FLOOR)`` as a select (vectorisable)."""
    return VARIANCE_FLOOR if VARIANCE_FLOOR > x else x


@njit(cache=True, fastmath=False, error_model="numpy", inline="always")
def _photon_outputs(X, l, k, i0, L10, L20, L30, i1, L21, L31, i2, L32, i3):  # type: ignore[no-untyped-def]
    """Fitted covariance V0 - (L^-1 G)^T (L^-1 G), pulls and L^-1 G columns of photon k of lane l."""
    R = _R
    # G at the final point, recomputed with the pass's expressions from the unchanged point
    g = _jacobian_g(X, l, k)
    k00, k01, k02, k03 = _fwd4(i0, L10, L20, L30, i1, L21, L31, i2, L32, i3, g[13], g[16], g[19], X[(_V + k) * R + l])
    k10, k11, k12, k13 = _fwd4(i0, L10, L20, L30, i1, L21, L31, i2, L32, i3, g[14], g[17], g[20],
                               X[(_V + 3 + k) * R + l])
    k20, k21, k22, k23 = _fwd4(i0, L10, L20, L30, i1, L21, L31, i2, L32, i3, g[15], g[18], g[21],
                               X[(_V + 6 + k) * R + l])
    r00 = k00 * k00 + k01 * k01 + k02 * k02 + k03 * k03
    r01 = k00 * k10 + k01 * k11 + k02 * k12 + k03 * k13
    r02 = k00 * k20 + k01 * k21 + k02 * k22 + k03 * k23
    r11 = k10 * k10 + k11 * k11 + k12 * k12 + k13 * k13
    r12 = k10 * k20 + k11 * k21 + k12 * k22 + k13 * k23
    r22 = k20 * k20 + k21 * k21 + k22 * k22 + k23 * k23
    X[(_OCOV + k) * R + l] = X[(_V + k) * R + l] - r00
    X[(_OCOV + 3 + k) * R + l] = X[(_V + 3 + k) * R + l] - r01
    X[(_OCOV + 6 + k) * R + l] = X[(_V + 6 + k) * R + l] - r02
    X[(_OCOV + 9 + k) * R + l] = X[(_V + 9 + k) * R + l] - r11
    X[(_OCOV + 12 + k) * R + l] = X[(_V + 12 + k) * R + l] - r12
    X[(_OCOV + 15 + k) * R + l] = X[(_V + 15 + k) * R + l] - r22
    X[(_OPULL + k) * R + l] = (X[(_MEAS + k) * R + l] - X[(_NEW + k) * R + l]) / math.sqrt(_floor_variance(r00))
    X[(_OPULL + 3 + k) * R + l] = (X[(_MEAS + 3 + k) * R + l] - X[(_NEW + 3 + k) * R + l]) / math.sqrt(_floor_variance(r11))
    X[(_OPULL + 6 + k) * R + l] = (X[(_MEAS + 6 + k) * R + l] - X[(_NEW + 6 + k) * R + l]) / math.sqrt(_floor_variance(r22))
    X[(_OKC + 12 * k + 0) * R + l] = k00
    X[(_OKC + 12 * k + 1) * R + l] = k01
    X[(_OKC + 12 * k + 2) * R + l] = k02
    X[(_OKC + 12 * k + 3) * R + l] = k03
    X[(_OKC + 12 * k + 4) * R + l] = k10
    X[(_OKC + 12 * k + 5) * R + l] = k11
    X[(_OKC + 12 * k + 6) * R + l] = k12
    X[(_OKC + 12 * k + 7) * R + l] = k13
    X[(_OKC + 12 * k + 8) * R + l] = k20
    X[(_OKC + 12 * k + 9) * R + l] = k21
    X[(_OKC + 12 * k + 10) * R + l] = k22
    X[(_OKC + 12 * k + 11) * R + l] = k23


@njit(cache=True, fastmath=False, error_model="numpy")
def _finish_outputs(X):  # type: ignore[no-untyped-def]
    """Fitted covariances and pulls of every lane from its last linearisation (vectorised over lanes)."""
    R = _R
    for l in range(_NL):
        i0 = X[(_LF + 0) * R + l]
        L10 = X[(_LF + 1) * R + l]
        L20 = X[(_LF + 2) * R + l]
        L30 = X[(_LF + 3) * R + l]
        i1 = X[(_LF + 4) * R + l]
        L21 = X[(_LF + 5) * R + l]
        L31 = X[(_LF + 6) * R + l]
        i2 = X[(_LF + 7) * R + l]
        L32 = X[(_LF + 8) * R + l]
        i3 = X[(_LF + 9) * R + l]
        _photon_outputs(X, l, 0, i0, L10, L20, L30, i1, L21, L31, i2, L32, i3)
        _photon_outputs(X, l, 1, i0, L10, L20, L30, i1, L21, L31, i2, L32, i3)
        _photon_outputs(X, l, 2, i0, L10, L20, L30, i1, L21, L31, i2, L32, i3)


@njit(cache=True, fastmath=False, error_model="numpy", inline="always")
def _load_photon(IN, X, q, l, k, away):  # type: ignore[no-untyped-def]
    """Staged photon q + k into lane l: measured point (also the first linearisation point), V0, sin/cos."""
    R = _R
    B3 = 3 * _BLOCK
    e_ = IN[_IE * B3 + q + k]
    t_ = IN[_IT * B3 + q + k]
    p_ = IN[_IP * B3 + q + k]
    X[(_MEAS + k) * R + l] = e_
    X[(_MEAS + 3 + k) * R + l] = t_
    X[(_MEAS + 6 + k) * R + l] = p_
    X[(_CUR + k) * R + l] = e_
    X[(_CUR + 3 + k) * R + l] = t_
    X[(_CUR + 6 + k) * R + l] = p_
    X[(_V + k) * R + l] = IN[_IV * B3 + q + k]
    X[(_V + 3 + k) * R + l] = IN[(_IV + 1) * B3 + q + k]
    X[(_V + 6 + k) * R + l] = IN[(_IV + 2) * B3 + q + k]
    X[(_V + 9 + k) * R + l] = IN[(_IV + 3) * B3 + q + k]
    X[(_V + 12 + k) * R + l] = IN[(_IV + 4) * B3 + q + k]
    X[(_V + 15 + k) * R + l] = IN[(_IV + 5) * B3 + q + k]
    sq = IN[_ISQ * B3 + q + k]
    st = IN[_IST * B3 + q + k]
    X[(_TRIG + k) * R + l] = sq if away else st
    X[(_TRIG + 3 + k) * R + l] = IN[_ICT * B3 + q + k]
    X[(_TRIG + 6 + k) * R + l] = IN[_ISP * B3 + q + k]
    X[(_TRIG + 9 + k) * R + l] = IN[_ICP * B3 + q + k]


@njit(cache=True, fastmath=False, error_model="numpy")
def _load_batch(IN, X, j0, nb):  # type: ignore[no-untyped-def]
    """Events j0 .. j0 + nb - 1 of the staged block into the lanes, with their initial state (vectorised).

    ``_DONE`` starts at 0 for valid events, at the status code of invalid
    ones (precedence of ``inputs.event_status``: non-finite, E <= 0, theta,
    covariance) and at -2 for lanes without an event.
    """
    R = _R
    B3 = 3 * _BLOCK
    j0 = max(j0, 0)  # lets LLVM drop numba's negative-index wraparound (and vectorise)
    for l in range(_NL):
        q = 3 * (j0 + l)
        t0 = IN[_IT * B3 + q]
        t1 = IN[_IT * B3 + q + 1]
        t2 = IN[_IT * B3 + q + 2]
        # sin theta >= 0 on (0, pi): away from the poles sqrt(1 - cos^2) is exact to ~1e-15 (as the numpy engine)
        away = ((t0 > POLE_MARGIN) & (t0 < np.pi - POLE_MARGIN) & (t1 > POLE_MARGIN) & (t1 < np.pi - POLE_MARGIN)
                & (t2 > POLE_MARGIN) & (t2 < np.pi - POLE_MARGIN))
        _load_photon(IN, X, q, l, 0, away)
        _load_photon(IN, X, q, l, 1, away)
        _load_photon(IN, X, q, l, 2, away)
        X[_LAMB * R + l] = 0.0
        X[(_LAMB + 1) * R + l] = 0.0
        X[(_LAMB + 2) * R + l] = 0.0
        X[(_LAMB + 3) * R + l] = 0.0
        X[_NITER * R + l] = 0.0
        X[_NHALV * R + l] = 0.0
        X[_TSTEP * R + l] = 1.0
        X[_HPREV * R + l] = np.inf
        X[_C2PREV * R + l] = np.inf
        X[_FLAG * R + l] = 0.0
        nf = IN[_INF * B3 + q] + IN[_INF * B3 + q + 1] + IN[_INF * B3 + q + 2]
        ne = IN[_INE * B3 + q] + IN[_INE * B3 + q + 1] + IN[_INE * B3 + q + 2]
        nt = IN[_INT * B3 + q] + IN[_INT * B3 + q + 1] + IN[_INT * B3 + q + 2]
        nc = IN[_INC * B3 + q] + IN[_INC * B3 + q + 1] + IN[_INC * B3 + q + 2]
        done = float(BAD_COV) if nc > 0.0 else 0.0
        done = float(BAD_THETA) if nt > 0.0 else done
        done = float(BAD_ENERGY) if ne > 0.0 else done
        done = float(BAD_FINITE) if nf > 0.0 else done
        done = done if l < nb else -2.0
        X[_DONE * R + l] = done


@njit(cache=True, fastmath=False, error_model="numpy")
def _write_batch(X, i0, nb, E, th, ph, cov, P0, Vb, has_vb, full_cov,  # type: ignore[no-untyped-def]
                 oE, oth, oph, ocov, ochi2, opval, opulls, ostatus, oniter, oconv, ocovf, obeam):
    """Write the outputs of the batch's events i0 .. i0 + nb - 1 (lane l holds event i0 + l)."""
    R = _R
    i0 = max(i0, 0)  # lets LLVM drop numba's negative-index wraparound
    oEf = oE.reshape(oE.size)
    othf = oth.reshape(oth.size)
    ophf = oph.reshape(oph.size)
    ocovF = ocov.reshape(ocov.size)
    opullsF = opulls.reshape(opulls.size)
    for l in range(nb):
        i = i0 + l
        done = X[_DONE * R + l]
        if done != -1.0:  # failed or invalid: measured values
            _write_measured(i, np.int64(done), np.int64(X[_NITER * R + l]), E, th, ph, cov, P0, has_vb, full_cov,
                            oE, oth, oph, ocov, ochi2, opval, opulls, ostatus, oniter, oconv, ocovf, obeam)
            continue
        for k in range(3):
            v00 = X[(_OCOV + k) * R + l]
            v01 = X[(_OCOV + 3 + k) * R + l]
            v02 = X[(_OCOV + 6 + k) * R + l]
            v11 = X[(_OCOV + 9 + k) * R + l]
            v12 = X[(_OCOV + 12 + k) * R + l]
            v22 = X[(_OCOV + 15 + k) * R + l]
            o = 27 * i + 9 * k
            ocovF[o] = v00
            ocovF[o + 1] = v01
            ocovF[o + 2] = v02
            ocovF[o + 3] = v01
            ocovF[o + 4] = v11
            ocovF[o + 5] = v12
            ocovF[o + 6] = v02
            ocovF[o + 7] = v12
            ocovF[o + 8] = v22
            o = 9 * i + 3 * k
            opullsF[o] = X[(_OPULL + k) * R + l]
            opullsF[o + 1] = X[(_OPULL + 3 + k) * R + l]
            opullsF[o + 2] = X[(_OPULL + 6 + k) * R + l]
            o = 3 * i + k
            oEf[o] = X[(_NEW + k) * R + l]
            othf[o] = X[(_NEW + 3 + k) * R + l]
            x = X[(_NEW + 6 + k) * R + l] + np.pi  # phi in (-pi, pi]: (phi + pi) mod 2 pi - pi, fmod only when needed
            if not (x >= 0.0 and x < _TWO_PI):
                x = x % _TWO_PI
            ophf[o] = x - np.pi
        if full_cov:
            for k in range(3):
                for jj in range(3):
                    for a in range(3):
                        for b in range(3):
                            if jj == k:
                                v = ocovF[27 * i + 9 * k + 3 * a + b]
                            else:
                                s = (X[(_OKC + 12 * k + 4 * a + 0) * R + l] * X[(_OKC + 12 * jj + 4 * b + 0) * R + l]
                                     + X[(_OKC + 12 * k + 4 * a + 1) * R + l] * X[(_OKC + 12 * jj + 4 * b + 1) * R + l])
                                s += (X[(_OKC + 12 * k + 4 * a + 2) * R + l] * X[(_OKC + 12 * jj + 4 * b + 2) * R + l]
                                      + X[(_OKC + 12 * k + 4 * a + 3) * R + l] * X[(_OKC + 12 * jj + 4 * b + 3) * R + l])
                                v = -s
                            ocovf[i, 3 * k + a, 3 * jj + b] = v
        c2 = X[_CHI2 * R + l]
        ochi2[i] = c2
        half = 0.5 * c2
        opval[i] = math.exp(-half) * (1.0 + half)
        if has_vb:
            la0 = X[_LAM * R + l]
            la1 = X[(_LAM + 1) * R + l]
            la2 = X[(_LAM + 2) * R + l]
            la3 = X[(_LAM + 3) * R + l]
            for q in range(4):
                obeam[i, q] = P0[q] + Vb[q, 0] * la0 + Vb[q, 1] * la1 + Vb[q, 2] * la2 + Vb[q, 3] * la3
        ostatus[i] = OK
        oniter[i] = np.int64(X[_NITER * R + l])
        oconv[i] = True


@njit(cache=True, fastmath=False, error_model="numpy")
def _fit_block(lo, hi, X, IN, CT, E, th, ph, cov, P0, Vb, has_vb, max_iter, max_halvings, tol_chi2,  # type: ignore[no-untyped-def]
               tol_constraint, full_cov, oE, oth, oph, ocov, ochi2, opval, opulls, ostatus, oniter, oconv, ocovf, obeam):
    """Fit events lo..hi-1 (one thread): staged, then in batches of ``_NL`` events side by side.

    Scratch: ``X`` (lanes), ``IN`` (staged block), ``CT`` (transposed
    covariances). Rows of lanes without an event may hold values of earlier
    events or zeros; they are computed on but never used.
    """
    R = _R
    _stage_block(E.reshape(E.size), th.reshape(th.size), ph.reshape(ph.size), cov.reshape(cov.size), lo, hi, IN, CT)
    for j0 in range(0, hi - lo, _NL):
        nb = min(_NL, hi - lo - j0)
        _load_batch(IN, X, j0, nb)
        while True:
            n_open, n_ctl = _lane_pass(X, P0, Vb, has_vb, max_iter, max_halvings, tol_chi2, tol_constraint)
            if n_ctl > 0:  # rare: step control of flagged lanes
                for l in range(_NL):
                    ctl = X[_FLAG * R + l]
                    if ctl != 0.0:
                        _step_control(X, l, ctl == 3.0, has_vb)
            if n_open == 0:
                break
        _finish_outputs(X)
        _write_batch(X, lo + j0, nb, E, th, ph, cov, P0, Vb, has_vb, full_cov,
                     oE, oth, oph, ocov, ochi2, opval, opulls, ostatus, oniter, oconv, ocovf, obeam)


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

    Each event is first validated with the tests of ``bumphunt.kinfit.inputs.event_status``
    (``_stage_block``); invalid events get the measured values, their
    status code and ``n_iter = 0``. Threads take chunks of blocks of
    ``_BLOCK`` events (``_fit_block``).
    """
    n = E.shape[0]
    nblk = (n + _BLOCK - 1) // _BLOCK
    per = (nblk + _NCHUNKS - 1) // _NCHUNKS  # blocks per chunk
    nch = (nblk + per - 1) // per if nblk > 0 else 0
    for c in prange(nch):
        # consecutive blocks, scratch allocated once per chunk
        X = np.zeros(_NROWS * _R)
        IN = np.zeros(_IROWS * 3 * _BLOCK)  # lanes past the last event read zeros at first
        CT = np.empty(9 * 3 * _BLOCK)
        for blk in range(c * per, min(nblk, (c + 1) * per)):
            lo = blk * _BLOCK
            hi = min(n, lo + _BLOCK)
            _fit_block(lo, hi, X, IN, CT, E, th, ph, cov, P0, Vb, has_vb, max_iter, max_halvings, tol_chi2,
                       tol_constraint, full_cov, oE, oth, oph, ocov, ochi2, opval, opulls, ostatus, oniter, oconv,
                       ocovf, obeam)


def fit_numba(
    E: NDArray[np.float64],
    theta: NDArray[np.float64],
    phi: NDArray[np.float64],
    cov: NDArray[np.float64],
    P0: NDArray[np.float64],
    Vb: NDArray[np.float64] | None,
    options: FitOptions,
) -> KinFitResult:
    """Fit every event with the compiled kernel (one threaded call that validates, fits and writes every event).

    Parameters and result as for ``bumphunt.kinfit.engine_numpy.fit_numpy``:
    ``E, theta, phi`` (n, 3) and ``cov`` (n, 3, 3, 3) in GeV and rad, ``P0``
    (4,) the beam four-momentum (GeV), ``Vb`` (4, 4) its covariance (GeV^2)
    or None for a hard beam constraint. The result carries no ``options``
    (the caller records them).
    """
    configure_numba()
    E, theta, phi, cov = (np.ascontiguousarray(x) for x in (E, theta, phi, cov))
    full_cov = options.full_cov
    n = E.shape[0]
    res_E, res_t, res_p = np.empty((n, 3)), np.empty((n, 3)), np.empty((n, 3))
    res_cov = np.empty((n, 3, 3, 3))
    chi2, pvalue = np.empty(n), np.empty(n)
    pulls = np.empty((n, 3, 3))
    status = np.empty(n, dtype=np.int8)
    n_iter = np.empty(n, dtype=np.int16)
    converged = np.empty(n, dtype=np.bool_)
    cov_full = np.empty((n if full_cov else 0, 9, 9))
    beam_out = np.empty((n if Vb is not None else 0, 4))
    Vb_arr = np.ascontiguousarray(Vb) if Vb is not None else np.zeros((4, 4))
    with KERNEL_LOCK:
        fit_kernel(E, theta, phi, cov, np.ascontiguousarray(P0), Vb_arr, Vb is not None, options.max_iter,
                   options.max_halvings, options.tol_chi2, options.tol_constraint, full_cov, res_E, res_t, res_p, res_cov,
                   chi2, pvalue, pulls, status, n_iter, converged, cov_full, beam_out)
    return KinFitResult(
        E=res_E, theta=res_t, phi=res_p, cov=res_cov, chi2=chi2, pvalue=pvalue, converged=converged,
        n_iter=n_iter, pulls=pulls, status=status, cov_full=cov_full if full_cov else None,
        beam_p4=beam_out if Vb is not None else None,
    )

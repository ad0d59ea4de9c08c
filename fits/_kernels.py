"""Compiled kernels of the vectorised engine for data fits (numba).

The numpy engine (``fits.design`` / ``fits.newton``) stores a (k, R, n) moment
matrix per batch and runs every Newton iteration as several passes over it.
For data fits (unit weights, yield free or fixed) these kernels do the same
mathematics without the moment matrix:

- ``event_values``: per window, the signal density ``s(x_i)`` (1/GeV,
  normalised on the window, exactly ``fits.densities.signal_pdf``), the scaled
  coordinate ``x'_i`` and the Chebyshev sums ``sum_i T_m(x'_i)`` (start
  values), one pass over the window's events taken straight from the sorted
  masses;
- ``newton_fit``: the damped Newton minimisation of
  ``NLL = integ . theta - sum_i log(theta . F_i)`` for each hypothesis, with
  ``F_i = (s_i, T_0(x'_i), ..., T_p(x'_i))``; one pass over the events per
  iteration accumulates the exact gradient ``integ - sum F_i / lambda_i`` and
  the Hessian ``sum F_i F_i^T / lambda_i^2`` (as moments ``sum T_m / lambda^2``,
  ``T_j T_k = (T_{j+k} + T_{|j-k|}) / 2``) and counts the events with
  ``lambda_i <= 0``; the Newton system (``P <= 10`` parameters) is solved by
  Cholesky. Step control is the self-concordant damped step of
  ``fits.newton.minimise`` (``t = 1 / (1 + delta)``, full steps once
  ``delta < 0.5``) and the same stopping rule; each hypothesis stops on its own;
- ``newton_fit_syst``: the conditional fit with a constrained signal-yield
  nuisance (``mode="syst"`` of ``fits.newton.minimise``): chain-rule gradient
  and Hessian in the nuisance, backtracking line search on the NLL (the
  problem is not self-concordant there), same stopping rule.

Reproducibility: results are bit-identical between a freshly compiled kernel
and one loaded from numba's cache, for any number of threads and any split of
the hypotheses into batches. No fast-math flags are used (no reassociation, no
FMA contraction), so every floating-point operation is the one written here,
whatever the compiler vectorises. Sums over events are nevertheless SIMD-friendly:
they are accumulated in a fixed number of independent lanes (event ``i`` of a
window goes to lane ``i mod L``, ``L = 8`` for the default cubic background and
64 otherwise), each lane in event order, and the lanes are added in a fixed
pairwise order at the end. The loop over the lanes is elementwise, which the
loop vectoriser turns into AVX2/AVX-512 instructions without changing a single
rounding. The lane accumulators and block buffers live on the stack
(``_stack_f64``): the compiler knows they alias nothing, keeps the cubic
kernel's accumulators in registers and needs no run-time alias checks. ``exp``
and ``log`` in the per-event loops are branch-free polynomial versions written
here (``_exp_neg``, ``_log_pos``: vectorisable, and the same bits on every
machine, unlike calls to libm). The sum of ``log lambda_i`` (NLL) needs no
logarithm per event: each lane keeps the exact sum of the binary exponents
of ``lambda_i`` and the product of their mantissas (``_slog3``).

Hypotheses are distributed over ``prange`` (a plain loop unless compiled with
``parallel=True``). Compiled with ``cache=True`` (machine code stored next to
this file, or in ``NUMBA_CACHE_DIR``): the first call after installing or
changing this file compiles for about half a minute. Imported only by the functions
that use it.

Written by hand because no library fits thousands of small convex
likelihoods over tens of thousands of events each at this speed; the numpy
engine and the zfit reference engine cross-check it (tests).

Why this module is longer than the others (about 1000 lines): it is one
compilation unit. The kernels share the branch-free ``exp``/``log``, the
lane accumulators and the stack buffers, and numba's ``cache=True`` keys
its cache on this one file (it does not see changes to compiled helpers in
other files); the cubic-background specialisations (``*3``) sit next to the
general ones (``*n``) they must agree with (same lanes, same order of the
sums). Split into several files, a change to a shared helper would leave
stale caches behind in the others, and the pairs would drift apart.
"""

from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import carray, njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic

__all__ = ["event_values", "newton_fit", "newton_fit_syst", "morph_pass", "MORPH_MAX_NUISANCES", "MORPH_MAX_ORDER"]

#: lanes of the sums over events of the cubic-background kernels (one AVX-512 register)
_L3 = 8

_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10
_SHIFT = 6755399441055744.0  # 1.5 * 2**52
_DBL_MIN = 2.2250738585072014e-308
_DBL_MAX = 1.7976931348623157e308


# ---------------------------------------------------------------------------
# building blocks: bit casts, stack buffers, log and exp
# ---------------------------------------------------------------------------
@intrinsic
def _f2i(typingctx, x):  # pragma: no cover - compiled
    """The bits of a float64 as int64."""
    if x != types.float64:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(64))

    return types.int64(types.float64), codegen


@intrinsic
def _i2f(typingctx, b):  # pragma: no cover - compiled
    """The float64 with the bits of an int64."""
    if b != types.int64:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())

    return types.float64(types.int64), codegen


@intrinsic
def _stack_f64(typingctx, n):  # pragma: no cover - compiled
    """Pointer to ``n`` (a literal) float64 on the stack of the calling function.

    Unlike arrays from ``np.empty`` (heap), the compiler knows that this memory
    aliases nothing else, so lane accumulators indexed by constants after
    vectorisation are kept in registers.
    """
    if not isinstance(n, types.IntegerLiteral):
        return None
    size = int(n.literal_value)

    def codegen(context, builder, signature, args):
        p = cgutils.alloca_once(builder, ir.ArrayType(ir.DoubleType(), size))
        return builder.bitcast(p, ir.PointerType(ir.DoubleType()))

    return types.CPointer(types.float64)(n), codegen


@njit(inline="always", error_model="numpy")
def _log_pos(y):  # pragma: no cover - compiled
    """``log(y)`` for a finite normal ``y > 0`` (error < 1 ulp of the result + 2e-16); branch-free.

    Exponent and mantissa from the bits, ``m`` in [sqrt(2)/2, sqrt(2)),
    ``log m = 2 atanh(f)`` with ``f = (m-1)/(m+1)``, ``|f| < 0.172``, series to
    ``f^21`` (remainder < 1e-17). Other inputs give a meaningless value: callers check.
    """
    b = _f2i(y)
    ex = (b >> 52) - 1023
    mb = (b & 0xFFFFFFFFFFFFF) | 0x3FF0000000000000
    big = mb > 0x3FF6A09E667F3BCD  # mantissa > sqrt(2): use m / 2 and exponent + 1
    m = _i2f(mb - (0x0010000000000000 if big else 0))
    k = float(ex + (1 if big else 0))
    f = (m - 1.0) / (m + 1.0)
    u = f * f
    # p = sum_j u^j / (2j + 1), j <= 10: Horner on the first terms, Estrin on the rest
    # (shorter dependency chains, so that more vector iterations overlap)
    u2 = u * u
    u4 = u2 * u2
    a1 = 1.0 / 5.0 + u * (1.0 / 7.0)
    a2 = 1.0 / 9.0 + u * (1.0 / 11.0)
    a3 = 1.0 / 13.0 + u * (1.0 / 15.0)
    a4 = 1.0 / 17.0 + u * (1.0 / 19.0)
    q = a1 + u2 * ((a2 + a3 * u2) + (a4 + (1.0 / 21.0) * u2) * u4)
    p = 1.0 + u * (1.0 / 3.0 + u * q)
    return k * _LN2_HI + (2.0 * f * p + k * _LN2_LO)


@njit(inline="always", error_model="numpy")
def _exp_neg(z):  # pragma: no cover - compiled
    """``exp(z)`` for ``z <= 0`` (0 below -700; relative error ~ 1 ulp); branch-free.

    ``z = k ln 2 + r``, ``|r| <= ln(2)/2``, Taylor series of ``exp(r)`` to
    ``r^13`` (remainder < 1e-17), ``2^k`` built from the bits.
    """
    zz = max(z, -700.0)
    kf = zz * 1.4426950408889634 + _SHIFT
    kr = kf - _SHIFT
    r = (zz - kr * _LN2_HI) - kr * _LN2_LO
    # Taylor series to r^13: Horner on the first terms, Estrin on the rest
    r2 = r * r
    r4 = r2 * r2
    e3 = 1.0 / 24.0 + r * (1.0 / 120.0)
    e5 = 1.0 / 720.0 + r * (1.0 / 5040.0)
    e7 = 1.0 / 40320.0 + r * (1.0 / 362880.0)
    e9 = 1.0 / 3628800.0 + r * (1.0 / 39916800.0)
    e11 = 1.0 / 479001600.0 + r * (1.0 / 6227020800.0)
    q = (e3 + e5 * r2) + r4 * ((e7 + e9 * r2) + e11 * r4)
    p = 1.0 + r * (1.0 + r * (0.5 + r * (1.0 / 6.0 + r * q)))
    two_k = _i2f((_f2i(kf) - 0x4338000000000000 + 1023) << 52)
    return p * two_k if z > -700.0 else 0.0


@njit(inline="always", error_model="numpy")
def _phi(z):  # pragma: no cover - compiled
    """Standard normal CDF ``Phi(z) = erfc(-z / sqrt 2) / 2`` (as ``scipy.special.ndtr``)."""
    return 0.5 * math.erfc(-z * 0.7071067811865476)


@njit(cache=True, error_model="numpy")
def _vphi(z, out):  # pragma: no cover - compiled
    """``out = Phi(z)`` elementwise with ``_phi``."""
    for e in range(len(z)):
        out[e] = _phi(z[e])


@njit(cache=True, error_model="numpy")
def _vlog(y, out):  # pragma: no cover - compiled
    """``out = log(y)`` elementwise with ``_log_pos`` (finite normal ``y > 0``)."""
    for e in range(len(y)):
        out[e] = _log_pos(y[e])


@njit(cache=True, error_model="numpy")
def _vexp(z, out):  # pragma: no cover - compiled
    """``out = exp(z)`` elementwise with ``_exp_neg`` (``z <= 0``)."""
    for e in range(len(z)):
        out[e] = _exp_neg(z[e])


@njit(inline="always", error_model="numpy")
def _lane_sum8(a, q):  # pragma: no cover - compiled
    """Sum of the 8 lanes ``a[q, :]`` in a fixed pairwise order."""
    return ((a[q, 0] + a[q, 1]) + (a[q, 2] + a[q, 3])) + ((a[q, 4] + a[q, 5]) + (a[q, 6] + a[q, 7]))


# ---------------------------------------------------------------------------
# per-window event values
# ---------------------------------------------------------------------------
@njit(cache=True, error_model="numpy")
def event_values(x, start, counts, par, order, s_out, xp_out, cheb_out):  # pragma: no cover - compiled
    """Signal density and scaled coordinate of every event slot of every window.

    ``x``: sorted masses (GeV); window ``j`` holds ``x[start[j] : start[j] + counts[j]]``.
    ``par`` (k, 14 or more): ``mu, sigma, alpha_l, n_l, alpha_r, n_r, 1/norm (DSCB),
    comb_fraction, comb_scale, comb_slope, 1/cnorm, lo, hi, edge_width[, edge]``.
    ``edge_width > 0`` (GeV) marks a window reached by the wrong-pair edge at
    ``edge`` (GeV, column 14, read only then): the combinatorial line is
    multiplied by ``Phi((edge - x) / edge_width)`` (``1/cnorm`` is the inverse
    integral of the edged line). The choice is made once per window; windows
    without an edge run the plain loop. ``Phi`` uses ``math.erfc`` (libm, the
    same bits for a fresh and a cached kernel on one machine).
    Padding slots ``e >= counts[j]`` repeat the first event (or the window
    centre for an empty window). ``cheb_out[j, m] = sum_i T_m(x'_i)`` (lanes as
    the Newton passes).
    """
    k, n_max = s_out.shape
    sb = carray(_stack_f64(256), (256,))
    pb = carray(_stack_f64(256), (256,))
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
        ewidth = par[j, 13] if f > 0.0 else 0.0
        edge = par[j, 14] if ewidth > 0.0 else 0.0
        a2 = 2.0 / (hi - lo)
        b2 = (lo + hi) / (hi - lo)
        kl = al / nl
        kr = ar / nr
        n = counts[j]
        s0 = start[j]
        sj = s_out[j]
        xj = xp_out[j]
        # DSCB in one branch-free form: exp(-tc^2/2 - n log y), tc = t clipped to the core,
        # y = 1 + (alpha/n) (distance beyond the tail start) (y = 1 in the core).
        # Blocks through stack buffers: the vectorised loop then needs no run-time alias checks
        # (which are conservative: their failure, depending on where the arrays lie, made it 4x slower).
        # below edge - 9 widths Phi is exactly 1.0 in double precision: the sorted events there
        # (a prefix of the window) take the plain loop, with the same bits
        n_flat = n
        if ewidth > 0.0:
            n_flat = np.searchsorted(x[s0 : s0 + n], edge - 9.0 * ewidth)
        for b0 in range(0, n, 256):
            m = min(256, n - b0)
            if b0 + m > n_flat:
                for e in range(m):
                    xx = x[s0 + b0 + e]
                    t = (xx - mu) * isig
                    tc = min(max(t, -al), ar)
                    y = 1.0 + kl * max(-t - al, 0.0) + kr * max(t - ar, 0.0)
                    nn = nl if t < -al else nr
                    z = -0.5 * tc * tc - nn * _log_pos(y)
                    sb[e] = cs * _exp_neg(z) + cc * ((1.0 + slope * (xx - mu) * iscale) * _phi((edge - xx) / ewidth))
                    pb[e] = a2 * xx - b2
            else:
                for e in range(m):
                    xx = x[s0 + b0 + e]
                    t = (xx - mu) * isig
                    tc = min(max(t, -al), ar)
                    y = 1.0 + kl * max(-t - al, 0.0) + kr * max(t - ar, 0.0)
                    nn = nl if t < -al else nr
                    z = -0.5 * tc * tc - nn * _log_pos(y)
                    sb[e] = cs * _exp_neg(z) + cc * (1.0 + slope * (xx - mu) * iscale)
                    pb[e] = a2 * xx - b2
            for e in range(m):
                sj[b0 + e] = sb[e]
                xj[b0 + e] = pb[e]
        _cheb_sums(xj, n, order, cheb_out[j])
        if n == 0:
            xx = 0.5 * (lo + hi)
            t = (xx - mu) * isig
            if t < -al:
                d = math.exp(-0.5 * al * al) * math.exp(-nl * math.log(1.0 + kl * (-t - al)))
            elif t > ar:
                d = math.exp(-0.5 * ar * ar) * math.exp(-nr * math.log(1.0 + kr * (t - ar)))
            else:
                d = math.exp(-0.5 * t * t)
            v = cs * d
            if f > 0.0:
                line = 1.0 + slope * (xx - mu) * iscale
                if ewidth > 0.0:
                    line = line * _phi((edge - xx) / ewidth)
                v += cc * line
            fill_s = v
            fill_xp = 0.0
        else:
            fill_s = sj[0]
            fill_xp = xj[0]
        for e in range(n, n_max):
            sj[e] = fill_s
            xj[e] = fill_xp


@njit(inline="always", error_model="numpy")
def _cheb3_add(acc, e, x):  # pragma: no cover - compiled
    x2 = 2.0 * x
    T2 = x2 * x - 1.0
    acc[0, e] += 1.0
    acc[1, e] += x
    acc[2, e] += T2
    acc[3, e] += x2 * T2 - x


@njit(error_model="numpy")
def _cheb_sums(xp, n, order, out):  # pragma: no cover - compiled
    """``out[m] = sum_i T_m(xp_i)``, m <= order, over the first n events (8 lanes, i mod 8)."""
    if order == 3:  # the default: lanes in registers (same bits as the general loop)
        a3 = carray(_stack_f64(32), (4, 8))
        for q in range(4):
            for e in range(8):
                a3[q, e] = 0.0
        nb = n - n % 8
        for b0 in range(0, nb, 8):
            for e in range(8):
                _cheb3_add(a3, e, xp[b0 + e])
        for e in range(n - nb):
            _cheb3_add(a3, e, xp[nb + e])
        for q in range(4):
            out[q] = _lane_sum8(a3, q)
        return
    if order < 16:
        T = carray(_stack_f64(128), (16, 8))
        acc = carray(_stack_f64(128), (16, 8))
    else:
        T = np.empty((order + 1, 8))
        acc = np.empty((order + 1, 8))
    for q in range(order + 1):
        for e in range(8):
            acc[q, e] = 0.0
    for e in range(8):
        T[0, e] = 1.0
    nb = n - n % 8
    for b0 in range(0, nb, 8):
        for e in range(8):
            acc[0, e] += 1.0
        if order >= 1:
            for e in range(8):
                T[1, e] = xp[b0 + e]
                acc[1, e] += T[1, e]
        for q in range(2, order + 1):
            for e in range(8):
                T[q, e] = 2.0 * T[1, e] * T[q - 1, e] - T[q - 2, e]
                acc[q, e] += T[q, e]
    m = n - nb  # tail: event nb + e goes to lane e
    for e in range(m):
        acc[0, e] += 1.0
    if order >= 1:
        for e in range(m):
            T[1, e] = xp[nb + e]
            acc[1, e] += T[1, e]
    for q in range(2, order + 1):
        for e in range(m):
            T[q, e] = 2.0 * T[1, e] * T[q - 1, e] - T[q - 2, e]
            acc[q, e] += T[q, e]
    for q in range(order + 1):
        out[q] = _lane_sum8(acc, q)


# ---------------------------------------------------------------------------
# one pass over a window's events: gradient, Hessian moments, sum log lambda
# ---------------------------------------------------------------------------
@njit(inline="always", error_model="numpy")
def _ev3(acc, e, sv, x, t0, t1, t2, t3, t4):  # pragma: no cover - compiled
    """Add one event's terms to lane ``e`` of the cubic-background accumulators ``acc`` (19, 8)."""
    x2 = 2.0 * x
    T2 = x2 * x - 1.0
    T3 = x2 * T2 - x
    lam = t0 * sv + t1 + t2 * x + t3 * T2 + t4 * T3
    acc[0, e] += 0.0 if lam > 0.0 else 1.0
    r = 1.0 / lam
    acc[1, e] += sv * r
    acc[2, e] += r
    acc[3, e] += x * r
    acc[4, e] += T2 * r
    acc[5, e] += T3 * r
    r2 = r * r
    T4 = x2 * T3 - T2
    T5 = x2 * T4 - T3
    T6 = x2 * T5 - T4
    acc[6, e] += r2
    acc[7, e] += x * r2
    acc[8, e] += T2 * r2
    acc[9, e] += T3 * r2
    acc[10, e] += T4 * r2
    acc[11, e] += T5 * r2
    acc[12, e] += T6 * r2
    sr2 = sv * r2
    acc[13, e] += sv * sr2
    acc[14, e] += sr2
    acc[15, e] += x * sr2
    acc[16, e] += T2 * sr2
    acc[17, e] += T3 * sr2


@njit(inline="always", error_model="numpy")
def _lg_add(acc, e, lam):  # pragma: no cover - compiled
    """Add ``log lambda`` to lane ``e`` as mantissa product and exponent sum (see ``_slog3``);
    count densities that are not positive (``acc[2]``) or not normal numbers (``acc[3]``)."""
    b = _f2i(lam)
    acc[0, e] *= _i2f((b & 0xFFFFFFFFFFFFF) | 0x3FF0000000000000)
    acc[1, e] += float((b >> 52) - 1023)
    acc[2, e] += 0.0 if lam > 0.0 else 1.0
    acc[3, e] += 0.0 if (lam >= _DBL_MIN and lam <= _DBL_MAX) else 1.0


@njit(inline="always", error_model="numpy")
def _lg_renorm(acc, L):  # pragma: no cover - compiled
    """Move the exponents of the lane products ``acc[0, :L]`` into the exponent sums ``acc[1]``."""
    for e in range(L):
        b = _f2i(acc[0, e])
        acc[1, e] += float((b >> 52) - 1023)
        acc[0, e] = _i2f((b & 0xFFFFFFFFFFFFF) | 0x3FF0000000000000)


@njit(inline="always", error_model="numpy")
def _lg_init(acc, L):  # pragma: no cover - compiled
    for e in range(L):
        acc[0, e] = 1.0
        acc[1, e] = 0.0
        acc[2, e] = 0.0
        acc[3, e] = 0.0


@njit(inline="always", error_model="numpy")
def _lg_total(acc, L):  # pragma: no cover - compiled
    """``sum log lambda`` from the ``L`` lanes (a power of 2) of ``_lg_add``, in a fixed order."""
    _lg_renorm(acc, L)
    for e in range(L):
        acc[0, e] = _log_pos(acc[0, e])
    h = L // 2
    while h >= 1:
        for q in range(4):
            for e in range(h):
                acc[q, e] += acc[q, e + h]
        h //= 2
    ex = acc[1, 0]
    return ex * _LN2_HI + (acc[0, 0] + ex * _LN2_LO)


@njit(inline="always", error_model="numpy")
def _lg3(acc, e, sv, x, t0, t1, t2, t3, t4):  # pragma: no cover - compiled
    x2 = 2.0 * x
    T2 = x2 * x - 1.0
    T3 = x2 * T2 - x
    _lg_add(acc, e, t0 * sv + t1 + t2 * x + t3 * T2 + t4 * T3)


@njit(cache=True, error_model="numpy")
def _slog3(s, xp, n, th):  # pragma: no cover - compiled
    """``_slog`` for the cubic background (P = 5): 8 lanes.

    ``sum_i log lambda_i`` without a logarithm per event: ``lambda = m 2^k`` from its
    bits (exact), the lane accumulates the exponents ``k`` (exactly) and the product of
    the mantissas ``m`` in [1, 2) (relative rounding error below n u / 8; its exponent is
    moved to the exponent sum every 64 events per lane, before it can overflow); the
    total is ``sum k ln 2 + sum_lanes log(product)``.
    """
    t0, t1, t2, t3, t4 = th[0], th[1], th[2], th[3], th[4]
    acc = carray(_stack_f64(32), (4, 8))
    _lg_init(acc, 8)
    nb = n - n % 8
    for b0 in range(0, nb, 8):
        for e in range(8):
            _lg3(acc, e, s[b0 + e], xp[b0 + e], t0, t1, t2, t3, t4)
        if (b0 & 511) == 504:
            _lg_renorm(acc, 8)
    for e in range(n - nb):
        _lg3(acc, e, s[nb + e], xp[nb + e], t0, t1, t2, t3, t4)
    nbad = int(_lane_sum8(acc, 2))
    if nbad > 0:
        return nbad, 0.0
    if _lane_sum8(acc, 3) > 0.0:  # subnormal or infinite density: libm
        return nbad, _slog_scalar(s, xp, n, th, 5)
    return nbad, _lg_total(acc, 8)


@njit(cache=True, error_model="numpy")
def _pass3(s, xp, n, th, g, H):  # pragma: no cover - compiled
    """``_passn`` for the default cubic background (P = 5): all sums in one loop over the
    events, 8 lanes on the stack (vectorises to one register per quantity)."""
    t0, t1, t2, t3, t4 = th[0], th[1], th[2], th[3], th[4]
    acc = carray(_stack_f64(144), (18, 8))
    for q in range(18):
        for e in range(8):
            acc[q, e] = 0.0
    nb = n - n % 8
    for b0 in range(0, nb, 8):
        for e in range(8):
            _ev3(acc, e, s[b0 + e], xp[b0 + e], t0, t1, t2, t3, t4)
    for e in range(n - nb):  # tail: event nb + e goes to lane e
        _ev3(acc, e, s[nb + e], xp[nb + e], t0, t1, t2, t3, t4)
    nbad = int(_lane_sum8(acc, 0))
    for a in range(5):
        g[a] = _lane_sum8(acc, 1 + a)
    hT = (_lane_sum8(acc, 6), _lane_sum8(acc, 7), _lane_sum8(acc, 8), _lane_sum8(acc, 9), _lane_sum8(acc, 10), _lane_sum8(acc, 11), _lane_sum8(acc, 12))
    hsT = (_lane_sum8(acc, 14), _lane_sum8(acc, 15), _lane_sum8(acc, 16), _lane_sum8(acc, 17))
    H[0, 0] = _lane_sum8(acc, 13)
    for q in range(4):
        H[0, 1 + q] = hsT[q]
        H[1 + q, 0] = hsT[q]
        for c in range(4):
            H[1 + q, 1 + c] = 0.5 * (hT[q + c] + hT[abs(q - c)])
    return nbad


@njit(inline="always", error_model="numpy")
def _acc_prod(acc, qa, A, qA, B, qB, m):  # pragma: no cover - compiled
    """``acc[qa, i] += A[qA, i] * B[qB, i]`` for the block's events i < m (lane i)."""
    for e in range(m):
        acc[qa, e] += A[qA, e] * B[qB, e]


@njit(inline="always", error_model="numpy")
def _acc_row(acc, qa, B, qB, m):  # pragma: no cover - compiled
    """``acc[qa, i] += B[qB, i]`` for i < m."""
    for e in range(m):
        acc[qa, e] += B[qB, e]


@njit(inline="always", error_model="numpy")
def _lane_tree(acc, rows):  # pragma: no cover - compiled
    """Sums of the 64 lanes of ``acc[:rows]`` into ``acc[:rows, 0]`` in a fixed pairwise order."""
    h = 32
    while h >= 1:
        for q in range(rows):
            for e in range(h):
                acc[q, e] += acc[q, e + h]
        h //= 2


@njit(inline="always", error_model="numpy")
def _block_lambda(s, xp, b0, m, th, P, T):  # pragma: no cover - compiled
    """Rows of the block buffer ``T`` for events ``b0 .. b0+m``: ``T[q] = T_q(x')``
    (q = 1 .. 2p; ``T_0 = 1`` is not stored), ``T[2p+1] = s``, ``T[2p+2] = lambda``
    (summed in the order of ``_ev3``: ``((th0 s + th1) + th2 T_1) + ...``)."""
    p = P - 2
    nT = 2 * p + 1
    rs = nT
    rl = nT + 1
    for e in range(m):
        T[rs, e] = s[b0 + e]
    if nT > 1:
        for e in range(m):
            T[1, e] = xp[b0 + e]
    if nT > 2:
        for e in range(m):
            T[2, e] = 2.0 * T[1, e] * T[1, e] - 1.0
    for q in range(3, nT):
        for e in range(m):
            T[q, e] = 2.0 * T[1, e] * T[q - 1, e] - T[q - 2, e]
    for e in range(m):
        T[rl, e] = th[0] * T[rs, e] + th[1]
    for q in range(1, p + 1):
        tq = th[q + 1]
        for e in range(m):
            T[rl, e] += tq * T[q, e]


#: largest number of parameters with stack buffers in the generic passes (background order 10)
_P_STACK = 12


@njit(cache=True, error_model="numpy")
def _passn(s, xp, n, th, P, g, H):  # pragma: no cover - compiled
    """One pass over a window's events at ``th``: ``g = sum F / lambda``, ``H = sum F F^T /
    lambda^2``; returns the number of events with lambda <= 0 or NaN.

    The Hessian needs only ``sum s^2 r^2``, ``sum s T_m r^2`` (m <= p) and ``sum T_m r^2``
    (m <= 2p), because ``T_j T_k = (T_{j+k} + T_{|j-k|}) / 2`` (as
    ``fits.design.moment_layout``). Any background order: blocks of 64 events in a stack
    buffer, sums in 64 lanes (event i to lane i mod 64).
    """
    p = P - 2
    nT = 2 * p + 1
    rs = nT
    rl = nT + 1
    rr = nT + 2
    rq = nT + 3
    # accumulator rows: 0 bad, 1..P g, then hT (nT), ss, hsT (p + 1)
    ih = 1 + P
    iss = ih + nT
    ihs = iss + 1
    rows = ihs + p + 1
    if P <= _P_STACK:
        T = carray(_stack_f64(1600), (25, 64))  # 2 P + 1 rows
        acc = carray(_stack_f64(2944), (46, 64))  # 4 P - 2 rows
    else:
        T = np.empty((2 * P + 1, 64))
        acc = np.empty((4 * P - 2, 64))
    for q in range(rows):
        for e in range(64):
            acc[q, e] = 0.0
    for b0 in range(0, n, 64):
        m = min(64, n - b0)
        _block_lambda(s, xp, b0, m, th, P, T)
        for e in range(m):
            lam = T[rl, e]
            acc[0, e] += 0.0 if lam > 0.0 else 1.0
            r = 1.0 / lam
            T[rl, e] = r
            T[rr, e] = r * r
            T[rq, e] = T[rs, e] * T[rr, e]  # s r^2
        _acc_prod(acc, 1, T, rs, T, rl, m)
        _acc_row(acc, 2, T, rl, m)
        for q in range(1, p + 1):
            _acc_prod(acc, 2 + q, T, q, T, rl, m)
        _acc_row(acc, ih, T, rr, m)
        for q in range(1, nT):
            _acc_prod(acc, ih + q, T, q, T, rr, m)
        _acc_prod(acc, iss, T, rs, T, rq, m)
        _acc_row(acc, ihs, T, rq, m)
        for q in range(1, p + 1):
            _acc_prod(acc, ihs + q, T, q, T, rq, m)
    _lane_tree(acc, rows)
    nbad = int(acc[0, 0])
    for a in range(P):
        g[a] = acc[1 + a, 0]
    H[0, 0] = acc[iss, 0]
    for q in range(p + 1):
        H[0, 1 + q] = acc[ihs + q, 0]
        H[1 + q, 0] = acc[ihs + q, 0]
        for c in range(p + 1):
            H[1 + q, 1 + c] = 0.5 * (acc[ih + q + c, 0] + acc[ih + abs(q - c), 0])
    return nbad


@njit(cache=True, error_model="numpy")
def _slogn(s, xp, n, th, P):  # pragma: no cover - compiled
    """``_slog`` for any background order (blocks and lanes as ``_passn``)."""
    rl = 2 * (P - 2) + 2
    if P <= _P_STACK:
        T = carray(_stack_f64(1600), (25, 64))
    else:
        T = np.empty((2 * P + 1, 64))
    acc = carray(_stack_f64(256), (4, 64))
    _lg_init(acc, 64)
    for b0 in range(0, n, 64):
        m = min(64, n - b0)
        _block_lambda(s, xp, b0, m, th, P, T)
        for e in range(m):
            _lg_add(acc, e, T[rl, e])
        if (b0 & 4095) == 4032:
            _lg_renorm(acc, 64)
    nbad = 0
    for e in range(64):
        nbad += int(acc[2, e])
    if nbad > 0:
        return nbad, 0.0
    odd = 0.0
    for e in range(64):
        odd += acc[3, e]
    if odd > 0.0:  # subnormal or infinite density: libm
        return nbad, _slog_scalar(s, xp, n, th, P)
    return nbad, _lg_total(acc, 64)


@njit(cache=True, error_model="numpy", inline="always")
def _lam_scalar(s_e, x, th, P):  # pragma: no cover - compiled
    """Density ``theta . F_i`` of one event (signal density ``s_e``, scaled mass ``x``), scalar."""
    lam = th[0] * s_e + th[1]
    tm2 = 1.0
    tm1 = x
    if P > 2:
        lam += th[2] * x
    for q in range(3, P):
        tm = 2.0 * x * tm1 - tm2
        lam += th[q] * tm
        tm2 = tm1
        tm1 = tm
    return lam


@njit(cache=True, error_model="numpy")
def _slog_scalar(s, xp, n, th, P):  # pragma: no cover - compiled
    """Sum of ``log(max(lambda_i, 1e-300))`` with libm (densities that are not normal numbers)."""
    slog = 0.0
    for e in range(n):
        lam = _lam_scalar(s[e], xp[e], th, P)
        slog += math.log(max(lam, 1e-300))
    return slog


@njit(cache=True, error_model="numpy")
def _pass_any(s, xp, n, th, P, g, H):  # pragma: no cover - compiled
    """Gradient and Hessian sums at ``th`` (``_pass3`` or ``_passn``); returns the number of
    events with a density that is not positive."""
    if P == 5:
        return _pass3(s, xp, n, th, g, H)
    return _passn(s, xp, n, th, P, g, H)


@njit(cache=True, error_model="numpy")
def _pass_nll(s, xp, n, th, P, g, H):  # pragma: no cover - compiled
    """``_pass_any`` and the sum of ``log lambda`` (0 unless every density is positive)."""
    nbad = _pass_any(s, xp, n, th, P, g, H)
    slog = 0.0
    if nbad == 0:
        _, slog = _slog(s, xp, n, th, P)
    return nbad, slog


@njit(cache=True, error_model="numpy")
def _slog(s, xp, n, th, P):  # pragma: no cover - compiled
    """Sum of ``log(theta . F_i)`` over the events and the number of events with a density
    that is not positive (the sum is only valid when that number is 0)."""
    if P == 5:
        return _slog3(s, xp, n, th)
    return _slogn(s, xp, n, th, P)


@njit(cache=True, error_model="numpy")
def _lam_min(s, xp, n, th, P):  # pragma: no cover - compiled
    """Smallest density ``theta . F_i`` over the events (rarely needed: infeasible starts)."""
    lmin = np.inf
    for e in range(n):
        lam = _lam_scalar(s[e], xp[e], th, P)
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
def newton_fit(s, xp, rows, counts, integ, theta0, theta_alt, use_alt, fixed, max_iter, tol, theta_out, nll_out, g_out, H_out, conv_out, iter_out):  # pragma: no cover - compiled
    """Damped Newton fits of k hypotheses on their events (see the module docstring).

    Fit ``j`` is of the events of row ``rows[j]`` of ``s``, ``xp``, ``counts``
    and ``integ`` (a data set fitted at several signal yields needs no copies);
    the other arrays are indexed by ``j``.
    ``fixed``: the signal yield ``theta[:, 0]`` stays at its start value.
    ``use_alt[j]``: use ``theta_alt[j]`` where ``theta0[j]`` is not feasible.
    Writes the solution, NLL, gradient and Hessian in (mu, beta) at the
    solution, convergence flag and iteration count.
    """
    k = len(rows)
    P = integ.shape[1]
    f0 = 1 if fixed else 0
    for j in prange(k):
        g = np.empty(P)
        H = np.empty((P, P))
        L = np.zeros((P, P))
        d = np.empty(P)
        th = theta0[j].copy()
        i = rows[j]
        n = counts[i]
        sj = s[i]
        xj = xp[i]
        bad = _pass_any(sj, xj, n, th, P, g, H)
        if bad > 0 and use_alt[j]:
            th2 = theta_alt[j].copy()
            bad2 = _pass_any(sj, xj, n, th2, P, g, H)
            if bad2 == 0:
                th = th2
                bad = 0
        if bad > 0:
            # raise the constant background term until the density is positive at every event
            lmin = _lam_min(sj, xj, n, th, P)
            span = max(integ[i, 1], 1e-12)
            sc = abs(th[0]) + 1.0
            for q in range(1, P):
                sc += abs(integ[i, q] * th[q])
            shift = -lmin if math.isfinite(lmin) else 0.0
            th[1] += shift + 0.1 * sc / span
            bad = _pass_any(sj, xj, n, th, P, g, H)
        conv = False
        stuck = False
        it = 0
        t = 0.0
        for it in range(1, max_iter + 1):  # noqa: B007 - the count is read after the loop (iter_out)
            for a in range(P):
                g[a] = integ[i, a] - g[a]
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
            bad = _pass_any(sj, xj, n, th, P, g, H)
            if bad > 0:  # cannot happen in exact arithmetic: undo half the step
                for a in range(f0, P):
                    th[a] -= 0.5 * t * d[a]
                if dec < 1e-6:
                    stuck = True
                bad = _pass_any(sj, xj, n, th, P, g, H)
        # final pass at the solution: NLL, gradient and Hessian there
        bad, slog = _pass_nll(sj, xj, n, th, P, g, H)
        if bad > 0:  # rounding at the last step: undo it
            for a in range(f0, P):
                th[a] -= t * d[a]
            bad, slog = _pass_nll(sj, xj, n, th, P, g, H)
        lin = 0.0
        for a in range(P):
            lin += integ[i, a] * th[a]
            g_out[j, a] = integ[i, a] - g[a]
            theta_out[j, a] = th[a]
            for c in range(P):
                H_out[j, a, c] = H[a, c]
        nll_out[j] = lin - slog if bad == 0 else np.inf
        conv_out[j] = conv and bad == 0
        iter_out[j] = it



@njit(cache=True, error_model="numpy")
def _mu_syst(u, c, a, lognormal):  # pragma: no cover - compiled
    if lognormal:
        m = c * math.exp(a * u)
        return m, a * m, a * a * m
    return c * (1.0 + a * u), c * a, 0.0


@njit(cache=True, error_model="numpy")
def newton_fit_syst(s, xp, rows, counts, integ, theta0, syst_c, syst_a, lognormal, max_iter, tol, theta_out, mu_out, nll_out, g_out, H_out, Hf_out, conv_out, iter_out):  # pragma: no cover - compiled
    """Newton fits with a constrained signal-yield nuisance (``mode="syst"`` of ``fits.newton.minimise``).

    Fit ``j`` is of row ``rows[j]`` of ``s``, ``xp``, ``counts`` and ``integ``
    (as ``newton_fit``); the other arrays are indexed by ``j``.
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
    k = len(rows)
    P = integ.shape[1]
    for j in prange(k):
        gs = np.empty(P)
        gl = np.empty(P)
        Hl = np.empty((P, P))
        Hs = np.empty((P, P))
        L = np.zeros((P, P))
        d = np.empty(P)
        tl = np.empty(P)
        pt = np.empty(P)
        p = theta0[j].copy()
        i = rows[j]
        n = counts[i]
        sj = s[i]
        xj = xp[i]
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
            span = max(integ[i, 1], 1e-12)
            sc = abs(m) + 1.0
            for q in range(1, P):
                sc += abs(integ[i, q] * tl[q])
            shift = -lmin if math.isfinite(lmin) else 0.0
            shift += 0.1 * sc / span
            p[1] += shift
            tl[1] += shift
        bad, slog = _slog(sj, xj, n, tl, P)
        lin = 0.0
        for q in range(P):
            lin += integ[i, q] * tl[q]
        nll = lin - slog + 0.5 * p[0] * p[0] if bad == 0 else np.inf
        conv = False
        stuck = False
        it = 0
        for it in range(1, max_iter + 1):  # noqa: B007 - the count is read after the loop (iter_out)
            _pass_any(sj, xj, n, tl, P, gl, Hl)
            for q in range(P):
                gl[q] = integ[i, q] - gl[q]
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
                        lin += integ[i, q] * tl[q]
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


# ---------------------------------------------------------------------------
# the morphed-template model of combined fits (fits.combined)
# ---------------------------------------------------------------------------
#: largest number of shape nuisances and background order the morphed-model pass keeps on the stack
MORPH_MAX_NUISANCES = 4
MORPH_MAX_ORDER = 8


@njit(cache=True, error_model="numpy")
def _morph_row(s0, dA, dB, xp, w, n, th, J, p, unit, g, H):  # pragma: no cover - compiled
    """One row of ``morph_pass``: returns ``(sum w log lambda, events with lambda <= 0)``.

    The row's density is ``lambda = N s(nu) + sum_m beta_m T_m(x')`` with
    ``s(nu) = s0 + sum_j nu_j (A_j + nu_j B_j)`` and parameters ``th = (N, nu_1..nu_J,
    beta_0..beta_p)``. Fills ``g = -sum w J / lambda`` and ``H = sum w J J^T / lambda^2 -
    sum w (d2 lambda) / lambda`` with the Jacobian ``J = (s, N ds/dnu_j, T_m)``; the curvature
    of lambda is ``d2/dN dnu_j = ds_j`` and ``d2/dnu_j^2 = 2 N B_j``. The sum
    ``T_j T_k = (T_{j+k} + T_{|j-k|}) / 2`` gives the background block from 2p + 1 moments.
    Blocks of 64 events in stack buffers, sums in 64 lanes added in a fixed pairwise order.
    """
    P = p + 1
    nT = 2 * p + 1
    # block rows: T_0..T_2p, s, ds_j, B_j, lambda, w/lambda, w/lambda^2, s w/lambda^2, ds_j w/lambda^2
    rS = nT
    rD = nT + 1
    rB = rD + J
    rL = rB + J
    rR1 = rL + 1
    rR2 = rR1 + 1
    rSR2 = rR2 + 1
    rDR2 = rSR2 + 1
    # accumulator rows
    aBad = 0
    aLog = 1
    aGs = 2
    aGd = 3
    aGT = aGd + J
    aHT = aGT + P
    aHss = aHT + nT
    aHsT = aHss + 1
    aHsd = aHsT + P
    aHdT = aHsd + J
    aHdd = aHdT + J * P
    aCb = aHdd + J * J
    nacc = aCb + J
    T = carray(_stack_f64(2304), (36, 64))
    acc = carray(_stack_f64(6656), (104, 64))
    for q in range(nacc):
        for e in range(64):
            acc[q, e] = 0.0
    N = th[0]
    for b0 in range(0, n, 64):
        m = min(64, n - b0)
        for e in range(m):
            T[0, e] = 1.0
            T[1, e] = xp[b0 + e]
            T[rS, e] = s0[b0 + e]
            T[rR1, e] = 1.0 if unit else w[b0 + e]
        for q in range(2, nT):
            for e in range(m):
                T[q, e] = 2.0 * T[1, e] * T[q - 1, e] - T[q - 2, e]
        for j in range(J):
            nu = th[1 + j]
            for e in range(m):
                a_ = dA[j, b0 + e]
                b_ = dB[j, b0 + e]
                T[rB + j, e] = b_
                T[rD + j, e] = a_ + 2.0 * nu * b_
                T[rS, e] += nu * (a_ + nu * b_)
        for e in range(m):
            T[rL, e] = N * T[rS, e]
        for q in range(P):
            bq = th[1 + J + q]
            for e in range(m):
                T[rL, e] += bq * T[q, e]
        for e in range(m):
            lam = T[rL, e]
            wv = T[rR1, e]
            ok = lam > 0.0
            acc[aBad, e] += 0.0 if (ok or wv == 0.0) else 1.0
            lv = lam if ok else 1.0
            wv = wv if ok else 0.0
            acc[aLog, e] += wv * _log_pos(lv)
            r1 = wv / lv
            T[rR1, e] = r1
            T[rR2, e] = r1 / lv
            T[rSR2, e] = T[rS, e] * T[rR2, e]
        for j in range(J):
            for e in range(m):
                T[rDR2 + j, e] = T[rD + j, e] * T[rR2, e]
        _acc_prod(acc, aGs, T, rS, T, rR1, m)
        for j in range(J):
            _acc_prod(acc, aGd + j, T, rD + j, T, rR1, m)
            _acc_prod(acc, aCb + j, T, rB + j, T, rR1, m)
        for q in range(P):
            _acc_prod(acc, aGT + q, T, q, T, rR1, m)
            _acc_prod(acc, aHsT + q, T, q, T, rSR2, m)
        for q in range(nT):
            _acc_prod(acc, aHT + q, T, q, T, rR2, m)
        _acc_prod(acc, aHss, T, rS, T, rSR2, m)
        for j in range(J):
            _acc_prod(acc, aHsd + j, T, rD + j, T, rSR2, m)
            for q in range(P):
                _acc_prod(acc, aHdT + j * P + q, T, q, T, rDR2 + j, m)
            for k in range(J):
                _acc_prod(acc, aHdd + j * J + k, T, rD + k, T, rDR2 + j, m)
    _lane_tree(acc, nacc)
    g[0] = -acc[aGs, 0]
    for j in range(J):
        g[1 + j] = -N * acc[aGd + j, 0]
    for q in range(P):
        g[1 + J + q] = -acc[aGT + q, 0]
    H[0, 0] = acc[aHss, 0]
    for j in range(J):
        v = N * acc[aHsd + j, 0] - acc[aGd + j, 0]
        H[0, 1 + j] = v
        H[1 + j, 0] = v
        for k in range(J):
            H[1 + j, 1 + k] = N * N * acc[aHdd + j * J + k, 0]
        H[1 + j, 1 + j] -= 2.0 * N * acc[aCb + j, 0]
        for q in range(P):
            v = N * acc[aHdT + j * P + q, 0]
            H[1 + j, 1 + J + q] = v
            H[1 + J + q, 1 + j] = v
    for q in range(P):
        H[0, 1 + J + q] = acc[aHsT + q, 0]
        H[1 + J + q, 0] = acc[aHsT + q, 0]
        for c in range(P):
            H[1 + J + q, 1 + J + c] = 0.5 * (acc[aHT + q + c, 0] + acc[aHT + abs(q - c), 0])
    return acc[aLog, 0], acc[aBad, 0]


@njit(cache=True, error_model="numpy")
def morph_pass(rows, s0, dA, dB, xp, w, n_ev, th, order, unit, nll, g, H, nbad):  # pragma: no cover - compiled
    """NLL (without the integral terms), gradient and Hessian of the morphed-template model for ``rows``.

    ``s0`` (R, n), ``dA``/``dB`` (R, J, n) (``J <= MORPH_MAX_NUISANCES``), ``xp`` and ``w``
    (R, n; ``w`` ignored with ``unit``: events of weight 1), ``n_ev`` (R,) the used slots of each
    row, ``th`` (R, 1 + J + order + 1) (``order <= MORPH_MAX_ORDER``). Fills ``nll[r] = -sum w
    log lambda``, ``g[r]``, ``H[r]`` and ``nbad[r]`` (events with lambda <= 0) for every ``r``
    in ``rows``; other rows are left as they are. Each row is summed on its own, so results do
    not depend on which other rows are passed.
    """
    J = dA.shape[1]
    for k in range(len(rows)):
        r = rows[k]
        lg, nb = _morph_row(s0[r], dA[r], dB[r], xp[r], w[r], n_ev[r], th[r], J, order, unit, g[r], H[r])
        nll[r] = -lg
        nbad[r] = int(nb)

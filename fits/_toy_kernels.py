"""Compiled per-event loops of the batched toy CLs engine (numba).

Toys are thinnings of one Poisson point process per toy (``fits.toy_sampling``):
a background layer drawn under a piecewise-constant envelope of the background
densities and a signal layer with arrival "times" in the signal yield. These
kernels do the three per-event passes of that scheme:

- ``envelope_positions``: sorted positions of the background layer from
  exponential spacings (a unit-rate Poisson process on the envelope's
  cumulative mass, mapped through its piecewise-linear inverse CDF by a merge);
- ``thin_rows``: the toy data set of a model ``(mu, beta)``: background-layer
  points with ``v < max(sum_m beta_m T_m(x'), 0)`` and signal-layer points with
  ``t < mu``, written as the per-event signal densities and scaled masses the
  compiled Newton kernels read;
- ``log_ratio_rows``: ``sum_i log(lambda_a(x_i) / lambda_b(x_i))`` of two
  generating models on each toy (the likelihood ratios of the mixture
  importance weights), with the generators' clipping ``mu s + max(b, 0)``.

Every row is computed on its own, in event order, with no fast-math flags, so
the results are the same bits for a fresh compilation, a cached one and any
batch or thread count (the loops are plain ``range``: no threads). The
logarithm sum multiplies densities in 8 lanes and takes one ``math.log`` per
lane at the end (``log_ratio_rows``).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

__all__ = ["envelope_positions", "thin_rows", "log_ratio_rows"]

_LN2 = 0.6931471805599453


@njit(cache=True, error_model="numpy")
def envelope_positions(spacings, counts, cdf, edges, y, level, x_out, v_out):  # pragma: no cover - compiled
    """Sorted points of a Poisson process with a piecewise-constant density, one row per toy.

    Row ``r`` has ``counts[r]`` points and uses the next ``counts[r] + 1``
    exponential spacings of ``spacings`` (rows in order): ``u_k = S_k /
    S_total`` are sorted uniforms. The density is constant on the cells
    ``edges[c] .. edges[c+1]`` (GeV) with cumulative masses ``cdf`` (``cdf[0] =
    0``, ``cdf[-1] = 1``): ``x = edges[c] + (u - cdf[c]) / (cdf[c+1] - cdf[c])
    (edges[c+1] - edges[c])``, i.e. linear interpolation of the inverse CDF,
    found by a merge. Writes the points of all rows one after the other into
    ``x_out`` and ``v_out[k] = y[k] level[c]`` (the thinning level of point k
    in its cell).
    """
    nc = len(cdf) - 1
    o = 0
    p = 0
    for r in range(len(counts)):
        n = counts[r]
        tot = 0.0
        for k in range(n + 1):
            tot += spacings[o + k]
        run = 0.0
        c = 0
        for k in range(n):
            run += spacings[o + k]
            u = run / tot
            while c < nc - 1 and cdf[c + 1] <= u:
                c += 1
            width = cdf[c + 1] - cdf[c]
            f = (u - cdf[c]) / width if width > 0.0 else 0.0
            f = min(max(f, 0.0), 1.0)
            x_out[p + k] = edges[c] + f * (edges[c + 1] - edges[c])
            v_out[p + k] = y[p + k] * level[c]
        o += n + 1
        p += n


@njit(inline="always", error_model="numpy")
def _cheb(beta, r, x):  # pragma: no cover - compiled
    """``sum_m beta[r, m] T_m(x)`` (recurrence, in the order of the terms)."""
    P1 = beta.shape[1]
    b = beta[r, 0]
    if P1 > 1:
        b += beta[r, 1] * x
    t2 = 1.0
    t1 = x
    for m in range(2, P1):
        t = 2.0 * x * t1 - t2
        b += beta[r, m] * t
        t2 = t1
        t1 = t
    return b


@njit(inline="always", error_model="numpy")
def _cheb3(x, c0, c1, c2, c3):  # pragma: no cover - compiled
    """``_cheb`` of a cubic with its coefficients in registers (the same operations in the same order)."""
    b = c0 + c1 * x
    t2 = 2.0 * x * x - 1.0
    b += c2 * t2
    b += c3 * (2.0 * x * t2 - x)
    return b


@njit(cache=True, error_model="numpy")
def thin_rows(sb, xb, vb, nb, ss, xs, ts, ns, src, mu, beta, s_out, xp_out, n_out):  # pragma: no cover - compiled
    """Toy data sets as thinnings of the envelope layers of toy rows ``src``.

    ``sb, xb, vb`` (T, nb_max): signal density, scaled mass and thinning level
    of the background-layer points of each toy (``nb`` of them); ``ss, xs, ts``
    the same for the signal layer (``ts`` its arrival times in signal events).
    Output row ``r`` takes toy ``src[r]`` with the model ``mu[r] s(x) +
    sum_m beta[r, m] T_m(x')``: background points with ``vb < b(x')`` first
    (in their order), then signal points with ``ts < mu[r]``. Padding slots
    repeat the first event (zeros for an empty toy). ``s_out`` needs at least
    ``nb + ns`` slots per row (every point is written, the next one
    overwrites it unless it was kept: no branches).
    """
    R = len(src)
    width = s_out.shape[1]
    cubic = beta.shape[1] == 4
    for r in range(R):
        t = src[r]
        n = 0
        so = s_out[r]
        xo = xp_out[r]
        if cubic:
            c0, c1, c2, c3 = beta[r, 0], beta[r, 1], beta[r, 2], beta[r, 3]
            for k in range(nb[t]):
                x = xb[t, k]
                so[n] = sb[t, k]
                xo[n] = x
                n += 1 if vb[t, k] < _cheb3(x, c0, c1, c2, c3) else 0
        else:
            for k in range(nb[t]):
                x = xb[t, k]
                so[n] = sb[t, k]
                xo[n] = x
                n += 1 if vb[t, k] < _cheb(beta, r, x) else 0
        m = mu[r]
        for k in range(ns[t]):
            so[n] = ss[t, k]
            xo[n] = xs[t, k]
            n += 1 if ts[t, k] < m else 0
        n_out[r] = n
        f_s = so[0] if n > 0 else 0.0
        f_x = xo[0] if n > 0 else 0.0
        for k in range(n, width):
            so[k] = f_s
            xo[k] = f_x


@njit(inline="always", error_model="numpy")
def _pos(lam):  # pragma: no cover - compiled
    """A density for the product (1 where not positive) and whether it is not positive (1.0)."""
    return (lam if lam > 0.0 else 1.0), (0.0 if lam > 0.0 else 1.0)


@njit(cache=True, error_model="numpy")
def log_ratio_rows(rows, s, xp, n, mu_a, beta_a, mu_b, beta_b, out):  # pragma: no cover - compiled
    """``out[r] = sum_i log(lambda_a / lambda_b)`` over the events of row ``rows[r]`` of ``s``, ``xp``, ``n``.

    ``lambda = mu s + max(sum_m beta_m T_m(x'), 0)`` for both models (the
    generators' densities; ``mu_a[r]``, ``beta_a[r]``, ...). ``-inf`` where
    ``lambda_a`` vanishes at an event, else ``+inf`` where ``lambda_b`` does.
    Lanes: event ``i`` of a block of 64 goes to lane ``i mod 8``, where the
    densities of both models are multiplied; after each block a lane's ratio
    of the two products multiplies its running ratio, renormalised with
    ``math.frexp`` every 8 blocks; one logarithm per lane at the end.
    """
    ratio = np.empty(8)
    ex = np.empty(8)
    pa = np.empty(8)
    pb = np.empty(8)
    cubic = beta_a.shape[1] == 4
    for r in range(len(rows)):
        i = rows[r]
        sr = s[i]
        xr = xp[i]
        nr = n[i]
        ma = mu_a[r]
        mb = mu_b[r]
        a0, a1, a2, a3 = (beta_a[r, 0], beta_a[r, 1], beta_a[r, 2], beta_a[r, 3]) if cubic else (0.0, 0.0, 0.0, 0.0)
        b0, b1, b2, b3 = (beta_b[r, 0], beta_b[r, 1], beta_b[r, 2], beta_b[r, 3]) if cubic else (0.0, 0.0, 0.0, 0.0)
        for e in range(8):
            ratio[e] = 1.0
            ex[e] = 0.0
        bad_a = 0.0
        bad_b = 0.0
        for q0 in range(0, nr, 64):
            m = min(64, nr - q0)
            for e in range(8):
                pa[e] = 1.0
                pb[e] = 1.0
            for k in range(m):
                e = k & 7
                sv = sr[q0 + k]
                x = xr[q0 + k]
                if cubic:
                    la, fa = _pos(ma * sv + max(_cheb3(x, a0, a1, a2, a3), 0.0))
                    lb, fb = _pos(mb * sv + max(_cheb3(x, b0, b1, b2, b3), 0.0))
                else:
                    la, fa = _pos(ma * sv + max(_cheb(beta_a, r, x), 0.0))
                    lb, fb = _pos(mb * sv + max(_cheb(beta_b, r, x), 0.0))
                pa[e] *= la
                pb[e] *= lb
                bad_a += fa
                bad_b += fb
            for e in range(8):
                ratio[e] *= pa[e] / pb[e]
            if (q0 & 511) == 448:
                for e in range(8):
                    mm, q = math.frexp(ratio[e])
                    ratio[e] = mm
                    ex[e] += q
        if bad_a > 0.0:
            out[r] = -np.inf
        elif bad_b > 0.0:
            out[r] = np.inf
        else:
            tot = 0.0
            for e in range(8):
                tot += math.log(ratio[e]) + ex[e] * _LN2
            out[r] = tot

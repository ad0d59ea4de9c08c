"""Closed-form linear algebra of the numpy engine, on arrays of events.

The numpy engine (``engine_numpy``) works on component arrays: a photon
quantity is an array of shape (3, m) (photon, event), an event quantity one
of shape (m,), and a symmetric 4x4 matrix is ten such arrays. The 3x3 and
4x4 algebra of the fit (Jacobian, ``G = D V0``, ``S = D V0 D^T``, a 4x4
Cholesky factorisation and triangular solves) is written out in closed form
on them rather than calling ``np.linalg`` on stacks of tiny matrices: numpy's
batched solvers pay a large per-matrix overhead for 4x4 systems, and the fit
must run at ~10^6 events/s. After the first linearisation, sin/cos of the
updated angles come from the angle-addition theorem with a short Taylor
series of the (small) step (``trig_update``).

The compiled engine (``_engine_numba``) has its own scalar version of the
same expressions, evaluated in the same order; the two engines are kept
independent so that they check each other.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from .options import POLY_MAX

__all__ = ["chol4", "fwd4", "bwd4", "trig_update", "psum", "linearise", "apply_d", "apply_gt", "vb_mul"]


def chol4(S: list[NDArray]) -> tuple[list[NDArray], NDArray]:
    """Cholesky factor of symmetric 4x4 matrices given as 10 component arrays.

    ``S`` = [S00, S01, S02, S03, S11, S12, S13, S22, S23, S33]. Returns the
    lower factor as [L00, L10, L20, L30, L11, L21, L31, L22, L32, L33] with
    the diagonal stored as its inverse, and a boolean mask of positive
    definite matrices (non-positive pivots are replaced by 1 so the arrays
    stay finite).
    """
    S00, S01, S02, S03, S11, S12, S13, S22, S23, S33 = S
    ok = S00 > 0
    d0 = np.where(ok, S00, 1.0)
    i0 = 1.0 / np.sqrt(d0)
    L10 = S01 * i0
    L20 = S02 * i0
    L30 = S03 * i0
    d1 = S11 - L10 * L10
    ok &= d1 > 0
    i1 = 1.0 / np.sqrt(np.where(d1 > 0, d1, 1.0))
    L21 = (S12 - L20 * L10) * i1
    L31 = (S13 - L30 * L10) * i1
    d2 = S22 - L20 * L20 - L21 * L21
    ok &= d2 > 0
    i2 = 1.0 / np.sqrt(np.where(d2 > 0, d2, 1.0))
    L32 = (S23 - L30 * L20 - L31 * L21) * i2
    d3 = S33 - L30 * L30 - L31 * L31 - L32 * L32
    ok &= d3 > 0
    i3 = 1.0 / np.sqrt(np.where(d3 > 0, d3, 1.0))
    return [i0, L10, L20, L30, i1, L21, L31, i2, L32, i3], ok


def fwd4(L: list[NDArray], b0: NDArray, b1: NDArray, b2: NDArray, b3: NDArray) -> tuple[NDArray, NDArray, NDArray, NDArray]:
    """Solve ``L y = b`` (forward substitution); broadcasts b over leading axes."""
    i0, L10, L20, L30, i1, L21, L31, i2, L32, i3 = L
    y0 = b0 * i0
    y1 = (b1 - L10 * y0) * i1
    y2 = (b2 - L20 * y0 - L21 * y1) * i2
    y3 = (b3 - L30 * y0 - L31 * y1 - L32 * y2) * i3
    return y0, y1, y2, y3


def bwd4(L: list[NDArray], y0: NDArray, y1: NDArray, y2: NDArray, y3: NDArray) -> tuple[NDArray, NDArray, NDArray, NDArray]:
    """Solve ``L^T x = y`` (back substitution)."""
    i0, L10, L20, L30, i1, L21, L31, i2, L32, i3 = L
    x3 = y3 * i3
    x2 = (y2 - L32 * x3) * i2
    x1 = (y1 - L21 * x2 - L31 * x3) * i1
    x0 = (y0 - L10 * x1 - L20 * x2 - L30 * x3) * i0
    return x0, x1, x2, x3


def trig_update(old: NDArray, new: NDArray, s: NDArray, c: NDArray) -> tuple[NDArray, NDArray]:
    """sin and cos of ``new`` from those of ``old`` by the angle-addition theorem.

    The sine and cosine of the small step ``d = new - old`` come from their
    Taylor series (exact to double precision for |d| < 0.02 rad), which is
    several times cheaper than ``np.sin``/``np.cos``; larger steps are
    evaluated directly.
    """
    d = new - old
    d2 = d * d
    # sin d = d (1 - d2/6 (1 - d2/20)),  cos d = 1 - d2/2 (1 - d2/12 (1 - d2/30)):
    # truncation errors d^7/5040 and d^8/40320, below 1e-16 for |d| < POLY_MAX
    t = d2 * (1.0 / 20.0)
    np.subtract(1.0, t, out=t)
    t *= d2
    t *= 1.0 / 6.0
    np.subtract(1.0, t, out=t)
    sd = t
    sd *= d
    u = d2 * (1.0 / 30.0)
    np.subtract(1.0, u, out=u)
    u *= d2
    u *= 1.0 / 12.0
    np.subtract(1.0, u, out=u)
    u *= d2
    u *= 0.5
    cd = np.subtract(1.0, u, out=u)
    s_new = s * cd
    s_new += c * sd
    c_new = c * cd
    c_new -= s * sd
    big = np.abs(d) > POLY_MAX
    if big.any():
        s_new[big] = np.sin(new[big])
        c_new[big] = np.cos(new[big])
    return s_new, c_new


def psum(x: NDArray) -> NDArray:
    """Sum over the photon axis of a (3, m) array (faster than ``x.sum(0)`` for views)."""
    out = x[0] + x[1]
    out += x[2]
    return out


_SIDX = ((0, 0), (0, 1), (0, 2), (0, 3), (1, 1), (1, 2), (1, 3), (2, 2), (2, 3), (3, 3))


def linearise(E: NDArray, st: NDArray, ct: NDArray, sp: NDArray, cp: NDArray, V: tuple[NDArray, ...],
              diag: bool, P0: NDArray, Vb: NDArray | None) -> tuple:
    """Constraints, Jacobian, ``G = D V0`` and the Cholesky factor of ``S`` at a point.

    Photon arrays have shape (3, m) (photon, event); event arrays (m,).
    ``V`` are the six covariance elements (EE, Et, Ep, tt, tp, pp) of every
    photon; ``diag`` says that the off-diagonal ones are all zero (fewer
    products). ``Vb`` (4, 4), when given, is added to ``S`` (soft beam constraint).
    Jacobian rows are (x, y, z, e), columns (E, theta, phi):
    ``D = [[st cp, pz cp, -py], [st sp, pz sp, px], [ct, -E st, 0], [1, 0, 0]]``.
    Returns ``(H, D, G, L, ok)`` with ``H`` the raw balance ``sum p - P0``.
    """
    VEE, VEt, VEp, Vtt, Vtp, Vpp = V
    DxE = st * cp
    DyE = st * sp
    px = E * DxE
    py = E * DyE
    pz = E * ct
    Dxt = pz * cp
    Dyt = pz * sp
    Dzt = E * st
    np.negative(Dzt, out=Dzt)
    Dxp = -py
    Dyp = px
    H = (psum(px) - P0[0], psum(py) - P0[1], psum(pz) - P0[2], psum(E) - P0[3])
    if diag:
        GxE = DxE * VEE
        Gxt = Dxt * Vtt
        Gxp = Dxp * Vpp
        GyE = DyE * VEE
        Gyt = Dyt * Vtt
        Gyp = Dyp * Vpp
        GzE = ct * VEE
        Gzt = Dzt * Vtt
        Gzp = None
    else:
        GxE = DxE * VEE + Dxt * VEt + Dxp * VEp
        Gxt = DxE * VEt + Dxt * Vtt + Dxp * Vtp
        Gxp = DxE * VEp + Dxt * Vtp + Dxp * Vpp
        GyE = DyE * VEE + Dyt * VEt + Dyp * VEp
        Gyt = DyE * VEt + Dyt * Vtt + Dyp * Vtp
        Gyp = DyE * VEp + Dyt * Vtp + Dyp * Vpp
        GzE = ct * VEE + Dzt * VEt
        Gzt = ct * VEt + Dzt * Vtt
        Gzp = ct * VEp + Dzt * Vtp
    Sxx = GxE * DxE
    Sxx += Gxt * Dxt
    Sxx += Gxp * Dxp
    Sxy = GxE * DyE
    Sxy += Gxt * Dyt
    Sxy += Gxp * Dyp
    Sxz = GxE * ct
    Sxz += Gxt * Dzt
    Syy = GyE * DyE
    Syy += Gyt * Dyt
    Syy += Gyp * Dyp
    Syz = GyE * ct
    Syz += Gyt * Dzt
    Szz = GzE * ct
    Szz += Gzt * Dzt
    S = [psum(Sxx), psum(Sxy), psum(Sxz), psum(GxE), psum(Syy), psum(Syz), psum(GyE),
         psum(Szz), psum(GzE), psum(VEE)]
    if Vb is not None:
        S = [s + Vb[a, b] for s, (a, b) in zip(S, _SIDX)]
    L, ok = chol4(S)
    D = (DxE, DyE, ct, Dxt, Dyt, Dzt, Dxp, Dyp)
    G = ((GxE, Gxt, Gxp), (GyE, Gyt, Gyp), (GzE, Gzt, Gzp), (VEE, None, None) if diag else (VEE, VEt, VEp))
    return H, D, G, L, ok


def apply_d(D: tuple, dE: NDArray, dt: NDArray, dp: NDArray) -> tuple[NDArray, ...]:
    """``D @ delta`` summed over photons, delta given per photon (3, m)."""
    DxE, DyE, DzE, Dxt, Dyt, Dzt, Dxp, Dyp = D
    rx = DxE * dE
    rx += Dxt * dt
    rx += Dxp * dp
    ry = DyE * dE
    ry += Dyt * dt
    ry += Dyp * dp
    rz = DzE * dE
    rz += Dzt * dt
    return psum(rx), psum(ry), psum(rz), psum(dE)


def apply_gt(G: tuple, lam: tuple[NDArray, ...]) -> list[NDArray]:
    """``(D V0)^T @ lambda`` per photon: the shift of (E, theta, phi), each (3, m)."""
    l0, l1, l2, l3 = lam
    out = []
    for b in range(3):
        x = G[0][b] * l0
        x += G[1][b] * l1
        if G[2][b] is not None:
            x += G[2][b] * l2
        if G[3][b] is not None:
            x += G[3][b] * l3
        out.append(x)
    return out


def vb_mul(Vb: NDArray, lam: tuple[NDArray, ...]) -> list[NDArray]:
    """``Vb @ lambda`` (four event arrays): the shift of the beam four-momentum (GeV)."""
    return [Vb[k, 0] * lam[0] + Vb[k, 1] * lam[1] + Vb[k, 2] * lam[2] + Vb[k, 3] * lam[3] for k in range(4)]

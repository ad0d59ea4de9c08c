"""4C kinematic fit of three photons to the beam four-momentum.

Model
-----
Each event has nine measured parameters ``alpha0 = (E_i, theta_i, phi_i)``,
i = 0, 1, 2 (GeV, rad, rad), with a block-diagonal covariance ``V0`` (one 3x3
block per photon, correlations inside a block allowed). The photons are
massless, so photon i has the four-momentum
``p_i = E_i (sin theta_i cos phi_i, sin theta_i sin phi_i, cos theta_i, 1)``.
The four constraints are ``H(alpha) = sum_i p_i(alpha) - P = 0`` with ``P`` the
lab four-momentum of the beams (``Beam.p4``). The fit minimises

    chi2(alpha) = (alpha - alpha0)^T V0^-1 (alpha - alpha0)

subject to ``H(alpha) = 0`` (four constraints, ndf = 4).

Iterated linearisation (Lagrange multipliers)
---------------------------------------------
Around the current point ``alpha_A`` the constraints are replaced by their
tangent, ``H(alpha) ~ H_A + D (alpha - alpha_A)`` with ``D = dH/dalpha`` (4x9).
Minimising chi2 + 2 lambda^T (H_A + D (alpha - alpha_A)) gives, with the
residual of the linearised constraint evaluated at the measurement,
``r = D (alpha0 - alpha_A) + H_A`` and ``S = D V0 D^T`` (4x4):

    lambda = S^-1 r,        alpha = alpha0 - V0 D^T lambda,
    chi2   = lambda^T S lambda = lambda . r.

The last identity is exact for the new point (not an approximation), so the
chi2 of every iterate comes for free. Near the solution the covariance of the
fitted parameters is

    V = V0 - V0 D^T S^-1 D V0,

and the pull of parameter j is ``(alpha0_j - alpha_j) / sqrt(V0_jj - V_jj)``,
whose denominator ``(V0 D^T S^-1 D V0)_jj`` is computed directly (from the
Cholesky factor of S, so it never suffers from cancellation).

Optional beam-energy spread (soft beam constraint)
--------------------------------------------------
With ``beam_cov`` the beam four-momentum is a measured quantity, ``P = P0 + dP``
with covariance ``Vb`` (4x4, may be singular). The constraints stay linear in
``P``, so ``S`` becomes ``D V0 D^T + Vb``, the fitted beam shift is
``dP = Vb lambda`` and chi2 gains ``lambda^T Vb lambda`` (the chi2 of the beam
energies). The number of degrees of freedom stays 4.
``beam_cov="spread"`` builds ``Vb`` from ``Beam.e_spread_her/ler``: each beam
energy fluctuates independently and moves its four-vector along itself.

Convergence and step control
----------------------------
Let ``h = H^T S^-1 H`` be the constraint violation in chi2 units. A new
iterate is accepted when it is physical (E > 0, 0 < theta < pi) and
``h`` decreased or is below ``tol_chi2``; otherwise the step from the
previous point is halved (up to ``max_halvings`` times). An event has
converged at linearisation point ``alpha_A`` when both

* ``|chi2_new - chi2_prev| < tol_chi2`` (the chi2 of the linearised solution
  changed by less than the tolerance between successive iterations), and
* ``max_k |H_k(alpha_A)| < tol_constraint`` (GeV; every component of the
  four-momentum balance is satisfied at the linearisation point).

The returned point is the solution of that last linearisation, whose own
constraint residual is of second order in the (already tolerated) one. Events
that have converged leave the working set, so only active events iterate.

Implementation note: the 3x3 and 4x4 algebra (Jacobian, ``D V0 D^T``, a 4x4
Cholesky factorisation and triangular solves) is written out in closed form on
component arrays of shape (3, m) / (m,) rather than calling ``np.linalg`` on
stacks of tiny matrices: numpy's batched solvers pay a large per-matrix
overhead for 4x4 systems, and this fit must run at ~10^6 events/s.
Events are processed in cache-sized chunks.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .errors import InputError
from .kinematics import Beam

logger = logging.getLogger(__name__)

__all__ = [
    "KinFitResult",
    "fit",
    "fit_reference",
    "apply_to_events",
    "beam_covariance",
    "STATUS_REASONS",
]

#: Status code -> reason string. 0 means converged.
STATUS_REASONS: tuple[str, ...] = (
    "",
    "non-finite input (E, theta, phi or covariance)",
    "non-positive photon energy",
    "theta outside (0, pi)",
    "photon covariance not symmetric positive definite",
    "constraint covariance D V D^T not positive definite",
    "no convergence within max_iter iterations",
    "non-finite values during the iteration",
)
OK, BAD_FINITE, BAD_ENERGY, BAD_THETA, BAD_COV, BAD_S, MAX_ITER, BAD_ITER = range(8)

_CHUNK = 8192


@dataclass
class KinFitResult:
    """Result of the 4C kinematic fit, one row per event.

    Attributes
    ----------
    E, theta, phi : ndarray, shape (n, 3)
        Fitted photon energies (GeV) and angles (rad, phi in (-pi, pi]).
        Events that did not converge carry their measured values.
    cov : ndarray, shape (n, 3, 3, 3)
        Covariance of the fitted (E, theta, phi) of each photon; measured
        covariance for events that did not converge.
    chi2 : ndarray, shape (n,)
        chi2 at the fitted point (+inf for events that did not converge).
    ndf : int
        Number of degrees of freedom (4).
    pvalue : ndarray, shape (n,)
        chi2 probability for 4 degrees of freedom (0 when not converged).
    converged : ndarray of bool, shape (n,)
    n_iter : ndarray of int, shape (n,)
        Number of linearisations used.
    pulls : ndarray, shape (n, 3, 3)
        ``(measured - fitted) / sqrt(V_meas - V_fit)`` for each photon and
        parameter (E, theta, phi); NaN for events that did not converge.
    status : ndarray of int8, shape (n,)
        0 when converged, else an index into ``STATUS_REASONS``.
    cov_full : ndarray, shape (n, 9, 9), optional
        Full covariance of the nine fitted parameters (order photon-major:
        E0, theta0, phi0, E1, ...), when requested with ``full_cov=True``.
    beam_p4 : ndarray, shape (n, 4), optional
        Fitted beam four-momentum (GeV) when the beam was a soft constraint.
    """

    E: NDArray[np.float64]
    theta: NDArray[np.float64]
    phi: NDArray[np.float64]
    cov: NDArray[np.float64]
    chi2: NDArray[np.float64]
    pvalue: NDArray[np.float64]
    converged: NDArray[np.bool_]
    n_iter: NDArray[np.int16]
    pulls: NDArray[np.float64]
    status: NDArray[np.int8]
    ndf: int = 4
    cov_full: NDArray[np.float64] | None = None
    beam_p4: NDArray[np.float64] | None = None
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def reason(self) -> NDArray[np.str_]:
        """Reason per event ("" when converged), from ``status``."""
        return np.asarray(STATUS_REASONS)[self.status]

    @property
    def n_events(self) -> int:
        return int(self.chi2.shape[0])

    def summary(self) -> dict[str, Any]:
        """Counts of converged events and of each failure reason."""
        codes, counts = np.unique(self.status, return_counts=True)
        return {
            "n_events": self.n_events,
            "n_converged": int(self.converged.sum()),
            "failures": {STATUS_REASONS[c]: int(k) for c, k in zip(codes, counts) if c != OK},
            "mean_n_iter": float(self.n_iter.mean()) if self.n_events else 0.0,
        }


def beam_covariance(beam: Beam) -> NDArray[np.float64]:
    """Covariance (4x4, GeV^2) of the lab beam four-momentum from the energy spreads.

    Each beam's energy fluctuates independently with relative width
    ``e_spread_her`` / ``e_spread_ler``; a massless beam particle's
    four-vector scales with its energy, so ``Vb = sum_b sigma_b^2 u_b u_b^T``
    with ``u_b = p4_b / E_b``. The matrix has rank 2.
    """
    out = np.zeros((4, 4))
    for p4, e, spread in ((beam.p4_her, beam.e_her, beam.e_spread_her), (beam.p4_ler, beam.e_ler, beam.e_spread_ler)):
        u = p4 / e
        out += (spread * e) ** 2 * np.outer(u, u)
    return out


def _pvalue4(chi2: NDArray) -> NDArray:
    """Upper-tail chi2 probability for 4 degrees of freedom (closed form)."""
    h = 0.5 * chi2
    return np.exp(-h) * (1.0 + h)


# ----------------------------------------------------------------------------
# closed-form 4x4 algebra on component arrays
# ----------------------------------------------------------------------------


def _chol4(S: list[NDArray]) -> tuple[list[NDArray], NDArray]:
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


def _fwd4(L: list[NDArray], b0: NDArray, b1: NDArray, b2: NDArray, b3: NDArray) -> tuple[NDArray, NDArray, NDArray, NDArray]:
    """Solve ``L y = b`` (forward substitution); broadcasts b over leading axes."""
    i0, L10, L20, L30, i1, L21, L31, i2, L32, i3 = L
    y0 = b0 * i0
    y1 = (b1 - L10 * y0) * i1
    y2 = (b2 - L20 * y0 - L21 * y1) * i2
    y3 = (b3 - L30 * y0 - L31 * y1 - L32 * y2) * i3
    return y0, y1, y2, y3


def _bwd4(L: list[NDArray], y0: NDArray, y1: NDArray, y2: NDArray, y3: NDArray) -> tuple[NDArray, NDArray, NDArray, NDArray]:
    """Solve ``L^T x = y`` (back substitution)."""
    i0, L10, L20, L30, i1, L21, L31, i2, L32, i3 = L
    x3 = y3 * i3
    x2 = (y2 - L32 * x3) * i2
    x1 = (y1 - L21 * x2 - L31 * x3) * i1
    x0 = (y0 - L10 * x1 - L20 * x2 - L30 * x3) * i0
    return x0, x1, x2, x3


# ----------------------------------------------------------------------------
# the iteration on one chunk (component-first arrays)
# ----------------------------------------------------------------------------


class _Lin:
    """Linearisation of the constraints at a point, for m events.

    Photon arrays have shape (3, m) (photon, event); event arrays (m,).
    Jacobian rows are (x, y, z, e), columns (E, theta, phi).
    """

    __slots__ = ("DxE", "DyE", "DzE", "Dxt", "Dyt", "Dzt", "Dxp", "Dyp", "G", "H", "L", "ok")

    def __init__(self, E: NDArray, th: NDArray, ph: NDArray, V: tuple[NDArray, ...], P0: NDArray, Vb: NDArray | None, lamb: tuple | None) -> None:
        VEE, VEt, VEp, Vtt, Vtp, Vpp = V
        st = np.sin(th)
        ct = np.cos(th)
        sp = np.sin(ph)
        cp = np.cos(ph)
        DxE = st * cp
        DyE = st * sp
        DzE = ct
        px = E * DxE
        py = E * DyE
        pz = E * ct
        Dxt = pz * cp
        Dyt = pz * sp
        Dzt = -E * st
        Dxp = -py
        Dyp = px
        # H = sum p - P0 (- Vb lambda_beam)
        H = [px.sum(0) - P0[0], py.sum(0) - P0[1], pz.sum(0) - P0[2], E.sum(0) - P0[3]]
        if Vb is not None and lamb is not None:
            for k in range(4):
                H[k] = H[k] - (Vb[k, 0] * lamb[0] + Vb[k, 1] * lamb[1] + Vb[k, 2] * lamb[2] + Vb[k, 3] * lamb[3])
        # G = D V0 (per photon, 4 x 3): G[k][b]
        GxE = DxE * VEE + Dxt * VEt + Dxp * VEp
        Gxt = DxE * VEt + Dxt * Vtt + Dxp * Vtp
        Gxp = DxE * VEp + Dxt * Vtp + Dxp * Vpp
        GyE = DyE * VEE + Dyt * VEt + Dyp * VEp
        Gyt = DyE * VEt + Dyt * Vtt + Dyp * Vtp
        Gyp = DyE * VEp + Dyt * Vtp + Dyp * Vpp
        GzE = DzE * VEE + Dzt * VEt
        Gzt = DzE * VEt + Dzt * Vtt
        Gzp = DzE * VEp + Dzt * Vtp
        G = ((GxE, Gxt, Gxp), (GyE, Gyt, Gyp), (GzE, Gzt, Gzp), (VEE, VEt, VEp))
        # S = D V0 D^T summed over photons (+ Vb)
        Sxx = (GxE * DxE + Gxt * Dxt + Gxp * Dxp).sum(0)
        Sxy = (GxE * DyE + Gxt * Dyt + Gxp * Dyp).sum(0)
        Sxz = (GxE * DzE + Gxt * Dzt).sum(0)
        Sxe = GxE.sum(0)
        Syy = (GyE * DyE + Gyt * Dyt + Gyp * Dyp).sum(0)
        Syz = (GyE * DzE + Gyt * Dzt).sum(0)
        Sye = GyE.sum(0)
        Szz = (GzE * DzE + Gzt * Dzt).sum(0)
        Sze = GzE.sum(0)
        See = VEE.sum(0)
        S = [Sxx, Sxy, Sxz, Sxe, Syy, Syz, Sye, Szz, Sze, See]
        if Vb is not None:
            idx = ((0, 0), (0, 1), (0, 2), (0, 3), (1, 1), (1, 2), (1, 3), (2, 2), (2, 3), (3, 3))
            S = [s + Vb[a, b] for s, (a, b) in zip(S, idx)]
        self.L, self.ok = _chol4(S)
        self.DxE, self.DyE, self.DzE = DxE, DyE, DzE
        self.Dxt, self.Dyt, self.Dzt = Dxt, Dyt, Dzt
        self.Dxp, self.Dyp = Dxp, Dyp
        self.G = G
        self.H = H

    def solve(self, b: tuple[NDArray, ...]) -> tuple[NDArray, ...]:
        return _bwd4(self.L, *_fwd4(self.L, *b))

    def apply_D(self, dE: NDArray, dt: NDArray, dp: NDArray) -> tuple[NDArray, NDArray, NDArray, NDArray]:
        """``D @ delta`` summed over photons, delta given per photon (3, m)."""
        rx = (self.DxE * dE + self.Dxt * dt + self.Dxp * dp).sum(0)
        ry = (self.DyE * dE + self.Dyt * dt + self.Dyp * dp).sum(0)
        rz = (self.DzE * dE + self.Dzt * dt).sum(0)
        re = dE.sum(0)
        return rx, ry, rz, re

    def apply_GT(self, lam: tuple[NDArray, ...]) -> tuple[NDArray, NDArray, NDArray]:
        """``(D V0)^T @ lambda`` per photon: the shift of (E, theta, phi)."""
        G = self.G
        l0, l1, l2, l3 = lam
        out = []
        for b in range(3):
            out.append(G[0][b] * l0 + G[1][b] * l1 + G[2][b] * l2 + G[3][b] * l3)
        return out[0], out[1], out[2]


def _take(x: Any, sel: NDArray) -> Any:
    if x is None:
        return None
    if isinstance(x, tuple):
        return tuple(_take(v, sel) for v in x)
    return x[..., sel]


def _fit_chunk(
    E0: NDArray,
    th0: NDArray,
    ph0: NDArray,
    V: tuple[NDArray, ...],
    P0: NDArray,
    Vb: NDArray | None,
    *,
    max_iter: int,
    max_halvings: int,
    tol_chi2: float,
    tol_constraint: float,
    full_cov: bool,
) -> dict[str, NDArray]:
    """Fit m valid events given component-first arrays (3, m); returns outputs."""
    m = E0.shape[1]
    out_E = E0.copy()
    out_t = th0.copy()
    out_p = ph0.copy()
    out_V = [v.copy() for v in V]  # VEE, VEt, VEp, Vtt, Vtp, Vpp (3, m)
    out_pull = np.full((3, 3, m), np.nan)  # (param, photon, event)
    out_chi2 = np.full(m, np.inf)
    out_niter = np.zeros(m, dtype=np.int16)
    out_status = np.full(m, MAX_ITER, dtype=np.int8)
    out_full = np.zeros((3, 3, 3, 3, m)) if full_cov else None  # (photon i, param a, photon j, param b)
    out_beam = np.zeros((4, m)) if Vb is not None else None

    idx = np.arange(m)
    # current point and line-search state
    E, th, ph = E0.copy(), th0.copy(), ph0.copy()
    a0 = (E0, th0, ph0)
    lamb = tuple(np.zeros(m) for _ in range(4)) if Vb is not None else None
    prev = None  # (E, th, ph, lamb) of the last accepted point
    step_to = None  # (E, th, ph, lamb) full step target from prev
    tstep = np.ones(m)
    h_prev = np.full(m, np.inf)
    chi2_prev = np.full(m, np.inf)
    n_halv = np.zeros(m, dtype=np.int16)
    niter = np.zeros(m, dtype=np.int16)
    first = True

    for _ in range(max_iter * (max_halvings + 1)):
        if idx.size == 0:
            break
        lin = _Lin(E, th, ph, V, P0, Vb, lamb)
        niter += 1
        H = lin.H
        bad = ~lin.ok
        xH = lin.solve(H)
        h = H[0] * xH[0] + H[1] * xH[1] + H[2] * xH[2] + H[3] * xH[3]
        # step control: reject the point if the constraint violation grew
        reject = (h > h_prev) & (h > tol_chi2) & (n_halv < max_halvings) & ~bad
        if not first and reject.any():
            r_sel = np.nonzero(reject)[0]
            tstep[r_sel] *= 0.5
            n_halv[r_sel] += 1
            t = tstep[r_sel]
            cur = (E, th, ph) + ((lamb,) if lamb is not None else ())
            for k, arr in enumerate(cur[:3]):
                p_ = prev[k][..., r_sel]
                arr[..., r_sel] = p_ + t * (step_to[k][..., r_sel] - p_)
            if lamb is not None:
                for c in range(4):
                    p_ = prev[3][c][r_sel]
                    lamb[c][r_sel] = p_ + t * (step_to[3][c][r_sel] - p_)
        accept = ~reject if not first else np.ones(idx.size, dtype=bool)
        accept &= ~bad
        # linearised solution from the accepted points
        dE = E0 - E
        dt = th0 - th
        dp = ph0 - ph
        DdE = lin.apply_D(dE, dt, dp)
        if Vb is not None:
            Hraw = [H[k] + (Vb[k, 0] * lamb[0] + Vb[k, 1] * lamb[1] + Vb[k, 2] * lamb[2] + Vb[k, 3] * lamb[3]) for k in range(4)]
        else:
            Hraw = H
        r = tuple(DdE[k] + Hraw[k] for k in range(4))
        lam = lin.solve(r)
        chi2_new = r[0] * lam[0] + r[1] * lam[1] + r[2] * lam[2] + r[3] * lam[3]
        sE, st_, sp_ = lin.apply_GT(lam)
        nE = E0 - sE
        nt = th0 - st_
        nph = ph0 - sp_
        hmax = np.maximum(np.maximum(np.abs(H[0]), np.abs(H[1])), np.maximum(np.abs(H[2]), np.abs(H[3])))
        finite = np.isfinite(chi2_new) & np.isfinite(hmax)
        conv = accept & finite & (np.abs(chi2_new - chi2_prev) < tol_chi2) & (hmax < tol_constraint)
        failed = bad | (accept & ~finite)
        exhausted = niter >= max_iter
        done = conv | failed | (exhausted & ~conv)

        if conv.any():
            c = np.nonzero(conv)[0]
            g = idx[c]
            out_E[:, g] = nE[:, c]
            out_t[:, g] = nt[:, c]
            out_p[:, g] = nph[:, c]
            out_chi2[g] = chi2_new[c]
            out_status[g] = OK
            # K = L^-1 G for the converged events: (4 rows) x (3 params), each (3, m_c)
            Lc = [x[c] for x in lin.L]
            Gc = [[lin.G[k][b][:, c] for b in range(3)] for k in range(4)]
            K = [_fwd4(Lc, Gc[0][b], Gc[1][b], Gc[2][b], Gc[3][b]) for b in range(3)]  # K[b][k]
            pairs = ((0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2))
            for q, (a, b) in enumerate(pairs):
                red = K[a][0] * K[b][0] + K[a][1] * K[b][1] + K[a][2] * K[b][2] + K[a][3] * K[b][3]
                out_V[q][:, g] = V[q][:, c] - red
                if a == b:
                    den = np.sqrt(np.maximum(red, 1e-300))
                    meas = a0[a][:, c]
                    fitted = (nE, nt, nph)[a][:, c]
                    out_pull[a][:, g] = (meas - fitted) / den
            if full_cov:
                blk = out_full[:, :, :, :, g]
                for i in range(3):
                    for j in range(3):
                        for a in range(3):
                            for b in range(3):
                                red = (K[a][0][i] * K[b][0][j] + K[a][1][i] * K[b][1][j]
                                       + K[a][2][i] * K[b][2][j] + K[a][3][i] * K[b][3][j])
                                blk[i, a, j, b] = -red
                for i in range(3):
                    for q, (a, b) in enumerate(pairs):
                        blk[i, a, i, b] = out_V[q][i, g]
                        blk[i, b, i, a] = out_V[q][i, g]
                out_full[:, :, :, :, g] = blk
            if Vb is not None:
                lc = [x[c] for x in lam]
                for k in range(4):
                    out_beam[k, g] = P0[k] + Vb[k, 0] * lc[0] + Vb[k, 1] * lc[1] + Vb[k, 2] * lc[2] + Vb[k, 3] * lc[3]
        if failed.any():
            f = np.nonzero(failed)[0]
            out_status[idx[f]] = np.where(bad[f], BAD_S, BAD_ITER)
        out_niter[idx[done]] = niter[done]

        # advance the events that continue
        keep = ~done
        go = keep & accept
        if go.any():
            # new full step from the accepted points
            gsel = np.nonzero(go)[0]
            cur_prev = (E[:, gsel].copy(), th[:, gsel].copy(), ph[:, gsel].copy(),
                        tuple(x[gsel].copy() for x in lamb) if lamb is not None else None)
            tgt = (nE[:, gsel], nt[:, gsel], nph[:, gsel], tuple(x[gsel] for x in lam) if lamb is not None else None)
            if prev is None:
                prev = (E.copy(), th.copy(), ph.copy(), tuple(x.copy() for x in lamb) if lamb is not None else None)
                step_to = (nE.copy(), nt.copy(), nph.copy(), tuple(x.copy() for x in lam) if lamb is not None else None)
            for k in range(3):
                prev[k][:, gsel] = cur_prev[k]
                step_to[k][:, gsel] = tgt[k]
            if lamb is not None:
                for cc in range(4):
                    prev[3][cc][gsel] = cur_prev[3][cc]
                    step_to[3][cc][gsel] = tgt[3][cc]
            tstep[gsel] = 1.0
            n_halv[gsel] = 0
            h_prev[gsel] = h[gsel]
            chi2_prev[gsel] = chi2_new[gsel]
            E[:, gsel] = tgt[0]
            th[:, gsel] = tgt[1]
            ph[:, gsel] = tgt[2]
            if lamb is not None:
                for cc in range(4):
                    lamb[cc][gsel] = tgt[3][cc]
            # keep iterates physical: halve towards the previous point
            for _h in range(60):
                unphys = ((E[:, gsel] <= 0) | (th[:, gsel] <= 0) | (th[:, gsel] >= np.pi)).any(0)
                if not unphys.any():
                    break
                u = gsel[unphys]
                tstep[u] *= 0.5
                t = tstep[u]
                for k, arr in enumerate((E, th, ph)):
                    p_ = prev[k][:, u]
                    arr[:, u] = p_ + t * (step_to[k][:, u] - p_)
                if lamb is not None:
                    for cc in range(4):
                        p_ = prev[3][cc][u]
                        lamb[cc][u] = p_ + t * (step_to[3][cc][u] - p_)
        first = False
        if not keep.all():
            s = np.nonzero(keep)[0]
            idx = idx[s]
            E, th, ph = E[:, s], th[:, s], ph[:, s]
            E0, th0, ph0 = E0[:, s], th0[:, s], ph0[:, s]
            a0 = (E0, th0, ph0)
            V = tuple(v[:, s] for v in V)
            lamb = tuple(x[s] for x in lamb) if lamb is not None else None
            if prev is not None:
                prev = (prev[0][:, s], prev[1][:, s], prev[2][:, s], tuple(x[s] for x in prev[3]) if prev[3] is not None else None)
                step_to = (step_to[0][:, s], step_to[1][:, s], step_to[2][:, s], tuple(x[s] for x in step_to[3]) if step_to[3] is not None else None)
            tstep, h_prev, chi2_prev, n_halv, niter = tstep[s], h_prev[s], chi2_prev[s], n_halv[s], niter[s]

    out = {
        "E": out_E, "theta": out_t, "phi": out_p, "V": out_V, "pulls": out_pull,
        "chi2": out_chi2, "n_iter": out_niter, "status": out_status,
    }
    if full_cov:
        out["cov_full"] = out_full
    if Vb is not None:
        out["beam"] = out_beam
    return out


# ----------------------------------------------------------------------------
# public entry point
# ----------------------------------------------------------------------------


def _check_inputs(E: ArrayLike, theta: ArrayLike, phi: ArrayLike, cov: ArrayLike) -> tuple[NDArray, NDArray, NDArray, NDArray]:
    arrs = []
    for name, x in (("E", E), ("theta", theta), ("phi", phi)):
        try:
            a = np.asarray(x, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise InputError(f"kinfit: {name} must be a numeric array of shape (n, 3), got {type(x).__name__}") from exc
        if a.ndim != 2 or a.shape[1] != 3:
            raise InputError(f"kinfit: {name} must have shape (n, 3) (three photons per event), got {a.shape}")
        arrs.append(a)
    n = arrs[0].shape[0]
    for name, a in zip(("theta", "phi"), arrs[1:]):
        if a.shape[0] != n:
            raise InputError(f"kinfit: {name} has {a.shape[0]} events but E has {n}")
    try:
        c = np.asarray(cov, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputError("kinfit: cov must be a numeric array of shape (n, 3, 3, 3)") from exc
    if c.shape != (n, 3, 3, 3):
        raise InputError(f"kinfit: cov must have shape (n, 3, 3, 3) = ({n}, 3, 3, 3) (per photon 3x3 in E, theta, phi), got {c.shape}")
    return arrs[0], arrs[1], arrs[2], c


def _resolve_beam_cov(beam: Beam, beam_cov: Any) -> NDArray | None:
    if beam_cov is None or beam_cov is False:
        return None
    if beam_cov is True or (isinstance(beam_cov, str) and beam_cov == "spread"):
        return beam_covariance(beam)
    if isinstance(beam_cov, str):
        raise InputError(f"kinfit: beam_cov must be None, 'spread' or a 4x4 covariance in GeV^2, got {beam_cov!r}")
    Vb = np.asarray(beam_cov, dtype=np.float64)
    if Vb.shape != (4, 4) or not np.all(np.isfinite(Vb)):
        raise InputError(f"kinfit: beam_cov must be a finite (4, 4) covariance of (px, py, pz, E) in GeV^2, got shape {Vb.shape}")
    if not np.allclose(Vb, Vb.T, rtol=1e-10, atol=1e-15) or np.linalg.eigvalsh(Vb).min() < -1e-12 * max(np.abs(Vb).max(), 1e-300):
        raise InputError("kinfit: beam_cov must be symmetric positive semi-definite")
    return 0.5 * (Vb + Vb.T)


def fit(
    E: ArrayLike,
    theta: ArrayLike,
    phi: ArrayLike,
    cov: ArrayLike,
    beam: Beam | None = None,
    *,
    max_iter: int = 20,
    max_halvings: int = 10,
    tol_chi2: float = 1e-3,
    tol_constraint: float = 1e-5,
    beam_cov: Any = None,
    full_cov: bool = False,
    chunk_size: int = _CHUNK,
) -> KinFitResult:
    """4C kinematic fit of three photons per event to the beam four-momentum.

    Parameters
    ----------
    E, theta, phi : array_like, shape (n, 3)
        Measured photon energies (GeV), polar angles and azimuths (rad).
    cov : array_like, shape (n, 3, 3, 3)
        Each photon's 3x3 covariance of (E, theta, phi) in GeV^2, GeV rad,
        rad^2; correlations allowed.
    beam : Beam, optional
        Beams; ``Beam.belle2()`` by default. The constraint is
        ``sum_i p_i = beam.p4`` in the lab.
    max_iter : int
        Maximum number of linearisations per event.
    max_halvings : int
        Maximum number of step halvings per iteration.
    tol_chi2 : float
        Convergence tolerance on the change of chi2 between iterations.
    tol_constraint : float
        Convergence tolerance (GeV) on every component of the
        four-momentum balance at the last linearisation point.
    beam_cov : None, "spread" or array (4, 4)
        None (default): the beam four-momentum is exact (hard constraint).
        "spread": soft beam constraint from ``beam.e_spread_her/ler``
        (see ``beam_covariance``); an array: that covariance of the beam
        four-momentum (GeV^2). ndf stays 4; chi2 includes the beam term.
    full_cov : bool
        Also return the full (n, 9, 9) covariance of the fitted parameters.
    chunk_size : int
        Events processed together (cache-sized blocks).

    Returns
    -------
    KinFitResult

    Raises
    ------
    InputError
        Wrong shapes or non-numeric input. Invalid values in single events
        (NaN/inf, E <= 0, theta outside (0, pi), covariance not positive
        definite) do not raise: those events are returned with
        ``converged=False`` and a ``reason``.
    """
    beam = Beam.belle2() if beam is None else beam
    if not isinstance(beam, Beam):
        raise InputError(f"kinfit: beam must be a bumphunt.kinematics.Beam, got {type(beam).__name__}")
    if max_iter < 1 or max_halvings < 0 or not (tol_chi2 > 0) or not (tol_constraint > 0):
        raise InputError("kinfit: max_iter >= 1, max_halvings >= 0 and positive tolerances are required")
    E, theta, phi, cov = _check_inputs(E, theta, phi, cov)
    Vb = _resolve_beam_cov(beam, beam_cov)
    P0 = np.asarray(beam.p4, dtype=np.float64)
    n = E.shape[0]

    # --- per-event validity -------------------------------------------------
    status = np.zeros(n, dtype=np.int8)
    finite = np.isfinite(E).all(1) & np.isfinite(theta).all(1) & np.isfinite(phi).all(1) & np.isfinite(cov).all((1, 2, 3))
    status[~finite] = BAD_FINITE
    with np.errstate(invalid="ignore"):
        status[(status == OK) & ~(E > 0).all(1)] = BAD_ENERGY
        status[(status == OK) & ~((theta > 0) & (theta < np.pi)).all(1)] = BAD_THETA
        c00 = cov[..., 0, 0]
        c11 = cov[..., 1, 1]
        c22 = cov[..., 2, 2]
        c01, c10 = cov[..., 0, 1], cov[..., 1, 0]
        c02, c20 = cov[..., 0, 2], cov[..., 2, 0]
        c12, c21 = cov[..., 1, 2], cov[..., 2, 1]
        scale = np.sqrt(np.abs(c00 * c11)) + np.sqrt(np.abs(c00 * c22)) + np.sqrt(np.abs(c11 * c22))
        asym = (np.abs(c01 - c10) + np.abs(c02 - c20) + np.abs(c12 - c21)) > 1e-9 * scale
        m2 = c00 * c11 - c01 * c01
        det = c00 * (c11 * c22 - c12 * c12) - c01 * (c01 * c22 - c12 * c02) + c02 * (c01 * c12 - c11 * c02)
        notpd = ~((c00 > 0) & (m2 > 0) & (det > 0)) | asym
    status[(status == OK) & notpd.any(1)] = BAD_COV

    # --- outputs (measured values for events not fitted) ---------------------
    res_E = E.copy()
    res_t = theta.copy()
    res_p = phi.copy()
    res_cov = cov.copy()
    chi2 = np.full(n, np.inf)
    pulls = np.full((n, 3, 3), np.nan)
    n_iter = np.zeros(n, dtype=np.int16)
    cov_full = None
    if full_cov:
        cov_full = np.zeros((n, 9, 9))
        for i in range(3):
            cov_full[:, 3 * i:3 * i + 3, 3 * i:3 * i + 3] = cov[:, i]
    beam_out = np.tile(P0, (n, 1)) if Vb is not None else None

    valid = np.nonzero(status == OK)[0]
    opts = dict(max_iter=int(max_iter), max_halvings=int(max_halvings), tol_chi2=float(tol_chi2),
                tol_constraint=float(tol_constraint), full_cov=bool(full_cov))
    pairs = ((0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2))
    for start in range(0, valid.size, max(int(chunk_size), 1)):
        sel = valid[start:start + chunk_size]
        E0 = np.ascontiguousarray(E[sel].T)
        t0 = np.ascontiguousarray(theta[sel].T)
        p0 = np.ascontiguousarray(phi[sel].T)
        cs = cov[sel]
        V = tuple(np.ascontiguousarray(0.5 * (cs[:, :, a, b] + cs[:, :, b, a]).T) for a, b in pairs)
        o = _fit_chunk(E0, t0, p0, V, P0, Vb, **opts)
        st = o["status"]
        status[sel] = st
        n_iter[sel] = o["n_iter"]
        good = st == OK
        gs = sel[good]
        res_E[gs] = o["E"][:, good].T
        res_t[gs] = o["theta"][:, good].T
        res_p[gs] = o["phi"][:, good].T
        chi2[gs] = o["chi2"][good]
        pulls[gs] = np.transpose(o["pulls"][:, :, good], (2, 1, 0))
        for q, (a, b) in enumerate(pairs):
            blk = o["V"][q][:, good].T
            res_cov[gs, :, a, b] = blk
            res_cov[gs, :, b, a] = blk
        if full_cov:
            cf = o["cov_full"][:, :, :, :, good]  # (i, a, j, b, m)
            cov_full[gs] = np.transpose(cf, (4, 0, 1, 2, 3)).reshape(-1, 9, 9)
        if Vb is not None:
            beam_out[gs] = o["beam"][:, good].T

    converged = status == OK
    res_p[converged] = np.mod(res_p[converged] + np.pi, 2 * np.pi) - np.pi
    pvalue = np.where(converged, _pvalue4(np.where(converged, chi2, 0.0)), 0.0)
    if not converged.all():
        logger.info("kinfit: %d of %d events did not converge", int((~converged).sum()), n)
    return KinFitResult(
        E=res_E, theta=res_t, phi=res_p, cov=res_cov, chi2=chi2, pvalue=pvalue, converged=converged,
        n_iter=n_iter, pulls=pulls, status=status, cov_full=cov_full, beam_p4=beam_out,
        options={**opts, "beam_cov": None if Vb is None else Vb.tolist(), "beam": beam.to_dict()},
    )

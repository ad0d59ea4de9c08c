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
that have converged leave the working set, so only active events iterate
(when only a small fraction finished in a pass they are masked out instead,
which is cheaper than copying all the others). Typical events need three
linearisations.

Implementation note: the 3x3 and 4x4 algebra (Jacobian, ``D V0 D^T``, a 4x4
Cholesky factorisation and triangular solves) is written out in closed form on
component arrays of shape (3, m) / (m,) rather than calling ``np.linalg`` on
stacks of tiny matrices: numpy's batched solvers pay a large per-matrix
overhead for 4x4 systems, and this fit must run at ~10^6 events/s.
Events are processed in cache-sized chunks, and after the first
linearisation sin/cos of the updated angles come from the angle-addition
theorem with a short Taylor series of the (small) step.

Engines
-------
``fit(..., engine="auto")`` runs a compiled per-event kernel
(``bumphunt._kinfit_numba``, numba, threaded over events) when numba can be
imported, else the vectorised numpy implementation above
(``engine="numpy"``). The kernel performs the same operations in the same
order, so both take the same decisions for every event and agree to
rounding (~1e-12). numba is imported on the first call of ``fit``, never by
``import bumphunt``; the kernel is compiled once per installation and then
loaded from numba's on-disk cache (see docs/reference/kinfit.md).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ..errors import InputError
from ..kinematics import Beam

logger = logging.getLogger(__name__)

__all__ = [
    "KinFitResult",
    "fit",
    "fit_reference",
    "apply_to_events",
    "fit_events",
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
#: Finished events are removed from the working set once they are this fraction of it.
_COMPACT_FRACTION = 0.25


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

_POLY_MAX = 0.02  # rad: below this, sin/cos of an angle step use the polynomial update


def _trig_update(old: NDArray, new: NDArray, s: NDArray, c: NDArray) -> tuple[NDArray, NDArray]:
    """sin and cos of ``new`` from those of ``old`` by the angle-addition theorem.

    The sine and cosine of the small step ``d = new - old`` come from their
    Taylor series (exact to double precision for |d| < 0.02 rad), which is
    several times cheaper than ``np.sin``/``np.cos``; larger steps are
    evaluated directly.
    """
    d = new - old
    d2 = d * d
    # sin d = d (1 - d2/6 (1 - d2/20)),  cos d = 1 - d2/2 (1 - d2/12 (1 - d2/30)):
    # truncation errors d^7/5040 and d^8/40320, below 1e-16 for |d| < _POLY_MAX
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
    big = np.abs(d) > _POLY_MAX
    if big.any():
        s_new[big] = np.sin(new[big])
        c_new[big] = np.cos(new[big])
    return s_new, c_new


def _psum(x: NDArray) -> NDArray:
    """Sum over the photon axis of a (3, m) array (faster than ``x.sum(0)`` for views)."""
    out = x[0] + x[1]
    out += x[2]
    return out


_SIDX = ((0, 0), (0, 1), (0, 2), (0, 3), (1, 1), (1, 2), (1, 3), (2, 2), (2, 3), (3, 3))


def _linearise(E: NDArray, st: NDArray, ct: NDArray, sp: NDArray, cp: NDArray, V: tuple[NDArray, ...],
               diag: bool, P0: NDArray, Vb: NDArray | None, lamb: tuple | None) -> tuple:
    """Constraints, Jacobian, ``G = D V0`` and the Cholesky factor of ``S`` at a point.

    Photon arrays have shape (3, m) (photon, event); event arrays (m,).
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
    H = (_psum(px) - P0[0], _psum(py) - P0[1], _psum(pz) - P0[2], _psum(E) - P0[3])
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
    S = [_psum(Sxx), _psum(Sxy), _psum(Sxz), _psum(GxE), _psum(Syy), _psum(Syz), _psum(GyE),
         _psum(Szz), _psum(GzE), _psum(VEE)]
    if Vb is not None:
        S = [s + Vb[a, b] for s, (a, b) in zip(S, _SIDX)]
    L, ok = _chol4(S)
    D = (DxE, DyE, ct, Dxt, Dyt, Dzt, Dxp, Dyp)
    G = ((GxE, Gxt, Gxp), (GyE, Gyt, Gyp), (GzE, Gzt, Gzp), (VEE, None, None) if diag else (VEE, VEt, VEp))
    return H, D, G, L, ok


def _apply_D(D: tuple, dE: NDArray, dt: NDArray, dp: NDArray) -> tuple[NDArray, ...]:
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
    return _psum(rx), _psum(ry), _psum(rz), _psum(dE)


def _apply_GT(G: tuple, lam: tuple[NDArray, ...]) -> list[NDArray]:
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


def _vb_mul(Vb: NDArray, lam: tuple[NDArray, ...]) -> list[NDArray]:
    return [Vb[k, 0] * lam[0] + Vb[k, 1] * lam[1] + Vb[k, 2] * lam[2] + Vb[k, 3] * lam[3] for k in range(4)]


def _sub(x: Any, s: Any) -> Any:
    """Select events ``s`` (last axis) in arrays or nested tuples/lists of arrays."""
    if x is None:
        return None
    if isinstance(x, (tuple, list)):
        return type(x)(_sub(v, s) for v in x)
    return x[..., s]


_PAIRS = ((0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2))


def _fit_chunk(
    E0: NDArray,
    th0: NDArray,
    ph0: NDArray,
    V: tuple[NDArray, ...],
    P0: NDArray,
    Vb: NDArray | None,
    out: dict[str, Any],
    oidx: NDArray | slice,
    *,
    max_iter: int,
    max_halvings: int,
    tol_chi2: float,
    tol_constraint: float,
    full_cov: bool,
) -> None:
    """Fit m valid events given component-first arrays (3, m); write into ``out`` at ``oidx``.

    ``out`` holds component-first output arrays (last axis = event) that are
    already filled with the measured values; only converged events are
    overwritten. ``status`` and ``n_iter`` are set for all m events.
    """
    m = E0.shape[1]
    diag = not (np.any(V[1]) or np.any(V[2]) or np.any(V[4]))
    gidx = np.arange(m) if isinstance(oidx, slice) else np.asarray(oidx)
    if isinstance(oidx, slice):
        gidx = gidx + oidx.start
    idx = gidx
    E, th, ph = E0, th0, ph0
    ct = np.cos(th)
    if th.size and th.min() > 0.05 and th.max() < np.pi - 0.05:
        # sin(theta) >= 0 on (0, pi); away from the poles sqrt(1 - cos^2) is exact to ~1e-15
        st = ct * ct
        np.subtract(1.0, st, out=st)
        np.sqrt(st, out=st)
    else:
        st = np.sin(th)
    sp, cp = np.sin(ph), np.cos(ph)
    lamb = tuple(np.zeros(m) for _ in range(4)) if Vb is not None else None
    prev = None  # (E, th, ph, lamb) of the last accepted point
    step_to = None  # full step target from prev
    tstep = np.ones(m)
    n_halv = np.zeros(m, dtype=np.int16)
    h_prev = np.full(m, np.inf)
    chi2_prev = np.full(m, np.inf)
    status_out, niter_out = out["status"], out["n_iter"]
    niter = 0
    alive: NDArray | None = None  # None: every event in the working set is still iterating
    total_passes = max_iter * (max_halvings + 1)

    for it in range(total_passes):
        if idx.size == 0:
            break
        niter += 1
        H, D, G, L, ok = _linearise(E, st, ct, sp, cp, V, diag, P0, Vb, lamb)
        if Vb is not None:
            vbl = _vb_mul(Vb, lamb)
            Hc = tuple(H[k] - vbl[k] for k in range(4))  # constraint residual incl. the beam shift
        else:
            Hc = H
        yH = _fwd4(L, *Hc)  # h = H^T S^-1 H = |L^-1 H|^2
        h = yH[0] * yH[0] + yH[1] * yH[1] + yH[2] * yH[2] + yH[3] * yH[3]
        bad = ~ok
        any_bad = bool(bad.any())
        # --- step control: reject points whose constraint violation grew --------
        reject = None
        if it > 0:
            rej = (h > h_prev) & (h > tol_chi2) & (n_halv < max_halvings)
            if any_bad:
                rej &= ok
            if rej.any():
                reject = rej
        # --- linearised solution -------------------------------------------------
        if it == 0:  # linearised at the measurement: r = H
            r = H
        else:
            r = _apply_D(D, E0 - E, th0 - th, ph0 - ph)
            r = tuple(r[k] + H[k] for k in range(4))
        yr = _fwd4(L, *r)
        lam = _bwd4(L, *yr)
        chi2_new = yr[0] * yr[0] + yr[1] * yr[1] + yr[2] * yr[2] + yr[3] * yr[3]  # = r^T S^-1 r
        sE, sT, sP = _apply_GT(G, lam)
        nE = E0 - sE
        nT = th0 - sT
        nP = ph0 - sP
        hmax = np.maximum(np.maximum(np.abs(Hc[0]), np.abs(Hc[1])), np.maximum(np.abs(Hc[2]), np.abs(Hc[3])))
        conv = (np.abs(chi2_new - chi2_prev) < tol_chi2) & (hmax < tol_constraint)
        finite = np.isfinite(chi2_new)
        conv &= finite
        accept = ok if reject is None else (ok & ~reject)
        if any_bad or reject is not None:
            conv &= accept
        failed = bad | (accept & ~finite)
        if alive is not None:  # frozen events (finished earlier) are ignored
            conv &= alive
            failed &= alive
        any_failed = bool(failed.any())
        last = niter >= max_iter
        done = conv | failed if not last else (np.ones(idx.size, dtype=bool) if alive is None else alive.copy())

        if conv.any():
            c = np.nonzero(conv)[0] if not conv.all() else slice(None)
            g = idx[c]
            fitted = (nE[:, c], nT[:, c], nP[:, c])
            out["E"][:, g], out["theta"][:, g], out["phi"][:, g] = fitted
            out["chi2"][g] = chi2_new[c]
            status_out[g] = OK
            Lc = [x[c] for x in L]
            Gc = [[None if G[k][b] is None else G[k][b][:, c] for b in range(3)] for k in range(4)]
            K = []
            for b in range(3):
                cols = [Gc[k][b] if Gc[k][b] is not None else np.zeros_like(fitted[0]) for k in range(4)]
                K.append(_fwd4(Lc, *cols))  # K[b][k], each (3, mc)
            Vc = [v[:, c] for v in V]
            for q, (a, b) in enumerate(_PAIRS):
                red = K[a][0] * K[b][0] + K[a][1] * K[b][1] + K[a][2] * K[b][2] + K[a][3] * K[b][3]
                out["V"][q][:, g] = Vc[q] - red
                if a == b:
                    meas = (E0, th0, ph0)[a][:, c]
                    out["pulls"][a][:, g] = (meas - fitted[a]) / np.sqrt(np.maximum(red, 1e-300))
            if full_cov:
                blk = np.zeros((3, 3, 3, 3, fitted[0].shape[1]))
                for a in range(3):
                    for b in range(3):
                        kk = K[a][0][:, None] * K[b][0][None] + K[a][1][:, None] * K[b][1][None]
                        kk += K[a][2][:, None] * K[b][2][None] + K[a][3][:, None] * K[b][3][None]
                        blk[:, a, :, b] = -kk
                for i in range(3):
                    for q, (a, b) in enumerate(_PAIRS):
                        blk[i, a, i, b] = out["V"][q][i, g]
                        blk[i, b, i, a] = out["V"][q][i, g]
                out["cov_full"][..., g] = blk
            if Vb is not None:
                lc = [x[c] for x in lam]
                for k in range(4):
                    out["beam"][k, g] = P0[k] + Vb[k, 0] * lc[0] + Vb[k, 1] * lc[1] + Vb[k, 2] * lc[2] + Vb[k, 3] * lc[3]
        if any_failed:
            f = np.nonzero(failed)[0]
            status_out[idx[f]] = np.where(bad[f], BAD_S, BAD_ITER)
        if last:
            niter_out[idx[done]] = niter
            break
        if done.any():
            niter_out[idx[done]] = niter
        # finished events leave the working set; when only a few finished, they
        # are frozen instead (copying the many remaining events would cost more
        # than carrying the few finished ones through another pass)
        gone = done if alive is None else (done | ~alive)
        n_gone = int(np.count_nonzero(gone))
        compact = n_gone >= _COMPACT_FRACTION * idx.size
        if not compact and n_gone:
            alive = ~gone

        # --- advance the events that continue ------------------------------------
        # accepted events move to the new linearised solution; rejected ones
        # move half-way back towards their previous point.
        if reject is None and not any_bad:
            new_prev = (E, th, ph, lamb)
            nst, nct = _trig_update(th, nT, st, ct)
            nsp, ncp = _trig_update(ph, nP, sp, cp)
            E, th, ph = nE, nT, nP
            st, ct, sp, cp = nst, nct, nsp, ncp
            lamb = lam if Vb is not None else None
            prev, step_to = new_prev, (E, th, ph, lamb)
            tstep[:] = 1.0
            n_halv[:] = 0
            h_prev = h
            chi2_prev = chi2_new
        else:
            acc = accept
            a_i = np.nonzero(acc)[0]
            if prev is None:
                prev = (E.copy(), th.copy(), ph.copy(), tuple(x.copy() for x in lamb) if lamb is not None else None)
                step_to = (nE.copy(), nT.copy(), nP.copy(), tuple(x.copy() for x in lam) if lam is not None else None)
            else:
                prev = (prev[0].copy(), prev[1].copy(), prev[2].copy(), tuple(x.copy() for x in prev[3]) if prev[3] is not None else None)
                step_to = (step_to[0].copy(), step_to[1].copy(), step_to[2].copy(), tuple(x.copy() for x in step_to[3]) if step_to[3] is not None else None)
            E, th, ph = E.copy(), th.copy(), ph.copy()
            st, ct, sp, cp = st.copy(), ct.copy(), sp.copy(), cp.copy()
            if lamb is not None:
                lamb = tuple(x.copy() for x in lamb)
            # accepted: previous := current, target := new solution
            for k, (cur, new) in enumerate(((E, nE), (th, nT), (ph, nP))):
                prev[k][:, a_i] = cur[:, a_i]
                step_to[k][:, a_i] = new[:, a_i]
                cur[:, a_i] = new[:, a_i]
            if lamb is not None:
                for cc in range(4):
                    prev[3][cc][a_i] = lamb[cc][a_i]
                    step_to[3][cc][a_i] = lam[cc][a_i]
                    lamb[cc][a_i] = lam[cc][a_i]
            tstep[a_i] = 1.0
            n_halv[a_i] = 0
            h_prev = np.where(acc, h, h_prev)
            chi2_prev = np.where(acc, chi2_new, chi2_prev)
            if reject is not None:
                r_i = np.nonzero(reject)[0]
                tstep[r_i] *= 0.5
                n_halv[r_i] += 1
                t = tstep[r_i]
                for k, cur in enumerate((E, th, ph)):
                    p_ = prev[k][:, r_i]
                    cur[:, r_i] = p_ + t * (step_to[k][:, r_i] - p_)
                if lamb is not None:
                    for cc in range(4):
                        p_ = prev[3][cc][r_i]
                        lamb[cc][r_i] = p_ + t * (step_to[3][cc][r_i] - p_)
            st, ct, sp, cp = np.sin(th), np.cos(th), np.sin(ph), np.cos(ph)
        # keep iterates physical (E > 0, 0 < theta < pi): halve towards the previous point
        for _h in range(60):
            unphys = ((E <= 0) | (th <= 0) | (th >= np.pi)).any(0)
            if not unphys.any():
                break
            u = np.nonzero(unphys)[0]
            if _h == 0:
                E, th, ph = E.copy(), th.copy(), ph.copy()
                st, ct, sp, cp = st.copy(), ct.copy(), sp.copy(), cp.copy()
                if lamb is not None:
                    lamb = tuple(x.copy() for x in lamb)
            tstep[u] *= 0.5
            t = tstep[u]
            for k, cur in enumerate((E, th, ph)):
                p_ = prev[k][:, u]
                cur[:, u] = p_ + t * (step_to[k][:, u] - p_)
            if lamb is not None:
                for cc in range(4):
                    p_ = prev[3][cc][u]
                    lamb[cc][u] = p_ + t * (step_to[3][cc][u] - p_)
            st[:, u], ct[:, u] = np.sin(th[:, u]), np.cos(th[:, u])
            sp[:, u], cp[:, u] = np.sin(ph[:, u]), np.cos(ph[:, u])
        # --- drop finished events from the working set ----------------------------
        if compact:
            alive = None
            s = np.nonzero(~gone)[0]
            idx = idx[s]
            E, th, ph, st, ct, sp, cp = (x[:, s] for x in (E, th, ph, st, ct, sp, cp))
            E0, th0, ph0 = E0[:, s], th0[:, s], ph0[:, s]
            V = tuple(v[:, s] for v in V)
            lamb = _sub(lamb, s)
            prev = _sub(prev, s)
            step_to = _sub(step_to, s)
            tstep, n_halv, h_prev, chi2_prev = tstep[s], n_halv[s], h_prev[s], chi2_prev[s]


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
    engine: str = "auto",
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
        Events processed together (cache-sized blocks; numpy engine only).
    engine : {"auto", "numba", "numpy"}
        ``"numba"``: the compiled per-event kernel, threaded over events
        (``bumphunt._kinfit_numba``; the first call in a fresh installation
        compiles it for a few seconds, later processes load it from numba's
        cache). ``"numpy"``: the vectorised numpy implementation. Both give
        the same results to rounding (~1e-12). ``"auto"`` (default): numba
        when it can be imported, else numpy.

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

    opts = dict(max_iter=int(max_iter), max_halvings=int(max_halvings), tol_chi2=float(tol_chi2),
                tol_constraint=float(tol_constraint), full_cov=bool(full_cov))
    kernel = _resolve_engine(engine)
    if kernel is not None:
        return _fit_numba(kernel, E, theta, phi, cov, beam, P0, Vb, **opts)

    # outputs (n-major); events that do not converge keep the measured values
    res_E = E.copy()
    res_t = theta.copy()
    res_p = phi.copy()
    res_cov = cov.copy()
    chi2 = np.full(n, np.inf)
    pulls = np.full((n, 3, 3), np.nan)
    n_iter = np.zeros(n, dtype=np.int16)
    status = np.zeros(n, dtype=np.int8)
    cov_full = None
    if full_cov:
        cov_full = np.zeros((n, 9, 9))
        for i in range(3):
            cov_full[:, 3 * i:3 * i + 3, 3 * i:3 * i + 3] = cov[:, i]
    beam_out = np.tile(P0, (n, 1)) if Vb is not None else None

    # cache-sized chunks: transpose to component-first (3, m) arrays, validate, fit, write back
    chunk = max(int(chunk_size), 1)
    for start in range(0, n, chunk):
        sl = slice(start, min(start + chunk, n))
        Ec = np.ascontiguousarray(E[sl].T)
        tc = np.ascontiguousarray(theta[sl].T)
        pc = np.ascontiguousarray(phi[sl].T)
        cc = np.ascontiguousarray(np.transpose(cov[sl], (2, 3, 1, 0)))  # (a, b, photon, event)
        st_c = _validate(Ec, tc, pc, cc)
        m = st_c.size
        valid = st_c == OK
        st_c[valid] = MAX_ITER
        out: dict[str, Any] = {
            "E": Ec.copy(), "theta": tc.copy(), "phi": pc.copy(),
            "V": [cc[a, b].copy() for a, b in _PAIRS],
            "pulls": np.full((3, 3, m), np.nan), "chi2": np.full(m, np.inf),
            "n_iter": np.zeros(m, dtype=np.int16), "status": st_c,
        }
        if full_cov:
            out["cov_full"] = np.zeros((3, 3, 3, 3, m))
        if Vb is not None:
            out["beam"] = np.repeat(P0[:, None], m, axis=1)
        V = [cc[a, b] if a == b else 0.5 * (cc[a, b] + cc[b, a]) for a, b in _PAIRS]
        if valid.all():
            _fit_chunk(Ec, tc, pc, tuple(V), P0, Vb, out, slice(0, m), **opts)
        elif valid.any():
            vi = np.nonzero(valid)[0]
            _fit_chunk(Ec[:, vi], tc[:, vi], pc[:, vi], tuple(v[:, vi] for v in V), P0, Vb, out, vi, **opts)
        status[sl] = st_c
        n_iter[sl] = out["n_iter"]
        conv = st_c == OK
        if conv.all():
            res_E[sl] = out["E"].T
            res_t[sl] = out["theta"].T
            res_p[sl] = out["phi"].T
            chi2[sl] = out["chi2"]
            pulls[sl] = np.transpose(out["pulls"], (2, 1, 0))
            blk = res_cov[sl]
            for q, (a, b) in enumerate(_PAIRS):
                blk[:, :, a, b] = out["V"][q].T
                if a != b:
                    blk[:, :, b, a] = out["V"][q].T
            if full_cov:
                cov_full[sl] = np.transpose(out["cov_full"], (4, 0, 1, 2, 3)).reshape(m, 9, 9)
            if Vb is not None:
                beam_out[sl] = out["beam"].T
        elif conv.any():
            ci = np.nonzero(conv)[0]
            gi = ci + sl.start
            res_E[gi] = out["E"][:, ci].T
            res_t[gi] = out["theta"][:, ci].T
            res_p[gi] = out["phi"][:, ci].T
            chi2[gi] = out["chi2"][ci]
            pulls[gi] = np.transpose(out["pulls"][:, :, ci], (2, 1, 0))
            for q, (a, b) in enumerate(_PAIRS):
                res_cov[gi, :, a, b] = out["V"][q][:, ci].T
                if a != b:
                    res_cov[gi, :, b, a] = out["V"][q][:, ci].T
            if full_cov:
                cov_full[gi] = np.transpose(out["cov_full"][..., ci], (4, 0, 1, 2, 3)).reshape(-1, 9, 9)
            if Vb is not None:
                beam_out[gi] = out["beam"][:, ci].T

    converged = status == OK
    if converged.all():
        np.subtract(np.mod(res_p + np.pi, 2 * np.pi), np.pi, out=res_p)
    else:
        res_p[converged] = np.mod(res_p[converged] + np.pi, 2 * np.pi) - np.pi
    pvalue = np.where(converged, _pvalue4(np.where(converged, chi2, 0.0)), 0.0)
    n_bad = n - int(np.count_nonzero(converged))
    if n_bad:
        logger.info("kinfit: %d of %d events did not converge", n_bad, n)
    return KinFitResult(
        E=res_E, theta=res_t, phi=res_p, cov=res_cov, chi2=chi2, pvalue=pvalue, converged=converged,
        n_iter=n_iter, pulls=pulls, status=status, cov_full=cov_full, beam_p4=beam_out,
        options={**opts, "beam_cov": None if Vb is None else Vb.tolist(), "beam": beam.to_dict(), "engine": "numpy"},
    )


ENGINES = ("auto", "numba", "numpy")


def _resolve_engine(engine: str) -> Any:
    """The compiled-kernel module for ``engine``, or None for the numpy implementation.

    numba is imported here, not at module level, so that ``import bumphunt``
    and the CLI stay light.
    """
    if engine not in ENGINES:
        raise InputError(f"kinfit: engine must be one of {ENGINES}, got {engine!r}")
    if engine == "numpy":
        return None
    try:
        from . import _engine_numba as _kinfit_numba
    except ImportError as exc:
        if engine == "numba":
            raise InputError(f"kinfit: engine='numba' needs the numba package, which cannot be imported ({exc})") from exc
        logger.info("kinfit: numba not importable (%s); using the numpy engine", exc)
        return None
    return _kinfit_numba


def _fit_numba(kernel: Any, E: NDArray, theta: NDArray, phi: NDArray, cov: NDArray, beam: Beam, P0: NDArray,
               Vb: NDArray | None, *, max_iter: int, max_halvings: int, tol_chi2: float, tol_constraint: float,
               full_cov: bool) -> KinFitResult:
    """``fit`` with the compiled per-event kernel (one threaded call that validates, fits and writes every event)."""
    E, theta, phi, cov = (np.ascontiguousarray(x) for x in (E, theta, phi, cov))
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
    with kernel.KERNEL_LOCK:
        kernel.fit_kernel(E, theta, phi, cov, np.ascontiguousarray(P0), Vb_arr, Vb is not None, max_iter,
                          max_halvings, tol_chi2, tol_constraint, full_cov, res_E, res_t, res_p, res_cov, chi2, pvalue,
                          pulls, status, n_iter, converged, cov_full, beam_out)
    n_bad = n - int(np.count_nonzero(converged))
    if n_bad:
        logger.info("kinfit: %d of %d events did not converge", n_bad, n)
    opts = dict(max_iter=max_iter, max_halvings=max_halvings, tol_chi2=tol_chi2, tol_constraint=tol_constraint,
                full_cov=full_cov)
    return KinFitResult(
        E=res_E, theta=res_t, phi=res_p, cov=res_cov, chi2=chi2, pvalue=pvalue, converged=converged,
        n_iter=n_iter, pulls=pulls, status=status, cov_full=cov_full if full_cov else None,
        beam_p4=beam_out if Vb is not None else None,
        options={**opts, "beam_cov": None if Vb is None else Vb.tolist(), "beam": beam.to_dict(), "engine": "numba"},
    )


def _validate(ET: NDArray, tT: NDArray, pT: NDArray, cT: NDArray) -> NDArray[np.int8]:
    """Status per event (0 valid) from component-first inputs (3, m) and covariances (3, 3, 3, m)."""
    m = ET.shape[1]
    status = np.zeros(m, dtype=np.int8)
    with np.errstate(invalid="ignore", over="ignore"):
        finite = np.isfinite(ET).all(0) & np.isfinite(tT).all(0) & np.isfinite(pT).all(0)
        finite &= np.isfinite(cT.reshape(27, m)).all(0)
        status[~finite] = BAD_FINITE
        status[(status == OK) & ~(ET > 0).all(0)] = BAD_ENERGY
        status[(status == OK) & ~((tT > 0) & (tT < np.pi)).all(0)] = BAD_THETA
        c00, c11, c22 = cT[0, 0], cT[1, 1], cT[2, 2]
        c01, c02, c12 = cT[0, 1], cT[0, 2], cT[1, 2]
        d01, d02, d12 = c01 - cT[1, 0], c02 - cT[2, 0], c12 - cT[2, 1]
        if d01.any() or d02.any() or d12.any():
            scale = np.sqrt(np.abs(c00 * c11)) + np.sqrt(np.abs(c00 * c22)) + np.sqrt(np.abs(c11 * c22))
            asym = (np.abs(d01) + np.abs(d02) + np.abs(d12)) > 1e-9 * scale
        else:
            asym = np.zeros(c00.shape, dtype=bool)
        m2 = c00 * c11 - c01 * c01
        det = c00 * (c11 * c22 - c12 * c12) - c01 * (c01 * c22 - c12 * c02) + c02 * (c01 * c12 - c11 * c02)
        notpd = ~((c00 > 0) & (m2 > 0) & (det > 0)) | asym
    status[(status == OK) & notpd.any(0)] = BAD_COV
    return status


def _fit_one(a0: NDArray, V0: NDArray, P0: NDArray, Vb: NDArray | None, max_iter: int, max_halvings: int,
             tol_chi2: float, tol_constraint: float) -> tuple[NDArray, NDArray, float, int, bool]:
    """The same algorithm for one event with dense 9x9 / 4x9 matrices (reference implementation)."""
    def balance(a: NDArray) -> tuple[NDArray, NDArray]:
        E, th, ph = a[0::3], a[1::3], a[2::3]
        st, ct, sp, cp = np.sin(th), np.cos(th), np.sin(ph), np.cos(ph)
        p = np.stack([E * st * cp, E * st * sp, E * ct, E], axis=0)  # (4, 3)
        D = np.zeros((4, 9))
        D[:, 0::3] = np.stack([st * cp, st * sp, ct, np.ones(3)])
        D[:, 1::3] = np.stack([E * ct * cp, E * ct * sp, -E * st, np.zeros(3)])
        D[:, 2::3] = np.stack([-E * st * sp, E * st * cp, np.zeros(3), np.zeros(3)])
        return p.sum(1) - P0, D

    a = a0.copy()
    lamb = np.zeros(4)
    prev = step = None
    lamb_prev = lamb_step = None
    t = 1.0
    n_halv = 0
    h_prev = np.inf
    chi2_prev = np.inf
    for it in range(1, max_iter * (max_halvings + 1) + 1):
        Hraw, D = balance(a)
        S = D @ V0 @ D.T + (Vb if Vb is not None else 0.0)
        H = Hraw - (Vb @ lamb if Vb is not None else 0.0)
        h = float(H @ np.linalg.solve(S, H))
        if it > 1 and h > h_prev and h > tol_chi2 and n_halv < max_halvings:
            t *= 0.5
            n_halv += 1
            a = prev + t * (step - prev)
            lamb = lamb_prev + t * (lamb_step - lamb_prev)
            if it >= max_iter:
                return a, V0, np.inf, it, False
            continue
        r = D @ (a0 - a) + Hraw
        lam = np.linalg.solve(S, r)
        chi2 = float(r @ lam)
        new = a0 - V0 @ D.T @ lam
        if abs(chi2 - chi2_prev) < tol_chi2 and np.abs(H).max() < tol_constraint:
            Vfit = V0 - V0 @ D.T @ np.linalg.solve(S, D @ V0)
            return new, Vfit, chi2, it, True
        if it >= max_iter:
            return a, V0, np.inf, it, False
        prev, step, lamb_prev, lamb_step = a, new, lamb, lam
        t, n_halv, h_prev, chi2_prev = 1.0, 0, h, chi2
        a, lamb = new, lam
        for _h in range(60):
            if not (np.any(a[0::3] <= 0) or np.any(a[1::3] <= 0) or np.any(a[1::3] >= np.pi)):
                break
            t *= 0.5
            a = prev + t * (step - prev)
            lamb = lamb_prev + t * (lamb_step - lamb_prev)
    return a, V0, np.inf, max_iter, False


def fit_reference(
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
) -> KinFitResult:
    """Per-event reference implementation of ``fit`` (a Python loop with dense matrices).

    Same algorithm, convergence criterion and outputs as ``fit``, written
    event by event with ``np.linalg.solve``; it exists to cross-check the
    vectorised closed-form implementation and to measure its speed-up.
    Invalid events are flagged exactly as in ``fit``.
    """
    beam = Beam.belle2() if beam is None else beam
    E, theta, phi, cov = _check_inputs(E, theta, phi, cov)
    Vb = _resolve_beam_cov(beam, beam_cov)
    P0 = np.asarray(beam.p4, dtype=np.float64)
    n = E.shape[0]
    rE, rt, rp, rcov = E.copy(), theta.copy(), phi.copy(), cov.copy()
    chi2 = np.full(n, np.inf)
    pulls = np.full((n, 3, 3), np.nan)
    n_iter = np.zeros(n, dtype=np.int16)
    status = np.full(n, MAX_ITER, dtype=np.int8)
    valid = _validate(np.ascontiguousarray(E.T), np.ascontiguousarray(theta.T), np.ascontiguousarray(phi.T),
                      np.ascontiguousarray(np.transpose(cov, (2, 3, 1, 0))))
    for i in range(n):  # reference implementation: deliberately one event at a time
        if valid[i] != OK:
            status[i] = valid[i]
            continue
        a0 = np.stack([E[i], theta[i], phi[i]], axis=1).ravel()
        V0 = np.zeros((9, 9))
        for k in range(3):
            V0[3 * k:3 * k + 3, 3 * k:3 * k + 3] = cov[i, k]
        a, Vfit, c2, it, ok = _fit_one(a0, V0, P0, Vb, max_iter, max_halvings, tol_chi2, tol_constraint)
        n_iter[i] = it
        if ok:
            status[i] = OK
            chi2[i] = c2
            rE[i], rt[i], rp[i] = a[0::3], a[1::3], np.mod(a[2::3] + np.pi, 2 * np.pi) - np.pi
            for k in range(3):
                rcov[i, k] = Vfit[3 * k:3 * k + 3, 3 * k:3 * k + 3]
            pulls[i] = ((a0 - a) / np.sqrt(np.diag(V0) - np.diag(Vfit))).reshape(3, 3)
    converged = status == OK
    pvalue = np.where(converged, _pvalue4(np.where(converged, chi2, 0.0)), 0.0)
    return KinFitResult(E=rE, theta=rt, phi=rp, cov=rcov, chi2=chi2, pvalue=pvalue, converged=converged,
                        n_iter=n_iter, pulls=pulls, status=status)


def apply_to_events(
    events: dict[str, NDArray],
    *,
    beam: Beam | None = None,
    covariance_model: Any = None,
    **fit_options: Any,
) -> dict[str, NDArray]:
    """Run the kinematic fit on a three-photon dict and add the fitted photons.

    Parameters
    ----------
    events : dict
        Three-photon events (``E``, ``theta``, ``phi`` (n, 3); ``cov``
        (n, 3, 3, 3) and/or ``region`` (n, 3)), see the data contract.
    beam : Beam, optional
        Default ``Beam.belle2()``.
    covariance_model : PhotonCovarianceModel, optional
        When given, the photon covariances come from this model (e.g. a
        calibration loaded with ``PhotonCovarianceModel.load``); otherwise the
        ``cov`` of the events is used.
    **fit_options
        Passed to ``fit`` (tolerances, ``beam_cov``, ...).

    Returns
    -------
    dict
        A new dict with the input arrays plus ``fit_E``, ``fit_theta``,
        ``fit_phi`` (n, 3; the measured values for events that did not
        converge), ``kinfit_chi2`` (+inf if not converged),
        ``kinfit_pvalue``, ``kinfit_converged``, ``kinfit_status`` (0 when
        converged, see ``STATUS_REASONS``) and ``kinfit_n_iter``.
    """
    return fit_events(events, beam=beam, covariance_model=covariance_model, **fit_options)[0]


def fit_events(
    events: dict[str, NDArray],
    *,
    beam: Beam | None = None,
    covariance_model: Any = None,
    **fit_options: Any,
) -> tuple[dict[str, NDArray], KinFitResult]:
    """As ``apply_to_events``, also returning the full ``KinFitResult`` (pulls, covariances)."""
    for key in ("E", "theta", "phi"):
        if key not in events:
            raise InputError(f"kinfit: three-photon events lack the field {key!r}")
    if covariance_model is not None:
        cov = covariance_model.event_covariance(events)
    elif "cov" in events:
        cov = events["cov"]
    else:
        from .covariance import PhotonCovarianceModel

        cov = PhotonCovarianceModel().event_covariance(events)
    res = fit(events["E"], events["theta"], events["phi"], cov, beam, **fit_options)
    out = dict(events)
    out["fit_E"] = res.E
    out["fit_theta"] = res.theta
    out["fit_phi"] = res.phi
    out["kinfit_chi2"] = res.chi2
    out["kinfit_pvalue"] = res.pvalue
    out["kinfit_converged"] = res.converged
    out["kinfit_status"] = res.status
    out["kinfit_n_iter"] = res.n_iter
    return out, res

"""Design matrices of a batch of hypotheses and the quadrature of their Asimov sets.

The density of hypothesis ``j`` (``fits.densities``) is linear in
``theta = (mu, beta_0, ..., beta_p)``: ``lambda = theta . F`` with the design
rows ``F = (s(x), T_0(x'), ..., T_p(x'))``, and its integral over the window
is ``integ . theta = mu + sum_k beta_k I_k`` with
``I_k = (hi - lo)/2 * int_{-1}^{1} T_k``. A ``Design`` holds these for k
hypotheses at once:

- data (``build_design``): the events of hypothesis ``j`` are the rows of a
  padded array ``(k, n_max)``; padding slots repeat a real event of the same
  window and carry weight 0, so they never change a sum but keep every
  density evaluation finite;
- data with a positivity guard (``build_guarded_design``): a few weighted grid
  points over each window hold the density positive in sparse windows;
- Asimov sets (``build_asimov_design``): composite Gauss-Legendre nodes per
  window (``quadrature_nodes``), weights still to be multiplied by the
  expected density.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from types import ModuleType

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .densities import ShapeArrays, chebyshev_integrals, kernel_shape_parameters, signal_pdf

logger = logging.getLogger(__name__)

__all__ = [
    "Design",
    "moment_layout",
    "moments_at",
    "window_integrals",
    "build_design",
    "build_guarded_design",
    "build_asimov_design",
    "quadrature_nodes",
]

#: break points of the composite Gauss-Legendre rule, in units of sigma around the peak
_BREAKS_SIGMA = np.array([-14.0, -9.0, -6.0, -4.0, -2.5, -1.25, 0.0, 1.25, 2.5, 4.0, 6.0, 9.0, 14.0])

#: break points of the Asimov quadrature around the wrong-pair edge, in edge widths
_BREAKS_EDGE = np.array([-9.0, -6.0, -4.0, -2.5, -1.25, 0.0, 1.25, 2.5, 4.0, 6.0, 9.0])

#: positivity guard of sparse windows: grid points per window and their total weight (events)
GUARD_POINTS = 64
GUARD_PEAK_POINTS = 33
GUARD_WEIGHT = 0.05


def moment_layout(order: int) -> tuple[int, NDArray, NDArray]:
    """Row layout of the moment matrix and the Hessian assembly indices.

    Rows of ``M`` (per event): ``s, T_0..T_p, s T_1..s T_p, T_{p+1}..T_{2p}, s^2``
    (``R = 3p + 3`` rows). The first ``P = p + 2`` rows are the design matrix
    ``F`` (``lambda = theta . F``). Because ``T_j T_k = (T_{j+k} + T_{|j-k|}) / 2``,
    every entry of the Hessian ``sum_i w_i F_i F_i^T / lambda_i^2`` is half
    the sum of two rows of ``M @ (w / lambda^2)``: ``H = (h[A] + h[B]) / 2``.
    """
    p = order
    P = p + 2
    R = 3 * p + 3

    def t_row(m: int) -> int:
        return 1 + m if m <= p else p + 1 + m

    def st_row(kk: int) -> int:
        return 0 if kk == 0 else p + 1 + kk

    A = np.empty((P, P), int)
    B = np.empty((P, P), int)
    A[0, 0] = B[0, 0] = R - 1
    for kk in range(p + 1):
        A[0, 1 + kk] = B[0, 1 + kk] = A[1 + kk, 0] = B[1 + kk, 0] = st_row(kk)
        for j in range(p + 1):
            A[1 + j, 1 + kk] = t_row(j + kk)
            B[1 + j, 1 + kk] = t_row(abs(j - kk))
    return R, A, B


class Design:
    """Design of a batch of hypotheses (one window each).

    Attributes
    ----------
    M : ndarray (k, R, n)
        Per-event moment rows (see ``moment_layout``); ``M[:, :P]`` is the
        design matrix ``F`` with ``F[j, 0] = s(x)`` (signal density, 1/GeV)
        and ``F[j, 1+k] = T_k(x')``. For data designs built from ``s`` and
        ``xp`` it is filled on first access (the compiled Newton path of
        ``fits.newton.minimise`` never needs it).
    w : ndarray (k, n)
        Event weights (1 for data events, 0 for padding; quadrature weight
        times expected density for an Asimov set); built on first access
        for data designs given by ``s`` and ``xp``.
    integ : ndarray (k, P)
        Integrals of the rows of F over the window (``[1, I_0, ..., I_p]``, I_k in GeV).
    lo, hi : ndarray (k,)
        Windows in GeV.
    n_events : ndarray (k,)
        Number of real events.
    unit_weights : bool
        All weights are 0 or 1 (data): the damped Newton step of
        self-concordant functions applies.
    s, xp : ndarray (k, n), optional
        Signal density (1/GeV) and scaled coordinate ``x'`` of every event
        slot; real events come first in each row (``n_events[j]`` of them).
    cheb_sums : ndarray (k, p+1), optional
        ``sum_i T_m(x'_i)`` over the real events (start values).
    """

    def __init__(
        self,
        M: NDArray | None,
        w: NDArray | None,
        integ: NDArray,
        lo: NDArray,
        hi: NDArray,
        n_events: NDArray,
        unit_weights: bool = True,
        *,
        s: NDArray | None = None,
        xp: NDArray | None = None,
        cheb_sums: NDArray | None = None,
    ) -> None:
        if M is None and (s is None or xp is None):
            raise ValueError("Design needs M or both s and xp")
        self._M = M
        self._w = w
        self.integ = integ
        self.lo = lo
        self.hi = hi
        self.n_events = n_events
        self.unit_weights = unit_weights
        self.s = s
        self.xp = xp
        self.cheb_sums = cheb_sums

    @property
    def M(self) -> NDArray:
        if self._M is None:
            self._M = _moments_from(self.s, self.xp, self.order)
        return self._M

    @property
    def w(self) -> NDArray:
        if self._w is None:
            n_max = self.xp.shape[1]
            self._w = (np.arange(n_max)[None, :] < np.asarray(self.n_events)[:, None]).astype(float)
        return self._w

    @property
    def compact(self) -> bool:
        """Data design with per-event ``s`` and ``x'`` (usable by the compiled Newton kernel)."""
        return self.s is not None and self.xp is not None and self.unit_weights

    @property
    def k(self) -> int:
        return len(self.lo)

    @property
    def n_par(self) -> int:
        return self.integ.shape[1]

    @property
    def F(self) -> NDArray:
        return self.M[:, : self.n_par, :]

    @property
    def order(self) -> int:
        return self.n_par - 2

    def _per_event(self, f: Callable[[NDArray], NDArray]) -> dict[str, NDArray | None]:
        return {
            "s": None if self.s is None else f(self.s),
            "xp": None if self.xp is None else f(self.xp),
            "cheb_sums": None if self.cheb_sums is None else f(self.cheb_sums),
        }

    def take(self, idx: ArrayLike) -> Design:
        """The hypotheses at positions (or boolean mask) ``idx``."""
        M = None if self._M is None else self._M[idx]
        w = None if self._w is None else self._w[idx]
        return Design(M, w, self.integ[idx], self.lo[idx], self.hi[idx], self.n_events[idx], self.unit_weights, **self._per_event(lambda a: a[idx]))

    def with_weights(self, w: NDArray) -> Design:
        """The same points with weights ``w`` (not unit weights: an Asimov set)."""
        return Design(self.M, w, self.integ, self.lo, self.hi, self.n_events, False)

    def with_integrals(self, integ: NDArray) -> Design:
        """The same events with other window integrals of the design rows (e.g. a window with a hole)."""
        return Design(self._M, self._w, integ, self.lo, self.hi, self.n_events, self.unit_weights, **self._per_event(lambda a: a))

    def tile(self, m: int) -> Design:
        """``m`` stacked copies of the batch."""
        M = None if self._M is None else np.tile(self._M, (m, 1, 1))
        w = None if self._w is None else np.tile(self._w, (m, 1))
        return Design(M, w, np.tile(self.integ, (m, 1)), np.tile(self.lo, m), np.tile(self.hi, m), np.tile(self.n_events, m), self.unit_weights,
                      **self._per_event(lambda a: np.tile(a, (m, 1))))


def window_integrals(lo: NDArray, hi: NDArray, order: int) -> NDArray:
    """Integrals ``[1, I_0, ..., I_p]`` (k, p+2) of the design rows over the windows ``[lo, hi]`` (GeV)."""
    k = len(lo)
    integ = np.empty((k, order + 2))
    integ[:, 0] = 1.0
    integ[:, 1:] = 0.5 * (hi - lo)[:, None] * chebyshev_integrals(order)[None, :]
    return integ


def moments_at(x: NDArray, sh: ShapeArrays, lo: NDArray, hi: NDArray, order: int) -> NDArray:
    """Moment rows (k, R, n) (see ``moment_layout``) at the points ``x`` (k, n) in GeV."""
    sig = signal_pdf(x, sh, lo, hi)
    xp = (2.0 * x - (lo + hi)[:, None]) / (hi - lo)[:, None]
    return _moments_from(sig, xp, order)


def _moments_from(sig: NDArray, xp: NDArray, order: int) -> NDArray:
    """Moment rows (see ``moment_layout``) from the signal density and ``x'`` of each slot."""
    k, n = xp.shape
    p = order
    R, _, _ = moment_layout(p)
    M = np.empty((k, R, n))
    M[:, 0, :] = sig
    T = M[:, 1 : p + 2, :]
    T[:, 0] = 1.0
    if p >= 1:
        T[:, 1] = xp
    for m in range(2, p + 1):
        np.multiply(2.0 * xp, T[:, m - 1], out=T[:, m])
        T[:, m] -= T[:, m - 2]
    for kk in range(1, p + 1):
        np.multiply(sig, T[:, kk], out=M[:, p + 1 + kk])
    # higher Chebyshev terms T_{p+1}..T_{2p} continue the recursion
    prev2 = M[:, p, :] if p >= 1 else None
    prev1 = M[:, p + 1, :]
    for m in range(p + 1, 2 * p + 1):
        row = M[:, p + 1 + m]
        np.multiply(2.0 * xp, prev1, out=row)
        row -= prev2
        prev2, prev1 = prev1, row
    np.multiply(sig, sig, out=M[:, R - 1])
    return M


def _compiled_kernels() -> ModuleType | None:
    """The compiled kernels (``fits._kernels``), or None when numba is not importable."""
    try:
        from . import _kernels as kern
    except ImportError:  # pragma: no cover - numba is a dependency
        return None
    return kern


def _index_range(sorted_mgg: NDArray, lo: NDArray, hi: NDArray, index_range: tuple[NDArray, NDArray] | None) -> tuple[NDArray, NDArray]:
    if index_range is not None:
        return index_range
    return np.searchsorted(sorted_mgg, lo, side="left"), np.searchsorted(sorted_mgg, hi, side="right")


def build_design(
    sorted_mgg: NDArray,
    sh: ShapeArrays,
    lo: NDArray,
    hi: NDArray,
    order: int,
    *,
    index_range: tuple[NDArray, NDArray] | None = None,
) -> Design:
    """Padded design matrices for k hypotheses from the sorted candidate masses.

    ``sorted_mgg`` must be sorted ascending (GeV). Events in ``[lo, hi]`` (GeV) of
    each window are gathered into rows of a (k, n_max) array; ``index_range``
    ``(start, stop)`` gives their positions in ``sorted_mgg`` when known.
    """
    lo = np.asarray(lo, dtype=float)
    hi = np.asarray(hi, dtype=float)
    start, stop = _index_range(sorted_mgg, lo, hi, index_range)
    counts = stop - start
    n_max = max(int(counts.max(initial=0)), 1)
    kern = _compiled_kernels()
    if kern is not None and len(lo):
        k = len(lo)
        s = np.empty((k, n_max))
        xp = np.empty((k, n_max))
        cheb = np.empty((k, order + 1))
        xs = np.ascontiguousarray(sorted_mgg, dtype=float)
        kern.event_values(xs, np.ascontiguousarray(start, dtype=np.int64), np.ascontiguousarray(counts, dtype=np.int64), kernel_shape_parameters(sh, lo, hi),
                          int(order), s, xp, cheb)
        return Design(None, None, window_integrals(lo, hi, order), lo, hi, counts.astype(int), True, s=s, xp=xp, cheb_sums=cheb)
    j = np.arange(n_max)[None, :]
    valid = j < counts[:, None]
    # padding repeats the first event of the window (or index 0 for empty windows)
    idx = np.where(valid, start[:, None] + j, start[:, None])
    idx = np.clip(idx, 0, max(len(sorted_mgg) - 1, 0))
    if len(sorted_mgg):
        x = sorted_mgg[idx]
    else:
        x = np.zeros(idx.shape)
    # empty windows: put the padding event in the middle of the window
    x = np.where(counts[:, None] > 0, x, 0.5 * (lo + hi)[:, None])
    w = valid.astype(float)
    M = moments_at(x, sh, lo, hi, order)
    return Design(M=M, w=w, integ=window_integrals(lo, hi, order), lo=lo, hi=hi, n_events=counts.astype(int), unit_weights=True)


def build_guarded_design(
    sorted_mgg: NDArray,
    sh: ShapeArrays,
    lo: NDArray,
    hi: NDArray,
    order: int,
    *,
    index_range: tuple[NDArray, NDArray] | None = None,
) -> Design:
    """Data design plus a log barrier that keeps the model density positive across the window.

    The likelihood only requires the density to be positive at the events.
    In a sparse window with no candidates near the peak the signal yield can
    then run away to minus infinity (the density goes negative around the
    peak where nothing pulls it back), so the fit has no minimum. Adding
    ``GUARD_POINTS`` Chebyshev-Lobatto points over the window (edges included) and
    ``GUARD_PEAK_POINTS`` over mu +- 4 sigma, with a total weight of
    ``GUARD_WEIGHT`` events, adds a log barrier ``-w sum_g log f(x_g)``: the
    fit then stops where the density touches zero, i.e. at the most negative
    signal a valid model allows. Where the unguarded fit has a minimum, the
    barrier moves it by a fraction of ``GUARD_WEIGHT`` events.
    """
    start, stop = _index_range(sorted_mgg, lo, hi, index_range)
    counts = (stop - start).astype(int)
    k = len(lo)
    # Chebyshev-Lobatto points (the window edges included, denser towards them, where a polynomial turns fastest)
    u = 0.5 * (1.0 - np.cos(np.linspace(0.0, np.pi, GUARD_POINTS)))
    grid = lo[:, None] + (hi - lo)[:, None] * u[None, :]
    peak = sh.mu[:, None] + sh.sigma[:, None] * np.linspace(-4.0, 4.0, GUARD_PEAK_POINTS)[None, :]
    peak = np.clip(peak, lo[:, None], hi[:, None])
    guard = np.concatenate([grid, peak], axis=1)
    g = guard.shape[1]
    n_max = int(counts.max(initial=0)) + g
    X = np.empty((k, n_max))
    W = np.zeros((k, n_max))
    for j in range(k):  # per hypothesis (not per event): gather the window's events and the guard points
        n = counts[j]
        X[j, :n] = sorted_mgg[start[j]:stop[j]]
        X[j, n:n + g] = guard[j]
        X[j, n + g:] = guard[j, 0]
        W[j, :n] = 1.0
        W[j, n:n + g] = GUARD_WEIGHT / g
    M = moments_at(X, sh, lo, hi, order)
    return Design(M=M, w=W, integ=window_integrals(lo, hi, order), lo=lo, hi=hi, n_events=counts, unit_weights=False)


def quadrature_nodes(sh: ShapeArrays, lo: NDArray, hi: NDArray, *, n_gl: int = 12) -> tuple[NDArray, NDArray]:
    """Composite Gauss-Legendre nodes and weights per window, refined around the peak.

    Panel boundaries are the window edges, the DSCB tail starts
    ``mu - alpha_l sigma`` / ``mu + alpha_r sigma`` and fixed multiples of
    sigma around ``mu``, all clipped into the window (empty panels get zero
    weight). With ``n_gl`` nodes per panel the rule integrates the smooth
    piecewise pieces (Gaussian core, power-law tails, polynomials, and their
    logarithms) to ~1e-10 relative precision. When the wrong-pair edge of a
    shape reaches its window, break points at ``comb_edge + (0, +-1.25, +-2.5,
    +-4, +-6, +-9) comb_edge_width`` resolve the step as well. Returns
    ``(x, wq)`` of shape (k, M): nodes and weights in GeV.
    """
    lo = np.asarray(lo, dtype=float)
    hi = np.asarray(hi, dtype=float)
    mu, sig = sh.mu[:, None], sh.sigma[:, None]
    parts = [
        lo[:, None],
        hi[:, None],
        mu - sh.alpha_l[:, None] * sig,
        mu + sh.alpha_r[:, None] * sig,
        mu + _BREAKS_SIGMA[None, :] * sig,
    ]
    edged = sh.edge_rows(hi)
    if edged.any():
        # panels around the wrong-pair edge (a smooth step a few widths wide); windows of the
        # batch without an edge get empty panels (zero weight) at their upper end, after all
        # their other nodes, so that their sums keep their bits whatever else is in the batch.
        # Batches without any edge keep exactly the nodes above.
        e = np.where(edged, sh.comb_edge, hi)[:, None]
        wd = np.where(edged, sh.comb_edge_width, 0.0)[:, None]
        parts.append(e + _BREAKS_EDGE[None, :] * wd)
    pts = np.concatenate(parts, axis=1)
    pts = np.sort(np.clip(pts, lo[:, None], hi[:, None]), axis=1)
    a, b = pts[:, :-1], pts[:, 1:]
    t, wt = np.polynomial.legendre.leggauss(n_gl)
    half = 0.5 * (b - a)
    mid = 0.5 * (b + a)
    x = (mid[:, :, None] + half[:, :, None] * t[None, None, :]).reshape(len(lo), -1)
    wq = (half[:, :, None] * wt[None, None, :]).reshape(len(lo), -1)
    return x, wq


def build_asimov_design(sh: ShapeArrays, lo: NDArray, hi: NDArray, order: int, *, n_gl: int = 12) -> tuple[Design, NDArray]:
    """Design at the quadrature nodes (weights still to be multiplied by the expected density).

    Returns the design (with ``w`` = quadrature weights, GeV) and the node positions (GeV).
    """
    x, wq = quadrature_nodes(sh, lo, hi, n_gl=n_gl)
    M = moments_at(x, sh, lo, hi, order)
    return Design(M=M, w=wq, integ=window_integrals(lo, hi, order), lo=lo, hi=hi, n_events=np.zeros(len(lo), int), unit_weights=False), x

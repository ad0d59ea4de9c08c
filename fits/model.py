"""Hypothesis model of the vectorised engine: windows, design matrices, quadrature.

The expected density of one hypothesis on its window ``[lo, hi]`` (GeV) is::

    lambda(x) = mu * s(x) + sum_k beta_k T_k(x'),     x' = 2 (x - lo) / (hi - lo) - 1

with ``s`` the signal shape normalised on the window (fixed; exactly
``signal_models.shapes.SignalShape.pdf``, including the kinematic edge of the
wrong-pair component when it reaches the window) and ``T_k`` the
Chebyshev polynomials of the first kind. The density is linear in
``theta = (mu, beta_0, ..., beta_p)``; its integral over the window is
``mu + sum_k beta_k I_k`` with ``I_k = (hi - lo)/2 * int_{-1}^{1} T_k``.

Many hypotheses are handled at once: the events of hypothesis ``j`` are the
rows of a padded array ``(k, n_max)``; padding slots repeat a real event of the
same window and carry weight 0, so they never change a sum but keep every
density evaluation finite.

Written by hand (numpy) because the signal densities must be evaluated for
arrays of hypotheses at once; the zfit reference engine (``fits.zfit_engine``)
builds the same model from zfit PDFs.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from scipy.special import ndtr

from signal_models.shapes import SignalShape, comb_density, comb_integral, dscb_density, dscb_integral

logger = logging.getLogger(__name__)

__all__ = [
    "ShapeArrays",
    "Design",
    "default_window",
    "chebyshev_basis",
    "chebyshev_integrals",
    "signal_pdf",
    "build_design",
    "build_asimov_design",
    "quadrature_nodes",
    "moment_layout",
]


#: beyond this many edge widths below the wrong-pair edge its step is 1 to double
#: precision (as ``SignalShape.edge_matters``)
_EDGE_FLAT_Z = 9.0

#: break points of the Asimov quadrature around the wrong-pair edge, in edge widths
_BREAKS_EDGE = np.array([-9.0, -6.0, -4.0, -2.5, -1.25, 0.0, 1.25, 2.5, 4.0, 6.0, 9.0])


@dataclass(frozen=True)
class ShapeArrays:
    """Parameters of k signal shapes as arrays of shape (k,).

    ``comb_edge`` and ``comb_edge_width`` (GeV; ``inf`` and 0 without an edge)
    stay in GeV: the kinematic edge of the wrong-pair spectrum does not move
    when the resolution is scaled (``scaled_sigma``); they are converted to the
    scaled Chebyshev-domain units where the integrals need them.
    """

    mu: NDArray
    sigma: NDArray
    alpha_l: NDArray
    n_l: NDArray
    alpha_r: NDArray
    n_r: NDArray
    comb_fraction: NDArray
    comb_slope: NDArray
    comb_domain: NDArray
    comb_edge: NDArray | None = None
    comb_edge_width: NDArray | None = None

    def __post_init__(self) -> None:
        if self.comb_edge is None:
            object.__setattr__(self, "comb_edge", np.full(np.shape(self.mu), np.inf))
        if self.comb_edge_width is None:
            object.__setattr__(self, "comb_edge_width", np.zeros(np.shape(self.mu)))

    @classmethod
    def from_shapes(cls, shapes: Sequence[SignalShape]) -> "ShapeArrays":
        defaults = {"comb_edge": np.inf, "comb_edge_width": 0.0}
        names = cls.__dataclass_fields__.keys()
        return cls(**{n: np.array([float(getattr(s, n, defaults.get(n))) for s in shapes], dtype=float) for n in names})

    def edge_rows(self, hi: ArrayLike) -> NDArray:
        """Shapes (bool, (k,)) whose wrong-pair edge changes the density below ``hi`` (GeV).

        As ``SignalShape.edge_matters``, and only for a combinatorial fraction > 0.
        """
        hi = np.asarray(hi, dtype=float)
        with np.errstate(invalid="ignore"):
            return (self.comb_fraction > 0) & np.isfinite(self.comb_edge) & (self.comb_edge - hi < _EDGE_FLAT_Z * self.comb_edge_width)

    def edge_scaled(self, rows: NDArray) -> tuple[NDArray, NDArray]:
        """Edge and width in the Chebyshev-domain units ``u = (x - mu) / (comb_domain sigma)``.

        ``(inf, 1)`` for the shapes not in ``rows`` (no edge: the plain line).
        """
        scale = self.comb_domain * self.sigma
        with np.errstate(divide="ignore", invalid="ignore"):
            e = np.where(rows, (self.comb_edge - self.mu) / scale, np.inf)
            w = np.where(rows, self.comb_edge_width / scale, 1.0)
        return e, w

    def take(self, idx: ArrayLike) -> "ShapeArrays":
        return ShapeArrays(**{n: getattr(self, n)[idx] for n in self.__dataclass_fields__})

    def scaled_sigma(self, factor: float) -> "ShapeArrays":
        """The same shapes with the core width multiplied by ``factor`` (resolution nuisance)."""
        d = {n: getattr(self, n) for n in self.__dataclass_fields__}
        d["sigma"] = d["sigma"] * factor
        return ShapeArrays(**d)

    def __len__(self) -> int:
        return len(self.mu)


def default_window(shape: SignalShape, data_range: tuple[float, float] | None = None, *, n_sigma: float = 20.0) -> tuple[float, float]:
    """Fit window ``mu +- n_sigma * sigma`` (GeV) clipped to ``data_range``."""
    lo, hi = shape.mu - n_sigma * shape.sigma, shape.mu + n_sigma * shape.sigma
    if data_range is not None:
        lo, hi = max(lo, float(data_range[0])), min(hi, float(data_range[1]))
    return float(lo), float(hi)


def chebyshev_basis(xp: NDArray, order: int) -> NDArray:
    """``T_0..T_order`` at ``xp`` (in [-1, 1]); returns shape ``(order+1,) + xp.shape``."""
    out = np.empty((order + 1,) + np.shape(xp), dtype=float)
    out[0] = 1.0
    if order >= 1:
        out[1] = xp
    for k in range(2, order + 1):
        out[k] = 2.0 * xp * out[k - 1] - out[k - 2]
    return out


def chebyshev_integrals(order: int) -> NDArray:
    """``int_{-1}^{1} T_k(x) dx`` for k = 0..order: 2/(1-k^2) for even k, 0 for odd k."""
    k = np.arange(order + 1)
    kf = k.astype(float)
    with np.errstate(divide="ignore"):
        return np.where(k % 2 == 0, 2.0 / (1.0 - kf**2), 0.0)


def _dscb_density_masked(t: NDArray, al: NDArray, nl: NDArray, ar: NDArray, nr: NDArray) -> NDArray:
    """Same values as ``signal_models.shapes.dscb_density`` (same formula), evaluating each
    branch only on the events it applies to (about half the transcendental calls).
    Parameters have shape (k, 1), ``t`` shape (k, n)."""
    out = np.empty_like(t)
    left = t < -al
    right = t > ar
    core = ~(left | right)
    tc = t[core]
    out[core] = np.exp(-0.5 * tc * tc)
    for mask, a, n, sgn in ((left, al, nl, -1.0), (right, ar, nr, 1.0)):
        if mask.any():
            aa = np.broadcast_to(a, t.shape)[mask]
            nn = np.broadcast_to(n, t.shape)[mask]
            tt = sgn * t[mask]  # distance outward from the peak, >= alpha
            out[mask] = np.exp(-0.5 * aa * aa - nn * np.log1p(aa * (tt - aa) / nn))
    return out


def signal_pdf(x: NDArray, sh: ShapeArrays, lo: NDArray, hi: NDArray) -> NDArray:
    """Signal densities (1/GeV) normalised on each window, for a batch of hypotheses.

    ``x`` has shape (k, n); shape parameters and ``lo``/``hi`` shape (k,).
    Matches ``SignalShape.pdf`` inside the window.
    """
    c = lambda a: np.asarray(a, dtype=float)[:, None]  # noqa: E731
    mu, sig = c(sh.mu), c(sh.sigma)
    lo_, hi_ = c(lo), c(hi)
    al, nl, ar, nr = c(sh.alpha_l), c(sh.n_l), c(sh.alpha_r), c(sh.n_r)
    norm = sig * dscb_integral((lo_ - mu) / sig, (hi_ - mu) / sig, al, nl, ar, nr)
    f = c(sh.comb_fraction)
    t = (x - mu) / sig
    dens = _dscb_density_masked(t, al, nl, ar, nr) if t.ndim == 2 else dscb_density(t, al, nl, ar, nr)
    out = (1.0 - f) * dens / norm
    if np.any(sh.comb_fraction > 0):
        scale = c(sh.comb_domain) * sig
        slope = c(sh.comb_slope)
        edged = sh.edge_rows(hi)
        if not edged.any():
            cnorm = scale * comb_integral((lo_ - mu) / scale, (hi_ - mu) / scale, slope)
            out = out + f * comb_density((x - mu) / scale, slope) / cnorm
            return out
        # the line times the edge step Phi((comb_edge - x) / comb_edge_width) (x in GeV, as
        # SignalShape.pdf), normalised with the analytic integral of the edged line; rows
        # without an edge get exactly the plain line (comb_integral adds 0.0 there)
        e_u, w_u = sh.edge_scaled(edged)
        cnorm = scale * comb_integral((lo_ - mu) / scale, (hi_ - mu) / scale, slope, c(e_u), c(w_u))
        _check_comb_norm(cnorm[:, 0], sh, lo, hi)
        comb = comb_density((x - mu) / scale, slope)
        comb = np.array(np.broadcast_to(comb, np.broadcast_shapes(comb.shape, out.shape)))
        xb = np.broadcast_to(x, comb.shape)
        ce, cw = c(sh.comb_edge)[edged], c(sh.comb_edge_width)[edged]
        comb[edged] *= ndtr((ce - xb[edged]) / cw)
        out = out + f * comb / cnorm
    return out


def _check_comb_norm(cnorm: NDArray, sh: ShapeArrays, lo: ArrayLike, hi: ArrayLike) -> None:
    """Raise when an edged combinatorial density vanishes on its window (edge far below it)."""
    bad = (sh.comb_fraction > 0) & ~(cnorm > 0)
    if np.any(bad):
        j = int(np.flatnonzero(bad)[0])
        lo_j, hi_j = np.broadcast_to(np.asarray(lo, dtype=float), bad.shape)[j], np.broadcast_to(np.asarray(hi, dtype=float), bad.shape)[j]
        raise ValueError(
            f"signal shape {j} (mu = {sh.mu[j]:.6g} GeV): the combinatorial density vanishes on the window "
            f"[{lo_j:.6g}, {hi_j:.6g}] GeV (edge at {sh.comb_edge[j]:.6g} GeV) but comb_fraction = {sh.comb_fraction[j]}"
        )


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
        Integrals of the rows of F over the window (``[1, I_0, ..., I_p]``).
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

    def _sub(self, f) -> dict:
        return {
            "s": None if self.s is None else f(self.s),
            "xp": None if self.xp is None else f(self.xp),
            "cheb_sums": None if self.cheb_sums is None else f(self.cheb_sums),
        }

    def take(self, idx: ArrayLike) -> "Design":
        M = None if self._M is None else self._M[idx]
        w = None if self._w is None else self._w[idx]
        return Design(M, w, self.integ[idx], self.lo[idx], self.hi[idx], self.n_events[idx], self.unit_weights, **self._sub(lambda a: a[idx]))

    def with_weights(self, w: NDArray) -> "Design":
        return Design(self.M, w, self.integ, self.lo, self.hi, self.n_events, False)

    def tile(self, m: int) -> "Design":
        M = None if self._M is None else np.tile(self._M, (m, 1, 1))
        t = lambda a: np.tile(a, (m, 1))  # noqa: E731
        w = None if self._w is None else np.tile(self._w, (m, 1))
        return Design(M, w, np.tile(self.integ, (m, 1)), np.tile(self.lo, m), np.tile(self.hi, m), np.tile(self.n_events, m), self.unit_weights, **self._sub(t))


def _integrals(lo: NDArray, hi: NDArray, order: int) -> NDArray:
    k = len(lo)
    integ = np.empty((k, order + 2))
    integ[:, 0] = 1.0
    integ[:, 1:] = 0.5 * (hi - lo)[:, None] * chebyshev_integrals(order)[None, :]
    return integ


def _fill_design(x: NDArray, sh: ShapeArrays, lo: NDArray, hi: NDArray, order: int) -> NDArray:
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


def _kernels():
    """The compiled kernels (``fits._kernels``), or None when numba is not importable."""
    try:
        from . import _kernels as kern
    except ImportError:  # pragma: no cover - numba is a dependency
        return None
    return kern


def _shape_par(sh: ShapeArrays, lo: NDArray, hi: NDArray) -> NDArray:
    """Per-window parameters of ``fits._kernels.event_values`` (normalisations as in ``signal_pdf``)."""
    k = len(lo)
    par = np.zeros((k, 16))
    mu, sig = sh.mu, sh.sigma
    norm = sig * dscb_integral((lo - mu) / sig, (hi - mu) / sig, sh.alpha_l, sh.n_l, sh.alpha_r, sh.n_r)
    par[:, 0], par[:, 1] = mu, sig
    par[:, 2], par[:, 3], par[:, 4], par[:, 5] = sh.alpha_l, sh.n_l, sh.alpha_r, sh.n_r
    par[:, 6] = 1.0 / norm
    f = sh.comb_fraction
    par[:, 7] = f
    scale = sh.comb_domain * sig
    par[:, 8] = np.where(f > 0, scale, 1.0)
    par[:, 9] = sh.comb_slope
    with np.errstate(divide="ignore", invalid="ignore"):
        cnorm = scale * comb_integral((lo - mu) / scale, (hi - mu) / scale, sh.comb_slope)
        par[:, 10] = np.where(f > 0, 1.0 / cnorm, 0.0)
    par[:, 11], par[:, 12] = lo, hi
    edged = sh.edge_rows(hi)
    if edged.any():
        # the edge in GeV (slot 14) and its width (slot 13, > 0 flags an edged window)
        e_u, w_u = sh.edge_scaled(edged)
        with np.errstate(divide="ignore", invalid="ignore"):
            cnorm = scale * comb_integral((lo - mu) / scale, (hi - mu) / scale, sh.comb_slope, e_u, w_u)
        _check_comb_norm(cnorm, sh, lo, hi)
        par[:, 10] = np.where(f > 0, 1.0 / cnorm, 0.0)
        par[:, 13] = np.where(edged, sh.comb_edge_width, 0.0)
        par[:, 14] = np.where(edged, sh.comb_edge, 0.0)
    return par


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

    ``sorted_mgg`` must be sorted ascending (GeV). Events in ``[lo, hi]`` of
    each window are gathered into rows of a (k, n_max) array.
    """
    lo = np.asarray(lo, dtype=float)
    hi = np.asarray(hi, dtype=float)
    if index_range is None:
        start = np.searchsorted(sorted_mgg, lo, side="left")
        stop = np.searchsorted(sorted_mgg, hi, side="right")
    else:
        start, stop = index_range
    counts = stop - start
    n_max = max(int(counts.max(initial=0)), 1)
    kern = _kernels()
    if kern is not None and len(lo):
        k = len(lo)
        s = np.empty((k, n_max))
        xp = np.empty((k, n_max))
        cheb = np.empty((k, order + 1))
        xs = np.ascontiguousarray(sorted_mgg, dtype=float)
        kern.event_values(xs, np.ascontiguousarray(start, dtype=np.int64), np.ascontiguousarray(counts, dtype=np.int64), _shape_par(sh, lo, hi), int(order), s, xp, cheb)
        return Design(None, None, _integrals(lo, hi, order), lo, hi, counts.astype(int), True, s=s, xp=xp, cheb_sums=cheb)
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
    M = _fill_design(x, sh, lo, hi, order)
    return Design(M=M, w=w, integ=_integrals(lo, hi, order), lo=lo, hi=hi, n_events=counts.astype(int), unit_weights=True)


#: break points of the composite Gauss-Legendre rule, in units of sigma around the peak
_BREAKS_SIGMA = np.array([-14.0, -9.0, -6.0, -4.0, -2.5, -1.25, 0.0, 1.25, 2.5, 4.0, 6.0, 9.0, 14.0])


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
    ``(x, wq)`` of shape (k, M).
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

    Returns the design (with ``w`` = quadrature weights) and the node positions.
    """
    x, wq = quadrature_nodes(sh, lo, hi, n_gl=n_gl)
    M = _fill_design(x, sh, lo, hi, order)
    return Design(M=M, w=wq, integ=_integrals(lo, hi, order), lo=lo, hi=hi, n_events=np.zeros(len(lo), int), unit_weights=False), x

"""Signal and background densities of a batch of hypotheses (numpy).

The expected density of one hypothesis on its window ``[lo, hi]`` (GeV) is::

    lambda(x) = mu * s(x) + sum_k beta_k T_k(x'),     x' = 2 (x - lo) / (hi - lo) - 1

with ``s`` the signal shape normalised on the window (fixed; exactly
``signal_models.SignalShape.pdf``, including the kinematic edge of the
wrong-pair component when it reaches the window) and ``T_k`` the Chebyshev
polynomials of the first kind. This module holds the pieces of that formula
for k hypotheses at once: the shape parameters as arrays (``ShapeArrays``),
the signal densities (``signal_pdf``, 1/GeV), the Chebyshev basis and its
integrals, the per-window parameters of the compiled kernels, and the
positivity check of a fitted background. ``fits.design`` builds the design
matrices of the fits from them.

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

from signal_models._common.defaults import DEFAULT_HALF_WIDTH
from signal_models.shapes import SignalShape, comb_density, comb_integral, dscb_density, dscb_integral

logger = logging.getLogger(__name__)

__all__ = [
    "ShapeArrays",
    "default_window",
    "chebyshev_basis",
    "chebyshev_integrals",
    "signal_pdf",
    "kernel_shape_parameters",
    "background_nonnegative",
]


#: beyond this many edge widths below the wrong-pair edge its step is 1 to double
#: precision (as ``SignalShape.edge_matters``)
_EDGE_FLAT_Z = 9.0


@dataclass(frozen=True)
class ShapeArrays:
    """Parameters of k signal shapes as arrays of shape (k,).

    ``mu``, ``sigma`` in GeV, the tail parameters and ``comb_*`` as in
    ``signal_models.SignalShape``. ``comb_edge`` and ``comb_edge_width`` (GeV;
    ``inf`` and 0 without an edge) stay in GeV: the kinematic edge of the
    wrong-pair spectrum does not move when the resolution is scaled
    (``scaled_sigma``); they are converted to the scaled Chebyshev-domain
    units where the integrals need them.
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
    def from_shapes(cls, shapes: Sequence[SignalShape]) -> ShapeArrays:
        """The parameters of ``shapes`` as arrays (shapes without an edge get ``inf`` and 0)."""
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

    def take(self, idx: ArrayLike) -> ShapeArrays:
        """The shapes at positions (or boolean mask) ``idx``."""
        return ShapeArrays(**{n: getattr(self, n)[idx] for n in self.__dataclass_fields__})

    def scaled_sigma(self, factor: float) -> ShapeArrays:
        """The same shapes with the core width multiplied by ``factor`` (resolution nuisance)."""
        d = {n: getattr(self, n) for n in self.__dataclass_fields__}
        d["sigma"] = d["sigma"] * factor
        return ShapeArrays(**d)

    def __len__(self) -> int:
        return len(self.mu)


def default_window(shape: SignalShape, data_range: tuple[float, float] | None = None, *, n_sigma: float = DEFAULT_HALF_WIDTH) -> tuple[float, float]:
    """Fit window ``mu +- n_sigma * sigma`` (GeV) clipped to ``data_range`` (GeV)."""
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


def _column(a: ArrayLike) -> NDArray:
    """A (k,) array as a (k, 1) column."""
    return np.asarray(a, dtype=float)[:, None]


def signal_pdf(x: NDArray, sh: ShapeArrays, lo: NDArray, hi: NDArray) -> NDArray:
    """Signal densities (1/GeV) normalised on each window, for a batch of hypotheses.

    ``x`` (GeV) has shape (k, n); shape parameters and ``lo``/``hi`` (GeV)
    shape (k,). Matches ``SignalShape.pdf`` inside the window.
    """
    c = _column
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


def kernel_shape_parameters(sh: ShapeArrays, lo: NDArray, hi: NDArray) -> NDArray:
    """Per-window parameters (k, 16) of ``fits._kernels.event_values`` (normalisations as in ``signal_pdf``).

    Columns: 0-5 ``mu, sigma`` (GeV), ``alpha_l, n_l, alpha_r, n_r``; 6 the
    inverse DSCB normalisation (GeV^-1); 7 ``comb_fraction``; 8 the
    combinatorial scale ``comb_domain sigma`` (GeV; 1 without combinatorics);
    9 ``comb_slope``; 10 the inverse combinatorial normalisation; 11-12 the
    window (GeV); 13-14 the wrong-pair edge width and position (GeV; width 0
    for windows without an edge); 15 unused.
    """
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


def background_nonnegative(beta: NDArray, order: int, *, n_grid: int = 129) -> NDArray:
    """Whether each background ``sum_k beta_k T_k(x')`` (rows of ``beta``, events/GeV) is >= 0 on its window.

    Checked on a Chebyshev-Lobatto grid of ``n_grid`` points (the window edges
    included), with a tolerance of 1e-9 of the largest value; returns a bool
    array (k,).
    """
    xp = np.cos(np.linspace(0.0, np.pi, n_grid))  # Chebyshev-Lobatto grid incl. the edges
    T = chebyshev_basis(xp, order)  # (P-1, g)
    vals = beta @ T
    return vals.min(axis=1) >= -1e-9 * np.maximum(np.abs(vals).max(axis=1), 1e-300)

"""Binned extended-likelihood fits of many data sets in the windows of many hypotheses (fixed bins per window).

For the look-elsewhere toys of a scan (``scans.lee_batch``): each toy data set
is a histogram in bins much narrower than the signal, and the per-bin design
rows of every hypothesis are computed once and shared by every toy.

The model of hypothesis ``j`` on its window ``[lo, hi]`` (GeV) is the one of
the unbinned fits (``fits.densities``, ``fits.extra_templates``)::

    lambda(x) = mu s(x) + sum_t nu_t p_t(x) + sum_m beta_m T_m(x'),

signal and peak templates normalised on the window, yields and Chebyshev
coefficients (events/GeV) free. ``build_binned_design`` cuts each window
into ``nb`` equal bins no wider than ``bin_fraction`` times the narrowest width
of its shapes (core sigma of the signal and of every template, and the
width of a wrong-pair edge inside the window) and stores the bin averages
``Fbar_b = (1/h) int_b (s, p_t, T_0, ..., T_p) dx`` (Gauss-Legendre nodes in
each bin, exact for the polynomial columns). The binned extended
likelihood ``NLL = integ . theta - sum_b c_b log(theta . Fbar_b)`` is then
an exact Poisson likelihood of the counts ``c_b``; compared with the unbinned
fit of the same events it only loses the positions of the events inside
their bins. ``BinnedDesign.counts`` histograms a sorted sample into every
window's bins (the same events as the unbinned windows: ``lo <= x <= hi``),
and ``binned_q0`` runs the background-only and unconditional fits of one
data set in the windows (compiled, ``fits._binned_kernels``), giving the
signed local significance ``sign(mu_hat) sqrt(q0)``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from signal_models.shapes import SignalShape

from .densities import ShapeArrays, chebyshev_basis, chebyshev_integrals, signal_pdf

logger = logging.getLogger(__name__)

__all__ = ["BIN_FRACTION", "MAX_BINS", "BinnedDesign", "BinnedQ0", "build_binned_design", "binned_q0"]

#: default bin width in units of the narrowest width of a window's shapes
BIN_FRACTION = 0.1
#: most bins per window (a window wider than this many bin widths gets wider bins)
MAX_BINS = 20_000
#: points of the positivity check of a fitted background (as ``fits.densities.background_nonnegative``)
_CHECK_POINTS = 129


@dataclass(frozen=True, eq=False)
class BinnedDesign:
    """Bins and bin-averaged design rows of k hypotheses' windows.

    Attributes
    ----------
    lo, hi : (k,) float arrays, GeV
        Windows.
    order : int
        Order of the Chebyshev background.
    bin_start : (k+1,) int array
        Hypothesis ``j`` owns the bins ``bin_start[j] .. bin_start[j+1]`` (equal widths).
    F : (n_bins, Pmax) float array
        Bin-averaged design rows: signal density (1/GeV), template densities (1/GeV), ``T_0 .. T_p``;
        hypothesis ``j`` uses its first ``n_par[j]`` columns.
    n_par : (k,) int array
        Free parameters per hypothesis (signal yield, template yields, ``p + 1`` coefficients).
    bkg_col : (k,) int array
        Column of ``T_0`` (1 + number of templates).
    integ : (k, Pmax) float array
        Window integrals of the design columns (1 for the normalised shapes, ``I_m`` GeV for ``T_m``).
    edges : (n_bins + k,) float array, GeV
        Bin edges, window after window (``nb + 1`` per window, the first ``lo`` and the last ``hi``).
    edge_order : (n_bins + k,) int array
        Order of the edges by value (upper window edges after other edges of the same value).
    edge_keys, edge_right : (n_bins + k,) float and bool arrays
        The edges in that order (GeV), and whether each is the upper edge of a window (an event
        there is inside: ``x <= hi``).
    bin_low : (n_bins,) int array
        Position in ``edges`` of each bin's lower edge.
    """

    lo: NDArray
    hi: NDArray
    order: int
    bin_start: NDArray
    F: NDArray
    n_par: NDArray
    bkg_col: NDArray
    integ: NDArray
    edges: NDArray
    edge_order: NDArray
    edge_keys: NDArray
    edge_right: NDArray
    bin_low: NDArray

    @property
    def k(self) -> int:
        return len(self.lo)

    @property
    def n_bins(self) -> int:
        """Bins of all windows together."""
        return int(self.bin_start[-1])

    def counts(self, sorted_x: ArrayLike) -> NDArray[np.int64]:
        """Counts (n_bins,) of a sorted sample (GeV) in every window's bins; a window holds ``lo <= x <= hi``."""
        from ._binned_kernels import edge_positions

        x = np.ascontiguousarray(sorted_x, dtype=float)
        pos = np.empty(len(self.edges), dtype=np.int64)
        edge_positions(x, self.edge_keys, self.edge_right, self.edge_order, pos)
        return pos[self.bin_low + 1] - pos[self.bin_low]

    def bin_centres(self, j: int) -> NDArray:
        """Bin centres (GeV) of hypothesis ``j``'s window."""
        e = self.edges[self.bin_start[j] + j : self.bin_start[j + 1] + j + 1]
        return 0.5 * (e[1:] + e[:-1])


@dataclass(frozen=True)
class BinnedQ0:
    """Background-only and unconditional binned fits of one data set (arrays over the fitted rows).

    ``mu_hat`` in signal events; ``nll_zero``, ``nll_hat`` the minimum NLLs (binned, constants
    dropped); ``z_local`` the signed ``sqrt(q0)`` (0 where ``status`` is not 0); ``status`` a
    ``fits._binned_kernels.STATUS_*`` code; ``bkg_nonnegative`` whether both fitted backgrounds
    are >= 0 over the window.
    """

    mu_hat: NDArray
    nll_zero: NDArray
    nll_hat: NDArray
    z_local: NDArray
    status: NDArray
    bkg_nonnegative: NDArray

    @property
    def usable(self) -> NDArray:
        """Rows whose fits converged with backgrounds that stay non-negative over the window."""
        return (self.status == 0) & self.bkg_nonnegative


def _widths(shape: SignalShape, lo: float, hi: float) -> float:
    """Narrowest width (GeV) of a shape's features in the window: core sigma, and a wrong-pair edge inside it."""
    w = float(shape.sigma)
    sh = ShapeArrays.from_shapes([shape])
    if bool(sh.edge_rows(np.array([hi]))[0]) and float(sh.comb_edge_width[0]) > 0 and float(sh.comb_edge[0]) > lo - 9 * float(sh.comb_edge_width[0]):
        w = min(w, float(sh.comb_edge_width[0]))
    return w


def _legendre_projection(order: int) -> NDArray:
    """``C`` ((p+1, p+1)) with ``beta = (2 / (hi - lo)) S @ C``: Chebyshev sums ``S_m = sum T_m(x'_i)`` of
    events -> Chebyshev coefficients of their orthogonal projection on the Legendre polynomials."""
    p = order
    L = np.zeros((p + 1, p + 1))
    for ell in range(p + 1):
        coef = np.polynomial.Legendre.basis(ell).convert(kind=np.polynomial.Chebyshev).coef
        L[ell, : len(coef)] = coef
    D = np.diag((2 * np.arange(p + 1) + 1) / 2.0)
    return L.T @ D @ L


def build_binned_design(
    shapes: Sequence[SignalShape],
    windows: ArrayLike,
    order: int,
    *,
    extras: Sequence[Sequence[SignalShape]] | None = None,
    bin_fraction: float = BIN_FRACTION,
    max_bins: int = MAX_BINS,
) -> BinnedDesign:
    """Bins and bin-averaged design rows of k hypotheses (see the module docstring).

    Parameters
    ----------
    shapes : k SignalShape
        Signal shape per hypothesis (fixed).
    windows : (k, 2) array, GeV
    order : int
        Order of the Chebyshev background.
    extras : k sequences of SignalShape, optional
        Peak templates with floating yields per hypothesis (none by default).
    bin_fraction : float
        Bin width at most this fraction of the narrowest width of the window's shapes.
    max_bins : int
        Most bins per window.
    """
    if not 0 < bin_fraction <= 1:
        raise ValueError(f"bin_fraction: expected a number in (0, 1], got {bin_fraction}")
    win = np.asarray(windows, dtype=float).reshape(-1, 2)
    k = len(shapes)
    lo, hi = win[:, 0].copy(), win[:, 1].copy()
    ext = [tuple(e) for e in extras] if extras is not None else [()] * k
    n_tmpl = np.array([len(e) for e in ext], dtype=np.int64)
    n_par = n_tmpl + order + 2
    p_max = int(n_par.max(initial=order + 2))
    scale = np.array([min([_widths(s, lo[j], hi[j])] + [_widths(t, lo[j], hi[j]) for t in ext[j]]) for j, s in enumerate(shapes)])
    nb = np.clip(np.ceil((hi - lo) / (bin_fraction * scale)), 1, max_bins).astype(np.int64)
    bin_start = np.concatenate([[0], np.cumsum(nb)]).astype(np.int64)
    n_gl = max(3, math.ceil((order + 1) / 2))  # exact for T_m, m <= 2 n_gl - 1
    u, wq = np.polynomial.legendre.leggauss(n_gl)
    F = np.zeros((int(bin_start[-1]), p_max))
    edges = np.empty(int(bin_start[-1]) + k)
    for j in range(k):
        e = lo[j] + (hi[j] - lo[j]) * np.arange(nb[j] + 1) / nb[j]
        e[-1] = hi[j]
        edges[bin_start[j] + j : bin_start[j + 1] + j + 1] = e
        half = 0.5 * (e[1:] - e[:-1])
        nodes = (0.5 * (e[1:] + e[:-1]))[:, None] + half[:, None] * u[None, :]  # (nb, n_gl) GeV
        wavg = 0.5 * wq  # bin average = sum_g wavg_g f(node_g)
        cols = [shapes[j], *ext[j]]
        sh = ShapeArrays.from_shapes(cols)
        dens = signal_pdf(np.broadcast_to(nodes.reshape(-1), (len(cols), nodes.size)), sh, np.full(len(cols), lo[j]), np.full(len(cols), hi[j]))
        rows = F[bin_start[j] : bin_start[j + 1]]
        rows[:, : len(cols)] = (dens.reshape(len(cols), nb[j], n_gl) @ wavg).T
        xp = (2.0 * nodes - (lo[j] + hi[j])) / (hi[j] - lo[j])
        rows[:, len(cols) : len(cols) + order + 1] = (chebyshev_basis(xp, order) @ wavg).T
    integ = np.zeros((k, p_max))
    cheb = chebyshev_integrals(order)
    for j in range(k):
        m = 1 + int(n_tmpl[j])
        integ[j, :m] = 1.0
        integ[j, m : m + order + 1] = 0.5 * (hi[j] - lo[j]) * cheb
    upper = bin_start[1:] + np.arange(1, k + 1) - 1  # position of each window's upper edge in ``edges``
    right = np.zeros(len(edges), bool)
    right[upper] = True
    by_value = np.lexsort((right, edges))
    return BinnedDesign(lo=lo, hi=hi, order=int(order), bin_start=bin_start, F=np.ascontiguousarray(F), n_par=n_par, bkg_col=n_tmpl + 1,
                        integ=integ, edges=edges, edge_order=by_value, edge_keys=edges[by_value], edge_right=right[by_value],
                        bin_low=np.delete(np.arange(len(edges)), upper))


def binned_q0(design: BinnedDesign, counts: ArrayLike, *, rows: ArrayLike | None = None, max_iter: int = 60, tol: float = 1e-9) -> BinnedQ0:
    """Background-only and unconditional binned fits of one data set in the windows ``rows`` (default all).

    Parameters
    ----------
    design : BinnedDesign
    counts : (n_bins,) int array
        The data set's counts in every window's bins (``BinnedDesign.counts``).
    rows : int array, optional
        Hypotheses to fit.
    max_iter, tol : int, float
        Newton iterations and the stopping threshold on the Newton decrement (NLL units).

    Returns
    -------
    BinnedQ0
        One entry per row; each row's numbers depend only on its own window and counts.
    """
    from ._binned_kernels import STATUS_OK
    from ._binned_kernels import binned_q0 as kernel

    r = np.arange(design.k, dtype=np.int64) if rows is None else np.ascontiguousarray(rows, dtype=np.int64)
    c = np.ascontiguousarray(counts, dtype=np.int64)
    if c.shape != (design.n_bins,):
        raise ValueError(f"counts: expected {design.n_bins} bins, got shape {c.shape}")
    n = len(r)
    mu, nll0, nll1 = np.zeros(n), np.zeros(n), np.zeros(n)
    ok0, ok1 = np.zeros(n, bool), np.zeros(n, bool)
    status = np.zeros(n, np.int64)
    grid = chebyshev_basis(np.cos(np.linspace(0.0, np.pi, _CHECK_POINTS)), design.order)
    kernel(design.F, design.bin_start, design.n_par, design.bkg_col, design.integ, design.hi - design.lo, _legendre_projection(design.order),
           np.ascontiguousarray(grid), c, np.ascontiguousarray(design.bin_start[r]), r, int(max_iter), float(tol), mu, nll0, nll1, ok0, ok1, status)
    good = status == STATUS_OK
    q0 = np.maximum(2.0 * (nll0 - nll1), 0.0)
    z = np.where(good, np.sign(mu) * np.sqrt(np.where(good, q0, 0.0)), 0.0)
    return BinnedQ0(mu_hat=mu, nll_zero=nll0, nll_hat=nll1, z_local=z, status=status, bkg_nonnegative=ok0 & ok1)

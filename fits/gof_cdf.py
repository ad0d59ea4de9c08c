"""The fitted CDF of many windows at once, for the goodness-of-fit tests (``fits.goodness_of_fit``).

A window's fitted density ``lambda(x) = sum_t N_t s_t(x) + sum_m beta_m T_m(x')`` (events/GeV) is
integrated to ``Lambda(x)`` (expected events in [lo, x]): the background exactly from the Chebyshev
antiderivative, each signal term from the analytic ``dscb_integral`` / ``comb_integral`` at nodes
of its window (uniform, refined around the peak and a wrong-pair edge) and a cubic Hermite
interpolant between them (``CdfTables``). ``FittedCdf`` gives ``Lambda`` of ``max(lambda, 0)``
where a fit leaves the density negative. Written by hand: flat arrays over the events of all
windows at once, which no library evaluates for these shapes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from numpy.polynomial import chebyshev as cheb
from numpy.typing import NDArray

from signal_models.shapes import comb_integral, dscb_integral

from .densities import ShapeArrays, chebyshev_integrals, signal_pdf

logger = logging.getLogger(__name__)

__all__ = ["CdfTables", "FittedDensity", "FittedCdf", "node_cell", "window_nodes", "shape_cdf"]

#: nodes of a window's CDF table: uniform, over +-12 sigma around the peak, over +-12 widths around a wrong-pair edge
_GRID, _PEAK_GRID, _EDGE_GRID = 257, 193, 65


@dataclass(frozen=True, eq=False)
class CdfTables:
    """Signal CDFs of m shapes at nodes ``s`` (m, G) of their windows (relative positions ``(x - lo) / (hi - lo)``).

    ``cdf`` is exact at the nodes, ``pdf`` = dcdf/ds; ``cubic`` (m G, 5) holds per node cell its start
    and the Hermite cubic in powers of ``s - start`` (error ~1e-7 on ``window_nodes``' nodes). The analytic
    CDF costs ~0.6 us a point, the interpolant far less, and the toys of a hypothesis share its table.
    """

    s: NDArray
    cdf: NDArray
    pdf: NDArray
    cubic: NDArray

    @classmethod
    def of(cls, sh: ShapeArrays, lo: NDArray, hi: NDArray, s: NDArray) -> CdfTables:
        m, G = s.shape
        x = lo[:, None] + s * (hi - lo)[:, None]
        f = shape_cdf(x.ravel(), np.repeat(np.arange(m), G), sh, lo, hi).reshape(m, G)
        p = signal_pdf(x, sh, lo, hi) * (hi - lo)[:, None]
        h = np.diff(s, axis=1)
        hh = np.where(h > 0, h, np.inf)  # repeated nodes: a constant piece
        slope = np.diff(f, axis=1) / hh
        c = np.zeros((m, G, 5))
        c[..., 0], c[..., 1] = s, f
        c[:, :-1, 2] = np.where(h > 0, p[:, :-1], 0.0)
        c[:, :-1, 3] = (3.0 * slope - 2.0 * c[:, :-1, 2] - np.where(h > 0, p[:, 1:], 0.0)) / hh
        c[:, :-1, 4] = (c[:, :-1, 2] + np.where(h > 0, p[:, 1:], 0.0) - 2.0 * slope) / (hh * hh)
        return cls(s, f, p, c.reshape(m * G, 5))

    def at(self, table: NDArray, s: NDArray) -> NDArray:
        """CDF of the shapes ``table`` at relative positions ``s`` (flat arrays)."""
        c = self.cubic[node_cell(self.s, table, s)]
        d = s - c[:, 0]
        return c[:, 1] + d * (c[:, 2] + d * (c[:, 3] + d * c[:, 4]))


def node_cell(nodes: NDArray, rows: NDArray, s: NDArray) -> NDArray:
    """Flat index (into ``nodes.ravel()``) of the node cell of row ``rows`` holding ``s`` (nodes (m, G) sorted in [0, 1])."""
    m, G = nodes.shape
    key = (2.0 * np.arange(m)[:, None] + nodes).ravel()  # row j's nodes shifted to [2 j, 2 j + 1]: one sorted array
    return np.clip(np.searchsorted(key, 2.0 * rows + s, side="right") - 1, rows * G, rows * G + G - 2)


def window_nodes(sh: ShapeArrays, lo: NDArray, hi: NDArray) -> NDArray:
    """Relative nodes (k, G), sorted in [0, 1]: uniform, refined over +-12 sigma around the peak and +-12 widths around a wrong-pair edge."""
    lo_, w = lo[:, None], (hi - lo)[:, None]
    peak = (sh.mu[:, None] + sh.sigma[:, None] * np.linspace(-12.0, 12.0, _PEAK_GRID) - lo_) / w
    with np.errstate(invalid="ignore"):
        edge = np.where(sh.edge_rows(hi)[:, None], (sh.comb_edge[:, None] + sh.comb_edge_width[:, None] * np.linspace(-12.0, 12.0, _EDGE_GRID) - lo_) / w,
                        np.linspace(0.0, 1.0, _EDGE_GRID))
    return np.sort(np.clip(np.concatenate([np.broadcast_to(np.linspace(0.0, 1.0, _GRID), (len(lo), _GRID)), peak, edge], axis=1), 0.0, 1.0), axis=1)


@dataclass(frozen=True, eq=False)
class FittedDensity:
    """Fitted densities of k windows (GeV): ``sum_t coef_t s_t(x) + sum_m beta_m T_m(x')`` (events/GeV).

    Signal term t: coefficients (k,) in events and, per window, its row in the term's tables
    (all terms' tables share the nodes of a window); ``beta`` (k, P) in events/GeV.
    """

    terms: tuple[tuple[NDArray, NDArray, CdfTables], ...]
    beta: NDArray
    lo: NDArray
    hi: NDArray

    def take(self, idx: NDArray) -> FittedDensity:
        return FittedDensity(tuple((c[idx], t[idx], tab) for c, t, tab in self.terms), self.beta[idx], self.lo[idx], self.hi[idx])

    def total(self) -> NDArray:
        """Expected events in each window (k,)."""
        return sum(c for c, _, _ in self.terms) + 0.5 * (self.hi - self.lo) * np.sum(self.beta * chebyshev_integrals(self.beta.shape[1] - 1), axis=1)

    def cumulative(self, x: NDArray, rows: NDArray) -> NDArray:
        """``Lambda(x)`` (events in [lo, x]) at the events ``x`` (GeV) of windows ``rows`` (flat arrays)."""
        lo, hi = self.lo[rows], self.hi[rows]
        s = np.clip((x - lo) / (hi - lo), 0.0, 1.0)
        anti = cheb.chebint(self.beta, lbnd=-1.0, axis=1)  # (k, P + 1) in T_m(x')
        n = anti.shape[1]
        power = anti @ np.array([np.pad(cheb.cheb2poly(e), (0, n - m - 1)) for m, e in enumerate(np.eye(n))])  # in powers of x'
        xp, out = 2.0 * s - 1.0, power[rows, -1].copy()
        for m in range(n - 2, -1, -1):  # Horner in x' (|x'| <= 1, degree bkg_order + 1)
            out *= xp
            out += power[rows, m]
        out *= 0.5 * (hi - lo)
        for coef, idx, tab in self.terms:
            out += coef[rows] * tab.at(idx[rows], s)
        return out

    def at_nodes(self) -> tuple[NDArray, NDArray, NDArray]:
        """The nodes (k, G) in GeV, ``Lambda`` (events) and ``lambda`` (events/GeV) there."""
        _, idx0, tab0 = self.terms[0]
        s, w = tab0.s[idx0], (self.hi - self.lo)[:, None]
        anti = cheb.chebint(self.beta, lbnd=-1.0, axis=1)
        cum = 0.5 * w * cheb.chebval(2.0 * s - 1.0, anti.T[:, :, None], tensor=False)
        dens = cheb.chebval(2.0 * s - 1.0, self.beta.T[:, :, None], tensor=False)
        for coef, idx, tab in self.terms:
            cum += coef[:, None] * tab.cdf[idx]
            dens += coef[:, None] * tab.pdf[idx] / w
        return self.lo[:, None] + s * w, cum, dens


@dataclass(frozen=True, eq=False)
class FittedCdf:
    """``Lambda`` of a model's windows, of ``max(lambda, 0)`` where the fitted density goes negative (``clipped`` windows).

    At the nodes ``cum``: exact increments on cells with the density >= 0 at both ends (``positive``),
    the positive part of the linear density on the others (around each sign change).
    """

    model: FittedDensity
    s: NDArray  # (k, G) relative nodes
    raw: NDArray  # Lambda at the nodes (events)
    cum: NDArray  # Lambda of the clipped density at the nodes
    positive: NDArray  # (k, G - 1)
    clipped: NDArray  # (k,)

    @classmethod
    def of(cls, model: FittedDensity) -> FittedCdf:
        with np.errstate(invalid="ignore", over="ignore"):
            x, raw, dens = model.at_nodes()
            neg = dens < -1e-9 * np.max(np.abs(np.where(np.isfinite(dens), dens, 0.0)), axis=1, keepdims=True, initial=0.0)
            a, b = np.where(neg, 0.0, dens)[:, :-1], np.where(neg, 0.0, dens)[:, 1:]
            positive = ~neg[:, :-1] & ~neg[:, 1:]
            span = np.abs(dens[:, :-1]) + np.abs(dens[:, 1:])  # a linear density from a > 0 to -b' < 0 has a^2 h / (2 (a + b')) above 0
            part = np.diff(x, axis=1) * (a * a + b * b) / np.where(span > 0, 2.0 * span, 1.0)
            inc = np.where(positive, np.diff(raw, axis=1), part)
        cum = np.concatenate([np.zeros((len(x), 1)), np.cumsum(inc, axis=1)], axis=1)
        return cls(model, model.terms[0][2].s[model.terms[0][1]], raw, cum, positive, neg.any(axis=1))

    @property
    def total(self) -> NDArray:
        """Expected events in each window (k,): the fitted yield, or that of the clipped density."""
        return np.where(self.clipped, self.cum[:, -1], self.raw[:, -1])

    def at(self, x: NDArray, rows: NDArray) -> NDArray:
        """``Lambda`` (clipped where needed) at the events ``x`` (GeV) of windows ``rows`` (flat arrays)."""
        out = self.model.cumulative(x, rows)
        sel = self.clipped[rows]
        if np.any(sel):
            lo, hi = self.model.lo, self.model.hi
            rs = rows[sel]
            s = np.clip((x[sel] - lo[rs]) / (hi - lo)[rs], 0.0, 1.0)
            i = node_cell(self.s, rs, s)
            s0, s1 = self.s.ravel()[i], self.s.ravel()[i + 1]
            c0, c1 = self.cum.ravel()[i], self.cum.ravel()[i + 1]
            t = np.where(s1 > s0, (s - s0) / np.where(s1 > s0, s1 - s0, 1.0), 0.0)
            out[sel] = c0 + np.where(self.positive.ravel()[i - rs], out[sel] - self.raw.ravel()[i], t * (c1 - c0))
        return out


def shape_cdf(x: NDArray, rows: NDArray, sh: ShapeArrays, lo: NDArray, hi: NDArray) -> NDArray:
    """Probability in [lo, x] (x in GeV, flat, of windows ``rows``) of each signal shape normalised on its window, as ``signal_pdf``."""
    p = sh.take(rows)
    norm = dscb_integral((lo - sh.mu) / sh.sigma, (hi - sh.mu) / sh.sigma, sh.alpha_l, sh.n_l, sh.alpha_r, sh.n_r)[rows]
    out = (1.0 - p.comb_fraction) * dscb_integral((lo[rows] - p.mu) / p.sigma, (x - p.mu) / p.sigma, p.alpha_l, p.n_l, p.alpha_r, p.n_r) / norm
    if np.any(sh.comb_fraction > 0):
        scale = sh.comb_domain * sh.sigma
        e, w = sh.edge_scaled(sh.edge_rows(hi))
        u_lo = (lo - sh.mu) / scale
        with np.errstate(divide="ignore", invalid="ignore"):
            cnorm = comb_integral(u_lo, (hi - sh.mu) / scale, sh.comb_slope, e, w)
            comb = comb_integral(u_lo[rows], (x - p.mu) / scale[rows], p.comb_slope, e[rows], w[rows]) / cnorm[rows]
        out = out + np.where(p.comb_fraction > 0, p.comb_fraction * comb, 0.0)
    return out

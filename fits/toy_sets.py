"""Toy data sets of given models, thinned from the drawn layers, as designs of the Newton engine.

``thin_sets`` keeps, for each requested row, the points of a toy's layers
(``fits.toy_sampling.ToyLayers``) that the model ``mu s(x) + beta . T(x')``
accepts; the result holds the per-event signal densities and scaled masses
(``ToySets``). ``ToySets.design`` turns them into a compact data design (the
compiled kernels) or, for sparse windows, into a design with the positivity
guard (``fits.design.build_guarded_design``; the events in GeV are recovered
from the scaled masses). ``ToySets.log_ratio`` is the log likelihood ratio of
two generating models on each set (the importance weights of ``fits.toy_cls``),
and ``clipped_background_integral`` the expected number of background events
of a generator that clips its density at zero.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from .densities import ShapeArrays, background_nonnegative, chebyshev_basis, chebyshev_integrals
from .design import Design, build_guarded_design, window_integrals
from .toy_sampling import ToyLayers

__all__ = ["ToySets", "thin_sets", "data_sets", "clipped_background_integral"]


@dataclass(frozen=True)
class ToySets:
    """k data sets (rows): signal density ``s`` (1/GeV) and scaled mass ``xp`` of ``n`` events each, padded.

    ``lo``, ``hi`` (GeV) the windows; ``shapes`` the signal shapes of the rows.
    """

    s: NDArray
    xp: NDArray
    n: NDArray
    lo: NDArray
    hi: NDArray
    shapes: ShapeArrays

    @property
    def k(self) -> int:
        return len(self.n)

    def take(self, idx: NDArray) -> ToySets:
        """The rows ``idx``."""
        return ToySets(self.s[idx], self.xp[idx], self.n[idx], self.lo[idx], self.hi[idx], self.shapes.take(idx))

    def design(self, order: int, *, guarded: bool) -> Design:
        """The rows as a design: compact (compiled kernels) or with the positivity guard of sparse windows."""
        if not guarded:
            return Design(None, None, window_integrals(self.lo, self.hi, order), self.lo, self.hi, self.n.astype(int), True, s=self.s, xp=self.xp)
        x_rows = [0.5 * (self.lo[j] + self.hi[j]) + 0.5 * (self.hi[j] - self.lo[j]) * self.xp[j, : self.n[j]] for j in range(self.k)]  # per row
        x = np.concatenate(x_rows) if self.k else np.zeros(0)
        stop = np.cumsum(self.n).astype(np.int64)
        start = stop - self.n
        return build_guarded_design(x, self.shapes, self.lo, self.hi, order, index_range=(start, stop))

    def log_ratio(self, mu_a: NDArray, beta_a: NDArray, mu_b: NDArray, beta_b: NDArray, *, rows: NDArray | None = None) -> NDArray:
        """``sum_i log(lambda_a(x_i) / lambda_b(x_i))`` of the sets ``rows`` (all by default), ``lambda = mu s + max(beta . T, 0)``.

        ``mu_a`` ... ``beta_b``: one model per entry of ``rows`` (the generators' densities).
        """
        from ._toy_kernels import log_ratio_rows

        rmap = np.arange(self.k, dtype=np.int64) if rows is None else np.ascontiguousarray(rows, dtype=np.int64)
        out = np.empty(len(rmap))
        log_ratio_rows(rmap, self.s, self.xp, self.n.astype(np.int64), np.ascontiguousarray(mu_a, dtype=float), np.ascontiguousarray(beta_a, dtype=float),
                       np.ascontiguousarray(mu_b, dtype=float), np.ascontiguousarray(beta_b, dtype=float), out)
        return out


def thin_sets(layers: ToyLayers, src: NDArray, mu: NDArray, beta: NDArray, shapes: ShapeArrays, lo: NDArray, hi: NDArray) -> ToySets:
    """The data sets of the models ``mu[r] s + beta[r] . T`` (r over ``src``) from the layers of toy rows ``src``.

    ``shapes``, ``lo``, ``hi``: per hypothesis of the layers (indexed by ``layers.hyp``).
    """
    from ._toy_kernels import thin_rows

    src = np.asarray(src, dtype=np.int64)
    R = len(src)
    width = max(int((layers.nb[src] + layers.ns[src]).max(initial=0)), 1) if R else 1
    s = np.empty((R, width))
    xp = np.empty((R, width))
    n = np.empty(R, np.int64)
    thin_rows(layers.sb, layers.xb, layers.vb, layers.nb.astype(np.int64), layers.ss, layers.xs, layers.ts, layers.ns.astype(np.int64), src,
              np.ascontiguousarray(mu, dtype=float), np.ascontiguousarray(beta, dtype=float), s, xp, n)
    h = layers.hyp[src]
    return ToySets(s=s, xp=xp, n=n, lo=lo[h], hi=hi[h], shapes=shapes.take(h))


def data_sets(s: NDArray, xp: NDArray, n: NDArray, lo: NDArray, hi: NDArray, shapes: ShapeArrays) -> ToySets:
    """The observed data of k hypotheses as ``ToySets`` (from a compact data design's ``s`` and ``xp``)."""
    return ToySets(s=s, xp=xp, n=np.asarray(n, dtype=np.int64), lo=lo, hi=hi, shapes=shapes)


def clipped_background_integral(beta: NDArray, lo: NDArray, hi: NDArray, *, n_grid: int = 20001) -> NDArray:
    """``int max(sum_m beta_m T_m(x'), 0) dx`` over each window (events; rows of ``beta`` in events/GeV, windows in GeV).

    Analytic where the background is non-negative on its window, otherwise
    the trapezoidal rule on ``n_grid`` points.
    """
    beta = np.atleast_2d(np.asarray(beta, float))
    order = beta.shape[1] - 1
    half = 0.5 * (np.asarray(hi, float) - np.asarray(lo, float))
    I = chebyshev_integrals(order)
    out = half * (beta * I[None, :]).sum(axis=1)
    neg = ~background_nonnegative(beta, order)
    if np.any(neg):
        g = np.linspace(-1.0, 1.0, n_grid)
        T = chebyshev_basis(g, order)
        for j in np.flatnonzero(neg):  # per hypothesis with a background that dips below zero
            v = np.maximum(beta[j] @ T, 0.0)
            out[j] = half[j] * float(np.sum(0.5 * (v[1:] + v[:-1])) * (g[1] - g[0]))
    return out

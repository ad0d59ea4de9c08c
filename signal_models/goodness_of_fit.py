"""Goodness of fit of a signal shape to a candidate sample: Pearson chi2 on bins of equal expected content."""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import stats

from .combinatorial import comb_integral
from .dscb import dscb_integral
from .shapes import SignalShape

__all__ = ["chi2_equal_probability"]


def _mixture_cdf_grid(shape: SignalShape, lo: float, hi: float, *, n: int = 4001) -> tuple[NDArray, NDArray]:
    grid = np.linspace(lo, hi, n)
    t = (grid - shape.mu) / shape.sigma
    t_lo = (lo - shape.mu) / shape.sigma
    peak = dscb_integral(t_lo, t, shape.alpha_l, shape.n_l, shape.alpha_r, shape.n_r)
    peak = peak / peak[-1]
    cdf = (1.0 - shape.comb_fraction) * peak
    if shape.comb_fraction > 0:
        scale = shape.comb_domain * shape.sigma
        u = (grid - shape.mu) / scale
        e, w = shape.edge_in_domain_units()
        comb = comb_integral((lo - shape.mu) / scale, u, shape.comb_slope, e, w)
        cdf = cdf + shape.comb_fraction * comb / comb[-1]
    return grid, cdf


def chi2_equal_probability(
    x: ArrayLike, w: ArrayLike | None, shape: SignalShape, lo: float, hi: float, *, n_bins: int | None = None, n_fitted: int = 0
) -> tuple[float, int, float]:
    """Pearson chi2 of a sample against the shape on bins of equal expected content.

    Bin edges are quantiles of the model on [lo, hi] (so every bin expects
    the same number of events, >= 10 by default). Weighted samples use the
    scaled-Pearson variance ``expected * sum(w^2) / sum(w)``.

    Returns
    -------
    chi2, ndf, p-value
        ``ndf = n_bins - 1 - n_fitted``.
    """
    x = np.asarray(x, dtype=float)
    w = np.ones_like(x) if w is None else np.asarray(w, dtype=float)
    total = float(np.sum(w))
    n_eff = total**2 / float(np.sum(w * w)) if total > 0 else 0.0
    if n_bins is None:
        n_bins = int(np.clip(n_eff // 20, 5, 60))
    grid, cdf = _mixture_cdf_grid(shape, lo, hi)
    probs = np.linspace(0.0, 1.0, n_bins + 1)
    edges = np.interp(probs, cdf, grid)
    edges[0], edges[-1] = lo, hi
    counts, _ = np.histogram(x, bins=edges, weights=w)
    exp_p = np.diff(np.interp(edges, grid, cdf))
    expected = total * exp_p
    scale = float(np.sum(w * w)) / total if total > 0 else 1.0
    good = expected > 0
    chi2 = float(np.sum((counts[good] - expected[good]) ** 2 / (expected[good] * scale)))
    ndf = int(good.sum()) - 1 - n_fitted
    pvalue = float(stats.chi2.sf(chi2, ndf)) if ndf > 0 else math.nan
    return chi2, ndf, pvalue

"""Goodness of fit of many hypotheses at once: binned saturated-model chi2 and unbinned Anderson-Darling.

Each window [lo, hi] (GeV) is compared with its fitted density ``lambda(x) = N_sig s(x) + sum_m beta_m
T_m(x')`` (events/GeV, ``fits.densities``) through the fitted CDF ``F = Lambda(x) / Lambda(hi)``
(``Lambda``: expected events in [lo, x]; background from the Chebyshev antiderivative, signal from
the analytic ``dscb_integral`` / ``comb_integral`` at nodes of the window and a cubic Hermite
interpolant between them), at all events of all windows as flat arrays.

- ``binned``: B bins of equal fitted probability (an event's bin is ``floor(B F(x))``, each bin
  expects ``N_tot / B``), ``B = clip(n // 10, max(5, n_free + 1), 50)`` for n candidates
  (``n_bins_rule``: ~10 expected events per bin, at least one degree of freedom). Statistic: the
  extended Baker-Cousins likelihood ratio ``2 sum_b [nu_b - n_b + n_b ln(n_b / nu_b)]``;
  ``ndf = B - n_free``, ``n_free = bkg_order + 2`` (N_sig and the ``bkg_order + 1`` background
  coefficients, the normalisation among them). p-value: the chi2(ndf) tail or toys. The chi2 law
  is approximate: the parameters come from the unbinned fit (Chernoff-Lehmann: the law lies
  between chi2(B - n_free) and chi2(B - 1)), and sparse windows are not asymptotic; use toys there.
- ``anderson-darling``: ``A^2`` of ``u_i = F(x_i)``, always toy-calibrated (the parameters come
  from the same data, so the tables of the fully specified case do not hold).

Toys (parametric bootstrap): per hypothesis ``toys`` data sets from the fitted density (Poisson
total; inverse of its CDF at the nodes, linear between them), all refitted with the same model in
one ``fits.evaluate_hypotheses`` call per group (toy r's events, window and peak moved to start at
``(r + 1) * spacing`` GeV: the model sees positions relative to the window only) and tested the
same way; ``p = (toys with statistic >= observed) / (toys whose fit converged)`` (0 means below
1 / toys).

Where a fit leaves the density negative (a negative signal yield in a sparse window: the fit
needs it positive at the events only) the CDF is that of ``max(lambda, 0)``, marked ``clipped``.
A hypothesis that cannot be tested (fit flagged, no expected events, fewer than half the toy fits converged) has
``ok`` False, a ``reason`` and NaN statistic and p-value; NaN never appears where ``ok`` is True.
``gof_combined`` is the binned test of a fitted ``fits.combined.CombinedBatch`` (see there).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.stats import chi2

from signal_models.shapes import SignalShape

from .densities import ShapeArrays
from .errors import FitInputError
from .gof_cdf import CdfTables, FittedCdf, FittedDensity, window_nodes
from .hypotheses import chunk_hypotheses, evaluate_hypotheses
from .inputs import check_bkg_order, check_shapes, check_windows, sorted_masses
from .plots import plot_gof_pvalues  # its home is fits.plots; importable from here too
from .results import HypothesisTable

if TYPE_CHECKING:
    from .combined import CombinedBatch

logger = logging.getLogger(__name__)

__all__ = ["GofResult", "METHODS", "gof_pvalues", "gof_from_table", "gof_combined", "baker_cousins", "anderson_darling", "n_bins_rule",
           "plot_gof_pvalues"]

#: the tests: binned saturated-model chi2, unbinned Anderson-Darling
METHODS = ("binned", "anderson-darling")
#: toys per hypothesis of the Anderson-Darling calibration when none are asked for
DEFAULT_TOYS = 100
#: binning rule: expected events per bin, fewest and most bins
EVENTS_PER_BIN, MIN_BINS, MAX_BINS = 10, 5, 50
#: bounds of one toy refit call (events, toy rows)
_TOY_EVENTS, _TOY_ROWS = 2_000_000, 2_000
#: secant steps refining the equal-probability bin edges on the exact fitted CDF
_EDGE_STEPS = 3
#: u = F(x) is kept inside [eps, 1 - eps] in the logarithms of A^2
_U_EPS = 1e-15


@dataclass(frozen=True, eq=False)
class GofResult:
    """Goodness of fit of k hypotheses (arrays of length k).

    ``method``: ``"binned"`` or ``"anderson-darling"``; ``calibration``: ``"asymptotic"`` (chi2 law)
    or ``"toys"``. ``statistic`` (Baker-Cousins chi2 or A^2) and ``pvalue`` are NaN only where ``ok``
    is False, with the ``reason``. ``ndf`` and ``n_bins``: of the binned test (0 for Anderson-Darling);
    ``n_toys``: toys whose refit converged (0 when asymptotic); ``n_events``: candidates in the
    window (all channels); ``clipped``: the fitted density is negative somewhere in the window and
    the test used that of ``max(lambda, 0)``; ``channel_statistic``, ``channel_ndf`` (k, C): per
    channel chi2 and bins minus background coefficients (combined fits only).
    """

    method: str
    calibration: str
    statistic: NDArray
    pvalue: NDArray
    ndf: NDArray
    n_bins: NDArray
    n_toys: NDArray
    n_events: NDArray
    ok: NDArray
    reason: tuple[str, ...]
    clipped: NDArray
    channel_statistic: NDArray | None = None
    channel_ndf: NDArray | None = None

    def __len__(self) -> int:
        return len(self.pvalue)

    def flagged(self, alpha: float = 0.01) -> NDArray:
        """Indices of the tested hypotheses with p-value below ``alpha``."""
        with np.errstate(invalid="ignore"):
            return np.flatnonzero(self.ok & (self.pvalue < alpha))


def baker_cousins(observed: ArrayLike, expected: ArrayLike) -> NDArray:
    """Extended Poisson likelihood ratio ``2 sum [nu - n + n ln(n / nu)]`` over the last axis (``n ln n = 0`` at n = 0)."""
    n = np.asarray(observed, float)
    nu = np.asarray(expected, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_term = np.where(n > 0, n * np.log(n / nu), 0.0)
    return 2.0 * np.sum(nu - n + log_term, axis=-1)


def anderson_darling(u: ArrayLike) -> float:
    """``A^2`` of one sample of fitted-CDF values ``u`` (any order): ``-n - sum_i (2i - 1) [ln u_(i) + ln(1 - u_(n+1-i))] / n``."""
    u = np.sort(np.asarray(u, float))
    return float(_ad_flat(u, np.zeros(len(u), np.int64), np.array([len(u)]))[0])


def _ad_flat(u: NDArray, rows: NDArray, n: NDArray) -> NDArray:
    """A^2 of each window from its sorted ``u`` (flat, grouped by ``rows``; ``n`` events per window)."""
    first = np.concatenate([[0], np.cumsum(n)[:-1]])
    j = np.arange(len(u)) - first[rows] + 1.0  # 1-based rank within the window
    m = n[rows].astype(float)
    u = np.clip(u, _U_EPS, 1.0 - _U_EPS)
    terms = (2.0 * j - 1.0) * np.log(u) + (2.0 * (m - j) + 1.0) * np.log1p(-u)
    with np.errstate(divide="ignore", invalid="ignore"):
        return -n - np.bincount(rows, weights=terms, minlength=len(n)) / n


def n_bins_rule(n_events: ArrayLike, n_free: int, *, events_per_bin: int = EVENTS_PER_BIN, max_bins: int = MAX_BINS) -> NDArray:
    """Bins of the binned test: ``clip(n // events_per_bin, max(MIN_BINS, n_free + 1), max_bins)`` (n candidates in the window)."""
    low = max(MIN_BINS, n_free + 1)
    return np.clip(np.asarray(n_events, np.int64) // events_per_bin, low, max(low, max_bins))


@dataclass(frozen=True)
class _Options:
    method: str
    n_free: int
    n_bins: int | None
    events_per_bin: int
    max_bins: int


def _equal_probability_edges(cdf: FittedCdf, total: NDArray, bins: NDArray) -> tuple[NDArray, NDArray]:
    """Interior bin edges (flat, GeV) of equal fitted probability per window and their window index.

    The fitted ``Lambda`` at the nodes is inverted linearly between the nodes (the expected count of each bin is
    then taken exactly at these edges, so the interpolation only moves the edges, not the expectation).
    """
    model = cdf.model
    k, G = cdf.s.shape
    rows = np.repeat(np.arange(k), np.maximum(bins - 1, 0))
    level = np.concatenate([np.arange(1, b) / b for b in bins]) if rows.size else np.zeros(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        u = np.clip(np.nan_to_num(cdf.cum / np.where(total > 0, total, 1.0)[:, None]), 0.0, 1.0)
    u = np.maximum.accumulate(u, axis=1)  # non-decreasing (rounding)
    key = (2.0 * np.arange(k)[:, None] + u).ravel()
    i = np.clip(np.searchsorted(key, 2.0 * rows + level, side="right") - 1, rows * G, rows * G + G - 2)
    u0, u1 = u.ravel()[i], u.ravel()[i + 1]
    s0, s1 = cdf.s.ravel()[i], cdf.s.ravel()[i + 1]
    t = np.where(u1 > u0, (level - u0) / np.where(u1 > u0, u1 - u0, 1.0), 0.0)
    s_edge = s0 + np.clip(t, 0.0, 1.0) * (s1 - s0)
    width = (model.hi - model.lo)[rows]
    x = model.lo[rows] + s_edge * width
    # a few secant steps on the exact Lambda (slope of the node cell): the edges become quantiles to rounding
    target = level * total[rows]
    slope = np.where(s1 > s0, (u1 - u0) * total[rows] / np.where(s1 > s0, (s1 - s0) * width, 1.0), 0.0)
    for _ in range(_EDGE_STEPS):
        if not rows.size:
            break
        with np.errstate(invalid="ignore", divide="ignore"):
            step = np.where(slope > 0, (target - cdf.at(x, rows)) / np.where(slope > 0, slope, 1.0), 0.0)
        x = np.clip(x + np.nan_to_num(step), model.lo[rows] + s0 * width, model.lo[rows] + s1 * width)
    return x, rows


def _statistics(model: FittedDensity, x_sorted: NDArray, opt: _Options, *,
                exclude: NDArray | None = None) -> tuple[NDArray, NDArray, NDArray, list[str], NDArray]:
    """Statistic, bins, candidates, reasons and ``clipped`` (k) of the model's windows on the sorted candidates (GeV).

    Binned: the bin edges are the quantiles of the fitted ``Lambda`` (at the nodes), the observed counts come
    from ``searchsorted`` on the sorted candidates and the expected counts from ``Lambda`` at the edges, so
    the fitted CDF is evaluated at ``bins - 1`` points per window rather than at every candidate.
    ``exclude`` (k, 2), GeV: bins overlapping ``[a, b]`` are left out (a sideband-only test of a blind
    window); the returned bin counts are then the bins used.
    """
    k = len(model.lo)
    start = np.searchsorted(x_sorted, model.lo, side="left")
    n = np.searchsorted(x_sorted, model.hi, side="right") - start
    cdf = FittedCdf.of(model)
    total = cdf.total
    finite = np.isfinite(total) & np.all(np.isfinite(model.beta), axis=1)
    for c, _, _ in model.terms:
        finite &= np.isfinite(c)
    reasons = ["" if f and t > 0 else "non-finite fitted parameters" if not f else f"no expected events in the window ({t:.3g})"
               for f, t in zip(finite, total)]
    bins = np.zeros(k, np.int64)
    if opt.method == "anderson-darling":
        first = np.concatenate([[0], np.cumsum(n)[:-1]]).astype(np.int64)
        rows = np.repeat(np.arange(k), n)
        x = x_sorted[np.arange(int(n.sum())) + np.repeat(start - first, n)]
        with np.errstate(invalid="ignore", divide="ignore"):
            u = np.clip(np.nan_to_num(cdf.at(x, rows) / np.where(total > 0, total, 1.0)[rows]), 0.0, 1.0)
        stat = _ad_flat(u, rows, n)
        for j in np.flatnonzero(n == 0):
            reasons[j] = reasons[j] or "no candidates in the window"
    else:
        bins = np.full(k, opt.n_bins, np.int64) if opt.n_bins else n_bins_rule(n, opt.n_free, events_per_bin=opt.events_per_bin, max_bins=opt.max_bins)
        b_max = int(bins.max(initial=1))
        edges, rows = _equal_probability_edges(cdf, total, bins)
        with np.errstate(invalid="ignore"):
            lam = cdf.at(edges, rows) if edges.size else np.zeros(0)
        lam = np.where(np.isfinite(lam), lam, np.nan)
        pos = np.searchsorted(x_sorted, edges, side="left")
        # boundaries per window: [lo, interior edges ..., hi] -> cumulative observed and expected counts
        slot = np.concatenate([np.arange(b - 1) for b in bins]).astype(np.int64) if rows.size else np.zeros(0, np.int64)
        cum_obs = np.zeros((k, b_max + 1))
        cum_exp = np.zeros((k, b_max + 1))
        cum_obs[rows, slot + 1] = pos - start[rows]
        cum_exp[rows, slot + 1] = lam
        last = np.arange(k)
        cum_obs[last, bins] = n
        cum_exp[last, bins] = total
        cum_exp = np.maximum.accumulate(cum_exp, axis=1)
        inside = np.arange(b_max)[None, :] < bins[:, None]
        counts = np.where(inside, np.diff(cum_obs, axis=1), 0.0)
        expected = np.where(inside, np.diff(cum_exp, axis=1), 0.0)
        if exclude is not None:  # drop the bins that reach into the excluded (signal) region
            x_edges = np.full((k, b_max + 1), np.nan)
            x_edges[:, 0] = model.lo
            x_edges[rows, slot + 1] = edges
            x_edges[np.arange(k), bins] = model.hi
            lo_b, hi_b = x_edges[:, :-1], x_edges[:, 1:]
            hit = inside & (hi_b >= exclude[:, :1]) & (lo_b <= exclude[:, 1:])
            counts, expected = np.where(hit, 0.0, counts), np.where(hit, 0.0, expected)
            bins = bins - hit.sum(axis=1)
        stat = baker_cousins(counts, expected)
        for j in np.flatnonzero(total < bins):
            reasons[j] = reasons[j] or f"fewer expected events ({total[j]:.3g}) than bins ({bins[j]})"
    bad = np.array([r != "" for r in reasons], bool) | ~np.isfinite(stat)
    for j in np.flatnonzero(bad):
        reasons[j] = reasons[j] or "non-finite test statistic"
    return np.where(bad, np.nan, stat), bins, n, reasons, cdf.clipped


def _check(method: str, toys: int | None) -> int:
    """The number of toys (checked; the default of ``method``)."""
    if method not in METHODS:
        raise FitInputError(f"method: expected one of {METHODS}, got {method!r}")
    n = (DEFAULT_TOYS if method == "anderson-darling" else 0) if toys is None else toys
    if int(n) != n or n < 0:
        raise FitInputError(f"toys: expected a non-negative integer, got {toys}")
    if method == "anderson-darling" and n == 0:
        raise FitInputError("toys: the Anderson-Darling p-value needs toys (>= 1): the fitted parameters come from the same data")
    return int(n)


def gof_pvalues(
    mgg: ArrayLike,
    shapes: Sequence[SignalShape] | ShapeArrays,
    windows: ArrayLike,
    nsig: ArrayLike,
    beta: ArrayLike,
    *,
    method: str = "binned",
    toys: int | None = None,
    seed: int | np.random.SeedSequence | None = 0,
    bkg_order: int | None = None,
    n_bins: int | None = None,
    events_per_bin: int = EVENTS_PER_BIN,
    max_bins: int = MAX_BINS,
    valid: ArrayLike | None = None,
) -> GofResult:
    """Goodness of fit of k fitted hypotheses (each: its window, signal yield and background coefficients).

    Parameters
    ----------
    mgg : array (n,)
        Candidate masses in GeV, any order.
    shapes : sequence of k SignalShape, or ShapeArrays
        The fixed signal shapes.
    windows : array (k, 2)
        Fit windows in GeV.
    nsig, beta : arrays (k,) and (k, bkg_order + 1)
        Fitted signal events and background coefficients (events/GeV of ``T_m(x')``), as in
        the ``HypothesisTable`` of ``fits.evaluate_hypotheses``.
    method : {"binned", "anderson-darling"}
    toys : int, optional
        Toys per hypothesis; 0: the asymptotic chi2 p-value (binned only). Default: 0 for
        ``binned``, ``DEFAULT_TOYS`` for ``anderson-darling``.
    seed : int or SeedSequence, optional
        Seed of the toys: the same seed and inputs give the same p-values.
    bkg_order : int, optional
        Background order of the fits and toy refits; default (and it must agree) ``beta.shape[1] - 1``.
    n_bins : int, optional
        Bins of every window instead of ``n_bins_rule``'s (``events_per_bin``, ``max_bins``).
    valid : array (k,) of bool, optional
        Hypotheses whose fit can be used; the others are flagged ("fit flagged").

    Returns
    -------
    GofResult
    """
    n_toys = _check(method, toys)
    x = sorted_masses(mgg)
    shape_list = _shape_list(shapes)
    k = len(shape_list)
    win = check_windows(windows, k)
    b = np.asarray(beta, float).reshape(k, -1)
    order = b.shape[1] - 1 if bkg_order is None else check_bkg_order(bkg_order)
    if b.shape[1] != order + 1:
        raise FitInputError(f"beta: expected {order + 1} background coefficients per hypothesis (bkg_order {order}), got {b.shape[1]}")
    s = np.broadcast_to(np.asarray(nsig, float), (k,)).copy()
    sh = ShapeArrays.from_shapes(shape_list)
    lo, hi = win[:, 0].copy(), win[:, 1].copy()
    model = FittedDensity(((s, np.arange(k), CdfTables.of(sh, lo, hi, window_nodes(sh, lo, hi))),), b, lo, hi)
    opt = _Options(method, order + 2, n_bins, events_per_bin, max_bins)
    if n_bins is not None and n_bins <= opt.n_free:
        raise FitInputError(f"n_bins: need more bins than free parameters ({opt.n_free}), got {n_bins}")
    stat, bins, n, reasons, clipped = _statistics(model, x, opt)
    if valid is not None:
        for j in np.flatnonzero(~np.asarray(valid, bool)):
            reasons[j] = "fit flagged"
    ok = np.array([r == "" for r in reasons], bool)
    ndf = np.where(bins > 0, bins - opt.n_free, 0)
    used = np.zeros(k, np.int64)
    if n_toys == 0:
        p = np.where(ok, chi2.sf(stat, np.maximum(ndf, 1)), np.nan)
    else:
        toy_stat, toy_ok = _toy_statistics(model, shape_list, np.flatnonzero(ok), n_toys, np.random.default_rng(seed), opt)
        used = toy_ok.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            p = np.sum(toy_ok & (toy_stat >= stat[:, None]), axis=1) / used
        few = ok & (used < max(1, n_toys // 2))
        for j in np.flatnonzero(few):
            reasons[j] = f"only {used[j]} of {n_toys} toy fits converged"
        ok &= ~few
        p = np.where(ok, p, np.nan)
    result = GofResult(method, "toys" if n_toys else "asymptotic", np.where(ok, stat, np.nan), p, ndf, bins, used, n, ok, tuple(reasons), clipped)
    logger.info("goodness of fit (%s, %s): %d hypotheses, %d not tested, %d with p < 0.01", method, result.calibration, k,
                int(np.sum(~ok)), len(result.flagged()))
    return result


def gof_from_table(mgg: ArrayLike, shapes: Sequence[SignalShape] | ShapeArrays, windows: ArrayLike, table: HypothesisTable, *,
                   method: str = "binned", toys: int | None = None, seed: int | np.random.SeedSequence | None = 0, n_bins: int | None = None,
                   events_per_bin: int = EVENTS_PER_BIN, max_bins: int = MAX_BINS) -> GofResult:
    """``gof_pvalues`` with the fitted numbers of a ``HypothesisTable`` (``fits.evaluate_hypotheses``).

    The background order is the table's; hypotheses the table flags (``converged`` False,
    also when only a limit failed) are flagged here too ("fit flagged: <its reason>"). Hypotheses
    fitted with extra peak templates (``extra_shapes``) are not described by ``nsig`` and ``beta``
    alone: test them with ``gof_pvalues(..., valid=...)`` set False there.
    """
    if table.beta is None:
        raise FitInputError("table: has no background coefficients (beta)")
    res = gof_pvalues(mgg, shapes, windows, table.nsig, table.beta, method=method, toys=toys, seed=seed, n_bins=n_bins,
                      events_per_bin=events_per_bin, max_bins=max_bins, valid=table.converged)
    reason = tuple(f"fit flagged: {table.reason[j]}" if r == "fit flagged" else r for j, r in enumerate(res.reason))
    return dataclasses.replace(res, reason=reason)


def _shape_list(shapes: Sequence[SignalShape] | ShapeArrays) -> list[SignalShape]:
    if isinstance(shapes, ShapeArrays):
        names = [f.name for f in dataclasses.fields(ShapeArrays)]
        return [SignalShape(**{nm: float(getattr(shapes, nm)[j]) for nm in names}) for j in range(len(shapes))]
    return check_shapes(shapes)


def _toy_statistics(model: FittedDensity, shapes: list[SignalShape], todo: NDArray, n_toys: int, rng: np.random.Generator,
                    opt: _Options) -> tuple[NDArray, NDArray]:
    """Statistics (k, n_toys) of toys drawn from and refitted with the model of the hypotheses ``todo``, and which are valid."""
    k = len(model.lo)
    stat = np.full((k, n_toys), np.nan)
    ok = np.zeros((k, n_toys), bool)
    if not len(todo):
        return stat, ok
    # consecutive hypotheses with at most ~_TOY_EVENTS toy events and _TOY_ROWS toys per refit call
    per_hypothesis = np.maximum(model.total(), _TOY_EVENTS / _TOY_ROWS) * n_toys
    for idx in chunk_hypotheses(todo, per_hypothesis, chunk_slots=_TOY_EVENTS):
        stat[idx], ok[idx] = _toy_group(model.take(idx), [shapes[j] for j in idx], n_toys, rng, opt)
    return stat, ok


def _toy_group(model: FittedDensity, shapes: list[SignalShape], T: int, rng: np.random.Generator, opt: _Options) -> tuple[NDArray, NDArray]:
    """Draw T toys per hypothesis of ``model``, refit them all in one ``evaluate_hypotheses`` call and test them."""
    k = len(model.lo)
    nodes = FittedCdf.of(model)
    g = model.lo[:, None] + nodes.s * (model.hi - model.lo)[:, None]
    cdf = np.maximum.accumulate(nodes.cum, axis=1)
    cdf = (cdf - cdf[:, :1]) / (cdf[:, -1:] - cdf[:, :1])
    counts = rng.poisson(np.repeat(nodes.total, T))  # toy r = j T + t
    R = k * T
    row = np.repeat(np.arange(R), counts)
    hyp = row // T
    # inverse CDF of every window at once: the CDFs offset by 2 j are one increasing table
    x = np.interp(2.0 * hyp + rng.random(len(row)), (2.0 * np.arange(k)[:, None] + cdf).ravel(), g.ravel())
    width = model.hi - model.lo
    spacing = 2.0 ** np.ceil(np.log2(1.25 * width.max()))
    offset = (np.arange(R) + 1.0) * spacing - np.repeat(model.lo, T)  # toy r's window starts at (r + 1) spacing
    toy_shapes, lo_t, hi_t = [], np.empty(R), np.empty(R)
    for r in range(R):  # the refit takes SignalShape objects, one per toy row
        s, d = shapes[r // T], offset[r]
        moved = dataclasses.replace(s, mu=s.mu + d, comb_edge=s.comb_edge + d)
        lo_r, hi_r = (r + 1.0) * spacing, model.hi[r // T] + d
        if moved.comb_fraction > 0:  # stay inside the combinatorial domain despite the rounding of the move
            half = moved.comb_domain * moved.sigma
            lo_r, hi_r = max(lo_r, moved.mu - half), min(hi_r, moved.mu + half)
        toy_shapes.append(moved)
        lo_t[r], hi_t[r] = lo_r, hi_r
    xs = np.sort(np.clip(x + offset[row], lo_t[row], hi_t[row]))
    win = np.stack([lo_t, hi_t], axis=1)
    table = evaluate_hypotheses(xs, toy_shapes, win, bkg_order=opt.n_free - 2, limits=False, expected=False)
    _, idx, tab = model.terms[0]  # the toys of hypothesis j share its signal table
    toy_model = FittedDensity(((table.nsig, np.repeat(idx, T), tab),), table.beta, lo_t, hi_t)
    stat, _, _, reasons, _ = _statistics(toy_model, xs, opt)
    ok = table.converged & np.array([r == "" for r in reasons], bool)
    return stat.reshape(k, T), ok.reshape(k, T)


def gof_combined(batch: CombinedBatch, *, n_bins: int | None = None, events_per_bin: int = EVENTS_PER_BIN, max_bins: int = MAX_BINS,
                 background_only: bool = False, sideband_n_sigma: float | None = None) -> GofResult:
    """Binned goodness of fit (asymptotic) of the k hypotheses of a fitted ``fits.combined.CombinedBatch``.

    Channel c: the Baker-Cousins chi2 of its candidates against ``N_c s_c(x; nu) + sum_m beta_cm T_m``
    at the unconditional minimum (the template interpolated at the fitted shape nuisances, as in
    ``fits.combined_rows``), bins by ``n_bins_rule`` with the channel's order. The sum over channels
    has ``ndf = sum_c B_c - 1 - sum_c (free background coefficients of c)``: mu is shared, and the
    constrained nuisances bring their own auxiliary measurements, so they do not count. Channels
    without candidates are left out.

    ``background_only``: test the fit at mu = 0 (``fit_.zero``: blind analyses, no fit with a free
    signal); ``sideband_n_sigma``: leave out the bins that reach into ``mu_peak +- n sigma`` of each
    channel (a sideband-only test that looks at no candidate near the hypothesis).
    """
    fit = batch.fit_
    if fit is None:
        raise FitInputError("batch: call batch.fit() before gof_combined")
    req = batch.req
    k, C, J = req.k, req.n_channels, req.n_shape
    state = fit.zero if background_only else fit.hat
    N = batch.yields(state.shared, np.arange(k))[0]
    nu = state.shared[:, batch.S - J:]
    free = batch.data.beta_free.reshape(k, C, batch.P).sum(axis=2)
    n_ev = batch.data.n_ev.reshape(k, C)
    stat_c, ndf_c, bins, clipped = np.zeros((k, C)), np.zeros((k, C), np.int64), np.zeros(k, np.int64), np.zeros(k, bool)
    reasons: list[list[str]] = [["the combined fit did not converge"] if not c else [] for c in fit.converged]
    for c in range(C):  # channels: each has its own candidates and shapes
        lo, hi, shapes = req.lo[:, c], req.hi[:, c], req.shapes[c]
        keep = N[:, c] * (1.0 - shapes.comb_fraction)
        parts = [(N[:, c], shapes)]
        for j in range(J):  # s(nu) = s0 + (1 - f) sum_j [nu_j (p+ - p-) / 2 + nu_j^2 ((p+ + p-) / 2 - p0)]
            v = nu[:, j]
            parts += [(keep * 0.5 * (v + v * v), req.peak(c, j, +1.0)), (keep * 0.5 * (v * v - v), req.peak(c, j, -1.0)), (-keep * v * v, req.peak(c))]
        s = window_nodes(shapes, lo, hi)
        model = FittedDensity(tuple((coef, np.arange(k), CdfTables.of(sh, lo, hi, s)) for coef, sh in parts), state.beta[:, c], lo, hi)
        sideband = None
        if sideband_n_sigma is not None:
            sideband = np.stack([shapes.mu - sideband_n_sigma * shapes.sigma, shapes.mu + sideband_n_sigma * shapes.sigma], axis=1)
        orders = np.asarray(req.orders)[:, c]
        for o in np.unique(orders):  # the bin rule depends on the channel's order
            idx = np.flatnonzero((orders == o) & (n_ev[:, c] > 0))
            st, b, _, why, cl = _statistics(model.take(idx), np.asarray(req.sorted_mgg[c], float),
                                            _Options("binned", int(o) + 2, n_bins, events_per_bin, max_bins),
                                            exclude=None if sideband is None else sideband[idx])
            stat_c[idx, c], ndf_c[idx, c] = st, b - free[idx, c]
            bins[idx] += b
            clipped[idx] |= cl
            for j, r in zip(idx, why):
                reasons[j] += [f"channel {req.channel_names[c]}: {r}"] if r else []
    ndf = ndf_c.sum(axis=1) - (0 if background_only else 1)  # mu is not fitted in a background-only test
    for j in np.flatnonzero(n_ev.sum(axis=1) == 0):
        reasons[j].append("no candidates in any channel's window")
    for j in np.flatnonzero(ndf < 1):
        reasons[j] += [] if reasons[j] else [f"no degrees of freedom left ({ndf[j]})"]
    ok = np.array([not r for r in reasons], bool)
    stat = np.where(ok, stat_c.sum(axis=1), np.nan)
    p = np.where(ok, chi2.sf(np.where(ok, stat, 0.0), np.maximum(ndf, 1)), np.nan)
    return GofResult("binned", "asymptotic", stat, p, np.where(ok, ndf, 0), bins, np.zeros(k, np.int64), n_ev.sum(axis=1).astype(np.int64), ok,
                     tuple("; ".join(r) for r in reasons), clipped, channel_statistic=np.where(ok[:, None], stat_c, np.nan), channel_ndf=ndf_c)

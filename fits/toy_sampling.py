"""Toy data sets as thinnings of one Poisson point process per toy: the same random numbers at every POI value.

For toy ``i`` of a hypothesis two layers of points are drawn once:

- a background layer: a Poisson process with a piecewise-constant intensity
  ``e(x)`` (events/GeV, the ``Envelope``) that lies above every background
  density the toys are drawn from (the data's conditional fits at the POI
  values, clipped at 0, plus a margin); each point carries a level
  ``v = y e(x)`` with ``y`` uniform in [0, 1);
- a signal layer: Poisson(``cap``) points from the signal shape on the window,
  each with a "time" ``t`` uniform in [0, ``cap``) (signal events).

The toy data set of the model ``mu s(x) + b(x)`` (``b = sum_m beta_m T_m(x')``)
is the background points with ``v < max(b(x), 0)`` and the signal points with
``t < mu`` (``fits._toy_kernels.thin_rows``). This is exact, not an
approximation: thinning a Poisson process keeps a Poisson process, here with
intensity ``max(b, 0) + mu s`` for every ``b <= e`` and ``mu <= cap``. One
draw serves every model, so the toys at neighbouring POI values differ by a
few events, the background-only toy and the signal + background toys of index
``i`` share their background, and CLs estimated from them is smooth in the POI.

Random numbers: every hypothesis has a key (the bits of its mass and window,
and an attempt number); toys come in blocks of ``BLOCK``, each drawn by a numpy
``Generator`` seeded with ``SeedSequence(seed, spawn_key=key + (block,))``.
The toys of a hypothesis therefore do not depend on the other hypotheses of a
call, on how they are chunked, on the number of workers or on the order in
which blocks are drawn.

The signal inverse CDF is the tabulated one of ``fits.toys`` (analytic CDF on
a grid refined around the peak and the wrong-pair edge, linear in between).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from signal_models.shapes import SignalShape, comb_integral, dscb_integral

from .densities import ShapeArrays, chebyshev_basis, kernel_shape_parameters

logger = logging.getLogger(__name__)

__all__ = [
    "BLOCK",
    "Envelope",
    "ToyLayers",
    "signal_cdf_table",
    "inverse_cdf_sampler",
    "hypothesis_key",
    "make_envelope",
    "draw_layers",
]

#: toys per random-number block (a toy's random numbers depend only on its block)
BLOCK = 20
#: cells of the piecewise-constant background envelope
ENVELOPE_CELLS = 256
#: points per cell at which the envelope is checked against a background density
_CHECK_POINTS = 9
_GRID = 4097


def inverse_cdf_sampler(x: NDArray, cdf: NDArray) -> Callable[[NDArray], NDArray]:
    """Linear interpolation of the inverse of a tabulated CDF (``cdf`` made monotone and scaled to [0, 1])."""
    cdf = np.maximum.accumulate(cdf)
    cdf = (cdf - cdf[0]) / (cdf[-1] - cdf[0])
    return lambda u: np.interp(u, cdf, x)


def signal_cdf_table(shape: SignalShape, window: tuple[float, float]) -> tuple[NDArray, NDArray]:
    """Grid (GeV) and CDF of the signal shape on the window (not yet made monotone or scaled).

    The grid is fine over the window, finer over +-12 widths around the peak
    and, when the wrong-pair edge reaches the window, over +-12 edge widths
    around it; the CDF is analytic at the grid points.
    """
    lo, hi = window
    grids = [np.linspace(lo, hi, _GRID), np.clip(shape.mu + shape.sigma * np.linspace(-12, 12, 2401), lo, hi)]
    edge_u, width_u = np.inf, 1.0
    if shape.comb_fraction > 0 and shape.edge_matters(hi):
        grids.append(np.clip(shape.comb_edge + shape.comb_edge_width * np.linspace(-12, 12, 2401), lo, hi))
        scale = shape.comb_domain * shape.sigma
        edge_u, width_u = (shape.comb_edge - shape.mu) / scale, shape.comb_edge_width / scale
    g = np.unique(np.concatenate(grids))
    t = (g - shape.mu) / shape.sigma
    t_lo = (lo - shape.mu) / shape.sigma
    peak = dscb_integral(np.full_like(t, t_lo), t, shape.alpha_l, shape.n_l, shape.alpha_r, shape.n_r)
    peak = peak / peak[-1]
    cdf = (1.0 - shape.comb_fraction) * peak
    if shape.comb_fraction > 0:
        s = shape.comb_domain * shape.sigma
        u = (g - shape.mu) / s
        comb = comb_integral(np.full_like(u, (lo - shape.mu) / s), u, shape.comb_slope, edge_u, width_u)
        if not comb[-1] > 0:
            raise ValueError(
                f"signal shape at mu = {shape.mu:.6g} GeV: the combinatorial density vanishes on the window "
                f"[{lo:.6g}, {hi:.6g}] GeV (edge at {shape.comb_edge:.6g} GeV) but comb_fraction = {shape.comb_fraction}"
            )
        cdf = cdf + shape.comb_fraction * comb / comb[-1]
    return g, cdf


def hypothesis_key(mass: float, lo: float, hi: float, attempt: int = 0) -> tuple[int, ...]:
    """Random-number key of a hypothesis: the bits of its mass and window (GeV) and the attempt number."""
    bits = np.array([mass, lo, hi], dtype=np.float64).view(np.uint64)
    return tuple(int(b) for b in bits) + (int(attempt),)


@dataclass(frozen=True)
class Envelope:
    """The point process of one hypothesis' toys.

    ``edges`` (cells + 1, GeV) and ``level`` (cells, events/GeV): the
    piecewise-constant background envelope; ``cdf`` its cumulative mass
    (scaled to 1) and ``mass`` its integral (events). ``cap``: the signal layer
    covers signal yields up to ``cap`` events. ``sig_x``, ``sig_cdf``: the
    signal inverse-CDF table (GeV).
    """

    lo: float
    hi: float
    edges: NDArray
    level: NDArray
    cdf: NDArray
    mass: float
    cap: float
    sig_x: NDArray
    sig_cdf: NDArray

    def covers(self, beta: ArrayLike) -> bool:
        """Whether the envelope lies above ``max(sum_m beta_m T_m(x'), 0)`` (events/GeV) over the window."""
        beta = np.asarray(beta, float)
        b = _cell_values(beta[None, :], len(self.level))[0]  # (cells, points)
        return bool(np.all(b.max(axis=1) <= self.level))


def _cell_values(betas: NDArray, cells: int) -> NDArray:
    """``max(b(x'), 0)`` of each background (rows of ``betas``) at ``_CHECK_POINTS`` points per cell: (m, cells, points)."""
    xp = np.linspace(-1.0, 1.0, cells + 1)
    f = np.linspace(0.0, 1.0, _CHECK_POINTS)
    pts = (xp[:-1, None] + f[None, :] * (xp[1:] - xp[:-1])[:, None]).reshape(-1)
    T = chebyshev_basis(pts, betas.shape[1] - 1)  # (P1, cells * points)
    vals = np.tensordot(betas, T, axes=1)
    return np.maximum(vals, 0.0).reshape(len(betas), cells, _CHECK_POINTS)


def make_envelope(shape: SignalShape, window: tuple[float, float], betas: ArrayLike, cap: float, *, margin: float = 0.05,
                  cells: int = ENVELOPE_CELLS) -> Envelope:
    """The envelope above the backgrounds ``betas`` (m, order + 1; events/GeV) and a signal layer up to ``cap`` events.

    Each cell's level is ``(1 + margin)`` times the largest of the (clipped)
    backgrounds at ``_CHECK_POINTS`` points of the cell, plus ``margin`` times
    1e-3 of the overall largest value (so a density that touches zero at a
    cell edge stays covered).
    """
    lo, hi = float(window[0]), float(window[1])
    b = _cell_values(np.atleast_2d(np.asarray(betas, float)), cells)  # (m, cells, points)
    top = b.max(axis=(0, 2))
    level = (1.0 + margin) * top + margin * 1e-3 * float(top.max(initial=0.0))
    edges = lo + (hi - lo) * 0.5 * (np.linspace(-1.0, 1.0, cells + 1) + 1.0)
    masses = level * np.diff(edges)
    cum = np.concatenate([[0.0], np.cumsum(masses)])
    mass = float(cum[-1])
    cdf = cum / mass if mass > 0 else np.linspace(0.0, 1.0, cells + 1)
    g, scdf = signal_cdf_table(shape, (lo, hi))
    scdf = np.maximum.accumulate(scdf)
    scdf = (scdf - scdf[0]) / (scdf[-1] - scdf[0])
    return Envelope(lo=lo, hi=hi, edges=edges, level=level, cdf=cdf, mass=mass, cap=float(cap), sig_x=g, sig_cdf=scdf)


@dataclass(frozen=True)
class ToyLayers:
    """The two layers of points of a set of toys (one row per toy; several hypotheses).

    ``hyp`` (T,): the row's hypothesis (position in the list of envelopes);
    ``toy`` (T,): the toy index within its hypothesis; ``z`` (T,): a standard
    normal per toy (the global observable of a yield constraint). Background
    layer: signal density ``sb`` (1/GeV), scaled mass ``xb`` and level ``vb``
    (events/GeV) of ``nb`` points per row, sorted in mass; signal layer: ``ss``,
    ``xs`` and times ``ts`` (signal events) of ``ns`` points per row, sorted in mass.
    """

    hyp: NDArray
    toy: NDArray
    z: NDArray
    sb: NDArray
    xb: NDArray
    vb: NDArray
    nb: NDArray
    ss: NDArray
    xs: NDArray
    ts: NDArray
    ns: NDArray

    def __len__(self) -> int:
        return len(self.hyp)


@dataclass(frozen=True)
class _Block:
    nb: NDArray
    ns: NDArray
    z: NDArray
    xb: NDArray
    vb: NDArray
    xs: NDArray
    ts: NDArray


def _draw_block(env: Envelope, seed: int, key: tuple[int, ...], block: int) -> _Block:
    """The BLOCK toys of one block: counts, global observables and both layers' points (GeV)."""
    from ._toy_kernels import envelope_positions

    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key + (block,)))
    nb = rng.poisson(env.mass, BLOCK)
    ns = rng.poisson(env.cap, BLOCK)
    z = rng.standard_normal(BLOCK)
    eb = rng.standard_exponential(int(nb.sum()) + BLOCK)
    yb = rng.random(int(nb.sum()))
    es = rng.standard_exponential(int(ns.sum()) + BLOCK)
    ts = rng.random(int(ns.sum())) * env.cap
    xb = np.empty(int(nb.sum()))
    vb = np.empty(int(nb.sum()))
    envelope_positions(eb, nb.astype(np.int64), env.cdf, env.edges, yb, env.level, xb, vb)
    xs = np.empty(int(ns.sum()))
    t_out = np.empty(int(ns.sum()))
    envelope_positions(es, ns.astype(np.int64), env.sig_cdf, env.sig_x, ts, np.ones(len(env.sig_x) - 1), xs, t_out)
    return _Block(nb=nb, ns=ns, z=z, xb=xb, vb=vb, xs=xs, ts=t_out)


def _rows_of(block: _Block, keep: NDArray) -> tuple[list[NDArray], ...]:
    """Per-toy arrays of the toys ``keep`` (positions within the block)."""
    ob = np.concatenate([[0], np.cumsum(block.nb)])
    os_ = np.concatenate([[0], np.cumsum(block.ns)])
    xb = [block.xb[ob[i]:ob[i + 1]] for i in keep]
    vb = [block.vb[ob[i]:ob[i + 1]] for i in keep]
    xs = [block.xs[os_[i]:os_[i + 1]] for i in keep]
    ts = [block.ts[os_[i]:os_[i + 1]] for i in keep]
    return xb, vb, xs, ts


def _padded_values(x_rows: list[NDArray], par: NDArray, order: int) -> tuple[NDArray, NDArray, NDArray]:
    """Signal density and scaled mass of the points of each row (``fits._kernels.event_values``), padded."""
    from ._kernels import event_values

    counts = np.array([len(r) for r in x_rows], dtype=np.int64)
    n_max = max(int(counts.max(initial=0)), 1)
    k = len(x_rows)
    s = np.empty((k, n_max))
    xp = np.empty((k, n_max))
    cheb = np.empty((k, order + 1))
    x = np.concatenate(x_rows) if k else np.zeros(0)
    start = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    event_values(np.ascontiguousarray(x, dtype=float), start, counts, np.ascontiguousarray(par), int(order), s, xp, cheb)
    return s, xp, counts


def _padded(rows: list[NDArray], width: int) -> NDArray:
    out = np.zeros((len(rows), max(width, 1)))
    for j, r in enumerate(rows):  # per toy (not per event)
        out[j, : len(r)] = r
    return out


def draw_layers(envelopes: Sequence[Envelope], keys: Sequence[tuple[int, ...]], shapes: ShapeArrays, order: int, toy_start: int, toy_stop: int, *,
                seed: int) -> ToyLayers:
    """The layers of toys ``toy_start .. toy_stop - 1`` of every hypothesis (rows: hypothesis-major).

    ``envelopes``, ``keys`` and ``shapes`` (k hypotheses) as from
    ``make_envelope`` and ``hypothesis_key``; ``order`` the background order
    (for the kernel's Chebyshev sums, unused here).
    """
    k = len(envelopes)
    lo = np.array([e.lo for e in envelopes])
    hi = np.array([e.hi for e in envelopes])
    par_h = kernel_shape_parameters(shapes, lo, hi) if k else np.zeros((0, 16))
    hyp, toy, z = [], [], []
    xb_rows: list[NDArray] = []
    vb_rows: list[NDArray] = []
    xs_rows: list[NDArray] = []
    ts_rows: list[NDArray] = []
    for h in range(k):
        for block in range(toy_start // BLOCK, (toy_stop - 1) // BLOCK + 1):
            first = block * BLOCK
            keep = np.arange(max(toy_start - first, 0), min(toy_stop - first, BLOCK))
            b = _draw_block(envelopes[h], seed, keys[h], block)
            xb, vb, xs, ts = _rows_of(b, keep)
            xb_rows += xb
            vb_rows += vb
            xs_rows += xs
            ts_rows += ts
            hyp.append(np.full(len(keep), h))
            toy.append(first + keep)
            z.append(b.z[keep])
    hyp_a = np.concatenate(hyp).astype(np.int64) if hyp else np.zeros(0, np.int64)
    par = par_h[hyp_a]
    sb, xpb, nb = _padded_values(xb_rows, par, order)
    ss, xps, ns = _padded_values(xs_rows, par, order)
    vb = _padded(vb_rows, sb.shape[1])
    ts = _padded(ts_rows, ss.shape[1])
    return ToyLayers(hyp=hyp_a, toy=np.concatenate(toy).astype(np.int64) if toy else np.zeros(0, np.int64), z=np.concatenate(z) if z else np.zeros(0),
                     sb=sb, xb=xpb, vb=vb, nb=nb, ss=ss, xs=xps, ts=ts, ns=ns)

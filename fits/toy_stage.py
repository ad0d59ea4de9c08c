"""One stage of the toy engine: toys ``n .. T`` of many (hypothesis, POI value) pairs, drawn, thinned and fitted in batches.

Pairs are grouped by their first toy; per group the two layers of every
toy are drawn once (``fits.toy_sampling``), thinned to the background-only
toys (whose background-only and unconditional fits are kept per hypothesis)
and, per POI value, to the signal + background toys; all rows of all
hypotheses and POI values of a batch go through the same compiled fits
(``fits.toy_statistic``), batches bounded by ``ToyOptions.slots``. Toys whose
compact fits fail, or with fewer events than parameters + 2, are fitted again
with the positivity guard (all fits of that toy at that POI value).
"""

from __future__ import annotations

import logging

import numpy as np
from numpy.typing import NDArray

from .densities import ShapeArrays
from .design import Design
from .toy_problem import ToyOptions
from .toy_sampling import ToyLayers, draw_layers
from .toy_sets import ToySets, thin_sets
from .toy_state import HypothesisState, PoiState, state_shapes, state_windows
from .toy_statistic import BaseFits, base_fits, conditional_fits, q_from, q_tilde_fits

logger = logging.getLogger(__name__)

__all__ = ["run_stage"]


def run_stage(units: list[tuple[HypothesisState, PoiState]], T: int, *, seed: int, options: ToyOptions) -> None:
    """Toys ``q.n .. T`` of every (hypothesis, POI value) in ``units``: grouped by their first toy, one draw per group."""
    by_start: dict[int, list[tuple[HypothesisState, PoiState]]] = {}
    for s, q in units:
        by_start.setdefault(q.n, []).append((s, q))
    for a in sorted(by_start):
        _execute_range(by_start[a], a, T, seed=seed, options=options)


def _execute_range(units: list[tuple[HypothesisState, PoiState]], a: int, b: int, *, seed: int, options: ToyOptions) -> None:
    units = [(s, q) for s, q in units if s.active]
    if not units:
        return
    states: list[HypothesisState] = []
    for s, _ in units:
        if s not in states:
            states.append(s)
    order = states[0].problem.order
    guarded = states[0].config.guarded
    sh = state_shapes(states)
    lo, hi = state_windows(states)
    layers = draw_layers([s.env for s in states], [s.key for s in states], sh, order, a, b, seed=seed)
    pos = {id(s): h for h, s in enumerate(states)}
    rows_of = [np.flatnonzero(layers.hyp == h) for h in range(len(states))]
    beta0 = np.array([s.beta0 for s in states])
    bsets = thin_sets(layers, np.arange(len(layers)), np.zeros(len(layers)), beta0[layers.hyp], sh, lo, hi)
    bdesign = bsets.design(order, guarded=guarded)
    base_b = _b_base_fits(states, rows_of, bdesign, beta0[layers.hyp], a, b)
    # (hypothesis, POI) pairs in batches of bounded size, one fitting mode per batch
    width = bsets.s.shape[1] + int(layers.ns.max(initial=0))
    per_batch = max(options.slots // max(width, 1), 1)
    for syst in (False, True):
        pairs = [(s, q) for s, q in units if (s.problem.syst_a > 0) == syst]
        batch: list[tuple[HypothesisState, PoiState]] = []
        n_rows = 0
        for s, q in pairs + [(None, None)]:
            size = len(rows_of[pos[id(s)]]) if s is not None else 0
            if batch and (s is None or n_rows + size > per_batch):
                _fit_pairs(batch, [rows_of[pos[id(t)]] for t, _ in batch], layers, bsets, bdesign, base_b, sh, lo, hi, guarded=guarded, syst=syst)
                batch, n_rows = [], 0
            if s is not None:
                batch.append((s, q))
                n_rows += size


def _b_base_fits(states: list[HypothesisState], rows_of: list[NDArray], bdesign: Design, beta0_rows: NDArray, a: int, b: int) -> BaseFits:
    """Base fits of the background-only toys ``a .. b-1`` (kept per hypothesis: a POI value added later reuses them)."""
    need = [h for h, s in enumerate(states) if s.cache_n < b]
    if need:
        rows = np.concatenate([rows_of[h] for h in need])
        bf = base_fits(bdesign, beta0_rows[rows], rows=rows)
        ofs = np.concatenate([[0], np.cumsum([len(rows_of[h]) for h in need])])
        for i, h in enumerate(need):
            s = states[h]
            part = bf.take(np.arange(ofs[i], ofs[i + 1]))
            s.n_fits += len(rows_of[h])
            s.cache = part if s.cache is None or a == 0 else BaseFits.concatenate([s.cache.take(np.arange(a)), part])
            s.cache_n = b
    return BaseFits.concatenate([s.cache.take(np.arange(a, b)) for s in states])


def _count_fits(s: HypothesisState, converged: NDArray) -> None:
    """Count toy fits that did not converge (after the fallback with the positivity guard)."""
    s.n_rows += len(converged)
    s.n_bad += int(np.sum(~converged))


def _fit_pairs(batch: list[tuple[HypothesisState, PoiState]], rows: list[NDArray], layers: ToyLayers, bsets: ToySets, bdesign: Design, base_b: BaseFits, sh: ShapeArrays, lo: NDArray,
               hi: NDArray, *, guarded: bool, syst: bool) -> None:
    """Background-only toys at the POI values of ``batch`` and their signal + background toys: ``q~`` and log likelihood ratios.

    Toys whose compact fits fail, or with fewer events than parameters + 2,
    are fitted again with the positivity guard (all fits of that toy at that
    POI value, so that its ``q~`` comes from one likelihood).
    """
    order = batch[0][0].problem.order
    P = order + 2
    idx = np.concatenate(rows)
    counts = [len(r) for r in rows]
    per = lambda f: np.concatenate([np.full(n, f(s, q)) for (s, q), n in zip(batch, counts)])  # noqa: E731 - one value per pair, repeated per toy
    x = per(lambda s, q: q.x)
    mu_gen = per(lambda s, q: q.mu_gen)
    u_gen = per(lambda s, q: q.u_gen)
    dlam = per(lambda s, q: q.lam_gen - s.lam0)
    beta_gen = np.concatenate([np.tile(q.beta_gen, (n, 1)) for (s, q), n in zip(batch, counts)])
    beta0 = np.concatenate([np.tile(s.beta0, (n, 1)) for (s, q), n in zip(batch, counts)])
    z = layers.z[idx]
    kind = batch[0][0].problem.syst_kind
    offsets = np.cumsum([0] + counts[:-1])

    def c_of(g: NDArray) -> tuple[NDArray, NDArray | None]:
        parts = [s.signal_c(x[o:o + n], g[o:o + n]) for (s, _), o, n in zip(batch, offsets, counts)]
        return np.concatenate([p[0] for p in parts]), (np.concatenate([p[1] for p in parts]) if syst else None)

    # background-only toys at the tested POI values
    c_b, a_b = c_of(z)
    cond_b = conditional_fits(bdesign, c_b, beta_gen, rows=idx, syst_a=a_b, syst_kind=kind,
                              predict_from=None if syst else (base_b.theta_zero[idx], base_b.hess_zero[idx]))
    q_b = q_from(cond_b, base_b.nll_ref[idx])
    conv_b = cond_b.converged & base_b.converged[idx]
    glob_b = 0.5 * (z * z - (z - u_gen) ** 2)
    l_b = bsets.log_ratio(mu_gen, beta_gen, np.zeros(len(idx)), beta0, rows=idx) - dlam + glob_b
    # signal + background toys of the same toy indices, started from the background-only toy's
    # fitted background moved by the generators' difference (the two toys share their background points)
    sets = thin_sets(layers, idx, mu_gen, beta_gen, sh, lo, hi)
    g_sb = u_gen + z
    c_sb, a_sb = c_of(g_sb)
    q_sb, conv_sb, _ = q_tilde_fits(sets.design(order, guarded=guarded), c_sb, base_b.theta_zero[idx, 1:] + (beta_gen - beta0), syst_a=a_sb,
                                    syst_kind=kind)
    glob_sb = 0.5 * (g_sb * g_sb - (g_sb - u_gen) ** 2)
    l_sb = sets.log_ratio(mu_gen, beta_gen, np.zeros(len(idx)), beta0) - dlam + glob_sb
    if not guarded:
        for q, conv, few, tsets, c, a in ((q_b, conv_b, bsets.n[idx] < P + 2, bsets, c_b, a_b), (q_sb, conv_sb, sets.n < P + 2, sets, c_sb, a_sb)):
            redo = np.flatnonzero(~conv | few)
            if len(redo):
                src = idx[redo] if tsets is bsets else redo
                q[redo], conv[redo], _ = q_tilde_fits(tsets.take(src).design(order, guarded=True), c[redo], beta_gen[redo],
                                                      syst_a=None if a is None else a[redo], syst_kind=kind)
    o = 0
    for (s, q), n in zip(batch, counts):
        sl = slice(o, o + n)
        o += n
        s.n_fits += 2 * n
        _count_fits(s, conv_b[sl] & conv_sb[sl])
        q.add(q_b[sl], l_b[sl], q_sb[sl], l_sb[sl])

"""The batched toy CLs engine: stages of toys for many hypotheses at once (driven by ``fits.toy_limits``).

Per hypothesis (``ToyProblem``):

1. Setup: background-only and unconditional fits of the data, an initial grid
   of POI values around the asymptotic limits (observed and band), conditional
   data fits there and up to the signal cap, and from them the envelope of the
   toys' point process (``fits.toy_sampling``). Each POI value keeps the data's
   ``q~`` and its generator: the conditional fit's yield, background and
   nuisance (the profile construction).
2. Stages: toys ``n .. T`` (T = 100, 250, 500, ..., ``n_toys``) at every POI
   value not yet decided. Toy ``i`` is drawn once (both layers) and thinned to
   the background-only toy and to the signal + background toy of each POI value;
   all toys of all hypotheses and POI values of a stage are rows of the same
   batched fits (``fits.toy_statistic``). After each stage the CLs curves
   (``fits.toy_cls``) are checked: a curve that does not cross ``1 - cl``
   inside the POI values gets a POI value below or above (near the
   extrapolated crossing) and its toys; a POI value whose six CLs values all lie more than ``decide_z``
   bootstrap errors from ``1 - cl`` is decided and gets no more toys.
3. Result: crossings and their bootstrap errors.

Every data set, the data and each toy, gets ``q~`` from one statistic: its
compact fits (compiled kernels) where they converge with backgrounds that stay
non-negative over the window, otherwise all its fits at that POI value with
the positivity guard of sparse windows (``fits.design.build_guarded_design``;
a likelihood that only sees the events may have no minimum at all); toys
with fewer events than parameters + 2 always take the guard. Windows with
fewer than ``guard_below`` events use the guard for every fit. A hypothesis
restarts from scratch with another configuration (and the next attempt's
random numbers) when a generator leaves the envelope (then with that
background in it) or a yield exceeds the signal cap (then with a larger cap).
Hypotheses with the guard for every fit run one at a time (their numpy fits
pad rows to the batch's longest), the others together; every number of a
hypothesis depends only on its own inputs, seed and key.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from .densities import ShapeArrays
from .design import build_design
from .newton import start_values
from .toy_cls import N_CURVES, bootstrap_weights, cls_replicates, crossings
from .toy_problem import HypothesisToys, ToyOptions, ToyProblem
from .toy_sampling import draw_layers, make_envelope
from .toy_sets import ToySets, clipped_background_integral, data_sets, thin_sets
from .toy_stage import run_stage
from .toy_state import HypothesisState, PoiState, RunConfig, state_shapes, state_windows
from .toy_statistic import BaseFits, base_fits, conditional_fits, q_from, q_tilde_fits

logger = logging.getLogger(__name__)

__all__ = ["run_toys", "pilot_spread"]


def run_toys(problems: Sequence[ToyProblem], *, n_toys: int, seed: int, options: ToyOptions) -> list[HypothesisToys]:
    """Toy CLs limits of ``problems`` (one batch of hypotheses; see the module docstring)."""
    states = [HypothesisState(p, RunConfig(0, len(p.events) < options.guard_below, options.cap_factor)) for p in problems]
    done: dict[int, HypothesisToys] = {}
    todo = states
    while todo:
        groups = [[s for s in todo if not s.config.guarded]] + [[s] for s in todo if s.config.guarded]
        for g in groups:
            if g:
                _run_group(g, n_toys=n_toys, seed=seed, options=options)
        nxt = []
        for s in todo:
            if s.restart is not None and s.restart.attempt < options.max_attempts:
                nxt.append(HypothesisState(s.problem, s.restart))
            elif s.result is not None:
                done[s.problem.index] = s.result
            else:
                why = s.failed or f"toy limits: still failing after {options.max_attempts} attempts"
                done[s.problem.index] = HypothesisToys.failed(why, n_fits=s.n_fits, guarded=s.config.guarded)
        todo = nxt
    return [done[p.index] for p in problems]


# ---------------------------------------------------------------------------
# setup: data fits, POI grid, envelope
# ---------------------------------------------------------------------------
def _setup(states: list[HypothesisState], options: ToyOptions) -> None:
    order = states[0].problem.order
    sh = state_shapes(states)
    lo, hi = state_windows(states)
    counts = np.array([len(s.problem.events) for s in states], dtype=np.int64)
    stop = np.cumsum(counts)
    x = np.concatenate([s.problem.events for s in states]).astype(float)
    d = build_design(x, sh, lo, hi, order, index_range=(stop - counts, stop))
    data = data_sets(d.s, d.xp, counts, lo, hi, sh)
    guarded = states[0].config.guarded
    start = start_values(d)[:, 1:]
    bf = base_fits(data.design(order, guarded=guarded), start, free_all=True)
    redo = np.flatnonzero(~bf.converged) if not guarded else np.zeros(0, int)
    if len(redo):
        # data whose compact fits fail (a background below zero in the window): their q~ comes from the guarded fits,
        # as for the toys (fits.toy_stage)
        g = base_fits(data.take(redo).design(order, guarded=True), start[redo], free_all=True)
        bf = BaseFits.concatenate([bf.take(np.flatnonzero(bf.converged)), g]).take(np.argsort(np.concatenate([np.flatnonzero(bf.converged), redo]),
                                                                                            kind="stable"))
    for j, s in enumerate(states):
        s.data = data.take(np.array([j]))
        s.data_base = bf.take(np.array([j]))
        s.data_guarded = guarded or j in set(redo.tolist())
        s.beta0 = bf.theta_zero[j, 1:].copy()
        if not bf.converged[j]:
            s.fail("toy limits: the fits of the data do not converge")
    live = [s for s in states if s.active]
    if not live:
        return
    lams = clipped_background_integral(np.array([s.beta0 for s in live]), *state_windows(live))
    grids, env_x = [], []
    for s, lam in zip(live, lams):
        s.lam0 = float(lam)
        grid = _initial_grid(s, options)
        kappa = (1.0 + max(s.problem.syst_a, 0.0)) ** 3 if s.problem.syst_a > 0 else 1.0
        s.cap = float(s.config.cap_factor * max(grid[-1], _start_top(s)) * s.problem.scale * kappa)
        grids.append(grid)
        env_x.append(np.linspace(0.0, s.cap / (s.problem.scale * kappa), 9)[1:])
    conds = _data_conditionals(live, [np.concatenate([g, e]) for g, e in zip(grids, env_x)])
    for s, g, c in zip(live, grids, conds):
        betas = np.vstack([s.beta0[None, :], c.beta, np.array(s.config.extra_betas).reshape(-1, len(s.beta0))])
        s.env = make_envelope(s.problem.shape, s.problem.window, betas, s.cap, margin=options.envelope_margin)
        _new_pois(s, g, _take_cond(c, np.arange(len(g))))


def _start_top(s: HypothesisState) -> float:
    """1.5 times the largest asymptotic limit (POI units; 0 without one)."""
    st = np.asarray(s.problem.start, float)
    good = st[np.isfinite(st) & (st > 0)]
    return 1.5 * float(good.max()) if len(good) else 0.0


def _initial_grid(s: HypothesisState, options: ToyOptions) -> NDArray:
    if s.problem.grid is not None:
        g = np.unique(np.asarray(s.problem.grid, float))
        g = g[np.isfinite(g) & (g > 0)]
        if len(g):
            return g
    st = np.asarray(s.problem.start, float)
    good = st[np.isfinite(st) & (st > 0)]
    if len(good) == 0:
        guess = max(np.sqrt(max(len(s.problem.events), 1)), 3.0) / s.problem.scale
        good = np.array([guess, 2.0 * guess])
    return np.geomspace(0.5 * good.min(), 1.5 * good.max(), options.grid_points)


@dataclass(frozen=True)
class _DataCond:
    """Conditional fits of one hypothesis' data at several POI values (arrays over them)."""

    x: NDArray
    q: NDArray
    mu: NDArray
    u: NDArray
    beta: NDArray
    converged: NDArray


def _take_cond(c: _DataCond, idx: NDArray) -> _DataCond:
    return _DataCond(*(getattr(c, f)[idx] for f in _DataCond.__dataclass_fields__))


def _data_conditionals(states: Sequence[HypothesisState], xs: Sequence[NDArray]) -> list[_DataCond]:
    """Conditional fits and ``q~`` of each state's data at its POI values ``xs`` (one batch per fitting mode).

    Data sets whose base fits needed the positivity guard, or whose compact
    conditional fit fails, get all their fits at that value with the guard.
    """
    out: list[_DataCond | None] = [None] * len(states)
    for syst in (False, True):
        pick = [j for j, s in enumerate(states) if (s.problem.syst_a > 0) == syst and len(xs[j])]
        if not pick:
            continue
        order = states[pick[0]].problem.order
        guarded = states[pick[0]].config.guarded
        kind = states[pick[0]].problem.syst_kind
        sets = [states[j].data for j in pick]
        rep = np.concatenate([np.full(len(xs[j]), i) for i, j in enumerate(pick)])
        data = ToySets(*(np.concatenate([getattr(t, f) for t in sets]) for f in ("s", "xp", "n", "lo", "hi")),
                       shapes=ShapeArrays.from_shapes([states[j].problem.shape for j in pick])).take(rep)
        base = BaseFits.concatenate([states[j].data_base for j in pick]).take(rep)
        data_guarded = np.array([states[j].data_guarded for j in pick])[rep]
        x = np.concatenate([xs[j] for j in pick])
        cs, cas = zip(*(states[j].signal_c(xs[j], np.zeros(len(xs[j]))) for j in pick))
        c = np.concatenate(cs)
        a = None if not syst else np.concatenate(cas)
        cond = conditional_fits(data.design(order, guarded=guarded), c, base.theta_zero[:, 1:], syst_a=a, syst_kind=kind,
                                predict_from=None if syst else (base.theta_zero, base.hess_zero))
        q = q_from(cond, base.nll_ref)
        conv = cond.converged.copy()
        mu, u, beta = cond.mu.copy(), cond.u.copy(), cond.beta.copy()
        redo = np.flatnonzero((data_guarded | ~conv) & (not guarded))
        if len(redo):
            q[redo], conv[redo], cg = q_tilde_fits(data.take(redo).design(order, guarded=True), c[redo], base.theta_zero[redo, 1:],
                                                   syst_a=None if a is None else a[redo], syst_kind=kind)
            mu[redo], u[redo], beta[redo] = cg.mu, cg.u, cg.beta
        ofs = np.concatenate([[0], np.cumsum([len(xs[j]) for j in pick])])
        for i, j in enumerate(pick):
            sl = slice(ofs[i], ofs[i + 1])
            out[j] = _DataCond(x=x[sl], q=q[sl], mu=mu[sl], u=u[sl], beta=beta[sl], converged=conv[sl])
            states[j].n_fits += ofs[i + 1] - ofs[i]
    return [o if o is not None else _DataCond(np.zeros(0), np.zeros(0), np.zeros(0), np.zeros(0), np.zeros((0, 1)), np.zeros(0, bool)) for o in out]


def _new_pois(s: HypothesisState, xs: NDArray, c: _DataCond) -> None:
    """Add POI values with their data fits, or ask for a restart when a generator does not fit the envelope or cap."""
    if not np.all(c.converged):
        s.fail("toy limits: a conditional fit of the data does not converge")
        return
    if np.any(c.mu > s.cap):
        s.ask_restart("signal cap", cap_factor=4.0 * s.config.cap_factor)
        return
    assert s.env is not None
    for j in range(len(xs)):
        if not s.env.covers(c.beta[j]):
            s.ask_restart("envelope", extra_betas=s.config.extra_betas + tuple(tuple(float(b) for b in c.beta[i]) for i in range(len(xs))))
            return
    lam = c.mu + clipped_background_integral(c.beta, np.full(len(xs), s.problem.window[0]), np.full(len(xs), s.problem.window[1]))
    for j in range(len(xs)):
        s.pois.append(PoiState(float(xs[j]), float(c.q[j]), float(c.mu[j]), c.beta[j].copy(), float(c.u[j]), float(lam[j])))


# ---------------------------------------------------------------------------
# stages
# ---------------------------------------------------------------------------
def _run_group(states: list[HypothesisState], *, n_toys: int, seed: int, options: ToyOptions) -> None:
    _setup(states, options)
    targets = sorted({min(int(t), n_toys) for t in options.stages if t > 0} | {n_toys})
    for T in targets:
        for _ in range(options.max_extensions + 1):
            units = [(s, q) for s in states if s.active for q in s.pois if not q.decided and q.n < T]
            if not units:
                break
            run_stage(units, T, seed=seed, options=options)
            extended = [s for s in states if s.active and _extend(s)]
            if not extended:
                break
        for s in states:
            if s.active:
                _decide(s, seed=seed, options=options)
    for s in states:
        if s.active:
            s.result = _finish(s, seed=seed, options=options)


def _extend(s: HypothesisState) -> bool:
    """Add a POI value below or above where a CLs curve does not cross ``1 - cl`` inside them.

    The new value is near the crossing extrapolated from the end points
    (between x 0.25 and x 0.67 of the lowest value, or x 1.5 and x 4 of the highest).
    """
    xs, cls = s.curves(np.ones((1, max(q.n for q in s.pois))))
    if len(xs) == 0:
        return False
    x, where = crossings(xs, cls, s.alpha)
    new = []
    if np.any(where[0] < 0):
        new.append(float(np.clip(0.8 * x[0][where[0] < 0].min(), 0.25 * xs[0], 0.67 * xs[0])))
    if np.any(where[0] > 0):
        new.append(float(np.clip(1.2 * x[0][where[0] > 0].max(), 1.5 * xs[-1], 4.0 * xs[-1])))
    if not new:
        return False
    xn = np.array(new)
    _new_pois(s, xn, _data_conditionals([s], [xn])[0])
    return s.active


def _decide(s: HypothesisState, *, seed: int, options: ToyOptions) -> None:
    v = bootstrap_weights(seed, s.key, options.bootstrap, max(q.n for q in s.pois))
    for q in s.pois:
        if q.decided:
            continue
        c = cls_replicates(q.toys(), v)
        sd = c[1:].std(axis=0, ddof=1) if len(c) > 2 else np.zeros(N_CURVES)
        q.decided = bool(np.all(np.abs(c[0] - s.alpha) > options.decide_z * sd))


def _finish(s: HypothesisState, *, seed: int, options: ToyOptions) -> HypothesisToys:
    n_max = max(q.n for q in s.pois)
    v = bootstrap_weights(seed, s.key, options.bootstrap, n_max)
    xs, cls = s.curves(v)
    x, where = crossings(xs, cls, s.alpha)
    err = x[1:].std(axis=0, ddof=1) if len(x) > 2 else np.zeros(N_CURVES)
    reason = ""
    if np.any(where[0] != 0):
        side = "below" if np.any(where[0] < 0) else "above"
        reason = f"toy CLs crosses 1 - cl {side} the POI values tested ({xs[0]:.4g} .. {xs[-1]:.4g}); extrapolated"
    elif s.n_bad > options.max_failed_fraction * max(s.n_rows, 1):
        reason = f"{s.n_bad} of {s.n_rows} toy fits did not converge"
    ps = s.sorted_pois()
    return HypothesisToys(
        observed=float(x[0, 0]), observed_err=float(err[0]), expected=x[0, 1:].copy(), expected_err=err[1:].copy(), n_toys=n_max,
        converged=reason == "", reason=reason, poi=xs, cls=cls[0], cls_err=cls[1:].std(axis=0, ddof=1) if len(cls) > 2 else np.zeros_like(cls[0]),
        n_per_poi=np.array([q.n for q in ps]), n_fits=s.n_fits, guarded=s.config.guarded,
    )


def pilot_spread(problems: Sequence[ToyProblem], *, n_toys: int, seed: int, options: ToyOptions) -> tuple[NDArray, NDArray]:
    """Standard deviation (POI units) of the unconditional signal yield over ``n_toys`` background-only toys per problem, and a flag (k,).

    The toys are the first ``n_toys`` background-only toys of the toy limits
    (same keys and seed); hypotheses whose setup or fits fail get ``nan`` and False.
    """
    std = np.full(len(problems), np.nan)
    ok = np.zeros(len(problems), bool)
    for guarded in (False, True):
        sel = [j for j, p in enumerate(problems) if (len(p.events) < options.guard_below) == guarded]
        groups = [sel] if not guarded else [[j] for j in sel]
        for g in groups:
            if not g:
                continue
            states = [HypothesisState(problems[j], RunConfig(0, guarded, options.cap_factor)) for j in g]
            _setup(states, options)
            live = [(j, s) for j, s in zip(g, states) if s.active]
            if not live:
                continue
            sts = [s for _, s in live]
            layers = draw_layers([s.env for s in sts], [s.key for s in sts], state_shapes(sts), sts[0].problem.order, 0, n_toys, seed=seed)
            beta0 = np.array([s.beta0 for s in sts])
            bsets = thin_sets(layers, np.arange(len(layers)), np.zeros(len(layers)), beta0[layers.hyp], state_shapes(sts), *state_windows(sts))
            bf = base_fits(bsets.design(sts[0].problem.order, guarded=guarded), beta0[layers.hyp], free_all=True)
            for h, (j, s) in enumerate(live):
                r = layers.hyp == h
                good = bf.converged[r]
                if good.mean() >= 1.0 - options.max_failed_fraction and good.sum() > 2:
                    std[j] = float(np.std(bf.mu_hat[r][good], ddof=1)) / s.problem.scale
                    ok[j] = True
    return std, ok

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
   inside the POI values gets a POI value below (x 0.5) or above (x 1.5) and
   its toys; a POI value whose six CLs values all lie more than ``decide_z``
   bootstrap errors from ``1 - cl`` is decided and gets no more toys.
3. Result: crossings and their bootstrap errors.

A toy whose compact fits fail (a likelihood without a minimum in a sparse
toy) or with fewer events than parameters + 2 is fitted again with the
positivity guard of sparse windows (``fits.design.build_guarded_design``),
all its fits at that POI value. A hypothesis restarts from scratch with another
configuration (and the next attempt's random numbers) when the compact fits of
its data fail (then everything with the guard, as for windows with fewer than
``guard_below`` events), when a generator leaves the envelope (then with that
background in it) or a yield exceeds the signal cap (then with a larger cap).
Hypotheses with the guard run one at a time (their numpy fits pad rows to the
batch's longest), the others together; every number of a hypothesis depends
only on its own inputs, seed and key.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
from numpy.typing import NDArray

from signal_models.shapes import SignalShape

from .densities import ShapeArrays
from .design import build_design
from .newton import start_values
from .toy_cls import N_CURVES, PoiToys, bootstrap_weights, cls_replicates, crossings
from .toy_sampling import Envelope, draw_layers, hypothesis_key, make_envelope
from .toy_sets import ToySets, clipped_background_integral, data_sets, thin_sets
from .toy_statistic import BaseFits, base_fits, conditional_fits, q_from, q_tilde_fits

logger = logging.getLogger(__name__)

__all__ = ["ToyOptions", "ToyProblem", "HypothesisToys", "run_toys", "pilot_spread"]


@dataclass(frozen=True)
class ToyOptions:
    """Settings of the toy CLs engine.

    Attributes
    ----------
    stages : tuple of int
        Toy counts after which the POI values are examined (then ``n_toys``).
    decide_z : float
        A POI value is decided when all six CLs values lie more than this many
        bootstrap errors from ``1 - cl``.
    grid_points : int
        Initial POI values (geometric, from half the smallest to 1.5 times the
        largest asymptotic limit).
    max_extensions : int
        POI values added per stage to bracket the crossings.
    bootstrap : int
        Bootstrap replicates of the Monte Carlo errors.
    envelope_margin : float
        Relative margin of the background envelope.
    cap_factor : float
        Signal layer up to this many times the largest initial POI value.
    slots : int
        Event slots per batch of fits (memory).
    guard_below : int
        Windows with fewer events use the positivity guard for every fit;
        elsewhere only toys whose compact fits fail (or with fewer events than
        parameters + 2) are fitted again with it.
    max_attempts : int
        Restarts of a hypothesis (guard, envelope, cap) before it is flagged.
    max_failed_fraction : float
        Largest fraction of toy fits not converged (with the guard) before the limit is flagged.
    """

    stages: tuple[int, ...] = (100, 250, 500)
    decide_z: float = 3.0
    grid_points: int = 10
    max_extensions: int = 8
    bootstrap: int = 40
    envelope_margin: float = 0.05
    cap_factor: float = 2.5
    slots: int = 2_000_000
    guard_below: int = 20
    max_attempts: int = 4
    max_failed_fraction: float = 0.01


@dataclass(frozen=True)
class ToyProblem:
    """One hypothesis for the toy engine.

    ``events``: the data masses in the window (GeV, sorted); ``scale``: signal
    events per POI unit; ``syst_a``: yield-nuisance coefficient (0: none;
    ``fits.nuisances.Syst.a``); ``start`` (6,): asymptotic observed limit and
    expected band in POI units (the initial grid; non-positive values are
    replaced by a guess from the number of events); ``key``: its random-number
    key; ``grid``: initial POI values instead of the grid from ``start``.
    """

    index: int
    shape: SignalShape
    window: tuple[float, float]
    events: NDArray
    order: int
    cl: float
    start: NDArray
    scale: float = 1.0
    syst_a: float = 0.0
    syst_kind: str = "lognormal"
    key: tuple[int, ...] = ()
    grid: NDArray | None = None


@dataclass(frozen=True)
class HypothesisToys:
    """Toy CLs result of one hypothesis (POI units).

    ``poi`` (G,), ``cls`` (G, 6) and ``cls_err`` (G, 6): the CLs curves (observed,
    then the band positions -2..+2) and their bootstrap errors; ``n_per_poi``
    (G,): toys per POI value; ``n_fits``: toy fits run.
    """

    observed: float
    observed_err: float
    expected: NDArray
    expected_err: NDArray
    n_toys: int
    converged: bool
    reason: str
    poi: NDArray = field(default_factory=lambda: np.zeros(0))
    cls: NDArray = field(default_factory=lambda: np.zeros((0, N_CURVES)))
    cls_err: NDArray = field(default_factory=lambda: np.zeros((0, N_CURVES)))
    n_per_poi: NDArray = field(default_factory=lambda: np.zeros(0, int))
    n_fits: int = 0
    guarded: bool = False

    @classmethod
    def failed(cls, reason: str, *, n_fits: int = 0, guarded: bool = False) -> HypothesisToys:
        return cls(0.0, 0.0, np.zeros(N_CURVES - 1), np.zeros(N_CURVES - 1), 0, False, reason, n_fits=n_fits, guarded=guarded)


@dataclass(frozen=True)
class _Config:
    attempt: int
    guarded: bool
    cap_factor: float
    extra_betas: tuple[tuple[float, ...], ...] = ()


class _Poi:
    """Toys of one POI value (appended stage by stage, toy index order)."""

    def __init__(self, x: float, q_obs: float, mu_gen: float, beta_gen: NDArray, u_gen: float, lam_gen: float) -> None:
        self.x, self.q_obs, self.mu_gen, self.beta_gen, self.u_gen, self.lam_gen = x, q_obs, mu_gen, beta_gen, u_gen, lam_gen
        self.parts: list[tuple[NDArray, NDArray, NDArray, NDArray]] = []
        self.n = 0
        self.decided = False

    def add(self, q_b: NDArray, l_b: NDArray, q_sb: NDArray, l_sb: NDArray) -> None:
        self.parts.append((q_b, l_b, q_sb, l_sb))
        self.n += len(q_b)

    def toys(self) -> PoiToys:
        cat = [np.concatenate([p[i] for p in self.parts]) if self.parts else np.zeros(0) for i in range(4)]
        return PoiToys(poi=self.x, q_obs=self.q_obs, q_b=cat[0], l_b=cat[1], q_sb=cat[2], l_sb=cat[3])


class _State:
    """One hypothesis during a run (owned by ``run_toys``)."""

    def __init__(self, problem: ToyProblem, config: _Config) -> None:
        self.problem = problem
        self.config = config
        self.key = problem.key + (config.attempt,)
        self.restart: _Config | None = None
        self.failed: str | None = None
        self.result: HypothesisToys | None = None
        self.pois: list[_Poi] = []
        self.n_fits = 0
        self.n_bad = 0
        self.n_rows = 0
        self.cache: BaseFits | None = None
        self.cache_n = 0
        # set by the setup
        self.data: ToySets | None = None
        self.data_base: BaseFits | None = None
        self.beta0 = np.zeros(problem.order + 1)
        self.lam0 = 0.0
        self.cap = 0.0
        self.env: Envelope | None = None

    @property
    def active(self) -> bool:
        return self.restart is None and self.failed is None and self.result is None

    @property
    def alpha(self) -> float:
        return 1.0 - self.problem.cl

    def ask_restart(self, why: str, **changes: object) -> None:
        if self.active:
            logger.debug("m = %.6g GeV: toy attempt %d restarts (%s)", self.problem.shape.mu, self.config.attempt, why)
            self.restart = replace(self.config, attempt=self.config.attempt + 1, **changes)

    def fail(self, why: str) -> None:
        if self.active:
            self.failed = why

    def signal_c(self, x: NDArray, g: NDArray) -> tuple[NDArray, NDArray | None]:
        """Nominal signal yield (events) at POI values ``x`` for global observables ``g``, and the nuisance coefficients."""
        p = self.problem
        base = x * p.scale
        if p.syst_a <= 0:
            return base, None
        if p.syst_kind == "lognormal":
            return base * np.exp(p.syst_a * g), np.full(len(x), p.syst_a)
        f = np.maximum(1.0 + p.syst_a * g, 0.05)
        return base * f, p.syst_a / f

    def sorted_pois(self) -> list[_Poi]:
        """The POI values with toys, in increasing order."""
        return sorted((q for q in self.pois if q.n > 0), key=lambda q: q.x)

    def curves(self, v: NDArray) -> tuple[NDArray, NDArray]:
        """POI values (G,) and CLs (R, G, 6) for the replicate weights ``v``."""
        ps = self.sorted_pois()
        cls = np.stack([cls_replicates(q.toys(), v) for q in ps], axis=1)
        return np.array([q.x for q in ps]), cls


def run_toys(problems: Sequence[ToyProblem], *, n_toys: int, seed: int, options: ToyOptions) -> list[HypothesisToys]:
    """Toy CLs limits of ``problems`` (one batch of hypotheses; see the module docstring)."""
    states = [_State(p, _Config(0, len(p.events) < options.guard_below, options.cap_factor)) for p in problems]
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
                nxt.append(_State(s.problem, s.restart))
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
def _shapes(states: Sequence[_State]) -> ShapeArrays:
    return ShapeArrays.from_shapes([s.problem.shape for s in states])


def _windows(states: Sequence[_State]) -> tuple[NDArray, NDArray]:
    return np.array([s.problem.window[0] for s in states]), np.array([s.problem.window[1] for s in states])


def _setup(states: list[_State], options: ToyOptions) -> None:
    order = states[0].problem.order
    sh = _shapes(states)
    lo, hi = _windows(states)
    counts = np.array([len(s.problem.events) for s in states], dtype=np.int64)
    stop = np.cumsum(counts)
    x = np.concatenate([s.problem.events for s in states]).astype(float)
    d = build_design(x, sh, lo, hi, order, index_range=(stop - counts, stop))
    data = data_sets(d.s, d.xp, counts, lo, hi, sh)
    guarded = states[0].config.guarded
    design = data.design(order, guarded=guarded)
    bf = base_fits(design, start_values(d)[:, 1:], free_all=True)
    for j, s in enumerate(states):
        s.data = data.take(np.array([j]))
        s.data_base = bf.take(np.array([j]))
        s.beta0 = bf.theta_zero[j, 1:].copy()
        if not bf.converged[j]:
            if guarded:
                s.fail("toy limits: the fits of the data do not converge")
            else:
                s.ask_restart("data fits", guarded=True)
    live = [s for s in states if s.active]
    if not live:
        return
    lams = clipped_background_integral(np.array([s.beta0 for s in live]), *_windows(live))
    grids, env_x = [], []
    for s, lam in zip(live, lams):
        s.lam0 = float(lam)
        grid = _initial_grid(s, options)
        kappa = (1.0 + max(s.problem.syst_a, 0.0)) ** 3 if s.problem.syst_a > 0 else 1.0
        s.cap = float(s.config.cap_factor * grid[-1] * s.problem.scale * kappa)
        grids.append(grid)
        env_x.append(np.linspace(0.0, s.cap / (s.problem.scale * kappa), 9)[1:])
    conds = _data_conditionals(live, [np.concatenate([g, e]) for g, e in zip(grids, env_x)])
    for s, g, c in zip(live, grids, conds):
        betas = np.vstack([s.beta0[None, :], c.beta, np.array(s.config.extra_betas).reshape(-1, len(s.beta0))])
        s.env = make_envelope(s.problem.shape, s.problem.window, betas, s.cap, margin=options.envelope_margin)
        _new_pois(s, g, _take_cond(c, np.arange(len(g))))


def _initial_grid(s: _State, options: ToyOptions) -> NDArray:
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


def _data_conditionals(states: Sequence[_State], xs: Sequence[NDArray]) -> list[_DataCond]:
    """Conditional fits of each state's data at its POI values ``xs`` (one batch per fitting mode)."""
    out: list[_DataCond | None] = [None] * len(states)
    for syst in (False, True):
        pick = [j for j, s in enumerate(states) if (s.problem.syst_a > 0) == syst and len(xs[j])]
        if not pick:
            continue
        order = states[pick[0]].problem.order
        guarded = states[pick[0]].config.guarded
        sets = [states[j].data for j in pick]
        rep = np.concatenate([np.full(len(xs[j]), i) for i, j in enumerate(pick)])
        data = ToySets(*(np.concatenate([getattr(t, f) for t in sets]) for f in ("s", "xp", "n", "lo", "hi")),
                       shapes=ShapeArrays.from_shapes([states[j].problem.shape for j in pick])).take(rep)
        base = BaseFits.concatenate([states[j].data_base for j in pick]).take(rep)
        x = np.concatenate([xs[j] for j in pick])
        cs, cas = zip(*(states[j].signal_c(xs[j], np.zeros(len(xs[j]))) for j in pick))
        c = np.concatenate(cs)
        a = None if not syst else np.concatenate(cas)
        design = data.design(order, guarded=guarded)
        cond = conditional_fits(design, c, base.theta_zero[:, 1:], syst_a=a, syst_kind=states[pick[0]].problem.syst_kind,
                                predict_from=None if syst else (base.theta_zero, base.hess_zero))
        q = q_from(cond, base.nll_ref)
        ofs = np.concatenate([[0], np.cumsum([len(xs[j]) for j in pick])])
        for i, j in enumerate(pick):
            sl = slice(ofs[i], ofs[i + 1])
            out[j] = _DataCond(x=x[sl], q=q[sl], mu=cond.mu[sl], u=cond.u[sl], beta=cond.beta[sl], converged=cond.converged[sl])
            states[j].n_fits += ofs[i + 1] - ofs[i]
    return [o if o is not None else _DataCond(np.zeros(0), np.zeros(0), np.zeros(0), np.zeros(0), np.zeros((0, 1)), np.zeros(0, bool)) for o in out]


def _new_pois(s: _State, xs: NDArray, c: _DataCond) -> None:
    """Add POI values with their data fits, or ask for a restart when a generator does not fit the envelope or cap."""
    if not np.all(c.converged):
        if s.config.guarded:
            s.fail("toy limits: a conditional fit of the data does not converge")
        else:
            s.ask_restart("data fits", guarded=True)
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
        s.pois.append(_Poi(float(xs[j]), float(c.q[j]), float(c.mu[j]), c.beta[j].copy(), float(c.u[j]), float(lam[j])))


# ---------------------------------------------------------------------------
# stages
# ---------------------------------------------------------------------------
def _run_group(states: list[_State], *, n_toys: int, seed: int, options: ToyOptions) -> None:
    _setup(states, options)
    targets = sorted({min(int(t), n_toys) for t in options.stages if t > 0} | {n_toys})
    for T in targets:
        for _ in range(options.max_extensions + 1):
            units = [(s, q) for s in states if s.active for q in s.pois if not q.decided and q.n < T]
            if not units:
                break
            _execute(units, T, seed=seed, options=options)
            extended = [s for s in states if s.active and _extend(s)]
            if not extended:
                break
        for s in states:
            if s.active:
                _decide(s, seed=seed, options=options)
    for s in states:
        if s.active:
            s.result = _finish(s, seed=seed, options=options)


def _extend(s: _State) -> bool:
    """Add a POI value below or above where a CLs curve does not cross ``1 - cl`` inside them."""
    xs, cls = s.curves(np.ones((1, max(q.n for q in s.pois))))
    if len(xs) == 0:
        return False
    _, where = crossings(xs, cls, s.alpha)
    new = []
    if np.any(where[0] < 0):
        new.append(0.5 * xs[0])
    if np.any(where[0] > 0):
        new.append(1.5 * xs[-1])
    if not new:
        return False
    xn = np.array(new)
    _new_pois(s, xn, _data_conditionals([s], [xn])[0])
    return s.active


def _decide(s: _State, *, seed: int, options: ToyOptions) -> None:
    v = bootstrap_weights(seed, s.key, options.bootstrap, max(q.n for q in s.pois))
    for q in s.pois:
        if q.decided:
            continue
        c = cls_replicates(q.toys(), v)
        sd = c[1:].std(axis=0, ddof=1) if len(c) > 2 else np.zeros(N_CURVES)
        q.decided = bool(np.all(np.abs(c[0] - s.alpha) > options.decide_z * sd))


def _finish(s: _State, *, seed: int, options: ToyOptions) -> HypothesisToys:
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


# ---------------------------------------------------------------------------
# one stage: draw, thin, fit
# ---------------------------------------------------------------------------
def _execute(units: list[tuple[_State, _Poi]], T: int, *, seed: int, options: ToyOptions) -> None:
    """Toys ``q.n .. T`` of every (hypothesis, POI value) in ``units``: grouped by their first toy, one draw per group."""
    by_start: dict[int, list[tuple[_State, _Poi]]] = {}
    for s, q in units:
        by_start.setdefault(q.n, []).append((s, q))
    for a in sorted(by_start):
        _execute_range(by_start[a], a, T, seed=seed, options=options)


def _execute_range(units: list[tuple[_State, _Poi]], a: int, b: int, *, seed: int, options: ToyOptions) -> None:
    units = [(s, q) for s, q in units if s.active]
    if not units:
        return
    states: list[_State] = []
    for s, _ in units:
        if s not in states:
            states.append(s)
    order = states[0].problem.order
    guarded = states[0].config.guarded
    sh = _shapes(states)
    lo, hi = _windows(states)
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
        batch: list[tuple[_State, _Poi]] = []
        n_rows = 0
        for s, q in pairs + [(None, None)]:
            size = len(rows_of[pos[id(s)]]) if s is not None else 0
            if batch and (s is None or n_rows + size > per_batch):
                _fit_pairs(batch, [rows_of[pos[id(t)]] for t, _ in batch], layers, bsets, bdesign, base_b, sh, lo, hi, guarded=guarded, syst=syst)
                batch, n_rows = [], 0
            if s is not None:
                batch.append((s, q))
                n_rows += size


def _b_base_fits(states: list[_State], rows_of: list[NDArray], bdesign, beta0_rows: NDArray, a: int, b: int) -> BaseFits:
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


def _check(s: _State, converged: NDArray) -> None:
    """Count toy fits that did not converge (after the fallback with the positivity guard)."""
    s.n_rows += len(converged)
    s.n_bad += int(np.sum(~converged))


def _fit_pairs(batch: list[tuple[_State, _Poi]], rows: list[NDArray], layers, bsets: ToySets, bdesign, base_b: BaseFits, sh: ShapeArrays, lo: NDArray,
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
    q_sb, conv_sb = q_tilde_fits(sets.design(order, guarded=guarded), c_sb, base_b.theta_zero[idx, 1:] + (beta_gen - beta0), syst_a=a_sb, syst_kind=kind)
    glob_sb = 0.5 * (g_sb * g_sb - (g_sb - u_gen) ** 2)
    l_sb = sets.log_ratio(mu_gen, beta_gen, np.zeros(len(idx)), beta0) - dlam + glob_sb
    if not guarded:
        for q, conv, few, tsets, c, a in ((q_b, conv_b, bsets.n[idx] < P + 2, bsets, c_b, a_b), (q_sb, conv_sb, sets.n < P + 2, sets, c_sb, a_sb)):
            redo = np.flatnonzero(~conv | few)
            if len(redo):
                src = idx[redo] if tsets is bsets else redo
                q[redo], conv[redo] = q_tilde_fits(tsets.take(src).design(order, guarded=True), c[redo], beta_gen[redo],
                                                   syst_a=None if a is None else a[redo], syst_kind=kind)
    o = 0
    for (s, q), n in zip(batch, counts):
        sl = slice(o, o + n)
        o += n
        s.n_fits += 2 * n
        _check(s, conv_b[sl] & conv_sb[sl])
        q.add(q_b[sl], l_b[sl], q_sb[sl], l_sb[sl])


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
            states = [_State(problems[j], _Config(0, guarded, options.cap_factor)) for j in g]
            _setup(states, options)
            live = [(j, s) for j, s in zip(g, states) if s.active]
            if not live:
                continue
            sts = [s for _, s in live]
            layers = draw_layers([s.env for s in sts], [s.key for s in sts], _shapes(sts), sts[0].problem.order, 0, n_toys, seed=seed)
            beta0 = np.array([s.beta0 for s in sts])
            bsets = thin_sets(layers, np.arange(len(layers)), np.zeros(len(layers)), beta0[layers.hyp], _shapes(sts), *_windows(sts))
            bf = base_fits(bsets.design(sts[0].problem.order, guarded=guarded), beta0[layers.hyp], free_all=True)
            for h, (j, s) in enumerate(live):
                r = layers.hyp == h
                good = bf.converged[r]
                if good.mean() >= 1.0 - options.max_failed_fraction and good.sum() > 2:
                    std[j] = float(np.std(bf.mu_hat[r][good], ddof=1)) / s.problem.scale
                    ok[j] = True
    return std, ok


def problem_key(shape: SignalShape, window: tuple[float, float]) -> tuple[int, ...]:
    """The random-number key of a hypothesis (``fits.toy_sampling.hypothesis_key`` without the attempt)."""
    return hypothesis_key(shape.mu, window[0], window[1])[:-1]

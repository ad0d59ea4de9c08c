"""Toy CLs limits of many hypotheses on checked inputs: ``limits_from_start`` -> ``ToyLimitTable`` (see ``fits.toy_limits``).

The hypotheses are cut into chunks whose toy layers of one stage fit a
memory budget and handed to ``fits.toy_runner.run_toys``; their results are
placed into one table. ``toy_spread`` runs the background-only pilot toys of
the ``auto`` limit method (``fits.limit_methods``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import NDArray

from signal_models.shapes import SignalShape

from .densities import ShapeArrays
from .errors import FitInputError
from .inputs import window_problems
from .nuisances import yield_systematic
from .toy_problem import HypothesisToys, ToyOptions, ToyProblem, problem_key
from .toy_runner import pilot_spread, run_toys

logger = logging.getLogger(__name__)

__all__ = ["ToyLimitTable", "limits_from_start", "toy_problems", "toy_spread"]


@dataclass(frozen=True)
class ToyLimitTable:
    """Toy CLs limits of k hypotheses (arrays of length k).

    Attributes
    ----------
    observed, observed_err : ndarray (k,)
        Observed limit and its Monte Carlo error, in signal events (``poi ==
        "nsig"``) or pb (``"xsec"``).
    expected, expected_err : ndarray (k, 5)
        Expected limits at -2, -1, 0, +1, +2 sigma and their Monte Carlo errors.
    n_toys : ndarray (k,)
        Background-only toys at the POI values around the crossings.
    converged : ndarray (k,)
        False where a limit is flagged (``reason``): not bracketed by the POI
        values tested (extrapolated), fits that fail, or no toys (bad window).
    reason : tuple of str
    poi : str
    n_fits : ndarray (k,)
        Toy fits run per hypothesis.
    details : tuple
        Per hypothesis the ``fits.toy_runner.HypothesisToys`` (CLs curves), or None.
    """

    observed: NDArray
    observed_err: NDArray
    expected: NDArray
    expected_err: NDArray
    n_toys: NDArray
    converged: NDArray
    reason: tuple[str, ...]
    poi: str
    n_fits: NDArray
    details: tuple[HypothesisToys | None, ...]

    def __len__(self) -> int:
        return len(self.observed)

    def scaled(self, f: NDArray, *, poi: str) -> ToyLimitTable:
        """The limits and errors times ``f`` (k,) (e.g. signal events to pb), with POI name ``poi``."""
        f = np.asarray(f, float)
        return replace(self, observed=self.observed * f, observed_err=self.observed_err * f, expected=self.expected * f[:, None],
                       expected_err=self.expected_err * f[:, None], poi=poi)


def toy_problems(x: NDArray, shapes: Sequence[SignalShape], windows: NDArray, *, bkg_order: int, cl: float, start: NDArray, scale: NDArray | None = None,
                 rel_unc: NDArray | None = None, syst_kind: str = "lognormal", grids: Sequence[NDArray | None] | None = None) -> tuple[list[ToyProblem | None], list[str]]:
    """The toy problem of every hypothesis (None where its window cannot be fitted) and the reasons.

    ``x``: sorted masses (GeV); ``start`` (k, 6): asymptotic observed limits
    and bands in POI units (the initial POI grids); ``scale`` (k,): signal
    events per POI unit; ``rel_unc`` (k,): yield uncertainty (none: 0);
    ``grids``: initial POI values per hypothesis (None: from ``start``).
    """
    k = len(shapes)
    sh = ShapeArrays.from_shapes(shapes)
    lo, hi = windows[:, 0].copy(), windows[:, 1].copy()
    reasons, first, last = window_problems(x, sh, shapes, lo, hi, bkg_order)
    syst = yield_systematic(rel_unc, k, kind=syst_kind) if rel_unc is not None else None
    a = np.zeros(k) if syst is None else syst.a
    out: list[ToyProblem | None] = []
    for j in range(k):
        if reasons[j]:
            out.append(None)
            continue
        w = (float(lo[j]), float(hi[j]))
        out.append(ToyProblem(index=j, shape=shapes[j], window=w, events=x[first[j]:last[j]], order=bkg_order, cl=cl, start=np.asarray(start[j], float),
                              scale=1.0 if scale is None else float(scale[j]), syst_a=float(a[j]), syst_kind=syst_kind, key=problem_key(shapes[j], w),
                              grid=None if grids is None else grids[j]))
    return out, list(reasons)


def _chunks(problems: list[ToyProblem], options: ToyOptions, *, step: int | None = None) -> list[list[ToyProblem]]:
    """Consecutive problems whose toy layers of one stage (``step`` toys) stay within a memory budget."""
    if step is None:
        step = int(max(np.diff([0, *sorted(options.stages)]).max(initial=1), 1))
    budget = 4 * options.slots
    out: list[list[ToyProblem]] = []
    cur: list[ToyProblem] = []
    used = 0
    for p in problems:
        cap = options.cap_factor * 1.5 * float(np.max(p.start[np.isfinite(p.start)], initial=1.0)) * p.scale
        size = int((1.1 * len(p.events) + cap + 10) * step)
        if cur and used + size > budget:
            out.append(cur)
            cur, used = [], 0
        cur.append(p)
        used += size
    if cur:
        out.append(cur)
    return out


def _run(problems: list[ToyProblem | None], *, n_toys: int, seed: int, options: ToyOptions) -> list[HypothesisToys | None]:
    todo = [p for p in problems if p is not None]
    res: dict[int, HypothesisToys] = {}
    for chunk in _chunks(todo, options):
        for p, r in zip(chunk, run_toys(chunk, n_toys=n_toys, seed=seed, options=options)):
            res[p.index] = r
    return [None if p is None else res[p.index] for p in problems]


def limits_from_start(x: NDArray, shapes: Sequence[SignalShape], windows: NDArray, start: NDArray, *, bkg_order: int, cl: float, n_toys: int, seed: int,
                      scale: NDArray | None = None, rel_unc: NDArray | None = None, syst_kind: str = "lognormal",
                      options: ToyOptions | None = None, grids: Sequence[NDArray | None] | None = None) -> ToyLimitTable:
    """``toy_cls_limits`` on checked inputs: sorted masses ``x`` (GeV), windows (k, 2), ``start`` (k, 6) the asymptotic
    observed limits and bands in POI units (events, or events / ``scale`` with a yield uncertainty ``rel_unc``); ``grids``
    optional initial POI values per hypothesis."""
    opts = options or ToyOptions()
    if int(n_toys) < 10:
        raise FitInputError(f"n_toys: at least 10 toys, got {n_toys}")
    problems, reasons = toy_problems(x, shapes, windows, bkg_order=bkg_order, cl=cl, start=start, scale=scale, rel_unc=rel_unc, syst_kind=syst_kind,
                                     grids=grids)
    results = _run(problems, n_toys=int(n_toys), seed=int(seed), options=opts)
    return _table(results, reasons, poi="nsig" if scale is None else "xsec")


def _table(results: list[HypothesisToys | None], reasons: list[str], *, poi: str) -> ToyLimitTable:
    k = len(results)
    n_exp = 5
    obs, obs_e = np.zeros(k), np.zeros(k)
    exp, exp_e = np.zeros((k, n_exp)), np.zeros((k, n_exp))
    n_toys, n_fits = np.zeros(k, int), np.zeros(k, int)
    conv = np.zeros(k, bool)
    why = list(reasons)
    for j, r in enumerate(results):
        if r is None:
            why[j] = why[j] or "no toys"
            continue
        obs[j], obs_e[j] = r.observed, r.observed_err
        exp[j], exp_e[j] = r.expected, r.expected_err
        n_toys[j], n_fits[j], conv[j] = r.n_toys, r.n_fits, r.converged
        why[j] = r.reason
    return ToyLimitTable(observed=obs, observed_err=obs_e, expected=exp, expected_err=exp_e, n_toys=n_toys, converged=conv, reason=tuple(why), poi=poi,
                         n_fits=n_fits, details=tuple(results))


def toy_spread(x: NDArray, shapes: Sequence[SignalShape], windows: NDArray, *, bkg_order: int, cl: float, start: NDArray, n_toys: int, seed: int,
               options: ToyOptions | None = None) -> tuple[NDArray, NDArray]:
    """Standard deviation of the fitted signal yield (events) over ``n_toys`` background-only toys per hypothesis, and a flag.

    The toys are the first background-only toys of ``toy_cls_limits`` with the
    same seed. ``x`` sorted masses (GeV), ``start`` (k, 6) as in ``toy_problems``.
    """
    problems, _ = toy_problems(x, shapes, windows, bkg_order=bkg_order, cl=cl, start=start)
    todo = [p for p in problems if p is not None]
    std = np.full(len(problems), np.nan)
    ok = np.zeros(len(problems), bool)
    opts = options or ToyOptions()
    for chunk in _chunks(todo, opts, step=n_toys):
        s, o = pilot_spread(chunk, n_toys=n_toys, seed=seed, options=opts)
        for p, sj, oj in zip(chunk, s, o):
            std[p.index], ok[p.index] = sj, oj
    return std, ok

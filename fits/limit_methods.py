"""The limit method of each hypothesis: asymptotic formulae, toys, or ``auto`` (``evaluate_hypotheses(limit_method=...)``).

``"asymptotic"`` keeps the table of ``fits.chunks`` as it is. ``"toys"``
replaces the limits of every hypothesis that can be fitted by the toy CLs
limits of ``fits.toy_batch`` (observed and band, each with its Monte Carlo
error). ``"auto"`` uses toys where the asymptotic formulae are not to be
trusted (``AutoRule``) and the asymptotic limits elsewhere:

1. fewer than ``min_peak_background`` background events expected within
   +-2 sigma of the peak (the fitted background of the window integrated over
   ``mu +- 2 sigma``): the test statistic is far from its asymptotic
   distribution with so few events where the signal would be;
2. otherwise ``pilot_toys`` background-only toys (the first toys of the toy
   limits, same seed): the standard deviation of their fitted signal yields
   and the Asimov error of the yield (the median expected limit over its
   Asimov target ``Phi^-1(1 - alpha/2)``) differ by more than
   ``max_sigma_mismatch`` (relative; the pilot's own error is about
   ``1/sqrt(2 (pilot_toys - 1))``, 7% for 100 toys, so the default 0.25 is
   beyond 3 of its standard deviations), or the pilot fits fail.

The result is a ``ToyHypothesisTable``: the columns of ``HypothesisTable``
plus the method of each hypothesis and the Monte Carlo errors of its limits
(0 for asymptotic limits).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.special import ndtri

from signal_models.shapes import SignalShape

from .errors import FitInputError
from .results import HypothesisTable
from .toy_batch import ToyLimitTable, limits_from_start, toy_spread
from .toy_problem import ToyOptions

logger = logging.getLogger(__name__)

__all__ = ["LIMIT_METHODS", "AutoRule", "ToyHypothesisTable", "check_limit_method", "auto_selection", "with_limit_method"]

#: the limit methods of ``evaluate_hypotheses``
LIMIT_METHODS = ("asymptotic", "toys", "auto")


@dataclass(frozen=True)
class AutoRule:
    """When ``limit_method="auto"`` takes toys (see the module docstring)."""

    min_peak_background: float = 10.0
    pilot_toys: int = 100
    max_sigma_mismatch: float = 0.25


@dataclass(frozen=True)
class ToyHypothesisTable(HypothesisTable):
    """``HypothesisTable`` with the limit method per hypothesis and the Monte Carlo errors of toy limits.

    ``limit_method`` ("asymptotic" or "toys") per hypothesis; ``*_err`` the
    Monte Carlo errors of the limits (same units; 0 for asymptotic ones);
    ``n_toys`` the background-only toys at the POI values around the crossings
    (0 for asymptotic limits).
    """

    limit_method: tuple[str, ...] = ()
    ul_nsig_obs_err: NDArray | None = None
    ul_nsig_exp_err: NDArray | None = None
    ul_xsec_obs_err: NDArray | None = None
    ul_xsec_exp_err: NDArray | None = None
    n_toys: NDArray | None = None

    def row(self, j: int) -> dict[str, Any]:
        """One hypothesis as a JSON-friendly dict (with ``limit_method``, the errors and ``n_toys``)."""
        out = super().row(j)
        out["limit_method"] = self.limit_method[j]
        out["n_toys"] = int(self.n_toys[j])
        out["ul_nsig_obs_err"] = float(self.ul_nsig_obs_err[j])
        out["ul_nsig_exp_err"] = [float(v) for v in self.ul_nsig_exp_err[j]]
        if self.ul_xsec_obs_err is not None:
            out["ul_xsec_obs_err"] = float(self.ul_xsec_obs_err[j])
            out["ul_xsec_exp_err"] = [float(v) for v in self.ul_xsec_exp_err[j]]
        return out


def check_limit_method(method: str, n_toys: int) -> str:
    """Raise ``FitInputError`` for an unknown method or too few toys."""
    if method not in LIMIT_METHODS:
        raise FitInputError(f"limit_method: expected one of {LIMIT_METHODS}, got {method!r}")
    if method != "asymptotic" and int(n_toys) < 10:
        raise FitInputError(f"toys: at least 10 toys per hypothesis, got {n_toys}")
    return method


def peak_background(table: HypothesisTable, shapes: Sequence[SignalShape], *, n_sigma: float = 2.0) -> NDArray:
    """Fitted background events (k,) within ``mu +- n_sigma sigma`` of each peak (clipped to the window)."""
    out = np.zeros(len(table))
    for j, sh in enumerate(shapes):  # per hypothesis: one Chebyshev integral each
        lo, hi = (float(v) for v in table.window[j])
        a, b = max(lo, sh.mu - n_sigma * sh.sigma), min(hi, sh.mu + n_sigma * sh.sigma)
        if b <= a or table.beta is None:
            continue
        anti = np.polynomial.chebyshev.chebint(np.asarray(table.beta[j], float))
        xa, xb = (2.0 * a - lo - hi) / (hi - lo), (2.0 * b - lo - hi) / (hi - lo)
        out[j] = 0.5 * (hi - lo) * float(np.polynomial.chebyshev.chebval(xb, anti) - np.polynomial.chebyshev.chebval(xa, anti))
    return out


def auto_selection(table: HypothesisTable, x: NDArray, shapes: Sequence[SignalShape], *, bkg_order: int, cl: float, seed: int, rule: AutoRule,
                   options: ToyOptions | None = None) -> NDArray:
    """Which hypotheses ``"auto"`` gives toy limits (bool (k,); see the module docstring). ``x``: sorted masses (GeV)."""
    k = len(table)
    fit_ok = np.array([r == "" or c for r, c in zip(table.reason, table.converged)]) & (table.ul_nsig_exp[:, 2] > 0)
    few = peak_background(table, shapes) < rule.min_peak_background
    toys = ~fit_ok | few
    check = np.flatnonzero(~toys)
    if len(check):
        start = np.column_stack([table.ul_nsig_obs, table.ul_nsig_exp])[check]
        std, ok = toy_spread(x, [shapes[j] for j in check], table.window[check], bkg_order=bkg_order, cl=cl, start=start, n_toys=rule.pilot_toys, seed=seed,
                             options=options)
        sigma_a = table.ul_nsig_exp[check, 2] / ndtri(1.0 - 0.5 * (1.0 - cl))
        with np.errstate(divide="ignore", invalid="ignore"):
            off = np.abs(std / sigma_a - 1.0)
        toys[check] = ~ok | ~(off <= rule.max_sigma_mismatch)
    logger.info("limit_method='auto': toys for %d of %d hypotheses", int(toys.sum()), k)
    return toys


def with_limit_method(table: HypothesisTable, x: NDArray, shapes: Sequence[SignalShape], *, method: str, n_toys: int, seed: int, bkg_order: int, cl: float,
                      scale: NDArray | None, rel_unc: NDArray | None, syst_kind: str, fitted: NDArray, rule: AutoRule | None = None,
                      options: ToyOptions | None = None) -> HypothesisTable:
    """The table with toy limits where ``method`` asks for them (``fitted``: hypotheses whose limits were computed).

    ``x`` sorted masses (GeV); ``scale`` (k,) events per pb; ``rel_unc`` (k,)
    its relative uncertainty (toys in the cross-section with the nuisance
    profiled: a second toy run), else cross-section limits are the yield
    limits over ``scale``.
    """
    if method == "asymptotic":
        return table
    k = len(table)
    use = fitted.copy()
    if method == "auto" and np.any(use):
        sel = np.flatnonzero(use)
        sub = _subtable(table, sel)
        use[sel] = auto_selection(sub, x, [shapes[j] for j in sel], bkg_order=bkg_order, cl=cl, seed=seed, rule=rule or AutoRule(), options=options)
    idx = np.flatnonzero(use)
    cols = {f.name: getattr(table, f.name) for f in fields(HypothesisTable)}
    obs, exp = table.ul_nsig_obs.copy(), table.ul_nsig_exp.copy()
    obs_e, exp_e = np.zeros(k), np.zeros_like(exp)
    conv, reason = table.converged.copy(), list(table.reason)
    n_t = np.zeros(k, int)
    xs = None if table.ul_xsec_obs is None else (table.ul_xsec_obs.copy(), table.ul_xsec_exp.copy(), np.zeros(k), np.zeros_like(exp))
    if len(idx):
        sh = [shapes[j] for j in idx]
        win = table.window[idx]
        start = np.column_stack([table.ul_nsig_obs, table.ul_nsig_exp])[idx]
        t = limits_from_start(x, sh, win, start, bkg_order=bkg_order, cl=cl, n_toys=n_toys, seed=seed, options=options)
        obs[idx], exp[idx], obs_e[idx], exp_e[idx], n_t[idx] = t.observed, t.expected, t.observed_err, t.expected_err, t.n_toys
        _merge_flags(conv, reason, idx, t)
        if xs is not None and scale is not None:
            if rel_unc is None:
                f = 1.0 / scale[idx]
                xs[0][idx], xs[1][idx], xs[2][idx], xs[3][idx] = t.observed * f, t.expected * f[:, None], t.observed_err * f, t.expected_err * f[:, None]
            else:
                start_x = np.column_stack([table.ul_xsec_obs, table.ul_xsec_exp])[idx]
                tx = limits_from_start(x, sh, win, start_x, bkg_order=bkg_order, cl=cl, n_toys=n_toys, seed=seed, scale=scale[idx], rel_unc=rel_unc[idx],
                                       syst_kind=syst_kind, options=options)
                xs[0][idx], xs[1][idx], xs[2][idx], xs[3][idx] = tx.observed, tx.expected, tx.observed_err, tx.expected_err
                _merge_flags(conv, reason, idx, tx)
    cols.update(ul_nsig_obs=obs, ul_nsig_exp=exp, converged=conv, reason=reason)
    if xs is not None:
        cols.update(ul_xsec_obs=xs[0], ul_xsec_exp=xs[1])
    methods = tuple("toys" if u else "asymptotic" for u in use)
    return ToyHypothesisTable(**cols, limit_method=methods, ul_nsig_obs_err=obs_e, ul_nsig_exp_err=exp_e, ul_xsec_obs_err=None if xs is None else xs[2],
                              ul_xsec_exp_err=None if xs is None else xs[3], n_toys=n_t)


def _merge_flags(conv: NDArray, reason: list[str], idx: NDArray, t: ToyLimitTable) -> None:
    """Flag the hypotheses ``idx`` whose toy limits are flagged (keeping an earlier reason first)."""
    for jj, j in enumerate(idx):
        if not t.converged[jj]:
            conv[j] = False
            reason[j] = f"{reason[j]}; toys: {t.reason[jj]}" if reason[j] else f"toys: {t.reason[jj]}"


def _subtable(t: HypothesisTable, idx: NDArray) -> HypothesisTable:
    """The rows ``idx`` of a table."""
    cols: dict[str, Any] = {}
    for f in fields(HypothesisTable):
        v = getattr(t, f.name)
        if v is None:
            cols[f.name] = None
        elif f.name == "reason":
            cols[f.name] = [v[j] for j in idx]
        else:
            cols[f.name] = np.asarray(v)[idx]
    return HypothesisTable(**cols)

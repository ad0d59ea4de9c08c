"""Profile-likelihood scan of the parameter of interest of one hypothesis: -2 Delta ln L, its 68% and 95% crossings, a plot.

``likelihood_scan`` fits one hypothesis (channels sharing ``mu``, or one
dataset whose POI is its signal yield ``N_sig`` in events) and evaluates

    -2 Delta ln L(x) = 2 (NLL(x, theta_hat_hat(x)) - NLL(mu_hat, theta_hat))

on a grid of POI values, every nuisance and background coefficient
profiled. The grid points are the rows of one ``CombinedBatch.minimise``
call (mu fixed), started from the unconditional minimum; a point whose start
is outside the model's domain (a density <= 0 at an event) or that does not
converge is refitted from its converged neighbour towards ``mu_hat``.

The crossings of ``-2 Delta ln L = chi2_1^-1(cl)`` (1 for 68.27%, 3.84 for
95%) are bracketed by the grid (the bracket is extended beyond the grid when
the curve has not reached the level, so a crossing is never missing because
the grid was short) and then found by refits: a vectorised Illinois
(modified regula falsi) iteration with all open crossings as rows of one
batch.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import ndtri

from signal_models._common.defaults import DEFAULT_BKG_ORDER
from signal_models.shapes import SignalShape

from .channels import Channel, ShapeUncertainty, SpuriousSignal, YieldUncertainty
from .combined import CombinedBatch, CombinedState
from .combined_rows import CombinedRequest
from .errors import FitInputError
from .impacts import CentredFit, centred_fit, hypothesis_model

logger = logging.getLogger(__name__)

__all__ = ["Interval", "LikelihoodScan", "likelihood_scan", "scan_levels", "plot_likelihood_scan", "ONE_SIGMA_CL"]

#: the confidence level of +-1 standard deviation (-2 Delta ln L = 1)
ONE_SIGMA_CL = 0.6826894921370859


def scan_levels(cls: Sequence[float]) -> NDArray:
    """``-2 Delta ln L`` thresholds of two-sided intervals at confidence levels ``cls`` (chi2 with 1 dof)."""
    c = np.asarray(cls, float)
    if np.any(~(c > 0) | ~(c < 1)):
        raise FitInputError(f"likelihood scan: confidence levels must be in (0, 1), got {c.tolist()}")
    return ndtri(0.5 + 0.5 * c) ** 2


@dataclass(frozen=True)
class Interval:
    """A two-sided interval of the POI from the crossings of ``-2 Delta ln L = level``.

    Attributes
    ----------
    cl : float
        Confidence level.
    level : float
        ``-2 Delta ln L`` at the ends.
    lo, hi : float
        The crossings below and above ``mu_hat`` (NaN if not found).
    found_lo, found_hi : bool
    """

    cl: float
    level: float
    lo: float
    hi: float
    found_lo: bool
    found_hi: bool


@dataclass(frozen=True, eq=False)
class LikelihoodScan:
    """``-2 Delta ln L`` versus the POI of one hypothesis, nuisances profiled.

    Attributes
    ----------
    poi_values : ndarray (m,)
        The grid (POI units: events for ``N_sig``, units of ``mu`` for channels).
    dnll2 : ndarray (m,)
        ``-2 Delta ln L`` at the grid (NaN where the fit failed).
    converged : ndarray (m,) bool
    nuisances : ndarray (m, n)
        Profiled nuisances along the grid (standard deviations).
    mu_hat, mu_err : float
        The unconditional minimum and its error (inverse Hessian).
    nll_hat : float
    intervals : tuple of Interval
    poi : str
        ``"N_sig"`` or ``"mu"``.
    nuisance_names : tuple of str
    """

    poi_values: NDArray
    dnll2: NDArray
    converged: NDArray
    nuisances: NDArray
    mu_hat: float
    mu_err: float
    nll_hat: float
    intervals: tuple[Interval, ...]
    poi: str
    nuisance_names: tuple[str, ...]

    def interval(self, cl: float) -> Interval:
        """The interval at confidence level ``cl`` (one of those computed)."""
        for iv in self.intervals:
            if abs(iv.cl - cl) < 1e-9:
                return iv
        raise FitInputError(f"likelihood scan: no interval at cl = {cl}; computed {[iv.cl for iv in self.intervals]}")

    def to_rows(self) -> list[tuple[str, ...]]:
        """A header and one row of text per interval."""
        rows = [("CL", "-2dlnL", f"{self.poi} lo", f"{self.poi} hi", f"-({self.poi}_hat - lo)", f"+(hi - {self.poi}_hat)")]
        for iv in self.intervals:
            rows.append((f"{100 * iv.cl:.2f}%", f"{iv.level:.3f}", f"{iv.lo:.5g}", f"{iv.hi:.5g}", f"{self.mu_hat - iv.lo:.4g}",
                         f"{iv.hi - self.mu_hat:.4g}"))
        return rows

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready numbers."""
        return {"poi": self.poi, "mu_hat": self.mu_hat, "mu_err": self.mu_err, "poi_values": self.poi_values.tolist(),
                "dnll2": [float(v) for v in self.dnll2],
                "intervals": [{"cl": iv.cl, "level": iv.level, "lo": iv.lo, "hi": iv.hi, "found_lo": iv.found_lo, "found_hi": iv.found_hi}
                              for iv in self.intervals]}


class _Profile:
    """Conditional fits (mu fixed) of one fitted hypothesis, many POI values as rows of one batch."""

    def __init__(self, cf: CentredFit) -> None:
        self.cf = cf
        self.batch: CombinedBatch = cf.batch
        self.nll_hat = float(cf.nll_hat[0])

    def fit(self, x: NDArray, start: CombinedState) -> tuple[NDArray, NDArray, CombinedState]:
        """``-2 Delta ln L`` (m,), convergence (m,) and the profiled states at POI values ``x`` from ``start`` (m rows)."""
        m = len(x)
        b = self.batch
        centre = None if self.cf.centre is None else np.tile(self.cf.centre, (m, 1))
        sol = b.minimise(b.data.tile(m), start.with_mu(np.asarray(x, float)), mu_fixed=True, centre=centre)
        d = 2.0 * (sol.nll - self.nll_hat)
        return np.where(sol.converged, d, np.nan), sol.converged.copy(), sol.state

    def grid(self, x: NDArray) -> tuple[NDArray, NDArray, CombinedState]:
        """The grid from the minimum, then failed points again from their converged neighbour towards mu_hat."""
        m = len(x)
        d, ok, st = self.fit(x, self.cf.hat.tile(m))
        mu_hat = float(self.cf.mu_hat[0])
        for _ in range(m):
            bad = np.flatnonzero(~ok)
            if not len(bad):
                break
            src = np.full(len(bad), -1)
            for i, j in enumerate(bad):
                side = np.flatnonzero(ok & ((x <= x[j]) if x[j] > mu_hat else (x >= x[j])))
                if len(side):
                    src[i] = side[np.argmin(np.abs(x[side] - x[j]))]
            use = src >= 0
            if not use.any():
                break
            tgt = bad[use]
            d2, ok2, st2 = self.fit(x[tgt], st.take(src[use]))
            if not ok2.any():
                break
            d[tgt], ok[tgt] = np.where(ok2, d2, d[tgt]), ok2
            st.shared[tgt[ok2]] = st2.shared[ok2]
            st.beta[tgt[ok2]] = st2.beta[ok2]
        return d, ok, st


def _brackets(x: NDArray, d: NDArray, ok: NDArray, mu_hat: float, level: float, side: int) -> tuple[float, float, int, int] | None:
    """From the grid: (inside, outside) POI values around the crossing of ``level`` on ``side`` (+1 above mu_hat, -1 below)
    and the grid indices of their states (-1 for mu_hat itself); None if the grid does not reach the level."""
    sel = np.flatnonzero(ok & (np.sign(x - mu_hat) == side))
    sel = sel[np.argsort(side * x[sel])]  # outward from mu_hat
    prev_x, prev_i = mu_hat, -1
    for i in sel:
        if d[i] > level:
            return prev_x, float(x[i]), prev_i, int(i)
        prev_x, prev_i = float(x[i]), int(i)
    return None


def _crossings(prof: _Profile, x: NDArray, d: NDArray, ok: NDArray, st: CombinedState, levels: NDArray, *, max_extend: int = 12,
               max_iter: int = 60, xtol: float = 1e-7, ftol: float = 1e-7) -> tuple[NDArray, NDArray]:
    """Crossings (L, 2) of every level below and above mu_hat, and whether each was found."""
    cf = prof.cf
    mu_hat, err = float(cf.mu_hat[0]), float(cf.mu_err[0])
    span = float(np.nanmax(np.abs(x - mu_hat))) if len(x) else 0.0
    step0 = max(span, 3.0 * err if np.isfinite(err) and err > 0 else 1.0, 1e-6)
    hat = cf.hat
    L = len(levels)
    # per crossing: inside a (f < 0) and outside b (f > 0), their f and states
    a = np.full((L, 2), mu_hat)
    b = np.full((L, 2), np.nan)
    fa = np.zeros((L, 2))
    fb = np.full((L, 2), np.nan)
    state_a = hat.tile(2 * L)
    for li, lvl in enumerate(levels):
        for si, side in enumerate((-1, +1)):
            r = _brackets(x, d, ok, mu_hat, lvl, side)
            if r is None:
                sel = np.flatnonzero(ok & (np.sign(x - mu_hat) == side))
                if len(sel):
                    far = sel[np.argmax(side * x[sel])]
                    a[li, si], fa[li, si] = x[far], d[far] - lvl
                    state_a.shared[li * 2 + si], state_a.beta[li * 2 + si] = st.shared[far], st.beta[far]
                continue
            a[li, si], b[li, si] = r[0], r[1]
            fa[li, si] = (d[r[2]] if r[2] >= 0 else 0.0) - lvl
            fb[li, si] = d[r[3]] - lvl
            if r[2] >= 0:
                state_a.shared[li * 2 + si], state_a.beta[li * 2 + si] = st.shared[r[2]], st.beta[r[2]]
    lv = np.repeat(levels[:, None], 2, axis=1).reshape(-1)
    sides = np.tile([-1.0, 1.0], L)
    a, b, fa, fb = a.reshape(-1), b.reshape(-1), fa.reshape(-1), fb.reshape(-1)
    # extend outward where the grid did not reach the level
    step = np.full(2 * L, step0)
    for _ in range(max_extend):
        open_ = np.flatnonzero(~np.isfinite(b))
        if not len(open_):
            break
        xt = a[open_] + sides[open_] * step[open_]
        dt, okt, stt = prof.fit(xt, state_a.take(open_))
        for i, j in enumerate(open_):
            if not okt[i]:
                step[j] *= 0.5  # outside the model's domain: come back closer
                continue
            if dt[i] > lv[j]:
                b[j], fb[j] = xt[i], dt[i] - lv[j]
            else:
                a[j], fa[j] = xt[i], dt[i] - lv[j]
                state_a.shared[j], state_a.beta[j] = stt.shared[i], stt.beta[i]
                step[j] *= 2.0
    found = np.isfinite(b)
    root = np.full(2 * L, np.nan)
    # Illinois iteration on the brackets, all open crossings at once
    act = found.copy()
    last = np.zeros(2 * L, int)
    for _ in range(max_iter):
        idx = np.flatnonzero(act)
        if not len(idx):
            break
        xt = b[idx] - fb[idx] * (b[idx] - a[idx]) / (fb[idx] - fa[idx])
        bad = ~np.isfinite(xt) | ((xt - a[idx]) * (xt - b[idx]) >= 0)
        xt = np.where(bad, 0.5 * (a[idx] + b[idx]), xt)
        dt, okt, stt = prof.fit(xt, state_a.take(idx))
        for i, j in enumerate(idx):
            if not okt[i]:
                act[j] = False
                found[j] = False
                continue
            f = dt[i] - lv[j]
            if abs(f) < ftol or abs(b[j] - a[j]) < xtol * max(abs(a[j]), abs(b[j]), err if np.isfinite(err) else 1.0):
                root[j] = xt[i]
                act[j] = False
                continue
            if f < 0:
                a[j], fa[j] = xt[i], f
                state_a.shared[j], state_a.beta[j] = stt.shared[i], stt.beta[i]
                if last[j] == -1:
                    fb[j] *= 0.5
                last[j] = -1
            else:
                b[j], fb[j] = xt[i], f
                if last[j] == 1:
                    fa[j] *= 0.5
                last[j] = 1
    unfinished = act & found
    root[unfinished] = 0.5 * (a[unfinished] + b[unfinished])
    return root.reshape(L, 2), (found & np.isfinite(root)).reshape(L, 2)


def likelihood_scan(
    mgg: ArrayLike | Channel | Sequence[Channel],
    shape: SignalShape | None = None,
    window: Sequence[float] | None = None,
    *,
    bkg_order: int = DEFAULT_BKG_ORDER,
    yield_uncertainties: Sequence[YieldUncertainty] = (),
    shape_uncertainties: Sequence[ShapeUncertainty] = (),
    spurious_signals: Sequence[SpuriousSignal] = (),
    poi_values: ArrayLike | None = None,
    n_points: int = 41,
    n_sigma: float = 3.0,
    cls: Sequence[float] = (ONE_SIGMA_CL, 0.95),
    global_observables: ArrayLike | None = None,
) -> LikelihoodScan:
    """``-2 Delta ln L`` versus the POI of one hypothesis (nuisances profiled), with the crossings at ``cls``.

    Parameters
    ----------
    mgg, shape, window, bkg_order, yield_uncertainties, shape_uncertainties, spurious_signals
        The hypothesis, as for ``fits.impacts.impacts`` (one dataset: POI ``N_sig`` in events;
        channels: POI ``mu``).
    poi_values : array (m,), optional
        The grid; default ``n_points`` values in ``mu_hat +- n_sigma mu_err``.
    cls : sequence of float
        Confidence levels of the two-sided intervals (default 68.27% and 95%).
    global_observables : array (n,), optional
        Constraint centres (standard deviations); default 0.

    Returns
    -------
    LikelihoodScan
    """
    model, poi = hypothesis_model(mgg, shape, window, bkg_order=bkg_order, yield_uncertainties=yield_uncertainties,
                                  shape_uncertainties=shape_uncertainties, spurious_signals=spurious_signals)
    levels = scan_levels(cls)
    batch = CombinedBatch(CombinedRequest.from_model(model))
    cf = centred_fit(batch, centre=global_observables)
    mu_hat, mu_err = float(cf.mu_hat[0]), float(cf.mu_err[0])
    if not np.isfinite(mu_hat):
        raise FitInputError("likelihood scan: the unconditional fit gave no finite POI")
    if poi_values is None:
        if int(n_points) < 3:
            raise FitInputError(f"likelihood scan: n_points must be >= 3, got {n_points}")
        half = n_sigma * (mu_err if np.isfinite(mu_err) and mu_err > 0 else max(abs(mu_hat), 1.0))
        x = np.linspace(mu_hat - half, mu_hat + half, int(n_points))
    else:
        x = np.asarray(poi_values, float)
        if x.ndim != 1 or len(x) < 1 or not np.all(np.isfinite(x)):
            raise FitInputError("likelihood scan: poi_values must be a non-empty 1-D array of finite values")
    prof = _Profile(cf)
    d, ok, st = prof.grid(x)
    root, found = _crossings(prof, x, d, ok, st, levels)
    if not ok.all():
        logger.warning("likelihood scan: %d of %d grid points did not converge", int((~ok).sum()), len(x))
    ivs = tuple(Interval(float(c), float(lv), float(root[i, 0]), float(root[i, 1]), bool(found[i, 0]), bool(found[i, 1]))
                for i, (c, lv) in enumerate(zip(cls, levels)))
    return LikelihoodScan(x, d, ok, st.shared[:, 1:].copy(), mu_hat, mu_err, float(cf.nll_hat[0]), ivs, poi, model.nuisance_names)


def plot_likelihood_scan(scan: LikelihoodScan, *, path: str | Path | None = None, text: str | None = None) -> Any:
    """``-2 Delta ln L`` versus the POI with the levels and crossings of every interval; the path if given, else the figure."""
    from signal_models._common.plotstyle import DEFAULT_LABEL, label, new_figure, place_legend, save, style

    tex = r"N_{\mathrm{sig}}" if scan.poi == "N_sig" else r"\mu"
    ok = scan.converged
    with style():
        fig, ax = new_figure(figsize=(8.0, 6.0))
        ax.plot(scan.poi_values[ok], scan.dnll2[ok], "k-", lw=1.8, label="profile likelihood")
        ax.plot(scan.poi_values[ok], scan.dnll2[ok], "ko", ms=3)
        curves = [(scan.poi_values[ok], scan.dnll2[ok])]
        colours = ("tab:green", "tab:orange", "tab:purple", "tab:red")
        for i, iv in enumerate(scan.intervals):
            c = colours[i % len(colours)]
            ax.axhline(iv.level, color=c, ls="--", lw=1.0)
            ends = [v for v, f in ((iv.lo, iv.found_lo), (iv.hi, iv.found_hi)) if f]
            lab = f"{100 * iv.cl:.3g}% CL: [{iv.lo:.4g}, {iv.hi:.4g}]" if len(ends) == 2 else f"{100 * iv.cl:.3g}% CL"
            for v in ends:
                ax.axvline(v, color=c, ls=":", lw=1.0)
            ax.plot(ends, [iv.level] * len(ends), "o", color=c, ms=6, label=lab)
            curves.append((np.array(ends), np.full(len(ends), iv.level)))
        ax.set_xlabel(f"${tex}$")
        ax.set_ylabel(r"$-2\,\Delta\ln L$")
        top = max(float(np.nanmax(scan.dnll2[ok])) if ok.any() else 0.0, max((iv.level for iv in scan.intervals), default=1.0))
        ax.set_ylim(0.0, 1.15 * top)
        label(ax, text=text or DEFAULT_LABEL)
        ax.set_title(f"${tex}$ = {scan.mu_hat:.4g} $\\pm$ {scan.mu_err:.3g}", loc="right", fontsize="small")
        fig.tight_layout()
        place_legend(ax, curves, fontsize="small")
        fig.tight_layout()
    if path is None:
        return fig
    return save(fig, path)

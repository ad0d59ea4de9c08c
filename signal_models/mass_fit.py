"""The calibration fit at one generated mass (``fit_mass``) and its result (``MassFit``).

The selected signal-MC candidates of one generated ALP mass are split by the
truth-match flag: the truth-matched pairs are fitted with the DSCB, the wrong
pairs (combinatorics) with the linear Chebyshev times the step at the upper
kinematic edge of the wrong-pair spectrum, in one simultaneous unbinned
likelihood (``signal_models.calibration_fitter.CalibrationFitter``). The edge
position and width are measured first from the end of the wrong-pair
spectrum, which may lie outside the window (``signal_models.edges``), and are
fixed in the window fit; far from the window the step is exactly 1. The
combinatorial fraction is the (weighted) fraction of wrong pairs in the fit
window: given the truth flags this count is its maximum-likelihood estimate,
and fixing it from the flags is what keeps the combinatorial slope stable for
small samples.

The fit range is ``mu +- half_width * sigma`` (20 sigma by default): a first
fit uses a robust estimate of the peak and width (median and MAD of the
truth-matched masses), then the fit is repeated on the window of the fitted
``mu, sigma`` until the window no longer moves.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ._common.defaults import DEFAULT_HALF_WIDTH
from .calibration_fitter import DEFAULT_START, FIT_PARAMS, CalibrationFitter, StandardisedFit
from .combinatorial import comb_integral, rescale_comb_slope
from .edges import find_edge
from .errors import ShapeError
from .goodness_of_fit import chi2_equal_probability
from .sample_stats import robust_peak
from .shapes import SignalShape

logger = logging.getLogger(__name__)

__all__ = ["MassFit", "fit_mass", "same_mass", "count_efficiency", "grouped_count_error"]


def same_mass(mass: float, other: float) -> bool:
    """Whether ``other`` is the generated mass ``mass`` (GeV), to 1e-9 relative (absolute below 1 GeV)."""
    return abs(other - mass) <= 1e-9 * max(1.0, abs(mass))


@dataclass(frozen=True)
class MassFit:
    """Result of the calibration fit at one generated mass.

    Masses in GeV. ``params``/``errors`` are in the ``SignalShape``
    parametrisation (``mu``, ``sigma`` in GeV; ``comb_slope`` on the domain
    ``mu +- comb_domain * sigma``); fixed parameters have error 0.
    ``status`` is ``"ok"``, ``"failed"`` (fit did not converge after
    retries) or ``"skipped"`` (too few events); only ``"ok"`` masses enter
    the interpolation.
    """

    mass: float
    n_generated: int
    status: str = "ok"
    reason: str = ""
    params: dict[str, float] = field(default_factory=dict)
    errors: dict[str, float] = field(default_factory=dict)
    fixed: list[str] = field(default_factory=list)
    window: tuple[float, float] = (math.nan, math.nan)
    comb_domain: float = DEFAULT_HALF_WIDTH
    n_tm: float = 0.0
    n_comb: float = 0.0
    n_eff: float = 0.0
    eff_tm: float = 0.0
    eff_tm_err: float = 0.0
    eff_total: float = 0.0
    eff_total_err: float = 0.0
    chi2: float = math.nan
    ndf: int = 0
    pvalue: float = math.nan
    edm: float = math.nan
    n_attempts: int = 0
    n_iterations: int = 0
    #: binned candidates in the window for plots: {"edges", "counts", "counts_tm", "sumw2"}
    histogram: dict[str, list[float]] = field(default_factory=dict)
    #: wrong-pair edge: "measured" (then ``params``/``errors`` hold ``comb_edge`` and
    #: ``comb_edge_width``), "above" / "below" the window, or "none" (see ``signal_models.edges``)
    edge_status: str = "none"

    @property
    def ok(self) -> bool:
        """Whether the fit succeeded (``status == "ok"``)."""
        return self.status == "ok"

    def shape(self) -> SignalShape:
        """The fitted shape (only for ``status == "ok"``)."""
        if not self.ok:
            raise ShapeError(f"mass {self.mass} GeV: no fitted shape (status {self.status!r}: {self.reason})")
        return SignalShape(comb_domain=self.comb_domain, **self.params)

    @property
    def comb_kept(self) -> float:
        """Fraction of the edge-free combinatorial line in the window that the edge keeps (1 without edge)."""
        if not self.ok or self.edge_status != "measured":
            return 1.0
        s = self.shape()
        lo, hi = self.window
        e, w = s.edge_in_domain_units()
        u1, u2 = s.domain_units(lo), s.domain_units(hi)
        return float(comb_integral(u1, u2, s.comb_slope, e, w) / comb_integral(u1, u2, s.comb_slope))

    def to_dict(self) -> dict[str, Any]:
        """All fields as a dictionary (``window`` as a list; NaN where nothing was fitted)."""
        d = asdict(self)
        d["window"] = [float(v) for v in self.window]
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> MassFit:
        """The result of a ``to_dict`` dictionary."""
        kw = dict(d)
        kw["window"] = tuple(kw.get("window", (math.nan, math.nan)))
        return cls(**kw)


def count_efficiency(n_pass: int, n_generated: int) -> tuple[float, float]:
    """Efficiency ``n_pass / n_generated`` and its binomial error (at least that of one event).

    A candidate count can exceed the events generated (several candidates per
    event); the error then uses the Poisson limit.
    """
    ngen = float(n_generated)
    eff = n_pass / ngen
    var = max(n_pass * (1.0 - min(eff, 1.0)), 1.0)
    return eff, math.sqrt(var) / ngen


def grouped_count_error(event_ids: ArrayLike, n_generated: int) -> float:
    """Error of ``n_candidates / n_generated`` when an event can give several candidates.

    ``event_ids``: the generated event of each counted candidate. With c_i
    candidates from event i (0 for the events without one), the efficiency is
    the mean of c over the ``n_generated`` events and its variance
    ``(sum c_i^2 - (sum c_i)^2 / N) / N^2``; for at most one candidate per event
    this is the binomial error of ``count_efficiency`` (at least that of one event).
    """
    ids = np.asarray(event_ids).ravel()
    ngen = float(n_generated)
    if ids.size == 0:
        return 1.0 / ngen
    counts = np.unique(ids, return_counts=True)[1].astype(float)
    var = float(np.sum(counts**2) - counts.sum() ** 2 / ngen)
    return math.sqrt(max(var, 1.0)) / ngen


def _rescale_slope(slope: float, c_from: float, h_from: float, c_to: float, h_to: float) -> float:
    """``rescale_comb_slope``, or 0 (a flat line) where the line is not positive on the new domain's centre."""
    try:
        return rescale_comb_slope(slope, c_from, h_from, c_to, h_to)
    except ShapeError:
        return 0.0


def _standardised_start(prev: MassFit | None, fixed_values: Mapping[str, float]) -> dict[str, float]:
    start = {"mu": 0.0, "sigma": 1.0, **DEFAULT_START}
    if prev is not None and prev.ok:
        for k in ("alpha_l", "alpha_r", "n_l", "n_r", "comb_slope"):
            start[k] = prev.params[k]
    start.update(fixed_values)
    return start


def fit_mass(
    fitter: CalibrationFitter,
    x: NDArray,
    tm: NDArray,
    w: NDArray,
    *,
    mass: float,
    n_generated: int,
    fixed: Sequence[str],
    fixed_values: Mapping[str, float],
    min_events: int = 100,
    max_iterations: int = 4,
    start_from: MassFit | None = None,
    strategy: int = 0,
    n_hist_bins: int = 80,
    limit_ok: Sequence[str] = (),
) -> MassFit:
    """Iterated window fit at one generated mass (see the module docstring).

    Parameters
    ----------
    fitter : CalibrationFitter
        The (reused) zfit fitter; its ``half_width`` is the window in units of sigma.
    x, tm, w : ndarray
        Candidate masses (GeV), truth-match flags and weights at this mass.
    mass : float
        The generated mass (GeV).
    n_generated : int
        Events generated at this mass (efficiency denominator).
    fixed, fixed_values : sequence of str, mapping
        Shape parameters kept fixed, and their values.
    min_events : int
        Fewer truth-matched candidates: ``status = "skipped"``.
    max_iterations : int
        Most window iterations.
    start_from : MassFit, optional
        A fitted neighbour whose tail parameters and slope are the starting values.
    strategy : int
        Minuit strategy (0-2).
    n_hist_bins : int
        Bins of the stored histogram (plots).
    limit_ok : sequence of str
        Floating parameters that may end at a fit limit (``CalibrationFitter.fit``).

    Returns
    -------
    MassFit
        ``n_attempts`` is 0 (``calibrate`` counts the attempts).
    """
    hw = fitter.half_width
    mass, n_generated, fixed_sorted = float(mass), int(n_generated), sorted(fixed)
    good = np.isfinite(x) & np.isfinite(w)
    if not good.all():
        logger.warning("mass %.6g GeV: dropping %d candidate(s) with non-finite mass or weight", mass, int((~good).sum()))
        x, tm, w = x[good], tm[good], w[good]
    n_tm_all = int(tm.sum())
    if n_tm_all < min_events:
        reason = f"{n_tm_all} truth-matched candidates < min_events={min_events}"
        return MassFit(mass=mass, n_generated=n_generated, status="skipped", reason=reason, fixed=fixed_sorted, comb_domain=hw)
    m0, s0 = robust_peak(x[tm], w[tm])
    edge = find_edge(x[~tm], w[~tm], mu=m0, sigma=s0, window=(m0 - hw * s0, m0 + hw * s0))
    start = _standardised_start(start_from, fixed_values)
    if start_from is not None and start_from.ok:
        # the previous mass tells how the core sigma relates to the robust width
        start["sigma"] = 1.0
    res: StandardisedFit | None = None
    valid, reason, errs, n_iterations = False, "", {}, 0
    for iteration in range(1, max_iterations + 1):
        lo, hi = m0 - hw * s0, m0 + hw * s0
        inwin = (x >= lo) & (x <= hi)
        sel_t, sel_c = inwin & tm, inwin & ~tm
        w_t, w_c = w[sel_t], w[sel_c]
        n_comb = int(sel_c.sum())
        floating = [k for k in FIT_PARAMS if k not in fixed]
        if n_comb < 10:
            floating.remove("comb_slope")
            start["comb_slope"] = 0.0
        # weights scaled to effective counts so that Hesse errors are those of the effective sample
        wt_s = w_t * (w_t.sum() / np.sum(w_t * w_t))
        wc_s = w_c * (w_c.sum() / np.sum(w_c * w_c)) if n_comb else w_c
        edge_t = ((edge.edge - m0) / s0, edge.width / s0) if edge.status == "measured" else None
        res = fitter.fit(
            (x[sel_t] - m0) / s0, wt_s, (x[sel_c] - m0) / s0, wc_s, start=start, floating=floating, strategy=strategy, rough=iteration == 1 and max_iterations > 1, edge=edge_t,
            limit_ok=limit_ok,
        )
        n_iterations = iteration
        valid, reason = res.valid, res.reason
        if not valid:
            break
        vals = res.values
        new_m0, new_s0 = m0 + s0 * vals["mu"], s0 * vals["sigma"]
        moved = abs(new_m0 - m0) > 0.05 * new_s0 or abs(new_s0 / s0 - 1.0) > 0.02
        if (not moved and iteration > 1) or iteration == max_iterations:
            errs, hesse_reason = fitter.hesse()
            if hesse_reason:
                valid, reason = False, hesse_reason
            break
        # next window: centred on the fitted peak; restart from the fitted values rescaled
        start = dict(vals)
        start["mu"], start["sigma"] = (m0 + s0 * vals["mu"] - new_m0) / new_s0, s0 * vals["sigma"] / new_s0
        start["comb_slope"] = _rescale_slope(vals["comb_slope"], m0, hw * s0, new_m0, hw * new_s0)
        m0, s0 = new_m0, new_s0
    assert res is not None
    if not valid:
        return MassFit(
            mass=mass,
            n_generated=n_generated,
            status="failed",
            reason=reason,
            fixed=fixed_sorted,
            window=(float(lo), float(hi)),
            comb_domain=hw,
            edm=res.edm,
            n_iterations=n_iterations,
            edge_status=edge.status,
        )
    vals = res.values
    mu, sigma = m0 + s0 * vals["mu"], s0 * vals["sigma"]
    slope = _rescale_slope(vals["comb_slope"], m0, hw * s0, mu, hw * sigma)
    d_slope = abs(_rescale_slope(vals["comb_slope"] + 1e-6, m0, hw * s0, mu, hw * sigma) - slope) / 1e-6
    # counts (fraction, efficiencies, chi2) refer to the nominal window of the fitted shape,
    # mu +- half_width * sigma, which the last fit window matches to within 2 % of sigma
    lo, hi = mu - hw * sigma, mu + hw * sigma
    inwin = (x >= lo) & (x <= hi)
    w_t, w_c = w[inwin & tm], w[inwin & ~tm]
    sum_t, sum_c = float(w_t.sum()), float(w_c.sum())
    total = sum_t + sum_c
    n_eff = total**2 / float(np.sum(w_t * w_t) + np.sum(w_c * w_c))
    f = sum_c / total
    params = {
        "mu": mu,
        "sigma": sigma,
        "alpha_l": vals["alpha_l"],
        "n_l": vals["n_l"],
        "alpha_r": vals["alpha_r"],
        "n_r": vals["n_r"],
        "comb_fraction": f,
        "comb_slope": float(np.clip(slope, -1.0, 1.0)),
    }
    errors = {
        "mu": s0 * errs["mu"],
        "sigma": s0 * errs["sigma"],
        "alpha_l": errs["alpha_l"],
        "n_l": errs["n_l"],
        "alpha_r": errs["alpha_r"],
        "n_r": errs["n_r"],
        "comb_fraction": math.sqrt(max(f * (1.0 - f), 1.0 / n_eff) / n_eff),
        "comb_slope": d_slope * errs["comb_slope"] if errs["comb_slope"] > 0 else 0.0,
    }
    if edge.status == "measured":
        params["comb_edge"], errors["comb_edge"] = edge.edge, edge.edge_err
        params["comb_edge_width"], errors["comb_edge_width"] = edge.width, edge.width_err
    params = {k: float(v) for k, v in params.items()}
    window = (float(lo), float(hi))
    # Efficiencies count candidates, unweighted, over the events generated (also a count): the
    # weights (e.g. sigma x L / N_gen of a toy-MC sample) shape the fit but must not enter a ratio
    # whose denominator is a plain count.
    eff_tm, eff_tm_err = count_efficiency(int(np.count_nonzero(inwin & tm)), n_generated)
    eff_total, eff_total_err = count_efficiency(int(np.count_nonzero(inwin)), n_generated)
    if eff_tm > 1.0 + 1e-9:
        logger.warning("mass %.6g GeV: truth-matched efficiency %.4g > 1: n_generated=%d is too small for the candidates given", mass, eff_tm, n_generated)
    shape = SignalShape(comb_domain=hw, **params)
    inwin = (x >= window[0]) & (x <= window[1])
    n_float = len([k for k in FIT_PARAMS if k not in fixed]) + 1  # + the counted fraction
    chi2, ndf, pvalue = chi2_equal_probability(x[inwin], w[inwin], shape, *window, n_fitted=n_float)
    bins = np.linspace(window[0], window[1], n_hist_bins + 1)
    histogram = {
        "edges": bins.tolist(),
        "counts": np.histogram(x[inwin], bins=bins, weights=w[inwin])[0].tolist(),
        "counts_tm": np.histogram(x[inwin & tm], bins=bins, weights=w[inwin & tm])[0].tolist(),
        "sumw2": np.histogram(x[inwin], bins=bins, weights=w[inwin] ** 2)[0].tolist(),
    }
    return MassFit(
        mass=mass,
        n_generated=n_generated,
        status="ok",
        reason="",
        params=params,
        errors={k: float(v) for k, v in errors.items()},
        fixed=fixed_sorted,
        window=window,
        comb_domain=hw,
        n_tm=sum_t,
        n_comb=sum_c,
        n_eff=float(n_eff),
        eff_tm=eff_tm,
        eff_tm_err=eff_tm_err,
        eff_total=eff_total,
        eff_total_err=eff_total_err,
        chi2=chi2,
        ndf=ndf,
        pvalue=pvalue,
        edm=res.edm,
        n_iterations=n_iterations,
        histogram=histogram,
        edge_status=edge.status,
    )

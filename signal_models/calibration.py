"""Per-mass calibration fits of the signal shape with zfit (Minuit minimiser).

At each generated ALP mass the selected signal-MC candidates are split by
the truth-match flag: the truth-matched (TM) pairs are fitted with a
``zfit.pdf.DoubleCB``, the wrong pairs (combinatorics) with a first-order
Chebyshev times the step at the upper kinematic edge of the wrong-pair
spectrum (``signal_models.zfit_shapes.EdgedChebyshev``), in one simultaneous
unbinned likelihood (``zfit.minimize.Minuit``). The edge position and width
are measured first from the end of the wrong-pair spectrum, which may lie
outside the window (``signal_models.edges.find_edge``), and are fixed in
the window fit; far from the window the step is exactly 1. The combinatorial fraction is the (weighted)
fraction of wrong pairs in the fit window: given the truth flags this count
is its maximum-likelihood estimate, and fixing it from the flags is what
keeps the combinatorial slope stable for small samples.

The fit range is ``mu +- half_width * sigma`` (20 sigma by default): a first
fit uses a robust estimate of the peak and width (median and MAD of the TM
masses), then the fit is repeated on the window of the fitted ``mu, sigma``
until the window no longer moves.

Speed: every fit runs in standardised units ``t = (x - m0) / s0`` where
``m0, s0`` are the current window centre and width, so the window is always
``[-half_width, half_width]`` and a *single* zfit model and compiled
likelihood serve all masses: the data live in shape-agnostic ``tf.Variable``
objects that are re-assigned per mass and the parameters are reset, so the
TensorFlow graph is traced once.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import stats

from .edges import find_edge
from .shapes import ShapeError, SignalShape, comb_integral, dscb_integral

logger = logging.getLogger(__name__)

__all__ = ["MassFit", "CalibrationFitter", "calibrate", "robust_peak", "chi2_equal_probability"]

#: shape parameters fitted per mass (comb_fraction is counted, not fitted)
FIT_PARAMS = ("mu", "sigma", "alpha_l", "n_l", "alpha_r", "n_r", "comb_slope")
#: standardised edge position that stands for "no edge" (the step is exactly 1 on the window)
_NO_EDGE_T = 1.0e4
DEFAULT_START = {"alpha_l": 1.5, "alpha_r": 1.5, "n_l": 5.0, "n_r": 5.0, "comb_slope": 0.0}
_BOUNDS_T = {
    "mu": (-5.0, 5.0),
    "sigma": (0.05, 20.0),
    "alpha_l": (0.05, 15.0),
    "alpha_r": (0.05, 15.0),
    "n_l": (1.05, 150.0),
    "n_r": (1.05, 150.0),
    "comb_slope": (-1.0, 1.0),
}


@dataclass
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
    comb_domain: float = 20.0
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
        e, w = s._edge_u()
        u1, u2 = s._u(lo), s._u(hi)
        return float(comb_integral(u1, u2, s.comb_slope, e, w) / comb_integral(u1, u2, s.comb_slope))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["window"] = [float(v) for v in self.window]
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "MassFit":
        kw = dict(d)
        kw["window"] = tuple(kw.get("window", (math.nan, math.nan)))
        return cls(**kw)


# -- helpers ------------------------------------------------------------------


def robust_peak(x: ArrayLike, w: ArrayLike | None = None) -> tuple[float, float]:
    """Robust peak position and core width of a peaked sample (GeV).

    Weighted median and 1.4826 x (weighted) median absolute deviation: for a
    Gaussian core with tails beyond ~1 sigma this is close to the core sigma
    and is only the starting point of the iterated fit.
    """
    x = np.asarray(x, dtype=float)
    w = np.ones_like(x) if w is None else np.asarray(w, dtype=float)
    med = _wquantile(x, w, 0.5)
    mad = _wquantile(np.abs(x - med), w, 0.5)
    if not mad > 0:
        mad = np.std(x) if np.std(x) > 0 else 1e-3 * max(abs(med), 1.0)
    return float(med), float(1.4826 * mad)


def _wquantile(x: NDArray, w: NDArray, q: float) -> float:
    order = np.argsort(x)
    cw = np.cumsum(w[order])
    return float(x[order][np.searchsorted(cw, q * cw[-1])])


def _mixture_cdf_grid(shape: SignalShape, lo: float, hi: float, n: int = 4001) -> tuple[NDArray, NDArray]:
    grid = np.linspace(lo, hi, n)
    t = (grid - shape.mu) / shape.sigma
    t_lo = (lo - shape.mu) / shape.sigma
    peak = dscb_integral(t_lo, t, shape.alpha_l, shape.n_l, shape.alpha_r, shape.n_r)
    peak = peak / peak[-1]
    cdf = (1.0 - shape.comb_fraction) * peak
    if shape.comb_fraction > 0:
        scale = shape.comb_domain * shape.sigma
        u = (grid - shape.mu) / scale
        e, w = shape._edge_u()
        comb = comb_integral((lo - shape.mu) / scale, u, shape.comb_slope, e, w)
        cdf = cdf + shape.comb_fraction * comb / comb[-1]
    return grid, cdf


def chi2_equal_probability(x: ArrayLike, w: ArrayLike | None, shape: SignalShape, lo: float, hi: float, *, n_bins: int | None = None, n_fitted: int = 0) -> tuple[float, int, float]:
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


# -- the zfit fitter -------------------------------------------------------------


class CalibrationFitter:
    """One zfit model (DoubleCB + Chebyshev) in standardised units, reused for every mass.

    Parameters
    ----------
    half_width : float
        Fit window half-width in units of sigma (also the Chebyshev domain).
    tol : float
        Minuit tolerance (EDM goal) passed to ``zfit.minimize.Minuit``.
    prefix : str
        Name prefix of the zfit parameters (several fitters may coexist).
    """

    def __init__(self, *, half_width: float = 20.0, tol: float = 1e-3, prefix: str = "cal") -> None:
        import tensorflow as tf
        import zfit
        import zfit.z.numpy as znp

        from .zfit_shapes import EdgedChebyshev

        self._zfit = zfit
        self.half_width = float(half_width)
        self.tol = tol
        obs = zfit.Space("t", -self.half_width, self.half_width)
        self.params = {
            k: zfit.Parameter(f"{prefix}_{k}", self._start_default(k), *_BOUNDS_T[k]) for k in FIT_PARAMS
        }
        p = self.params
        self.dscb = zfit.pdf.DoubleCB(p["mu"], p["sigma"], p["alpha_l"], p["n_l"], p["alpha_r"], p["n_r"], obs=obs)
        # the wrong-pair edge in standardised units, fixed per mass (far away: a step of exactly 1)
        self.edge = {k: zfit.Parameter(f"{prefix}_comb_{k}", v, floating=False) for k, v in (("edge", _NO_EDGE_T), ("width", 1.0))}
        self.comb = EdgedChebyshev(obs, p["comb_slope"], self.edge["edge"], self.edge["width"])
        # shape-agnostic variables: new data per mass without retracing the graph
        self._vars = {k: tf.Variable(np.zeros(1), shape=tf.TensorShape([None]), dtype=tf.float64, trainable=False) for k in ("xt", "wt", "xc", "wc")}
        v = self._vars

        @tf.function(reduce_retracing=True)
        def nll() -> Any:
            tm = -znp.sum(v["wt"] * znp.log(self.dscb.pdf(v["xt"])))
            comb = -znp.sum(v["wc"] * znp.log(self.comb.pdf(v["xc"])))
            return tm + comb

        all_params = [self.params[k] for k in FIT_PARAMS]

        @tf.function(reduce_retracing=True)
        def nll_grad() -> Any:
            with tf.GradientTape() as tape:
                value = nll()
            return tape.gradient(value, all_params)

        self._nll = nll
        self._nll_grad = nll_grad
        # analytic (autodiff) gradient: far fewer likelihood calls than Minuit's numerical one
        self._minimizers = {s: zfit.minimize.Minuit(tol=tol, gradient="zfit", mode=s) for s in (0, 1, 2)}
        # loose tolerance for the first, window-finding fit of the iteration
        self._rough = zfit.minimize.Minuit(tol=max(tol, 0.05), gradient="zfit", mode=0)

    @staticmethod
    def _start_default(k: str) -> float:
        return {"mu": 0.0, "sigma": 1.0}.get(k, DEFAULT_START.get(k, 0.0))

    def fit(
        self,
        t_tm: NDArray,
        w_tm: NDArray,
        t_comb: NDArray,
        w_comb: NDArray,
        *,
        start: Mapping[str, float],
        floating: Iterable[str],
        strategy: int = 0,
        rough: bool = False,
        edge: tuple[float, float] | None = None,
    ) -> dict[str, Any]:
        """Fit standardised data; returns values, errors, validity and EDM (standardised units).

        ``edge``: the wrong-pair edge and width in standardised units (None: no edge).
        """
        zfit = self._zfit
        v = self._vars
        e_t, w_t = edge if edge is not None else (_NO_EDGE_T, 1.0)
        self.edge["edge"].set_value(float(min(e_t, _NO_EDGE_T)))
        self.edge["width"].set_value(float(w_t))
        v["xt"].assign(np.asarray(t_tm, dtype=float))
        v["wt"].assign(np.asarray(w_tm, dtype=float))
        v["xc"].assign(np.asarray(t_comb, dtype=float))
        v["wc"].assign(np.asarray(w_comb, dtype=float))
        floating = set(floating)
        for k, par in self.params.items():
            lo, hi = _BOUNDS_T[k]
            par.set_value(float(np.clip(start.get(k, self._start_default(k)), lo + 1e-6 * (hi - lo), hi - 1e-6 * (hi - lo))))
            par.floating = k in floating
        free = [self.params[k] for k in FIT_PARAMS if k in floating]
        nll, nll_grad = self._nll, self._nll_grad
        index = [FIT_PARAMS.index(k) for k in FIT_PARAMS if k in floating]

        def gradient(_params: Any) -> Any:
            g = nll_grad()
            return np.array([float(g[i]) for i in index])

        def value(_values: Any) -> Any:
            return nll()

        loss = zfit.loss.SimpleLoss(value, params=free, errordef=0.5, gradient=gradient)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            minimizer = self._rough if rough and strategy == 0 else self._minimizers[strategy]
            try:
                result = minimizer.minimize(loss)
            except (RuntimeError, ValueError, FloatingPointError) as exc:
                # e.g. a non-finite likelihood gradient far out in a tail exponent: a failed
                # attempt, retried by the caller from other starting values
                values = {k: float(self.params[k].value()) for k in FIT_PARAMS}
                return {"values": values, "valid": False, "reason": f"minimisation error: {exc}", "edm": math.nan, "fmin": math.nan}
        self._last = (result, floating)
        values = {k: float(self.params[k].value()) for k in FIT_PARAMS}
        at_limit = []
        for k in floating:
            lo, hi = _BOUNDS_T[k]
            if k == "comb_slope":
                continue  # |slope| = 1 is a legitimate (vanishing-at-the-edge) line
            if min(values[k] - lo, hi - values[k]) < 1e-4 * (hi - lo):
                at_limit.append(k)
        # Minuit's own verdict: zfit's ``valid`` is also False when any parameter sits at a limit,
        # but a combinatorial slope of +-1 (a line vanishing at a domain edge) is a legitimate result
        fmin = result.info.get("original") if isinstance(result.info, Mapping) else None
        minuit_valid = bool(fmin.is_valid) if fmin is not None and hasattr(fmin, "is_valid") else bool(result.valid)
        reason = ""
        if not minuit_valid:
            reason = "Minuit minimum not valid"
        elif not all(np.isfinite(values[k]) for k in FIT_PARAMS):
            reason = "non-finite parameter value"
        elif at_limit:
            reason = f"parameter(s) at limit: {sorted(at_limit)}"
        return {"values": values, "valid": reason == "", "reason": reason, "edm": float(result.edm), "fmin": float(result.fmin)}

    def hesse(self) -> tuple[dict[str, float], str]:
        """Minuit Hesse errors of the last fit (standardised units); ("", ...) reason when fine."""
        result, floating = self._last
        errors = {k: 0.0 for k in FIT_PARAMS}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                h = result.hesse(method="minuit_hesse")
            except Exception as exc:  # a failing Hesse is a fit failure, retried by the caller
                return errors, f"Hesse failed: {exc}"
        for k in FIT_PARAMS:
            par = self.params[k]
            if par in h:
                errors[k] = float(h[par]["error"])
        bad = [k for k in floating if not (np.isfinite(errors[k]) and errors[k] > 0)]
        if bad:
            return errors, f"Hesse errors not finite/positive for {bad}"
        return errors, ""


# -- per-mass driver ----------------------------------------------------------------


def _standardised_start(prev: MassFit | None, fixed_values: Mapping[str, float], s0: float) -> dict[str, float]:
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
) -> MassFit:
    """Iterated window fit at one generated mass (see module docstring).

    ``x`` candidate masses (GeV), ``tm`` truth-match flags, ``w`` weights.
    """
    hw = fitter.half_width
    out = MassFit(mass=float(mass), n_generated=int(n_generated), fixed=sorted(fixed), comb_domain=hw)
    good = np.isfinite(x) & np.isfinite(w)
    if not good.all():
        logger.warning("mass %.6g GeV: dropping %d candidate(s) with non-finite mass or weight", mass, int((~good).sum()))
        x, tm, w = x[good], tm[good], w[good]
    n_tm_all = int(tm.sum())
    if n_tm_all < min_events:
        out.status, out.reason = "skipped", f"{n_tm_all} truth-matched candidates < min_events={min_events}"
        return out
    m0, s0 = robust_peak(x[tm], w[tm])
    edge = find_edge(x[~tm], w[~tm], mu=m0, sigma=s0, window=(m0 - hw * s0, m0 + hw * s0))
    out.edge_status = edge.status
    start = _standardised_start(start_from, fixed_values, s0)
    if start_from is not None and start_from.ok:
        # the previous mass tells how the core sigma relates to the robust width
        start["sigma"] = 1.0
    res: dict[str, Any] | None = None
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
            (x[sel_t] - m0) / s0, wt_s, (x[sel_c] - m0) / s0, wc_s, start=start, floating=floating, strategy=strategy, rough=iteration == 1 and max_iterations > 1, edge=edge_t
        )
        out.n_iterations = iteration
        if not res["valid"]:
            break
        vals = res["values"]
        new_m0, new_s0 = m0 + s0 * vals["mu"], s0 * vals["sigma"]
        moved = abs(new_m0 - m0) > 0.05 * new_s0 or abs(new_s0 / s0 - 1.0) > 0.02
        if (not moved and iteration > 1) or iteration == max_iterations:
            errs, hesse_reason = fitter.hesse()
            res["errors"] = errs
            if hesse_reason:
                res["valid"], res["reason"] = False, hesse_reason
            break
        # next window: centred on the fitted peak; restart from the fitted values rescaled
        start = dict(vals)
        start["mu"], start["sigma"] = (m0 + s0 * vals["mu"] - new_m0) / new_s0, s0 * vals["sigma"] / new_s0
        start["comb_slope"] = _rescale_slope(vals["comb_slope"], m0, hw * s0, new_m0, hw * new_s0)
        m0, s0 = new_m0, new_s0
    assert res is not None
    out.edm = res["edm"]
    if not res["valid"]:
        out.status, out.reason = "failed", res["reason"]
        out.window = (float(lo), float(hi))
        return out
    vals, errs = res["values"], res["errors"]
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
    out.params, out.errors = {k: float(v) for k, v in params.items()}, {k: float(v) for k, v in errors.items()}
    out.window = (float(lo), float(hi))
    out.n_tm, out.n_comb, out.n_eff = sum_t, sum_c, float(n_eff)
    # Efficiencies count candidates, unweighted, over the events generated (also a count): the
    # weights (e.g. sigma x L / N_gen of a toy-MC sample) shape the fit but must not enter a ratio
    # whose denominator is a plain count.
    out.eff_tm, out.eff_tm_err = _count_efficiency(int(np.count_nonzero(inwin & tm)), n_generated)
    out.eff_total, out.eff_total_err = _count_efficiency(int(np.count_nonzero(inwin)), n_generated)
    if out.eff_tm > 1.0 + 1e-9:
        logger.warning("mass %.6g GeV: truth-matched efficiency %.4g > 1: n_generated=%d is too small for the candidates given", mass, out.eff_tm, n_generated)
    shape = out.shape()
    inwin = (x >= out.window[0]) & (x <= out.window[1])
    n_float = len([k for k in FIT_PARAMS if k not in fixed]) + 1  # + the counted fraction
    out.chi2, out.ndf, out.pvalue = chi2_equal_probability(x[inwin], w[inwin], shape, *out.window, n_fitted=n_float)
    edges = np.linspace(out.window[0], out.window[1], n_hist_bins + 1)
    out.histogram = {
        "edges": edges.tolist(),
        "counts": np.histogram(x[inwin], bins=edges, weights=w[inwin])[0].tolist(),
        "counts_tm": np.histogram(x[inwin & tm], bins=edges, weights=w[inwin & tm])[0].tolist(),
        "sumw2": np.histogram(x[inwin], bins=edges, weights=w[inwin] ** 2)[0].tolist(),
    }
    out.status, out.reason = "ok", ""
    return out


def _count_efficiency(n_pass: int, n_generated: int) -> tuple[float, float]:
    """Efficiency ``n_pass / n_generated`` and its binomial error (at least that of one event).

    A candidate count can exceed the events generated (several candidates per
    event); the error then uses the Poisson limit.
    """
    ngen = float(n_generated)
    eff = n_pass / ngen
    var = max(n_pass * (1.0 - min(eff, 1.0)), 1.0)
    return eff, math.sqrt(var) / ngen


def _rescale_slope(slope: float, c_from: float, h_from: float, c_to: float, h_to: float) -> float:
    a = 1.0 - slope * c_from / h_from
    b = slope / h_from
    at = a + b * c_to
    if not at > 0:
        return 0.0
    return float(b * h_to / at)


def calibrate(
    mgg: ArrayLike,
    truth_match: ArrayLike,
    mc_ma: ArrayLike,
    *,
    n_generated: Mapping[float, int],
    weights: ArrayLike | None = None,
    fixed: Sequence[str] = ("n_l", "n_r"),
    fixed_values: Mapping[str, float] | None = None,
    half_width: float = 20.0,
    min_events: int = 100,
    n_prepass: int = 8,
    masses: Sequence[float] | None = None,
    fitter: CalibrationFitter | None = None,
    progress: Callable[[Iterable[Any]], Iterable[Any]] | None = None,
) -> list[MassFit]:
    """Fit every generated mass; returns one ``MassFit`` per mass (sorted by mass).

    Parameters
    ----------
    mgg, truth_match, mc_ma : array-like, shape (n,)
        Candidate diphoton masses (GeV), truth-match flags, generated ALP mass
        of the candidate's event (GeV).
    n_generated : mapping mass -> int
        Number of generated signal events per mass (efficiency denominator).
    weights : array-like, optional
        Candidate weights (default 1). They weight the shape fits only; the
        efficiencies are counts of candidates over ``n_generated``, both
        unweighted, so per-event weights such as sigma x L / N_gen do not
        scale them.
    fixed : sequence of str
        Shape parameters fixed in the per-mass fits (default the tail exponents).
    fixed_values : mapping, optional
        Values of the fixed parameters. Missing ones are determined by a
        pre-pass that floats them at ``n_prepass`` masses with the most
        events and takes the median.
    half_width : float
        Fit range (and Chebyshev domain) in units of sigma.
    min_events : int
        Masses with fewer truth-matched candidates are skipped with a warning.
    masses : sequence of float, optional
        Fit only these generated masses (default: all in ``mc_ma``).
    fitter : CalibrationFitter, optional
        Reuse a fitter (compiled graph) across calls.
    progress : callable, optional
        Wraps the mass iterable (e.g. a progress bar).
    """
    x = np.asarray(mgg, dtype=float)
    tm = np.asarray(truth_match, dtype=bool)
    ma = np.asarray(mc_ma, dtype=float)
    w = np.ones_like(x) if weights is None else np.asarray(weights, dtype=float)
    if not (x.shape == tm.shape == ma.shape == w.shape) or x.ndim != 1:
        raise ShapeError(f"mgg, truth_match, mc_ma and weights must be 1-D arrays of one length, got shapes {x.shape}, {tm.shape}, {ma.shape}, {w.shape}")
    unknown_fixed = set(fixed) - set(FIT_PARAMS)
    if unknown_fixed:
        raise ShapeError(f"fixed: unknown parameter(s) {sorted(unknown_fixed)}; expected names from {FIT_PARAMS}")
    if not np.isfinite(ma).all():
        raise ShapeError(f"mc_ma contains {int((~np.isfinite(ma)).sum())} non-finite value(s); every candidate needs its generated mass")
    all_masses = np.unique(ma) if masses is None else np.unique(np.asarray(masses, dtype=float))
    ngen = {float(k): int(v) for k, v in n_generated.items()}
    missing = [m for m in all_masses if _lookup(ngen, m) is None]
    if missing:
        raise ShapeError(f"n_generated has no entry for generated mass(es) {missing[:5]} GeV (keys: {sorted(ngen)[:5]}...)")
    fitter = fitter or CalibrationFitter(half_width=half_width)
    if abs(fitter.half_width - half_width) > 1e-12:
        raise ShapeError(f"fitter half_width {fitter.half_width} != half_width {half_width}")
    order = np.argsort(ma, kind="stable")
    ma_sorted = ma[order]
    bounds = np.searchsorted(ma_sorted, all_masses, side="left"), np.searchsorted(ma_sorted, all_masses, side="right")

    def data_of(i: int) -> tuple[NDArray, NDArray, NDArray]:
        idx = order[bounds[0][i] : bounds[1][i]]
        return x[idx], tm[idx], w[idx]

    fixed_values = dict(fixed_values or {})
    need = [k for k in fixed if k not in fixed_values]
    if need:
        fixed_values.update(_prepass(fitter, data_of, all_masses, ngen, need, fixed, fixed_values, min_events, n_prepass))
        logger.info("fixed tail parameters from the pre-pass: %s", {k: round(v, 4) for k, v in fixed_values.items()})

    fits: list[MassFit] = []
    prev: MassFit | None = None
    it: Iterable[int] = range(len(all_masses))
    if progress is not None:
        it = progress(it)
    for i in it:
        xi, ti, wi = data_of(i)
        res = _fit_with_retries(fitter, xi, ti, wi, mass=all_masses[i], n_generated=_lookup(ngen, all_masses[i]), fixed=fixed, fixed_values=fixed_values, min_events=min_events, neighbours=[prev])
        if res.status == "skipped":
            logger.warning("mass %.6g GeV skipped: %s", res.mass, res.reason)
        elif res.ok and np.isfinite(res.pvalue) and res.pvalue < 1e-3:
            logger.warning("mass %.6g GeV: the fitted shape describes the candidates poorly (chi2/ndf = %.1f/%d, p = %.2g)", res.mass, res.chi2, res.ndf, res.pvalue)
        if res.ok:
            prev = res
        fits.append(res)
    # second pass: failed fits retried from the nearest successful neighbours on both sides
    for i, res in enumerate(fits):
        if res.status != "failed":
            continue
        left = next((f for f in reversed(fits[:i]) if f.ok), None)
        right = next((f for f in fits[i + 1 :] if f.ok), None)
        xi, ti, wi = data_of(i)
        retry = _fit_with_retries(fitter, xi, ti, wi, mass=all_masses[i], n_generated=res.n_generated, fixed=fixed, fixed_values=fixed_values, min_events=min_events, neighbours=[right, left], attempts_before=res.n_attempts)
        fits[i] = retry
        if retry.ok:
            logger.info("mass %.6g GeV: fit recovered with starting values from a neighbouring mass", retry.mass)
        else:
            logger.warning("mass %.6g GeV: fit failed after %d attempts (%s); excluded from the interpolation", retry.mass, retry.n_attempts, retry.reason)
    return fits


def _lookup(ngen: Mapping[float, int], m: float) -> int | None:
    if m in ngen:
        return ngen[m]
    for k, v in ngen.items():
        if abs(k - m) <= 1e-9 * max(1.0, abs(m)):
            return v
    return None


def _fit_with_retries(
    fitter: CalibrationFitter,
    x: NDArray,
    tm: NDArray,
    w: NDArray,
    *,
    mass: float,
    n_generated: int,
    fixed: Sequence[str],
    fixed_values: Mapping[str, float],
    min_events: int,
    neighbours: Sequence[MassFit | None],
    attempts_before: int = 0,
) -> MassFit:
    starts: list[tuple[MassFit | None, int]] = [(n, 0) for n in neighbours if n is not None and n.ok]
    starts += [(None, 0), (None, 1), (None, 2)]
    res: MassFit | None = None
    for attempt, (start_from, strategy) in enumerate(starts, start=1):
        res = fit_mass(fitter, x, tm, w, mass=mass, n_generated=n_generated, fixed=fixed, fixed_values=fixed_values, min_events=min_events, start_from=start_from, strategy=strategy)
        res.n_attempts = attempts_before + attempt
        if res.status != "failed":
            return res
        logger.info("mass %.6g GeV: attempt %d failed (%s), retrying", mass, attempt, res.reason)
    assert res is not None
    return res


def _prepass(fitter, data_of, masses, ngen, need, fixed, fixed_values, min_events, n_prepass) -> dict[str, float]:
    counts = []
    for i in range(len(masses)):
        _, ti, _ = data_of(i)
        counts.append(int(ti.sum()))
    counts = np.asarray(counts)
    eligible = np.flatnonzero(counts >= max(min_events, 200))
    if eligible.size == 0:
        logger.warning("pre-pass: no mass with enough events to determine %s; using defaults %s", need, {k: DEFAULT_START[k] for k in need})
        return {k: DEFAULT_START[k] for k in need}
    # spread over the mass range, preferring large samples
    picks = eligible[np.linspace(0, eligible.size - 1, min(n_prepass, eligible.size)).round().astype(int)]
    fixed_pre = [k for k in fixed if k not in need]
    found: dict[str, list[tuple[float, float]]] = {k: [] for k in need}
    for i in np.unique(picks):
        xi, ti, wi = data_of(i)
        res = _fit_with_retries(fitter, xi, ti, wi, mass=masses[i], n_generated=_lookup(ngen, masses[i]), fixed=fixed_pre, fixed_values=fixed_values, min_events=min_events, neighbours=[])
        if res.ok:
            for k in need:
                found[k].append((res.params[k], res.errors[k]))
    out = {}
    for k in need:
        if found[k]:
            # inverse-variance weighted mean of log(n): single-mass tail exponents are poorly
            # constrained (correlated with alpha), the combination is what fixes them
            v = np.array([p for p, _ in found[k]])
            e = np.array([max(err, 1e-3 * p) for p, err in found[k]]) / v
            wts = 1.0 / e**2
            out[k] = float(np.exp(np.sum(wts * np.log(v)) / np.sum(wts)))
            logger.info("pre-pass %s: per-mass %s -> %.4g", k, np.round(v, 3).tolist(), out[k])
        else:
            logger.warning("pre-pass: %s could not be determined; using default %s", k, DEFAULT_START[k])
            out[k] = DEFAULT_START[k]
    return out

"""Reference engine: the hypothesis model built from zfit PDFs, minimised with Minuit.

The model is ``N_sig * S(x) + N_bkg * Chebyshev(x; 1, c_1..c_p)`` on the
window (``zfit.pdf.Chebyshev`` maps the window onto [-1, 1], exactly like the
vectorised engine's ``x'``), fitted with ``zfit.loss.ExtendedUnbinnedNLL``
and ``zfit.minimize.Minuit``. The vectorised engine's parameters follow from
``beta_k = N_bkg c_k / sum_j c_j I_j`` (``c_0 = 1``): the two models are the
same function, so both engines must find the same minimum.

NLL values are reported in the vectorised engine's convention
(``mu + sum beta_k I_k - sum_i log lambda_i``, no constants) by evaluating
that formula at the zfit minimum; zfit's own loss differs by a constant.

Limits use hepstats' ``AsymptoticCalculator`` with ``UpperLimit`` (q~_mu,
CLs). hepstats builds its Asimov set from a histogram of the model (bin
centres with weights, ``asimov_bins`` bins) where the vectorised engine uses
Gauss-Legendre quadrature of the exact expectation; with a few hundred bins
the difference is well below a percent. The crossing CLs = 1 - cl is found
here by interpolating hepstats' p-values on a POI grid (``UpperLimit.upperlimit``
can return None when its own grid does not bracket the crossing).

This module imports zfit (TensorFlow) at import time; ``fits`` only imports
it when ``engine="zfit"`` is requested.
"""

from __future__ import annotations

import itertools
import logging
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("ZFIT_DISABLE_TF_WARNINGS", "1")

import zfit  # noqa: E402

from signal_models.shapes import SignalShape  # noqa: E402

from .asymptotic import N_SIGMA  # noqa: E402
from .model import ShapeArrays, chebyshev_integrals, signal_pdf  # noqa: E402
from .results import FitResult, HypothesisTable, LimitResult  # noqa: E402

logger = logging.getLogger(__name__)

__all__ = ["ZfitHypothesis", "fit_zfit", "upper_limit_hepstats", "evaluate_hypotheses_zfit", "signal_pdf_zfit"]

_counter = itertools.count()


def signal_pdf_zfit(shape: SignalShape, obs: Any) -> Any:
    """zfit PDF of a signal shape on ``obs`` (``SignalShape.to_zfit`` when available)."""
    if hasattr(shape, "to_zfit"):
        return shape.to_zfit(obs, prefix=f"sig{next(_counter)}")
    # private fallback: DoubleCB (+ first-order Chebyshev for combinatorics on its own domain)
    tag = next(_counter)
    p = {n: zfit.Parameter(f"{n}_{tag}", float(getattr(shape, n)), floating=False) for n in ("mu", "sigma", "alpha_l", "n_l", "alpha_r", "n_r")}
    peak = zfit.pdf.DoubleCB(mu=p["mu"], sigma=p["sigma"], alphal=p["alpha_l"], nl=p["n_l"], alphar=p["alpha_r"], nr=p["n_r"], obs=obs)
    if shape.comb_fraction <= 0:
        return peak
    lo, hi = obs.v1.limits
    half = shape.comb_domain * shape.sigma
    if abs(lo - (shape.mu - half)) > 1e-9 * half or abs(hi - (shape.mu + half)) > 1e-9 * half:
        raise NotImplementedError("combinatorial component on a window other than its Chebyshev domain needs SignalShape.to_zfit")
    slope = zfit.Parameter(f"comb_slope_{tag}", float(shape.comb_slope), floating=False)
    comb = zfit.pdf.Chebyshev(obs=obs, coeffs=[slope])
    frac = zfit.Parameter(f"frac_{tag}", 1.0 - float(shape.comb_fraction), floating=False)
    return zfit.pdf.SumPDF([peak, comb], fracs=[frac])


class ZfitHypothesis:
    """The zfit model, data and loss of one hypothesis."""

    def __init__(self, mgg: NDArray, shape: SignalShape, window: tuple[float, float], *, bkg_order: int = 3) -> None:
        lo, hi = window
        self.window = (float(lo), float(hi))
        self.shape = shape
        self.order = int(bkg_order)
        x = np.asarray(mgg, float)
        self.x = x[(x >= lo) & (x <= hi)]
        n = len(self.x)
        tag = next(_counter)
        self.obs = zfit.Space(f"mgg_{tag}", lower=lo, upper=hi)
        self.sig = signal_pdf_zfit(shape, self.obs)
        self.coeffs = [zfit.Parameter(f"c{k}_{tag}", 0.0, -50.0, 50.0) for k in range(1, self.order + 1)]
        self.bkg = zfit.pdf.Chebyshev(obs=self.obs, coeffs=self.coeffs)
        self.nsig = zfit.Parameter(f"nsig_{tag}", 0.0, -max(n, 10), 10 * max(n, 10) + 100)
        self.nbkg = zfit.Parameter(f"nbkg_{tag}", max(n, 1), 0.0, 10 * max(n, 10) + 100)
        sig_ext = self.sig.create_extended(self.nsig)
        bkg_ext = self.bkg.create_extended(self.nbkg)
        self.model = zfit.pdf.SumPDF([sig_ext, bkg_ext])
        self.data = zfit.Data.from_numpy(obs=self.obs, array=self.x[:, None])
        self.loss = zfit.loss.ExtendedUnbinnedNLL(model=self.model, data=self.data)
        self.minimizer = zfit.minimize.Minuit(tol=1e-5)
        # numpy view of the same model for the NLL convention
        self._sh = ShapeArrays.from_shapes([shape])
        self._s = signal_pdf(self.x[None, :], self._sh, np.array([lo]), np.array([hi]))[0]
        xp = (2.0 * self.x - (lo + hi)) / (hi - lo)
        self._T = np.polynomial.chebyshev.chebvander(xp, self.order).T
        self._I = 0.5 * (hi - lo) * chebyshev_integrals(self.order)

    def beta(self, nbkg: float, coeffs: Sequence[float]) -> NDArray:
        """Vectorised-engine background coefficients from zfit's (N_bkg, c_1..c_p)."""
        c = np.concatenate([[1.0], np.asarray(coeffs, float)])
        return nbkg * c / float(c @ self._I)

    def nll_numpy(self, nsig: float, beta: NDArray) -> float:
        lam = nsig * self._s + beta @ self._T
        if np.any(lam <= 0):
            return float("inf")
        return float(nsig + beta @ self._I - np.log(lam).sum())

    def set_from_beta(self, nsig: float, beta: NDArray) -> None:
        """Set zfit parameters from (N_sig, beta)."""
        self.nsig.set_value(nsig)
        self.nbkg.set_value(float(beta @ self._I))
        for p, b in zip(self.coeffs, beta[1:] / beta[0]):
            p.set_value(float(b))

    def minimize(self, *, nsig_fixed: float | None = None) -> Any:
        self.nsig.floating = nsig_fixed is None
        if nsig_fixed is not None:
            self.nsig.set_value(nsig_fixed)
        result = self.minimizer.minimize(self.loss)
        self.nsig.floating = True
        return result


def fit_zfit(mgg: NDArray, shape: SignalShape, window: tuple[float, float], *, bkg_order: int = 3, hypothesis: ZfitHypothesis | None = None) -> FitResult:
    """Unconditional and background-only fits with zfit + Minuit (reference engine)."""
    h = hypothesis or ZfitHypothesis(mgg, shape, window, bkg_order=bkg_order)
    n = len(h.x)
    if n < bkg_order + 2:
        return FitResult(0.0, 0.0, float(n), 0.0, False, f"{n} events in window, fewer than the {bkg_order + 2} free parameters", 0.0, n, np.zeros(bkg_order + 1), h.window, shape, bkg_order, engine="zfit")
    h.nsig.set_value(0.0)
    h.nbkg.set_value(float(n))
    for p in h.coeffs:
        p.set_value(0.0)
    res = h.minimize()
    res.hesse(name="hesse")
    nsig = float(res.params[h.nsig]["value"])
    err = float(res.params[h.nsig]["hesse"]["error"])
    coeffs = [float(res.params[p]["value"]) for p in h.coeffs]
    nbkg = float(res.params[h.nbkg]["value"])
    beta = h.beta(nbkg, coeffs)
    nll = h.nll_numpy(nsig, beta)
    res0 = h.minimize(nsig_fixed=0.0)
    beta0 = h.beta(float(h.nbkg.value()), [float(p.value()) for p in h.coeffs])
    nll0 = h.nll_numpy(0.0, beta0)
    q0 = max(2.0 * (nll0 - nll), 0.0)
    conv = bool(res.valid and res0.valid and np.isfinite(nll))
    return FitResult(
        nsig=nsig, nsig_err=err, nbkg=nbkg, nll=nll, converged=conv, reason="" if conv else "Minuit: invalid minimum",
        z_local=float(np.sign(nsig) * np.sqrt(q0)), n_events=n, beta=beta, window=h.window, shape=shape,
        bkg_order=bkg_order, engine="zfit", nll_bkg_only=nll0,
    )


def _crossing(poi: NDArray, cls: NDArray, alpha: float) -> float:
    """First POI where CLs falls below alpha, by linear interpolation of log CLs."""
    below = np.flatnonzero(cls < alpha)
    if len(below) == 0 or below[0] == 0:
        return float("nan")
    i = below[0]
    x0, x1 = poi[i - 1], poi[i]
    y0, y1 = np.log(max(cls[i - 1], 1e-300)), np.log(max(cls[i], 1e-300))
    return float(x0 + (np.log(alpha) - y0) * (x1 - x0) / (y1 - y0))


def upper_limit_hepstats(
    mgg: NDArray,
    shape: SignalShape,
    window: tuple[float, float],
    *,
    bkg_order: int = 3,
    cl: float = 0.95,
    poi_values: NDArray | None = None,
    asimov_bins: int = 400,
    hypothesis: ZfitHypothesis | None = None,
) -> LimitResult:
    """Asymptotic CLs limit (q~_mu) with hepstats on the zfit model.

    ``poi_values``: N_sig grid for hepstats' p-values; by default 40 points up
    to 3.5 x (N_sig_hat+ + 2 sigma). The grid is extended automatically until
    the observed and every expected CLs cross ``1 - cl``.
    """
    from hepstats.hypotests import UpperLimit
    from hepstats.hypotests.calculators import AsymptoticCalculator
    from hepstats.hypotests.parameters import POI, POIarray

    h = hypothesis or ZfitHypothesis(mgg, shape, window, bkg_order=bkg_order)
    f = fit_zfit(mgg, shape, window, bkg_order=bkg_order, hypothesis=h)
    alpha = 1.0 - cl
    if poi_values is None:
        top = 3.5 * (max(f.nsig, 0.0) + 2.0 * f.nsig_err)
        poi_values = np.linspace(top / 40, top, 40)
    poi_values = np.asarray(poi_values, float)
    h.nsig.set_value(f.nsig)
    calc = AsymptoticCalculator(input=h.loss, minimizer=h.minimizer, asimov_bins=asimov_bins)
    keys = ["clsb", "expected_m2", "expected_m1", "expected", "expected_p1", "expected_p2"]
    for _ in range(5):
        ul = UpperLimit(calc, POIarray(h.nsig, poi_values), POI(h.nsig, 0.0), qtilde=True)
        pv = ul.pvalues(CLs=True)
        cls_obs = np.asarray(pv["cls"], float)
        curves = {"observed": cls_obs, **{k: np.asarray(pv[k], float) for k in keys[1:]}}
        lim = {k: _crossing(poi_values, v, alpha) for k, v in curves.items()}
        if all(np.isfinite(v) for v in lim.values()):
            break
        poi_values = np.concatenate([poi_values, poi_values[-1] + (poi_values[-1] - poi_values[0]) * np.linspace(0.1, 1.0, 10)])
    expected = np.array([lim["expected_m2"], lim["expected_m1"], lim["expected"], lim["expected_p1"], lim["expected_p2"]])
    ok = bool(np.isfinite(lim["observed"]) and np.all(np.isfinite(expected)))
    return LimitResult(
        observed=lim["observed"], expected=expected, cl=cl, poi="nsig", method="asymptotic (hepstats)", fit=f, converged=ok,
        reason="" if ok else "CLs did not cross 1 - cl on the POI grid",
        details={"poi": poi_values, "cls": cls_obs, **{k: curves[k] for k in keys[1:]}},
    )


def evaluate_hypotheses_zfit(x: NDArray, shapes: Sequence[SignalShape], windows: NDArray, *, bkg_order: int = 3, cl: float = 0.95, limits: bool = True, expected: bool = True, signal_scale: NDArray | None = None, signal_scale_rel_unc: NDArray | None = None) -> HypothesisTable:
    """Loop over hypotheses with the reference engine (slow; for validation and benchmarks)."""
    if signal_scale_rel_unc is not None:
        raise NotImplementedError("the zfit engine does not implement yield systematics; use engine='vectorised'")
    k = len(shapes)
    out: dict[str, Any] = {n: np.zeros(k) for n in ("nsig", "nsig_err", "nbkg", "nll", "z_local", "ul_nsig_obs")}
    out["n_events"] = np.zeros(k, int)
    out["converged"] = np.zeros(k, bool)
    out["ul_nsig_exp"] = np.zeros((k, len(N_SIGMA)))
    out["beta"] = np.zeros((k, bkg_order + 1))
    reasons = [""] * k
    for j, (shape, win) in enumerate(zip(shapes, windows)):
        w = (float(win[0]), float(win[1]))
        if limits or expected:
            r = upper_limit_hepstats(x, shape, w, bkg_order=bkg_order, cl=cl)
            f = r.fit
            out["ul_nsig_obs"][j] = np.nan_to_num(r.observed)
            out["ul_nsig_exp"][j] = np.nan_to_num(r.expected)
            ok = r.converged and f.converged
            reasons[j] = r.reason or f.reason
        else:
            f = fit_zfit(x, shape, w, bkg_order=bkg_order)
            ok = f.converged
            reasons[j] = f.reason
        out["nsig"][j], out["nsig_err"][j], out["nbkg"][j], out["nll"][j], out["z_local"][j] = f.nsig, f.nsig_err, f.nbkg, f.nll, f.z_local
        out["n_events"][j] = f.n_events
        out["beta"][j] = f.beta
        out["converged"][j] = ok
    tab = HypothesisTable(mass=np.array([s.mu for s in shapes]), window=np.asarray(windows, float), reason=reasons, **out)
    if signal_scale is not None:
        tab.ul_xsec_obs = tab.ul_nsig_obs / signal_scale
        tab.ul_xsec_exp = tab.ul_nsig_exp / signal_scale[:, None]
    return tab

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

zfit (TensorFlow) and hepstats are imported by the functions that use them,
never when this module is imported. Extended PDFs are built with their yield
(``extended=``; ``create_extended`` goes through zfit's deprecated
``set_yield``) and every zfit object made here has a name. zfit 0.28 raises
DeprecationWarnings from inside its own current API (and hepstats' Asimov
histograms trigger the same ones); they are silenced around the zfit and
hepstats calls with ``signal_models.zfit_shapes.zfit_internal_warnings_ignored``,
which lets every other warning through.
"""

from __future__ import annotations

import itertools
import logging
import os
from collections.abc import Sequence
from types import ModuleType
from typing import Any

import numpy as np
from numpy.typing import NDArray

from signal_models._common.defaults import DEFAULT_BKG_ORDER, DEFAULT_CL
from signal_models.shapes import SignalShape

from .asymptotic import N_SIGMA
from .densities import ShapeArrays, chebyshev_integrals, signal_pdf
from .nuisances import SYST_KINDS
from .results import FitResult, HypothesisTable, LimitResult

logger = logging.getLogger(__name__)

__all__ = ["ZfitHypothesis", "fit_zfit", "upper_limit_hepstats", "evaluate_hypotheses_zfit", "signal_pdf_zfit", "import_zfit"]

_counter = itertools.count()


def _zfit() -> ModuleType:
    """zfit, imported on first use (TensorFlow's and zfit's start-up messages off unless the environment asks for them)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("ZFIT_DISABLE_TF_WARNINGS", "1")
    import zfit

    return zfit


def import_zfit() -> ModuleType:
    """zfit for the other zfit modules of ``fits`` (imported on first use, start-up messages off as in ``_zfit``)."""
    return _zfit()


def _quiet() -> Any:
    """Context manager silencing zfit's warnings from inside its own API (see the module docstring)."""
    from signal_models.zfit_shapes import zfit_internal_warnings_ignored

    return zfit_internal_warnings_ignored()


def signal_pdf_zfit(shape: SignalShape, obs: Any, *, extended: Any = None) -> Any:
    """zfit PDF of a signal shape on ``obs`` (a ``zfit.Space``, the window in GeV).

    ``SignalShape.to_zfit``; with ``extended`` (a yield parameter, events)
    the same PDF extended with that yield.
    """
    with _quiet():
        zs = shape.to_zfit_signal(obs, prefix=f"sig{next(_counter)}")
    return zs.pdf if extended is None else _extended_signal(zs, extended)


def _extended_signal(zs: Any, yield_: Any) -> Any:
    """The signal sum of a ``signal_models.zfit_shapes.ZfitSignal`` built again with its yield ``yield_``.

    ``ZfitSignal.pdf`` is ``SumPDF([dscb, comb], fracs=frac_tm)``; the same sum
    with ``extended=`` is what ``create_extended`` would return, without its
    call of the deprecated ``set_yield``. The components (and parameters) are shared.
    """
    zfit = _zfit()
    with _quiet():
        return zfit.pdf.SumPDF([zs.dscb, zs.comb], fracs=zs.frac_tm, obs=zs.pdf.space, extended=yield_, name=f"{zs.pdf.name}_ext{next(_counter)}")


class ZfitHypothesis:
    """The zfit model, data and loss of one hypothesis.

    Attributes
    ----------
    x : ndarray
        Candidate masses in the window (GeV).
    obs : zfit.Space
        The window.
    sig : zfit PDF
        The signal shape (not extended).
    nsig, nbkg : zfit.Parameter
        Signal and background yields (events).
    coeffs : list of zfit.Parameter
        Chebyshev coefficients ``c_1..c_p`` (``c_0 = 1``).
    bkg : zfit PDF
        The background, extended with ``nbkg``.
    model, data, loss, minimizer
        Extended sum, data, ``ExtendedUnbinnedNLL`` and ``Minuit``.
    """

    def __init__(self, mgg: NDArray, shape: SignalShape, window: tuple[float, float], *, bkg_order: int = DEFAULT_BKG_ORDER) -> None:
        zfit = _zfit()
        lo, hi = window
        self.window = (float(lo), float(hi))
        self.shape = shape
        self.order = int(bkg_order)
        x = np.asarray(mgg, float)
        self.x = x[(x >= lo) & (x <= hi)]
        n = len(self.x)
        tag = next(_counter)
        self._tag = tag
        with _quiet():
            self.obs = zfit.Space(f"mgg_{tag}", lower=lo, upper=hi)
            self._signal = shape.to_zfit_signal(self.obs, prefix=f"sig{next(_counter)}")
            self.sig = self._signal.pdf
            self.coeffs = [zfit.Parameter(f"c{k}_{tag}", 0.0, -50.0, 50.0) for k in range(1, self.order + 1)]
            self.nsig = zfit.Parameter(f"nsig_{tag}", 0.0, -max(n, 10), 10 * max(n, 10) + 100)
            self.nbkg = zfit.Parameter(f"nbkg_{tag}", max(n, 1), 0.0, 10 * max(n, 10) + 100)
            self.bkg = self.background()
            self.model = zfit.pdf.SumPDF([self.signal(self.nsig), self.bkg], name=f"model_{tag}")
            self.data = zfit.Data.from_numpy(obs=self.obs, array=self.x[:, None], name=f"mgg_data_{tag}")
            self.loss = zfit.loss.ExtendedUnbinnedNLL(model=self.model, data=self.data)
            self.minimizer = zfit.minimize.Minuit(tol=1e-5)
        # numpy view of the same model for the NLL convention
        self._sh = ShapeArrays.from_shapes([shape])
        self._s = signal_pdf(self.x[None, :], self._sh, np.array([lo]), np.array([hi]))[0]
        xp = (2.0 * self.x - (lo + hi)) / (hi - lo)
        self._T = np.polynomial.chebyshev.chebvander(xp, self.order).T
        self._I = 0.5 * (hi - lo) * chebyshev_integrals(self.order)

    def signal(self, yield_: Any) -> Any:
        """The signal PDF extended with ``yield_`` (a zfit parameter, events; components shared with ``sig``)."""
        return _extended_signal(self._signal, yield_)

    def background(self) -> Any:
        """The background Chebyshev extended with ``nbkg`` (a new PDF with the shared parameters)."""
        zfit = _zfit()
        with _quiet():
            return zfit.pdf.Chebyshev(obs=self.obs, coeffs=self.coeffs, extended=self.nbkg, name=f"bkg_{self._tag}_{next(_counter)}")

    def beta(self, nbkg: float, coeffs: Sequence[float]) -> NDArray:
        """Vectorised-engine background coefficients (events/GeV) from zfit's (N_bkg, c_1..c_p)."""
        c = np.concatenate([[1.0], np.asarray(coeffs, float)])
        return nbkg * c / float(c @ self._I)

    def nll_numpy(self, nsig: float, beta: NDArray) -> float:
        """The extended NLL in the vectorised engine's convention at (N_sig, beta)."""
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
        """Minuit fit of the loss, with N_sig free or fixed at ``nsig_fixed`` (events)."""
        self.nsig.floating = nsig_fixed is None
        if nsig_fixed is not None:
            self.nsig.set_value(nsig_fixed)
        with _quiet():
            result = self.minimizer.minimize(self.loss)
        self.nsig.floating = True
        return result


def fit_zfit(mgg: NDArray, shape: SignalShape, window: tuple[float, float], *, bkg_order: int = DEFAULT_BKG_ORDER,
             hypothesis: ZfitHypothesis | None = None) -> FitResult:
    """Unconditional and background-only fits with zfit + Minuit (reference engine); ``mgg`` and ``window`` in GeV."""
    h = hypothesis or ZfitHypothesis(mgg, shape, window, bkg_order=bkg_order)
    n = len(h.x)
    if n < bkg_order + 2:
        return FitResult(nsig=0.0, nsig_err=0.0, nbkg=float(n), nll=0.0, converged=False,
                         reason=f"{n} events in window, fewer than the {bkg_order + 2} free parameters", z_local=0.0, n_events=n,
                         beta=np.zeros(bkg_order + 1), window=h.window, shape=shape, bkg_order=bkg_order, engine="zfit")
    h.nsig.set_value(0.0)
    h.nbkg.set_value(float(n))
    for p in h.coeffs:
        p.set_value(0.0)
    res = h.minimize()
    with _quiet():
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


def _scaled_loss(h: ZfitHypothesis, scale: float, rel_unc: float, kind: str, nsig_start: float) -> tuple[Any, Any]:
    """POI parameter and extended NLL of ``h`` with ``N_sig = poi * scale * k(u)`` and, for
    ``rel_unc > 0``, the nuisance ``u`` constrained by a unit Gaussian."""
    zfit = _zfit()
    tag = next(_counter)
    n = max(len(h.x), 10)
    with _quiet():
        poi = zfit.Parameter(f"poi_{tag}", nsig_start / scale, -n / scale, (10 * n + 100) / scale)
        if rel_unc > 0:
            u = zfit.Parameter(f"u_{tag}", 0.0, -8.0, 8.0)
            if kind == "lognormal":
                a = float(np.log1p(rel_unc))

                def nsig_fn(params: dict) -> Any:
                    return params["poi"] * scale * zfit.z.numpy.exp(a * params["u"])

            else:

                def nsig_fn(params: dict) -> Any:
                    return params["poi"] * scale * (1.0 + rel_unc * params["u"])

            nsig = zfit.ComposedParameter(f"nsig_syst_{tag}", nsig_fn, params={"poi": poi, "u": u})
            constraints = [zfit.constraint.GaussianConstraint(params=u, observation=0.0, sigma=1.0)]
        else:
            nsig = zfit.ComposedParameter(f"nsig_scaled_{tag}", lambda params: params["poi"] * scale, params={"poi": poi})
            constraints = None
        model = zfit.pdf.SumPDF([h.signal(nsig), h.background()], name=f"model_scaled_{tag}")
        loss = zfit.loss.ExtendedUnbinnedNLL(model=model, data=h.data, constraints=constraints)
    return poi, loss


def upper_limit_hepstats(
    mgg: NDArray,
    shape: SignalShape,
    window: tuple[float, float],
    *,
    bkg_order: int = DEFAULT_BKG_ORDER,
    cl: float = DEFAULT_CL,
    poi_values: NDArray | None = None,
    asimov_bins: int = 400,
    hypothesis: ZfitHypothesis | None = None,
    signal_scale: float | None = None,
    rel_unc: float | None = None,
    syst_kind: str = "lognormal",
) -> LimitResult:
    """Asymptotic CLs limit (q~_mu) with hepstats on the zfit model (``mgg`` and ``window`` in GeV).

    ``poi_values``: POI grid for hepstats' p-values; by default 40 points up
    to 3.5 x (N_sig_hat+ + 2 sigma) (in POI units). The grid is extended
    automatically until the observed and every expected CLs cross ``1 - cl``.

    ``signal_scale`` (events per pb) makes the POI the cross-section in pb
    (``N_sig = sigma * signal_scale``). ``rel_unc`` adds a yield systematic
    as in the vectorised engine: a standard-normal nuisance ``u`` with a zfit
    Gaussian constraint (``zfit.constraint.GaussianConstraint``, mean 0,
    width 1) and ``N_sig = sigma * scale * (1 + rel_unc)^u`` (``syst_kind``
    "lognormal") or ``sigma * scale * (1 + rel_unc u)`` ("gaussian"); hepstats
    profiles ``u`` in every fit.
    """
    from hepstats.hypotests import UpperLimit
    from hepstats.hypotests.calculators import AsymptoticCalculator
    from hepstats.hypotests.parameters import POI, POIarray

    if syst_kind not in SYST_KINDS:
        raise ValueError(f"syst_kind: expected 'lognormal' or 'gaussian', got {syst_kind!r}")
    h = hypothesis or ZfitHypothesis(mgg, shape, window, bkg_order=bkg_order)
    f = fit_zfit(mgg, shape, window, bkg_order=bkg_order, hypothesis=h)
    alpha = 1.0 - cl
    scale = 1.0 if signal_scale is None else float(signal_scale)
    syst = bool(rel_unc) and rel_unc > 0
    if poi_values is None:
        top = 3.5 * (max(f.nsig, 0.0) + 2.0 * f.nsig_err) * (1.0 + (2.0 * rel_unc if syst else 0.0)) / scale
        poi_values = np.linspace(top / 40, top, 40)
    poi_values = np.asarray(poi_values, float)
    if signal_scale is None and not syst:
        poi_param, loss = h.nsig, h.loss
        h.nsig.set_value(f.nsig)
    else:
        poi_param, loss = _scaled_loss(h, scale, float(rel_unc) if syst else 0.0, syst_kind, f.nsig)
    keys = ["clsb", "expected_m2", "expected_m1", "expected", "expected_p1", "expected_p2"]
    with _quiet():
        calc = AsymptoticCalculator(input=loss, minimizer=h.minimizer, asimov_bins=asimov_bins)
        for _ in range(5):
            ul = UpperLimit(calc, POIarray(poi_param, poi_values), POI(poi_param, 0.0), qtilde=True)
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
        observed=lim["observed"], expected=expected, cl=cl, poi="nsig" if signal_scale is None else "xsec", method="asymptotic (hepstats)", fit=f, converged=ok,
        reason="" if ok else "CLs did not cross 1 - cl on the POI grid",
        details={"poi": poi_values, "cls": cls_obs, **{k: curves[k] for k in keys[1:]}},
    )


def evaluate_hypotheses_zfit(
    x: NDArray,
    shapes: Sequence[SignalShape],
    windows: NDArray,
    *,
    bkg_order: int = DEFAULT_BKG_ORDER,
    cl: float = DEFAULT_CL,
    limits: bool = True,
    expected: bool = True,
    signal_scale: NDArray | None = None,
    signal_scale_rel_unc: NDArray | None = None,
    syst_kind: str = "lognormal",
) -> HypothesisTable:
    """Loop over hypotheses with the reference engine (slow; for validation and benchmarks).

    ``x`` and ``windows`` (k, 2) in GeV, ``signal_scale`` (k,) in events per pb.
    With ``signal_scale_rel_unc`` (and ``signal_scale``), the cross-section
    limits ``ul_xsec_*`` profile the constrained yield nuisance (as the
    vectorised engine; ``syst_kind`` "lognormal" or "gaussian"), the yield
    limits ``ul_nsig_*`` do not.
    """
    k = len(shapes)
    rel = None
    if signal_scale_rel_unc is not None:
        if signal_scale is None:
            raise ValueError("signal_scale_rel_unc needs signal_scale (events per pb)")
        rel = np.broadcast_to(np.asarray(signal_scale_rel_unc, float), (k,))
    wins = [(float(w[0]), float(w[1])) for w in windows]
    n_exp = len(N_SIGMA)
    rows: list[FitResult] = []
    ul_obs, ul_exp = np.zeros(k), np.zeros((k, n_exp))
    converged = np.zeros(k, bool)
    reasons = [""] * k
    for j, (shape, w) in enumerate(zip(shapes, wins)):
        if limits or expected:
            r = upper_limit_hepstats(x, shape, w, bkg_order=bkg_order, cl=cl)
            f = r.fit
            ul_obs[j] = np.nan_to_num(r.observed)
            ul_exp[j] = np.nan_to_num(r.expected)
            converged[j] = r.converged and f.converged
            reasons[j] = r.reason or f.reason
        else:
            f = fit_zfit(x, shape, w, bkg_order=bkg_order)
            converged[j] = f.converged
            reasons[j] = f.reason
        rows.append(f)
    xs_obs = xs_exp = None
    if signal_scale is not None:
        xs_obs = ul_obs / signal_scale
        xs_exp = ul_exp / signal_scale[:, None]
        if rel is not None and (limits or expected):
            for j, (shape, w) in enumerate(zip(shapes, wins)):
                if rel[j] <= 0:
                    continue
                r = upper_limit_hepstats(x, shape, w, bkg_order=bkg_order, cl=cl, signal_scale=float(signal_scale[j]), rel_unc=float(rel[j]), syst_kind=syst_kind)
                xs_obs[j] = np.nan_to_num(r.observed)
                xs_exp[j] = np.nan_to_num(r.expected)
                if not r.converged:
                    converged[j] = False
                    reasons[j] = reasons[j] or "cross-section limit with systematics: " + r.reason
    return HypothesisTable(
        mass=np.array([s.mu for s in shapes]),
        window=np.asarray(windows, float),
        n_events=np.array([f.n_events for f in rows], dtype=int).reshape(k),
        nsig=np.array([f.nsig for f in rows], dtype=float).reshape(k),
        nsig_err=np.array([f.nsig_err for f in rows], dtype=float).reshape(k),
        nbkg=np.array([f.nbkg for f in rows], dtype=float).reshape(k),
        nll=np.array([f.nll for f in rows], dtype=float).reshape(k),
        z_local=np.array([f.z_local for f in rows], dtype=float).reshape(k),
        converged=converged,
        reason=reasons,
        ul_nsig_obs=ul_obs,
        ul_nsig_exp=ul_exp,
        ul_xsec_obs=xs_obs,
        ul_xsec_exp=xs_exp,
        beta=np.array([f.beta for f in rows], dtype=float).reshape(k, bkg_order + 1),
    )

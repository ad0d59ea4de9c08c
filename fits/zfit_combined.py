"""Reference engine for combined fits: the channels' simultaneous likelihood built from zfit PDFs, Minuit and hepstats.

The model is the one of ``fits.combined`` (see its module docstring), built
from zfit objects:

- per channel c, the signal yield ``N_c = mu * scale_c * prod_k kappa_kc(u_k)
  + sum_a size_ac theta_a`` is a ``zfit.ComposedParameter`` of the shared
  ``mu`` and nuisances (log-normal ``kappa = exp(ln(1 + r) u)``, Gaussian
  ``kappa = 1 + r u``);
- the signal shape ``s_c(nu) = s0 + (1 - f) sum_j [nu_j (p_j+ - p_j-) / 2
  + nu_j^2 ((p_j+ + p_j-) / 2 - p0)]`` is a ``zfit.pdf.SumPDF`` of the
  truth-matched peaks ``p_j+-`` (the DSCB with shape nuisance j at +-1
  standard deviation), ``p0`` and the nominal shape ``s0``, with composed
  fractions; the fraction of ``s0`` is ``1 - sum(others) = 1``, so the sum is
  normalised on the window for every ``nu`` (each component is), and every
  integral stays analytic;
- the background is the channel's extended ``zfit.pdf.Chebyshev`` with its
  own yield and coefficients (``fits.zfit_engine.ZfitHypothesis``);
- the nuisances ``u``, ``theta``, ``nu`` carry one standard-normal
  ``zfit.constraint.GaussianConstraint``; one
  ``zfit.loss.ExtendedUnbinnedNLL`` holds every channel's model and data and
  is minimised with ``zfit.minimize.Minuit``.

NLL values are reported in the vectorised engine's convention,
``sum_c [N_c + sum_m beta_cm I_cm - sum_i log lambda_c(x_i)] + 0.5 sum x^2``
(no constants), by evaluating that formula with numpy at the zfit minimum (as
``fits.zfit_engine`` does); zfit's loss differs by constants.

Limits use hepstats' ``AsymptoticCalculator`` (q~_mu, CLs) and ``UpperLimit``
on the same loss, POI ``mu``. The project's Asimov set (``fits.combined``) is
the expectation of the background-only fit of the unbinned data, integrated
by Gauss-Legendre quadrature, with the Asimov constraints centred at the
fitted nuisances. hepstats' stock calculator turns an ``ExtendedUnbinnedNLL``
into an ``ExtendedBinnedNLL``: nuisances from a fit of the binned data, the
binned expectation, constraints centred at 0 (then the generating point is
not the Asimov minimum when a nuisance is fitted away from 0 at ``mu = 0``,
as a spurious signal is: expected limits 6-20% off). By default
(``asimov="unbinned"``) hepstats runs on its own unbinned Asimov path (an
empty ``UNBINNED_TO_BINNED_LOSS``: nuisances from the unbinned fit, the
expectation at ``asimov_bins`` bin centres as weighted events) with the
constraints centred at the fitted nuisances; only the quadrature differs
(midpoint rule, 600 points per window, against Gauss-Legendre), and it is
faster than tracing a binned loss. ``asimov="binned"`` is hepstats' stock
behaviour. The limits are the roots of hepstats' CLs curves (observed, and
expected at -2..+2 sigma) found by ``pooled_roots`` (no POI grid): every
hepstats evaluation (one Asimov fit, plus a data fit for the observed
curve) serves all curves.

zfit (TensorFlow) and hepstats are imported inside the functions that use
them, never when this module is imported; zfit's DeprecationWarnings from
inside its own API are silenced around its calls as in ``fits.zfit_engine``.
"""

from __future__ import annotations

import functools
import itertools
import logging
import re
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray
from scipy.special import ndtri

from signal_models._common.defaults import DEFAULT_CL

from .asymptotic import N_SIGMA, expected_band_targets
from .channels import CombinedModel
from .densities import chebyshev_integrals
from .errors import FitInputError
from .inputs import check_cl
from .limit_search import observed_start, pooled_roots
from .results import CombinedFitResult, LimitResult

logger = logging.getLogger(__name__)

__all__ = ["ZfitCombined", "fit_channels_zfit", "upper_limit_channels_hepstats", "pooled_roots"]

_counter = itertools.count()

#: Asimov bins per channel window for hepstats (the window is +-20 sigma by default: 600 bins = sigma / 15)
DEFAULT_ASIMOV_BINS = 600


def _quiet() -> Any:
    """Context manager silencing zfit's warnings from inside its own API (``signal_models.zfit_shapes``)."""
    from signal_models.zfit_shapes import zfit_internal_warnings_ignored

    return zfit_internal_warnings_ignored()


def _safe(name: str) -> str:
    """A channel or nuisance name as a zfit (TensorFlow) name: letters, digits, ``_`` and ``.``."""
    return re.sub(r"[^A-Za-z0-9_.]", "_", name)


def _yield_function(scale: float, lognormal: list[tuple[str, float]], gaussian: list[tuple[str, float]],
                    spurious: list[tuple[str, float]]) -> Callable[[dict], Any]:
    """``N_c(params)``: ``mu scale exp(sum a u) prod (1 + r u) + sum size theta`` (keys: parameter names in ``params``)."""
    import zfit.z.numpy as znp

    def n_c(params: dict) -> Any:
        n = params["mu"] * scale
        if lognormal:
            n = n * znp.exp(sum(a * params[k] for k, a in lognormal))
        for k, r in gaussian:
            n = n * (1.0 + r * params[k])
        for k, size in spurious:
            n = n + size * params[k]
        return n

    return n_c


def _fraction_function(keep: float, sign: float) -> Callable[[dict], Any]:
    """Fraction of ``p+`` (``sign = +1``) or ``p-`` (``-1``): ``keep (nu^2 + sign nu) / 2``."""

    def frac(params: dict) -> Any:
        nu = params["nu"]
        return keep * 0.5 * (nu * nu + sign * nu)

    return frac


def _centre_fraction(keep: float) -> Callable[[dict], Any]:
    """Fraction of ``p0``: ``-keep sum_j nu_j^2``."""

    def frac(params: dict) -> Any:
        return -keep * sum(v * v for v in params.values())

    return frac


class ZfitCombined:
    """The zfit model, data and loss of one combined hypothesis (``fits.channels.CombinedModel``).

    Attributes
    ----------
    model : CombinedModel
    hyps : list of fits.zfit_engine.ZfitHypothesis
        Per channel: window, data, background yield and Chebyshev coefficients.
    mu : zfit.Parameter
        The parameter of interest (units of ``mu``).
    nuisances : list of zfit.Parameter
        In the order of ``model.nuisance_names`` (yields, spurious signals, shapes), standard normal.
    yields : list of zfit.ComposedParameter
        ``N_c`` per channel (signal events).
    signals, models : list of zfit PDFs
        Per channel the interpolated signal (extended with ``N_c``) and signal + background.
    loss : zfit.loss.ExtendedUnbinnedNLL
        All channels, with the Gaussian constraint on the nuisances.
    minimizer : zfit.minimize.Minuit
    """

    def __init__(self, model: CombinedModel, *, tol: float = 1e-6) -> None:
        from .zfit_engine import ZfitHypothesis, import_zfit

        empty = [n for n, c in zip(model.names, model.channels) if c.n_events == 0]
        if empty:
            raise FitInputError(f"engine='zfit': channel(s) {empty} have no candidates in their window; the zfit engine needs data in "
                                "every channel (use the vectorised engine)")
        zfit = import_zfit()
        self.model = model
        tag = next(_counter)
        self.hyps = [ZfitHypothesis(c.mgg, c.shape, c.window, bkg_order=c.bkg_order) for c in model.channels]
        n_tot = sum(len(h.x) for h in self.hyps)
        smin = min(c.signal_scale for c in model.channels)
        K, A = len(model.yields), len(model.spurious)
        names = model.nuisance_names
        with _quiet():
            self.mu = zfit.Parameter(f"mu_{tag}", 0.0, -max(n_tot, 10) / smin, (10 * max(n_tot, 10) + 100) / smin)
            self.nuisances = [zfit.Parameter(f"{_safe(n)}_{tag}", 0.0, -8.0 if i < K + A else -5.0, 8.0 if i < K + A else 5.0)
                              for i, n in enumerate(names)]
            self.yields, self.signals, self.models = [], [], []
            for c, h in enumerate(self.hyps):
                n_c = self._yield(c, tag)
                self.yields.append(n_c)
                sig = self._signal(c, h, n_c, tag)
                self.signals.append(sig)
                self.models.append(zfit.pdf.SumPDF([sig, h.background()], name=f"combined_{tag}_{_safe(model.names[c])}"))
            constraints = None
            if names:
                constraints = [zfit.constraint.GaussianConstraint(params=self.nuisances, observation=[0.0] * len(names),
                                                                  sigma=[1.0] * len(names))]
            self.loss = zfit.loss.ExtendedUnbinnedNLL(model=self.models, data=[h.data for h in self.hyps], constraints=constraints)
            self.minimizer = zfit.minimize.Minuit(tol=tol)
        # numpy view of the same model for the NLL convention
        self._cheb = []
        for h in self.hyps:
            lo, hi = h.window
            xp = (2.0 * h.x - (lo + hi)) / (hi - lo)
            self._cheb.append((np.polynomial.chebyshev.chebvander(xp, h.order).T, 0.5 * (hi - lo) * chebyshev_integrals(h.order)))

    # -- building ---------------------------------------------------------------
    def _yield(self, c: int, tag: int) -> Any:
        import zfit

        m = self.model
        K, A = len(m.yields), len(m.spurious)
        params = {"mu": self.mu}
        logn, gauss, spur = [], [], []
        for k in range(K):
            if m.yield_coeff[k, c] != 0:
                key = f"u{k}"
                params[key] = self.nuisances[k]
                (logn if m.yield_lognormal[k] else gauss).append((key, float(m.yield_coeff[k, c])))
        for a in range(A):
            if m.spurious_size[a, c] != 0:
                key = f"theta{a}"
                params[key] = self.nuisances[K + a]
                spur.append((key, float(m.spurious_size[a, c])))
        fn = _yield_function(float(m.channels[c].signal_scale), logn, gauss, spur)
        return zfit.ComposedParameter(f"nsig_{tag}_{_safe(m.names[c])}", fn, params=params)

    def _signal(self, c: int, h: Any, n_c: Any, tag: int) -> Any:
        """Channel c's interpolated signal shape, extended with ``n_c``."""
        import zfit

        m = self.model
        acting = [j for j in range(len(m.shapes)) if m.shape_widths[j, c] > 0]
        if not acting:
            return h.signal(n_c)
        S = len(m.yields) + len(m.spurious)
        keep = 1.0 - m.channels[c].shape.comb_fraction
        pdfs, fracs = [], []
        label = f"{tag}_{_safe(m.names[c])}"
        for j in acting:
            nu = self.nuisances[S + j]
            for sign, tx in ((1.0, "up"), (-1.0, "down")):
                peak = m.peak_shape(c, j, sign).to_zfit_signal(h.obs, prefix=f"peak_{label}_{j}_{tx}")
                pdfs.append(peak.dscb)
                fracs.append(zfit.ComposedParameter(f"frac_{label}_{j}_{tx}", _fraction_function(keep, sign), params={"nu": nu}))
        pdfs.append(h.sig.pdfs[0])  # p0: the DSCB of the nominal shape (signal_models.zfit_shapes: SumPDF([dscb, comb]))
        fracs.append(zfit.ComposedParameter(f"frac_{label}_nominal", _centre_fraction(keep),
                                            params={f"nu{j}": self.nuisances[S + j] for j in acting}))
        pdfs.append(h.sig)  # its fraction, 1 - sum(fracs), is 1 (the fractions above add up to 0)
        return zfit.pdf.SumPDF(pdfs, fracs=fracs, obs=h.obs, extended=n_c, name=f"signal_{label}")

    # -- fitting ----------------------------------------------------------------
    def reset(self) -> None:
        """Start values: mu = 0, nuisances 0, flat backgrounds with the channel's events."""
        self.mu.set_value(0.0)
        for p in self.nuisances:
            p.set_value(0.0)
        for h in self.hyps:
            h.nbkg.set_value(float(max(len(h.x), 1)))
            for p in h.coeffs:
                p.set_value(0.0)

    def minimize(self, *, mu_fixed: float | None = None) -> Any:
        """Minuit fit of the loss with mu free or fixed at ``mu_fixed`` (from the current parameter values)."""
        self.mu.floating = mu_fixed is None
        if mu_fixed is not None:
            self.mu.set_value(mu_fixed)
        try:
            with _quiet():
                return self.minimizer.minimize(self.loss)
        finally:
            self.mu.floating = True

    def nuisance_values(self) -> NDArray:
        return np.array([float(p.value()) for p in self.nuisances])

    def channel_yields(self) -> NDArray:
        """``N_c`` (signal events) at the current parameter values."""
        return np.array([float(n.value()) for n in self.yields])

    def channel_backgrounds(self) -> NDArray:
        return np.array([float(h.nbkg.value()) for h in self.hyps])

    def nll_numpy(self) -> float:
        """The combined NLL in the vectorised engine's convention at the current parameter values."""
        m = self.model
        x_nuis = self.nuisance_values()
        nu = x_nuis[len(m.yields) + len(m.spurious):]
        total = 0.5 * float(x_nuis @ x_nuis)
        for c, (h, n_c) in enumerate(zip(self.hyps, self.channel_yields())):
            T, integ = self._cheb[c]
            beta = h.beta(float(h.nbkg.value()), [float(p.value()) for p in h.coeffs])
            lam = n_c * m.interpolated_pdf(c, h.x, nu) + beta @ T
            if np.any(lam <= 0):
                return float("inf")
            total += float(n_c + beta @ integ - np.log(lam).sum())
        return total


def _fit(z: ZfitCombined) -> tuple[CombinedFitResult, Any]:
    """Background-only and unconditional fits; the result and zfit's unconditional FitResult (with Hesse errors)."""
    m = z.model
    z.reset()
    res0 = z.minimize(mu_fixed=0.0)
    nll0 = z.nll_numpy()
    res = z.minimize()
    with _quiet():
        res.hesse(name="hesse")
    nll = z.nll_numpy()
    mu = float(res.params[z.mu]["value"])
    err = float(res.params[z.mu]["hesse"]["error"])
    nuis = {n: (float(res.params[p]["value"]), float(res.params[p]["hesse"]["error"])) for n, p in zip(m.nuisance_names, z.nuisances)}
    nsig_c, nbkg_c = z.channel_yields(), z.channel_backgrounds()
    nll = min(nll, nll0)  # as the vectorised engine: the background-only fit is a point of the free one
    q0 = max(2.0 * (nll0 - nll), 0.0)
    conv = bool(res.valid and res0.valid and np.isfinite(nll) and np.isfinite(err))
    # the package's public name: fits.combined_api imports this module (engine="zfit"), so importing the
    # class from there would close an import cycle (it belongs in fits.results; see the module docstring)

    fit = CombinedFitResult(
        nsig=mu, nsig_err=err, nbkg=float(nbkg_c.sum()), nll=nll, converged=conv, reason="" if conv else "Minuit: invalid minimum",
        z_local=float(np.sign(mu) * np.sqrt(q0)), channels=m.names,
        channel_nsig={n: float(v) for n, v in zip(m.names, nsig_c)}, channel_nbkg={n: float(v) for n, v in zip(m.names, nbkg_c)},
        nuisances=nuis, nll_bkg_only=nll0, engine="zfit",
    )
    return fit, res


def fit_channels_zfit(model: CombinedModel, *, hypothesis: ZfitCombined | None = None) -> CombinedFitResult:
    """Combined fit of channels sharing ``mu`` with zfit + Minuit (reference engine); results in units of ``mu``.

    Parameters
    ----------
    model : CombinedModel
        Channels (masses in GeV) and nuisances, checked (``CombinedModel.build``).
    hypothesis : ZfitCombined, optional
        An already built zfit model of ``model`` (reused to avoid building and tracing it again).

    Returns
    -------
    fits.results.CombinedFitResult
        ``nsig`` = mu_hat and its Hesse error; ``nll`` in the vectorised engine's convention;
        ``z_local`` from the refit at mu = 0; nuisances (value, Hesse error) in units of their constraints.
    """
    fit, _ = _fit(hypothesis or ZfitCombined(model))
    return fit


@functools.cache
def _calculator_class() -> type:
    """hepstats' ``AsymptoticCalculator`` with an unbinned Asimov set and constraints centred at the generating point.

    ``UNBINNED_TO_BINNED_LOSS`` empty keeps hepstats on its unbinned Asimov path: the nuisances
    come from the fit of the (unbinned) data at the alternative ``mu``, and the Asimov set is the
    model's expectation at the centres of ``asimov_bins`` bins as weighted events (midpoint rule).
    ``asimov_loss`` centres the Asimov constraints at the nuisances of that fit, so that the
    Asimov minimum is the generating point (as in ``fits.combined``).
    """
    from hepstats.hypotests.calculators import AsymptoticCalculator

    class UnbinnedAsimovCalculator(AsymptoticCalculator):
        UNBINNED_TO_BINNED_LOSS: ClassVar[dict] = {}

        def __init__(self, input: Any, minimizer: Any, asimov_bins: Any, nuisances: list[Any]) -> None:  # noqa: A002 (hepstats' name)
            super().__init__(input, minimizer, asimov_bins)
            self._nuisances = list(nuisances)
            self._asimov_centre: dict = {}

        def asimov_dataset(self, poi: Any, ntrials_fit: int | None = None) -> Any:
            fresh = poi not in self._asimov_dataset
            data = super().asimov_dataset(poi, ntrials_fit)
            if fresh:  # hepstats' fit of the nuisances at the alternative leaves them at its minimum
                self._asimov_centre[poi] = [float(p.value()) for p in self._nuisances]
            return data

        def asimov_loss(self, poi: Any) -> Any:
            if poi not in self._asimov_loss:
                import zfit

                data = self.asimov_dataset(poi)
                centre = self._asimov_centre[poi]
                constraints = None
                if self._nuisances:
                    constraints = [zfit.constraint.GaussianConstraint(params=self._nuisances, observation=centre, sigma=[1.0] * len(centre))]
                self._asimov_loss[poi] = self.loss.create_new(model=self.loss.model, data=data, constraints=constraints)
            return self._asimov_loss[poi]

    return UnbinnedAsimovCalculator


def upper_limit_channels_hepstats(model: CombinedModel, *, cl: float = DEFAULT_CL, asimov: str = "unbinned", asimov_bins: int = DEFAULT_ASIMOV_BINS,
                                  hypothesis: ZfitCombined | None = None, htol: float = 1e-3) -> LimitResult:
    """Asymptotic CLs upper limit on ``mu`` (q~_mu) with hepstats on the combined zfit model.

    Parameters
    ----------
    model : CombinedModel
    cl : float
        Confidence level (default 0.95).
    asimov : {"unbinned", "binned"}
        hepstats' Asimov set: ``"unbinned"`` (default) weighted events at the bin centres from the
        fit of the unbinned data, constraints centred at the fitted nuisances (the project's
        definition up to the quadrature); ``"binned"`` hepstats' stock binned Asimov loss
        (constraints at 0; slower: the binned loss is traced again).
    asimov_bins : int
        Bins of the Asimov set per channel window.
    hypothesis : ZfitCombined, optional
        An already built zfit model of ``model``.
    htol : float
        Tolerance of the roots in ``probit(CLs)`` (about ``htol`` sigma_mu in mu).

    Returns
    -------
    LimitResult
        ``observed`` and ``expected`` (-2, -1, 0, +1, +2 sigma) in units of ``mu``, ``poi="mu"``,
        ``fit`` the combined fit (``fit_channels_zfit``); ``details`` names the channels, the
        nuisances and the Asimov set.
    """
    from hepstats.hypotests import UpperLimit
    from hepstats.hypotests.parameters import POI, POIarray

    check_cl(cl)
    if asimov not in ("unbinned", "binned"):
        raise FitInputError(f"asimov: expected 'unbinned' or 'binned', got {asimov!r}")
    z = hypothesis or ZfitCombined(model)
    fit, res = _fit(z)
    alpha = 1.0 - cl
    target = ndtri(alpha)
    bins = [int(asimov_bins)] * model.n_channels
    with _quiet():
        if asimov == "unbinned":
            calc = _calculator_class()(res, z.minimizer, bins, z.nuisances)
        else:
            from hepstats.hypotests.calculators import AsymptoticCalculator

            calc = AsymptoticCalculator(input=res, minimizer=z.minimizer, asimov_bins=bins)
    alt = POI(z.mu, 0.0)

    def g_of(x: float, i: int) -> NDArray:
        """``probit(CLs) - probit(1 - cl)`` at mu = x, hepstats' values: observed (entry 0, computed when
        ``i == 0``, with the expected ones from the same Asimov fit) and expected (entries 1..5 = -2..+2 sigma)."""
        null = POIarray(z.mu, [x])
        cls = np.full(6, np.nan)
        with _quiet():
            if i == 0:
                pv = UpperLimit(calc, null, alt, qtilde=True).pvalues(CLs=True)
                cls[:] = [float(pv[k][0]) for k in ("cls", "expected_m2", "expected_m1", "expected", "expected_p1", "expected_p2")]
            else:
                exp = calc.expected_pvalue(null, alt, nsigma=[float(n) for n in N_SIGMA], CLs=True, qtilde=True)
                cls[1:] = [float(v[0]) for v in exp]
        return ndtri(np.clip(cls, 1e-300, 1.0 - 1e-16)) - target

    sig = fit.nsig_err if np.isfinite(fit.nsig_err) and fit.nsig_err > 0 else 1.0
    x_obs = float(observed_start(np.array([fit.nsig]), np.array([sig]), alpha)[0][0])
    g_obs = g_of(x_obs, 0)
    # the Asimov sigma at that point (hepstats' q_A, cached) starts the expected band: x = tgt sigma_A
    with _quiet():
        qa = float(calc.qalt(POIarray(z.mu, [x_obs]), alt, onesided=True, onesideddiscovery=False)[0])
    sig_a = x_obs / np.sqrt(qa) if qa > 0 else sig
    x0 = np.r_[x_obs, np.maximum(expected_band_targets(alpha), 0.1) * sig_a]
    lim, done = pooled_roots(g_of, x0, sig_a, htol=htol, pool=([x_obs], [g_obs]))
    ok = bool(np.all(done) and np.all(np.isfinite(lim)) and fit.converged)
    return LimitResult(
        observed=float(lim[0]), expected=np.asarray(lim[1:], float), cl=cl, poi="mu",
        method="asymptotic (hepstats AsymptoticCalculator, q~_mu, CLs; combined channels)", fit=fit, converged=ok,
        reason=fit.reason or ("" if ok else "CLs root finding did not converge"),
        details={"channels": model.names, "nuisances": model.nuisance_names, "asimov": asimov, "asimov_bins": int(asimov_bins)},
    )


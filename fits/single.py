"""One hypothesis on the vectorised engine: its fit and its asymptotic CLs limit.

Both are ``fits.evaluate_hypotheses`` on a table of one row. ``fits.fit`` and
``fits.upper_limit`` call them after choosing the engine and method; the toy
limits (``fits.toys``) start from ``upper_limit_asymptotic`` and the
resolution-profiled limits (``fits.systematics``) report ``fit_vectorised``.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from signal_models._common.defaults import DEFAULT_CL

from .hypotheses import evaluate_hypotheses
from .inputs import HypothesisInput
from .results import FitResult, LimitResult

__all__ = ["fit_vectorised", "upper_limit_asymptotic"]


def _one_row(bkg_fixed: ArrayLike | None) -> np.ndarray | None:
    return None if bkg_fixed is None else np.asarray(bkg_fixed, float).reshape(1, -1)


def fit_vectorised(hyp: HypothesisInput, *, bkg_fixed: ArrayLike | None = None) -> FitResult:
    """Extended unbinned fit of one hypothesis with the Newton engine.

    ``bkg_fixed`` (``bkg_order + 1`` coefficients, events/GeV): background held fixed.
    Windows that cannot be fitted are flagged (``converged=False``, ``reason``).
    """
    lo, hi = hyp.window
    t = evaluate_hypotheses(hyp.mgg, [hyp.shape], [[lo, hi]], bkg_order=hyp.bkg_order, limits=False, expected=False, bkg_fixed=_one_row(bkg_fixed))
    return t.fit_result(0, shape=hyp.shape, bkg_order=hyp.bkg_order)


def upper_limit_asymptotic(
    hyp: HypothesisInput,
    *,
    cl: float = DEFAULT_CL,
    signal_scale: float | None = None,
    rel_unc: float | None = None,
    syst_kind: str = "lognormal",
    bkg_fixed: ArrayLike | None = None,
) -> LimitResult:
    """Asymptotic CLs upper limit (q~_mu) of one hypothesis with the Newton engine.

    The POI is the signal yield (events), or the cross-section in pb when
    ``signal_scale`` (events per pb) is given. ``rel_unc``: relative yield
    uncertainty profiled as a constrained nuisance (``syst_kind`` log-normal
    or Gaussian) on the scale, or on the yield itself without a scale.
    """
    lo, hi = hyp.window
    scale = None if signal_scale is None else [float(signal_scale)]
    if rel_unc and signal_scale is None:
        scale = [1.0]
    t = evaluate_hypotheses(hyp.mgg, [hyp.shape], [[lo, hi]], bkg_order=hyp.bkg_order, cl=cl, signal_scale=scale, signal_scale_rel_unc=rel_unc,
                            syst_kind=syst_kind, bkg_fixed=_one_row(bkg_fixed))
    f = t.fit_result(0, shape=hyp.shape, bkg_order=hyp.bkg_order)
    if scale is not None:
        obs, exp, poi = float(t.ul_xsec_obs[0]), np.array(t.ul_xsec_exp[0]), ("xsec" if signal_scale is not None else "nsig")
    else:
        obs, exp, poi = float(t.ul_nsig_obs[0]), np.array(t.ul_nsig_exp[0]), "nsig"
    return LimitResult(observed=obs, expected=exp, cl=cl, poi=poi, method="asymptotic", fit=f, converged=bool(t.converged[0]), reason=t.reason[0])

"""Single-hypothesis entry points of the fits package: ``fit``, ``upper_limit``, ``limit_curve``.

Each checks its arguments into a ``fits.inputs.HypothesisInput`` (candidate
masses, shape, window, background order) and hands it to the engine or method
asked for:

- ``fit``: the Newton engine (``fits.single.fit_vectorised``) or the zfit
  reference (``fits.zfit_engine.fit_zfit``);
- ``upper_limit``: asymptotic CLs on the Newton engine
  (``fits.single.upper_limit_asymptotic``), with the resolution profiled
  (``fits.systematics``), from pseudo-experiments (``fits.toys``) or with
  zfit + hepstats (``fits.zfit_engine``).

Many hypotheses at once: ``fits.evaluate_hypotheses`` (``fits.hypotheses``).
The other public names of this module (``evaluate_hypotheses``,
``check_masses``, ``combine_rel_unc``, ``DEFAULT_BKG_ORDER``) are re-exported
from their homes for old imports.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import ndtr

from signal_models._common.defaults import DEFAULT_BKG_ORDER, DEFAULT_CL
from signal_models.shapes import SignalShape

from .asymptotic import cls_asymptotic, q_tilde
from .densities import ShapeArrays
from .design import build_design
from .errors import FitInputError
from .hypotheses import evaluate_hypotheses
from .inputs import HypothesisInput, check_engine, check_masses
from .nuisances import combine_rel_unc
from .results import FitResult, LimitResult
from .single import fit_vectorised, upper_limit_asymptotic
from .toys import toy_upper_limit
from .vectorised import Batch

logger = logging.getLogger(__name__)

__all__ = ["fit", "upper_limit", "limit_curve", "evaluate_hypotheses", "check_masses", "combine_rel_unc", "DEFAULT_BKG_ORDER", "LIMIT_METHODS"]

#: the ways ``upper_limit`` computes a limit
LIMIT_METHODS = ("asymptotic", "toys")


def fit(
    mgg: ArrayLike,
    shape: SignalShape,
    window: Sequence[float] | None = None,
    *,
    bkg_order: int = DEFAULT_BKG_ORDER,
    engine: str = "vectorised",
    bkg_fixed: ArrayLike | None = None,
) -> FitResult:
    """Extended unbinned fit of signal + Chebyshev background in one window.

    Parameters
    ----------
    mgg : array (n,)
        Candidate masses in GeV (all candidates; those outside the window are ignored).
    shape : SignalShape
        Fixed signal shape.
    window : (lo, hi), optional
        Fit window in GeV; default ``mu +- 20 sigma`` clipped to the data range.
    bkg_order : int
        Chebyshev order of the background (default 3).
    engine : {"vectorised", "zfit"}
        Newton engine (default) or the zfit/Minuit reference engine.
    bkg_fixed : array (bkg_order+1,), optional
        Fixed background coefficients (events/GeV), e.g. from a sideband fit
        (vectorised engine).

    Returns
    -------
    FitResult
        Flagged (``converged=False``, ``reason``) rather than raising for
        windows that cannot be fitted (too few events, degenerate data, peak
        outside the window).
    """
    hyp = HypothesisInput.from_args(mgg, shape, window, bkg_order=bkg_order)
    if check_engine(engine) == "zfit":
        from .zfit_engine import fit_zfit  # imports TensorFlow

        return fit_zfit(hyp.mgg, hyp.shape, hyp.window, bkg_order=hyp.bkg_order)
    return fit_vectorised(hyp, bkg_fixed=bkg_fixed)


def upper_limit(
    mgg: ArrayLike,
    shape: SignalShape,
    window: Sequence[float] | None = None,
    *,
    bkg_order: int = DEFAULT_BKG_ORDER,
    cl: float = DEFAULT_CL,
    method: str = "asymptotic",
    signal_scale: float | None = None,
    rel_unc: float | None = None,
    syst_kind: str = "lognormal",
    resolution_unc: float | None = None,
    n_toys: int = 1000,
    seed: int | None = 0,
    engine: str = "vectorised",
    bkg_fixed: ArrayLike | None = None,
) -> LimitResult:
    """CLs upper limit (q~_mu) on the signal yield, or on the cross-section.

    Parameters
    ----------
    mgg, shape, window, bkg_order
        As for ``fit``.
    cl : float
        Confidence level (default 0.95).
    method : {"asymptotic", "toys"}
        Asymptotic formulae with the analytic Asimov set, or pseudo-experiments
        generated from the fitted model (``n_toys`` per tested POI value,
        ``seed`` for reproducibility; the options below other than
        ``signal_scale`` do not apply to toys).
    signal_scale : float, optional
        Events per pb; with it the POI is the cross-section in pb
        (``N_sig = sigma * signal_scale``).
    rel_unc : float, optional
        Relative yield uncertainty (constrained nuisance, ``syst_kind``
        log-normal or Gaussian) on ``signal_scale`` (or on the signal yield
        when no scale is given).
    resolution_unc : float, optional
        Relative uncertainty of the signal core width; profiled over a small
        grid of width scales with a Gaussian constraint.
    engine : {"vectorised", "zfit"}
        ``"zfit"`` uses zfit + hepstats' AsymptoticCalculator (slow, reference).
    bkg_fixed : array (bkg_order+1,), optional
        Fixed background coefficients (events/GeV), e.g. from a sideband fit.

    Returns
    -------
    LimitResult
        ``observed``, ``expected`` (-2..+2 sigma) in events (or pb).
    """
    hyp = HypothesisInput.from_args(mgg, shape, window, bkg_order=bkg_order)
    if method == "toys":
        return toy_upper_limit(hyp.mgg, hyp.shape, hyp.window, bkg_order=hyp.bkg_order, cl=cl, n_toys=n_toys, seed=seed, signal_scale=signal_scale)
    if method not in LIMIT_METHODS:
        raise FitInputError(f"method: expected 'asymptotic' or 'toys', got {method!r}")
    if check_engine(engine) == "zfit":
        if resolution_unc or bkg_fixed is not None:
            raise FitInputError("engine='zfit': resolution_unc and bkg_fixed are only available with engine='vectorised'")
        from .zfit_engine import upper_limit_hepstats  # imports TensorFlow

        return upper_limit_hepstats(hyp.mgg, hyp.shape, hyp.window, bkg_order=hyp.bkg_order, cl=cl, signal_scale=signal_scale, rel_unc=rel_unc,
                                    syst_kind=syst_kind)
    if resolution_unc:
        from .systematics import upper_limit_resolution  # scipy.optimize only when asked for

        return upper_limit_resolution(hyp.mgg, hyp.shape, hyp.window, bkg_order=hyp.bkg_order, cl=cl, resolution_unc=resolution_unc,
                                      signal_scale=signal_scale, rel_unc=rel_unc, syst_kind=syst_kind)
    return upper_limit_asymptotic(hyp, cl=cl, signal_scale=signal_scale, rel_unc=rel_unc, syst_kind=syst_kind, bkg_fixed=bkg_fixed)


def limit_curve(
    mgg: ArrayLike,
    shape: SignalShape,
    window: Sequence[float] | None = None,
    *,
    poi_values: ArrayLike,
    bkg_order: int = DEFAULT_BKG_ORDER,
) -> dict[str, Any]:
    """``q~_mu``, ``q_A`` and asymptotic CLs (observed and expected median) along ``poi_values`` (events).

    For plots and cross-checks (``fits.plots.plot_cls``): one hypothesis, the
    POI values are fitted as a batch. Returns a dict of arrays over the POI
    values (``poi``, ``q_tilde``, ``q_asimov``, ``cls``, ``p_mu``,
    ``one_minus_pb``, ``cls_expected``) and the fitted ``nsig_hat``,
    ``nsig_err`` (events).
    """
    hyp = HypothesisInput.from_args(mgg, shape, window, bkg_order=bkg_order)
    x = np.sort(hyp.mgg)
    lo, hi = hyp.window
    order = hyp.bkg_order
    mu = np.asarray(poi_values, float)
    m = len(mu)
    sh = ShapeArrays.from_shapes([hyp.shape] * m)
    design = build_design(x, sh, np.full(m, lo), np.full(m, hi), order)
    b = Batch(design, sh, order)
    bf = b.fit()
    c = b.conditional(mu)
    q = q_tilde(c.nll, bf.nll_hat, bf.nll_zero, mu, bf.mu_hat)
    qa, _ = b.q_asimov(mu)
    cls, p_mu, one_m_pb = cls_asymptotic(q, qa)
    # median under background only: sqrt(q~) = sqrt(q_A), so CLs = (1 - Phi(sqrt(q_A))) / Phi(0)
    cls_med = ndtr(-np.sqrt(qa)) / 0.5
    return {"poi": mu, "q_tilde": q, "q_asimov": qa, "cls": cls, "p_mu": p_mu, "one_minus_pb": one_m_pb, "cls_expected": cls_med, "nsig_hat": float(bf.mu_hat[0]),
            "nsig_err": float(bf.mu_err[0])}

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

import dataclasses
import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import ndtr

from signal_models._common.defaults import DEFAULT_BKG_ORDER, DEFAULT_CL
from signal_models._common.errors import BumphuntError
from signal_models.shapes import SignalShape

from .asymptotic import cls_asymptotic, q_tilde
from .channels import Channel, ShapeUncertainty, SpuriousSignal, YieldUncertainty
from .combined_api import CombinedFitResult, fit_channels, is_channel_list, upper_limit_channels
from .densities import ShapeArrays
from .design import build_design
from .errors import FitFailure, FitInputError
from .hypotheses import evaluate_hypotheses
from .inputs import HypothesisInput, check_cl, check_engine, check_masses, check_optional_number, window_problems
from .nuisances import SYST_KINDS, combine_rel_unc
from .results import FitResult, LimitResult
from .single import fit_vectorised, upper_limit_asymptotic
from .toys import toy_upper_limit
from .vectorised import Batch

logger = logging.getLogger(__name__)

__all__ = ["fit", "upper_limit", "limit_curve", "evaluate_hypotheses", "check_masses", "combine_rel_unc", "DEFAULT_BKG_ORDER", "LIMIT_METHODS"]

#: the ways ``upper_limit`` computes a limit
LIMIT_METHODS = ("asymptotic", "toys")


def fit(
    mgg: ArrayLike | Channel | Sequence[Channel],
    shape: SignalShape | None = None,
    window: Sequence[float] | None = None,
    *,
    bkg_order: int = DEFAULT_BKG_ORDER,
    engine: str = "vectorised",
    bkg_fixed: ArrayLike | None = None,
    yield_uncertainties: Sequence[YieldUncertainty] = (),
    shape_uncertainties: Sequence[ShapeUncertainty] = (),
    spurious_signals: Sequence[SpuriousSignal] = (),
) -> FitResult | CombinedFitResult:
    """Extended unbinned fit of signal + Chebyshev background in one window, or of several channels.

    Parameters
    ----------
    mgg : array (n,), or a list of ``fits.Channel``
        Candidate masses in GeV (all candidates; those outside the window are
        ignored). With channels (each its own candidates, shape, window,
        ``signal_scale`` and background order) the fit is combined: one shared
        parameter of interest ``mu`` (``N_sig,c = mu x signal_scale_c``), a
        background per channel, and the nuisances below; the result is a
        ``CombinedFitResult`` in units of ``mu``.
    shape : SignalShape
        Fixed signal shape (not with channels).
    window : (lo, hi), optional
        Fit window in GeV; default ``mu +- 20 sigma`` clipped to the data range.
    bkg_order : int
        Chebyshev order of the background (default 3).
    engine : {"vectorised", "zfit"}
        Newton engine (default) or the zfit/Minuit reference engine.
    bkg_fixed : array (bkg_order+1,), optional
        Fixed background coefficients (events/GeV), e.g. from a sideband fit
        (vectorised engine).
    yield_uncertainties, shape_uncertainties, spurious_signals : sequences
        Constrained nuisances of a combined fit (``fits.YieldUncertainty``,
        ``fits.ShapeUncertainty``, ``fits.SpuriousSignal``); they make a fit
        combined even for one channel.

    Returns
    -------
    FitResult or CombinedFitResult
        Flagged (``converged=False``, ``reason``) rather than raising for
        windows that cannot be fitted (too few events, degenerate data, peak
        outside the window).

    Examples
    --------
    >>> import numpy as np
    >>> import fits
    >>> from signal_models import SignalShape
    >>> shape = SignalShape(mu=1.0, sigma=0.01, alpha_l=1.2, n_l=3.0, alpha_r=1.6, n_r=6.0)
    >>> rng = np.random.default_rng(1)
    >>> mgg = np.concatenate([rng.uniform(0.8, 1.2, 2000), shape.sample(100, 0.8, 1.2, rng=rng)])
    >>> res = fits.fit(mgg, shape, (0.8, 1.2), bkg_order=1)
    >>> res.converged, round(res.nsig), round(res.nsig_err)       # signal events
    (True, 93, 20)
    """
    if is_channel_list(mgg) or yield_uncertainties or shape_uncertainties or spurious_signals:
        mgg, shape, window = _as_channel(mgg, shape, window, bkg_order=bkg_order, bkg_fixed=bkg_fixed)
        _check_zfit_order(engine, [getattr(c, "bkg_order", 1) for c in mgg])
        return _reference(engine == "zfit", fit_channels, mgg, yield_uncertainties=yield_uncertainties, shape_uncertainties=shape_uncertainties,
                          spurious_signals=spurious_signals, engine=engine)
    if shape is None:
        raise FitInputError("fit: give the signal shape (or a list of fits.Channel as the first argument)")
    hyp = HypothesisInput.from_args(mgg, shape, window, bkg_order=bkg_order)
    if check_engine(engine) == "zfit":
        _check_zfit_order(engine, [hyp.bkg_order])
        if _window_problem(hyp):  # flagged without a fit, as the vectorised engine flags it
            return dataclasses.replace(fit_vectorised(hyp), engine="zfit")
        from .zfit_engine import fit_zfit  # imports TensorFlow

        return _reference(engine == "zfit", fit_zfit, hyp.mgg, hyp.shape, hyp.window, bkg_order=hyp.bkg_order)
    return fit_vectorised(hyp, bkg_fixed=bkg_fixed)


def upper_limit(
    mgg: ArrayLike | Channel | Sequence[Channel],
    shape: SignalShape | None = None,
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
    yield_uncertainties: Sequence[YieldUncertainty] = (),
    shape_uncertainties: Sequence[ShapeUncertainty] = (),
    spurious_signals: Sequence[SpuriousSignal] = (),
) -> LimitResult:
    """CLs upper limit (q~_mu) on the signal yield, or on the cross-section, or on the shared ``mu`` of channels.

    Parameters
    ----------
    mgg, shape, window, bkg_order
        As for ``fit``; with a list of ``fits.Channel`` the limit is on the
        shared ``mu`` (asymptotic, nuisances profiled; ``cl`` and ``engine``
        apply, the other options are those of the channels and nuisances).
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
    yield_uncertainties, shape_uncertainties, spurious_signals : sequences
        Constrained nuisances of a combined fit (see ``fit``).

    Returns
    -------
    LimitResult
        ``observed``, ``expected`` (-2..+2 sigma) in events (or pb, or units of ``mu``).

    Examples
    --------
    >>> import numpy as np
    >>> import fits
    >>> from signal_models import SignalShape
    >>> shape = SignalShape(mu=1.0, sigma=0.01, alpha_l=1.2, n_l=3.0, alpha_r=1.6, n_r=6.0)
    >>> rng = np.random.default_rng(1)
    >>> mgg = np.concatenate([rng.uniform(0.8, 1.2, 2000), shape.sample(100, 0.8, 1.2, rng=rng)])
    >>> ul = fits.upper_limit(mgg, shape, (0.8, 1.2), bkg_order=1)
    >>> round(ul.observed), len(ul.expected)                       # events; -2..+2 sigma band
    (126, 5)
    """
    if is_channel_list(mgg) or yield_uncertainties or shape_uncertainties or spurious_signals:
        mgg, shape, window = _as_channel(mgg, shape, window, bkg_order=bkg_order, bkg_fixed=bkg_fixed)
        if method != "asymptotic" or signal_scale is not None or rel_unc or resolution_unc:
            raise FitInputError("upper_limit with channels: method, signal_scale, rel_unc and resolution_unc belong to the single-dataset call; "
                                "give the scales to fits.Channel and the uncertainties as yield_uncertainties / shape_uncertainties")
        _check_zfit_order(engine, [getattr(c, "bkg_order", 1) for c in mgg])
        return _reference(engine == "zfit", upper_limit_channels, mgg, cl=cl, yield_uncertainties=yield_uncertainties, shape_uncertainties=shape_uncertainties,
                          spurious_signals=spurious_signals, engine=engine)
    if shape is None:
        raise FitInputError("upper_limit: give the signal shape (or a list of fits.Channel as the first argument)")
    hyp = HypothesisInput.from_args(mgg, shape, window, bkg_order=bkg_order)
    check_cl(cl)
    signal_scale = check_optional_number(signal_scale, "signal_scale", positive=True)
    rel_unc = check_optional_number(rel_unc, "rel_unc")
    resolution_unc = check_optional_number(resolution_unc, "resolution_unc")
    if syst_kind not in SYST_KINDS:
        raise FitInputError(f"syst_kind: expected one of {SYST_KINDS}, got {syst_kind!r}")
    if method == "toys":
        if isinstance(n_toys, bool) or not isinstance(n_toys, (int, np.integer)) or n_toys < 1:
            raise FitInputError(f"n_toys: expected a positive integer, got {n_toys!r}")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0):
            raise FitInputError(f"seed: expected a non-negative integer or None, got {seed!r}")
        return toy_upper_limit(hyp.mgg, hyp.shape, hyp.window, bkg_order=hyp.bkg_order, cl=cl, n_toys=n_toys, seed=seed, signal_scale=signal_scale)
    if method not in LIMIT_METHODS:
        raise FitInputError(f"method: expected 'asymptotic' or 'toys', got {method!r}")
    if check_engine(engine) == "zfit":
        _check_zfit_order(engine, [hyp.bkg_order])
        if resolution_unc or bkg_fixed is not None:
            raise FitInputError("engine='zfit': resolution_unc and bkg_fixed are only available with engine='vectorised'")
        if _window_problem(hyp):  # flagged without a fit, as the vectorised engine flags it
            lim = upper_limit_asymptotic(hyp, cl=cl, signal_scale=signal_scale, rel_unc=rel_unc, syst_kind=syst_kind)
            return dataclasses.replace(lim, fit=dataclasses.replace(lim.fit, engine="zfit"))
        from .zfit_engine import upper_limit_hepstats  # imports TensorFlow

        return _reference(engine == "zfit", upper_limit_hepstats, hyp.mgg, hyp.shape, hyp.window, bkg_order=hyp.bkg_order, cl=cl, signal_scale=signal_scale,
                          rel_unc=rel_unc, syst_kind=syst_kind)
    if resolution_unc:
        from .systematics import upper_limit_resolution  # scipy.optimize only when asked for

        return upper_limit_resolution(hyp.mgg, hyp.shape, hyp.window, bkg_order=hyp.bkg_order, cl=cl, resolution_unc=resolution_unc,
                                      signal_scale=signal_scale, rel_unc=rel_unc, syst_kind=syst_kind)
    return upper_limit_asymptotic(hyp, cl=cl, signal_scale=signal_scale, rel_unc=rel_unc, syst_kind=syst_kind, bkg_fixed=bkg_fixed)


def _as_channel(mgg: Any, shape: Any, window: Any, *, bkg_order: int, bkg_fixed: Any) -> tuple[Any, None, None]:
    """Channels as given, or one dataset with nuisances as a single ``Channel`` (signal_scale 1: the POI is N_sig)."""
    if is_channel_list(mgg):
        _no_single_arguments(shape, window, bkg_fixed)
        return mgg, None, None
    if shape is None or bkg_fixed is not None:
        raise FitInputError("with nuisances: give the signal shape (and no bkg_fixed), or a list of fits.Channel as the first argument")
    return [Channel(mgg, shape, window, bkg_order=bkg_order)], None, None


def _reference(zfit: bool, run: Any, /, *args: Any, **kwargs: Any) -> Any:
    """``run(*args, **kwargs)``; with ``zfit`` (the zfit engine) a failure inside zfit, TensorFlow or hepstats becomes ``FitFailure``.

    The reference engine has no retries of its own: a minimisation that fails
    (e.g. zfit's ``FailMinimizeNaN`` on a handful of events) is reported as the
    package's failure, naming the engine and the original error.
    """
    if not zfit:
        return run(*args, **kwargs)
    try:
        return run(*args, **kwargs)
    except BumphuntError:
        raise
    except Exception as exc:  # zfit, TensorFlow and hepstats raise many types for a failed minimisation
        detail = " ".join(str(exc).split())[:300]
        raise FitFailure(f"engine='zfit': the reference fit failed ({type(exc).__name__}: {detail}); engine='vectorised' flags such fits "
                         "(converged=False) instead") from exc


def _window_problem(hyp: HypothesisInput) -> str:
    """Why the window of ``hyp`` cannot be fitted (too few events, degenerate data, peak outside), or ""."""
    lo, hi = hyp.window
    reasons, _, _ = window_problems(np.sort(hyp.mgg), ShapeArrays.from_shapes([hyp.shape]), [hyp.shape], np.array([lo]), np.array([hi]),
                                    hyp.bkg_order)
    return reasons[0]


def _check_zfit_order(engine: str, orders: Sequence[int]) -> None:
    """The zfit reference engine builds its background as ``zfit.pdf.Chebyshev``, which fails without a coefficient."""
    if engine == "zfit" and any(o == 0 for o in orders):
        raise FitInputError("bkg_order: 0 (a flat background) is not available with engine='zfit' (zfit's Chebyshev needs order >= 1); "
                            "use engine='vectorised' or bkg_order >= 1")


def _no_single_arguments(shape: Any, window: Any, bkg_fixed: Any) -> None:
    if shape is not None or window is not None or bkg_fixed is not None:
        raise FitInputError("with channels, the shape and window belong to each fits.Channel (and bkg_fixed is not available)")


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

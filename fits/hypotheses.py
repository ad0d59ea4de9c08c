"""Many mass hypotheses at once: ``evaluate_hypotheses``, the engine entry point of the scans.

The inputs are checked (``fits.inputs``), hypotheses that cannot be fitted are
flagged with a reason, those with extra peak templates are fitted one by one
(``fits.extra_templates``), and the others are cut into chunks of consecutive
hypotheses with a bounded padded size (``CHUNK_SLOTS`` event slots), each
evaluated as one batch (``fits.chunks.evaluate_chunk``). The per-chunk results
are placed into one ``HypothesisTable``. ``engine="zfit"`` hands everything to
the reference engine instead (``fits.zfit_engine``, slow). ``limit_method``
"toys" or "auto" then replaces asymptotic limits by toy CLs limits
(``fits.limit_methods``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from signal_models._common.defaults import DEFAULT_BKG_ORDER, DEFAULT_CL
from signal_models.shapes import SignalShape

from .chunks import ChunkResult, HypothesisRequest, evaluate_chunk
from .densities import ShapeArrays, background_nonnegative, chebyshev_integrals
from .errors import FitInputError
from .inputs import (
    check_bkg_fixed,
    check_bkg_order,
    check_cl,
    check_engine,
    check_extra_shapes,
    check_shapes,
    check_signal_scale,
    check_windows,
    sorted_masses,
    window_problems,
)
from .limit_methods import AutoRule, check_limit_method, with_limit_method
from .nuisances import Syst, yield_systematic
from .results import HypothesisTable
from .toy_problem import ToyOptions

logger = logging.getLogger(__name__)

__all__ = ["evaluate_hypotheses", "chunk_hypotheses", "check_batch", "CheckedBatch", "CHUNK_SLOTS"]

#: target number of padded event slots per batch (memory/cache trade-off)
CHUNK_SLOTS = 600_000


@dataclass(frozen=True)
class CheckedBatch:
    """The checked inputs of a batch of k hypotheses (``check_batch``).

    Attributes
    ----------
    sorted_mgg : (n,) ndarray
        Candidate masses (GeV), sorted.
    shapes : list of k SignalShape
    windows : (k, 2) ndarray
        Fit windows (GeV).
    bkg_order : int
    scale : (k,) ndarray or None
        Signal events per unit of the POI.
    syst : fits.nuisances.Syst or None
        The yield systematic of ``signal_scale_rel_unc``.
    """

    sorted_mgg: NDArray
    shapes: list[SignalShape]
    windows: NDArray
    bkg_order: int
    scale: NDArray | None
    syst: Syst | None


def check_batch(mgg: ArrayLike, shapes: Sequence[SignalShape], windows: ArrayLike, *, bkg_order: int, cl: float, signal_scale: ArrayLike | None,
                signal_scale_rel_unc: ArrayLike | None, syst_kind: str) -> CheckedBatch:
    """Check the arguments shared by ``evaluate_hypotheses`` and ``fits.toy_limits.toy_cls_limits`` (``FitInputError`` naming the bad one)."""
    x = sorted_masses(mgg)
    shapes = check_shapes(shapes)
    k = len(shapes)
    win = check_windows(windows, k)
    check_cl(cl)
    order = check_bkg_order(bkg_order)
    scale = check_signal_scale(signal_scale, k)
    syst = yield_systematic(signal_scale_rel_unc, k, kind=syst_kind)
    return CheckedBatch(sorted_mgg=x, shapes=shapes, windows=win, bkg_order=order, scale=scale, syst=syst)


def evaluate_hypotheses(
    mgg: ArrayLike,
    shapes: Sequence[SignalShape],
    windows: ArrayLike,
    *,
    bkg_order: int = DEFAULT_BKG_ORDER,
    cl: float = DEFAULT_CL,
    limits: bool = True,
    expected: bool = True,
    signal_scale: ArrayLike | None = None,
    signal_scale_rel_unc: ArrayLike | None = None,
    syst_kind: str = "lognormal",
    engine: str = "vectorised",
    bkg_fixed: ArrayLike | None = None,
    chunk_slots: int = CHUNK_SLOTS,
    show_progress: bool | None = False,
    extra_shapes: Sequence[Sequence[SignalShape] | None] | None = None,
    limit_method: str = "asymptotic",
    toys: int = 1000,
    toy_seed: int = 0,
    toy_options: ToyOptions | None = None,
    auto_rule: AutoRule | None = None,
) -> HypothesisTable:
    """Fit and (optionally) set limits for k mass hypotheses at once.

    Parameters
    ----------
    mgg : array (n,)
        Candidate diphoton masses in GeV, any order.
    shapes : sequence of k SignalShape
        Signal shape per hypothesis (fixed in the fit).
    windows : array (k, 2)
        Fit windows in GeV.
    bkg_order : int
        Order of the background Chebyshev polynomial (floating coefficients).
    cl : float
        Confidence level of the CLs upper limits.
    limits, expected : bool
        Compute observed limits / the expected band (Asimov).
    signal_scale : array (k,), optional
        Events per pb (efficiency x luminosity); adds ``ul_xsec_obs`` and
        ``ul_xsec_exp`` in pb.
    signal_scale_rel_unc : float or array (k,), optional
        Relative uncertainty of ``signal_scale`` (luminosity, efficiency and
        trigger combined, see ``combine_rel_unc``), a constrained nuisance
        (log-normal by default, ``syst_kind="gaussian"`` for Gaussian) in the
        cross-section limits.
    engine : {"vectorised", "zfit"}
        ``"zfit"`` loops over hypotheses with the reference engine (slow;
        fits and limits via zfit + hepstats).
    bkg_fixed : array (k, bkg_order+1), optional
        Background coefficients ``beta_k`` (events/GeV of ``T_k(x')``) held
        fixed, e.g. from ``fits.sideband.sideband_background``; only the
        signal yield floats.
    chunk_slots : int
        Target number of padded event slots per batch.
    show_progress : bool, optional
        Accepted for compatibility; no progress is shown.
    extra_shapes : sequence of k (sequence of SignalShape or None), optional
        Per hypothesis, fixed-shape background templates (e.g. known peaks such
        as the pi0 at its PDG mass), each normalised on the window with a
        floating yield. Hypotheses with templates are fitted on the numpy path
        (``fits.extra_templates``; limits from the asymptotic CLs formulae,
        cross-section limits without the ``signal_scale`` nuisance), the others
        as usual. Not available with ``engine="zfit"`` or ``bkg_fixed``.
    limit_method : {"asymptotic", "toys", "auto"}
        How the limits are set (``fits.limit_methods``): the asymptotic
        formulae (default, today's table); toy CLs for every hypothesis
        (``fits.toy_limits``); or toys only where the asymptotic conditions
        fail (``auto_rule``: too few background events under the peak, or
        pilot toys whose yield spread disagrees with the Asimov error). With
        toys, hypotheses with extra templates keep asymptotic limits; not
        available with ``engine="zfit"`` or ``bkg_fixed``.
    toys : int
        Toys per hypothesis (background-only, and signal + background per
        POI value near the crossings) for ``"toys"`` and ``"auto"``.
    toy_seed : int
        Seed of the toys (with each hypothesis' mass and window: results do
        not depend on how the hypotheses are split into calls).
    toy_options, auto_rule : optional
        Settings of the toy engine (``fits.toy_runner.ToyOptions``) and of ``"auto"``.

    Returns
    -------
    HypothesisTable
        With ``limit_method`` other than ``"asymptotic"`` a
        ``fits.limit_methods.ToyHypothesisTable``: the same columns plus
        ``limit_method`` per hypothesis, the Monte Carlo errors of the limits
        and the toys used.
    """
    b = check_batch(mgg, shapes, windows, bkg_order=bkg_order, cl=cl, signal_scale=signal_scale, signal_scale_rel_unc=signal_scale_rel_unc,
                    syst_kind=syst_kind)
    x, shapes, win, order, scale, syst = b.sorted_mgg, b.shapes, b.windows, b.bkg_order, b.scale, b.syst
    k = len(shapes)
    extras = check_extra_shapes(extra_shapes, k)
    if any(extras) and (engine == "zfit" or bkg_fixed is not None):
        raise FitInputError("extra_shapes: floating peak templates need engine='vectorised' and no bkg_fixed")
    if check_limit_method(limit_method, toys) != "asymptotic" and (engine == "zfit" or bkg_fixed is not None):
        raise FitInputError(f"limit_method={limit_method!r}: toy limits need engine='vectorised' and no bkg_fixed")
    if check_engine(engine) == "zfit":
        from .zfit_engine import evaluate_hypotheses_zfit  # imports TensorFlow

        return evaluate_hypotheses_zfit(x, shapes, win, bkg_order=order, cl=cl, limits=limits, expected=expected, signal_scale=scale,
                                        signal_scale_rel_unc=None if syst is None else syst.rel_unc, syst_kind=syst_kind)
    bkg_fixed_arr = check_bkg_fixed(bkg_fixed, k, order)
    lo, hi = win[:, 0].copy(), win[:, 1].copy()
    if k == 0:
        return _table(np.zeros(0), win, np.zeros(0, int), ChunkResult.empty(0, order, with_xsec=scale is not None))
    sh = ShapeArrays.from_shapes(shapes)
    reasons, start, stop = window_problems(x, sh, shapes, lo, hi, order)
    request = HypothesisRequest(sorted_mgg=x, shapes=sh, lo=lo, hi=hi, start=start, stop=stop, bkg_order=order, cl=cl, limits=limits,
                                expected=expected, scale=scale, syst=syst, bkg_fixed=bkg_fixed_arr)
    n_events = request.n_events
    result = ChunkResult.empty(k, order, with_xsec=scale is not None, reason=reasons)
    good = np.array([r == "" for r in reasons])
    with_extra = np.array([bool(e) for e in extras])
    for j in np.flatnonzero(good & with_extra):
        result = result.with_rows([j], _with_templates(request, j, shapes[j], extras[j]))
    if scale is not None and syst is not None and np.any(good & with_extra):
        logger.warning("%d hypotheses with floating peak templates: their cross-section limits ignore the signal-scale uncertainty",
                       int(np.sum(good & with_extra)))
    good &= ~with_extra
    for idx in chunk_hypotheses(np.flatnonzero(good), n_events, chunk_slots=chunk_slots):
        result = result.with_rows(idx, evaluate_chunk(request.take(idx)))
    table = _table(sh.mu.copy(), win, n_events, result)
    if limit_method == "asymptotic" or not limits:
        return table
    return with_limit_method(table, x, shapes, method=limit_method, n_toys=toys, seed=toy_seed, bkg_order=order, cl=cl, scale=scale,
                             rel_unc=None if syst is None else syst.rel_unc, syst_kind=syst_kind, fitted=good, rule=auto_rule, options=toy_options)


def chunk_hypotheses(idx: NDArray, n_events: NDArray, *, chunk_slots: int = CHUNK_SLOTS) -> list[NDArray]:
    """Cut the hypotheses ``idx`` (in order) into runs whose padded size ``max(n) * len`` stays within ``chunk_slots``.

    ``n_events`` holds the candidates per window of all hypotheses (indexed by ``idx``).
    """
    chunks: list[NDArray] = []
    cur: list[int] = []
    cur_max = 0
    for j in idx:
        n = int(n_events[j])
        if cur and max(cur_max, n) * (len(cur) + 1) > chunk_slots:
            chunks.append(np.array(cur))
            cur, cur_max = [], 0
        cur.append(j)
        cur_max = max(cur_max, n)
    if cur:
        chunks.append(np.array(cur))
    return chunks


def _with_templates(request: HypothesisRequest, j: int, shape: SignalShape, extra: Sequence[SignalShape]) -> ChunkResult:
    """Hypothesis ``j`` of ``request`` with floating peak templates (numpy path, ``fits.extra_templates``), as a result of one row."""
    from .extra_templates import fit_with_templates  # scipy.stats and scipy.optimize only when templates are used

    lo, hi, order = request.lo[j], request.hi[j], request.bkg_order
    r = fit_with_templates(request.sorted_mgg[request.start[j]:request.stop[j]], shape, extra, float(lo), float(hi), order, cl=request.cl,
                           limits=request.limits, expected=request.expected)
    beta = r.beta
    row = ChunkResult.empty(1, order, with_xsec=request.scale is not None)
    ul_obs = np.array([r.ul_nsig_obs]) if request.limits else row.ul_nsig_obs
    ul_exp = np.array([r.ul_nsig_exp]) if request.expected else row.ul_nsig_exp
    return ChunkResult(
        nsig=np.array([r.nsig]),
        nsig_err=np.array([r.nsig_err]),
        nbkg=np.array([float(0.5 * (hi - lo) * chebyshev_integrals(order) @ beta)]),
        nll=np.array([r.nll]),
        z_local=np.array([r.z_local]),
        beta=beta[None, :],
        bkg_nonnegative=background_nonnegative(beta[None, :], order),
        converged=np.array([r.converged]),
        reason=(r.reason,),
        ul_nsig_obs=ul_obs,
        ul_nsig_exp=ul_exp,
        ul_xsec_obs=None if request.scale is None else ul_obs / request.scale[j],
        ul_xsec_exp=None if request.scale is None else ul_exp / request.scale[j],
    )


def _table(mass: NDArray, windows: NDArray, n_events: NDArray, result: ChunkResult) -> HypothesisTable:
    """The table of all hypotheses from their merged result."""
    return HypothesisTable(
        mass=mass,
        window=windows,
        n_events=n_events,
        nsig=result.nsig,
        nsig_err=result.nsig_err,
        nbkg=result.nbkg,
        nll=result.nll,
        z_local=result.z_local,
        converged=result.converged,
        reason=list(result.reason),
        ul_nsig_obs=result.ul_nsig_obs,
        ul_nsig_exp=result.ul_nsig_exp,
        ul_xsec_obs=result.ul_xsec_obs,
        ul_xsec_exp=result.ul_xsec_exp,
        bkg_nonnegative=result.bkg_nonnegative,
        beta=result.beta,
    )

"""Toy-based CLs upper limits for many hypotheses at once: ``toy_cls_limits`` -> ``ToyLimitTable``.

Same inputs as ``fits.evaluate_hypotheses`` (sorted or unsorted masses,
shapes, windows, background order, optional signal scale and yield
uncertainty). For every hypothesis: the observed CLs limit and the expected
+-1/2 sigma band from pseudo-experiments with ``q~_mu`` (arXiv:1007.1727,
eq. 16; the profile construction: toys generated from the data's conditional
fits), each with its Monte Carlo error (bootstrap over the toys).

How the toys are made cheap (the modules say more):

- ``fits.toy_sampling``: each toy is drawn once, as a Poisson point process
  that is thinned to the background-only toy and to the signal + background
  toy of every POI value (the same random numbers across the POI grid, so
  CLs is smooth in the POI);
- ``fits.toy_statistic``: all toys of all hypotheses and POI values are rows of
  one batch of compiled Newton fits, and the sign of ``dNLL/dmu`` spares the
  fits ``q~`` does not need;
- ``fits.toy_cls``: every toy serves both tail probabilities through mixture
  importance weights; crossings by interpolation, errors by bootstrap;
- ``fits.toy_runner``: stages of 100, 250, 500, ... toys; a POI value stops
  getting toys once its CLs values are decided; POI values are added until
  every curve crosses ``1 - cl`` (a limit is never a grid edge: a crossing
  that is not bracketed is extrapolated and flagged).

Deterministic for a seed: each hypothesis draws its random numbers from a key
made of the bits of its mass and window (``fits.toy_sampling.hypothesis_key``),
so the results of a hypothesis do not depend on the other hypotheses of the
call, how they are chunked, the number of workers or threads.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace

import numpy as np
from numpy.typing import ArrayLike

from signal_models._common.defaults import DEFAULT_BKG_ORDER, DEFAULT_CL
from signal_models.shapes import SignalShape

from .hypotheses import check_batch, evaluate_hypotheses
from .results import HypothesisTable
from .toy_batch import ToyLimitTable, limits_from_start
from .toy_problem import ToyOptions

logger = logging.getLogger(__name__)

__all__ = ["ToyLimitTable", "ToyOptions", "toy_cls_limits"]


def toy_cls_limits(
    mgg: ArrayLike,
    shapes: Sequence[SignalShape],
    windows: ArrayLike,
    *,
    bkg_order: int = DEFAULT_BKG_ORDER,
    cl: float = DEFAULT_CL,
    n_toys: int = 1000,
    seed: int = 0,
    signal_scale: ArrayLike | None = None,
    signal_scale_rel_unc: ArrayLike | None = None,
    syst_kind: str = "lognormal",
    asymptotic: HypothesisTable | None = None,
    options: ToyOptions | None = None,
    poi_values: Sequence[ArrayLike | None] | None = None,
) -> ToyLimitTable:
    """Toy CLs observed limits and expected bands of k hypotheses, with their Monte Carlo errors.

    Parameters
    ----------
    mgg : array (n,)
        Candidate diphoton masses in GeV.
    shapes, windows, bkg_order, cl
        As ``fits.evaluate_hypotheses`` (windows (k, 2) in GeV).
    n_toys : int
        Background-only toys (and signal + background toys per POI value)
        around the crossings; POI values far from them get fewer.
    seed : int
        Seed of all toys (with each hypothesis' mass and window).
    signal_scale : array (k,), optional
        Signal events per pb: limits in pb instead of signal events.
    signal_scale_rel_unc : float or array (k,), optional
        Relative uncertainty of the scale, profiled in the toys' fits as a
        constrained nuisance (with its global observable drawn per toy); the
        POI is then the cross-section (pb), or the signal yield with a yield
        uncertainty when ``signal_scale`` is None.
    syst_kind : {"lognormal", "gaussian"}
    asymptotic : HypothesisTable, optional
        The asymptotic results of the same hypotheses (with limits and band;
        their POI values start the grids); computed when not given.
    options : ToyOptions, optional
    poi_values : sequence of k arrays or None, optional
        Initial POI values per hypothesis (POI units) instead of the grid
        around the asymptotic limits; values are still added to bracket every crossing.

    Returns
    -------
    ToyLimitTable
    """
    b = check_batch(mgg, shapes, windows, bkg_order=bkg_order, cl=cl, signal_scale=signal_scale, signal_scale_rel_unc=signal_scale_rel_unc,
                    syst_kind=syst_kind)
    x, shapes, win, order, scale, syst = b.sorted_mgg, b.shapes, b.windows, b.bkg_order, b.scale, b.syst
    k = len(shapes)
    if syst is not None and scale is None:
        scale = np.ones(k)
        poi = "nsig"
    else:
        poi = "xsec" if scale is not None else "nsig"
    if asymptotic is None:
        asymptotic = evaluate_hypotheses(x, shapes, win, bkg_order=order, cl=cl, signal_scale=scale, signal_scale_rel_unc=None if syst is None else syst.rel_unc,
                                         syst_kind=syst_kind)
    if syst is not None and asymptotic.ul_xsec_obs is not None:
        start = np.column_stack([asymptotic.ul_xsec_obs, asymptotic.ul_xsec_exp])
    else:
        start = np.column_stack([asymptotic.ul_nsig_obs, asymptotic.ul_nsig_exp])
        if syst is not None:
            start = start / scale[:, None]
    grids = None
    if poi_values is not None:
        # the engine's POI is the signal yield unless the scale carries a nuisance
        f = scale if (scale is not None and syst is None) else np.ones(k)
        grids = [None if g is None else np.asarray(g, float) * f[j] for j, g in enumerate(poi_values)]
    table = limits_from_start(x, shapes, win, start, bkg_order=order, cl=cl, n_toys=n_toys, seed=seed, scale=scale if syst is not None else None,
                              rel_unc=None if syst is None else syst.rel_unc, syst_kind=syst_kind, options=options, grids=grids)
    if scale is not None and syst is None:
        return table.scaled(1.0 / scale, poi=poi)
    return replace(table, poi=poi)



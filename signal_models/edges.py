"""The upper kinematic edge of the wrong-pair (combinatorial) spectrum at one generated mass.

A wrong pair joins the recoil photon with one ALP photon. With massless
photons and the kinematic fit imposing the beam four-momentum,
``m_12^2 + m_13^2 + m_23^2 = s``, so for a true pair ``m_23 = m_a`` the wrong
pairs end at ``sqrt(s - m_a^2)`` (the photon-separation requirement softens
the end, the resolution smears it). This edge crosses the signal window
``mu +- 20 sigma`` around ``m_a ~ sqrt(s / 2)``: below it the window sees the
rising wrong-pair spectrum, above it none at all.

``find_edge`` measures the edge where it is within reach of the window: it
looks at the wrong pairs in ``mu - 60 sigma .. mu + 200 sigma`` and, if the
spectrum ends there, fits its end with

    (1 + b u) Phi((e - x) / w),   u = (x - c) / h on the fit range c +- h,

by an unbinned (weighted) maximum likelihood with iminuit, normalised with
the analytic integral of ``signal_models.combinatorial.comb_integral``. The fit
range is local to the end (from 25 sigma below to 15 sigma above a first
estimate), where a straight line times the step describes the spectrum.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from .combinatorial import comb_density, comb_integral
from .sample_stats import weighted_quantile

logger = logging.getLogger(__name__)

__all__ = ["EdgeResult", "find_edge", "SEARCH_BELOW", "SEARCH_ABOVE"]

#: search range for the edge, in units of sigma below / above the peak
SEARCH_BELOW = 60.0
SEARCH_ABOVE = 200.0
#: fewest wrong pairs in the search range for an edge fit
MIN_WRONG = 200
#: narrowest edge (units of sigma) taken for the resolution-smeared kinematic edge
MIN_WIDTH = 0.1


@dataclass(frozen=True)
class EdgeResult:
    """Edge of the wrong-pair spectrum at one mass (GeV).

    ``status``: ``"measured"`` (fitted; ``edge``, ``width`` and errors set),
    ``"above"`` (the spectrum goes on beyond the search range: no edge near the
    window), ``"below"`` (the wrong pairs end below the window: none in it),
    ``"none"`` (too few wrong pairs to tell).
    """

    status: str
    edge: float = math.nan
    edge_err: float = math.nan
    width: float = math.nan
    width_err: float = math.nan
    n_fit: int = 0


def find_edge(x: NDArray, w: NDArray, *, mu: float, sigma: float, window: tuple[float, float]) -> EdgeResult:
    """Measure the upper edge of the wrong pairs ``x`` (GeV, weights ``w``) near a peak at ``mu`` +- ``sigma``.

    Parameters
    ----------
    x, w : ndarray
        Wrong-pair candidate masses (GeV) and weights at one generated mass (all of them).
    mu, sigma : float
        Peak position and width (GeV) of the truth-matched pairs.
    window : (float, float)
        The signal window in GeV; decides ``"below"``.
    """
    from iminuit import Minuit

    x = np.asarray(x, dtype=float)
    w = np.asarray(w, dtype=float)
    lo_s, hi_s = mu - SEARCH_BELOW * sigma, mu + SEARCH_ABOVE * sigma
    if x.size >= 20 and weighted_quantile(x, w, 0.99) < window[0]:
        return EdgeResult("below")
    sel = (x >= lo_s) & (x <= hi_s)
    if sel.sum() < MIN_WRONG:
        return EdgeResult("none")
    xs, ws = x[sel], w[sel]
    top = weighted_quantile(xs, ws, 0.995)
    if top > hi_s - 10.0 * sigma:
        return EdgeResult("above")
    f_lo, f_hi = max(top - 25.0 * sigma, lo_s), min(top + 15.0 * sigma, hi_s)
    fsel = (xs >= f_lo) & (xs <= f_hi)
    xf, wf = xs[fsel], ws[fsel]
    # effective-count weights: Hesse errors of the effective sample
    wf = wf * (wf.sum() / np.sum(wf * wf))
    c, h = 0.5 * (f_lo + f_hi), 0.5 * (f_hi - f_lo)
    u = (xf - c) / h

    def nll(b: float, e: float, lw: float) -> float:
        wu = math.exp(lw)
        norm = float(comb_integral(-1.0, 1.0, b, e, wu))
        dens = comb_density(u, b, e, wu)
        if not norm > 0 or np.any(dens <= 0):
            return 1e30
        return float(-np.sum(wf * np.log(dens / norm)))

    e0 = (top - 2.0 * sigma - c) / h
    m = Minuit(nll, b=0.0, e=e0, lw=math.log(2.0 * sigma / h))
    m.errordef = Minuit.LIKELIHOOD
    m.limits["b"] = (-1.0, 1.0)
    m.limits["e"] = (-1.0, 1.0)
    m.limits["lw"] = (math.log(0.02 * sigma / h), math.log(0.5))
    m.migrad()
    if not m.valid:
        m.migrad()
    if not m.valid:
        logger.info("edge fit near %.4g GeV did not converge; no edge used", top)
        return EdgeResult("none", n_fit=int(fsel.sum()))
    m.hesse()
    e, lw = m.values["e"], m.values["lw"]
    width = h * math.exp(lw)
    if width < MIN_WIDTH * sigma:
        # the photon resolution smears the kinematic edge over ~sigma: an abrupt end is a
        # cut applied to the sample, not the edge this model describes
        logger.info("wrong pairs end abruptly at %.5g GeV (width %.2g GeV < %.2g sigma): a cut, not the kinematic edge; ignored", c + h * e, width, MIN_WIDTH)
        return EdgeResult("none", n_fit=int(fsel.sum()))
    return EdgeResult(
        "measured",
        edge=c + h * e,
        edge_err=h * m.errors["e"],
        width=width,
        width_err=width * m.errors["lw"],
        n_fit=int(fsel.sum()),
    )

"""Systematic uncertainties as constrained nuisance parameters: the signal resolution.

- Multiplicative yield uncertainties (luminosity, efficiency, trigger) are
  handled inside the Newton fits (``fits.newton``, mode "syst"): the signal
  yield is ``N = poi * scale * kappa^u`` (log-normal) or
  ``poi * scale * (1 + delta u)`` (Gaussian) with a standard-normal
  constraint on ``u`` (``fits.nuisances``). Several independent log-normal
  terms combine exactly into one (``fits.combine_rel_unc``).
- The signal-resolution scale ``r`` (core width ``sigma -> r sigma``) is not
  linear in the density, so it is profiled over a grid of ``r`` values with a
  Gaussian constraint ``(r - 1)^2 / (2 delta_r^2)``: every grid point is a
  hypothesis of one batch (same events, scaled shape), the penalised NLL is
  minimised over the grid and refined by a parabola through the three lowest
  points. Limits with this nuisance are found with ``scipy.optimize.brentq``
  after an automatic bracket expansion.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import brentq

from signal_models._common.defaults import DEFAULT_BKG_ORDER, DEFAULT_CL
from signal_models.shapes import SignalShape

from .asymptotic import N_SIGMA, cls_asymptotic, expected_band_targets
from .densities import ShapeArrays
from .design import build_design
from .errors import FitFailure
from .inputs import HypothesisInput
from .nuisances import Syst
from .results import LimitResult
from .single import fit_vectorised
from .vectorised import Batch

logger = logging.getLogger(__name__)

__all__ = ["profile_min", "upper_limit_resolution"]


def profile_min(values: NDArray, grid: NDArray) -> float:
    """Minimum of a function sampled on a grid, refined by a parabola through the lowest three points."""
    i = int(np.argmin(values))
    if 0 < i < len(grid) - 1:
        x0, x1, x2 = grid[i - 1 : i + 2]
        y0, y1, y2 = values[i - 1 : i + 2]
        denom = (x0 - x1) * (x0 - x2) * (x1 - x2)
        a = (x2 * (y1 - y0) + x1 * (y0 - y2) + x0 * (y2 - y1)) / denom
        b = (x2 * x2 * (y0 - y1) + x1 * x1 * (y2 - y0) + x0 * x0 * (y1 - y2)) / denom
        if a > 0:
            xm = -b / (2 * a)
            c = y1 - a * x1 * x1 - b * x1
            return float(min(a * xm * xm + b * xm + c, y1))
    return float(values[i])


def upper_limit_resolution(
    mgg: NDArray,
    shape: SignalShape,
    window: tuple[float, float],
    *,
    bkg_order: int = DEFAULT_BKG_ORDER,
    cl: float = DEFAULT_CL,
    resolution_unc: float = 0.1,
    n_grid: int = 9,
    signal_scale: float | None = None,
    rel_unc: float | None = None,
    syst_kind: str = "lognormal",
) -> LimitResult:
    """Asymptotic CLs limit with the signal resolution scale profiled (and optional yield systematic).

    The grid spans ``1 +- 3 resolution_unc`` (clipped at 0.2). POI: signal
    events, or the cross-section in pb when ``signal_scale`` (events/pb) is given.
    ``mgg`` and ``window`` in GeV.
    """
    lo, hi = window
    x = np.sort(np.asarray(mgg, float))
    r = np.linspace(max(1.0 - 3.0 * resolution_unc, 0.2), 1.0 + 3.0 * resolution_unc, n_grid)
    pen = 0.5 * ((r - 1.0) / resolution_unc) ** 2
    shapes = [replace(shape, sigma=shape.sigma * ri) for ri in r]
    sh = ShapeArrays.from_shapes(shapes)
    d = build_design(x, sh, np.full(n_grid, lo), np.full(n_grid, hi), bkg_order)
    b = Batch(d, sh, bkg_order)
    bf = b.fit()
    scale = np.full(n_grid, 1.0 if signal_scale is None else float(signal_scale))
    syst = None if not rel_unc else Syst(np.full(n_grid, float(rel_unc)), syst_kind)
    nll_hat = profile_min(bf.nll_hat + pen, r)
    nll_zero = float(bf.nll_zero[0])  # no signal: independent of r
    nll_hat = min(nll_hat, nll_zero)
    i_best = int(np.argmin(bf.nll_hat + pen))
    mu_hat = float(bf.mu_hat[i_best]) / scale[0]
    nll_a0 = float(b.asimov_nll0[0])

    def q_pair(mu: float) -> tuple[float, float]:
        c = b.conditional(np.full(n_grid, mu), scale=scale, syst=syst)
        prof = profile_min(c.nll + pen, r)
        q = 0.0 if mu_hat > mu else 2.0 * (prof - (nll_zero if mu_hat < 0 else nll_hat))
        qa, _ = b.q_asimov(np.full(n_grid, mu), scale=scale, syst=syst)
        qa_prof = 2.0 * (profile_min(qa / 2.0 + nll_a0 + pen, r) - nll_a0)
        return max(q, 0.0), max(qa_prof, 1e-12)

    alpha = 1.0 - cl

    def h_obs(mu: float) -> float:
        q, qa = q_pair(mu)
        return float(np.log(max(cls_asymptotic(q, qa)[0], 1e-300)) - np.log(alpha))

    def bracket(h: Callable[[float], float], start: float) -> tuple[float, float]:
        lo_, hi_ = 0.0, start
        for _ in range(60):
            if h(hi_) < 0:
                return lo_, hi_
            lo_, hi_ = hi_, 2.0 * hi_
        raise FitFailure("CLs did not cross 1 - cl")

    sig0 = float(bf.mu_err[n_grid // 2]) / scale[0]
    guess = max(mu_hat, 0.0) + 2.0 * sig0
    a_, b_ = bracket(h_obs, guess)
    observed = brentq(h_obs, max(a_, 1e-12 * guess), b_, xtol=1e-6 * guess, rtol=1e-8)
    targets = expected_band_targets(alpha)
    expected = np.empty(len(N_SIGMA))
    for j, t in enumerate(targets):
        def h_exp(mu: float, t: float = t) -> float:
            return float(t - np.sqrt(q_pair(mu)[1]))

        a_, b_ = bracket(h_exp, t * sig0)
        expected[j] = brentq(h_exp, max(a_, 1e-12 * guess), b_, xtol=1e-6 * guess, rtol=1e-8)
    f = fit_vectorised(HypothesisInput(mgg=x, shape=shape, window=(lo, hi), bkg_order=bkg_order))
    return LimitResult(
        observed=float(observed), expected=expected, cl=cl, poi="nsig" if signal_scale is None else "xsec", method="asymptotic, resolution profiled on a grid", fit=f,
        converged=True, details={"resolution_grid": r, "resolution_unc": resolution_unc, "rel_unc": rel_unc},
    )

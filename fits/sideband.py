"""Background coefficients from a sideband fit (signal region excluded).

The background-only extended likelihood is maximised on the window minus the
signal region ``mu +- exclude_sigma * sigma``::

    NLL(beta) = sum_k beta_k I_k(sidebands) - sum_{i in sidebands} log(sum_k beta_k T_k(x'_i))

with the same Chebyshev variable ``x'`` as the full-window model, so the
coefficients can be passed as ``bkg_fixed`` to ``fits.fit``,
``fits.upper_limit`` or ``fits.evaluate_hypotheses`` (background fixed, only
the signal yield floats). Same Newton engine, signal yield fixed at 0.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

from signal_models._common.defaults import DEFAULT_BKG_ORDER
from signal_models.shapes import SignalShape

from .densities import ShapeArrays
from .design import build_design
from .errors import FitInputError
from .inputs import check_masses, resolve_window
from .newton import minimise, start_values

logger = logging.getLogger(__name__)

__all__ = ["sideband_background"]


def _cheb_integral(order: int, a: NDArray, b: NDArray) -> NDArray:
    """``int_a^b T_k(x') dx'`` for k = 0..order (a, b in [-1, 1]); shape (len(a), order+1)."""
    out = np.empty((len(a), order + 1))
    for k in range(order + 1):
        c = np.zeros(k + 1)
        c[k] = 1.0
        anti = np.polynomial.chebyshev.chebint(c)
        out[:, k] = np.polynomial.chebyshev.chebval(b, anti) - np.polynomial.chebyshev.chebval(a, anti)
    return out


def _scaled(v: float, lo: float, hi: float) -> float:
    """The Chebyshev variable ``x'`` of a mass ``v`` (GeV) in the window [lo, hi] (GeV)."""
    return (2.0 * v - (lo + hi)) / (hi - lo)


def sideband_background(
    mgg: ArrayLike,
    shape: SignalShape,
    window: Sequence[float] | None = None,
    *,
    bkg_order: int = DEFAULT_BKG_ORDER,
    exclude_sigma: float = 5.0,
) -> NDArray:
    """Background coefficients ``beta_k`` (events/GeV) fitted on the sidebands of the window.

    ``mgg`` in GeV; ``window`` (GeV) defaults to ``mu +- 20 sigma`` clipped to
    the data; the signal region ``mu +- exclude_sigma sigma`` is left out.
    Raises FitInputError when the sidebands hold fewer events than
    coefficients or the fit does not converge.
    """
    x = np.sort(check_masses(mgg))
    lo, hi = resolve_window(x, shape, window)
    c_lo = max(lo, shape.mu - exclude_sigma * shape.sigma)
    c_hi = min(hi, shape.mu + exclude_sigma * shape.sigma)
    inside = (x >= lo) & (x <= hi)
    side = inside & ~((x > c_lo) & (x < c_hi))
    xs = x[side]
    if len(xs) < bkg_order + 1:
        raise FitInputError(f"sidebands of [{lo:.6g}, {hi:.6g}] GeV without +-{exclude_sigma} sigma hold {len(xs)} events, fewer than {bkg_order + 1} coefficients")
    sh = ShapeArrays.from_shapes([shape])
    d = build_design(xs, sh, np.array([lo]), np.array([hi]), bkg_order)
    full = _cheb_integral(bkg_order, np.array([-1.0]), np.array([1.0]))
    core = _cheb_integral(bkg_order, np.array([_scaled(c_lo, lo, hi)]), np.array([_scaled(c_hi, lo, hi)]))
    integ = d.integ.copy()
    integ[:, 1:] = 0.5 * (hi - lo) * (full - core)  # the window without the signal region
    d = d.with_integrals(integ)
    th = start_values(d)
    th[:, 0] = 0.0
    res = minimise(d, th, mode="fixed", max_iter=200)
    if not res.converged[0]:
        raise FitInputError("sideband background fit did not converge")
    return res.theta[0, 1:].copy()

"""The combinatorial (wrong-pair) density: a linear Chebyshev cut off by the kinematic edge.

In the Chebyshev's domain units ``u`` (``u = (x - mu) / (comb_domain * sigma)``)::

    Comb(u) = (1 + slope * u) * Phi((edge - u) / width)

with Phi the standard normal CDF. The wrong pair (recoil photon + one ALP
photon) obeys m_12^2 + m_13^2 + m_23^2 = s, so its mass ends at
sqrt(s - m_a^2), smeared by the resolution and softened by the photon
separation (``signal_models.edges`` measures it). ``edge = inf`` is the
plain line (no edge). Density, integral (Gaussian integrals of z Phi(z), in
closed form) and quantile function broadcast over events and parameters.
``rescale_comb_slope`` re-expresses a line on another Chebyshev domain.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import ndtr

from .errors import ShapeError

__all__ = ["EDGE_FLAT_Z", "edge_factor", "comb_density", "comb_integral", "comb_quantile", "rescale_comb_slope"]

_SQRT_HALF_PI = np.sqrt(np.pi / 2.0)

#: beyond this many widths below the edge, Phi(z) is 1 to double precision (the step is exactly 1 there)
EDGE_FLAT_Z = 9.0


def edge_factor(x: ArrayLike, edge: ArrayLike, width: ArrayLike) -> NDArray:
    """Smooth upper cut-off ``Phi((edge - x) / width)`` of the combinatorial density (any units).

    ``edge = +inf`` gives exactly 1 (no edge); all arguments broadcast.
    """
    x = np.asarray(x, dtype=float)
    edge = np.asarray(edge, dtype=float)
    width = np.asarray(width, dtype=float)
    finite = np.isfinite(edge)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(finite, (edge - x) / np.where(finite, width, 1.0), np.inf)
    return ndtr(z)


def comb_density(u: ArrayLike, slope: ArrayLike, edge: ArrayLike = np.inf, width: ArrayLike = 1.0) -> NDArray:
    """Unnormalised combinatorial density ``(1 + slope * u) * Phi((edge - u) / width)``.

    Chebyshev T0 + slope T1 in domain units ``u``; ``edge`` and ``width`` in
    the same units (default: no edge, the plain line).
    """
    line = 1.0 + np.asarray(slope, dtype=float) * np.asarray(u, dtype=float)
    if np.all(np.isinf(np.asarray(edge, dtype=float))):
        return line
    return line * edge_factor(u, edge, width)


def _line_integral(u1: NDArray, u2: NDArray, slope: NDArray) -> NDArray:
    return (u2 - u1) + 0.5 * slope * (u2 * u2 - u1 * u1)


def _edge_primitive(z: NDArray, a: NDArray, b: NDArray) -> NDArray:
    """Primitive in z of ``(a - b z) Phi(z)``: a (z Phi + phi) - b ((z^2 - 1) Phi + z phi) / 2."""
    cdf = ndtr(z)
    with np.errstate(under="ignore"):
        pdf = np.exp(-0.5 * z * z) / (2.0 * _SQRT_HALF_PI)
    zc = np.where(np.isfinite(z), z, 0.0)
    return a * (zc * cdf + pdf) - 0.5 * b * ((zc * zc - 1.0) * cdf + zc * pdf)


def comb_integral(u1: ArrayLike, u2: ArrayLike, slope: ArrayLike, edge: ArrayLike = np.inf, width: ArrayLike = 1.0) -> NDArray:
    """Integral of ``comb_density`` over ``[u1, u2]`` in domain units (u1 <= u2), analytic.

    Below ``edge - 9 width`` the step is 1 to double precision and the plain
    line is integrated; the rest uses the closed form of
    ``int (A - B z) Phi(z) dz`` with ``z = (edge - u) / width``.
    """
    u1 = np.asarray(u1, dtype=float)
    u2 = np.asarray(u2, dtype=float)
    slope = np.asarray(slope, dtype=float)
    edge = np.asarray(edge, dtype=float)
    if np.all(np.isinf(edge)):
        return _line_integral(u1, u2, slope)
    width = np.asarray(width, dtype=float)
    finite = np.isfinite(edge)
    w = np.where(finite, width, 1.0)
    e = np.where(finite, edge, 0.0)
    split = np.where(finite, e - EDGE_FLAT_Z * w, np.inf)
    # flat part [u1, min(u2, split)]
    a_hi = np.maximum(np.minimum(u2, split), u1)
    flat = _line_integral(u1, np.where(np.isfinite(a_hi), a_hi, u1), slope)
    flat = np.where(finite, flat, _line_integral(u1, u2, slope))
    # edge part [max(u1, split), u2] in z = (e - u) / w: z from min(z1, 9) down to z2
    b_lo = np.minimum(np.maximum(u1, split), u2)
    z_top = np.where(finite, (e - b_lo) / w, 0.0)
    z_bot = np.where(finite, (e - u2) / w, 0.0)
    a_coef = 1.0 + slope * e
    b_coef = slope * w
    step = w * (_edge_primitive(z_top, a_coef, b_coef) - _edge_primitive(z_bot, a_coef, b_coef))
    return flat + np.where(finite, step, 0.0)


def comb_quantile(q: ArrayLike, u1: ArrayLike, u2: ArrayLike, slope: ArrayLike, edge: ArrayLike = np.inf, width: ArrayLike = 1.0) -> NDArray:
    """Quantile function of ``comb_density`` on [u1, u2] (domain units).

    Closed form for the plain line; with an edge, the analytic CDF is inverted
    by vectorised bisection (to 2^-60 of the range).
    """
    q = np.asarray(q, dtype=float)
    u1 = np.asarray(u1, dtype=float)
    u2 = np.asarray(u2, dtype=float)
    slope = np.asarray(slope, dtype=float)
    if np.all(np.isinf(np.asarray(edge, dtype=float))):
        # cumulative (u - u1) + slope/2 (u^2 - u1^2) = q I  ->  slope/2 u^2 + u - K = 0
        k = q * comb_integral(u1, u2, slope) + u1 + 0.5 * slope * u1 * u1
        disc = np.maximum(1.0 + 2.0 * slope * k, 0.0)
        # root written without cancellation for small slopes
        u = 2.0 * k / (1.0 + np.sqrt(disc))
        return np.clip(u, u1, u2)
    target = q * comb_integral(u1, u2, slope, edge, width)
    a, b = np.broadcast_arrays(u1 + 0.0 * q, u2 + 0.0 * q)
    a, b = a.copy(), b.copy()
    for _ in range(60):
        mid = 0.5 * (a + b)
        below = comb_integral(u1, mid, slope, edge, width) < target
        a = np.where(below, mid, a)
        b = np.where(below, b, mid)
    return np.clip(0.5 * (a + b), u1, u2)


def rescale_comb_slope(slope: float, centre_from: float, half_from: float, centre_to: float, half_to: float) -> float:
    """Slope of the same linear density expressed on another Chebyshev domain.

    ``1 + slope * (x - centre_from) / half_from`` is proportional to
    ``1 + s' * (x - centre_to) / half_to``; returns ``s'``. Centres and
    half-widths in GeV. Raises ``ShapeError`` if the density is not positive
    at ``centre_to``.
    """
    a = 1.0 - slope * centre_from / half_from
    b = slope / half_from
    at_centre = a + b * centre_to
    if not at_centre > 0:
        raise ShapeError(f"combinatorial density {slope:+.4g} on domain {centre_from:.6g} +- {half_from:.4g} GeV is not positive at {centre_to:.6g} GeV")
    return float(b * half_to / at_centre)

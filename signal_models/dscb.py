"""Double-sided Crystal Ball (DSCB): density, integral and quantile function in standardised units.

With ``t = (x - mu) / sigma`` and positive ``alpha``::

    DSCB(t) = exp(-t^2/2)                                                   -alpha_l <= t <= alpha_r
            = exp(-alpha_l^2/2) (1 - alpha_l (alpha_l + t) / n_l)^(-n_l)     t < -alpha_l
            = exp(-alpha_r^2/2) (1 - alpha_r (alpha_r - t) / n_r)^(-n_r)     t > alpha_r

which equals the usual ``A (B - t)^(-n)`` form with ``A = (n/alpha)^n exp(-alpha^2/2)``,
``B = n/alpha - alpha``, but cannot overflow for large n. Every function
broadcasts over events *and* over shape parameters (the vectorised fit
engine evaluates many hypotheses in one call); the integrals are analytic
(Gaussian core via ``erf``, power-law tails in closed form), so there is no
numerical quadrature. Multiply an integral in ``t`` by sigma (GeV) for the
integral over the mass.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import erf, ndtr, ndtri

__all__ = ["dscb_density", "dscb_integral", "dscb_quantile"]

_SQRT_HALF_PI = np.sqrt(np.pi / 2.0)
_SQRT2 = np.sqrt(2.0)


def dscb_density(t: ArrayLike, alpha_l: ArrayLike, n_l: ArrayLike, alpha_r: ArrayLike, n_r: ArrayLike) -> NDArray:
    """Unnormalised double-sided Crystal Ball in standardised units ``t``.

    All arguments broadcast. The core has height 1 at ``t = 0``.
    """
    t = np.asarray(t, dtype=float)
    alpha_l = np.asarray(alpha_l, dtype=float)
    alpha_r = np.asarray(alpha_r, dtype=float)
    n_l = np.asarray(n_l, dtype=float)
    n_r = np.asarray(n_r, dtype=float)
    core = np.exp(-0.5 * t * t)
    # the tail bases are >= 1 only inside their own region; clip elsewhere so
    # that the unused branch of np.where stays finite
    base_l = np.maximum(1.0 - alpha_l * (alpha_l + t) / n_l, 1.0)
    base_r = np.maximum(1.0 - alpha_r * (alpha_r - t) / n_r, 1.0)
    left = np.exp(-0.5 * alpha_l * alpha_l - n_l * np.log(base_l))
    right = np.exp(-0.5 * alpha_r * alpha_r - n_r * np.log(base_r))
    return np.where(t < -alpha_l, left, np.where(t > alpha_r, right, core))


def _tail_primitive(u: NDArray, alpha: NDArray, n: NDArray) -> NDArray:
    """Integral over t of the tail from its start (t = -alpha) outward to ``u`` >= alpha.

    Written for the left tail with ``u = -t`` (distance outward); the right
    tail uses the same function with ``u = t``. Returns int_{alpha}^{u} of the
    tail density, which is finite as u -> inf only for n > 1.
    """
    k = alpha / n
    base = 1.0 + k * (u - alpha)  # >= 1
    pref = np.exp(-0.5 * alpha * alpha)
    n_is_one = np.abs(n - 1.0) < 1e-12
    safe_nm1 = np.where(n_is_one, 1.0, n - 1.0)
    general = pref / (k * safe_nm1) * (1.0 - np.exp(-(n - 1.0) * np.log(base)))
    log_case = pref / k * np.log(base)
    return np.where(n_is_one, log_case, general)


def dscb_integral(t1: ArrayLike, t2: ArrayLike, alpha_l: ArrayLike, n_l: ArrayLike, alpha_r: ArrayLike, n_r: ArrayLike) -> NDArray:
    """Integral of ``dscb_density`` over ``[t1, t2]`` in standardised units (t1 <= t2).

    Multiply by sigma to get the integral over x.
    """
    t1 = np.asarray(t1, dtype=float)
    t2 = np.asarray(t2, dtype=float)
    alpha_l = np.asarray(alpha_l, dtype=float)
    alpha_r = np.asarray(alpha_r, dtype=float)
    n_l = np.asarray(n_l, dtype=float)
    n_r = np.asarray(n_r, dtype=float)
    # core [-alpha_l, alpha_r]
    c1 = np.clip(t1, -alpha_l, alpha_r)
    c2 = np.clip(t2, -alpha_l, alpha_r)
    core = _SQRT_HALF_PI * (erf(c2 / _SQRT2) - erf(c1 / _SQRT2))
    # left tail (-inf, -alpha_l]: outward distance u = -t
    l1 = np.maximum(-t1, alpha_l)
    l2 = np.maximum(-t2, alpha_l)
    left = _tail_primitive(l1, alpha_l, n_l) - _tail_primitive(l2, alpha_l, n_l)
    # right tail [alpha_r, inf)
    r1 = np.maximum(t1, alpha_r)
    r2 = np.maximum(t2, alpha_r)
    right = _tail_primitive(r2, alpha_r, n_r) - _tail_primitive(r1, alpha_r, n_r)
    return core + left + right


def _tail_inverse(v: NDArray, alpha: NDArray, n: NDArray) -> NDArray:
    """Inverse of ``_tail_primitive`` in its first argument: the outward distance u with P(u) = v."""
    k = alpha / n
    pref = np.exp(-0.5 * alpha * alpha)
    n_is_one = np.abs(n - 1.0) < 1e-12
    safe_nm1 = np.where(n_is_one, 1.0, n - 1.0)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        # 1 - base^-(n-1) = v k (n-1) / pref
        frac = np.clip(v * k * safe_nm1 / pref, 0.0, 1.0)
        general = np.exp(-np.log1p(-frac) / safe_nm1)
        log_case = np.exp(v * k / pref)
        base = np.where(n_is_one, log_case, general)
    return alpha + (base - 1.0) / k


def dscb_quantile(q: ArrayLike, t1: ArrayLike, t2: ArrayLike, alpha_l: ArrayLike, n_l: ArrayLike, alpha_r: ArrayLike, n_r: ArrayLike) -> NDArray:
    """Quantile function (inverse CDF) of the DSCB truncated to [t1, t2] (standardised units).

    ``q`` in [0, 1]; all arguments broadcast. Analytic in each region (power
    law tails in closed form, Gaussian core via ``ndtri`` on the side of the
    core where it keeps full precision); used to sample the shape exactly.
    """
    q = np.asarray(q, dtype=float)
    t1 = np.asarray(t1, dtype=float)
    t2 = np.asarray(t2, dtype=float)
    alpha_l = np.asarray(alpha_l, dtype=float)
    alpha_r = np.asarray(alpha_r, dtype=float)
    n_l = np.asarray(n_l, dtype=float)
    n_r = np.asarray(n_r, dtype=float)
    c1 = np.clip(t1, -alpha_l, alpha_r)
    c2 = np.clip(t2, -alpha_l, alpha_r)
    l1, l2 = np.maximum(-t1, alpha_l), np.maximum(-t2, alpha_l)
    r1, r2 = np.maximum(t1, alpha_r), np.maximum(t2, alpha_r)
    p_l1 = _tail_primitive(l1, alpha_l, n_l)
    left = p_l1 - _tail_primitive(l2, alpha_l, n_l)
    core = _SQRT_HALF_PI * (erf(c2 / _SQRT2) - erf(c1 / _SQRT2))
    p_r1 = _tail_primitive(r1, alpha_r, n_r)
    right = _tail_primitive(r2, alpha_r, n_r) - p_r1
    target = q * (left + core + right)
    sqrt2pi = 2.0 * _SQRT_HALF_PI
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        t_left = -_tail_inverse(p_l1 - target, alpha_l, n_l)
        qc = np.clip(target - left, 0.0, core)
        # lower half of the core: Phi(t) = Phi(c1) + qc / sqrt(2 pi); upper half through the survival function
        t_core_lo = ndtri(np.clip(ndtr(c1) + qc / sqrt2pi, 0.0, 1.0))
        t_core_hi = -ndtri(np.clip(ndtr(-c2) + (core - qc) / sqrt2pi, 0.0, 1.0))
        t_core = np.where(t_core_lo <= 0.0, t_core_lo, t_core_hi)
        t_right = _tail_inverse(p_r1 + (target - left - core), alpha_r, n_r)
    out = np.where(target < left, t_left, np.where(target <= left + core, t_core, t_right))
    return np.clip(out, t1, t2)

"""Signal shape: double-sided Crystal Ball (truth-matched) plus linear Chebyshev (combinatorics).

The density functions here broadcast over events *and* over shape parameters,
so the vectorised fit engine evaluates many hypotheses in one call. Integrals
are analytic (no numerical quadrature): Gaussian core via ``erf``, power-law
tails in closed form. They are written by hand because they must run on
arrays of hypotheses at numpy speed; ``SignalShape.to_zfit`` builds the
identical model from zfit's own PDFs for the reference engine.

Parametrisation (t = (x - mu) / sigma, alphas positive)::

    DSCB(t) = exp(-t^2/2)                                   -alpha_l <= t <= alpha_r
            = exp(-alpha_l^2/2) (1 - alpha_l (alpha_l + t) / n_l)^(-n_l)   t < -alpha_l
            = exp(-alpha_r^2/2) (1 - alpha_r (alpha_r - t) / n_r)^(-n_r)   t > alpha_r

which equals the usual A (B - t)^(-n) form with A = (n/alpha)^n exp(-alpha^2/2),
B = n/alpha - alpha, but cannot overflow for large n.

The combinatorial part is a first-order Chebyshev polynomial
``1 + comb_slope * T1(u)`` with ``u = (x - mu) / (comb_domain * sigma)``: its
domain is ``mu +- comb_domain * sigma`` (20 sigma by default, the nominal fit
window) whatever window it is normalised on, so a shape means the same thing
in a window clipped at the edge of the data. It is cut off at the upper
kinematic edge of the wrong-pair spectrum by a smooth step::

    Comb(x) = (1 + comb_slope * u) * Phi((comb_edge - x) / comb_edge_width)

(Phi the standard normal CDF). The wrong pair (recoil photon + one ALP
photon) obeys m_12^2 + m_13^2 + m_23^2 = s, so its mass ends at
sqrt(s - m_a^2), smeared by the resolution and softened by the photon
separation; above m_a ~ 7 GeV this edge crosses the window. The default
``comb_edge = inf`` is the plain linear Chebyshev (no edge). Integrals of the
edged line are analytic (Gaussian integrals of z Phi(z)).
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import erf, ndtr, ndtri

from ._common.errors import BumphuntError

logger = logging.getLogger(__name__)

__all__ = [
    "SignalShape",
    "dscb_density",
    "dscb_integral",
    "dscb_quantile",
    "comb_density",
    "comb_integral",
    "comb_quantile",
    "edge_factor",
    "ShapeError",
]

_SQRT_HALF_PI = np.sqrt(np.pi / 2.0)
_SQRT2 = np.sqrt(2.0)


class ShapeError(BumphuntError, ValueError):
    """Invalid signal-shape parameters or window."""


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


#: beyond this many widths below the edge Phi(z) is 1 to double precision
_EDGE_FLAT_Z = 9.0


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
    split = np.where(finite, e - _EDGE_FLAT_Z * w, np.inf)
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


@dataclass(frozen=True)
class SignalShape:
    """Signal shape of one mass hypothesis.

    Parameters
    ----------
    mu : float
        DSCB peak position in GeV.
    sigma : float
        DSCB core width in GeV (> 0).
    alpha_l, alpha_r : float
        Tail starts, in units of sigma below / above ``mu`` (> 0).
    n_l, n_r : float
        Tail power-law exponents (> 0; > 1 for a normalisable tail).
    comb_fraction : float
        Fraction (in [0, 1]) of signal candidates that are wrong photon pairs.
        The truth-matched fraction f of the physics note is ``1 - comb_fraction``.
    comb_slope : float
        Slope of the linear Chebyshev for the combinatorics, |slope| <= 1
        keeps it positive on its domain.
    comb_domain : float
        Half-width of the Chebyshev domain in units of sigma (default 20).
    comb_edge : float
        Upper kinematic edge of the wrong-pair spectrum in GeV: the
        combinatorial line is multiplied by ``Phi((comb_edge - x) /
        comb_edge_width)``. ``inf`` (default): no edge.
    comb_edge_width : float
        Width of the edge in GeV (> 0 when ``comb_edge`` is finite).
    """

    mu: float
    sigma: float
    alpha_l: float
    n_l: float
    alpha_r: float
    n_r: float
    comb_fraction: float = 0.0
    comb_slope: float = 0.0
    comb_domain: float = 20.0
    comb_edge: float = math.inf
    comb_edge_width: float = 0.0

    def __post_init__(self) -> None:
        values = asdict(self)
        bad = [k for k, v in values.items() if not (np.isfinite(v) or (k == "comb_edge" and v == math.inf))]
        if bad:
            raise ShapeError(f"SignalShape: non-finite parameter(s) {bad}: {values}")
        if self.sigma <= 0:
            raise ShapeError(f"SignalShape: sigma must be > 0 GeV, got {self.sigma}")
        if self.alpha_l <= 0 or self.alpha_r <= 0:
            raise ShapeError(f"SignalShape: alpha_l and alpha_r must be positive, got {self.alpha_l}, {self.alpha_r}")
        if self.n_l <= 0 or self.n_r <= 0:
            raise ShapeError(f"SignalShape: n_l and n_r must be positive, got {self.n_l}, {self.n_r}")
        if not 0.0 <= self.comb_fraction <= 1.0:
            raise ShapeError(f"SignalShape: comb_fraction must be in [0, 1], got {self.comb_fraction}")
        if abs(self.comb_slope) > 1.0:
            raise ShapeError(f"SignalShape: |comb_slope| must be <= 1 (positive density on its domain), got {self.comb_slope}")
        if self.comb_domain <= 0:
            raise ShapeError(f"SignalShape: comb_domain must be > 0 (units of sigma), got {self.comb_domain}")
        if math.isfinite(self.comb_edge) and not self.comb_edge_width > 0:
            raise ShapeError(f"SignalShape: comb_edge_width must be > 0 GeV with a finite comb_edge ({self.comb_edge} GeV), got {self.comb_edge_width}")
        if self.comb_edge_width < 0:
            raise ShapeError(f"SignalShape: comb_edge_width must be >= 0 GeV, got {self.comb_edge_width}")

    # -- helpers ---------------------------------------------------------
    def _t(self, x: ArrayLike) -> NDArray:
        return (np.asarray(x, dtype=float) - self.mu) / self.sigma

    def _u(self, x: ArrayLike) -> NDArray:
        return (np.asarray(x, dtype=float) - self.mu) / (self.comb_domain * self.sigma)

    def _edge_u(self) -> tuple[float, float]:
        """The edge and its width in domain units ``u`` (``(inf, 1)`` without an edge)."""
        if not math.isfinite(self.comb_edge):
            return math.inf, 1.0
        scale = self.comb_domain * self.sigma
        return (self.comb_edge - self.mu) / scale, self.comb_edge_width / scale

    def edge_matters(self, hi: float) -> bool:
        """Whether the edge factor differs from 1 (to double precision) anywhere below ``hi`` (GeV)."""
        return math.isfinite(self.comb_edge) and (self.comb_edge - hi) < _EDGE_FLAT_Z * self.comb_edge_width

    def _comb_norm(self, lo: float, hi: float) -> float:
        """Integral of the unnormalised combinatorial density over [lo, hi] in GeV."""
        scale = self.comb_domain * self.sigma
        e, w = self._edge_u()
        norm = scale * float(comb_integral(self._u(lo), self._u(hi), self.comb_slope, e, w))
        if self.comb_fraction > 0 and not (norm > 0 and np.isfinite(norm)):
            raise ShapeError(
                f"SignalShape: the combinatorial density vanishes on the window [{lo:.6g}, {hi:.6g}] GeV "
                f"(edge at {self.comb_edge:.6g} GeV) but comb_fraction = {self.comb_fraction}"
            )
        return norm

    def _check_window(self, lo: float, hi: float) -> None:
        if not (np.isfinite(lo) and np.isfinite(hi) and hi > lo):
            raise ShapeError(f"window must be finite with hi > lo, got [{lo}, {hi}] GeV")
        if self.comb_fraction > 0:
            half = self.comb_domain * self.sigma
            if lo < self.mu - half - 1e-12 * half or hi > self.mu + half + 1e-12 * half:
                raise ShapeError(
                    f"window [{lo:.6g}, {hi:.6g}] GeV extends beyond the combinatorial Chebyshev domain "
                    f"mu +- {self.comb_domain} sigma = [{self.mu - half:.6g}, {self.mu + half:.6g}] GeV"
                )

    # -- public ------------------------------------------------------------
    def peak_pdf(self, x: ArrayLike, lo: float, hi: float) -> NDArray:
        """Truth-matched DSCB part alone, normalised on [lo, hi] (1/GeV)."""
        self._check_window(lo, hi)
        norm = self.sigma * dscb_integral(self._t(lo), self._t(hi), self.alpha_l, self.n_l, self.alpha_r, self.n_r)
        return dscb_density(self._t(x), self.alpha_l, self.n_l, self.alpha_r, self.n_r) / norm

    def comb_pdf(self, x: ArrayLike, lo: float, hi: float) -> NDArray:
        """Combinatorial part alone, normalised on [lo, hi] (1/GeV)."""
        self._check_window(lo, hi)
        e, w = self._edge_u()
        return comb_density(self._u(x), self.comb_slope, e, w) / self._comb_norm(lo, hi)

    def pdf(self, x: ArrayLike, lo: float, hi: float) -> NDArray:
        """Signal density normalised on the window [lo, hi] (1/GeV); zero outside it.

        ``(1 - comb_fraction) * DSCB + comb_fraction * Comb``, each part
        normalised on the window.
        """
        # Same formulas as peak_pdf/comb_pdf, arranged for speed (this is the hot
        # path of the scans): the power-law tails are evaluated only on the
        # points in the tails and every full-length operation works in place.
        x = np.asarray(x, dtype=float)
        self._check_window(lo, hi)
        al, ar, nl, nr = self.alpha_l, self.alpha_r, self.n_l, self.n_r
        norm_peak = self.sigma * float(dscb_integral(self._t(lo), self._t(hi), al, nl, ar, nr))
        t = np.subtract(x, self.mu)
        t /= self.sigma
        out = np.multiply(t, t)
        out *= -0.5
        np.exp(out, out=out)
        left = t < -al
        if left.any():
            tl = t[left]
            out[left] = np.exp(-0.5 * al * al - nl * np.log(1.0 - al * (al + tl) / nl))
        right = t > ar
        if right.any():
            tr = t[right]
            out[right] = np.exp(-0.5 * ar * ar - nr * np.log(1.0 - ar * (ar - tr) / nr))
        out *= (1.0 - self.comb_fraction) / norm_peak
        if self.comb_fraction > 0:
            norm_comb = self._comb_norm(lo, hi)
            # comb_fraction * (1 + slope * u) / norm_comb with u = t / comb_domain
            c0 = self.comb_fraction / norm_comb
            t *= c0 * self.comb_slope / self.comb_domain
            t += c0
            if self.edge_matters(hi):
                t *= edge_factor(x, self.comb_edge, self.comb_edge_width)
            out += t
        outside = (x < lo) | (x > hi)
        if outside.any():
            out[outside] = 0.0
        return out

    def integral(self, a: float, b: float, lo: float, hi: float) -> float:
        """Probability in [a, b] of the density normalised on [lo, hi]."""
        a, b = max(a, lo), min(b, hi)
        if b <= a:
            return 0.0
        peak = dscb_integral(self._t(a), self._t(b), self.alpha_l, self.n_l, self.alpha_r, self.n_r) / dscb_integral(
            self._t(lo), self._t(hi), self.alpha_l, self.n_l, self.alpha_r, self.n_r
        )
        if self.comb_fraction > 0:
            e, w = self._edge_u()
            comb = comb_integral(self._u(a), self._u(b), self.comb_slope, e, w) * (self.comb_domain * self.sigma) / self._comb_norm(lo, hi)
        else:
            comb = 0.0
        return float((1.0 - self.comb_fraction) * peak + self.comb_fraction * comb)

    def sample(self, n: int, lo: float, hi: float, *, rng: np.random.Generator, return_truth: bool = False) -> NDArray | tuple[NDArray, NDArray]:
        """Draw ``n`` masses (GeV) from the density normalised on [lo, hi], exactly (inverse CDF).

        With ``return_truth`` also returns a bool array, True for draws from
        the truth-matched DSCB part, False for combinatorics.
        """
        self._check_window(lo, hi)
        n = int(n)
        is_tm = rng.random(n) >= self.comb_fraction
        q = rng.random(n)
        x = np.empty(n)
        x[is_tm] = self.mu + self.sigma * dscb_quantile(q[is_tm], self._t(lo), self._t(hi), self.alpha_l, self.n_l, self.alpha_r, self.n_r)
        scale = self.comb_domain * self.sigma
        if (~is_tm).any():
            self._comb_norm(lo, hi)  # raises if there is no combinatorial density to draw from
            e, w = self._edge_u()
            x[~is_tm] = self.mu + scale * comb_quantile(q[~is_tm], self._u(lo), self._u(hi), self.comb_slope, e, w)
        x = np.clip(x, lo, hi)
        return (x, is_tm) if return_truth else x

    def window(self, n_sigma: float = 20.0) -> tuple[float, float]:
        """The nominal fit window ``mu +- n_sigma * sigma`` in GeV."""
        return (self.mu - n_sigma * self.sigma, self.mu + n_sigma * self.sigma)

    def to_zfit(self, obs: Any, *, floating: bool | Any = False, prefix: str = "sig") -> Any:
        """The identical zfit PDF, normalised on the window given by ``obs``.

        ``zfit.pdf.SumPDF([DoubleCB, Chebyshev(order 1)], fracs=1 - comb_fraction)``;
        the Chebyshev's space is the domain ``mu +- comb_domain * sigma`` and
        it is normalised on the window, so ``pdf(x)`` equals ``self.pdf(x, lo, hi)``.
        When the wrong-pair edge reaches into the window the Chebyshev is a
        ``signal_models.zfit_shapes.EdgedChebyshev`` (the line times the edge step).

        Parameters
        ----------
        obs : zfit.Space
            One-dimensional space with limits = the window [lo, hi] in GeV.
        floating : bool or iterable of str
            ``False`` (default): constant parameters. ``True`` or a list of
            parameter names: ``zfit.Parameter`` objects, floating as requested
            (see ``signal_models.zfit_shapes.shape_to_zfit``).
        prefix : str
            Prefix of the zfit parameter names.

        Returns
        -------
        zfit.pdf.SumPDF
            Use ``to_zfit_signal`` for handles on the components and parameters.
        """
        return self.to_zfit_signal(obs, floating=floating, prefix=prefix).pdf

    def to_zfit_signal(self, obs: Any, *, floating: bool | Any = False, prefix: str = "sig") -> Any:
        """Like ``to_zfit`` but returns a ``signal_models.zfit_shapes.ZfitSignal``
        (PDF, components, parameter dict, ``to_shape()`` to read a fit back)."""
        from .zfit_shapes import shape_to_zfit  # zfit/TensorFlow only when asked for

        return shape_to_zfit(self, obs, floating=floating, prefix=prefix)

    def to_dict(self) -> dict[str, float]:
        """Parameters as a JSON-safe dict; the edge keys only when there is an edge."""
        d = {k: float(v) for k, v in asdict(self).items()}
        if not math.isfinite(self.comb_edge):
            del d["comb_edge"], d["comb_edge_width"]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "SignalShape":
        kw = {k: float(v) for k, v in d.items() if v is not None}
        return cls(**kw)

"""``SignalShape``: the signal shape of one mass hypothesis, truth-matched DSCB plus combinatorial line.

``(1 - comb_fraction) * DSCB + comb_fraction * Comb``, each part normalised
on the fit window: the DSCB (``signal_models.dscb``) describes the
truth-matched photon pairs, the combinatorial part
(``signal_models.combinatorial``) the wrong pairs, a first-order Chebyshev
``1 + comb_slope * T1(u)`` with ``u = (x - mu) / (comb_domain * sigma)``: its
domain is ``mu +- comb_domain * sigma`` (20 sigma by default, the nominal fit
window) whatever window it is normalised on, so a shape means the same thing
in a window clipped at the edge of the data. Above m_a ~ 7 GeV the upper
kinematic edge of the wrong-pair spectrum (``comb_edge``) crosses the window
and cuts the line off with a smooth step; the default ``comb_edge = inf`` is
the plain line.

Everything here is numpy with analytic integrals; ``SignalShape.to_zfit``
builds the identical model from zfit's own PDFs (``signal_models.zfit_shapes``,
imported only then) for the reference fit engine. The density functions are
re-exported here, where the other packages import them from.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping
from dataclasses import MISSING, asdict, dataclass, fields
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ._common.defaults import DEFAULT_HALF_WIDTH
from .combinatorial import EDGE_FLAT_Z, comb_density, comb_integral, comb_quantile, edge_factor
from .dscb import dscb_density, dscb_integral, dscb_quantile
from .errors import ShapeError

if TYPE_CHECKING:
    from .zfit_shapes import ZfitSignal

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


def _real_scalar(value: Any) -> bool:
    """Whether ``value`` is one real number (a Python or numpy int or float, or a 0-d array of one; not a bool)."""
    if isinstance(value, (int, float)):
        return not isinstance(value, bool)
    try:
        return np.ndim(value) == 0 and np.asarray(value).dtype.kind in "iuf"
    except (TypeError, ValueError):
        return False


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

    Examples
    --------
    >>> import numpy as np
    >>> from signal_models import SignalShape
    >>> s = SignalShape(mu=1.0, sigma=0.01, alpha_l=1.2, n_l=3.0, alpha_r=1.6, n_r=6.0)
    >>> round(float(s.pdf(np.array([1.0]), 0.8, 1.2)[0]), 3)  # 1/GeV, normalised on [0.8, 1.2] GeV
    34.609
    """

    mu: float
    sigma: float
    alpha_l: float
    n_l: float
    alpha_r: float
    n_r: float
    comb_fraction: float = 0.0
    comb_slope: float = 0.0
    comb_domain: float = DEFAULT_HALF_WIDTH
    comb_edge: float = math.inf
    comb_edge_width: float = 0.0

    def __post_init__(self) -> None:
        values = asdict(self)
        not_numbers = [k for k, v in values.items() if not _real_scalar(v)]
        if not_numbers:
            raise ShapeError(f"SignalShape: parameter(s) {not_numbers} must be numbers, got {[values[k] for k in not_numbers]}")
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

    # -- units and window checks ---------------------------------------------
    def domain_units(self, x: ArrayLike) -> NDArray:
        """``x`` (GeV) in the units of the combinatorial Chebyshev domain: ``(x - mu) / (comb_domain * sigma)``."""
        return (np.asarray(x, dtype=float) - self.mu) / (self.comb_domain * self.sigma)

    def edge_in_domain_units(self) -> tuple[float, float]:
        """The edge and its width in domain units ``u`` (``(inf, 1)`` without an edge)."""
        if not math.isfinite(self.comb_edge):
            return math.inf, 1.0
        scale = self.comb_domain * self.sigma
        return (self.comb_edge - self.mu) / scale, self.comb_edge_width / scale

    def edge_matters(self, hi: float) -> bool:
        """Whether the edge factor differs from 1 (to double precision) anywhere below ``hi`` (GeV)."""
        return math.isfinite(self.comb_edge) and (self.comb_edge - hi) < EDGE_FLAT_Z * self.comb_edge_width

    def check_window(self, lo: float, hi: float) -> None:
        """Raise ``ShapeError`` unless [lo, hi] (GeV) is a finite window inside the combinatorial domain (when there are wrong pairs)."""
        if not (np.isfinite(lo) and np.isfinite(hi) and hi > lo):
            raise ShapeError(f"window must be finite with hi > lo, got [{lo}, {hi}] GeV")
        if self.comb_fraction > 0:
            half = self.comb_domain * self.sigma
            if lo < self.mu - half - 1e-12 * half or hi > self.mu + half + 1e-12 * half:
                raise ShapeError(
                    f"window [{lo:.6g}, {hi:.6g}] GeV extends beyond the combinatorial Chebyshev domain "
                    f"mu +- {self.comb_domain} sigma = [{self.mu - half:.6g}, {self.mu + half:.6g}] GeV"
                )

    #: the former name of ``check_window`` (``fits.api`` still calls it)
    _check_window = check_window

    def _t(self, x: ArrayLike) -> NDArray:
        return (np.asarray(x, dtype=float) - self.mu) / self.sigma

    def _comb_norm(self, lo: float, hi: float) -> float:
        """Integral of the unnormalised combinatorial density over [lo, hi] in GeV."""
        scale = self.comb_domain * self.sigma
        e, w = self.edge_in_domain_units()
        norm = scale * float(comb_integral(self.domain_units(lo), self.domain_units(hi), self.comb_slope, e, w))
        if self.comb_fraction > 0 and not (norm > 0 and np.isfinite(norm)):
            raise ShapeError(
                f"SignalShape: the combinatorial density vanishes on the window [{lo:.6g}, {hi:.6g}] GeV "
                f"(edge at {self.comb_edge:.6g} GeV) but comb_fraction = {self.comb_fraction}"
            )
        return norm

    # -- densities, integrals, sampling ---------------------------------------
    def peak_pdf(self, x: ArrayLike, lo: float, hi: float) -> NDArray:
        """Truth-matched DSCB part alone, normalised on [lo, hi] (1/GeV)."""
        self.check_window(lo, hi)
        norm = self.sigma * dscb_integral(self._t(lo), self._t(hi), self.alpha_l, self.n_l, self.alpha_r, self.n_r)
        return dscb_density(self._t(x), self.alpha_l, self.n_l, self.alpha_r, self.n_r) / norm

    def comb_pdf(self, x: ArrayLike, lo: float, hi: float) -> NDArray:
        """Combinatorial part alone, normalised on [lo, hi] (1/GeV)."""
        self.check_window(lo, hi)
        e, w = self.edge_in_domain_units()
        return comb_density(self.domain_units(x), self.comb_slope, e, w) / self._comb_norm(lo, hi)

    def pdf(self, x: ArrayLike, lo: float, hi: float) -> NDArray:
        """Signal density normalised on the window [lo, hi] (1/GeV); zero outside it.

        ``(1 - comb_fraction) * DSCB + comb_fraction * Comb``, each part
        normalised on the window.
        """
        # Same formulas as peak_pdf/comb_pdf, arranged for speed (this is the hot
        # path of the scans): the power-law tails are evaluated only on the
        # points in the tails and every full-length operation works in place.
        x = np.asarray(x, dtype=float)
        self.check_window(lo, hi)
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
            e, w = self.edge_in_domain_units()
            comb = comb_integral(self.domain_units(a), self.domain_units(b), self.comb_slope, e, w) * (self.comb_domain * self.sigma) / self._comb_norm(lo, hi)
        else:
            comb = 0.0
        return float((1.0 - self.comb_fraction) * peak + self.comb_fraction * comb)

    def sample(self, n: int, lo: float, hi: float, *, rng: np.random.Generator, return_truth: bool = False) -> NDArray | tuple[NDArray, NDArray]:
        """Draw ``n`` masses (GeV) from the density normalised on [lo, hi], exactly (inverse CDF).

        With ``return_truth`` also returns a bool array, True for draws from
        the truth-matched DSCB part, False for combinatorics.
        """
        self.check_window(lo, hi)
        n = int(n)
        is_tm = rng.random(n) >= self.comb_fraction
        q = rng.random(n)
        x = np.empty(n)
        x[is_tm] = self.mu + self.sigma * dscb_quantile(q[is_tm], self._t(lo), self._t(hi), self.alpha_l, self.n_l, self.alpha_r, self.n_r)
        scale = self.comb_domain * self.sigma
        if (~is_tm).any():
            self._comb_norm(lo, hi)  # raises if there is no combinatorial density to draw from
            e, w = self.edge_in_domain_units()
            x[~is_tm] = self.mu + scale * comb_quantile(q[~is_tm], self.domain_units(lo), self.domain_units(hi), self.comb_slope, e, w)
        x = np.clip(x, lo, hi)
        return (x, is_tm) if return_truth else x

    def window(self, n_sigma: float = DEFAULT_HALF_WIDTH) -> tuple[float, float]:
        """The nominal fit window ``mu +- n_sigma * sigma`` in GeV."""
        return (self.mu - n_sigma * self.sigma, self.mu + n_sigma * self.sigma)

    def to_zfit(self, obs: Any, *, floating: bool | Iterable[str] = False, prefix: str = "sig") -> Any:
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

    def to_zfit_signal(self, obs: Any, *, floating: bool | Iterable[str] = False, prefix: str = "sig") -> ZfitSignal[SignalShape]:
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
    def from_dict(cls, d: Mapping[str, Any]) -> SignalShape:
        """The shape of a ``to_dict`` dictionary (missing or null edge keys: no edge).

        Raises
        ------
        ShapeError
            Unknown or missing keys, or values that are not numbers.
        """
        names = [f.name for f in fields(cls)]
        unknown = sorted(str(k) for k in d if k not in names)
        if unknown:
            raise ShapeError(f"SignalShape: unknown parameter(s) {unknown}; allowed: {', '.join(names)}")
        try:
            kw = {k: float(v) for k, v in d.items() if v is not None}
        except (TypeError, ValueError):
            raise ShapeError(f"SignalShape: parameters must be numbers, got {dict(d)}") from None
        missing = [f.name for f in fields(cls) if f.name not in kw and f.default is MISSING]
        if missing:
            raise ShapeError(f"SignalShape: missing parameter(s) {missing}")
        return cls(**kw)

"""zfit versions of the signal shape (imported lazily: this module imports zfit/TensorFlow).

``shape_to_zfit`` builds, from zfit's own PDFs, the model that
``SignalShape.pdf`` evaluates in numpy::

    SumPDF([DoubleCB(mu, sigma, alpha_l, n_l, alpha_r, n_r),
            Chebyshev(space = mu +- comb_domain * sigma, coeffs=[comb_slope], norm=window)],
           fracs = 1 - comb_fraction)

The Chebyshev's *space* is the combinatorial domain (zfit maps the limits of
its space to [-1, 1]) while it is normalised on the window, so the zfit model
is identical to the numpy one on any window inside the domain.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import zfit

from .shapes import ShapeError, SignalShape

logger = logging.getLogger(__name__)

__all__ = ["SHAPE_PARAMS", "ZfitSignal", "shape_to_zfit", "rescale_comb_slope"]

#: names of the floatable SignalShape parameters (comb_domain is a convention, never fitted)
SHAPE_PARAMS = ("mu", "sigma", "alpha_l", "n_l", "alpha_r", "n_r", "comb_fraction", "comb_slope")


def rescale_comb_slope(slope: float, centre_from: float, half_from: float, centre_to: float, half_to: float) -> float:
    """Slope of the same linear density expressed on another Chebyshev domain.

    ``1 + slope * (x - centre_from) / half_from`` is proportional to
    ``1 + s' * (x - centre_to) / half_to``; returns ``s'``. Raises
    ``ShapeError`` if the density is not positive at ``centre_to``.
    """
    a = 1.0 - slope * centre_from / half_from
    b = slope / half_from
    at_centre = a + b * centre_to
    if not at_centre > 0:
        raise ShapeError(f"combinatorial density {slope:+.4g} on domain {centre_from:.6g} +- {half_from:.4g} GeV is not positive at {centre_to:.6g} GeV")
    return float(b * half_to / at_centre)


@dataclass
class ZfitSignal:
    """A zfit signal PDF with handles on its parameters.

    Attributes
    ----------
    pdf : zfit.pdf.SumPDF
        ``(1 - comb_fraction) * DoubleCB + comb_fraction * Chebyshev``, normalised on ``window``.
    dscb, comb : zfit PDFs
        The two components (each normalised on the window).
    params : dict[str, zfit.Parameter]
        The eight shape parameters by ``SignalShape`` name (``comb_fraction``
        is represented by the DSCB fraction ``frac_tm = 1 - comb_fraction``,
        exposed as a ``zfit.ComposedParameter``). Only present when the model
        was built with ``floating``.
    frac_tm : zfit.Parameter or float
        Fraction of the truth-matched DSCB.
    domain : tuple[float, float]
        The Chebyshev domain in GeV (fixed when the model was built).
    window : tuple[float, float]
        Normalisation window in GeV.
    comb_domain : float
        Half-width of the domain in units of sigma (as ``SignalShape.comb_domain``).
    """

    pdf: Any
    dscb: Any
    comb: Any
    frac_tm: Any
    domain: tuple[float, float]
    window: tuple[float, float]
    comb_domain: float
    params: dict[str, Any] = field(default_factory=dict)

    def to_shape(self) -> SignalShape:
        """The current parameter values as a ``SignalShape``.

        The combinatorial slope, fitted on the fixed domain of this model, is
        re-expressed on the domain ``mu +- comb_domain * sigma`` of the
        current ``mu`` and ``sigma`` (the density is the same line).
        """
        if not self.params:
            raise ShapeError("ZfitSignal.to_shape needs a model built with floating parameters")
        v = {k: float(p.value()) for k, p in self.params.items() if k != "frac_tm"}
        v["comb_fraction"] = 1.0 - float(self.params["frac_tm"].value())
        c0, h0 = 0.5 * (self.domain[0] + self.domain[1]), 0.5 * (self.domain[1] - self.domain[0])
        v["comb_slope"] = rescale_comb_slope(v["comb_slope"], c0, h0, v["mu"], self.comb_domain * v["sigma"])
        v["comb_slope"] = float(np.clip(v["comb_slope"], -1.0, 1.0))
        v["comb_fraction"] = float(np.clip(v["comb_fraction"], 0.0, 1.0))
        return SignalShape(comb_domain=self.comb_domain, **v)


def _limits_of(obs: Any) -> tuple[str, float, float]:
    if isinstance(obs, zfit.Space):
        if obs.n_obs != 1:
            raise ShapeError(f"obs must be one-dimensional, got observables {obs.obs}")
        lo, hi = obs.v1.lower, obs.v1.upper
        return obs.obs[0], float(np.ravel(lo)[0]), float(np.ravel(hi)[0])
    raise ShapeError(f"obs must be a one-dimensional zfit.Space with limits (the window), got {obs!r}")


_BOUNDS = {
    "alpha_l": (1e-3, 20.0),
    "alpha_r": (1e-3, 20.0),
    "n_l": (1.0001, 200.0),
    "n_r": (1.0001, 200.0),
    "comb_slope": (-1.0, 1.0),
}


def shape_to_zfit(
    shape: SignalShape,
    obs: Any,
    *,
    floating: bool | Iterable[str] = False,
    prefix: str = "sig",
    domain: tuple[float, float] | None = None,
) -> ZfitSignal:
    """Build the zfit model identical to ``shape`` on the window ``obs``.

    Parameters
    ----------
    shape : SignalShape
        The shape (GeV).
    obs : zfit.Space
        One-dimensional space whose limits are the window [lo, hi] in GeV; the
        returned PDF is normalised on it. With ``comb_fraction > 0`` it must lie
        inside the Chebyshev domain ``mu +- comb_domain * sigma``.
    floating : bool or iterable of str
        ``False`` (default): every parameter is a constant. ``True``: all
        eight shape parameters are floating ``zfit.Parameter``; an iterable
        of names (from ``SHAPE_PARAMS``) floats just those, the others are
        fixed (``floating=False``) ``zfit.Parameter`` that can still be set.
        Floating ``mu``/``sigma`` do not move the Chebyshev domain, which
        stays at ``domain``; ``ZfitSignal.to_shape`` converts the slope back.
    prefix : str
        Prefix of the parameter names.
    domain : (float, float), optional
        Chebyshev domain in GeV; default ``shape.mu -+ comb_domain * shape.sigma``.

    Returns
    -------
    ZfitSignal
    """
    name, lo, hi = _limits_of(obs)
    shape._check_window(lo, hi)
    if domain is None:
        half = shape.comb_domain * shape.sigma
        domain = (shape.mu - half, shape.mu + half)
    domain = (float(domain[0]), float(domain[1]))
    # the window may touch the domain edge to rounding (_check_window allows it); zfit wants the
    # window inside the Chebyshev space, so widen the space by that much and keep the same line
    domain_used = (min(domain[0], lo), max(domain[1], hi))
    slope = shape.comb_slope
    if domain_used != domain and shape.comb_fraction > 0:
        slope = rescale_comb_slope(
            slope,
            0.5 * (domain[0] + domain[1]),
            0.5 * (domain[1] - domain[0]),
            0.5 * (domain_used[0] + domain_used[1]),
            0.5 * (domain_used[1] - domain_used[0]),
        )
    values = shape.to_dict()
    values["comb_slope"] = slope

    if floating is True:
        float_set = set(SHAPE_PARAMS)
    elif floating is False:
        float_set = set()
    else:
        float_set = set(floating)
        unknown = float_set - set(SHAPE_PARAMS)
        if unknown:
            raise ShapeError(f"floating: unknown parameter name(s) {sorted(unknown)}; expected names from {SHAPE_PARAMS}")

    params: dict[str, Any] = {}
    if floating is False:
        get = {k: values[k] for k in SHAPE_PARAMS}
        frac_tm: Any = 1.0 - values["comb_fraction"]
    else:
        width = hi - lo
        bounds = dict(_BOUNDS)
        bounds["mu"] = (lo, hi)
        bounds["sigma"] = (width * 1e-4, width)
        for k in SHAPE_PARAMS:
            if k == "comb_fraction":
                continue
            lower, upper = bounds[k]
            val = float(np.clip(values[k], lower, upper))
            params[k] = zfit.Parameter(f"{prefix}_{k}", val, lower, upper, floating=k in float_set)
        params["frac_tm"] = zfit.Parameter(f"{prefix}_frac_tm", 1.0 - values["comb_fraction"], 0.0, 1.0, floating="comb_fraction" in float_set)
        get = params
        frac_tm = params["frac_tm"]

    window = zfit.Space(name, lo, hi)
    dscb = zfit.pdf.DoubleCB(get["mu"], get["sigma"], get["alpha_l"], get["n_l"], get["alpha_r"], get["n_r"], obs=window, name=f"{prefix}_dscb")
    comb = zfit.pdf.Chebyshev(obs=zfit.Space(name, domain_used[0], domain_used[1]), coeffs=[get["comb_slope"]], norm=window, name=f"{prefix}_comb")
    pdf = zfit.pdf.SumPDF([dscb, comb], fracs=frac_tm, obs=window, name=f"{prefix}_signal")
    return ZfitSignal(pdf=pdf, dscb=dscb, comb=comb, frac_tm=frac_tm, domain=domain_used, window=(lo, hi), comb_domain=shape.comb_domain, params=params)

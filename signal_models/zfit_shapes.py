"""zfit versions of the signal shape (imported lazily: this module imports zfit/TensorFlow).

``shape_to_zfit`` builds, from zfit's own PDFs, the model that
``SignalShape.pdf`` evaluates in numpy::

    SumPDF([DoubleCB(mu, sigma, alpha_l, n_l, alpha_r, n_r),
            Chebyshev(space = mu +- comb_domain * sigma, coeffs=[comb_slope], norm=window)],
           fracs = 1 - comb_fraction)

The Chebyshev's *space* is the combinatorial domain (zfit maps the limits of
its space to [-1, 1]) while it is normalised on the window, so the zfit model
is identical to the numpy one on any window inside the domain.

When the shape's wrong-pair edge (``SignalShape.comb_edge``) reaches into the
window, the Chebyshev is replaced by ``EdgedChebyshev``: the same line times
``Phi((edge - x) / width)``. zfit has no such PDF, so it is written here (a
``zfit.pdf.BasePDF`` with the analytic integral registered, the same closed
form as ``signal_models.combinatorial.comb_integral``).

This module is imported by ``signal_models.shapes`` (``SignalShape.to_zfit``)
and does not import it back: a shape is whatever has the ``ShapeParameters``
attributes, and ``ZfitSignal.to_shape`` returns a copy of the shape it was
built from with the fitted values.

zfit 0.28 raises DeprecationWarnings from inside its own current API (the
``Space.v1`` limits read its deprecated ``rect_*`` properties, ``Chebyshev``
counts limits with the deprecated ``Space.__len__``, every ``pdf`` call
copies its data without a name); ``zfit_internal_warnings_ignored`` silences
exactly those around the calls made here.
"""

from __future__ import annotations

import logging
import re
import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any, Generic, Protocol, TypeVar

import numpy as np
import tensorflow as tf
import zfit
import zfit.z.numpy as znp

from .combinatorial import EDGE_FLAT_Z, rescale_comb_slope
from .errors import ShapeError

logger = logging.getLogger(__name__)

__all__ = [
    "SHAPE_PARAMS",
    "EdgedChebyshev",
    "ShapeParameters",
    "ZfitSignal",
    "shape_to_zfit",
    "rescale_comb_slope",
    "space_limits",
    "zfit_internal_warnings_ignored",
]

#: names of the floatable SignalShape parameters (comb_domain is a convention, never fitted)
SHAPE_PARAMS = ("mu", "sigma", "alpha_l", "n_l", "alpha_r", "n_r", "comb_fraction", "comb_slope")

#: messages of the DeprecationWarnings zfit raises from inside its own current API (see the module docstring)
ZFIT_INTERNAL_DEPRECATIONS = (
    r"(rect_lower|rect_upper|rect_limits|__len__) \(from zfit\.core\.space\) is deprecated",
    re.escape("Name cannot be empty"),
)


@contextmanager
def zfit_internal_warnings_ignored() -> Iterator[None]:
    """Ignore the DeprecationWarnings zfit raises from inside its own current API (``ZFIT_INTERNAL_DEPRECATIONS``).

    Every other warning, including a deprecation of a call made here, still shows.
    """
    with warnings.catch_warnings():
        for message in ZFIT_INTERNAL_DEPRECATIONS:
            warnings.filterwarnings("ignore", message=message, category=DeprecationWarning)
        yield


def space_limits(space: Any) -> tuple[float, float]:
    """Lower and upper limit (floats, units of the observable) of a one-dimensional ``zfit.Space``."""
    with zfit_internal_warnings_ignored():
        lo, hi = space.v1.lower, space.v1.upper
    return float(np.ravel(lo)[0]), float(np.ravel(hi)[0])


class ShapeParameters(Protocol):
    """What this module reads of a ``signal_models.SignalShape`` (GeV; see there)."""

    @property
    def mu(self) -> float: ...
    @property
    def sigma(self) -> float: ...
    @property
    def comb_fraction(self) -> float: ...
    @property
    def comb_slope(self) -> float: ...
    @property
    def comb_domain(self) -> float: ...
    @property
    def comb_edge(self) -> float: ...
    @property
    def comb_edge_width(self) -> float: ...
    def check_window(self, lo: float, hi: float) -> None: ...
    def edge_matters(self, hi: float) -> bool: ...
    def to_dict(self) -> dict[str, float]: ...


Shape = TypeVar("Shape", bound=ShapeParameters)


_INV_SQRT2 = 1.0 / np.sqrt(2.0)
_INV_SQRT2PI = 1.0 / np.sqrt(2.0 * np.pi)


def _ndtr(z: Any) -> Any:
    return 0.5 * tf.math.erfc(-z * _INV_SQRT2)


class EdgedChebyshev(zfit.pdf.BasePDF):
    """``(1 + slope * T1(u)) * Phi((edge - x) / width)``: a first-order Chebyshev cut off by a smooth step.

    ``u`` maps the limits of ``obs`` (the Chebyshev domain) to [-1, 1] as in
    ``zfit.pdf.Chebyshev``; ``edge`` and ``width`` are in the units of the
    observable (GeV). Normalised analytically on ``norm``.
    """

    _N_OBS = 1

    def __init__(self, obs: Any, slope: Any, edge: Any, width: Any, *, norm: Any = None, name: str = "EdgedChebyshev") -> None:
        super().__init__(obs=obs, params={"slope": slope, "edge": edge, "width": width}, norm=norm, name=name)
        lo, hi = space_limits(self.space)
        self.domain_centre = 0.5 * (lo + hi)
        self.domain_half_width = 0.5 * (hi - lo)

    @zfit.supports(norm=False)
    def _pdf(self, x: Any, norm: Any, params: Any) -> Any:
        del norm
        x = x[0]
        u = (x - self.domain_centre) / self.domain_half_width
        return (1.0 + params["slope"] * u) * _ndtr((params["edge"] - x) / params["width"])


def _edged_primitive(z: Any, a: Any, b: Any) -> Any:
    cdf = _ndtr(z)
    pdf = znp.exp(-0.5 * z * z) * _INV_SQRT2PI
    return a * (z * cdf + pdf) - 0.5 * b * ((z * z - 1.0) * cdf + z * pdf)


def _edged_integral(limits: Any, params: Any, model: EdgedChebyshev) -> Any:
    """Analytic integral (as ``signal_models.combinatorial.comb_integral``, in GeV)."""
    with zfit_internal_warnings_ignored():
        x1, x2 = limits.v1.limits
    c, h = model.domain_centre, model.domain_half_width
    slope, e, w = params["slope"], params["edge"], params["width"]
    line = lambda a, b: (b - a) + 0.5 * slope * ((b - c) ** 2 - (a - c) ** 2) / h  # noqa: E731
    split = e - EDGE_FLAT_Z * w  # in x: Phi = 1 to double precision below e - 9 w
    a_hi = znp.maximum(znp.minimum(x2, split), x1)
    flat = line(x1, a_hi)
    b_lo = znp.minimum(znp.maximum(x1, split), x2)
    z_top, z_bot = (e - b_lo) / w, (e - x2) / w
    # (1 + slope (x - c) / h) with x = e - w z  ->  A - B z
    a_coef = 1.0 + slope * (e - c) / h
    b_coef = slope * w / h
    return flat + w * (_edged_primitive(z_top, a_coef, b_coef) - _edged_primitive(z_bot, a_coef, b_coef))


EdgedChebyshev.register_analytic_integral(func=_edged_integral, limits=zfit.Space(axes=0, lower=zfit.Space.ANY_LOWER, upper=zfit.Space.ANY_UPPER))


@dataclass(frozen=True)
class ZfitSignal(Generic[Shape]):
    """A zfit signal PDF with handles on its parameters.

    Attributes
    ----------
    pdf : zfit.pdf.SumPDF
        ``(1 - comb_fraction) * DoubleCB + comb_fraction * Chebyshev``, normalised on ``window``.
    dscb, comb : zfit PDFs
        The two components (each normalised on the window).
    frac_tm : zfit.Parameter or float
        Fraction of the truth-matched DSCB, ``1 - comb_fraction``.
    domain : tuple[float, float]
        The Chebyshev domain in GeV (fixed when the model was built).
    window : tuple[float, float]
        Normalisation window in GeV.
    comb_domain : float
        Half-width of the domain in units of sigma (as ``SignalShape.comb_domain``).
    shape : SignalShape
        The shape the model was built from.
    params : dict[str, zfit.Parameter]
        The shape parameters by ``SignalShape`` name, ``comb_fraction``
        represented by ``frac_tm``. Only present when the model was built
        with ``floating``.
    comb_edge, comb_edge_width : float
        The wrong-pair edge and its width in GeV (fixed; ``inf`` for none).
        ``comb`` is an ``EdgedChebyshev`` when the edge reaches into the window.
    """

    pdf: Any
    dscb: Any
    comb: Any
    frac_tm: Any
    domain: tuple[float, float]
    window: tuple[float, float]
    comb_domain: float
    shape: Shape
    params: dict[str, Any] = field(default_factory=dict)
    comb_edge: float = float("inf")
    comb_edge_width: float = 0.0

    def to_shape(self) -> Shape:
        """The current parameter values as a ``SignalShape`` (a copy of ``shape`` with the fitted values).

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
        return replace(self.shape, comb_domain=self.comb_domain, comb_edge=self.comb_edge, comb_edge_width=self.comb_edge_width, **v)


def _limits_of(obs: Any) -> tuple[str, float, float]:
    if isinstance(obs, zfit.Space):
        if obs.n_obs != 1:
            raise ShapeError(f"obs must be one-dimensional, got observables {obs.obs}")
        return (obs.obs[0], *space_limits(obs))
    raise ShapeError(f"obs must be a one-dimensional zfit.Space with limits (the window), got {obs!r}")


_BOUNDS = {
    "alpha_l": (1e-3, 20.0),
    "alpha_r": (1e-3, 20.0),
    "n_l": (1.0001, 200.0),
    "n_r": (1.0001, 200.0),
    "comb_slope": (-1.0, 1.0),
}


def shape_to_zfit(
    shape: Shape,
    obs: Any,
    *,
    floating: bool | Iterable[str] = False,
    prefix: str = "sig",
    domain: tuple[float, float] | None = None,
) -> ZfitSignal[Shape]:
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
        The wrong-pair edge (a kinematic endpoint in GeV) is never floated.
    prefix : str
        Prefix of the parameter names.
    domain : (float, float), optional
        Chebyshev domain in GeV; default ``shape.mu -+ comb_domain * shape.sigma``.

    Returns
    -------
    ZfitSignal
    """
    name, lo, hi = _limits_of(obs)
    shape.check_window(lo, hi)
    if domain is None:
        half = shape.comb_domain * shape.sigma
        domain = (shape.mu - half, shape.mu + half)
    domain = (float(domain[0]), float(domain[1]))
    # the window may touch the domain edge to rounding (check_window allows it); zfit wants the
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

    with zfit_internal_warnings_ignored():  # Chebyshev and SumPDF count limits with Space.__len__
        window = zfit.Space(name, lower=lo, upper=hi)
        dscb = zfit.pdf.DoubleCB(get["mu"], get["sigma"], get["alpha_l"], get["n_l"], get["alpha_r"], get["n_r"], obs=window, name=f"{prefix}_dscb")
        domain_space = zfit.Space(name, lower=domain_used[0], upper=domain_used[1])
        if shape.comb_fraction > 0 and shape.edge_matters(hi):
            comb = EdgedChebyshev(domain_space, get["comb_slope"], shape.comb_edge, shape.comb_edge_width, norm=window, name=f"{prefix}_comb")
        else:
            comb = zfit.pdf.Chebyshev(obs=domain_space, coeffs=[get["comb_slope"]], norm=window, name=f"{prefix}_comb")
        pdf = zfit.pdf.SumPDF([dscb, comb], fracs=frac_tm, obs=window, name=f"{prefix}_signal")
    return ZfitSignal(
        pdf=pdf,
        dscb=dscb,
        comb=comb,
        frac_tm=frac_tm,
        domain=domain_used,
        window=(lo, hi),
        comb_domain=shape.comb_domain,
        shape=shape,
        params=params,
        comb_edge=shape.comb_edge,
        comb_edge_width=shape.comb_edge_width,
    )

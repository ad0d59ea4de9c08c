"""DSCB tail starts as smooth functions of the mass: the curves of the second calibration pass.

A single-mass fit constrains a tail start (``alpha_l``, ``alpha_r``, in units
of sigma) only as well as the tail is populated. Where a tail holds few
candidates the likelihood is nearly flat in its start: a fit that begins (or
wanders) beyond the data keeps a tail that starts far out, and the core width
widens to absorb the tail instead. Neighbouring masses can then settle in
either description, so the core width, the +-20 sigma window and everything
counted in it jump from one mass to the next although the detector changes
smoothly.

``fit_tail_curves`` takes the first-pass fits (tails floating, exponents
fixed) and makes each tail start a smooth function of the mass: a penalised
cubic smoothing spline in ``log(alpha)`` weighted by the inverse squared fit
errors (``signal_models.interpolation.fit_curve``, penalty chosen by
cross-validation among the penalties compatible with all points), held
constant beyond the first and last fitted mass. A stuck first-pass fit has a
huge error and barely pulls the curve. ``signal_models.calibration`` then
refits every mass with the tails fixed to the curves, so only the peak
position, the core width and the combinatorial slope float there.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .interpolation import ParameterCurve, fit_curve
from .mass_fit import MassFit, same_mass

logger = logging.getLogger(__name__)

__all__ = ["TAIL_STARTS", "MIN_CURVE_MASSES", "TailCurves", "fit_tail_curves"]

#: the tail parameters made smooth in mass by default
TAIL_STARTS = ("alpha_l", "alpha_r")
#: fewest first-pass masses a smooth curve is built from (the spline needs five)
MIN_CURVE_MASSES = 5


@dataclass(frozen=True)
class TailCurves:
    """Smooth curves of tail parameters vs mass (GeV), each a ``ParameterCurve`` in log space.

    Attributes
    ----------
    curves : mapping str -> ParameterCurve
        One curve per smoothed parameter, built from the first-pass fits.
    """

    curves: Mapping[str, ParameterCurve]

    @property
    def names(self) -> tuple[str, ...]:
        """The smoothed parameters."""
        return tuple(self.curves)

    def _clamped(self, curve: ParameterCurve, mass: float) -> float:
        return float(np.clip(mass, curve.masses[0], curve.masses[-1]))

    def values(self, mass: float) -> dict[str, float]:
        """Each curve at ``mass`` (GeV; constant beyond the masses it was built from)."""
        return {k: float(c(self._clamped(c, mass))) for k, c in self.curves.items()}

    def errors(self, mass: float) -> dict[str, float]:
        """1-sigma band of each curve at ``mass`` (GeV), from the first-pass fit errors."""
        return {k: float(c.uncertainty(self._clamped(c, mass))) for k, c in self.curves.items()}

    def record(self) -> dict[str, Any]:
        """The first-pass points and the curve settings, for the model file's ``settings``."""
        out: dict[str, Any] = {}
        for k, c in self.curves.items():
            out[k] = {
                "masses": c.masses.tolist(),
                "first_pass": c.values.tolist(),
                "first_pass_errors": c.errors.tolist(),
                "method": c.method,
                "transform": c.transform,
                "lam": c.lam,
            }
        return out


def fit_tail_curves(
    fits: Sequence[MassFit], names: Sequence[str] = TAIL_STARTS, *, exclude: Sequence[float] = (), min_masses: int = MIN_CURVE_MASSES
) -> TailCurves | None:
    """Smoothing-spline curves of the tail parameters ``names`` through the first-pass fits.

    Parameters
    ----------
    fits : sequence of MassFit
        First-pass fits (any status; the successful ones with a positive,
        finite error on the parameter are used).
    names : sequence of str
        Tail parameters to smooth (floating in the first pass).
    exclude : sequence of float
        Generated masses (GeV) kept out of the curves (hold-out masses of closure tests).
    min_masses : int
        Fewest usable masses; with fewer, returns None (the first-pass fits stay final).

    Returns
    -------
    TailCurves or None
    """
    usable = [f for f in fits if f.ok and not any(same_mass(f.mass, h) for h in exclude)]
    curves: dict[str, ParameterCurve] = {}
    for name in names:
        pts = [f for f in usable if np.isfinite(f.errors.get(name, np.nan)) and f.errors[name] > 0 and f.params[name] > 0]
        if len(pts) < max(min_masses, 5):
            logger.info("tail curves: %d first-pass masses measure %s (< %d); keeping the per-mass fits", len(pts), name, max(min_masses, 5))
            return None
        m = np.array([f.mass for f in pts])
        v = np.array([f.params[name] for f in pts])
        e = np.array([f.errors[name] for f in pts])
        curves[name] = fit_curve(name, m, v, e, method="smoothing", transform="log")
        logger.info("tail curve %s: smoothing spline (lam %.3g) through %d masses, %.3g to %.3g", name, curves[name].lam, m.size, float(curves[name](m).min()), float(curves[name](m).max()))
    return TailCurves(curves=curves)

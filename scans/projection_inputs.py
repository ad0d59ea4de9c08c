"""What a projection needs besides the luminosity: a smooth background density and a signal peak.

- ``background_from_sample(mgg, luminosity_fb=...)``: the M_gg density of a
  toy-MC sample per fb^-1 (``SampledBackground``), the derivative of a
  monotone (PCHIP) interpolation of the sample's cumulative count at its
  quantiles: smooth, never negative, its integral the sample's count;
- ``PeakSignal``: a signal model from a resolution function sigma(m) and an
  efficiency (DSCB peak at the mass), for colliders without a signal model;
- ``diphoton_mass_resolution``: sigma(M_gg) of the ALP's photons from a
  photon resolution (a collider preset's calorimeter), without kinematic fit.

``scans.projection.project`` takes any callable density and any
SignalModel-like object; these are the ready-made ones.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike, NDArray

from signal_models.shapes import SignalShape

from .errors import ScanInputError

logger = logging.getLogger(__name__)

__all__ = ["ProjectionError", "SampledBackground", "background_from_sample", "PeakSignal", "diphoton_mass_resolution"]


class ProjectionError(ScanInputError):
    """Invalid projection input (the message names the value)."""


@dataclass(frozen=True, eq=False)
class SampledBackground:
    """A smooth background density from a sample: the derivative of a monotone (PCHIP) interpolation of its cumulative count.

    Attributes
    ----------
    knots : (n,) GeV
        Increasing masses (sample quantiles, the data range at both ends).
    cumulative : (n,) events per fb^-1
        Background below each knot per fb^-1 of luminosity.
    data_range : (lo, hi) GeV
    n_events : int
        Sample events used.
    """

    knots: NDArray[np.float64] = field(repr=False)
    cumulative: NDArray[np.float64] = field(repr=False)
    data_range: tuple[float, float]
    n_events: int

    def __call__(self, m: ArrayLike) -> NDArray[np.float64]:
        """Density in events/GeV per fb^-1 at ``m`` (GeV); 0 outside the data range."""
        from scipy.interpolate import PchipInterpolator

        x = np.asarray(m, dtype=float)
        d = PchipInterpolator(self.knots, self.cumulative, extrapolate=False).derivative()(x)
        return np.where(np.isfinite(d), np.maximum(d, 0.0), 0.0)

    @property
    def total(self) -> float:
        """Events per fb^-1 in the data range."""
        return float(self.cumulative[-1])


def background_from_sample(mgg: ArrayLike, *, luminosity_fb: float, weights: ArrayLike | None = None,
                           data_range: tuple[float, float] | None = None, events_per_knot: int = 400) -> SampledBackground:
    """The density of a (toy-MC) sample of candidate masses, per fb^-1 (``SampledBackground``).

    Parameters
    ----------
    mgg : (n,) GeV
        Candidate masses of the sample (all diphoton pairs that would enter the scan).
    luminosity_fb : float
        Luminosity the sample corresponds to, fb^-1 (its events / sigma for an unweighted sample).
    weights : (n,), optional
        Event weights (the sample then counts sum(w) events).
    data_range : (lo, hi) GeV, optional
        Range kept (default: min and max of the sample).
    events_per_knot : int
        Sample events between neighbouring knots: the density's statistical
        precision is about 1/sqrt(events_per_knot) per knot interval.
    """
    x = np.asarray(mgg, dtype=float).ravel()
    w = np.ones_like(x) if weights is None else np.asarray(weights, dtype=float).ravel()
    if w.shape != x.shape or not np.all(np.isfinite(w)) or np.any(w < 0):
        raise ProjectionError("background sample: weights must match the masses, finite and >= 0")
    if not (luminosity_fb > 0 and math.isfinite(luminosity_fb)):
        raise ProjectionError(f"background sample: luminosity_fb must be > 0, got {luminosity_fb!r}")
    if not np.all(np.isfinite(x)):
        raise ProjectionError("background sample: masses must be finite")
    lo, hi = (float(x.min()), float(x.max())) if data_range is None and x.size else tuple(map(float, data_range or (0, 0)))
    keep = (x >= lo) & (x <= hi)
    x, w = x[keep], w[keep]
    order = np.argsort(x, kind="stable")
    x, w = x[order], w[order]
    if x.size < 2 * events_per_knot or not hi > lo:
        raise ProjectionError(f"background sample: {x.size} events in [{lo:g}, {hi:g}] GeV, need at least {2 * events_per_knot}")
    cum = np.cumsum(w)
    inner = np.arange(events_per_knot, x.size - events_per_knot // 2, events_per_knot)
    knots = np.concatenate([[lo], 0.5 * (x[inner - 1] + x[inner]), [hi]])
    counts = np.concatenate([[0.0], cum[inner - 1], [cum[-1]]])
    distinct = np.concatenate([[True], np.diff(knots) > 0])
    knots, counts = knots[distinct], counts[distinct]
    return SampledBackground(knots=knots, cumulative=counts / luminosity_fb, data_range=(lo, hi), n_events=int(x.size))


def diphoton_mass_resolution(masses: ArrayLike, sqrt_s: float,
                             photon_resolution: Callable[[NDArray], tuple[ArrayLike, ArrayLike, ArrayLike]]) -> NDArray[np.float64]:
    """Diphoton mass resolution sigma(M_gg) in GeV of an ALP from e+e- -> gamma a, from the photon resolution (no kinematic fit).

    The ALP has the CM energy E_a = (s + m^2) / (2 sqrt(s)); the resolution is
    evaluated at the symmetric decay (each photon E = E_a / 2, opening angle
    cos(theta) = 1 - m^2 / (2 E^2)) by propagating m^2 = 2 E_1 E_2 (1 - cos(theta)):
    sigma_m / m = 1/2 sqrt(2 (sigma_E / E)^2 + (sin(theta) sigma_open / (1 - cos(theta)))^2),
    with the opening-angle error sigma_open = sqrt(sigma_theta^2 + sigma_phi^2) (two
    photons, each with a direction error of sqrt((sigma_theta^2 + sigma_phi^2) / 2)).
    A 4C kinematic fit to the beams (``bumphunt.kinfit``) does much better where
    the photons are far apart (at the Z pole above a few GeV); measure sigma(m)
    on signal MC for that.

    Parameters
    ----------
    masses : array_like, GeV
        In (0, sqrt_s).
    sqrt_s : float
        CM energy, GeV.
    photon_resolution : callable
        ``E (GeV) -> (sigma_E GeV, sigma_theta rad, sigma_phi rad)``, e.g. a collider preset's
        ``resolution.sigmas`` with the calorimeter region bound.
    """
    m = np.asarray(masses, dtype=float)
    if np.any(m <= 0) or np.any(m >= sqrt_s):
        bad = m[(m <= 0) | (m >= sqrt_s)].flat[0]
        raise ProjectionError(f"diphoton_mass_resolution: m_a = {bad:g} GeV must be in (0, sqrt(s) = {sqrt_s:g}) GeV")
    e = 0.25 * (sqrt_s**2 + m**2) / sqrt_s
    s_e, s_t, s_p = (np.broadcast_to(np.asarray(v, dtype=float), e.shape) for v in photon_resolution(e))
    cos_t = np.clip(1.0 - m**2 / (2.0 * e * e), -1.0, 1.0)
    ang = np.sqrt(1.0 - cos_t**2) * np.hypot(s_t, s_p) / np.maximum(1.0 - cos_t, 1e-300)
    return 0.5 * m * np.sqrt(2.0 * (s_e / e) ** 2 + ang**2)


@dataclass(frozen=True, eq=False)
class PeakSignal:
    """A signal model from a resolution function: DSCB peak at the mass, no wrong pairs.

    Parameters
    ----------
    resolution : callable
        sigma(m) in GeV for masses in GeV (vectorised).
    efficiency_value : float or callable
        Signal efficiency (all signal candidates of the shape per produced ALP), a constant or eps(m);
        ``efficiency(m)`` returns it as an array.
    efficiency_rel_unc : float
        Relative efficiency uncertainty (a constrained yield nuisance in the cross-section limits).
    alpha_l, n_l, alpha_r, n_r : float
        DSCB tails (default: those of ``signal_models.analytic``'s model).
    mass_range : (lo, hi) GeV
    """

    resolution: Callable[[NDArray], NDArray]
    efficiency_value: float | Callable[[NDArray], NDArray] = 1.0
    efficiency_rel_unc: float = 0.0
    alpha_l: float = 1.2
    n_l: float = 3.0
    alpha_r: float = 1.6
    n_r: float = 6.0
    mass_range: tuple[float, float] = (0.0, math.inf)

    def shape(self, mass: float) -> SignalShape:
        """The DSCB at ``mass`` (GeV) with the resolution there."""
        s = float(np.asarray(self.resolution(np.asarray([float(mass)])), dtype=float).ravel()[0])
        return SignalShape(mu=float(mass), sigma=s, alpha_l=self.alpha_l, n_l=self.n_l, alpha_r=self.alpha_r, n_r=self.n_r)

    def efficiency(self, mass: ArrayLike) -> NDArray[np.float64]:
        """Efficiency at ``mass`` (dimensionless)."""
        m = np.asarray(mass, dtype=float)
        e = self.efficiency_value(m) if callable(self.efficiency_value) else np.full(m.shape, float(self.efficiency_value))
        return np.asarray(e, dtype=float).reshape(m.shape)

    def efficiency_uncertainty(self, mass: ArrayLike) -> NDArray[np.float64]:
        """Absolute efficiency uncertainty."""
        return self.efficiency_rel_unc * self.efficiency(mass)

"""Known peaks (pi0, eta, eta' -> gamma gamma) inside the fit windows of a scan.

The diphoton spectrum has irreducible peaks at the masses of the light
mesons (e+e- -> P gamma (gamma), P -> gamma gamma). Hypotheses near a peak
are vetoed (``vetoes.mode: veto``) or searched through with the peak floated
(``vetoes.mode: float``). A peak can also lie inside the +-20 sigma window of
a hypothesis that is not near it (the pi0 at 0.135 GeV is inside the window
of the 0.2 GeV hypothesis): the smooth background polynomial cannot absorb
it, and the signal yield is pulled. ``vetoes.in_window`` says what to do:

``template`` (default)
    the peak becomes a background template with a floating yield in every
    window that contains it: the signal shape at the PDG mass, DSCB core only
    (its wrong-pair combinatorics is smooth and absorbed by the polynomial);
``cut``
    the window is cut at the peak: it ends ``vetoes.cut_n_sigma`` widths of
    the peak away from the PDG mass, on the side of the hypothesis;
``none``
    the peak is ignored (biased near peaks; for comparisons only).

Below (or above) the signal model's mass range the peak shape is
extrapolated from the model's end: the tail parameters of the shape at the
end, the peak position shifted by the same offset from the mass as there,
and the core width extrapolated linearly in mass with the slope of sigma(m)
over the first 5% of the range, clipped to between half and twice the width
at the end. At low mass the diphoton resolution is dominated by the opening
angle, which keeps sigma(m) nearly flat, so the extrapolation is short and
mild for the pi0 (0.135 GeV against a model starting at 0.2 GeV).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from typing import Any

import numpy as np
from numpy.typing import NDArray

from signal_models import SignalShape
from signal_models._common.pdg import particle_mass

from .grid import veto_points

logger = logging.getLogger(__name__)

__all__ = ["IN_WINDOW_MODES", "DEGENERATE_SIGMA", "peak_shape", "peaks_in_windows"]

#: what ``vetoes.in_window`` may say about a known peak inside a hypothesis' window
IN_WINDOW_MODES = ("template", "cut", "none")
#: vetoes.mode "float": hypotheses closer than this (in units of sigma(m)) to a floated peak are vetoed,
#: because their signal shape cannot be told apart from the peak template
DEGENERATE_SIGMA = 0.5
#: fraction of the signal model's mass range over which the slope of sigma(m) is taken for extrapolation
_SLOPE_SPAN = 0.05


def peak_shape(signal_model: Any, mass: float, *, model_range: tuple[float, float]) -> tuple[SignalShape, bool]:
    """The shape of a narrow peak at ``mass`` (GeV) and whether it was extrapolated.

    Inside the model range: the model's shape at ``mass`` without its wrong-pair
    part. Outside: extrapolated from the nearest end of the range (module docstring).
    """
    lo, hi = model_range
    if lo <= mass <= hi:
        return dataclasses.replace(signal_model.shape(mass), comb_fraction=0.0), False
    end = lo if mass < lo else hi
    step = _SLOPE_SPAN * (hi - lo)
    inner = end + step if mass < lo else end - step
    s_end, s_in = signal_model.shape(end), signal_model.shape(inner)
    slope = (s_in.sigma - s_end.sigma) / (inner - end)
    sigma = float(np.clip(s_end.sigma + slope * (mass - end), 0.5 * s_end.sigma, 2.0 * s_end.sigma))
    shifted = dataclasses.replace(s_end, mu=mass + (s_end.mu - end), sigma=sigma, comb_fraction=0.0)
    logger.info("peak at %.6g GeV outside the signal model range [%.6g, %.6g] GeV: shape extrapolated from %.6g GeV (sigma %.4g GeV)",
                mass, lo, hi, end, sigma)
    return shifted, True


def peaks_in_windows(
    signal_model: Any,
    vetoes: Mapping[str, Any],
    *,
    masses: NDArray[np.float64],
    sigmas: NDArray[np.float64],
    windows: NDArray[np.float64],
    model_range: tuple[float, float],
) -> tuple[list[str], list[list[SignalShape]], NDArray[np.float64]]:
    """Vetoes, peak templates and (possibly cut) windows of every hypothesis.

    Parameters
    ----------
    signal_model : SignalModel-like
    vetoes : mapping
        The ``vetoes`` section of the scan configuration (``mode``, ``in_window``,
        ``particles``, ``n_sigma``, ``cut_n_sigma``, ``ranges``).
    masses, sigmas : (k,) arrays, GeV
        Hypothesis masses and signal core widths.
    windows : (k, 2) array, GeV
        Fit windows before any cut.
    model_range : (float, float), GeV
        Mass range of the signal model.

    Returns
    -------
    veto : list of str
        Per point the veto reason, "" when it is fitted.
    extras : list of list of SignalShape
        Per point the peak templates floated in its window.
    windows : (k, 2) array, GeV
        The windows, cut at the peaks in ``in_window: cut``.
    """
    mode = vetoes.get("mode", "veto")
    in_window = vetoes.get("in_window", "template")
    floating = mode == "float"
    veto = veto_points(masses, sigmas, particles=() if floating else vetoes["particles"], n_sigma=vetoes["n_sigma"],
                       ranges=vetoes["ranges"])
    extras: list[list[SignalShape]] = [[] for _ in masses]
    windows = np.array(windows, dtype=float)
    for name in vetoes["particles"]:
        mp = particle_mass(name)
        inside = np.flatnonzero((windows[:, 0] <= mp) & (mp <= windows[:, 1]))
        if len(inside) == 0 or (not floating and in_window == "none"):
            continue
        shape, _ = peak_shape(signal_model, mp, model_range=model_range)
        for i in inside:
            if veto[i]:
                continue
            if floating:
                if abs(masses[i] - mp) < DEGENERATE_SIGMA * sigmas[i]:
                    # the signal shape is (nearly) the peak shape: the two yields cannot be separated
                    veto[i] = f"{name} (signal indistinguishable from the floating peak)"
                    continue
                extras[i].append(shape)
            elif in_window == "template":
                extras[i].append(shape)
            else:  # cut the window at the peak, on the side of the hypothesis
                half = vetoes["cut_n_sigma"] * shape.sigma
                if mp < masses[i]:
                    windows[i, 0] = max(windows[i, 0], mp + half)
                else:
                    windows[i, 1] = min(windows[i, 1], mp - half)
                if not windows[i, 0] < masses[i] < windows[i, 1]:
                    veto[i] = f"{name} (window cut at the peak leaves no room for the hypothesis)"
    return veto, extras, windows

"""The quantities a ``SignalModel`` interpolates in mass, and their per-mass values from the calibration fits.

``CURVES`` lists each interpolated quantity with its transform and physical
range, ``DERIVED`` the quantities computed from the curves (the module
docstring of ``signal_models.model`` explains both). ``curve_data`` turns the
per-mass fits (``signal_models.mass_fit.MassFit``) into the points a curve is
built from, at the masses that measure the quantity (``measures``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from numpy.typing import NDArray

from .mass_fit import MassFit

__all__ = ["CURVES", "PARTIAL_CURVES", "DERIVED", "MIN_KEPT", "PhaseSpace", "measures", "curve_data"]

#: interpolated quantities: name -> (transform, clip)
CURVES: dict[str, tuple[str, tuple[float, float] | None]] = {
    "mu_shift": ("identity", None),
    "sigma": ("log", None),
    "alpha_l": ("log", None),
    "n_l": ("log", None),
    "alpha_r": ("log", None),
    "n_r": ("log", None),
    "comb_edge_q": ("identity", (0.0, np.inf)),
    "comb_edge_width": ("log", None),
    "comb_slope": ("identity", (-1.0, 1.0)),
    "comb_level": ("identity", (0.0, np.inf)),
    "eff_tm": ("identity", (0.0, 1.0)),
}
#: curves built only from the masses where the quantity is measured (constant beyond them)
PARTIAL_CURVES = ("comb_slope", "comb_level", "comb_edge_q", "comb_edge_width")
#: quantities computed from the curves (see ``signal_models.model``)
DERIVED = ("comb_fraction", "comb_edge", "eff_total")
#: a comb_kept below this makes the edge-free level too uncertain to enter its curve
MIN_KEPT = 0.05
#: ``phase_space(m, mu, sigma)`` (GeV): wrong pairs per truth-matched pair in the window expected from phase space
PhaseSpace = Callable[[NDArray, NDArray, NDArray], NDArray]


def measures(f: MassFit, name: str) -> bool:
    """Whether the fit at one mass measures quantity ``name``."""
    if name in ("comb_slope",):
        return f.n_comb > 0 and f.errors.get("comb_slope", 0.0) > 0
    if name == "comb_level":
        # no wrong pairs in the window and no edge seen: nothing to learn about the level
        informative = f.n_comb > 0 or f.edge_status in ("above", "measured")
        return informative and f.edge_status != "below" and f.comb_kept > MIN_KEPT
    if name in ("comb_edge_q", "comb_edge_width", "comb_edge"):
        return f.edge_status == "measured" and "comb_edge" in f.params
    return True


def curve_data(fits: Sequence[MassFit], name: str, *, phase_space: PhaseSpace | None = None) -> tuple[NDArray, NDArray, NDArray]:
    """Per-mass values and errors of quantity ``name`` at the masses that measure it.

    ``phase_space(m, mu, sigma)``: the phase-space expectation of the wrong
    pairs per truth-matched pair in the window (``comb_level`` is relative to it).
    """
    fits = [f for f in fits if measures(f, name)]
    m = np.array([f.mass for f in fits])
    if name == "comb_level":
        f_c = np.array([f.params["comb_fraction"] for f in fits])
        e_c = np.array([f.errors["comb_fraction"] for f in fits])
        kept = np.array([f.comb_kept for f in fits])
        g = np.ones(m.shape)
        if phase_space is not None and m.size:
            g = phase_space(m, np.array([f.params["mu"] for f in fits]), np.array([f.params["sigma"] for f in fits]))
        return m, f_c / (1.0 - f_c) / kept / g, e_c / (1.0 - f_c) ** 2 / kept / g
    if name == "comb_edge_q":
        e = np.array([f.params["comb_edge"] for f in fits])
        mu = np.array([f.params["mu"] for f in fits])
        return m, e * e + mu * mu, 2.0 * e * np.array([f.errors["comb_edge"] for f in fits])
    if name == "mu_shift":
        v = np.array([f.params["mu"] - f.mass for f in fits])
        e = np.array([f.errors["mu"] for f in fits])
    elif name == "eff_tm":
        v = np.array([f.eff_tm for f in fits])
        e = np.array([f.eff_tm_err for f in fits])
    elif name == "eff_total":
        v = np.array([f.eff_total for f in fits])
        e = np.array([f.eff_total_err for f in fits])
    else:
        v = np.array([f.params[name] for f in fits])
        e = np.array([f.errors[name] for f in fits])
    return m, v, e

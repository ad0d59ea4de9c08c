"""Helpers for tutorials and tests that do not want to build a signal model from MC.

``analytic_signal_model`` (an ``AnalyticSignalModel``) is the analytic
stand-in for a ``SignalModel``; it lives in ``signal_models.analytic`` and is
re-exported here. ``toy_spectrum`` draws a smooth, falling M_gg background
spectrum; ``sample_signal`` draws signal masses from a shape.
"""

from __future__ import annotations

import logging

import numpy as np
from numpy.typing import NDArray

from signal_models import SignalShape
from signal_models.analytic import AnalyticSignalModel, analytic_signal_model

logger = logging.getLogger(__name__)

__all__ = ["AnalyticSignalModel", "analytic_signal_model", "toy_spectrum", "sample_signal"]


def toy_spectrum(
    n: int,
    *,
    lo: float = 0.1,
    hi: float = 10.0,
    slope: float = 0.35,
    seed: int = 1,
) -> NDArray[np.float64]:
    """Smooth falling background M_gg spectrum: density ~ exp(-slope m) on [lo, hi] GeV, ``n`` candidates."""
    rng = np.random.default_rng(seed)
    u = rng.uniform(size=n)
    if slope == 0:
        return lo + (hi - lo) * u
    a, b = np.exp(-slope * lo), np.exp(-slope * hi)
    return -np.log(a - u * (a - b)) / slope


def sample_signal(shape: SignalShape, n: int, *, lo: float, hi: float, seed: int = 2) -> NDArray[np.float64]:
    """Draw ``n`` masses from ``shape`` normalised on [lo, hi] GeV (``SignalShape.sample``, exact inverse CDF)."""
    return shape.sample(n, lo, hi, rng=np.random.default_rng(seed))

"""Transitional: the names of the former ``bumphunt.kinfit.fitter`` module, re-exported from their new homes.

The fit now lives in ``api`` (``fit``, ``fit_events``, ``apply_to_events``,
``ENGINES``), ``inputs`` (``beam_covariance``), ``result`` (``KinFitResult``,
``STATUS_REASONS``, status codes), ``reference`` (``fit_reference``) and the
engines ``engine_numpy`` / ``_engine_numba``. Import from ``bumphunt.kinfit``
(or those modules); this module goes away once no caller uses it.
"""

from __future__ import annotations

from .api import ENGINES, apply_to_events, fit, fit_events
from .inputs import beam_covariance
from .reference import fit_reference
from .result import BAD_COV, BAD_ENERGY, BAD_FINITE, BAD_ITER, BAD_S, BAD_THETA, MAX_ITER, OK, STATUS_REASONS, KinFitResult

__all__ = [
    "KinFitResult",
    "fit",
    "fit_reference",
    "apply_to_events",
    "fit_events",
    "beam_covariance",
    "STATUS_REASONS",
    "ENGINES",
    "OK",
    "BAD_FINITE",
    "BAD_ENERGY",
    "BAD_THETA",
    "BAD_COV",
    "BAD_S",
    "MAX_ITER",
    "BAD_ITER",
]

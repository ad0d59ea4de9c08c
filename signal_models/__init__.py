"""ALP signal physics and signal shapes for bumphunt.

``SignalShape`` (one hypothesis' shape) and ``SignalModel`` (shapes and
efficiency interpolated in the ALP mass) are the public contract; see
``docs/`` for the file format. The modules, from the bottom up:

- ``alp``: the coupling models (photon-only g_agg, hypercharge g_aBB with Z exchange), ALP widths,
  decay length, cross-sections, coupling conversion; ``reference_limits``: published limit curves;
- ``dscb``, ``combinatorial``: the shape functions (numpy, analytic integrals);
  ``shapes``: ``SignalShape``; ``zfit_shapes``: the same shape as zfit PDFs;
- ``edges``, ``calibration_fitter``, ``mass_fit``, ``calibration``: the
  per-mass zfit calibration fits of the signal MC (``goodness_of_fit``,
  ``sample_stats`` their helpers);
- ``interpolation``, ``model_quantities``, ``model_file``, ``model``,
  ``build_model``: the interpolation in mass, ``SignalModel`` and its file;
- ``analytic``: the analytic stand-in model; ``synthetic``: synthetic signal
  MC from known truth curves; ``plots``.

Names other than ``SignalShape`` and ``ShapeError`` are imported on first use;
TensorFlow and zfit only when a zfit model or calibration fitter is made.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from ._common.version import __version__
from .errors import ShapeError
from .shapes import SignalShape

__all__ = [
    "SignalShape",
    "ShapeError",
    "SignalModel",
    "SignalModelFormatError",
    "MassFit",
    "build_signal_model",
    "AnalyticSignalModel",
    "analytic_signal_model",
    "alp",
    "__version__",
]

_LAZY = {
    "SignalModel": ("signal_models.model", "SignalModel"),
    "SignalModelFormatError": ("signal_models.errors", "SignalModelFormatError"),
    "build_signal_model": ("signal_models.build_model", "build_signal_model"),
    "MassFit": ("signal_models.mass_fit", "MassFit"),
    "AnalyticSignalModel": ("signal_models.analytic", "AnalyticSignalModel"),
    "analytic_signal_model": ("signal_models.analytic", "analytic_signal_model"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        mod, attr = _LAZY[name]
        return getattr(import_module(mod), attr)
    if name == "alp":
        return import_module("signal_models.alp")
    raise AttributeError(f"module 'signal_models' has no attribute {name!r}")

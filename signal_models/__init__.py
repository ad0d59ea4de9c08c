"""ALP signal physics and signal shapes for bumphunt.

``SignalShape`` (one hypothesis' shape) and ``SignalModel`` (shapes and
efficiency interpolated in the ALP mass) are the public contract; see
``docs/`` for the file format.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from ._common.version import __version__
from .shapes import ShapeError, SignalShape



__all__ = ["SignalShape", "ShapeError", "SignalModel", "SignalModelFormatError", "MassFit", "build_signal_model", "alp", "__version__"]

_LAZY = {
    "SignalModel": ("signal_models.model", "SignalModel"),
    "SignalModelFormatError": ("signal_models.model", "SignalModelFormatError"),
    "build_signal_model": ("signal_models.model", "build_signal_model"),
    "MassFit": ("signal_models.calibration", "MassFit"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        mod, attr = _LAZY[name]
        return getattr(import_module(mod), attr)
    if name == "alp":
        return import_module("signal_models.alp")
    raise AttributeError(f"module 'signal_models' has no attribute {name!r}")

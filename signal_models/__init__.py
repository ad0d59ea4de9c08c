"""ALP signal physics and signal shapes for bumphunt.

``SignalShape`` (one hypothesis' shape) and ``SignalModel`` (shapes and
efficiency interpolated in the ALP mass) are the public contract; see
``docs/`` for the file format.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from .shapes import SignalShape, ShapeError

__all__ = ["SignalShape", "ShapeError", "SignalModel", "alp"]

_LAZY = {"SignalModel": ("signal_models.model", "SignalModel")}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        mod, attr = _LAZY[name]
        return getattr(import_module(mod), attr)
    if name == "alp":
        return import_module("signal_models.alp")
    raise AttributeError(f"module 'signal_models' has no attribute {name!r}")

"""Exceptions of ``signal_models`` (both ``ValueError`` subclasses, under the common ``BumphuntError``)."""

from __future__ import annotations

from ._common.errors import BumphuntError

__all__ = ["ShapeError", "SignalModelFormatError"]


class ShapeError(BumphuntError, ValueError):
    """Invalid signal-shape parameters or window."""


class SignalModelFormatError(ShapeError):
    """A signal-model file or dictionary is invalid (the message names the key)."""

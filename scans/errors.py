"""Exceptions raised by the scan driver.

``scans`` may not import ``bumphunt``, so it has its own small hierarchy; the
``bumphunt`` CLI turns these into clean command-line errors.
"""

from __future__ import annotations

from signal_models._common.errors import BumphuntError, ConfigError

__all__ = ["ScanError", "ScanConfigError", "ScanInputError", "CheckpointError"]


class ScanError(BumphuntError):
    """Base class of scan errors."""


class ScanConfigError(ScanError, ConfigError):
    """A scan configuration is invalid; the message names the key path."""


class ScanInputError(ScanError, ValueError):
    """An input (candidate file, array, signal model) is missing or unusable; the message names it."""


class CheckpointError(ScanError, RuntimeError):
    """A checkpoint directory cannot be used (made with another config or input, or damaged)."""

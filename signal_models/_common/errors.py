"""Root of every exception the packages raise for a user's input or a failed computation.

``signal_models``, ``fits``, ``scans`` and ``bumphunt`` each define their own
exception types (a package may not import a higher one), all derived from
``BumphuntError``, so that the command line catches one type and prints its
message. ``ConfigError`` is shared by every configuration file the packages
read (scan, toy MC, selector, signal model).
"""

from __future__ import annotations

__all__ = ["BumphuntError", "ConfigError"]


class BumphuntError(Exception):
    """Base class of all errors raised by bumphunt's packages; the message names the file, key or value."""


class ConfigError(BumphuntError, ValueError):
    """A configuration file or option is invalid; the message names the key."""

"""Exceptions raised by bumphunt's event-level stages. All derive from ``BumphuntError``.

``BumphuntError`` and ``ConfigError`` are shared by all four packages (``signal_models._common.errors``).
"""

from __future__ import annotations

from signal_models._common.errors import BumphuntError, ConfigError

__all__ = ["BumphuntError", "InputError", "SchemaError", "ConfigError", "FitError"]


class InputError(BumphuntError, ValueError):
    """An input file or array is missing, unreadable or has invalid content.

    The message names the file, branch or field and what was expected.
    """


class SchemaError(InputError):
    """A ROOT tree does not match the expected schema (branch missing, wrong dtype or units)."""


class FitError(BumphuntError, RuntimeError):
    """A fit or limit could not be computed even after retries."""

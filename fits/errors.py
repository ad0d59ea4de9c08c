"""Exceptions of the fits package (``fits`` imports nothing of bumphunt's)."""

from __future__ import annotations

from signal_models._common.errors import BumphuntError

__all__ = ["FitInputError", "FitFailure"]


class FitInputError(BumphuntError, ValueError):
    """Invalid input to a fit: masses, shapes or windows; the message names the value."""


class FitFailure(BumphuntError, RuntimeError):
    """A fit or limit could not be computed even after retries."""

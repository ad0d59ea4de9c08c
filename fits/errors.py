"""Exceptions of the fits package (``fits`` imports nothing of bumphunt's)."""

from __future__ import annotations

__all__ = ["FitInputError", "FitFailure"]


class FitInputError(ValueError):
    """Invalid input to a fit: masses, shapes or windows; the message names the value."""


class FitFailure(RuntimeError):
    """A fit or limit could not be computed even after retries."""

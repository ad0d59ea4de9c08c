"""Transitional alias of ``bumphunt.events.candidates`` (removed once every caller imports the new path)."""

from .events.candidates import *  # noqa: F403

"""Transitional alias of ``bumphunt.events.io`` (removed once every caller imports the new path)."""

from .events.io import *  # noqa: F403

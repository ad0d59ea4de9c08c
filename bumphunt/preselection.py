"""Transitional alias of ``bumphunt.events.preselection`` (removed once every caller imports the new path)."""

from .events.preselection import *  # noqa: F403

"""The Punzi-net selection: candidate features, one network for all ALP masses, its working point and figures of merit."""

from __future__ import annotations

from .core import *  # noqa: F403 - transitional: the selection modules are being split
from .core import __all__  # noqa: F401

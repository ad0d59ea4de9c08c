"""Default constants of the likelihood model shared by ``fits``, ``scans`` and ``bumphunt``."""

from __future__ import annotations

__all__ = ["DEFAULT_BKG_ORDER", "DEFAULT_HALF_WIDTH", "DEFAULT_CL"]

#: Order of the Chebyshev background polynomial of a hypothesis fit (cubic, as in the Belle II search).
DEFAULT_BKG_ORDER = 3
#: Half-width of a hypothesis' fit window in units of the signal's core sigma.
DEFAULT_HALF_WIDTH = 20.0
#: Confidence level of upper limits.
DEFAULT_CL = 0.95

"""Published 95% CL limit curves in (m_a, g), bundled with the package for the coupling plots.

One CSV per curve in ``data/`` (columns ``mass_gev,g_gev``; a ``#`` header
block with ``label``, ``citation``, ``coupling``, ``production``, ``obtained``
and optionally ``cl`` and ``shape``: ``curve``, the default, an upper limit
whose masses do not decrease, or ``region``, a closed polygon such as a beam
dump's band between a lower and an upper coupling). ``available()`` lists the names, ``load(name)`` returns
a ``ReferenceLimit``; ``load_file(path)`` reads a CSV of the same format.
Numbers are the sources' own (or read off their figures, as each file says);
nothing is interpolated.
"""

from __future__ import annotations

from .loader import ReferenceLimit, ReferenceLimitError, available, load, load_file

__all__ = ["ReferenceLimit", "ReferenceLimitError", "available", "load", "load_file"]

"""Transitional: the former reading/writing module, split by responsibility.

Every public name it had is re-exported here until the callers import it from
its new home (or from ``bumphunt.events``):

* ``files``: ``expand_paths``, ``read_meta`` (and ``open_root_file``);
* ``aliases``: ``load_aliases``, ``ALIAS_SCHEMA``, ``MEV_SUSPICION_GEV``;
* ``reader``: ``Events``, ``read_events``, ``iterate_events``,
  ``concatenate_events``, ``slice_events``;
* ``writer``: ``write_events``, ``default_compression``,
  ``branch_compression``, ``INCOMPRESSIBLE_BRANCHES``;
* ``jagged``: ``make_jagged_record``; ``schema``: ``COLLECTIONS``.

The direct basket reader is in ``baskets``, one chunk's reading and checks in
``chunks``, the branch validation in ``read_plan``, the threads in ``threads``.
"""

from __future__ import annotations

from .aliases import ALIAS_SCHEMA, MEV_SUSPICION_GEV, load_aliases
from .files import expand_paths, read_meta
from .jagged import make_jagged_record
from .reader import Events, concatenate_events, iterate_events, read_events, slice_events
from .schema import COLLECTIONS
from .writer import INCOMPRESSIBLE_BRANCHES, branch_compression, default_compression, write_events

__all__ = [
    "Events",
    "read_events",
    "iterate_events",
    "read_meta",
    "write_events",
    "default_compression",
    "branch_compression",
    "expand_paths",
    "load_aliases",
    "ALIAS_SCHEMA",
    "MEV_SUSPICION_GEV",
    "COLLECTIONS",
    "INCOMPRESSIBLE_BRANCHES",
    "make_jagged_record",
    "concatenate_events",
    "slice_events",
]

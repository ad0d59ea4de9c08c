"""Events: the ntuple schema, reading and writing ROOT files, the detector model, pre-selection and diphoton candidates.

The first stage of the chain: ``read_events`` / ``iterate_events`` turn ROOT
files (bumphunt's own or basf2-like ones through an alias map) into columnar
``Events``, ``preselect`` keeps e+e- -> 3 photon candidates with a ``CutFlow``,
``save_three_photon`` / ``load_three_photon`` store the result, and
``diphoton_candidates`` forms the three photon pairs of each event.

Modules, in the order of the chain:

========================  ==================================================================
``schema``                branch names, dtypes, units, process codes, tree and metadata keys
``detector``              calorimeter regions, photon ``Resolution``, ``TrackResolution``
``files``                 finding and opening ROOT files with clear errors, the metadata
``aliases``               alias maps for other ntuples (e.g. basf2), MeV -> GeV
``read_plan``             which branches to read, checked against the schema
``baskets``               the fast direct basket reader (the only user of uproot internals)
``chunks``                reading one chunk of entries, NaN/inf and unit checks
``reader``                ``Events``, ``read_events``, ``iterate_events``
``writer``                ``write_events`` and the compression policy of every writer
``jagged``                awkward jagged arrays <-> flat numpy arrays with offsets
``threads``               the worker threads (one ``WorkerThreads`` object)
``cuts``                  ``PreselectionCuts`` and their YAML configuration
``cutflow``               ``CutFlow``: counts and weighted yields per cut and process
``preselection``          ``preselect``, ``preselect_files``
``three_photon``          three-photon files: save, load, combine
``candidates``            ``diphoton_candidates``
``io``                    transitional re-exports of the former reading/writing module
========================  ==================================================================

Importing this package imports numpy only; uproot and awkward are imported by
the functions that need them.
"""

from __future__ import annotations

from .aliases import ALIAS_SCHEMA, load_aliases
from .candidates import PAIRS, diphoton_candidates
from .cutflow import CutFlow
from .cuts import PRESELECTION_SCHEMA, PreselectionCuts
from .detector import CDC_THETA_MAX, CDC_THETA_MIN, REGION_NAMES, Resolution, TrackResolution, ecl_region
from .files import expand_paths, read_meta
from .preselection import NEEDED_FIELDS, PreselectedFile, preselect, preselect_files
from .reader import Events, concatenate_events, iterate_events, read_events, slice_events
from .schema import (
    COLLECTIONS,
    COV_FIELDS,
    EVENT_BRANCHES,
    GAMMA_FIELDS,
    META_KEY,
    PROCESS_CODES,
    PROCESS_NAMES,
    TRACK_FIELDS,
    TREE_NAME,
    Branch,
)
from .threads import WORKER_THREADS, WorkerThreads
from .three_photon import PHOTON_KEYS, combine_three_photon, load_three_photon, save_three_photon
from .writer import default_compression, write_events

__all__ = [
    # reading and writing
    "Events",
    "read_events",
    "iterate_events",
    "concatenate_events",
    "slice_events",
    "read_meta",
    "expand_paths",
    "load_aliases",
    "ALIAS_SCHEMA",
    "write_events",
    "default_compression",
    # pre-selection and three-photon files
    "preselect",
    "preselect_files",
    "PreselectedFile",
    "PreselectionCuts",
    "PRESELECTION_SCHEMA",
    "CutFlow",
    "NEEDED_FIELDS",
    "PHOTON_KEYS",
    "save_three_photon",
    "load_three_photon",
    "combine_three_photon",
    # candidates
    "diphoton_candidates",
    "PAIRS",
    # detector
    "Resolution",
    "TrackResolution",
    "ecl_region",
    "REGION_NAMES",
    "CDC_THETA_MIN",
    "CDC_THETA_MAX",
    # schema
    "Branch",
    "EVENT_BRANCHES",
    "GAMMA_FIELDS",
    "TRACK_FIELDS",
    "COLLECTIONS",
    "COV_FIELDS",
    "PROCESS_CODES",
    "PROCESS_NAMES",
    "TREE_NAME",
    "META_KEY",
    # threads
    "WorkerThreads",
    "WORKER_THREADS",
]

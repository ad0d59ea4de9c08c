"""Transitional import path: the names of the former ``core`` module, now in their own modules.

Old path ``bumphunt.selection.core.X`` -> new home:

- ``punzi_smin``, ``punzi_sensitivity``, ``asimov_significance`` -> ``figures_of_merit``
- ``default_mass_resolution``, ``mass_grid``, ``choose_heldout`` -> ``masses``
- ``PunziData``, ``prepare_training_data``, ``window_sums`` -> ``training_data``
- ``efficiency_and_background``, ``sensitivity_per_mass``, ``WorkingPoint``, ``scan_working_point``,
  ``cut_based_mask``, ``optimise_cut_based``, ``generalisation_table`` -> ``working_point``
- ``load_selector``, ``apply`` -> ``selector``
- ``load_samples`` -> ``samples``
- ``basic_candidates`` -> ``bumphunt.events.candidates.diphoton_candidates`` (a thin alias here)

Removed once every caller imports the new paths.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from numpy.typing import NDArray

from ..errors import InputError
from ..events.candidates import diphoton_candidates
from ..kinematics import Beam
from .figures_of_merit import asimov_significance, punzi_sensitivity, punzi_smin
from .masses import choose_heldout, default_mass_resolution, mass_grid
from .samples import load_samples
from .selector import apply, load_selector
from .training_data import PunziData, prepare_training_data, window_sums
from .working_point import (
    WorkingPoint,
    cut_based_mask,
    efficiency_and_background,
    generalisation_table,
    optimise_cut_based,
    scan_working_point,
    sensitivity_per_mass,
)

__all__ = [
    "punzi_smin",
    "punzi_sensitivity",
    "asimov_significance",
    "default_mass_resolution",
    "mass_grid",
    "choose_heldout",
    "basic_candidates",
    "PunziData",
    "prepare_training_data",
    "window_sums",
    "efficiency_and_background",
    "sensitivity_per_mass",
    "scan_working_point",
    "WorkingPoint",
    "cut_based_mask",
    "optimise_cut_based",
    "generalisation_table",
    "apply",
    "load_selector",
    "load_samples",
]


def basic_candidates(events: Mapping[str, Any], *, beam: Beam | None = None, use_fitted: bool | str = "auto") -> dict[str, NDArray]:
    """Transitional name of ``bumphunt.events.candidates.diphoton_candidates`` (three candidates per event).

    Same rows, pair indices, ``mgg`` (fitted photons when present and
    ``use_fitted`` allows), ``truth_match``, ``process``, ``weight`` and
    ``mc_ma`` as the former selector-only builder, plus the CM columns of
    ``diphoton_candidates``; ``process`` and ``weight`` are still required.
    """
    for key in ("E", "theta", "phi", "process", "weight"):
        if key not in events:
            raise InputError(f"three-photon events: missing field {key!r}")
    return diphoton_candidates(events, beam=beam, use_fitted=use_fitted)

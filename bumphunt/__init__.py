"""bumphunt: search for a narrow diphoton resonance in e+e- -> gamma a, a -> gamma gamma.

The event-level stages, one subpackage each, in the order of the chain:
``toymc`` (toy Monte Carlo), ``events`` (ntuples, pre-selection, diphoton
candidates), ``kinfit`` (the 4C kinematic fit), ``selection`` (the Punzi
net); ``chain`` strings them together, ``demo`` runs everything on toy data
and ``cli`` is the command line. ``kinematics`` (beams and four-vectors) is
shared by all of them.

The facade is lazy: submodules (and TensorFlow, which some of them use) are
imported on first attribute access, so ``import bumphunt`` stays cheap.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from signal_models._common.version import __version__

__all__ = [
    "__version__",
    "kinematics",
    "errors",
    "events",
    "toymc",
    "kinfit",
    "selection",
    "chain",
    "demo",
]

_SUBMODULES = set(__all__) - {"__version__"}


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        module = import_module(f"bumphunt.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module 'bumphunt' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)

"""Settings of the demo and what every step hands back: a typed record of its files and its report section."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..kinematics import Beam

__all__ = ["DemoSettings", "StepOutput", "DEFAULT_LUMI_FB", "SMALL_LUMI_FB", "SELECTOR_SIZES", "GRID_RANGE", "sample_kind"]

#: Default integrated luminosity of the demo toy samples (fb^-1).
DEFAULT_LUMI_FB = 0.1
#: Luminosity used with ``small=True`` (tests, docs).
SMALL_LUMI_FB = 0.02
#: Selector training sizes (full / small). The demo shows the chain: these are deliberately modest
#: (a physics-grade training uses ~200 masses, thousands of events each and hundreds of Punzi epochs).
SELECTOR_SIZES: dict[str, dict[str, Any]] = {
    "full": {"n_masses": 24, "n_per_mass": 1500, "heldout": 3, "pretrain_epochs": 10, "punzi_epochs": 80, "patience": 30},
    "small": {"n_masses": 6, "n_per_mass": 500, "heldout": 0, "pretrain_epochs": 3, "punzi_epochs": 15, "patience": 10},
}
#: Mass range (GeV) of the signal grid the selector and the signal model are built from.
GRID_RANGE = (0.2, 9.6)


@dataclass(frozen=True)
class DemoSettings:
    """What the demo runs on.

    Attributes
    ----------
    out_dir : Path
        Root folder of all outputs.
    seed : int
        Seed of the toy MC and every later random step.
    lumi_fb : float
        Integrated luminosity of the toy samples (fb^-1).
    small : bool
        Small sizes (tests, docs).
    beam : Beam
        The collider (default Belle II).
    """

    out_dir: Path
    seed: int = 1
    lumi_fb: float = DEFAULT_LUMI_FB
    small: bool = False
    beam: Beam = field(default_factory=Beam.belle2)

    def path(self, *parts: str) -> Path:
        """A file path under ``out_dir`` (parent folders created)."""
        p = self.out_dir.joinpath(*parts)
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    def folder(self, *parts: str) -> Path:
        """A folder under ``out_dir`` (created)."""
        p = self.out_dir.joinpath(*parts)
        p.mkdir(parents=True, exist_ok=True)
        return p

    def relative(self, path: Path) -> str:
        """``path`` relative to ``out_dir`` when it lies below it (for the report)."""
        return str(path.relative_to(self.out_dir)) if path.is_relative_to(self.out_dir) else str(path)

    @property
    def sizes(self) -> dict[str, Any]:
        """The selector training sizes of this run (``SELECTOR_SIZES``)."""
        return SELECTOR_SIZES["small" if self.small else "full"]


@dataclass(frozen=True)
class StepOutput:
    """Files a demo step wrote and its section of the report.

    Attributes
    ----------
    products : dict
        Name -> file (returned by ``run_demo``; names starting with ``plot_`` are plots).
    section : str
        Markdown section of ``report.md``.
    summary : str
        One line for the report's summary ("" for none).
    """

    products: dict[str, Path] = field(default_factory=dict)
    section: str = ""
    summary: str = ""


def sample_kind(name: str) -> str:
    """``"signal"``, ``"data"``, ``"control"`` (mu mu gamma) or ``"background"`` from a toy-MC sample name."""
    if name.startswith("signal"):
        return "signal"
    if name == "data":
        return "data"
    if name == "mumug":
        return "control"
    return "background"

"""The plot style (mplhep, ROOT-like) and figure helpers used by every package's plots.

Plots are written to files (PNG by default); library code never calls
``plt.show``. matplotlib and mplhep are imported inside the functions.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

__all__ = ["style", "new_figure", "save", "label", "DEFAULT_LABEL"]

#: Experiment label drawn on plots (toy MC unless the user says otherwise).
DEFAULT_LABEL = "bumphunt toy MC"


@contextmanager
def style() -> Iterator[None]:
    """Context manager applying the package's mplhep style (ROOT-like)."""
    import matplotlib.pyplot as plt
    import mplhep

    with plt.style.context(mplhep.style.ROOT):
        yield


def new_figure(*, ratio: bool = False, figsize: tuple[float, float] = (8.0, 6.0)) -> tuple[Any, Any]:
    """A figure with one axes, or main + ratio/pull panel when ``ratio`` is True.

    Returns ``(fig, ax)`` or ``(fig, (ax_main, ax_ratio))``.
    """
    import matplotlib.pyplot as plt

    if ratio:
        fig, axes = plt.subplots(2, 1, figsize=figsize, sharex=True, gridspec_kw={"height_ratios": [3, 1], "hspace": 0.05})
        return fig, tuple(axes)
    fig, ax = plt.subplots(figsize=figsize)
    return fig, ax


def label(ax: Any, *, text: str = DEFAULT_LABEL, lumi_fb: float | None = None, sqrt_s: float | None = None) -> None:
    """Draw the experiment label and, if given, luminosity (fb^-1) and sqrt(s) (GeV)."""
    parts = []
    if lumi_fb is not None:
        parts.append(f"$\\int L\\,dt = {lumi_fb:g}$ fb$^{{-1}}$")
    if sqrt_s is not None:
        parts.append(f"\u221as = {sqrt_s:.2f} GeV")
    ax.set_title(text, loc="left", fontsize="medium")
    if parts:
        ax.set_title(", ".join(parts), loc="right", fontsize="small")


def save(fig: Any, path: str | Path, *, dpi: int = 110) -> Path:
    """Save and close a figure, creating parent folders; returns the path."""
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    logger.info("wrote plot %s", path)
    return path

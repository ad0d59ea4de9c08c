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

__all__ = ["style", "new_figure", "save", "label", "DEFAULT_LABEL", "place_legend", "legend_overlaps", "texts_inside_figure",
           "axis_labels_fit", "fit_axis_labels"]

#: Experiment label drawn on plots (toy MC unless the user says otherwise).
DEFAULT_LABEL = "bumphunt toy MC"


@contextmanager
def style() -> Iterator[None]:
    """Context manager applying the package's mplhep style (ROOT-like)."""
    import matplotlib.pyplot as plt
    import mplhep

    # mplhep's "custom" mathtext set leaves calligraphic letters to a generic "cursive" family that few
    # machines have (a findfont warning per figure); point it at the sans-serif font instead
    with plt.style.context([mplhep.style.ROOT, {"mathtext.cal": "sans:italic"}]):
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


#: legend positions tried in order by ``place_legend``
_LEGEND_LOCATIONS = ("upper left", "upper right", "lower left", "lower right", "upper center", "lower center", "center left",
                     "center right")


def _display_points(ax: Any, xy: Any) -> Any:
    """Finite (x, y) data points in display coordinates, shape (n, 2)."""
    import numpy as np

    x, y = (np.asarray(v, dtype=float).ravel() for v in xy)
    ok = np.isfinite(x) & np.isfinite(y)
    if ax.get_xscale() == "log":
        ok &= x > 0
    if ax.get_yscale() == "log":
        ok &= y > 0
    if not ok.any():
        return np.zeros((0, 2))
    return ax.transData.transform(np.column_stack([x[ok], y[ok]]))


def legend_overlaps(ax: Any, legend: Any, curves: Any, *, draw: bool = True) -> bool:
    """Whether ``legend`` covers any point of ``curves`` (a list of (x, y) arrays in data units).

    ``draw=False`` skips drawing the figure first: for a legend moved inside
    axes whose layout and limits are already drawn (the legend's box follows
    from its location without a new draw).
    """
    import numpy as np

    fig = ax.figure
    if draw:
        fig.canvas.draw()
    box = legend.get_window_extent(fig.canvas.get_renderer())
    for xy in curves:
        pts = _display_points(ax, xy)
        inside = (pts[:, 0] >= box.x0) & (pts[:, 0] <= box.x1) & (pts[:, 1] >= box.y0) & (pts[:, 1] <= box.y1)
        if np.any(inside):
            return True
    return False


def place_legend(ax: Any, curves: Any, *, headroom_steps: int = 4, **kwargs: Any) -> Any:
    """A legend inside the axes where it covers none of ``curves`` (list of (x, y) data arrays).

    The usual corners and sides are tried in turn; when none is free, the top
    of the y axis is raised (by a quarter of the range, or of the decades on a
    log axis) and the positions are tried again, ``headroom_steps`` times; as a
    last resort the legend goes outside the axes on the right. Every given
    point is checked; the keyword arguments go to ``ax.legend``.
    """
    for step in range(headroom_steps + 1):
        if step:
            lo, hi = ax.get_ylim()
            if ax.get_yscale() == "log":
                ax.set_ylim(lo, hi * (hi / lo) ** 0.25)
            else:
                ax.set_ylim(lo, hi + 0.25 * (hi - lo))
        # one draw settles the layout and limits; a legend inside the axes does not change them
        ax.figure.canvas.draw()
        for loc in _LEGEND_LOCATIONS:
            legend = ax.legend(loc=loc, **kwargs)
            if not legend_overlaps(ax, legend, curves, draw=False):
                return legend
    return ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, **kwargs)


def texts_inside_figure(fig: Any) -> bool:
    """Whether everything ``fig`` draws (labels, tick labels, titles, legends) lies inside the figure canvas."""
    fig.canvas.draw()
    tight = fig.get_tightbbox(fig.canvas.get_renderer())
    frame = fig.bbox_inches
    tol = 0.01  # inches
    return tight.x0 >= frame.x0 - tol and tight.y0 >= frame.y0 - tol and tight.x1 <= frame.x1 + tol and tight.y1 <= frame.y1 + tol


def _label_fits(ax: Any, axis: str, renderer: Any) -> bool:
    """Whether the x (``axis="x"``) or y label of ``ax`` is no longer than the axes' width or height."""
    text = ax.xaxis.label if axis == "x" else ax.yaxis.label
    if not text.get_visible() or not text.get_text():
        return True
    span, frame = text.get_window_extent(renderer), ax.get_window_extent(renderer)
    tol = 0.5  # pixels
    if axis == "x":
        return span.x0 >= frame.x0 - tol and span.x1 <= frame.x1 + tol
    return span.y0 >= frame.y0 - tol and span.y1 <= frame.y1 + tol


def axis_labels_fit(*axes: Any) -> bool:
    """Whether the axis labels of ``axes`` stay beside their axes' frames (x label within its width, y label within its height)."""
    if not axes:
        return True
    fig = axes[0].figure
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    return all(_label_fits(ax, axis, renderer) for ax in axes for axis in ("x", "y"))


def fit_axis_labels(*axes: Any, min_size: float = 8.0) -> None:
    """Shrink the font of each axis label of ``axes`` (one figure) that is longer than its axes' side until it fits.

    A label longer than the frame runs past the axes' ends (and off a saved
    figure); the shrink is proportional to the overflow, repeated until every
    label fits or is down to ``min_size`` points.
    """
    if not axes:
        return
    fig = axes[0].figure
    for _ in range(5):
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        shrunk = False
        for ax in axes:
            for axis in ("x", "y"):
                text = ax.xaxis.label if axis == "x" else ax.yaxis.label
                if _label_fits(ax, axis, renderer) or text.get_fontsize() <= min_size:
                    continue
                span, frame = text.get_window_extent(renderer), ax.get_window_extent(renderer)
                ratio = frame.width / span.width if axis == "x" else frame.height / span.height
                text.set_fontsize(max(min_size, 0.98 * ratio * text.get_fontsize()))
                shrunk = True
        if not shrunk:
            return

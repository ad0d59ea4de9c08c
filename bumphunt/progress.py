"""Progress bars for long work: rich bars with rate and ETA on a terminal, silent otherwise.

The bar itself is ``scans.execution.progress_bar`` (the lowest layer with long
loops); this module adds an iterator form for bumphunt's stages.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")

__all__ = ["progress", "enabled"]


def enabled(show: bool | None = None) -> bool:
    """Whether to draw bars: ``show`` if given, else only when stderr is a terminal."""
    if show is not None:
        return show
    return sys.stderr.isatty()


def progress(items: Iterable[T], *, total: int | None = None, description: str = "", show: bool | None = None) -> Iterator[T]:
    """Iterate over ``items`` with a progress bar (rate and ETA) when enabled."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    if not enabled(show) or not total:
        yield from items
        return
    from scans.execution import progress_bar

    with progress_bar(total, description=description, show=True) as advance:
        for item in items:
            yield item
            advance(1)

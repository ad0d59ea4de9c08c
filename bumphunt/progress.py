"""Progress bars for long work: rich bars on a terminal, silent otherwise."""

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
    """Iterate over ``items`` with a rich progress bar (rate and ETA) when enabled."""
    if not enabled(show):
        yield from items
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TaskProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, transient=False) as bar:
        task = bar.add_task(description, total=total if total is not None else (len(items) if hasattr(items, "__len__") else None))  # type: ignore[arg-type]
        for item in items:
            yield item
            bar.advance(task)

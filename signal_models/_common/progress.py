"""Progress bars for long loops: rich bars with rate and ETA on a terminal, silent otherwise.

``progress_bar`` yields an ``advance(n)`` callable; ``progress`` wraps an
iterable. Neither draws anything when stderr is not a terminal (unless
``show=True``), so logs and CI output stay clean.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

T = TypeVar("T")

__all__ = ["progress_bar", "progress", "enabled"]


def enabled(show: bool | None = None) -> bool:
    """Whether to draw bars: ``show`` if given, else only when stderr is a terminal."""
    if show is not None:
        return show
    return sys.stderr.isatty()


@contextmanager
def progress_bar(total: int, *, description: str, show: bool | None = None) -> Iterator[Callable[[int], None]]:
    """A rich progress bar with rate and ETA; yields ``advance(n)``. Off when stderr is not a terminal."""
    if not enabled(show) or total == 0:
        yield lambda n=1: None
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

    class _Rate(TextColumn):
        def render(self, task: Any) -> Any:  # items per second
            from rich.text import Text

            speed = task.finished_speed or task.speed
            return Text(f"{speed:.2f}/s" if speed else "  ?/s")

    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        _Rate(""),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        transient=False,
    ) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n=1: bar.advance(task, n)


def progress(items: Iterable[T], *, total: int | None = None, description: str = "", show: bool | None = None) -> Iterator[T]:
    """Iterate over ``items`` with a progress bar (rate and ETA) when enabled."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    if not enabled(show) or not total:
        yield from items
        return
    with progress_bar(total, description=description, show=True) as advance:
        for item in items:
            yield item
            advance(1)

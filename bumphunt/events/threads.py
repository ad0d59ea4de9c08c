"""The worker threads of the events subpackage, owned by one object.

Reading and pre-selection spend their time in code that releases the GIL
(decompression, numpy), so they use threads:

* ``io``: reads the branches of a chunk in parallel (one task per branch);
* ``prefetch``: one thread reading the next chunk of ``iterate_events`` while
  the caller works on the current one (its branch reads go to ``io``);
* ``preselection``: pre-selects event ranges of a large chunk in parallel.

``WORKER_THREADS`` (a ``WorkerThreads``) serves the whole subpackage. Creating
it starts nothing: each pool is created on first use and lives until
``shutdown`` (after which the next use creates it again). The pools are
separate so that a task of one never waits for a free thread of a pool its own
caller occupies.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from concurrent.futures import ThreadPoolExecutor

logger = logging.getLogger(__name__)

__all__ = ["WorkerThreads", "WORKER_THREADS"]


def _default_workers() -> int:
    """Threads of a parallel pool: the cores, at most 4."""
    return max(1, min(4, os.cpu_count() or 1))


class WorkerThreads:
    """Thread pools created on first use, shut down together.

    Parameters
    ----------
    max_workers : int, optional
        Threads of the ``io`` and ``preselection`` pools (default: the
        number of cores, at most 4). The ``prefetch`` pool has one thread.
    """

    def __init__(self, *, max_workers: int | None = None) -> None:
        self._max_workers = max_workers
        self._pools: dict[str, ThreadPoolExecutor] = {}
        self._lock = threading.Lock()

    def _get(self, name: str, workers: int) -> ThreadPoolExecutor:
        pool = self._pools.get(name)
        if pool is None:
            from concurrent.futures import ThreadPoolExecutor

            with self._lock:
                pool = self._pools.get(name)
                if pool is None:
                    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"bumphunt-{name}")
                    self._pools[name] = pool
                    logger.debug("started the %r pool (%d threads)", name, workers)
        return pool

    def io(self) -> ThreadPoolExecutor:
        """Pool reading branches (decompression releases the GIL)."""
        return self._get("io", self._max_workers or _default_workers())

    def prefetch(self) -> ThreadPoolExecutor:
        """One thread reading the next chunk in the background."""
        return self._get("prefetch", 1)

    def preselection(self) -> ThreadPoolExecutor:
        """Pool pre-selecting event ranges (numpy releases the GIL)."""
        return self._get("presel", self._max_workers or _default_workers())

    @property
    def started(self) -> tuple[str, ...]:
        """Names of the pools created so far (and not shut down)."""
        return tuple(self._pools)

    def shutdown(self, *, wait: bool = True) -> None:
        """Shut every pool down (waiting for running tasks if ``wait``); later use starts new ones."""
        with self._lock:
            pools, self._pools = self._pools, {}
        for pool in pools.values():
            pool.shutdown(wait=wait)


#: The pools of the events subpackage (nothing is started until a pool is used).
WORKER_THREADS = WorkerThreads()

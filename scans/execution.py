"""Running scan blocks: in-process, on a local process pool, or on a Dask cluster.

Every job is a picklable ``(function, payload)``; the function is pure (its
result depends only on the payload, seeds included), so the same jobs give
the same results whichever executor runs them and in whatever order. Results
are handed to ``on_done`` in the calling process as they finish (the
checkpointed pipeline, ``scans.pipeline``, saves them there).
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from signal_models._common.progress import progress_bar

logger = logging.getLogger(__name__)

__all__ = ["Execution", "run_jobs", "die_with_parent"]

J = TypeVar("J")
R = TypeVar("R")


@dataclass(frozen=True)
class Execution:
    """Where the jobs of a scan run.

    Attributes
    ----------
    workers : int
        Local worker processes (1 = in this process); with ``dask = "local"``
        the number of worker processes of the local cluster.
    dask : str, distributed.Client or None
        Scheduler address (``tcp://host:port``), ``"local"`` or a Client;
        None = no Dask.
    show_progress : bool or None
        Progress bars; None = only on a terminal.
    """

    workers: int = 1
    dask: Any = None
    show_progress: bool | None = None

    @classmethod
    def from_config(
        cls, section: Mapping[str, Any], *, workers: int | None = None, dask: Any = None, show_progress: bool | None = None
    ) -> Execution:
        """The ``execution`` section of a scan configuration, overridden by the arguments that are not None."""
        return cls(
            workers=section["workers"] if workers is None else workers,
            dask=section["dask"] if dask is None else dask,
            show_progress=section["progress"] if show_progress is None else show_progress,
        )


def _dask_client(dask: Any, workers: int) -> tuple[Any, list[Any]]:
    """A distributed.Client for ``dask`` (address, 'local' or an existing Client) and objects to close."""
    import distributed

    if isinstance(dask, distributed.Client):
        return dask, []
    if dask == "local":
        # the scheduler and workers log every connection at INFO; keep the scan output readable
        logging.getLogger("distributed").setLevel(max(logging.WARNING, logging.getLogger().level))
        cluster = distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None)
        client = distributed.Client(cluster)
        return client, [client, cluster]
    client = distributed.Client(dask)
    return client, [client]


def run_jobs(
    func: Callable[[J], R],
    payloads: Mapping[int, J],
    *,
    on_done: Callable[[int, R], None],
    workers: int = 1,
    dask: Any = None,
    description: str = "scan",
    show_progress: bool | None = None,
) -> None:
    """Run ``func(payload)`` for every payload and call ``on_done(key, result)`` in this process.

    Parameters
    ----------
    func : callable
        Module-level (picklable) function.
    payloads : mapping
        Job key -> payload (picklable).
    on_done : callable
        ``on_done(key, result)``, called in this process as each job finishes.
    workers : int
        Local worker processes (1 = run in this process). Ignored with ``dask``.
    dask : str or distributed.Client, optional
        Scheduler address (``tcp://host:port``), ``"local"`` (start a
        LocalCluster with ``workers`` processes) or a Client.
    description : str
        Label of the progress bar and of the Dask task keys.
    show_progress : bool, optional
        Progress bar (default: only on a terminal).
    """
    keys = sorted(payloads)
    if not keys:
        return
    with progress_bar(len(keys), description=description, show=show_progress) as advance:
        if dask is not None:
            from distributed import as_completed

            client, to_close = _dask_client(dask, workers)
            try:
                futures = {client.submit(func, payloads[k], pure=False, key=f"{description}-{k}-{id(payloads)}"): k for k in keys}
                for fut in as_completed(futures):
                    on_done(futures[fut], fut.result())
                    advance(1)
            finally:
                for obj in to_close:
                    obj.close()
        elif workers <= 1 or len(keys) == 1:
            for k in keys:
                on_done(k, func(payloads[k]))
                advance(1)
        else:
            _run_pool(func, payloads, keys, on_done=on_done, advance=advance, workers=workers)


def die_with_parent(parent_pid: int) -> None:
    """Worker initialiser: end this worker when the scan process that started it dies, even by SIGKILL.

    Linux: the kernel sends SIGKILL on the parent's death (``prctl(PR_SET_PDEATHSIG)``);
    everywhere: a daemon thread checks once a second that the parent is still the
    same process and exits otherwise (a killed parent would else leave its workers,
    and multiprocessing's resource tracker, running for ever).
    """
    import threading
    import time

    if sys.platform.startswith("linux"):
        try:
            import ctypes
            import signal

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG = 1
        except (OSError, AttributeError):  # no libc prctl: the watcher below still ends the worker
            pass
    if os.getppid() != parent_pid:  # the parent died before the call above
        os._exit(1)

    def watch() -> None:
        while True:
            time.sleep(1.0)
            if os.getppid() != parent_pid:
                os._exit(1)

    threading.Thread(target=watch, name="bumphunt-parent-watch", daemon=True).start()


#: environment variables limiting the BLAS / OpenMP threads of worker processes
_THREAD_ENV = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")


def _run_pool(
    func: Callable[[J], R],
    payloads: Mapping[int, J],
    keys: list[int],
    *,
    on_done: Callable[[int, R], None],
    advance: Callable[[int], None],
    workers: int,
) -> None:
    """Run jobs on a local pool of *spawned* worker processes with one BLAS/OpenMP thread each.

    Not forked: a fork after the parent used GNU OpenMP (numba kernels) kills
    the child, and forked workers would inherit multi-threaded OpenBLAS and
    oversubscribe the cores. As with any spawned pool, a script calling the
    scan must guard its top level with ``if __name__ == "__main__":``.
    """
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    saved = {k: os.environ.get(k) for k in _THREAD_ENV}
    os.environ.update({k: "1" for k in _THREAD_ENV})  # read by the workers when they start
    try:
        with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"), initializer=die_with_parent,
                                 initargs=(os.getpid(),)) as pool:
            # at most 2 jobs per worker in flight, so large payloads are not all pickled at once
            pending: dict[Any, int] = {}
            queue = list(keys)
            while queue or pending:
                while queue and len(pending) < 2 * workers:
                    k = queue.pop(0)
                    pending[pool.submit(func, payloads[k])] = k
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    k = pending.pop(fut)
                    on_done(k, fut.result())
                    advance(1)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v

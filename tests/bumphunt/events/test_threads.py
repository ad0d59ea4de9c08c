"""bumphunt.events.threads: pools created on first use, shut down on request; importing starts no thread."""

from __future__ import annotations

import subprocess
import sys
import threading

from bumphunt.events.threads import WORKER_THREADS, WorkerThreads


def test_pools_are_created_on_first_use_and_shut_down() -> None:
    workers = WorkerThreads(max_workers=2)
    assert workers.started == ()
    io = workers.io()
    assert workers.io() is io and workers.started == ("io",)
    assert io.submit(threading.current_thread).result().name.startswith("bumphunt-io")
    assert workers.prefetch().submit(lambda: 1 + 1).result() == 2
    assert sorted(workers.started) == ["io", "prefetch"]
    workers.shutdown()
    assert workers.started == ()
    again = workers.io()  # usable again after a shutdown: a new pool
    assert again is not io and again.submit(lambda: 3).result() == 3
    workers.shutdown()


def test_importing_the_subpackage_starts_no_thread_and_no_uproot() -> None:
    code = ("import sys, threading, bumphunt.events, bumphunt.events.reader, bumphunt.events.preselection;"
            "from bumphunt.events.threads import WORKER_THREADS;"
            "assert threading.active_count() == 1, threading.enumerate();"
            "assert WORKER_THREADS.started == ();"
            "assert not {'uproot', 'awkward'} & set(sys.modules), sorted({'uproot', 'awkward'} & set(sys.modules))")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_one_instance_serves_the_subpackage() -> None:
    import bumphunt.events as events

    assert events.WORKER_THREADS is WORKER_THREADS

"""The checkpointed pipeline: jobs -> run (pool or Dask) -> checkpoint -> results in job order.

The observed scan (one job per block of mass points) and the
look-elsewhere toys (one job per toy scan) run through the same steps:

1. results of jobs finished in an earlier run are read from the checkpoint
   (the checkpoint store has already refused a run with another
   configuration, input or plan);
2. the missing jobs run on the executor (``scans.execution.run_jobs``);
3. every result is saved as soon as it arrives, atomically, as
   ``<kind>_<index>.json``;
4. the results are returned in job order, for the caller to merge.

Each result is put through the JSON round trip of a checkpoint file whether
or not a checkpoint is kept, so a resumed scan and an uninterrupted one see
bit-identical numbers.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from .checkpoint import CheckpointStore
from .errors import CheckpointError
from .execution import Execution, run_jobs

logger = logging.getLogger(__name__)

__all__ = ["CheckpointedResult", "Stage", "run_checkpointed"]


class CheckpointedResult(Protocol):
    """A job result that can be written to and read from a checkpoint file."""

    def to_json(self) -> dict[str, Any]: ...


J = TypeVar("J")
R = TypeVar("R", bound=CheckpointedResult)


@dataclass(frozen=True)
class Stage(Generic[J, R]):
    """One kind of job of a scan.

    Attributes
    ----------
    kind : str
        Name of the checkpoint files (``<kind>_<index>.json``), e.g. ``"block"``.
    description : str
        Label of the progress bar.
    work : callable
        Module-level function ``work(job) -> result`` run in the workers.
    from_json : callable
        Reads a result back from its JSON form (``result.to_json()``).
    """

    kind: str
    description: str
    work: Callable[[J], R]
    from_json: Callable[[Mapping[str, Any]], R]

    def read(self, data: Mapping[str, Any], *, source: str) -> R:
        """A result from its JSON form; a malformed one is a ``CheckpointError`` naming ``source``."""
        try:
            return self.from_json(data)
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"{source}: damaged {self.kind} result ({type(exc).__name__}: {exc}); remove it and resume") from None


def run_checkpointed(stage: Stage[J, R], jobs: Sequence[J], *, store: CheckpointStore | None, execution: Execution) -> list[R]:
    """Run ``stage.work`` on every job not already in the checkpoint; return all results in job order.

    Parameters
    ----------
    stage : Stage
        What the jobs are and how their results are stored.
    jobs : sequence
        The jobs; job ``i`` is checkpointed as ``<kind>_<i>``.
    store : CheckpointStore or None
        Checkpoint of this scan (None: nothing is saved or resumed).
    execution : Execution
        Workers, Dask, progress bars. Never more worker processes than missing jobs are started.

    Returns
    -------
    list
        ``work(jobs[i])`` for every i, read back from its JSON form.
    """
    results: dict[int, R] = {}
    if store is not None:
        for i in sorted(store.done(stage.kind)):
            if i < len(jobs):
                results[i] = stage.read(store.load(stage.kind, i), source=str(store.path(stage.kind, i)))
        if results:
            logger.info("resume: %d of %d %s jobs already done", len(results), len(jobs), stage.kind)
    missing = {i: job for i, job in enumerate(jobs) if i not in results}

    def finished(i: int, result: R) -> None:
        data = json.loads(json.dumps(result.to_json(), allow_nan=False))  # the round trip of a checkpoint file
        if store is not None:
            store.save(stage.kind, i, data)
        results[i] = stage.read(data, source=f"{stage.kind} {i}")

    run_jobs(stage.work, missing, on_done=finished, workers=max(1, min(execution.workers, len(missing))), dask=execution.dask,
             description=stage.description, show_progress=execution.show_progress)
    return [results[i] for i in range(len(jobs))]

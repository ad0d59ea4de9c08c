"""Reading event ntuples: ROOT files with the schema of ``bumphunt.events.schema``.

``read_events`` reads files into memory, ``iterate_events`` chunk by chunk.
Both return ``Events``: event-level numpy arrays under the schema names
(``event``, ``process``, ``weight``, ``mc_ma``, ...) and jagged awkward records
``gamma`` (fields ``E``, ``theta``, ``phi``, ``time``, ``region``, ``cov_*``,
``mc_*``) and ``track`` (``px``, ``py``, ``pz``, ``charge``, ``dr``, ``dz``).

Everything is validated up front, so that a bad input stops with a clear
``InputError`` / ``SchemaError`` naming the file and the branch, never with a
traceback from inside uproot:

* missing file, a file that is not ROOT, a truncated or corrupt file
  (``files``);
* missing tree, missing required branch, a branch of the wrong kind (scalar
  instead of jagged) or dtype (e.g. a float ``process``) (``read_plan``);
* NaN or infinite values, energies that look like MeV when no unit was set
  (``chunks``);
* an empty tree (an error, or skipped with a warning with ``allow_empty=True``).

Other ntuples (e.g. from basf2) are read through an alias map (``aliases``).

Speed
-----
Files are memory-mapped; branches of plain numbers are read directly from
their baskets (``baskets``), one thread per branch; ``iterate_events`` reads
the next chunk in the background while the caller works on the current one.
Chunks of 1e5 to 3e5 events are the fastest (fresh memory for bigger ones
costs page faults); ``benchmarks/toymc.py`` measures it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError, SchemaError
from .aliases import load_aliases, resolve_energy_unit
from .chunks import read_chunk
from .files import corrupt_file_error, expand_paths, meta_from_file, open_root_file
from .read_plan import ReadPlan
from .schema import COLLECTIONS, TREE_NAME
from .threads import WORKER_THREADS

logger = logging.getLogger(__name__)

__all__ = ["Events", "read_events", "iterate_events", "concatenate_events", "slice_events", "open_tree", "FILL_VALUES"]


class Events(dict):
    """Columnar events: a dict of arrays plus the sample metadata.

    Keys are the schema names: event-level numpy arrays (``event``,
    ``process``, ``weight``, ``mc_ma``, ...) and jagged awkward records
    ``gamma`` and ``track``.

    Attributes
    ----------
    sample : dict
        The ``bumphunt_meta`` metadata of the file (process, xsec_pb,
        n_generated, lumi_fb, seed, beam, ...). When several files were read,
        the metadata of the first file plus ``"samples"``: the list of all.
    samples : list of dict
        Metadata of every file read, in order.
    files : list of str
        The files the events came from.
    """

    def __init__(self, arrays: Mapping[str, Any] | None = None, *, sample: Mapping[str, Any] | None = None,
                 samples: list[dict[str, Any]] | None = None, files: list[str] | None = None) -> None:
        super().__init__(arrays or {})
        self.samples: list[dict[str, Any]] = list(samples) if samples is not None else ([dict(sample)] if sample else [])
        self.sample: dict[str, Any] = dict(sample) if sample is not None else (dict(self.samples[0]) if self.samples else {})
        self.files: list[str] = list(files or [])

    @property
    def n_events(self) -> int:
        """Number of events."""
        for key in ("event", "weight", "process"):
            if key in self:
                return int(len(self[key]))
        for value in self.values():
            return int(len(value))
        return 0

    def __repr__(self) -> str:
        return f"Events(n_events={self.n_events}, keys={sorted(self)}, files={self.files})"


# --------------------------------------------------------------------------- opening a tree


def open_tree(path: Path, *, tree: str | None, cfg: Mapping[str, Any], fields: set[str] | None) -> tuple[Any, ReadPlan, dict[str, Any]]:
    """Open a file and validate its tree: (open file, ``ReadPlan``, sample metadata). Close the file when done.

    Raises
    ------
    InputError, SchemaError
        Unreadable file, no such tree, missing or ill-typed branches, bad metadata.
    """
    f = open_root_file(path)
    try:
        tree_name = tree or cfg.get("tree") or TREE_NAME
        try:
            present = tree_name in f
            keys = "" if present else ", ".join(sorted({k.split(";")[0] for k in f.keys(recursive=False)})) or "none"
        except Exception as exc:
            raise corrupt_file_error(path, "cannot list the file's contents", exc) from None
        if not present:
            raise SchemaError(f"{path}: no tree {tree_name!r} in the file (keys: {keys})")
        try:
            obj = f[tree_name]
        except Exception as exc:
            raise corrupt_file_error(path, f"cannot read tree {tree_name!r}", exc) from None
        if getattr(obj, "classname", "") != "TTree":
            raise SchemaError(f"{path}: {tree_name!r} is a {getattr(obj, 'classname', type(obj).__name__)}, expected a TTree")
        plan = ReadPlan(path, obj, cfg, fields)
        meta = meta_from_file(f, path)
    except BaseException:
        f.close()
        raise
    return f, plan, meta


@dataclass(frozen=True)
class _Job:
    """One chunk to read: entries [start, stop) of an open file."""

    path: Path
    plan: ReadPlan
    meta: dict[str, Any]
    start: int
    stop: int


def _chunk_jobs(paths: list[Path], tree: str | None, cfg: Mapping[str, Any], wanted: set[str] | None,
                step_size: int, allow_empty: bool) -> Iterator[_Job]:
    """Open and validate the files one after the other; each is closed when the next is asked for."""
    for path in paths:
        f, plan, meta = open_tree(path, tree=tree, cfg=cfg, fields=wanted)
        try:
            n = int(plan.tree.num_entries)
            if n == 0:
                if allow_empty:
                    logger.warning("%s: tree %r is empty; skipped", path, plan.tree.name)
                    continue
                raise InputError(f"{path}: tree {plan.tree.name!r} has no events (pass allow_empty=True to skip empty files)")
            for start in range(0, n, step_size):
                yield _Job(path, plan, meta, start, min(n, start + step_size))
        finally:
            f.close()


# --------------------------------------------------------------------------- reading


def iterate_events(
    paths: str | Path | Iterable[str | Path],
    *,
    tree: str | None = None,
    aliases: str | Path | Mapping[str, Any] | None = None,
    energy_unit: str | None = None,
    step_size: int = 1_000_000,
    fields: Iterable[str] | None = None,
    allow_empty: bool = False,
) -> Iterator[Events]:
    """Read events chunk by chunk (each chunk from one file).

    Parameters
    ----------
    paths : path, glob pattern or list of them
        ROOT files.
    tree : str, optional
        Tree name (default: the alias map's ``tree`` or ``events``).
    aliases : path or mapping, optional
        Alias map (see ``bumphunt.events.aliases``).
    energy_unit : {"GeV", "MeV"}, optional
        Unit of the energies in the file; overrides the alias map's. When
        unset, MeV-looking energies are an error.
    step_size : int
        Events per chunk.
    fields : iterable of str, optional
        Schema names to read (e.g. ``"event"``, ``"gamma_E"``); optional
        branches not listed are skipped, which makes reading faster.
        Default: everything present.
    allow_empty : bool
        Skip files with an empty tree with a warning instead of raising.

    Yields
    ------
    Events
        One chunk, with ``sample`` set to the file's metadata.

    Notes
    -----
    While the caller works on a chunk, the next one (possibly from the next
    file) is read in a background thread. Errors keep their order: a problem
    in a later chunk or file is raised only when that chunk is asked for.
    """
    cfg = load_aliases(aliases) if aliases is not None else {}
    unit = resolve_energy_unit(energy_unit, cfg)
    wanted = set(fields) if fields is not None else None
    if step_size < 1:
        raise ValueError(f"step_size must be positive, got {step_size}")
    paths_ = expand_paths(paths)
    jobs = _chunk_jobs(paths_, tree, cfg, wanted, step_size, allow_empty)

    def next_job() -> tuple[_Job | None, BaseException | None]:
        try:
            return next(jobs), None
        except StopIteration:
            return None, None
        except Exception as exc:  # raised where the chunk would have been yielded
            return None, exc

    # the next chunk is read in the background while the caller works on the current one
    ex = WORKER_THREADS.prefetch()
    job, error = next_job()
    future = ex.submit(read_chunk, job.plan, job.start, job.stop, energy_unit=unit, check_units=job.start == 0) if job else None
    try:
        while job is not None:
            assert future is not None
            arrays = future.result()
            current = job
            job, future = None, None
            if error is None:
                job, error = next_job()  # may close the previous file: its last read is done
                if job is not None:
                    future = ex.submit(read_chunk, job.plan, job.start, job.stop, energy_unit=unit, check_units=job.start == 0)
            yield Events(arrays, sample=current.meta, files=[str(current.path)])
        if error is not None:
            raise error
    finally:
        if future is not None:  # the caller stopped early: let the read finish before closing the file
            try:
                future.result()
            except Exception:
                pass
        jobs.close()


def read_events(
    paths: str | Path | Iterable[str | Path],
    *,
    tree: str | None = None,
    aliases: str | Path | Mapping[str, Any] | None = None,
    energy_unit: str | None = None,
    fields: Iterable[str] | None = None,
    allow_empty: bool = False,
    max_events: int | None = None,
) -> Events:
    """Read all events of one or many ROOT files into memory.

    Same options as ``iterate_events``; ``max_events`` stops after that many
    events. Several files are concatenated; ``Events.samples`` keeps each
    file's metadata.
    """
    chunks: list[Events] = []
    total = 0
    for chunk in iterate_events(paths, tree=tree, aliases=aliases, energy_unit=energy_unit,
                                step_size=max_events or 10**12, fields=fields, allow_empty=allow_empty):
        chunks.append(chunk)
        total += chunk.n_events
        if max_events is not None and total >= max_events:
            break
    if not chunks:
        raise InputError(f"no events in {paths}")
    out = concatenate_events(chunks)
    if max_events is not None and out.n_events > max_events:
        out = slice_events(out, 0, max_events)
    return out


# --------------------------------------------------------------------------- combining


#: Value of an optional event branch for files that do not have it (default -1, "not set").
FILL_VALUES: dict[str, float] = {"mc_decay_length": 0.0}


def concatenate_events(chunks: list[Events]) -> Events:
    """Concatenate chunks into one ``Events``.

    Optional branches present in only some chunks: event-level ones are
    filled with ``FILL_VALUES`` (default -1, the schema's "not set"); of the
    jagged records only the fields every chunk has are kept (with a warning).
    """
    import awkward as ak

    if len(chunks) == 1:
        return chunks[0]
    keys = list(dict.fromkeys(k for c in chunks for k in c))
    arrays: dict[str, Any] = {}
    for key in keys:
        if key in COLLECTIONS:
            if not all(key in c for c in chunks):
                missing = [f for c in chunks if key not in c for f in c.files]
                raise SchemaError(f"cannot combine files: {missing} have no {key!r} collection")
            common = [f for f in chunks[0][key].fields if all(f in c[key].fields for c in chunks)]
            dropped = {f for c in chunks for f in c[key].fields} - set(common)
            if dropped:
                logger.warning("combining files: %s fields %s are not in every file and are dropped", key, sorted(dropped))
            arrays[key] = ak.concatenate([c[key][common] for c in chunks])
        else:
            dtype = next(np.asarray(c[key]).dtype for c in chunks if key in c)
            fill = FILL_VALUES.get(key, -1)
            arrays[key] = np.concatenate([np.asarray(c[key]) if key in c else np.full(c.n_events, fill, dtype=dtype)
                                          for c in chunks])
    samples: list[dict[str, Any]] = []
    files: list[str] = []
    for c in chunks:
        for s, fn in zip(c.samples or [{}], c.files or [""]):
            if fn not in files:
                files.append(fn)
                samples.append(s)
    sample = dict(samples[0]) if samples else {}
    if len(samples) > 1:
        sample["samples"] = samples
    return Events(arrays, sample=sample, samples=samples, files=files)


def slice_events(events: Events, start: int, stop: int) -> Events:
    """Events ``start:stop`` (all keys; metadata kept)."""
    return Events({k: v[start:stop] for k, v in events.items()}, sample=events.sample, samples=events.samples, files=events.files)

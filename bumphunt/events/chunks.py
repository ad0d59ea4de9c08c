"""Reading one chunk (entries [start, stop)) of a tree into schema arrays, with the value checks.

The branches of a ``ReadPlan`` are read by the direct basket reader
(``baskets``) where it can, the others with uproot's public ``TTree.arrays``,
both on the ``io`` threads of ``WORKER_THREADS``. Then, per branch, single
passes check the values:

* NaN or infinite values (a sum detects them; only then are values looked at
  one by one) -> ``InputError`` naming the branch and the entry;
* jagged branches of one collection with different numbers of items per event
  -> ``SchemaError``;
* in the first chunk of a file, photon energies that look like MeV when no
  unit was set (median of a subsample of at most ``UNIT_SAMPLE`` photons above
  ``aliases.MEV_SUSPICION_GEV``) -> ``SchemaError``.

Energies in MeV are converted to GeV (``aliases.MEV_FACTORS``), ``-1`` "not
set" markers kept.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Executor, Future, wait
from typing import Any

import numpy as np

from ..errors import InputError, SchemaError
from .aliases import MEV_FACTORS, MEV_SUSPICION_GEV
from .baskets import BASKET_READER, FlatBranch
from .files import corrupt_file_error
from .jagged import jagged_parts, make_jagged_record
from .read_plan import ReadPlan
from .schema import COLLECTIONS, EVENT_BRANCHES
from .threads import WORKER_THREADS

logger = logging.getLogger(__name__)

__all__ = ["read_chunk", "read_branches", "read_with_uproot", "non_finite", "UNIT_SAMPLE"]

_EVENT_BY_NAME = {b.name: b for b in EVENT_BRANCHES}

#: Photons used for the MeV heuristic (a strided subsample of the first chunk).
UNIT_SAMPLE = 100_000


def _read_branch(plan: ReadPlan, src: str, start: int, stop: int) -> Any:
    try:
        return plan.tree[src].array(entry_start=start, entry_stop=stop, library="ak")
    except Exception as exc:  # decompression / basket errors: the file is damaged
        raise corrupt_file_error(plan.path, f"cannot read branch {src!r} entries [{start}, {stop})", exc) from None


class _TrackedExecutor(Executor):
    """Submits to a pool and keeps the futures, so that the caller can wait for every task it caused.

    ``TTree.arrays`` returns as soon as one basket fails, while other tasks may still read the
    memory-mapped file: the file must not be closed before they end.
    """

    def __init__(self, pool: Executor) -> None:
        self._pool = pool
        self.futures: list[Future[Any]] = []

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future = self._pool.submit(fn, *args, **kwargs)
        self.futures.append(future)
        return future

    def wait_all(self) -> None:
        wait(list(self.futures))


def read_with_uproot(plan: ReadPlan, srcs: list[str], start: int, stop: int) -> dict[str, Any]:
    """Read branches with uproot's public ``TTree.arrays`` (baskets decompressed in parallel threads).

    On failure, branches are re-read one by one so that the error names the broken one.

    Raises
    ------
    InputError
        A branch cannot be read: the file is truncated or corrupt.
    """
    if not srcs:
        return {}
    ex = _TrackedExecutor(WORKER_THREADS.io())
    try:
        return plan.tree.arrays(srcs, entry_start=start, entry_stop=stop, library="ak", how=dict,
                                decompression_executor=ex, interpretation_executor=ex)
    except Exception:
        ex.wait_all()  # no task may still read the file when it is closed after the error below
        return {src: _read_branch(plan, src, start, stop) for src in srcs}


def read_branches(plan: ReadPlan, srcs: list[str], start: int, stop: int) -> dict[str, Any]:
    """Entries [start, stop) of branches ``srcs``: ``baskets.FlatBranch`` where read directly, else awkward arrays.

    A branch the direct reader failed on is read with ``read_with_uproot``: if that fails too, the
    file is damaged (``InputError``); if not, the direct reader is switched off with a warning
    (``baskets.DirectBasketReader.disable``).
    """
    direct = BASKET_READER.read(plan.tree, srcs, start, stop, executor=WORKER_THREADS.io(),
                                cache=plan.basket_cache, path=plan.path)
    out: dict[str, Any] = dict(direct.arrays)
    if direct.rest:
        out.update(read_with_uproot(plan, list(direct.rest), start, stop))
    if direct.failures:
        BASKET_READER.disable(direct.failures, path=plan.path)
    return out


def non_finite(values: np.ndarray) -> tuple[int, int] | None:
    """(count, first index) of non-finite values, or None.

    One summation pass (NaN and inf propagate through a sum); only when the sum is not finite
    (bad values, or an overflow of huge finite ones) are the values checked one by one.
    """
    if values.dtype.kind != "f" or values.size == 0:
        return None
    with np.errstate(over="ignore", invalid="ignore"):
        if np.isfinite(np.add.reduce(values, axis=None)):
            return None
    bad = ~np.isfinite(values)
    if not bad.any():
        return None
    return int(bad.sum()), int(np.argmax(bad))


def _sample_median(values: np.ndarray) -> float:
    """Median of ``values``, from an evenly strided subsample of at most ``UNIT_SAMPLE`` values."""
    stride = max(1, len(values) // UNIT_SAMPLE)
    return float(np.median(values[::stride]))


def _event_values(raw: Any) -> np.ndarray:
    """Numpy values of an event-level branch read either way (``FlatBranch`` or uproot's awkward array)."""
    if isinstance(raw, FlatBranch):
        return raw.content
    import awkward as ak

    return np.asarray(ak.to_numpy(raw))


def _jagged_of(raw: Any) -> tuple[np.ndarray, np.ndarray]:
    """(offsets from 0, flat content) of a jagged branch read either way."""
    if isinstance(raw, FlatBranch):
        return raw.item_offsets(), raw.content
    return jagged_parts(raw)


def read_chunk(plan: ReadPlan, start: int, stop: int, *, energy_unit: str | None, check_units: bool) -> dict[str, Any]:
    """Entries [start, stop) of the plan's tree as schema arrays, checked and in GeV.

    Parameters
    ----------
    plan : ReadPlan
    start, stop : int
        Entry range.
    energy_unit : {"GeV", "MeV"} or None
        Unit of the energies in the file (None: unset, MeV-looking energies are an error).
    check_units : bool
        Run the MeV heuristic (on the first chunk of a file).

    Returns
    -------
    dict
        Event-level numpy arrays by schema name (plus the alias map's constants) and jagged
        awkward records ``gamma`` / ``track``.
    """
    path = plan.path
    n = stop - start
    out: dict[str, Any] = {}
    raw = read_branches(plan, plan.branches, start, stop)
    for name, src in plan.event.items():
        b = _EVENT_BY_NAME[name]
        values = _event_values(raw[src])
        bad = non_finite(values)
        if bad:
            raise InputError(f"{path}: branch {src!r} has {bad[0]} NaN/inf value(s), first at entry {start + bad[1]}")
        values = values.astype(b.dtype, copy=False)
        if energy_unit == "MeV" and name in MEV_FACTORS:
            values = np.where(values > 0, values * MEV_FACTORS[name], values)  # keep -1 "not set" markers
        out[name] = values
    for name, value in plan.constants.items():
        if name not in out:
            out[name] = np.full(n, value, dtype=_EVENT_BY_NAME[name].dtype)
    for coll, mapping in plan.jagged.items():
        if not mapping:
            continue
        fields_by_name = {b.name: b for b in COLLECTIONS[coll][1]}
        offsets_ref: np.ndarray | None = None
        first_src: str | None = None
        flat: dict[str, np.ndarray] = {}
        for field, src in mapping.items():
            this = raw[src]
            if first_src is None:
                offsets, content = _jagged_of(this)
                offsets_ref, first_src = offsets, src
            else:
                ref = raw[first_src]
                if isinstance(this, FlatBranch) and isinstance(ref, FlatBranch) and this.pieces is not None:
                    same = this.same_structure(ref)
                    content = this.content
                else:
                    offsets, content = _jagged_of(this)
                    same = offsets.shape == offsets_ref.shape and np.array_equal(offsets, offsets_ref)
                if not same:
                    raise SchemaError(f"{path}: branch {src!r} has a different number of entries per event than {first_src!r}")
            bad = non_finite(content)
            if bad:
                assert offsets_ref is not None
                event_idx = int(np.searchsorted(offsets_ref, bad[1], side="right") - 1)
                raise InputError(f"{path}: branch {src!r} has {bad[0]} NaN/inf value(s), first in entry {start + event_idx}")
            content = content.astype(fields_by_name[field].dtype, copy=False)
            key = f"{coll}_{field}"
            if energy_unit == "MeV" and key in MEV_FACTORS:
                factor = MEV_FACTORS[key]
                content = np.where(content > 0, content * factor, content) if field in ("E", "mc_E") else content * factor
            flat[field] = content
        if check_units and coll == "gamma" and "E" in flat and flat["E"].size:
            median = _sample_median(flat["E"])
            if energy_unit is None and median > MEV_SUSPICION_GEV:
                raise SchemaError(
                    f"{path}: branch {mapping['E']!r}: median photon energy is {median:.4g}, which looks like MeV "
                    f"(Belle II photons are below ~{MEV_SUSPICION_GEV:g} GeV); set energy_unit: MeV "
                    f"(--energy-unit MeV, or energy_unit in the alias map)"
                )
            if energy_unit == "MeV" and median < 1e-3:
                logger.warning("%s: energy_unit is MeV but the median photon energy is %.3g GeV after conversion; "
                               "were the energies already in GeV?", path, median)
        assert offsets_ref is not None
        out[coll] = make_jagged_record(offsets_ref, flat)
    return out

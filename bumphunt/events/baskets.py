"""The direct basket reader: branches of plain numbers read straight from their baskets.

Why
---
uproot's ``TTree.arrays`` builds awkward layouts per basket, concatenates and
then byte-swaps them. For branches of plain numbers (one per event, or a
variable-length array with a counter: the layout of our ntuples and of most
flat analysis ntuples) this reader instead copies the bytes of each basket (a
view of the memory-mapped file when stored uncompressed, else uproot's
decompressed buffer) once, byte-swapping on the fly, into one preallocated
native-endian numpy array per branch, one thread per branch. About 3x less CPU
than ``TTree.arrays``. Other layouts (e.g. ``std::vector`` with per-entry
headers) are left to ``TTree.arrays`` (``DirectRead.rest``).

uproot internals used here (and nowhere else in bumphunt)
--------------------------------------------------------
* ``TBranch.basket_chunk_cursor(i)`` and ``Chunk.is_memmap``: where basket
  ``i`` lies in the memory-mapped file;
* ``uproot.models.TBasket.Model_TBasket.read`` with the context key
  ``read_basket=False`` (parse only the basket header), the header members
  ``fKeylen``, ``fObjlen``, ``fNbytes`` and the attributes ``border`` and
  ``num_entries``; ``uproot.source.cursor.Cursor.bytes``;
* the layout of an uncompressed basket: data, then big-endian int32 entry
  offsets (first one a count, values relative to the key) up to ``fObjlen``.

Public uproot API used: ``TBranch.interpretation`` (``uproot.AsDtype``,
``uproot.AsJagged`` with ``header_bytes``), ``TBranch.entry_offsets``,
``TBranch.basket(i)`` with ``TBasket.data``, ``byte_offsets``, ``num_entries``.

When the internals change
-------------------------
Tested with the uproot versions in ``TESTED_UPROOT``. If the direct reader
fails on a branch, the branch is read again with ``TTree.arrays``: if that
fails too, the file is damaged (an ``InputError`` says so); if it succeeds,
uproot's internals have changed, so ``BASKET_READER`` logs one warning naming
the uproot version and the error, and reads everything through the public API
from then on. Values are the same either way.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping
from concurrent.futures import Executor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

__all__ = [
    "TESTED_UPROOT",
    "FlatBranch",
    "NotFlat",
    "DirectRead",
    "DirectBasketReader",
    "BASKET_READER",
    "direct_interpretation",
    "basket_parts",
    "read_flat",
]

#: uproot series (major.minor) the direct reader and the whole events test suite were run with (5.6.9, 5.7.7).
#: The reader also works with 5.3-5.5, but those cannot write empty jagged arrays (empty selections).
TESTED_UPROOT: tuple[str, ...] = ("5.6", "5.7")


class NotFlat(Exception):
    """The branch's baskets do not have the simple layout the direct reader handles."""


class FlatBranch:
    """One branch read as flat native-endian numpy content (+ per-entry item offsets for jagged branches).

    ``pieces`` keeps, per basket used, (basket number, byte offsets of the entries read, relative
    to the first) so that the entry structure of two branches can be compared without building
    offsets for both.
    """

    __slots__ = ("content", "itemsize", "pieces", "offsets", "boundaries")

    def __init__(self, content: np.ndarray, itemsize: int, pieces: list[tuple[int, np.ndarray]] | None,
                 boundaries: tuple[int, ...]) -> None:
        self.content = content
        self.itemsize = itemsize
        self.pieces = pieces
        self.boundaries = boundaries
        self.offsets: np.ndarray | None = None

    def item_offsets(self) -> np.ndarray:
        """Offsets (int64, from 0) of each entry's items in ``content``."""
        if self.offsets is None:
            assert self.pieces is not None
            n = sum(len(bo) - 1 for _, bo in self.pieces)
            out = np.empty(n + 1, dtype=np.int64)
            out[0] = 0
            pos, base = 0, 0
            for _, bo in self.pieces:
                k = len(bo) - 1
                seg = out[pos + 1:pos + k + 1]
                np.floor_divide(bo[1:], self.itemsize, out=seg, casting="unsafe")
                seg += base
                base = int(seg[-1]) if k else base
                pos += k
            self.offsets = out
        return self.offsets

    def same_structure(self, ref: FlatBranch) -> bool:
        """True if both jagged branches have the same number of items in every entry."""
        if self.pieces is None or ref.pieces is None:
            return self.pieces is ref.pieces
        if self.boundaries == ref.boundaries and len(self.pieces) == len(ref.pieces):
            a, b = self.itemsize, ref.itemsize
            for (_, bo), (_, bo_ref) in zip(self.pieces, ref.pieces):
                if bo.shape != bo_ref.shape:
                    return False
                if a == b:
                    if not np.array_equal(bo, bo_ref):
                        return False
                elif not np.array_equal(bo.astype(np.int64) * b, bo_ref.astype(np.int64) * a):  # bytes -> items
                    return False
            return True
        other = self.item_offsets()
        return other.shape == ref.item_offsets().shape and np.array_equal(other, ref.item_offsets())


def direct_interpretation(branch: Any) -> tuple[np.dtype, bool] | None:
    """(on-disk dtype, jagged?) when the branch can be read basket by basket as flat content, else None."""
    import uproot

    interp = branch.interpretation
    if type(interp) is uproot.AsDtype and interp.from_dtype.shape == () and interp.from_dtype.kind in "fiub":
        return np.dtype(interp.from_dtype), False
    if (type(interp) is uproot.AsJagged and type(interp.content) is uproot.AsDtype and interp.header_bytes == 0
            and interp.content.from_dtype.shape == () and interp.content.from_dtype.kind in "fiub"):
        return np.dtype(interp.content.from_dtype), True
    return None


def basket_parts(branch: Any, i: int) -> tuple[np.ndarray, np.ndarray | None, int, bool]:
    """(data bytes, entry byte offsets or None, number of entries, data is a view of the file) of basket ``i``.

    uproot's ``TBranch.basket`` copies the bytes of an uncompressed basket out of the memory-mapped
    file (so that they survive closing it); here they are used before the file is closed, so for
    uncompressed baskets only the header is parsed (by uproot) and the data stay a view of the map.
    """
    from uproot.models.TBasket import Model_TBasket
    from uproot.source.cursor import Cursor

    try:
        chunk, cursor = branch.basket_chunk_cursor(i)
    except IndexError:  # embedded basket (stored in the TBranch itself)
        chunk = None
    if chunk is not None and getattr(chunk, "is_memmap", False):
        start = cursor.index
        head = Model_TBasket.read(chunk, cursor, {"basket_num": i, "read_basket": False}, branch.file, branch.file, branch)
        keylen, objlen = int(head.member("fKeylen")), int(head.member("fObjlen"))
        if int(head.member("fNbytes")) - keylen == objlen:  # stored uncompressed
            raw = Cursor(start + keylen).bytes(chunk, objlen, {})
            border = int(head.border)
            if border == objlen:
                return raw, None, int(head.num_entries), True
            offsets = raw[border:].view(">i4")[1:] - keylen  # as uproot: a native copy, last = border
            offsets[-1] = border
            return raw[:border], offsets, int(head.num_entries), True
    basket = branch.basket(i)
    return basket.data, basket.byte_offsets, int(basket.num_entries), False


def read_flat(branch: Any, dtype: np.dtype, jagged: bool, start: int, stop: int, *,
              cache: dict[str, Any] | None = None) -> FlatBranch:
    """Read entries [start, stop) of one branch directly from its baskets.

    Every basket's bytes (a view of the memory-mapped file when stored uncompressed, else the
    decompressed buffer) are copied once, byte-swapping on the fly, into one preallocated
    native-endian array.

    ``cache`` (per open tree) keeps the last basket of the previous chunk when the chunk ended
    inside it, so that consecutive chunks do not decompress it twice.

    Raises
    ------
    NotFlat
        The baskets do not have the layout this reader handles (read the branch with uproot).
    """
    bounds = [int(x) for x in branch.entry_offsets]
    first = max(0, int(np.searchsorted(bounds, start, side="right")) - 1)
    baskets = []
    for i in range(first, len(bounds) - 1):
        b0, b1 = bounds[i], bounds[i + 1]
        if b0 >= stop:
            break
        if b1 <= start:
            continue
        baskets.append((i, max(start, b0) - b0, min(stop, b1) - b0))
    itemsize = dtype.itemsize
    views: list[np.ndarray] = []
    pieces: list[tuple[int, np.ndarray]] | None = [] if jagged else None
    cached = cache.pop(branch.name, None) if cache is not None else None
    for i, e0, e1 in baskets:
        if cached is not None and cached[0] == i:
            (data, bo, num_entries), mapped = cached[1], False
        else:
            data, bo, num_entries, mapped = basket_parts(branch, i)
        # decompressed baskets only: re-reading a mapped one is free (and no view outlives the file)
        if cache is not None and not mapped and i == baskets[-1][0] and bounds[i + 1] > stop:
            cache[branch.name] = (i, (data, bo, num_entries))
        if jagged:
            if bo is None or len(bo) != num_entries + 1:
                raise NotFlat(f"basket {i} has no entry offsets")
            bo = bo[e0:e1 + 1]
            lo, hi = int(bo[0]), int(bo[-1])
            if lo % itemsize or hi % itemsize:
                raise NotFlat(f"basket {i}: entries not aligned to {itemsize}-byte items")
            if lo:
                bo = bo - lo
            pieces.append((i, bo))  # type: ignore[union-attr]
            raw = data[lo:hi]
        else:
            if len(data) != num_entries * itemsize:
                raise NotFlat(f"basket {i} holds {len(data)} bytes for {num_entries} entries")
            raw = data[e0 * itemsize:e1 * itemsize]
        views.append(raw.view(dtype))
    total = sum(len(v) for v in views)
    content = np.empty(total, dtype=dtype.newbyteorder("="))
    pos = 0
    for v in views:
        content[pos:pos + len(v)] = v  # copy + byte swap in one pass (releases the GIL)
        pos += len(v)
    if jagged:
        if any(len(bo) and int(bo[-1]) // itemsize != len(v) for (_, bo), v in zip(pieces, views)):  # type: ignore[arg-type]
            raise NotFlat("entry offsets do not match the basket content")
        if (sum(len(bo) - 1 for _, bo in pieces) != stop - start):  # type: ignore[union-attr]
            raise NotFlat("baskets do not cover the requested entries")
    elif total != stop - start:
        raise NotFlat("baskets do not cover the requested entries")
    return FlatBranch(content, itemsize, pieces, tuple(bounds))


@dataclass(frozen=True)
class DirectRead:
    """What the direct reader made of a set of branches.

    Attributes
    ----------
    arrays : dict of str to FlatBranch
        Branches read directly.
    rest : tuple of str
        Branches to read with uproot's ``TTree.arrays``: layouts the direct
        reader does not handle, and the ``failures``.
    failures : dict of str to exception
        Branches on which the direct reader raised (a damaged file, or changed
        uproot internals: reading them with ``TTree.arrays`` tells which).
    """

    arrays: dict[str, FlatBranch] = field(default_factory=dict)
    rest: tuple[str, ...] = ()
    failures: dict[str, BaseException] = field(default_factory=dict)


class DirectBasketReader:
    """The direct reader with its on/off switch (off for good once uproot's internals are seen to have changed)."""

    def __init__(self) -> None:
        self.reason: str | None = None
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        """False once ``disable`` was called."""
        return self.reason is None

    def read(self, tree: Any, srcs: Iterable[str], start: int, stop: int, *, executor: Executor,
             cache: dict[str, Any] | None = None, path: str | Path = "") -> DirectRead:
        """Read entries [start, stop) of branches ``srcs`` of ``tree``, one task per branch on ``executor``.

        Waits for every task (the caller may close the file after a failure). Nothing is raised for
        a branch: what could not be read directly is listed in ``rest`` (and in ``failures`` when
        the reader raised).
        """
        srcs = list(srcs)
        if not self.enabled:
            return DirectRead(rest=tuple(srcs))
        futures = {}
        rest: list[str] = []
        failures: dict[str, BaseException] = {}
        for src in srcs:
            branch = tree[src]
            try:
                how = direct_interpretation(branch)
            except Exception as exc:
                failures[src] = exc
                rest.append(src)
                continue
            if how is None:
                rest.append(src)
            else:
                futures[src] = executor.submit(read_flat, branch, how[0], how[1], start, stop, cache=cache)
        arrays: dict[str, FlatBranch] = {}
        for src, fut in futures.items():
            try:
                arrays[src] = fut.result()
            except NotFlat as exc:
                logger.debug("%s: branch %r read through uproot: %s", path, src, exc)
                rest.append(src)
            except Exception as exc:
                failures[src] = exc
                rest.append(src)
        return DirectRead(arrays, tuple(rest), failures)

    def disable(self, failures: Mapping[str, BaseException], *, path: str | Path = "") -> None:
        """Stop using the direct reader: uproot's public API read what it could not. Warns once."""
        import uproot

        with self._lock:
            if self.reason is not None or not failures:
                return
            src, exc = next(iter(failures.items()))
            self.reason = f"{type(exc).__name__}: {' '.join(str(exc).split())}"
        version = uproot.__version__
        tested = ".".join(version.split(".")[:2]) in TESTED_UPROOT
        logger.warning(
            "the direct basket reader failed on branch %r of %s with uproot %s (%s with %s): %s; uproot's TTree.arrays "
            "read it, so uproot's internals have changed: every branch is now read through TTree.arrays (same values, slower)",
            src, path, version, "tested" if tested else "only tested", ", ".join(TESTED_UPROOT), self.reason,
        )


#: The direct reader of the events subpackage.
BASKET_READER = DirectBasketReader()

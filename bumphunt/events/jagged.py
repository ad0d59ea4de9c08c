"""Jagged awkward arrays <-> flat numpy arrays with per-event offsets.

The stages work on flat numpy arrays (one value per cluster or track) and
offsets (``offsets[i]:offsets[i+1]`` are event ``i``'s items), which is what
ROOT stores; awkward arrays are the in-memory form of ``Events``. These
helpers convert without copying where the layout allows.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["make_jagged_record", "jagged_parts", "flat_record"]


def make_jagged_record(offsets: np.ndarray, fields: Mapping[str, np.ndarray]) -> Any:
    """Awkward jagged record array from shared offsets and flat per-item numpy arrays (zero-copy).

    Parameters
    ----------
    offsets : int array of length n_events + 1
        Item offsets of each event.
    fields : mapping of str to 1-D numpy arrays
        One value per item for each field.
    """
    import awkward as ak

    n_items = int(offsets[-1]) if len(offsets) else 0
    record = ak.contents.RecordArray(
        [ak.contents.NumpyArray(np.ascontiguousarray(v)) for v in fields.values()], list(fields), length=n_items
    )
    return ak.Array(ak.contents.ListOffsetArray(ak.index.Index64(np.asarray(offsets, dtype=np.int64)), record))


def jagged_parts(arr: Any) -> tuple[np.ndarray, np.ndarray]:
    """(offsets starting at 0, flat content) of a one-level jagged awkward array of numbers."""
    import awkward as ak

    layout = ak.to_layout(arr)
    if isinstance(layout, ak.contents.ListOffsetArray) and isinstance(layout.content, ak.contents.NumpyArray):
        offsets = np.asarray(layout.offsets.data)
        content = np.asarray(layout.content.data)[offsets[0]:offsets[-1]]
        return offsets - offsets[0], content
    counts = ak.to_numpy(ak.num(arr, axis=1))
    offsets = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    return offsets, ak.to_numpy(ak.flatten(arr, axis=1))


def flat_record(arr: Any) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Offsets (int64, from 0) and flat numpy content of each field of a jagged awkward record."""
    import awkward as ak

    layout = ak.to_layout(arr)
    if isinstance(layout, ak.contents.ListOffsetArray) and isinstance(layout.content, ak.contents.RecordArray):
        offsets = np.asarray(layout.offsets.data, dtype=np.int64)
        start, stop = int(offsets[0]), int(offsets[-1])
        content = layout.content
        out = {}
        for name in content.fields:
            sub = content.content(name)
            if isinstance(sub, ak.contents.NumpyArray):
                out[name] = np.asarray(sub.data)[start:stop]
            else:
                out[name] = ak.to_numpy(ak.Array(sub[start:stop]))
        return offsets - start, out
    counts = ak.to_numpy(ak.num(arr, axis=1)).astype(np.int64)
    offsets = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    flat = ak.flatten(arr, axis=1)
    return offsets, {name: ak.to_numpy(flat[name]) for name in ak.fields(flat)}

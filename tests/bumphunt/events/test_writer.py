"""bumphunt.events.writer: writing events back, and the compression policy."""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot

from bumphunt.events.reader import read_events
from bumphunt.events.writer import write_events


def test_write_events_roundtrip(tmp_path: Path, good_file: Path) -> None:
    ev = read_events(good_file)
    out = write_events(tmp_path / "copy.root", ev)
    back = read_events(out)
    assert back.sample == ev.sample
    for key in ev:
        if key in ("gamma", "track"):
            assert ak.all(back[key].E == ev[key].E) if key == "gamma" else ak.all(back[key].px == ev[key].px)
        else:
            np.testing.assert_array_equal(back[key], ev[key])


def test_written_files_store_incompressible_branches_as_is(tmp_path: Path, good_file: Path, assert_same_as_uproot) -> None:
    pytest.importorskip("lz4")
    pytest.importorskip("xxhash")
    out = write_events(tmp_path / "copy.root", read_events(good_file))
    with uproot.open(out) as f:
        tree = f["events"]
        assert tree["gamma_E"].compressed_bytes == tree["gamma_E"].uncompressed_bytes
        assert tree["process"].compressed_bytes < tree["process"].uncompressed_bytes
    assert_same_as_uproot(out, [read_events(out)])


def test_branch_compression_of_a_writable_tree(tmp_path: Path, good_file: Path) -> None:
    """For a tree made with mktree: default compression everywhere except the incompressible branches (public API only)."""
    from bumphunt.events.writer import INCOMPRESSIBLE_BRANCHES, branch_compression, default_compression

    ev = read_events(good_file)
    data = {k: v for k, v in ev.items()}
    with uproot.recreate(tmp_path / "t.root", compression=uproot.ZLIB(9)) as f:
        t = f.mktree("events", {k: (v.type if isinstance(v, ak.Array) else v.dtype) for k, v in data.items()})
        comp = branch_compression(t)
        t.compression = comp  # as the toy MC writer does
        t.extend(data)
    with uproot.open(tmp_path / "t.root") as f:
        names = set(f["events"].keys())
    assert set(comp) == names  # every branch, counters included
    assert {n for n, c in comp.items() if c is None} == INCOMPRESSIBLE_BRANCHES & names
    assert {type(c) for n, c in comp.items() if c is not None} == {type(default_compression())}
    assert all(c.level == default_compression().level for c in comp.values() if c is not None)

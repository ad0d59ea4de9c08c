"""bumphunt.events.baskets: the direct basket reader against uproot, and its fallbacks to uproot's public API."""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot
from ntuple_fixture import make_events

from bumphunt.events.reader import iterate_events, read_events


@pytest.mark.parametrize("compression,per_branch", [(None, False), ("zlib", False), ("lz4", True)])
def test_direct_reader_matches_uproot_across_baskets(tmp_path: Path, rng: np.random.Generator, compression, per_branch,
                                                     monkeypatch: pytest.MonkeyPatch, write_in_baskets, assert_same_as_uproot) -> None:
    """Chunk boundaries inside and across baskets, stored raw or compressed: the same values as uproot."""
    import bumphunt.events.chunks as chunks_mod

    def no_fallback(*args: object, **kwargs: object) -> None:
        raise AssertionError("the direct basket reader should read every branch of this file")

    monkeypatch.setattr(chunks_mod, "read_with_uproot", no_fallback)
    comp = {None: None, "zlib": uproot.ZLIB(1), "lz4": uproot.LZ4(1)}[compression]
    if compression == "lz4":
        pytest.importorskip("lz4")
        pytest.importorskip("xxhash")
    events = make_events(rng, 230)
    path = write_in_baskets(tmp_path / "baskets.root", events, sizes=[50, 1, 79, 100], compression=comp, per_branch=per_branch)
    for step in (230, 37, 50):
        chunks = list(iterate_events(path, step_size=step))
        assert sum(c.n_events for c in chunks) == 230
        assert_same_as_uproot(path, chunks)


def test_uproot_fallback_reads_the_same(tmp_path: Path, good_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Branches the direct reader does not handle go through uproot's TTree.arrays with identical results."""
    import bumphunt.events.baskets as baskets

    direct = read_events(good_file)
    monkeypatch.setattr(baskets, "direct_interpretation", lambda branch: None)
    via_uproot = read_events(good_file)
    for key, value in direct.items():
        other = via_uproot[key]
        if isinstance(value, ak.Array):
            assert ak.array_equal(value, other), key
        else:
            np.testing.assert_array_equal(value, other)
            assert value.dtype == other.dtype

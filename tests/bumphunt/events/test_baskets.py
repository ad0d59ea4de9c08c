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


def _assert_same_events(got, want) -> None:
    assert got.keys() == want.keys()
    for key, value in want.items():
        if isinstance(value, ak.Array):
            assert ak.array_equal(got[key], value), key
        else:
            np.testing.assert_array_equal(got[key], value, err_msg=key)
            assert got[key].dtype == value.dtype, key


def test_changed_uproot_internals_fall_back_to_the_public_api_with_one_warning(
        tmp_path: Path, rng: np.random.Generator, good_file: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture, write_in_baskets) -> None:
    """An internal accessor of uproot disappears: the same arrays come back through TTree.arrays, one warning says why."""
    from uproot.behaviors.TBranch import TBranch

    from bumphunt.events.baskets import BASKET_READER, TESTED_UPROOT

    multi = write_in_baskets(tmp_path / "multi.root", make_events(rng, 230), sizes=[50, 80, 100], compression=uproot.ZLIB(1))
    want_one = read_events(good_file)
    want_chunks = list(iterate_events(multi, step_size=60))
    assert BASKET_READER.enabled

    def moved(self: object, basket_num: int) -> None:
        raise AttributeError("'TBranch' object has no attribute 'basket_chunk_cursor' (simulated change of uproot)")

    monkeypatch.setattr(TBranch, "basket_chunk_cursor", moved)
    monkeypatch.setattr(BASKET_READER, "reason", None)  # switched back on after the test
    with caplog.at_level("WARNING", logger="bumphunt.events"):
        got_one = read_events(good_file)
        got_chunks = list(iterate_events(multi, step_size=60))
    _assert_same_events(got_one, want_one)
    assert len(got_chunks) == len(want_chunks) == 4
    for got, want in zip(got_chunks, want_chunks):
        _assert_same_events(got, want)
    assert not BASKET_READER.enabled
    warnings = [r for r in caplog.records if r.name == "bumphunt.events.baskets"]
    assert len(warnings) == 1  # once, not per branch, chunk or file
    message = warnings[0].getMessage()
    assert f"uproot {uproot.__version__}" in message and "AttributeError" in message and "simulated change of uproot" in message
    assert all(v in message for v in TESTED_UPROOT)


def test_tested_uproot_is_the_installed_minor_version() -> None:
    """TESTED_UPROOT names the uproot series the test suite runs with (update it, and the pin, when uproot is upgraded)."""
    from bumphunt.events.baskets import TESTED_UPROOT

    assert ".".join(uproot.__version__.split(".")[:2]) in TESTED_UPROOT

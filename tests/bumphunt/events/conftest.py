"""Fixtures of the events tests: small ntuples, files written basket by basket, a comparison with uproot."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot
from ntuple_fixture import default_meta, make_events, to_awkward, write_ntuple

from bumphunt.events.reader import read_events


@pytest.fixture
def events_raw(rng: np.random.Generator) -> dict:
    return make_events(rng, 400)


@pytest.fixture
def good_file(tmp_path: Path, events_raw: dict) -> Path:
    return write_ntuple(tmp_path / "signal.root", events_raw, meta=default_meta(n=400))


@pytest.fixture
def raw(rng: np.random.Generator) -> dict:
    """Events of which some fail the M_ggg window (energies scaled down) and the timing (a shifted time)."""
    ev = make_events(rng, 600, mass=1.5, n_background_max=4, track_fraction=0.3)
    sl = slice(0, 60)
    off = np.concatenate([[0], np.cumsum(ev["ngamma"])])
    ev["gamma"]["E"][off[sl.start]:off[sl.stop]] *= 0.7
    t = ev["gamma"]["time"]
    hard = off[:-1] + ev["mc_idx_a1"]
    t[hard[100:150]] += 120.0
    return ev


@pytest.fixture
def events(tmp_path: Path, raw: dict):
    return read_events(write_ntuple(tmp_path / "sig.root", raw, meta=default_meta(n=600)))


def _write_in_baskets(path: Path, events: dict, *, sizes: list[int], compression=None, per_branch: bool = False) -> Path:
    """Write ``events`` with one ``extend`` (one basket per branch) per entry of ``sizes``."""
    from bumphunt.events.writer import branch_compression

    data = to_awkward(events)
    with uproot.recreate(path, compression=compression) as f:
        types = {k: (v.type.content if isinstance(v, ak.Array) else np.asarray(v).dtype) for k, v in data.items()}
        t = f.mktree("events", types)
        if per_branch:
            t.compression = branch_compression(t)
        lo = 0
        for size in sizes:
            t.extend({k: v[lo:lo + size] for k, v in data.items()})
            lo += size
    return path


def _assert_same_as_uproot(path: Path, chunks: list) -> None:
    """Every array of the chunks equals uproot's own reading of the same branches."""
    with uproot.open(path) as f:
        whole = f["events"].arrays(library="ak", how=dict)
        start = 0
        for chunk in chunks:
            stop = start + chunk.n_events
            ref = {k: v[start:stop] for k, v in whole.items()}
            for key, value in chunk.items():
                if key in ("gamma", "track"):
                    np.testing.assert_array_equal(ak.to_numpy(ak.num(value)), ak.to_numpy(ref["n" + key]))
                    for field in value.fields:
                        got = ak.to_numpy(ak.flatten(value[field]))
                        want = ak.to_numpy(ak.flatten(ref[f"{key}_{field}"]))
                        np.testing.assert_array_equal(got, want, err_msg=f"{key}.{field} entries [{start}, {stop})")
                        assert got.dtype.isnative
                else:
                    np.testing.assert_array_equal(value, ak.to_numpy(ref[key]), err_msg=key)
            start = stop


@pytest.fixture
def write_in_baskets() -> Callable[..., Path]:
    """``write_in_baskets(path, events, *, sizes, compression=None, per_branch=False)``: one basket per ``sizes`` entry."""
    return _write_in_baskets


@pytest.fixture
def assert_same_as_uproot() -> Callable[[Path, list], None]:
    """``assert_same_as_uproot(path, chunks)``: the chunks equal uproot's own reading of the file."""
    return _assert_same_as_uproot

"""Truncated and damaged ROOT files: every reading path says "file X is truncated or corrupt" in an InputError."""

from __future__ import annotations

from pathlib import Path

import pytest
import uproot

from bumphunt.errors import InputError
from bumphunt.events import preselect
from bumphunt.events.files import read_meta
from bumphunt.events.reader import iterate_events, read_events
from bumphunt.events.three_photon import load_three_photon, save_three_photon

#: Where the copies are cut: fractions of the file, or right after the header (None).
CUTS = {"90%": 0.9, "50%": 0.5, "10%": 0.1, "after the header": None}


@pytest.fixture(params=["direct", "uproot"])
def reader(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Read with the direct basket reader, or with uproot's TTree.arrays only."""
    import bumphunt.events.baskets as baskets

    if request.param == "uproot":
        monkeypatch.setattr(baskets, "direct_interpretation", lambda branch: None)
    return request.param


def _truncated(path: Path, out_dir: Path, where: float | None) -> Path:
    data = path.read_bytes()
    if where is None:
        with uproot.open(path) as f:
            n = int(f.file.fBEGIN)  # the header ends where the first record begins
    else:
        n = int(len(data) * where)
    assert 0 < n < len(data)
    out = out_dir / f"cut{n}_{path.name}"
    out.write_bytes(data[:n])
    return out


def _damaged(path: Path, out_dir: Path, branch: str) -> Path:
    """A copy with the last bytes of the first (compressed) basket of ``branch`` flipped."""
    with uproot.open(path) as f:
        b = f["events"][branch]
        assert b.compressed_bytes < b.uncompressed_bytes  # compressed: the damage is detected on decompression
        end = int(b.member("fBasketSeek")[0]) + int(b.member("fBasketBytes")[0])
    data = bytearray(path.read_bytes())
    data[end - 8:end] = bytes(x ^ 0xFF for x in data[end - 8:end])
    out = out_dir / f"damaged_{branch}_{path.name}"
    out.write_bytes(bytes(data))
    return out


def _assert_corrupt(path: Path, read, *also: str) -> None:
    with pytest.raises(InputError) as info:  # and no other exception type
        read(path)
    message = str(info.value)
    assert f"file {path} is truncated or corrupt" in message, message
    for text in also:
        assert text in message, message


@pytest.mark.parametrize("where", list(CUTS.values()), ids=list(CUTS))
def test_truncated_ntuple(tmp_path: Path, good_file: Path, where: float | None, reader: str) -> None:
    path = _truncated(good_file, tmp_path, where)
    _assert_corrupt(path, read_events)
    _assert_corrupt(path, lambda p: list(iterate_events(p, step_size=100)))
    _assert_corrupt(path, lambda p: read_events(p, fields=["event", "process", "weight", "gamma_E"], allow_empty=True))
    _assert_corrupt(path, read_meta)


@pytest.mark.parametrize("where", list(CUTS.values()), ids=list(CUTS))
def test_truncated_three_photon_file(tmp_path: Path, events, where: float | None, reader: str) -> None:
    out, _ = preselect(events)
    path = _truncated(save_three_photon(tmp_path / "three.root", out), tmp_path, where)
    _assert_corrupt(path, load_three_photon)
    _assert_corrupt(path, read_events)


def test_truncated_chunk_after_good_chunks_of_an_earlier_file(tmp_path: Path, good_file: Path, reader: str) -> None:
    """The error comes when the broken file's chunk is asked for, after the chunks of the good file."""
    broken = _truncated(good_file, tmp_path, 0.5)
    got = []
    with pytest.raises(InputError, match="is truncated or corrupt"):
        for chunk in iterate_events([good_file, broken], step_size=150):
            got.append(chunk.n_events)
    assert got == [150, 150, 100]


def test_damaged_basket(tmp_path: Path, good_file: Path, events, reader: str) -> None:
    """A damaged basket inside an intact file: reading that branch fails (direct and through uproot), the rest reads."""
    from bumphunt.events.baskets import BASKET_READER

    path = _damaged(good_file, tmp_path, "weight")
    _assert_corrupt(path, read_events, "branch 'weight'")
    _assert_corrupt(path, lambda p: list(iterate_events(p, step_size=100)), "branch 'weight'")
    assert read_meta(path) == read_meta(good_file)  # metadata intact
    assert BASKET_READER.enabled  # a damaged file is not taken for a change of uproot's internals
    out, _ = preselect(events)
    three = _damaged(save_three_photon(tmp_path / "three.root", out), tmp_path, "process")
    _assert_corrupt(three, load_three_photon, "three-photon branches")
    _assert_corrupt(three, read_events, "branch 'process'")

"""bumphunt.events.reader: reading schema ntuples, chunks, several files, and every bad-input case."""

from __future__ import annotations

import json
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot
from ntuple_fixture import default_meta, flat_branches, make_events, to_mev, write_ntuple

from bumphunt.errors import ConfigError, InputError, SchemaError
from bumphunt.events.files import read_meta
from bumphunt.events.reader import iterate_events, read_events


def test_read_roundtrip_values(good_file: Path, events_raw: dict) -> None:
    ev = read_events(good_file)
    assert ev.n_events == 400
    np.testing.assert_array_equal(ev["event"], events_raw["event"])
    assert ev["process"].dtype == np.int32 and ev["event"].dtype == np.int64
    np.testing.assert_array_equal(ak.num(ev["gamma"]), events_raw["ngamma"])
    np.testing.assert_array_equal(ak.to_numpy(ak.flatten(ev["gamma"].E)), events_raw["gamma"]["E"])
    np.testing.assert_array_equal(ak.to_numpy(ak.flatten(ev["track"].dz)), events_raw["track"]["dz"])
    assert ev.sample["process"] == "signal" and ev.sample["n_generated"] == 400
    assert read_meta(good_file) == default_meta(n=400)


def test_iterate_chunks_concatenate_to_whole(good_file: Path) -> None:
    whole = read_events(good_file)
    chunks = list(iterate_events(good_file, step_size=150))
    assert [c.n_events for c in chunks] == [150, 150, 100]
    E = np.concatenate([ak.to_numpy(ak.flatten(c["gamma"].E)) for c in chunks])
    np.testing.assert_array_equal(E, ak.to_numpy(ak.flatten(whole["gamma"].E)))
    assert all(c.sample["process"] == "signal" for c in chunks)


def test_many_files_and_glob(tmp_path: Path, rng: np.random.Generator) -> None:
    a = write_ntuple(tmp_path / "a.root", make_events(rng, 50, process="signal"), meta=default_meta("signal", n=50))
    b = write_ntuple(tmp_path / "b.root", make_events(rng, 70, process="ggg"), meta=default_meta("ggg", n=70))
    ev = read_events(str(tmp_path / "*.root"))
    assert ev.n_events == 120
    assert ev.files == [str(a), str(b)]
    assert [s["process"] for s in ev.samples] == ["signal", "ggg"]
    assert np.bincount(ev["process"]).tolist()[:2] == [50, 70]
    assert read_events([a, b], fields=["event", "process", "weight", "gamma_E", "gamma_theta", "gamma_phi", "gamma_time",
                                       "gamma_region", "track_px", "track_py", "track_pz", "track_charge", "track_dr", "track_dz"]
                       )["gamma"].fields == ["E", "theta", "phi", "time", "region"]


# ----------------------------------------------------------------- bad inputs


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="nothere.root: file not found"):
        read_events(tmp_path / "nothere.root")
    with pytest.raises(InputError, match="no file matches"):
        read_events(str(tmp_path / "*.root"))


def test_not_a_root_file(tmp_path: Path) -> None:
    p = tmp_path / "notes.root"
    p.write_text("this is not ROOT\n" * 100)
    with pytest.raises(InputError, match="notes.root: not a readable ROOT file"):
        read_events(p)


def test_truncated_file(tmp_path: Path, good_file: Path) -> None:
    data = good_file.read_bytes()
    for frac in (0.3, 0.6, 0.9):
        p = tmp_path / f"trunc{frac}.root"
        p.write_bytes(data[: int(len(data) * frac)])
        with pytest.raises(InputError, match=f"trunc{frac}.root"):
            read_events(p)


def test_missing_tree(tmp_path: Path) -> None:
    p = tmp_path / "other.root"
    with uproot.recreate(p) as f:
        f.mktree("something", {"x": np.float64}).extend({"x": np.zeros(3)})
    with pytest.raises(SchemaError, match="no tree 'events'.*something"):
        read_events(p)


def test_missing_branch(tmp_path: Path, events_raw: dict) -> None:
    br = flat_branches(events_raw)
    del br["gamma_time"]
    p = write_ntuple(tmp_path / "notime.root", events_raw, branches=br)
    with pytest.raises(SchemaError, match=r"notime.root: missing required branch 'gamma_time'"):
        read_events(p)
    br = flat_branches(events_raw)
    del br["weight"]
    p = write_ntuple(tmp_path / "noweight.root", events_raw, branches=br)
    with pytest.raises(SchemaError, match="branch 'weight'"):
        read_events(p)


def test_wrong_dtype(tmp_path: Path, events_raw: dict) -> None:
    br = flat_branches(events_raw)
    br["process"] = br["process"].astype(np.float64)
    p = write_ntuple(tmp_path / "floatproc.root", events_raw, branches=br)
    with pytest.raises(SchemaError, match="branch 'process' has dtype float64, expected int32"):
        read_events(p)
    br = flat_branches(events_raw)
    br["gamma_E"] = br["gamma_E"] > 1.0
    p = write_ntuple(tmp_path / "boolE.root", events_raw, branches=br)
    with pytest.raises(SchemaError, match="branch 'gamma_E' has dtype bool"):
        read_events(p)
    # a per-event scalar where a per-cluster array is expected
    br = flat_branches(events_raw)
    br["gamma_time"] = np.zeros(len(events_raw["event"]))
    p = write_ntuple(tmp_path / "scalar.root", events_raw, branches=br)
    with pytest.raises(SchemaError, match="branch 'gamma_time' should be a variable-length array"):
        read_events(p)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_values(tmp_path: Path, events_raw: dict, bad: float) -> None:
    ev = {**events_raw, "gamma": dict(events_raw["gamma"])}
    E = ev["gamma"]["E"].copy()
    E[17] = bad
    ev["gamma"]["E"] = E
    p = write_ntuple(tmp_path / "nan.root", ev)
    with pytest.raises(InputError, match=r"nan.root: branch 'gamma_E' has 1 NaN/inf value\(s\), first in entry \d+"):
        read_events(p)
    ev = dict(events_raw)
    w = ev["weight"].copy()
    w[3] = bad
    ev["weight"] = w
    p = write_ntuple(tmp_path / "nanw.root", ev)
    with pytest.raises(InputError, match="branch 'weight' has 1 NaN/inf value.*entry 3"):
        read_events(p)


def test_mev_energies_need_a_unit(tmp_path: Path, events_raw: dict) -> None:
    p = write_ntuple(tmp_path / "mev.root", to_mev(events_raw))
    with pytest.raises(SchemaError, match="mev.root: branch 'gamma_E': median photon energy.*set energy_unit: MeV"):
        read_events(p)
    ev = read_events(p, energy_unit="MeV")
    ref = read_events(write_ntuple(tmp_path / "gev.root", events_raw))
    for f in ("E", "mc_E", "cov_EE"):
        np.testing.assert_allclose(ak.to_numpy(ak.flatten(ev["gamma"][f])), ak.to_numpy(ak.flatten(ref["gamma"][f])), rtol=1e-12)
    np.testing.assert_allclose(ak.to_numpy(ak.flatten(ev["track"].pz)), ak.to_numpy(ak.flatten(ref["track"].pz)), rtol=1e-12)
    np.testing.assert_allclose(ev["mc_ma"], ref["mc_ma"])
    with pytest.raises(ConfigError, match="energy_unit"):
        read_events(p, energy_unit="keV")


def test_empty_tree(tmp_path: Path, rng: np.random.Generator, good_file: Path, caplog: pytest.LogCaptureFixture) -> None:
    empty = make_events(rng, 5)
    br = {k: v[:0] for k, v in flat_branches(empty).items()}
    p = write_ntuple(tmp_path / "empty.root", empty, branches=br, meta=default_meta(n=0))
    with pytest.raises(InputError, match="empty.root: tree 'events' has no events"):
        read_events(p)
    with caplog.at_level("WARNING", logger="bumphunt.events"):
        ev = read_events([p, good_file], allow_empty=True)
    assert ev.n_events == 400
    assert "empty.root: tree 'events' is empty; skipped" in caplog.text


def test_metadata_errors(tmp_path: Path, events_raw: dict) -> None:
    p = tmp_path / "badmeta.root"
    write_ntuple(p, events_raw)
    with uproot.update(p) as f:
        f["bumphunt_meta"] = "{not json"
    with pytest.raises(InputError, match="badmeta.root: metadata 'bumphunt_meta' is not valid JSON"):
        read_meta(p)
    q = write_ntuple(tmp_path / "nometa.root", events_raw)
    assert read_meta(q) == {}
    assert json.loads(json.dumps(read_events(q).sample)) == {}


def test_combining_files_with_different_optional_branches(tmp_path: Path, rng: np.random.Generator) -> None:
    """Pseudo-data carries mc_process, MC samples do not: the combined events fill -1 where absent."""
    from bumphunt.events import preselect

    mc = make_events(rng, 40, process="ggg")
    data = make_events(rng, 30, process="data")
    data["mc_process"] = np.full(30, 1, dtype=np.int32)
    a = write_ntuple(tmp_path / "a.root", mc)
    b = write_ntuple(tmp_path / "b.root", data)
    ev = read_events([a, b])
    np.testing.assert_array_equal(ev["mc_process"], np.r_[np.full(40, -1), np.full(30, 1)])
    np.testing.assert_array_equal(ev["mc_decay_length"], 0.0)
    out, cf = preselect(ev)
    assert cf.processes == ["ggg", "data"] and cf.count("all") == 70


def test_jagged_branches_with_different_structure(tmp_path: Path, events_raw: dict) -> None:
    branches = flat_branches(events_raw)
    E = ak.flatten(branches["gamma_theta"])
    counts = ak.to_numpy(ak.num(branches["gamma_theta"])).copy()
    counts[[0, 1]] += [1, -1] if counts[1] > 0 else [0, 0]  # same total, different per event
    assert counts.sum() == len(E)
    branches["gamma_theta"] = ak.unflatten(E, counts)
    p = write_ntuple(tmp_path / "ragged.root", events_raw, branches=branches)
    with pytest.raises(SchemaError, match="ragged.root: branch 'gamma_theta' has a different number of entries per event than 'gamma_E'"):
        read_events(p)


def test_non_finite_in_a_later_basket_and_huge_finite_values(tmp_path: Path, rng: np.random.Generator, write_in_baskets) -> None:
    events = make_events(rng, 120)
    cov = events["gamma"]["cov_EE"].copy()
    cov[:2] = 1e308  # the sum overflows: the values are then checked one by one, and are finite
    events["gamma"]["cov_EE"] = cov
    ok = write_in_baskets(tmp_path / "huge.root", events, sizes=[60, 60])
    assert read_events(ok)["gamma"].cov_EE[0, 0] == 1e308
    t = events["gamma"]["time"].copy()
    last = int(events["ngamma"][:100].sum())  # first cluster of entry 100, in the second basket
    t[last] = np.nan
    events["gamma"]["time"] = t
    bad = write_in_baskets(tmp_path / "late.root", events, sizes=[60, 60])
    chunks = iterate_events(bad, step_size=60)
    assert next(chunks).n_events == 60
    with pytest.raises(InputError, match=r"late.root: branch 'gamma_time' has 1 NaN/inf value\(s\), first in entry 100"):
        next(chunks)


def test_iterate_prefetch_keeps_file_order_and_stops_cleanly(tmp_path: Path, rng: np.random.Generator) -> None:
    a = write_ntuple(tmp_path / "a.root", make_events(rng, 90, process="signal"))
    bad_events = make_events(rng, 40, process="ggg")
    w = bad_events["weight"].copy()
    w[5] = np.nan
    bad_events["weight"] = w
    b = write_ntuple(tmp_path / "b.root", bad_events)
    got = []
    with pytest.raises(InputError, match=r"b.root: branch 'weight' has 1 NaN/inf value.*entry 5"):
        for chunk in iterate_events([a, b], step_size=40):
            got.append((chunk.files[0], chunk.n_events))
    assert got == [(str(a), 40), (str(a), 40), (str(a), 10)]  # every chunk of a before the error of b
    it = iterate_events([a, b], step_size=40)
    assert next(it).n_events == 40
    it.close()  # stops while the next chunk is being read: no error, files closed
    assert read_events([a, b], max_events=50).n_events == 50

"""bumphunt.events.preselection: cuts against an independent per-event recomputation, parallel ranges, whole files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from ntuple_fixture import default_meta, make_events, write_ntuple

from bumphunt.events import PreselectedFile, preselect, preselect_files
from bumphunt.events.cutflow import CutFlow
from bumphunt.events.cuts import PreselectionCuts
from bumphunt.events.detector import Resolution
from bumphunt.events.reader import read_events
from bumphunt.events.three_photon import load_three_photon
from bumphunt.kinematics import Beam, invariant_mass, p4_from_spherical

DEG = np.pi / 180


def reference(raw: dict, cuts: PreselectionCuts, beam: Beam):
    """Per-event Python loop, written independently of the vectorised implementation."""
    off = np.concatenate([[0], np.cumsum(raw["ngamma"])])
    toff = np.concatenate([[0], np.cumsum(raw["ntrack"])])
    g, trk = raw["gamma"], raw["track"]
    flow = np.zeros(5, dtype=int)
    kept = []
    for e in range(len(raw["event"])):
        flow[0] += 1
        sl = range(off[e], off[e + 1])
        good = [c for c in sl if g["E"][c] > 0.1 and 17 * DEG < g["theta"][c] < 150 * DEG and abs(g["time"][c]) < 200]
        if cuts.multiplicity == "exactly" and len(good) != 3:
            continue
        if len(good) < 3:
            continue
        flow[1] += 1
        top = sorted(good, key=lambda c: -g["E"][c])[:3]
        tot = sum(p4_from_spherical(g["E"][c], g["theta"][c], g["phi"][c]) for c in top)
        m = float(np.sqrt(max(tot[3] ** 2 - tot[0] ** 2 - tot[1] ** 2 - tot[2] ** 2, 0)))
        if not (0.8 * beam.sqrt_s < m < 1.05 * beam.sqrt_s):
            continue
        flow[2] += 1
        times = [g["time"][c] for c in top]
        if max(times) - min(times) >= cuts.time_spread_max:
            continue
        flow[3] += 1
        has_good_track = False
        for t in range(toff[e], toff[e + 1]):
            th = np.arctan2(np.hypot(trk["px"][t], trk["py"][t]), trk["pz"][t])
            if abs(trk["dr"][t]) < 1 and abs(trk["dz"][t]) < 3 and 17 * DEG < th < 150 * DEG:
                has_good_track = True
        if has_good_track:
            continue
        flow[4] += 1
        kept.append((e, [c - off[e] for c in top]))
    return flow, kept


@pytest.mark.parametrize("multiplicity", ["exactly", "at_least"])
def test_cutflow_matches_independent_recomputation(events, raw: dict, multiplicity: str) -> None:
    beam = Beam.belle2()
    cuts = PreselectionCuts(multiplicity=multiplicity, time_spread_max=50.0)
    out, cf = preselect(events, beam=beam, cuts=cuts)
    flow, kept = reference(raw, cuts, beam)
    assert cf.counts[:, 0].tolist() == flow.tolist()
    # every cut removes something in this fixture, so the test exercises each of them
    assert np.all(np.diff(flow) < 0)
    np.testing.assert_allclose(cf.yields[:, 0], 0.5 * flow)
    np.testing.assert_allclose(cf.sumw2[:, 0], 0.25 * flow)
    assert out["event"].tolist() == [e for e, _ in kept]
    # the three kept photons are the three most energetic passing ones, in descending energy
    off = np.concatenate([[0], np.cumsum(raw["ngamma"])])
    for row, (e, local) in enumerate(kept):
        np.testing.assert_array_equal(out["E"][row], raw["gamma"]["E"][off[e] + np.array(local)])
    assert np.all(np.diff(out["E"], axis=1) <= 0)


def test_at_least_keeps_more_than_exactly(events) -> None:
    _, cf_exact = preselect(events, cuts=PreselectionCuts(multiplicity="exactly"))
    _, cf_least = preselect(events, cuts={"multiplicity": "at_least"})
    assert cf_least.count("photon_multiplicity") > cf_exact.count("photon_multiplicity")


def test_mggg_window_uses_beam_sqrt_s(events) -> None:
    """Same events, lower beam energy: the window moves and the kept events satisfy it for that beam."""
    for beam in (Beam.belle2(), Beam(e_her=6.0, e_ler=3.5)):
        out, cf = preselect(events, beam=beam, cuts={"veto_good_tracks": False, "time_spread_max": 1e9})
        p4 = p4_from_spherical(out["E"], out["theta"], out["phi"])
        m = invariant_mass(p4[:, 0], p4[:, 1], p4[:, 2])
        assert np.all(m > 0.8 * beam.sqrt_s) and np.all(m < 1.05 * beam.sqrt_s)
    out_low, _ = preselect(events, beam=Beam(e_her=6.0, e_ler=3.5))
    out_b2, _ = preselect(events, beam=Beam.belle2())
    assert len(out_low["event"]) != len(out_b2["event"])


def test_contract_keys_truth_and_covariance(events, raw: dict) -> None:
    out, _ = preselect(events)
    n = len(out["event"])
    for key in ("E", "theta", "phi", "time", "region", "mc_E", "mc_theta", "mc_phi"):
        assert out[key].shape == (n, 3), key
    assert out["cov"].shape == (n, 3, 3, 3)
    for key in ("event", "process", "weight", "mc_ma", "truth_a1", "truth_a2", "truth_recoil"):
        assert out[key].shape == (n,), key
    # covariance from the ntuple's cov branches (fixture: the default resolution, diagonal)
    np.testing.assert_allclose(out["cov"], Resolution().covariance(out["E"], out["region"]), rtol=1e-12)
    # truth positions point at the photons whose mc_E is the true one; the recoil photon has E_cm = (s - m^2)/(2 sqrt s)
    rows = np.flatnonzero((out["truth_a1"] >= 0) & (out["truth_a2"] >= 0) & (out["truth_recoil"] >= 0))
    assert len(rows) > 0.8 * n
    sets = np.sort(np.stack([out["truth_a1"], out["truth_a2"], out["truth_recoil"]], axis=1)[rows], axis=1)
    assert np.all(sets == [0, 1, 2])
    beam = Beam.belle2()
    rec = out["truth_recoil"][rows]
    p4 = p4_from_spherical(out["mc_E"][rows, rec], out["mc_theta"][rows, rec], out["mc_phi"][rows, rec])
    np.testing.assert_allclose(beam.to_cm(p4)[:, 3], (beam.s - 1.5**2) / (2 * beam.sqrt_s), rtol=1e-9)


def test_covariance_from_resolution_without_cov_branches(tmp_path: Path, rng: np.random.Generator) -> None:
    ev = read_events(write_ntuple(tmp_path / "nocov.root", make_events(rng, 200, with_cov=False)))
    out, _ = preselect(ev)
    np.testing.assert_allclose(out["cov"], Resolution().covariance(out["E"], out["region"]))
    assert np.all(out["cov"][..., 0, 0] > 0)


def _toymc():
    try:
        from bumphunt import toymc
    except ImportError:
        return None
    return toymc if hasattr(toymc, "generate") else None


@pytest.mark.skipif(_toymc() is None, reason="bumphunt.toymc.generate not available")
def test_toymc_yields_scale_with_luminosity(tmp_path: Path) -> None:
    """Same seed and MC sizes at 1 and 2.5 fb^-1: identical selected events, weighted yields x 2.5."""
    toymc = _toymc()
    cfg = {"backgrounds": {"ggg": 2000, "pi0gg": 1000}}
    flows = []
    for lumi in (1.0, 2.5):
        files = toymc.generate(tmp_path / f"l{lumi}", lumi_fb=lumi, seed=4, samples=["ggg", "pi0gg"], data=False, config=cfg)
        flows.append(preselect(read_events([files["ggg"], files["pi0gg"]]))[1])
    np.testing.assert_array_equal(flows[0].counts, flows[1].counts)
    np.testing.assert_allclose(flows[1].yields, 2.5 * flows[0].yields, rtol=1e-12)
    # the weighted yield before cuts is sigma x L for each process
    meta = read_events(files["ggg"]).sample
    assert flows[1].yield_("all", "ggg") == pytest.approx(meta["xsec_pb"] * 1000 * 2.5, rel=1e-9)


@pytest.mark.parametrize("multiplicity", ["exactly", "at_least"])
def test_parallel_event_ranges_give_the_single_pass_result(events, monkeypatch: pytest.MonkeyPatch, multiplicity: str) -> None:
    """Large chunks are split into event ranges pre-selected in threads: same dict, same cut flow."""
    import bumphunt.events.preselection as ps

    cuts = PreselectionCuts(multiplicity=multiplicity)
    monkeypatch.setattr(ps, "PARALLEL_MIN_EVENTS", 10**9)
    single, flow1 = preselect(events, cuts=cuts)
    monkeypatch.setattr(ps, "PARALLEL_MIN_EVENTS", 70)
    monkeypatch.setattr(ps.os, "cpu_count", lambda: 4)
    assert len(ps._partition(events.n_events)) == 4
    split, flow4 = preselect(events, cuts=cuts)
    assert single.keys() == split.keys()
    for key in single:
        np.testing.assert_array_equal(split[key], single[key], err_msg=key)
    np.testing.assert_array_equal(flow4.counts, flow1.counts)
    np.testing.assert_allclose(flow4.yields, flow1.yields, rtol=1e-12)
    # without an event branch the event numbers are the rows of the whole chunk
    no_event = {k: v for k, v in events.items() if k != "event"}
    np.testing.assert_array_equal(preselect(no_event, cuts=cuts)[0]["event"], np.flatnonzero(np.isin(events["event"], single["event"])))


def test_preselect_files_writes_three_photon_files_and_cut_flows(tmp_path: Path, rng: np.random.Generator) -> None:
    a = write_ntuple(tmp_path / "in" / "sig.root", make_events(rng, 300, process="signal"), meta=default_meta("signal", n=300))
    b = write_ntuple(tmp_path / "in" / "bkg.root", make_events(rng, 200, process="ggg"), meta=default_meta("ggg", n=200))
    results = preselect_files(str(tmp_path / "in" / "*.root"), tmp_path / "out", step_size=70, show_progress=False)
    assert list(results) == ["bkg", "sig"]
    for stem, path in (("sig", a), ("bkg", b)):
        res = results[stem]
        assert isinstance(res, PreselectedFile) and res.source == path
        whole, flow = preselect(read_events(path))
        np.testing.assert_array_equal(res.cutflow.counts, flow.counts)  # chunks add up to the single pass
        assert res.n_selected == len(whole["event"]) == flow.count("no_good_track")
        back = load_three_photon(res.events)
        for key, value in whole.items():
            np.testing.assert_array_equal(back[key], value, err_msg=key)
        assert res.cutflow_md.read_text().startswith(f"# Pre-selection cut flow: {path.name}")
        np.testing.assert_array_equal(CutFlow.from_dict(json.loads(res.cutflow_json.read_text())).counts, flow.counts)
        assert read_events(res.events).sample["cutflow"] == flow.to_dict()
    with pytest.raises(AttributeError):
        results["sig"].n_selected = 0  # frozen

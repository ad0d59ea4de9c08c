"""Scans on raw ntuples (inputs.kind: events): pre-selection, kinematic fit and candidates run inside the scan."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from bumphunt.chain import candidate_masses
from bumphunt.cli import cli
from bumphunt.errors import InputError
from bumphunt.events import read_events, write_events
from bumphunt.kinematics import Beam

M_INJ = 1.5


@pytest.fixture(scope="module")
def ntuples(tmp_path_factory):
    """A ggg background ntuple and a signal ntuple at 1.5 GeV (raw events, toy MC format)."""
    from bumphunt.toymc.processes import simulate_background, simulate_signal

    d = tmp_path_factory.mktemp("events")
    rng = np.random.default_rng(11)
    bkg = simulate_background("ggg", 60_000, rng=rng)
    bkg["event"] = np.arange(len(bkg["weight"]))
    sig = simulate_signal(M_INJ, 400, rng=rng)
    sig["event"] = np.arange(len(sig["weight"]))
    files = [write_events(d / "ggg.root", bkg, meta={"process": "ggg"}),
             write_events(d / "signal.root", sig, meta={"process": "signal", "mass": M_INJ})]
    return d, files


def _by_hand(files):
    """The same chain written out step by step on all events at once."""
    from bumphunt.events import preselect
    from bumphunt.events.candidates import diphoton_candidates
    from bumphunt.kinfit import apply_to_events

    beam = Beam.belle2()
    out = []
    for f in files:
        three, _ = preselect(read_events(f), beam=beam)
        out.append(diphoton_candidates(apply_to_events(three, beam=beam), beam=beam)["mgg"])
    return np.concatenate(out)


def test_chain_equals_the_steps_by_hand_and_is_chunk_invariant(ntuples) -> None:
    _, files = ntuples
    mgg, summary = candidate_masses(files)
    np.testing.assert_array_equal(mgg, _by_hand(files))
    assert summary.n_events == 60_400 and summary.n_candidates == 3 * summary.n_preselected == len(mgg)
    assert list(summary.files) == [str(f) for f in files]
    # chunks of 7000 events (chunk edges inside the files) give the same candidates
    small, s2 = candidate_masses(files, step_size=7000)
    np.testing.assert_array_equal(small, mgg)
    assert s2.as_dict() == summary.as_dict()
    # without the kinematic fit, M_gg is that of the measured photons: a different, wider peak
    raw, _ = candidate_masses(files, kinematic_fit=False)
    assert len(raw) == len(mgg) and not np.array_equal(raw, mgg)


def test_scan_on_raw_ntuples_finds_the_injected_signal(ntuples, tmp_path) -> None:
    d, files = ntuples
    cfg = {
        "inputs": {"kind": "events", "files": [str(f) for f in files]},
        "mass": {"min": 0.8, "max": 2.6},
        "lee": {"toys": 0},
        "execution": {"workers": 1},
        "output": {"dir": str(tmp_path / "out")},
    }
    path = tmp_path / "scan.yaml"
    path.write_text(yaml.safe_dump(cfg))
    r = CliRunner().invoke(cli, ["scan", str(path), "--no-plots"])
    assert r.exit_code == 0, r.output
    assert "event chain: 60400 events" in r.output
    result = json.loads((tmp_path / "out" / "scan_result.json").read_text())
    pts = [p for p in result["points"] if not p["vetoed"] and p["converged"]]
    # the scan saw exactly the candidates of the chain
    mgg = _by_hand(files)
    for p in pts[:: max(1, len(pts) // 7)]:
        lo, hi = p["window"]
        assert p["n_events"] == np.count_nonzero((mgg >= lo) & (mgg <= hi))
    # the largest excess sits at the injected mass and is significant
    best = max(pts, key=lambda p: p["z_local"])
    sigma = 0.004 + 0.009 * M_INJ  # resolution of the default analytic signal model
    assert abs(best["mass"] - M_INJ) < 2 * sigma, best
    assert best["z_local"] > 4.0
    # far from it, no excess beyond what fluctuations give
    far = [p["z_local"] for p in pts if abs(p["mass"] - M_INJ) > 0.3]
    assert max(far) < 4.0


def test_bad_event_inputs_are_clean_errors(ntuples, tmp_path) -> None:
    _, files = ntuples
    base = {"inputs": {"kind": "events", "files": [str(files[0])]}, "lee": {"toys": 0},
            "output": {"dir": str(tmp_path / "o")}}
    cases = [
        ({"selection": {"model": "no_such_selector"}}, "inputs.selection.model"),
        ({"alias_file": "missing_aliases.yaml"}, "inputs.alias_file"),
        ({"energy_unit": "keV"}, "energy_unit"),
        ({"tree": "nope"}, "nope"),
    ]
    for extra, needle in cases:
        cfg = json.loads(json.dumps(base))
        cfg["inputs"].update(extra)
        path = tmp_path / "bad.yaml"
        path.write_text(yaml.safe_dump(cfg))
        r = CliRunner().invoke(cli, ["scan", str(path), "--no-plots"])
        assert r.exit_code != 0, (extra, r.output)
        assert needle in r.output and "Traceback" not in r.output, (extra, r.output)
    assert not (tmp_path / "o" / "scan_result.json").exists()
    with pytest.raises(InputError, match="working point"):
        candidate_masses(files[:1], selector=_FakeSelector(), working_point=1.5)


class _FakeSelector:
    threshold = 0.5

    def apply(self, candidates, events, *, beam=None):  # noqa: ANN001, ANN201
        return np.ones(len(candidates["mgg"]))


def test_selector_cut_keeps_candidates_above_the_working_point(ntuples) -> None:
    _, files = ntuples

    class Half(_FakeSelector):
        def apply(self, candidates, events, *, beam=None):  # noqa: ANN001, ANN201
            return (candidates["mgg"] > 2.0).astype(float)

    mgg_all, _ = candidate_masses(files)
    mgg, summary = candidate_masses(files, selector=Half())  # stored working point 0.5
    np.testing.assert_array_equal(mgg, mgg_all[mgg_all > 2.0])
    assert summary.n_selected == len(mgg) < summary.n_candidates

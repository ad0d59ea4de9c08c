"""bumphunt.events.cutflow and cuts: cut flows per process, adding and serialising them; the cut configuration."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from ntuple_fixture import default_meta, make_events, write_ntuple

from bumphunt.errors import ConfigError, InputError
from bumphunt.events import preselect
from bumphunt.events.cutflow import CutFlow
from bumphunt.events.cuts import PreselectionCuts
from bumphunt.events.reader import read_events


def test_cutflow_per_process_add_and_serialise(tmp_path: Path, rng: np.random.Generator) -> None:
    a = write_ntuple(tmp_path / "a.root", make_events(rng, 300, process="signal", weight=0.1), meta=default_meta("signal"))
    b = write_ntuple(tmp_path / "b.root", make_events(rng, 200, process="ggg", weight=2.0), meta=default_meta("ggg"))
    ev = read_events([a, b])
    _, cf = preselect(ev)
    assert cf.processes == ["signal", "ggg"]
    assert cf.count("all", "signal") == 300 and cf.count("all", "ggg") == 200
    assert cf.yield_("all", "ggg") == pytest.approx(400.0)
    _, cfa = preselect(read_events(a))
    _, cfb = preselect(read_events(b))
    total = cfa + cfb
    np.testing.assert_array_equal(total.counts, cf.counts)
    np.testing.assert_allclose(total.yields, cf.yields)
    back = CutFlow.from_dict(cf.to_dict())
    np.testing.assert_array_equal(back.counts, cf.counts)
    np.testing.assert_allclose(back.sumw2, cf.sumw2)
    md = cf.to_markdown()
    assert md.count("\n") == 2 + len(cf.cuts)
    assert all(line.count("|") == 2 + 3 * 2 for line in md.strip().splitlines())
    eff = cf.efficiency()
    assert np.all(np.diff(eff, axis=0) <= 0) and np.all(eff[0] == 1)


def test_weighted_yields_scale_with_luminosity(tmp_path: Path) -> None:
    """Weights = xsec * lumi / N: the same events at twice the luminosity give twice the yield."""
    ev = make_events(np.random.default_rng(5), 300)
    yields = []
    for lumi in (1.0, 2.0):
        ev["weight"] = np.full(300, 50.0 * 1000 * lumi / 300)  # 50 pb, lumi in fb^-1
        out, cf = preselect(read_events(write_ntuple(tmp_path / f"l{lumi}.root", ev)))
        yields.append(cf.yields[:, 0])
    np.testing.assert_allclose(yields[1], 2 * yields[0])
    assert yields[0][0] == pytest.approx(50.0 * 1000)


def test_config_yaml_and_errors(tmp_path: Path) -> None:
    p = tmp_path / "cuts.yaml"
    p.write_text("preselection:\n  photon_e_min: 0.2\n  multiplicity: at_least\n")
    cuts = PreselectionCuts.from_config(p)
    assert cuts.photon_e_min == 0.2 and cuts.multiplicity == "at_least" and cuts.mggg_min == 0.8
    p.write_text("photon_emin: 0.2\n")
    with pytest.raises(ConfigError, match="allowed keys"):
        PreselectionCuts.from_config(p)
    p.write_text("multiplicity: four\n")
    with pytest.raises(ConfigError, match="multiplicity"):
        PreselectionCuts.from_config(p)
    with pytest.raises(InputError, match="no 'track'"):
        preselect({"gamma": None, "process": np.zeros(1), "weight": np.zeros(1)})

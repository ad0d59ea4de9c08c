"""bumphunt.events.three_photon: three-photon files round trip, and the reader reads them too."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bumphunt.events import preselect
from bumphunt.events.reader import read_events
from bumphunt.events.three_photon import combine_three_photon, load_three_photon, save_three_photon


def test_save_load_roundtrip_and_io_reads_it(tmp_path: Path, events) -> None:
    out, _ = preselect(events)
    out["fit_E"] = out["E"] * 1.01
    out["kinfit_chi2"] = np.linspace(0, 5, len(out["event"]))
    out["kinfit_converged"] = np.ones(len(out["event"]), dtype=bool)
    path = save_three_photon(tmp_path / "three.root", out, meta={"process": "signal"})
    back = load_three_photon(path)
    assert set(back) == set(out)
    for key, value in out.items():
        np.testing.assert_array_equal(back[key], value, err_msg=key)
        assert back[key].dtype == value.dtype, key
    ev = read_events(path)
    assert ev.sample["stage"] == "preselected"
    again, cf = preselect(ev)
    np.testing.assert_array_equal(again["E"], out["E"])
    # an empty selection round-trips too
    empty = {k: v[:0] for k, v in out.items()}
    back = load_three_photon(save_three_photon(tmp_path / "empty.root", empty))
    assert back["E"].shape == (0, 3) and back["cov"].shape == (0, 3, 3, 3)


def test_combine_three_photon(events) -> None:
    out, _ = preselect(events)
    half = len(out["event"]) // 2
    parts = [{k: v[:half] for k, v in out.items()}, {k: v[half:] for k, v in out.items()}]
    both = combine_three_photon(parts)
    assert both.keys() == out.keys()
    for key, value in out.items():
        np.testing.assert_array_equal(both[key], value, err_msg=key)
    assert combine_three_photon([]) == {}

"""bumphunt.events.aliases: alias maps for ntuples with other branch names and units."""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import numpy as np
import pytest
from ntuple_fixture import flat_branches, to_mev, write_ntuple

from bumphunt.errors import ConfigError, SchemaError
from bumphunt.events.aliases import load_aliases
from bumphunt.events.reader import read_events


def test_alias_map_basf2_like(tmp_path: Path, events_raw: dict) -> None:
    """A basf2-like tree: other names, MeV, no process branch, given through a YAML alias map."""
    renames = {"event": "__event__", "weight": "__weight__", "gamma_E": "E", "gamma_theta": "theta", "gamma_phi": "phi",
               "gamma_time": "clusterTiming", "gamma_region": "clusterReg", "track_px": "trk_px", "track_py": "trk_py",
               "track_pz": "trk_pz", "track_charge": "trk_charge", "track_dr": "trk_dr", "track_dz": "trk_dz"}
    br = flat_branches(to_mev(events_raw))
    basf2 = {renames[k]: v for k, v in br.items() if k in renames}
    p = write_ntuple(tmp_path / "basf2.root", events_raw, branches=basf2, tree="gammas")
    yaml_text = "tree: gammas\nenergy_unit: MeV\nbranches:\n" + "".join(f"  {k}: {v}\n" for k, v in renames.items()) + \
        "constants:\n  process: data\n"
    alias = tmp_path / "aliases.yaml"
    alias.write_text(yaml_text)
    ev = read_events(p, aliases=alias)
    ref = read_events(write_ntuple(tmp_path / "ref.root", events_raw))
    np.testing.assert_allclose(ak.to_numpy(ak.flatten(ev["gamma"].E)), ak.to_numpy(ak.flatten(ref["gamma"].E)), rtol=1e-12)
    np.testing.assert_array_equal(ev["process"], 100)
    np.testing.assert_array_equal(ev["event"], ref["event"])
    # without the alias map the schema branches are missing
    with pytest.raises(SchemaError, match="no tree 'events'"):
        read_events(p)
    with pytest.raises(SchemaError, match=r"branch 'clusterTime' \(schema 'gamma_time', via the alias map\)"):
        read_events(p, aliases={**load_aliases(alias), "branches": {**renames, "gamma_time": "clusterTime"}})


def test_alias_map_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("branches:\n  gamma_energy: E\n")
    with pytest.raises(ConfigError, match="bad.yaml: branches"):
        load_aliases(bad)
    bad.write_text("energy_units: MeV\n")
    with pytest.raises(ConfigError, match="allowed keys"):
        load_aliases(bad)
    with pytest.raises(ConfigError, match="unknown process 'qcd'"):
        load_aliases({"constants": {"process": "qcd"}})

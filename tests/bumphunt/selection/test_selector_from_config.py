"""Training from a configuration (``train_from_config``): overrides, in-memory events, result and files."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from bumphunt.errors import ConfigError
from bumphunt.selection.from_config import QUICK_SETTINGS, resolve_config, train_from_config
from bumphunt.selection.masses import mass_grid
from bumphunt.selection.selector import PunziSelector, TrainConfig
from bumphunt.selection.training import train_selector
from bumphunt.selection.training_data import prepare_training_data
from bumphunt.toymc.three_photon import synthetic_sample

#: Tiny settings shared by the configuration and the explicit calls below.
SETTINGS = {"heldout": 1, "lumi_fb": 0.2, "weight_lumi_fb": 0.2, "seed": 4, "plots": False,
            "network": {"hidden_layers": 1, "units": 8},
            "training": {"pretrain_epochs": 2, "punzi_epochs": 4, "patience": 10, "punzi_learning_rate": 1e-3}}


@pytest.fixture(scope="module")
def events() -> tuple[dict, dict]:
    return synthetic_sample(masses=mass_grid(0.5, 9.5, n=6), n_per_mass=150, n_background=5000, seed=8)


def test_resolve_config_overrides() -> None:
    cfg = resolve_config({"heldout": 7}, out_dir="elsewhere", quick=True)
    assert cfg["output"] == "elsewhere" and cfg["heldout"] == 4
    for section, values in QUICK_SETTINGS.items():
        assert {k: cfg[section][k] for k in values} == values
    assert resolve_config({"heldout": [1.0]}, quick=True)["heldout"] == [1.0]
    with pytest.raises(ConfigError, match="punzi_epochs"):
        resolve_config({"training": {"punzi_epoch": 3}})


def test_events_in_memory_match_the_explicit_calls(events, tmp_path) -> None:  # noqa: ANN001
    """train_from_config(events=...) gives the same selector as prepare_training_data + train_selector with the same settings."""
    ev, ng = events
    res = train_from_config(SETTINGS, out_dir=tmp_path / "sel", events=ev, n_generated=ng)
    assert dataclasses.is_dataclass(res)
    with pytest.raises(dataclasses.FrozenInstanceError):
        res.summary = {}  # type: ignore[misc]
    data = prepare_training_data(ev, n_generated=ng, heldout=1, lumi_fb=0.2, weight_lumi_fb=0.2, seed=4)
    ref = train_selector(data, TrainConfig(hidden_layers=1, units=8, pretrain_epochs=2, punzi_epochs=4, patience=10, seed=4))
    np.testing.assert_array_equal(res.training.outputs, ref.outputs)
    assert res.training.working_point.threshold == ref.working_point.threshold
    # files: model with the configuration in its metadata, summary.json as returned
    assert res.model_dir == tmp_path / "sel" / "model" and res.summary_file == tmp_path / "sel" / "summary.json"
    assert json.loads(res.summary_file.read_text()) == json.loads(json.dumps(res.summary))
    assert res.summary["model"] == str(res.model_dir) and res.plots == {} and res.data_mc_chi2 is None
    assert set(res.mean_sigma_min_pb) == {"punzi", "bce", "cut_based"}
    loaded = PunziSelector.load(res.model_dir)
    assert loaded.metadata["config"]["training"]["punzi_epochs"] == 4 and loaded.metadata["config"]["output"] == str(tmp_path / "sel")


def test_events_need_n_generated_and_no_inputs(events, tmp_path) -> None:  # noqa: ANN001
    ev, ng = events
    with pytest.raises(ConfigError, match="inputs"):
        train_from_config({**SETTINGS, "inputs": ["x.root"]}, out_dir=tmp_path, events=ev, n_generated=ng)
    with pytest.raises(ConfigError, match="n_generated"):
        train_from_config(SETTINGS, out_dir=tmp_path, events=ev)

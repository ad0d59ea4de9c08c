"""Config loading: defaults, unknown keys and bad values named in the error."""

from __future__ import annotations

from pathlib import Path

import pytest

from bumphunt.errors import ConfigError
from signal_models._common.config import load_config

SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "lumi_fb": {"type": "number", "exclusiveMinimum": 0, "default": 0.1},
        "engine": {"enum": ["vectorised", "zfit"], "default": "vectorised"},
        "mass": {
            "type": "object",
            "additionalProperties": False,
            "default": {},
            "properties": {"step": {"type": "number", "exclusiveMinimum": 0, "default": 0.05}},
        },
    },
}


def test_defaults_filled() -> None:
    cfg = load_config(None, SCHEMA)
    assert cfg == {"lumi_fb": 0.1, "engine": "vectorised", "mass": {"step": 0.05}}


def test_unknown_key_named(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("mass:\n  stpe: 0.1\n")
    with pytest.raises(ConfigError, match=r"c.yaml: mass: .*stpe.*allowed keys: step"):
        load_config(path, SCHEMA)


def test_bad_value_named() -> None:
    with pytest.raises(ConfigError, match=r"mass.step: -1"):
        load_config({"mass": {"step": -1}}, SCHEMA)
    with pytest.raises(ConfigError, match=r"engine: .*allowed values"):
        load_config({"engine": "fast"}, SCHEMA)


def test_missing_and_non_mapping(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml", SCHEMA)
    bad = tmp_path / "list.yaml"
    bad.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(bad, SCHEMA)

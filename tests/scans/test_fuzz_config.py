"""Property-based tests of the configuration loaders: malformed configurations give ``ConfigError`` naming the file or key.

Loaders: the scan (``scans.load_scan_config``), the toy MC
(``bumphunt.toymc.load_toymc_config``), the selector training
(``bumphunt.selection.from_config.resolve_config``), the pre-selection cuts
(``bumphunt.events.PreselectionCuts.from_config``) and the analytic signal
model of a scan configuration. Each gets its complete default configuration
with one to three keys replaced by any YAML value, removed or added; any
value at all in place of the configuration; and files of arbitrary bytes.
The loader either returns a configuration or raises a ``ConfigError``
(``BumphuntError``) whose message starts with the file or source name; never
another exception type.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from fuzz_dicts import damaged as damaged_dict
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import scans
from bumphunt.events import PreselectionCuts
from bumphunt.selection.from_config import resolve_config
from bumphunt.toymc import load_toymc_config
from signal_models._common.errors import ConfigError

FUZZ = settings(max_examples=50, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


def _preselection(config: Any) -> Any:
    return PreselectionCuts.from_config(config)


#: loader, its complete default configuration, and the source name it uses for a mapping
LOADERS: dict[str, tuple[Callable[[Any], Any], dict[str, Any], str]] = {
    "scan": (scans.load_scan_config, scans.load_scan_config(None), "scan config"),
    "toymc": (load_toymc_config, load_toymc_config(None), "config"),
    "selector": (resolve_config, resolve_config(None), "config"),
    "preselection": (_preselection, PreselectionCuts().to_dict(), "preselection config"),
}

yaml_leaves = st.one_of(
    st.none(), st.booleans(), st.integers(-(10**6), 10**6), st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=6),
    st.sampled_from([0, -1, 0.0, 1e308, "GeV", "MeV", "auto", "toys", "asymptotic", "blind", "windows", "events", "candidates", "pi0"]),
)
yaml_values = st.recursive(yaml_leaves, lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)),
                           max_leaves=6)


def damaged(base: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """``base`` with one to three keys replaced by any value, removed, or added."""
    return damaged_dict(base, yaml_values)


def _load(name: str, config: Any, source: str) -> None:
    """Load ``config``; a failure must be a ConfigError whose message starts with ``source``."""
    loader = LOADERS[name][0]
    try:
        loader(config)
    except ConfigError as exc:  # and no other exception type
        assert str(exc).startswith(source), (source, str(exc))


@pytest.mark.parametrize("name", sorted(LOADERS))
def test_defaults_load(name: str) -> None:
    loader, base, _ = LOADERS[name]
    loader(copy.deepcopy(base))


@pytest.mark.parametrize("name", sorted(LOADERS))
def test_damaged_mapping_is_loaded_or_named(name: str) -> None:
    _, base, source = LOADERS[name]

    @FUZZ
    @given(damaged(base))
    def check(config: dict[str, Any]) -> None:
        _load(name, config, source)

    check()


@pytest.mark.parametrize("name", sorted(LOADERS))
def test_damaged_yaml_file_is_loaded_or_named(name: str, tmp_path: Path) -> None:
    _, base, _ = LOADERS[name]
    path = tmp_path / f"{name}.yaml"

    @FUZZ
    @given(damaged(base))
    def check(config: dict[str, Any]) -> None:
        path.write_text(yaml.safe_dump(config))
        _load(name, path, str(path))

    check()


@pytest.mark.parametrize("name", sorted(LOADERS))
def test_any_value_in_place_of_a_configuration(name: str, tmp_path: Path) -> None:
    """Any object in place of the configuration (a list, a number, bytes...), and a file of any bytes."""
    path = tmp_path / f"{name}.yaml"

    @FUZZ
    @given(st.one_of(yaml_values, st.binary(max_size=60)), st.binary(max_size=120))
    def check(value: Any, content: bytes) -> None:
        try:
            LOADERS[name][0](value)
        except ConfigError:
            pass
        path.write_bytes(content)
        _load(name, path, str(path))

    check()


@pytest.mark.parametrize("name", sorted(LOADERS))
def test_missing_file_and_folder_are_named(name: str, tmp_path: Path) -> None:
    for path in (tmp_path / "missing.yaml", tmp_path):
        with pytest.raises(ConfigError) as info:
            LOADERS[name][0](path)
        assert str(info.value).startswith(str(path)), str(info.value)


@FUZZ
@given(st.dictionaries(st.sampled_from(["sigma_coeffs", "efficiency_coeffs", "mass_range", "alpha_l", "n_l", "comb_fraction", "unknown"]),
                       yaml_values, min_size=1, max_size=3))
def test_analytic_signal_model_section(section: dict[str, Any]) -> None:
    """A scan configuration's analytic signal model: a ConfigError naming the key, or a model that gives shapes."""
    try:
        cfg = scans.load_scan_config({"analytic_signal_model": section})
    except ConfigError as exc:
        assert str(exc).startswith("scan config: "), str(exc)
        return
    from scans.inputs import load_signal_model

    model = load_signal_model(None, cfg["analytic_signal_model"])
    lo, hi = model.mass_range
    model.efficiency(0.5 * (lo + hi))


@FUZZ
@given(st.sampled_from([("mggg_min", "mggg_max"), ("photon_theta_min", "photon_theta_max")]), st.floats(0, 10), st.floats(0, 10))
def test_preselection_ranges_in_any_order(keys: tuple[str, str], low: float, high: float) -> None:
    """Inconsistent pre-selection ranges (minimum not below maximum) name the source, as every other bad value."""
    try:
        cuts = PreselectionCuts.from_config({keys[0]: low, keys[1]: high})
    except ConfigError as exc:
        assert str(exc).startswith("preselection config: ") and keys[0] in str(exc), str(exc)
        return
    assert getattr(cuts, keys[0]) < getattr(cuts, keys[1])

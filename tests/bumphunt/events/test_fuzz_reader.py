"""Property-based tests of the ntuple reader, the alias map and the file helpers: ``InputError`` / ``ConfigError`` naming the file or key.

* A good ntuple with random bytes flipped and/or cut short: reading it,
  its metadata, loading it as a three-photon file or pre-selecting it either
  works or raises ``InputError`` naming the file; never uproot's or numpy's
  exceptions.
* Ntuples written with branches dropped, renamed, retyped (int/float/bool),
  made scalar instead of jagged (or the reverse), scaled (MeV, negative,
  huge) or holding NaN/inf, in another tree, with damaged metadata, read
  with or without a unit and through random alias maps: ``InputError`` /
  ``SchemaError`` / ``ConfigError`` naming the file (or the alias map), or
  events whose energies are finite.
* Alias maps: any mapping or file content gives a validated map or a
  ``ConfigError`` naming the key; ``expand_paths`` with any path or pattern
  gives files or an ``InputError`` naming it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import pytest
import uproot
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ntuple_fixture import default_meta, flat_branches, make_events, write_ntuple

from bumphunt.errors import ConfigError, InputError
from bumphunt.events import expand_paths, load_aliases, load_three_photon, preselect_files, read_events, read_meta
from bumphunt.events.aliases import ALIAS_SCHEMA, SCHEMA_NAMES
from bumphunt.events.baskets import BASKET_READER
from signal_models._common.errors import BumphuntError

FUZZ = settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

EVENTS = make_events(np.random.default_rng(5), 200)
BRANCHES = flat_branches(EVENTS)


@pytest.fixture(scope="module")
def good_bytes(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = write_ntuple(tmp_path_factory.mktemp("fuzz") / "good.root", EVENTS, meta=default_meta(n=200))
    return path.read_bytes()


@pytest.fixture(autouse=True)
def keep_direct_reader() -> Any:
    """A damaged file must not switch the process-wide direct basket reader off for the other tests."""
    reason = BASKET_READER.reason
    yield
    BASKET_READER.reason = reason


def _read(path: Path, what: str, out: Path, **options: Any) -> Any:
    """One reading path; a failure must be the package's error naming the file (or the alias map)."""
    try:
        if what == "read":
            return read_events(path, **options)
        if what == "meta":
            return read_meta(path)
        if what == "three-photon":
            return load_three_photon(path)
        return preselect_files([path], out, **options)
    except (InputError, ConfigError) as exc:  # and no other exception type
        message = str(exc)
        assert str(path) in message or message.startswith(("aliases", "energy_unit")), message
        return exc


@FUZZ
@given(st.lists(st.tuples(st.integers(0, 10**9), st.integers(1, 255)), min_size=0, max_size=8), st.one_of(st.none(), st.floats(0.0, 1.0)),
       st.sampled_from(["read", "meta", "three-photon", "preselect"]))
def test_damaged_file(tmp_path: Path, good_bytes: bytes, flips: list[tuple[int, int]], cut: float | None, what: str) -> None:
    data = bytearray(good_bytes)
    for position, mask in flips:
        data[position % len(data)] ^= mask
    if cut is not None:
        data = data[: int(cut * (len(data) - 1))]
    path = tmp_path / "damaged.root"
    path.write_bytes(bytes(data))
    out = _read(path, what, tmp_path / "out")
    if what == "read" and not isinstance(out, BumphuntError):
        e = ak.to_numpy(ak.flatten(out["gamma"]["E"]))
        assert np.all(np.isfinite(e))


@st.composite
def branch_sets(draw: st.DrawFn) -> dict[str, Any]:
    """The branches of a good ntuple, each kept, dropped, renamed, retyped, flattened, scaled or given a NaN/inf."""
    out: dict[str, Any] = {}
    for name, value in BRANCHES.items():
        how = draw(st.sampled_from(["keep"] * 8 + ["drop", "rename", "dtype", "nan", "flatten", "scale"]))
        jagged = isinstance(value, ak.Array)
        if how == "drop":
            continue
        if how == "rename":
            name = name + "_other"
        elif how == "dtype":
            dtype = draw(st.sampled_from([np.int8, np.int32, np.uint16, np.int64, np.float32, np.bool_]))
            value = ak.values_astype(value, dtype) if jagged else np.asarray(value).astype(dtype)
        elif how == "nan":
            bad = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
            flat = np.asarray(ak.flatten(value) if jagged else value, dtype=float).copy()
            if flat.size:
                flat[draw(st.integers(0, flat.size - 1))] = bad
            value = ak.unflatten(flat, ak.num(value)) if jagged else flat
        elif how == "flatten":  # scalar where a jagged branch is expected, and the reverse
            value = np.asarray(ak.sum(value, axis=1)) if jagged else ak.unflatten(np.asarray(value), np.ones(len(value), dtype=np.int64))
        elif how == "scale":
            value = value * draw(st.sampled_from([1e3, -1.0, 0.0, 1e30]))
        out[name] = value
    return out


@FUZZ
@given(branch_sets(), st.sampled_from(["events", "other"]), st.one_of(st.none(), st.sampled_from(["GeV", "MeV"])),
       st.one_of(st.none(), st.sampled_from(['{"process": "signal"', "[1, 2]", '"text"', '{"beam": 3}', "\udcff"])),
       st.one_of(st.none(), st.dictionaries(st.sampled_from(SCHEMA_NAMES), st.sampled_from([*BRANCHES, "absent", "gamma_E_other"]), max_size=3)))
def test_ntuple_of_any_schema(tmp_path: Path, branches: dict[str, Any], tree: str, unit: str | None, meta: str | None,
                              aliases: dict[str, str] | None) -> None:
    if not branches:
        return
    path = tmp_path / "schema.root"
    try:
        with uproot.recreate(path) as f:
            f.mktree(tree, {k: (v.type if isinstance(v, ak.Array) else np.asarray(v).dtype) for k, v in branches.items()})
            f[tree].extend(branches)
            if meta is not None:
                f["bumphunt_meta"] = meta
    except Exception:  # uproot cannot write this combination: nothing to read
        return
    options = {"tree": tree, "energy_unit": unit, "aliases": aliases}
    events = _read(path, "read", tmp_path / "out", **options)
    _read(path, "meta", tmp_path / "out")
    if not isinstance(events, BumphuntError):
        if "gamma" in events and "E" in events["gamma"].fields:
            assert np.all(np.isfinite(ak.to_numpy(ak.flatten(events["gamma"]["E"]))))
        _read(path, "preselect", tmp_path / "out", **options)


alias_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=5),
              st.sampled_from(["GeV", "MeV", "keV", "data", "signal", "nonsense", *SCHEMA_NAMES[:6]])),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.sampled_from([*SCHEMA_NAMES[:8], "x", "process"]), inner, max_size=3)),
    max_leaves=6,
)
alias_maps = st.dictionaries(st.sampled_from([*ALIAS_SCHEMA["properties"], "unknown", *SCHEMA_NAMES[:4]]), alias_values, max_size=4)


@FUZZ
@given(st.one_of(alias_maps, alias_values, st.binary(max_size=40)))
def test_alias_map_of_any_value(value: Any) -> None:
    try:
        cfg = load_aliases(value)
    except ConfigError as exc:  # and no other exception type
        assert str(exc).startswith(("aliases", "config")), str(exc)
        return
    assert set(cfg) <= set(ALIAS_SCHEMA["properties"])
    assert all(isinstance(v, (int, float)) for v in cfg.get("constants", {}).values())


@FUZZ
@given(st.one_of(alias_maps.map(yaml.safe_dump), st.text(max_size=80), st.binary(max_size=80)))
def test_alias_map_file_of_any_content(tmp_path: Path, content: str | bytes) -> None:
    path = tmp_path / "aliases.yaml"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    try:
        load_aliases(path)
    except ConfigError as exc:
        assert str(exc).startswith(str(path)), str(exc)


@FUZZ
@given(st.lists(st.one_of(st.text(alphabet="ab*?[]!/.-_ ", max_size=12), st.sampled_from(["", ".", "..", "*", "[", "**/*.root", "a/../b"])),
                min_size=0, max_size=3))
def test_expand_paths_of_any_pattern(tmp_path: Path, patterns: list[str]) -> None:
    (tmp_path / "a.root").write_bytes(b"")
    (tmp_path / "b").mkdir(exist_ok=True)
    try:
        files = expand_paths([f"{tmp_path}/{p}" for p in patterns])
    except InputError as exc:
        assert "no input files given" in str(exc) or str(tmp_path) in str(exc), str(exc)
        return
    assert files and all(isinstance(f, Path) for f in files)


def test_unreadable_inputs_name_the_file(tmp_path: Path) -> None:
    for path in (tmp_path / "missing.root", tmp_path):
        for what in ("read", "meta", "three-photon", "preselect"):
            out = _read(path, what, tmp_path / "out")
            assert isinstance(out, InputError), (path, what)

"""Property-based tests of the signal-model file: malformed files and dictionaries give ``SignalModelFormatError`` naming the file.

A valid model is built without any fit (``MassFit`` entries from the known
truth curves), written as its file dictionary, and then damaged key by key
(values replaced by any JSON value, keys removed or added) or replaced by
arbitrary bytes. Loading must either give a model whose shape and efficiency
are finite numbers everywhere in its mass range, or raise
``SignalModelFormatError`` whose message names the file; never another
exception type.
"""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fuzz_dicts import damaged
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from signal_models import SignalModel, SignalShape
from signal_models.analytic import AnalyticSignalModel
from signal_models.errors import ShapeError, SignalModelFormatError
from signal_models.mass_fit import MassFit
from signal_models.synthetic import TruthCurves

#: bounded and reproducible: a few seconds per test
FUZZ = settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

SOURCE = "fuzzed_model.json"


def _valid_model_dict() -> dict[str, Any]:
    """The file dictionary of a model of five generated masses (shapes of ``TruthCurves``, no fit run)."""
    truth = TruthCurves()
    fits = []
    for m in (0.5, 1.0, 2.0, 4.0, 7.0):
        s = truth.shape(m)
        params = {k: float(getattr(s, k)) for k in ("mu", "sigma", "alpha_l", "n_l", "alpha_r", "n_r", "comb_fraction", "comb_slope")}
        errors = {k: 0.01 * abs(v) + 1e-4 for k, v in params.items()}
        fits.append(MassFit(mass=m, n_generated=1000, params=params, errors=errors, window=(s.mu - 20 * s.sigma, s.mu + 20 * s.sigma),
                            eff_tm=0.3, eff_tm_err=0.01, eff_total=0.35, eff_total_err=0.01, n_tm=300.0, n_comb=50.0, n_eff=350.0))
    return json.loads(json.dumps(SignalModel(fits).to_dict()))


VALID = _valid_model_dict()



json_leaves = st.one_of(
    st.none(), st.booleans(), st.integers(-(10**6), 10**6), st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=6),
    st.sampled_from([0, -1, 0.0, 1.0, 1e308, "ok", "pchip", "smoothing", "measured"]),
)
json_values = st.recursive(json_leaves, lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)),
                           max_leaves=6)


def damaged_model_dicts() -> st.SearchStrategy[dict[str, Any]]:
    """The valid dictionary with one to three keys replaced, removed or added."""
    return damaged(VALID, json_values)


def _assert_usable(model: SignalModel) -> None:
    """Every number the model gives inside its mass range is finite."""
    lo, hi = model.mass_range
    for m in np.linspace(lo, hi, 5):
        s = model.shape(float(m))
        values = [s.mu, s.sigma, s.alpha_l, s.n_l, s.alpha_r, s.n_r, s.comb_fraction, s.comb_slope, float(model.efficiency(float(m)))]
        assert all(math.isfinite(v) for v in values), (m, values)


def test_the_undamaged_dictionary_loads() -> None:
    _assert_usable(SignalModel.from_dict(copy.deepcopy(VALID), source=SOURCE))


@FUZZ
@given(damaged_model_dicts())
def test_damaged_dictionary_loads_or_names_the_file(d: dict[str, Any]) -> None:
    try:
        model = SignalModel.from_dict(json.loads(json.dumps(d)), source=SOURCE)
    except SignalModelFormatError as exc:  # and no other exception type
        assert str(exc).startswith(f"{SOURCE}: "), str(exc)
        return
    _assert_usable(model)


@FUZZ
@given(damaged_model_dicts())
def test_damaged_file_loads_or_names_the_file(tmp_path: Path, d: dict[str, Any]) -> None:
    path = tmp_path / "model.json"
    path.write_text(json.dumps(d))  # NaN/inf as JSON's NaN/Infinity tokens, as a careless writer would
    try:
        model = SignalModel.load(path)
    except SignalModelFormatError as exc:
        assert str(path) in str(exc), str(exc)
        return
    _assert_usable(model)


@FUZZ
@given(st.one_of(st.binary(max_size=200), st.text(max_size=200).map(str.encode), json_values.map(lambda v: json.dumps(v).encode())))
def test_arbitrary_bytes_are_not_a_model_file(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "garbage.json"
    path.write_bytes(content)
    with pytest.raises(SignalModelFormatError) as info:
        SignalModel.load(path)
    assert str(path) in str(info.value)


def test_unreadable_paths_name_the_file(tmp_path: Path) -> None:
    for path in (tmp_path / "missing.json", tmp_path):
        with pytest.raises(SignalModelFormatError, match="cannot read signal model file") as info:
            SignalModel.load(path)
        assert str(path) in str(info.value)
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)  # nested beyond the JSON parser's recursion limit
    with pytest.raises(SignalModelFormatError, match="not valid JSON"):
        SignalModel.load(deep)


ANALYTIC_KEYS = sorted(AnalyticSignalModel().to_dict())


@FUZZ
@given(st.dictionaries(st.sampled_from([*ANALYTIC_KEYS, "unknown"]), json_values, max_size=4))
def test_analytic_model_file_loads_or_names_the_file(tmp_path: Path, d: dict[str, Any]) -> None:
    path = tmp_path / "analytic.json"
    path.write_text(json.dumps({**AnalyticSignalModel().to_dict(), **d}))
    try:
        model = AnalyticSignalModel.load(path)
    except SignalModelFormatError as exc:
        assert str(path) in str(exc), str(exc)
        return
    lo, hi = model.mass_range
    try:
        shape = model.shape(0.5 * (lo + hi))
    except ShapeError:
        return  # e.g. a negative resolution at that mass: the package's own error
    assert all(math.isfinite(v) for v in (shape.mu, shape.sigma))


SHAPE_KEYS = [f for f in SignalShape(1.0, 0.01, 1.0, 2.0, 1.0, 2.0).to_dict()] + ["comb_edge", "comb_edge_width"]


@FUZZ
@given(st.dictionaries(st.sampled_from([*SHAPE_KEYS, "other"]), st.one_of(json_leaves, st.floats(0.01, 5)), max_size=10))
def test_signal_shape_from_any_dictionary(d: dict[str, Any]) -> None:
    try:
        shape = SignalShape.from_dict(d)
    except ShapeError as exc:  # the package's error, naming the parameter
        assert "SignalShape" in str(exc)
        return
    assert math.isfinite(shape.mu) and shape.sigma > 0

"""Property-based tests of the kinematic fit with malformed input: ``InputError`` naming the array, or flagged events, never NaN.

Whole-call problems (wrong shapes, non-numeric arrays, bad options, a bad
beam covariance) raise ``bumphunt.errors.InputError`` naming the argument.
Bad values in single events (NaN/inf, E <= 0, theta outside (0, pi), a
covariance that is not positive definite) never raise: those events come back
with ``converged=False`` and a reason, and every converged event's numbers are
finite. Both engines (numpy and the compiled one) are fuzzed, and the photon
covariance model file that ``bumphunt kinfit --pcm`` reads.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from bumphunt import kinfit
from bumphunt.errors import InputError
from bumphunt.kinematics import Beam
from bumphunt.kinfit import PhotonCovarianceModel
from bumphunt.toymc.exact import three_photon_sample

FUZZ = settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
BEAM = Beam.belle2()
ENGINES = ("numpy", "numba")

any_float = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.floats(-5.0, 10.0), st.sampled_from([0.0, -0.0, 1e-300, 1e300, np.pi]))
not_arrays = st.one_of(st.none(), st.text(max_size=3), st.integers(-5, 5), st.just({"E": 1.0}), st.just([[1.0, 2.0], [3.0]]), st.just([["a", "b", "c"]]))


def _events(n: int, seed: int) -> dict[str, np.ndarray]:
    ev = three_photon_sample(n, beam=BEAM, rng=np.random.default_rng(seed), m_a=1.0, sort=False)
    return {k: np.array(ev[k], dtype=float) for k in ("E", "theta", "phi", "cov")}


@st.composite
def fit_inputs(draw: st.DrawFn) -> dict[str, Any]:
    """Three-photon events with up to four of: poked values, wrong shapes, non-arrays, broken covariances, scaled or retyped arrays."""
    arrays: dict[str, Any] = _events(draw(st.integers(0, 5)), draw(st.integers(0, 10_000)))
    for _ in range(draw(st.integers(0, 4))):
        key = draw(st.sampled_from(sorted(arrays)))
        a = arrays[key]
        how = draw(st.sampled_from(["poke", "shape", "not an array", "covariance", "scale", "dtype"]))
        if not isinstance(a, np.ndarray) or a.ndim == 0:
            how = "not an array"
        if how == "poke" and a.size:
            a = a.astype(float)
            a.flat[draw(st.integers(0, a.size - 1))] = draw(any_float)
        elif how == "shape":
            a = draw(hnp.arrays(np.float64, hnp.array_shapes(min_dims=0, max_dims=4, max_side=4), elements=any_float))
        elif how == "not an array":
            a = draw(not_arrays)
        elif how == "covariance" and key == "cov" and a.ndim == 4 and a.shape[1:] == (3, 3, 3) and a.shape[0]:
            a = a.astype(float)
            a[draw(st.integers(0, a.shape[0] - 1)), draw(st.integers(0, 2))] = draw(hnp.arrays(np.float64, (3, 3), elements=any_float))
        elif how == "scale":
            with np.errstate(over="ignore", invalid="ignore"):
                a = a * draw(st.sampled_from([-1.0, 0.0, 1e-12, 1e6, 1e300]))
        elif how == "dtype":
            a = a.astype(draw(st.sampled_from([np.float32, np.int64, np.complex128, object, bool])))
        arrays[key] = a
    options: dict[str, Any] = {}
    if draw(st.booleans()):
        options["beam_cov"] = draw(st.one_of(st.none(), st.just("spread"), st.text(max_size=3),
                                             hnp.arrays(np.float64, hnp.array_shapes(max_dims=3, max_side=5), elements=any_float)))
    for key in ("max_iter", "max_halvings", "tol_chi2", "tol_constraint"):
        if draw(st.integers(0, 5)) == 0:
            options[key] = draw(st.one_of(st.integers(-3, 50), st.sampled_from([10**30, -(10**30)]), any_float, st.none(), st.text(max_size=2)))
    return {"arrays": arrays, "options": options}


def _check_result(res: kinfit.KinFitResult) -> None:
    """Converged events have finite numbers; the others are flagged with a reason."""
    n = res.n_events
    conv = np.asarray(res.converged, bool)
    assert conv.shape == (n,)
    reasons = res.reason
    assert all(reasons[i] for i in np.flatnonzero(~conv)), "an event that did not converge has no reason"
    assert not np.any(res.status[conv]), "a converged event has a failure status"
    if n == 0:
        return
    for name in ("E", "theta", "phi", "cov", "chi2", "pvalue", "pulls"):
        values = np.asarray(getattr(res, name), float).reshape(n, -1)
        bad = ~np.isfinite(values).all(axis=1)
        assert not np.any(bad & conv), f"non-finite {name} in a converged event"


@pytest.mark.parametrize("engine", ENGINES)
def test_malformed_arrays_and_options(engine: str) -> None:
    @FUZZ
    @given(fit_inputs())
    def check(case: dict[str, Any]) -> None:
        a = case["arrays"]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", np.exceptions.ComplexWarning)
            try:
                res = kinfit.fit(a["E"], a["theta"], a["phi"], a["cov"], BEAM, engine=engine, **case["options"])
            except InputError as exc:  # and no other exception type
                assert str(exc).startswith("kinfit: "), str(exc)
                return
        _check_result(res)

    check()


@pytest.mark.parametrize("engine", ENGINES)
def test_bad_events_are_flagged_not_raised(engine: str) -> None:
    """Valid shapes with bad values in single events: no exception; the bad events are flagged, the good ones fitted."""

    @FUZZ
    @given(st.integers(1, 6), st.integers(0, 10_000), st.lists(st.tuples(st.sampled_from(["E", "theta", "phi", "cov"]), st.integers(0, 10**6), any_float),
                                                              min_size=1, max_size=5))
    def check(n: int, seed: int, pokes: list[tuple[str, int, float]]) -> None:
        a = _events(n, seed)
        for key, where, value in pokes:
            a[key].flat[where % a[key].size] = value
        res = kinfit.fit(a["E"], a["theta"], a["phi"], a["cov"], BEAM, engine=engine)
        _check_result(res)
        invalid = ~(np.isfinite(a["E"]).all(1) & np.isfinite(a["theta"]).all(1) & np.isfinite(a["phi"]).all(1)
                    & np.isfinite(a["cov"].reshape(n, -1)).all(1) & (a["E"] > 0).all(1) & ((a["theta"] > 0) & (a["theta"] < np.pi)).all(1))
        assert not np.any(res.converged & invalid)

    check()


@FUZZ
@given(st.dictionaries(st.sampled_from(["E", "theta", "phi", "cov", "region", "other"]),
                       st.one_of(not_arrays, hnp.arrays(np.float64, hnp.array_shapes(max_dims=4, max_side=4), elements=any_float)), max_size=5),
       st.booleans())
def test_fit_events_with_any_dict(events: dict[str, Any], with_model: bool) -> None:
    model = PhotonCovarianceModel() if with_model else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        try:
            out, res = kinfit.fit_events(events, beam=BEAM, covariance_model=model, engine="numpy")
        except InputError as exc:
            assert "kinfit" in str(exc) or "three-photon" in str(exc) or "photon covariance" in str(exc), str(exc)
            return
    _check_result(res)


def _model_dict() -> dict[str, Any]:
    return json.loads(json.dumps(PhotonCovarianceModel().to_dict()))


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=4)),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=4), inner, max_size=3)), max_leaves=5,
)


@FUZZ
@given(st.lists(st.tuples(st.sampled_from(["resolution", "regions", "meta", "use_ntuple", "kind", "resolution.energy_scale", "resolution.min_energy",
                                           "resolution.endcap_energy_factor", "regions.1", "regions.1.scale", "regions.2.bias", "regions.3.power"]),
                          json_values), min_size=1, max_size=3))
def test_photon_covariance_model_file(tmp_path: Path, edits: list[tuple[str, Any]]) -> None:
    """A damaged ``--pcm`` file: an InputError naming the file, or a model whose covariances are finite."""
    d = _model_dict()
    for key, value in edits:
        *parents, last = key.split(".")
        node: Any = d
        for p in parents:
            node = node.get(p) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node[last] = value
    path = tmp_path / "pcm.json"
    path.write_text(json.dumps(d))
    try:
        model = PhotonCovarianceModel.load(path)
    except InputError as exc:
        assert str(exc).startswith(str(path)), str(exc)
        return
    ev = _events(3, 1)
    cov = model.event_covariance({"E": ev["E"], "theta": ev["theta"]})
    assert np.all(np.isfinite(cov))


@FUZZ
@given(st.binary(max_size=100))
def test_photon_covariance_model_garbage_file(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "pcm.json"
    path.write_bytes(content)
    with pytest.raises(InputError) as info:
        PhotonCovarianceModel.load(path)
    assert str(info.value).startswith(str(path))


def test_photon_covariance_model_unreadable(tmp_path: Path) -> None:
    for path in (tmp_path / "missing.json", tmp_path):
        with pytest.raises(InputError) as info:
            PhotonCovarianceModel.load(path)
        assert str(info.value).startswith(str(path))

"""Property-based tests of the fit engines with malformed input: ``FitInputError`` naming the value, or flagged results, never NaN.

``fits.fit``, ``fits.upper_limit``, ``fits.evaluate_hypotheses`` and the
channel form ``fits.fit([fits.Channel(...)])`` get arbitrary candidate
masses (NaN, negative, 2-D, empty, one repeated value, not numbers), shapes
(valid, extreme, not shapes), windows, background orders, confidence levels,
signal scales and uncertainties. Each call either raises a ``BumphuntError``
(``FitInputError``: a ``ValueError`` subclass) or returns results whose
numbers are finite wherever they are flagged ``converged``, with a reason
wherever they are not. The zfit reference engine gets the inputs that reach
it (valid types, degenerate data) in a smaller, bounded number of examples.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import fits
from signal_models import SignalShape
from signal_models._common.errors import BumphuntError

FUZZ = settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
#: the zfit engine takes seconds per fit: generated degenerate inputs, and explicit real fits
FUZZ_ZFIT = settings(max_examples=8, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])

SHAPE = SignalShape(1.0, 0.01, 1.2, 3.0, 1.5, 6.0, comb_fraction=0.1)

any_float = st.floats(allow_nan=True, allow_infinity=True)
not_numbers = st.one_of(st.none(), st.text(max_size=3), st.just({"a": 1}), st.just([1, "a"]), st.just([[1.0, 2.0], [3.0]]), st.booleans(),
                        st.integers(-(10**20), 10**20))


@st.composite
def candidate_masses(draw: st.DrawFn) -> Any:
    """Masses in GeV: a flat spectrum with a peak at 1 GeV, poked with bad values, any array, not numbers, or one repeated value."""
    rng = np.random.default_rng(draw(st.integers(0, 100)))
    n = draw(st.sampled_from([0, 1, 2, 5, 50, 400]))
    x = np.sort(np.concatenate([rng.uniform(0.5, 1.5, n), rng.normal(1.0, 0.01, n // 10 + draw(st.integers(0, 20)))]))
    kind = draw(st.sampled_from(["spectrum", "poked", "array", "not numbers", "one value"]))
    if kind == "poked" and x.size:
        for _ in range(draw(st.integers(1, 3))):
            x[draw(st.integers(0, x.size - 1))] = draw(any_float)
    elif kind == "array":
        return draw(hnp.arrays(np.float64, hnp.array_shapes(min_dims=0, max_dims=3, max_side=5), elements=any_float))
    elif kind == "not numbers":
        return draw(not_numbers)
    elif kind == "one value":
        return np.full(draw(st.integers(0, 30)), draw(st.floats(0.0, 3.0)))
    return x


@st.composite
def signal_shapes(draw: st.DrawFn) -> Any:
    """A valid shape (often extreme), or something else."""
    kind = draw(st.sampled_from(["nominal", "random", "not a shape"]))
    if kind == "nominal":
        return SignalShape(1.0, 0.01, 1.2, 3.0, 1.5, 6.0, comb_fraction=draw(st.floats(0.0, 1.0)), comb_slope=draw(st.floats(-1.0, 1.0)))
    if kind == "random":
        try:
            return SignalShape(draw(st.floats(-1.0, 20.0)), draw(st.floats(1e-9, 5.0)), draw(st.floats(1e-6, 50.0)), draw(st.floats(1e-6, 200.0)),
                               draw(st.floats(1e-6, 50.0)), draw(st.floats(1e-6, 200.0)), comb_fraction=draw(st.floats(0.0, 1.0)),
                               comb_slope=draw(st.floats(-1.0, 1.0)))
        except BumphuntError:
            return SHAPE
    return draw(st.one_of(not_numbers, st.just(None)))


windows = st.one_of(st.none(), st.tuples(st.floats(-1.0, 3.0), st.floats(-1.0, 3.0)), st.tuples(any_float, any_float), not_numbers,
                    st.lists(st.floats(0.0, 2.0), max_size=4))
bkg_orders = st.one_of(st.integers(0, 5), st.sampled_from([-1, 3.0, 3.5, 50, 10**9, float("nan")]), not_numbers)
optional_numbers = st.one_of(st.none(), st.floats(-1.0, 1e3), any_float, not_numbers)


def _check_fit(res: Any) -> None:
    """Converged: finite numbers; not converged: a reason."""
    if isinstance(res, fits.LimitResult):
        numbers = [res.observed, *np.ravel(res.expected)]
        assert res.converged or res.reason, "an unconverged limit without a reason"
        if res.converged:
            assert np.all(np.isfinite(numbers)), numbers
        res = res.fit
    numbers = [res.nsig, res.nsig_err, res.nbkg, res.nll, res.z_local]
    assert res.converged or res.reason, "an unconverged fit without a reason"
    if res.converged:
        assert np.all(np.isfinite(numbers)), (numbers, res.reason)


def _call(f: Any, *args: Any, **kwargs: Any) -> Any:
    """Call; the package's errors are fine (any other exception fails the test), results are checked."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        try:
            res = f(*args, **kwargs)
        except BumphuntError as exc:
            assert str(exc), "an error without a message"
            return None
    return res


@FUZZ
@given(candidate_masses(), signal_shapes(), windows, bkg_orders)
def test_fit(mgg: Any, shape: Any, window: Any, order: Any) -> None:
    res = _call(fits.fit, mgg, shape, window, bkg_order=order)
    if res is not None:
        _check_fit(res)


@FUZZ
@given(candidate_masses(), signal_shapes(), windows, bkg_orders, st.one_of(st.floats(0.0, 1.0), not_numbers, any_float), optional_numbers,
       optional_numbers, optional_numbers, st.sampled_from(["lognormal", "gaussian", "other"]))
def test_upper_limit(mgg: Any, shape: Any, window: Any, order: Any, cl: Any, scale: Any, rel_unc: Any, resolution_unc: Any, kind: str) -> None:
    res = _call(fits.upper_limit, mgg, shape, window, bkg_order=order, cl=cl, signal_scale=scale, rel_unc=rel_unc, resolution_unc=resolution_unc,
                syst_kind=kind)
    if res is not None:
        _check_fit(res)


@FUZZ
@given(candidate_masses(), signal_shapes(), windows, st.one_of(st.integers(-2, 30), not_numbers), st.one_of(st.none(), st.integers(-2, 10), not_numbers))
def test_toy_upper_limit(mgg: Any, shape: Any, window: Any, n_toys: Any, seed: Any) -> None:
    res = _call(fits.upper_limit, mgg, shape, window, bkg_order=1, method="toys", n_toys=n_toys, seed=seed)
    if res is not None:
        _check_fit(res)


@FUZZ
@given(candidate_masses(), st.lists(signal_shapes(), max_size=4),
       st.one_of(not_numbers, hnp.arrays(np.float64, hnp.array_shapes(max_dims=3, max_side=4), elements=st.one_of(st.floats(0.0, 3.0), any_float))),
       bkg_orders, st.one_of(st.floats(0.0, 1.0), not_numbers),
       st.one_of(st.none(), not_numbers, hnp.arrays(np.float64, hnp.array_shapes(max_dims=2, max_side=4), elements=any_float)),
       st.one_of(st.none(), not_numbers, st.floats(-1.0, 2.0)))
def test_evaluate_hypotheses(mgg: Any, shapes: list[Any], windows_: Any, order: Any, cl: Any, scale: Any, rel_unc: Any) -> None:
    if shapes and not isinstance(windows_, np.ndarray):
        windows_ = [(0.8, 1.2)] * len(shapes)  # reach the fits with valid windows as often as with bad ones
    table = _call(fits.evaluate_hypotheses, mgg, shapes, windows_, bkg_order=order, cl=cl, signal_scale=scale, signal_scale_rel_unc=rel_unc)
    if table is None:
        return
    for i in range(len(table.mass)):
        numbers = [table.nsig[i], table.nsig_err[i], table.nbkg[i], table.nll[i], table.z_local[i], table.ul_nsig_obs[i], *table.ul_nsig_exp[i]]
        assert table.converged[i] or table.reason[i], i
        if table.converged[i]:
            assert np.all(np.isfinite(numbers)), (i, numbers)


channel_specs = st.tuples(candidate_masses(), signal_shapes(), windows, st.one_of(st.floats(0.0, 10.0), not_numbers, any_float), bkg_orders,
                          st.one_of(st.none(), st.text(max_size=2)))


@FUZZ
@given(st.lists(channel_specs, max_size=3), st.booleans(), st.one_of(st.floats(0.0, 1.0), not_numbers))
def test_channels(specs: list[tuple], limit: bool, cl: Any) -> None:
    channels = []
    for mgg, shape, window, scale, order, name in specs:
        channel = _call(fits.Channel, mgg, shape, window, signal_scale=scale, bkg_order=order, name=name)
        if channel is None:
            return
        channels.append(channel)
    res = _call(fits.upper_limit, channels, cl=cl) if limit else _call(fits.fit, channels)
    if res is not None:
        _check_fit(res)


ZFIT_DATA = {
    "spectrum": lambda rng: np.sort(np.concatenate([rng.uniform(0.5, 1.5, 300), rng.normal(1.0, 0.01, 20)])),
    "few": lambda rng: rng.uniform(0.9, 1.1, 4),
    "one value": lambda rng: np.full(20, 1.01),
    "beside the peak": lambda rng: rng.uniform(2.0, 3.0, 100),
}


@st.composite
def zfit_cases(draw: st.DrawFn) -> tuple:
    """Inputs that pass the checks and reach the zfit engine: degenerate data, extreme shapes, windows beside the data."""
    degenerate = sorted(k for k in ZFIT_DATA if k != "spectrum")  # real fits (seconds each, a minute for a limit): the explicit examples
    x = ZFIT_DATA[draw(st.sampled_from(degenerate))](np.random.default_rng(draw(st.integers(0, 100))))
    shape = SignalShape(1.0, draw(st.floats(0.001, 0.3)), 1.2, draw(st.floats(1.01, 50.0)), 1.5, 6.0, comb_fraction=draw(st.floats(0.0, 1.0)))
    window = draw(st.one_of(st.none(), st.just((0.8, 1.2)), st.just((1.005, 1.02))))
    channels = draw(st.booleans())
    limit = channels and draw(st.booleans())  # hepstats' limit of one dataset takes a minute on a few events: explicit examples only
    return x, shape, window, draw(st.integers(0, 3)), limit, channels


def _zfit_case(data: str, window: Any, order: int, limit: bool, channels: bool) -> tuple:
    return ZFIT_DATA[data](np.random.default_rng(1)), SHAPE, window, order, limit, channels


@FUZZ_ZFIT
@given(zfit_cases())
@example(_zfit_case("spectrum", (0.8, 1.2), 1, False, False))  # real fits: finite numbers
@example(_zfit_case("spectrum", (0.8, 1.2), 1, False, True))
@example(_zfit_case("spectrum", (0.8, 1.2), 0, True, True))  # order 0: zfit's Chebyshev has no coefficient
@example(_zfit_case("one value", None, 1, False, False))  # all data at one value
@example(_zfit_case("one value", None, 1, True, True))
@example(_zfit_case("beside the peak", None, 2, True, False))  # the peak outside the data's window
@example(_zfit_case("beside the peak", None, 2, False, True))
def test_zfit_engine(case: tuple) -> None:
    mgg, shape, window, order, limit, channels = case
    f = fits.upper_limit if limit else fits.fit
    if channels:
        res = _call(lambda: f([fits.Channel(mgg, shape, window, bkg_order=order)], engine="zfit"))
    else:
        res = _call(f, mgg, shape, window, bkg_order=order, engine="zfit")
    if res is not None:
        _check_fit(res)

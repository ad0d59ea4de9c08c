"""The background order chosen by the F-test, per hypothesis and channel."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy.stats import chi2

import fits
from fits.background_choice import (
    choose_orders_request,
    ftest_orders,
    take_hypotheses,
    with_orders,
)
from fits.channels import CombinedModel
from fits.combined import CombinedBatch
from fits.combined_rows import CombinedRequest
from fits.densities import ShapeArrays
from signal_models import SignalShape

SHAPE = SignalShape(mu=1.0, sigma=0.02, alpha_l=1.5, n_l=3.0, alpha_r=2.0, n_r=4.0)
WINDOW = (0.6, 1.4)


def _exponential(rng: np.random.Generator, n: int, tau: float, lo: float, hi: float) -> np.ndarray:
    """``n`` masses (GeV) with density ~ exp(-x / tau) on [lo, hi]."""
    a, b = np.exp(-lo / tau), np.exp(-hi / tau)
    return -tau * np.log(a - rng.uniform(size=n) * (a - b))


@pytest.fixture(scope="module")
def request_flat_curved() -> CombinedRequest:
    """Two hypotheses (peaks at 1.0 and 1.05 GeV) x three channels: flat, steeply falling, empty."""
    rng = np.random.default_rng(4)
    flat = rng.uniform(0.5, 1.5, 20000)
    curved = _exponential(rng, 20000, 0.3, 0.5, 1.5)
    model = CombinedModel.build([fits.Channel(flat, SHAPE, WINDOW, name="flat"), fits.Channel(curved, SHAPE, WINDOW, name="curved"),
                                 fits.Channel(np.array([3.0]), SHAPE, WINDOW, name="empty")])
    req = take_hypotheses(CombinedRequest.from_model(model), [0, 0])
    shapes = ShapeArrays.from_shapes([SHAPE, dataclasses.replace(SHAPE, mu=1.05)])
    return dataclasses.replace(req, shapes=(shapes,) * 3, lo=req.lo + [[0.0], [0.05]], hi=req.hi + [[0.0], [0.05]])


def test_ftest_picks_order_zero_on_flat_data_and_more_on_a_steep_spectrum(request_flat_curved) -> None:
    choice = ftest_orders(request_flat_curved, orders=(0, 1, 2, 3, 4, 5), pvalue=0.05)
    assert choice.tested == (0, 1, 2, 3, 4, 5)
    assert choice.nll.shape == (2, 3, 6)
    np.testing.assert_array_equal(choice.orders[:, 0], [0, 0])
    assert np.all(choice.orders[:, 1] >= 2)
    np.testing.assert_array_equal(choice.orders[:, 2], [0, 0])  # no candidates: the lowest order
    # the walk written out: stop at the first order whose successor does not gain more than the chi2(1) quantile
    cut = chi2.ppf(0.95, 1)
    for h in range(2):
        for c in range(2):
            i = 0
            while i + 1 < 6 and 2 * (choice.nll[h, c, i] - choice.nll[h, c, i + 1]) > cut:
                i += 1
            assert choice.orders[h, c] == i
    # nested models: a higher order never fits worse
    assert np.all(np.diff(choice.nll[:, :2], axis=2) <= 1e-6)


def test_ftest_nll_equals_single_order_background_fits(request_flat_curved) -> None:
    choice = ftest_orders(request_flat_curved, orders=(1, 3))
    for i, order in enumerate((1, 3)):
        req = with_orders(request_flat_curved, order)
        batch = CombinedBatch(req)
        fit = batch.fit()
        np.testing.assert_allclose(choice.nll[:, :, i].sum(axis=1), fit.nll_zero, rtol=0, atol=1e-6)


def test_chosen_orders_request_fits(request_flat_curved) -> None:
    choice = ftest_orders(request_flat_curved, orders=(0, 1, 2, 3))
    req = choose_orders_request(request_flat_curved, choice)
    np.testing.assert_array_equal(req.orders, choice.orders)
    fit = CombinedBatch(req).fit()
    assert np.all(fit.converged)
    np.testing.assert_array_equal(fit.channel_background[:, 2], 0.0)  # the empty channel has no background


def test_ftest_rejects_bad_options(request_flat_curved) -> None:
    with pytest.raises(fits.FitInputError, match="pvalue"):
        ftest_orders(request_flat_curved, pvalue=1.5)
    with pytest.raises(fits.FitInputError, match="at least one"):
        ftest_orders(request_flat_curved, orders=())
    with pytest.raises(fits.FitInputError, match="between 0 and"):
        ftest_orders(request_flat_curved, orders=(0, 99))
    choice = ftest_orders(request_flat_curved, orders=(0, 1))
    with pytest.raises(fits.FitInputError, match="do not match"):
        choose_orders_request(take_hypotheses(request_flat_curved, [0]), choice)

"""Training data of the Punzi net: window sums, labels, weights, split, bad input."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from bumphunt.errors import InputError
from bumphunt.selection.masses import default_mass_resolution
from bumphunt.selection.training_data import prepare_training_data, window_sums
from bumphunt.selection.working_point import efficiency_and_background


def test_window_sums_against_dense(rng: np.random.Generator) -> None:
    x = np.sort(rng.uniform(0, 10, 2000))
    v = rng.exponential(1.0, 2000)
    lo = rng.uniform(0, 9, 50)
    hi = lo + rng.uniform(0, 2, 50)
    dense = ((x[None, :] >= lo[:, None]) & (x[None, :] <= hi[:, None])) @ v
    np.testing.assert_allclose(window_sums(x, v, lo, hi), dense, rtol=1e-10)



def test_prepare_training_data(small_data) -> None:  # noqa: ANN001
    d = small_data
    assert d.n_masses == 10 and d.heldout.sum() == 2 and d.trained.sum() == 8
    assert not (d.trained & d.heldout).any()
    np.testing.assert_allclose(d.hi - d.lo, 2 * 10 * d.sigma)
    sig = d.label == 1
    np.testing.assert_allclose(d.weight[sig], 1.0 / 400)
    # luminosity scaling of the background weights (0.5 / 1.0)
    # no-selection efficiency <= acceptance and > 0
    eps, B = efficiency_and_background(d, np.ones(d.label.size))
    assert np.all((eps > 0.2) & (eps <= 1.0)) and np.all(B > 0)
    # candidates of one event share the split
    for r in np.unique(d.event_id)[:200]:
        assert np.ptp(d.split[d.event_id == r]) == 0
    assert 0.15 < d.split.mean() < 0.35


def test_background_scaled_to_luminosity(small_sample) -> None:  # noqa: ANN001
    ev, ng = small_sample
    d1 = prepare_training_data(ev, n_generated=ng, heldout=0, lumi_fb=1.0, weight_lumi_fb=1.0)
    d2 = prepare_training_data(ev, n_generated=ng, heldout=0, lumi_fb=3.0, weight_lumi_fb=1.0)
    _, B1 = efficiency_and_background(d1, np.ones(d1.label.size))
    _, B2 = efficiency_and_background(d2, np.ones(d2.label.size))
    np.testing.assert_allclose(B2, 3 * B1)


def test_bad_training_input(small_sample, caplog: pytest.LogCaptureFixture) -> None:  # noqa: ANN001
    ev, ng = small_sample
    some = dict(list(ng.items())[:-1])
    with pytest.raises(InputError, match="n_generated has no entry"):
        prepare_training_data(ev, n_generated=some)
    zero = dict(ng)
    zero[list(ng)[0]] = 0
    with pytest.raises(InputError, match="n_generated must be > 0"):
        prepare_training_data(ev, n_generated=zero)
    only_sig = {k: v[ev["process"] == 0] for k, v in ev.items()}
    with pytest.raises(InputError, match="no background"):
        prepare_training_data(only_sig, n_generated=ng)
    bad = dict(ev)
    bad["theta"] = ev["theta"].copy()
    bad["theta"][7, 1] = np.nan
    with pytest.raises(InputError, match="not finite"):
        prepare_training_data(bad, n_generated=ng)
    # a mass whose window holds no signal: a resolution so narrow no candidate falls inside -> excluded
    sig_fn = lambda m: np.where(np.isclose(m, 0.5), 1e-9, default_mass_resolution(m))  # noqa: E731
    with caplog.at_level(logging.WARNING):
        d = prepare_training_data(ev, n_generated=ng, heldout=0, sigma=sig_fn)
    assert "no truth-matched signal inside their window" in caplog.text
    assert not d.trained[0] and d.trained[1:].all()


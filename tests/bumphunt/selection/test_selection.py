"""Punzi figure of merit, window sums, Punzi loss (value and gradient), training, save/load."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from bumphunt.errors import InputError
from bumphunt.kinematics import Beam
from bumphunt.selection.core import (
    asimov_significance,
    basic_candidates,
    choose_heldout,
    default_mass_resolution,
    efficiency_and_background,
    generalisation_table,
    mass_grid,
    prepare_training_data,
    punzi_sensitivity,
    punzi_smin,
    scan_working_point,
    window_sums,
)
from bumphunt.toymc.three_photon import synthetic_sample

BEAM = Beam.belle2()


# ---------------------------------------------------------------- closed forms


def test_punzi_smin_closed_form() -> None:
    a, b = 5.0, 1.28
    B = np.array([0.0, 1.0, 100.0, 1e4])
    basic = b * b / 2 + a * np.sqrt(B) + b / 2 * np.sqrt(b * b + 4 * a * np.sqrt(B) + 4 * B)
    ext = a * a / 8 + 9 * b * b / 13 + a * np.sqrt(B) + b / 2 * np.sqrt(b * b + 4 * a * np.sqrt(B) + 4 * B)
    np.testing.assert_allclose(punzi_smin(B, a, b), basic)
    np.testing.assert_allclose(punzi_smin(B, a, b, formula="extended"), ext)
    # B = 0: S_min = b^2 (basic); large B: S_min -> (a + b) sqrt(B)
    assert punzi_smin(0.0, a, b) == pytest.approx(b * b)
    assert punzi_smin(1e10, a, b) / np.sqrt(1e10) == pytest.approx(a + b, rel=1e-3)


def test_punzi_sensitivity_units_and_edge_cases() -> None:
    s = punzi_sensitivity(0.5, 100.0, 2.0, 5.0, 1.28)
    assert s == pytest.approx(punzi_smin(100.0) / (0.5 * 2.0 * 1000.0))
    assert np.isinf(punzi_sensitivity(0.0, 10.0, 1.0))
    with pytest.raises(InputError, match="background"):
        punzi_sensitivity(0.5, -1.0, 1.0)
    with pytest.raises(InputError, match="efficiency"):
        punzi_sensitivity(1.5, 1.0, 1.0)
    with pytest.raises(InputError, match="lumi"):
        punzi_sensitivity(0.5, 1.0, 0.0)


def test_asimov_significance_limits() -> None:
    # S << B: Z -> S / sqrt(B)
    assert asimov_significance(1.0, 1e6) == pytest.approx(1e-3, rel=1e-3)
    assert asimov_significance(0.0, 5.0) == 0.0


def test_default_resolution_matches_smeared_toy() -> None:
    ev, _ = synthetic_sample(masses=[0.5, 3.0, 8.0], n_per_mass=3000, n_background=10, seed=2, bb_fraction=0.0)
    cand = basic_candidates(ev)
    tm = cand["truth_match"] & (cand["process"] == 0)
    for m in (0.5, 3.0, 8.0):
        sel = tm & np.isclose(cand["mc_ma"], m)
        q16, q84 = np.percentile(cand["mgg"][sel], [16, 84])
        assert default_mass_resolution(m) == pytest.approx(0.5 * (q84 - q16), rel=0.2)


def test_mass_grid_and_heldout() -> None:
    g = mass_grid()
    assert g[0] == pytest.approx(0.175) and g[-1] == pytest.approx(10.375) and len(g) == 205
    h = choose_heldout(g, 22)
    assert len(h) == 22 and h.min() > g[0] and h.max() < g[-1]
    with pytest.raises(InputError):
        choose_heldout(g[:5], 3)


def test_window_sums_against_dense(rng: np.random.Generator) -> None:
    x = np.sort(rng.uniform(0, 10, 2000))
    v = rng.exponential(1.0, 2000)
    lo = rng.uniform(0, 9, 50)
    hi = lo + rng.uniform(0, 2, 50)
    dense = ((x[None, :] >= lo[:, None]) & (x[None, :] <= hi[:, None])) @ v
    np.testing.assert_allclose(window_sums(x, v, lo, hi), dense, rtol=1e-10)


# ---------------------------------------------------------------- training data


@pytest.fixture(scope="module")
def small_sample() -> tuple[dict, dict]:
    return synthetic_sample(masses=mass_grid(0.5, 9.5, n=10), n_per_mass=400, n_background=20000, seed=11)


@pytest.fixture(scope="module")
def small_data(small_sample):  # noqa: ANN001, ANN201
    ev, ng = small_sample
    return prepare_training_data(ev, n_generated=ng, heldout=2, lumi_fb=0.5, weight_lumi_fb=1.0, seed=3)


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


# ---------------------------------------------------------------- loss


def _dense_reference(d, y, a, b, formula):  # noqa: ANN001, ANN202
    """eps_m and B_m by explicit masks (dense), training split, trained masses."""
    rows = d.split == 0
    f = 1.0 - d.validation_fraction
    eps, B = [], []
    for m in np.flatnonzero(d.trained):
        s = rows & (d.label == 1) & (d.mass_idx == m) & (d.mgg >= d.lo[m]) & (d.mgg <= d.hi[m])
        bk = rows & (d.label == 0) & (d.mgg >= d.lo[m]) & (d.mgg <= d.hi[m])
        eps.append(np.sum(y[s]) / d.n_gen[m] / f)
        B.append(np.sum(d.weight[bk] * y[bk]) / f)
    eps, B = np.array(eps), np.array(B)
    return eps, B, np.mean(punzi_sensitivity(eps, B, d.lumi_fb, a, b, formula=formula))


@pytest.mark.parametrize("formula", ["basic", "extended"])
def test_punzi_loss_equals_closed_form_for_hard_outputs(small_data, formula: str, rng: np.random.Generator) -> None:  # noqa: ANN001
    from bumphunt.selection.features import Standardizer
    from bumphunt.selection.network import _to_tensors, loss_inputs, punzi_loss

    d = small_data
    sc = Standardizer.fit(d.X, d.names)
    y_all = (rng.uniform(size=d.label.size) < 0.7).astype(float)  # hard 0/1 outputs
    li = loss_inputs(d, sc, split=0)
    # outputs aligned with the loss rows: recover them through the row order used by loss_inputs
    rows = d.split == 0
    sig = np.flatnonzero(rows & (d.label == 1) & d.in_window & d.trained[np.maximum(d.mass_idx, 0)])
    sig = sig[np.argsort(np.searchsorted(np.flatnonzero(d.trained), d.mass_idx[sig]), kind="stable")]
    bkg = np.flatnonzero(rows & (d.label == 0))
    bkg = bkg[np.argsort(d.mgg[bkg], kind="stable")]
    y = np.concatenate([y_all[sig], y_all[bkg]])
    t = _to_tensors(li)
    value, eps, B = punzi_loss(y, t, lumi_fb=d.lumi_fb, a=5.0, b=1.28, formula=formula, b_floor=0.0)
    eps_ref, B_ref, loss_ref = _dense_reference(d, y_all, 5.0, 1.28, formula)
    np.testing.assert_allclose(eps.numpy(), eps_ref, rtol=1e-10)
    np.testing.assert_allclose(B.numpy(), B_ref, rtol=1e-10)
    assert float(value) == pytest.approx(loss_ref, rel=1e-10)
    # the numpy evaluation used for working points agrees too
    e2, B2 = efficiency_and_background(d, y_all, split=0)
    np.testing.assert_allclose(e2[d.trained], eps_ref, rtol=1e-10)
    np.testing.assert_allclose(B2[d.trained], B_ref, rtol=1e-10)


@pytest.mark.parametrize("loss", ["punzi", "asimov"])
def test_loss_gradient_matches_finite_differences(small_data, loss: str, rng: np.random.Generator) -> None:  # noqa: ANN001
    import tensorflow as tf

    from bumphunt.selection.features import Standardizer
    from bumphunt.selection.network import _to_tensors, loss_inputs, punzi_loss

    d = small_data
    t = _to_tensors(loss_inputs(d, Standardizer.fit(d.X, d.names), split=0))
    n = t["x"].shape[0]
    y0 = rng.uniform(0.2, 0.9, n)
    kw = dict(lumi_fb=d.lumi_fb, a=5.0, b=1.28, loss=loss, asimov_xsec_pb=0.3)
    yv = tf.Variable(y0, dtype=tf.float64)
    with tf.GradientTape() as tape:
        value, _, _ = punzi_loss(yv, t, **kw)
    grad = tape.gradient(value, yv).numpy()
    h = 1e-6
    # probe signal rows and background rows (including rows in several windows)
    probes = np.concatenate([rng.choice(t["n_sig"], 5, replace=False), t["n_sig"] + rng.choice(n - t["n_sig"], 5, replace=False)])
    for p in probes:
        yp, ym = y0.copy(), y0.copy()
        yp[p] += h
        ym[p] -= h
        num = (float(punzi_loss(yp, t, **kw)[0]) - float(punzi_loss(ym, t, **kw)[0])) / (2 * h)
        assert grad[p] == pytest.approx(num, rel=1e-5, abs=1e-9 * max(1.0, abs(float(value))))
    # signal raises sensitivity (lowers sigma_min / raises Z), background lowers it
    tol = 1e-12 * np.abs(grad).max()  # cumulative-sum differences leave ~1e-20 for rows outside every window
    assert np.all(grad[: t["n_sig"]] <= tol) and np.all(grad[t["n_sig"] :] >= -tol)


def test_loss_finite_with_empty_background_window(small_data) -> None:  # noqa: ANN001
    import tensorflow as tf

    from bumphunt.selection.features import Standardizer
    from bumphunt.selection.network import _to_tensors, loss_inputs, punzi_loss

    d = small_data
    li = loss_inputs(d, Standardizer.fit(d.X, d.names), split=0)
    li.stop[0] = li.start[0]  # first window holds no background
    t = _to_tensors(li)
    yv = tf.Variable(np.full(li.x.shape[0], 0.5))
    with tf.GradientTape() as tape:
        value, _, B = punzi_loss(yv, t, lumi_fb=d.lumi_fb, a=5.0, b=1.28)
    g = tape.gradient(value, yv).numpy()
    assert float(B[0]) == 0.0 and np.isfinite(float(value)) and np.all(np.isfinite(g))


# ---------------------------------------------------------------- training


@pytest.fixture(scope="module")
def trained(small_data):  # noqa: ANN001, ANN201
    from bumphunt.selection.network import TrainConfig, train_selector

    cfg = TrainConfig(hidden_layers=2, units=16, pretrain_epochs=3, punzi_epochs=40, patience=40, punzi_learning_rate=3e-3)
    return train_selector(small_data, cfg)


def test_training_lowers_punzi_loss_and_sets_working_point(trained, small_data) -> None:  # noqa: ANN001
    h = trained.history
    assert len(h["loss"]) >= 10 and trained.nan_events == 0
    assert h["loss"][-1] < h["loss"][0] and min(h["val_loss"]) < h["val_loss"][0]
    wp = trained.working_point
    assert 0.0 <= wp.threshold < 1.0
    # the chosen cut is the minimum of the scanned curve and beats "no cut" (threshold 0 keeps all outputs > 0)
    assert wp.mean_sigma_min_pb == pytest.approx(np.nanmin(wp.mean_curve))
    per = wp.per_mass
    np.testing.assert_allclose(per["sigma_min_pb"], punzi_sensitivity(per["efficiency"], per["background"], small_data.lumi_fb))
    s = trained.summary()
    json.dumps(s)
    assert len(s["generalisation"]) == 2


def test_save_load_apply_roundtrip(trained, small_sample, tmp_path) -> None:  # noqa: ANN001
    from bumphunt.selection.network import PunziSelector
    from bumphunt.selection.core import apply

    sel = trained.selector
    path = sel.save(tmp_path / "sel")
    meta = json.loads((path / "metadata.json").read_text())
    for key in ("features", "scaling", "windows", "working_point", "training_config", "bumphunt_version"):
        assert key in meta
    loaded = PunziSelector.load(path)
    ev, _ = small_sample
    cand = basic_candidates(ev)
    y = apply(str(path), cand, ev)
    assert "punzi_net" in cand and y.shape == cand["mgg"].shape
    assert np.all((y >= 0) & (y <= 1))
    cand2 = basic_candidates(ev)
    np.testing.assert_allclose(loaded.apply(cand2, ev), sel.apply(basic_candidates(ev), ev), rtol=1e-6)
    assert loaded.threshold == pytest.approx(trained.working_point.threshold)
    with pytest.raises(InputError, match="feature column"):
        loaded.apply(basic_candidates(ev))  # no events to compute features from
    with pytest.raises(InputError, match="not a selector directory"):
        PunziSelector.load(tmp_path)


def test_nan_guard_restores_weights_and_stops(small_data, monkeypatch: pytest.MonkeyPatch, caplog) -> None:  # noqa: ANN001
    import bumphunt.selection.network as pn

    orig = pn.punzi_loss

    def poisoned(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        value, eps, B = orig(*args, **kwargs)
        return value * np.nan, eps, B

    monkeypatch.setattr(pn, "punzi_loss", poisoned)
    cfg = pn.TrainConfig(hidden_layers=1, units=4, pretrain_epochs=1, punzi_epochs=20, max_nan_events=3)
    with caplog.at_level(logging.WARNING):
        res = pn.train_selector(small_data, cfg, compare=False)
    assert res.nan_events == 3 and "non-finite" in caplog.text
    # weights after the guard are the pre-trained ones: outputs equal the BCE outputs
    np.testing.assert_allclose(res.outputs, res.bce_outputs, rtol=1e-6)
    assert np.all(np.isfinite(res.outputs))


def test_generalisation_table_interpolates() -> None:
    masses = np.array([1.0, 2.0, 3.0, 4.0])
    s = np.array([1.0, 1.6, 2.0, 3.0])
    rows = generalisation_table(masses, s, np.array([True, False, True, True]), np.array([False, True, False, False]))
    assert rows[0]["interpolated_pb"] == pytest.approx(1.5) and rows[0]["ratio"] == pytest.approx(1.6 / 1.5)
    # statistical uncertainty: equal efficiencies 0.5 from 100 events -> 10% each; interpolation halfway -> 10%/sqrt(2)
    rows = generalisation_table(masses, s, np.array([True, False, True, True]), np.array([False, True, False, False]),
                                efficiency=np.full(4, 0.5), n_gen=np.full(4, 100))
    w_l, w_r = 0.5 * 1.0 / 1.5, 0.5 * 2.0 / 1.5
    expected = (1.6 / 1.5) * np.hypot(0.1, 0.1 * np.hypot(w_l, w_r))
    assert rows[0]["ratio_stat_unc"] == pytest.approx(expected)


def test_scan_working_point_with_perfect_discriminant(small_data) -> None:  # noqa: ANN001
    d = small_data
    y = d.label.astype(float) * 0.9 + 0.05
    wp = scan_working_point(d, y, thresholds=np.array([0.0, 0.5, 0.96]))
    # cutting at 0.5 keeps all signal and no background; 0.96 keeps nothing (infinite, never chosen)
    assert wp.threshold == 0.5
    assert np.all(wp.per_mass["background"] == 0)
    assert np.isinf(wp.mean_curve[2])


# ---------------------------------------------------------------- full study (slow)


@pytest.mark.slow
def test_punzi_beats_bce_and_cuts_and_generalises() -> None:
    """Acceptance study on the synthetic toy after the kinematic fit.

    61 masses (6 held out) with 2000 signal events each (efficiency known to
    ~3% per mass), 6x10^5 background events, 500 full-batch Punzi epochs.
    """
    from bumphunt.kinfit.fitter import apply_to_events
    from bumphunt.selection.network import TrainConfig, train_selector

    ev, ng = synthetic_sample(masses=mass_grid(0.175, 10.375, n=61), n_per_mass=2000, n_background=600000, seed=5)
    ev = apply_to_events(ev)
    d = prepare_training_data(ev, n_generated=ng, heldout=6, lumi_fb=1.0, seed=5)
    res = train_selector(d, TrainConfig(pretrain_epochs=10, punzi_epochs=500, punzi_learning_rate=3e-3, patience=10**9, seed=5))
    s = res.summary()["mean_sigma_min_pb"]
    assert s["punzi"] < s["bce"] < s["cut_based"]
    for row in res.generalisation:
        assert abs(row["ratio"] - 1.0) < 0.10, row


def test_large_batches_are_unbiased_partitions(small_data, rng: np.random.Generator) -> None:  # noqa: ANN001
    """With K event batches scaled by K, the batch efficiencies and backgrounds average to the full-batch ones."""
    from bumphunt.selection.features import Standardizer
    from bumphunt.selection.network import TrainConfig, _to_tensors, loss_inputs, punzi_loss, train_selector

    d = small_data
    sc = Standardizer.fit(d.X, d.names)
    y_all = rng.uniform(size=d.label.size)
    f = d.split_fraction(0)

    full = loss_inputs(d, sc, split=0)
    part = rng.integers(0, 3, size=int(d.event_id.max()) + 1)[d.event_id]
    eps_sum = np.zeros(full.n_masses)
    B_sum = np.zeros(full.n_masses)
    for q in range(3):
        subset = d.rows(0) & (part == q)
        li = loss_inputs(d, sc, split=None, subset=subset, fraction=f / 3)
        # outputs in the row order of loss_inputs: signal rows sorted by mass, background by mgg
        sig = np.flatnonzero(subset & (d.label == 1) & d.in_window & d.trained[np.maximum(d.mass_idx, 0)])
        sig = sig[np.argsort(np.searchsorted(np.flatnonzero(d.trained), d.mass_idx[sig]), kind="stable")]
        bkg = np.flatnonzero(subset & (d.label == 0))
        bkg = bkg[np.argsort(d.mgg[bkg], kind="stable")]
        _, eps, B = punzi_loss(np.concatenate([y_all[sig], y_all[bkg]]), _to_tensors(li), lumi_fb=d.lumi_fb, a=5.0, b=1.28)
        eps_sum += eps.numpy()
        B_sum += B.numpy()
    e_full, B_full = efficiency_and_background(d, y_all, split=0)
    np.testing.assert_allclose(eps_sum / 3, e_full[d.trained], rtol=1e-10)
    np.testing.assert_allclose(B_sum / 3, B_full[d.trained], rtol=1e-10)
    res = train_selector(d, TrainConfig(hidden_layers=1, units=4, pretrain_epochs=1, punzi_epochs=3, punzi_batches=3), compare=False)
    assert len(res.history["loss"]) == 3 and np.all(np.isfinite(res.history["loss"]))

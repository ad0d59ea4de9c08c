"""Training the Punzi net: loss decreases, working point, save/load/apply, NaN guard, batches, the full study (slow)."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from bumphunt.errors import InputError
from bumphunt.events.candidates import diphoton_candidates
from bumphunt.selection.features import Standardizer
from bumphunt.selection.figures_of_merit import punzi_sensitivity
from bumphunt.selection.loss import loss_inputs, punzi_loss, to_tensors
from bumphunt.selection.masses import mass_grid
from bumphunt.selection.selector import PunziSelector, TrainConfig, apply
from bumphunt.selection.training import train_selector
from bumphunt.selection.training_data import prepare_training_data
from bumphunt.selection.working_point import efficiency_and_background
from bumphunt.toymc.three_photon import synthetic_sample


@pytest.fixture(scope="module")
def trained(small_data):  # noqa: ANN001, ANN201
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
    sel = trained.selector
    path = sel.save(tmp_path / "sel")
    meta = json.loads((path / "metadata.json").read_text())
    for key in ("features", "scaling", "windows", "working_point", "training_config", "bumphunt_version"):
        assert key in meta
    loaded = PunziSelector.load(path)
    ev, _ = small_sample
    cand = diphoton_candidates(ev)
    y = apply(str(path), cand, ev)
    assert "punzi_net" in cand and y.shape == cand["mgg"].shape
    assert np.all((y >= 0) & (y <= 1))
    cand2 = diphoton_candidates(ev)
    np.testing.assert_allclose(loaded.apply(cand2, ev), sel.apply(diphoton_candidates(ev), ev), rtol=1e-6)
    assert loaded.threshold == pytest.approx(trained.working_point.threshold)
    with pytest.raises(InputError, match="feature column"):
        loaded.apply(diphoton_candidates(ev))  # no events to compute features from
    with pytest.raises(InputError, match="not a selector directory"):
        PunziSelector.load(tmp_path)


def test_nan_guard_restores_weights_and_stops(small_data, monkeypatch: pytest.MonkeyPatch, caplog) -> None:  # noqa: ANN001
    import bumphunt.selection.training as training_module

    orig = training_module.punzi_loss

    def poisoned(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        value, eps, B = orig(*args, **kwargs)
        return value * np.nan, eps, B

    monkeypatch.setattr(training_module, "punzi_loss", poisoned)
    cfg = TrainConfig(hidden_layers=1, units=4, pretrain_epochs=1, punzi_epochs=20, max_nan_events=3)
    with caplog.at_level(logging.WARNING):
        res = training_module.train_selector(small_data, cfg, compare=False)
    assert res.nan_events == 3 and "non-finite" in caplog.text
    # weights after the guard are the pre-trained ones: outputs equal the BCE outputs
    np.testing.assert_allclose(res.outputs, res.bce_outputs, rtol=1e-6)
    assert np.all(np.isfinite(res.outputs))


@pytest.mark.slow
def test_punzi_beats_bce_and_cuts_and_generalises() -> None:
    """Acceptance study on the synthetic toy after the kinematic fit.

    61 masses (6 held out) with 2000 signal events each (efficiency known to
    ~3% per mass), 6x10^5 background events, 500 full-batch Punzi epochs.
    """
    from bumphunt.kinfit import apply_to_events

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
        _, eps, B = punzi_loss(np.concatenate([y_all[sig], y_all[bkg]]), to_tensors(li), lumi_fb=d.lumi_fb, a=5.0, b=1.28)
        eps_sum += eps.numpy()
        B_sum += B.numpy()
    e_full, B_full = efficiency_and_background(d, y_all, split=0)
    np.testing.assert_allclose(eps_sum / 3, e_full[d.trained], rtol=1e-10)
    np.testing.assert_allclose(B_sum / 3, B_full[d.trained], rtol=1e-10)
    res = train_selector(d, TrainConfig(hidden_layers=1, units=4, pretrain_epochs=1, punzi_epochs=3, punzi_batches=3), compare=False)
    assert len(res.history["loss"]) == 3 and np.all(np.isfinite(res.history["loss"]))

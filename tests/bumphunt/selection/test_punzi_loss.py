"""The Punzi loss (TensorFlow): value against a dense closed form, gradient, empty background window."""

from __future__ import annotations

import numpy as np
import pytest

from bumphunt.selection.features import Standardizer
from bumphunt.selection.figures_of_merit import punzi_sensitivity
from bumphunt.selection.loss import loss_inputs, punzi_loss, to_tensors
from bumphunt.selection.working_point import efficiency_and_background


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
    t = to_tensors(li)
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

    d = small_data
    t = to_tensors(loss_inputs(d, Standardizer.fit(d.X, d.names), split=0))
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

    d = small_data
    li = loss_inputs(d, Standardizer.fit(d.X, d.names), split=0)
    li.stop[0] = li.start[0]  # first window holds no background
    t = to_tensors(li)
    yv = tf.Variable(np.full(li.x.shape[0], 0.5))
    with tf.GradientTape() as tape:
        value, _, B = punzi_loss(yv, t, lumi_fb=d.lumi_fb, a=5.0, b=1.28)
    g = tape.gradient(value, yv).numpy()
    assert float(B[0]) == 0.0 and np.isfinite(float(value)) and np.all(np.isfinite(g))


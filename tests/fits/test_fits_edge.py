"""The wrong-pair kinematic edge in the vectorised engine: densities, quadrature, kernels, toys, zfit."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, stats

import fits
from fits.densities import ShapeArrays, kernel_shape_parameters, signal_pdf
from fits.design import Design, build_asimov_design, build_design, moments_at, quadrature_nodes
from fits.toys import fit_toys, generate_toys, sample_signal
from signal_models import SignalShape
from signal_models.shapes import comb_integral, dscb_integral

_BASE = dict(sigma=0.03, alpha_l=1.2, n_l=3.5, alpha_r=1.6, n_r=8.0)

#: edges above the peak, below it, near either end of the window, and a plain shape
EDGED = [
    SignalShape(mu=7.30, **_BASE, comb_fraction=0.2, comb_slope=-0.3, comb_edge=7.45, comb_edge_width=0.04),
    SignalShape(mu=7.60, **_BASE, comb_fraction=0.25, comb_slope=0.4, comb_edge=7.30, comb_edge_width=0.06),
    SignalShape(mu=7.10, **_BASE, comb_fraction=0.2, comb_slope=0.1, comb_edge=7.68, comb_edge_width=0.05),
    SignalShape(mu=7.50, **_BASE, comb_fraction=0.3, comb_slope=-0.8, comb_edge=6.98, comb_edge_width=0.02),
]
PLAIN = SignalShape(mu=7.00, **_BASE, comb_fraction=0.2, comb_slope=-0.2)


def _arrays(shapes):
    sh = ShapeArrays.from_shapes(shapes)
    return sh, sh.mu - 20.0 * sh.sigma, sh.mu + 20.0 * sh.sigma


def _cdf(shape: SignalShape, x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Analytic CDF of the shape normalised on [lo, hi] (same integrals as SignalShape.integral)."""
    t = (x - shape.mu) / shape.sigma
    pars = (shape.alpha_l, shape.n_l, shape.alpha_r, shape.n_r)
    peak = dscb_integral((lo - shape.mu) / shape.sigma, t, *pars) / dscb_integral((lo - shape.mu) / shape.sigma, (hi - shape.mu) / shape.sigma, *pars)
    scale = shape.comb_domain * shape.sigma
    e, w = ((shape.comb_edge - shape.mu) / scale, shape.comb_edge_width / scale) if math.isfinite(shape.comb_edge) else (np.inf, 1.0)
    u1 = (lo - shape.mu) / scale
    comb = comb_integral(u1, (x - shape.mu) / scale, shape.comb_slope, e, w) / comb_integral(u1, (hi - shape.mu) / scale, shape.comb_slope, e, w)
    return (1.0 - shape.comb_fraction) * peak + shape.comb_fraction * comb


def test_edge_reaches_the_windows():
    _, lo, hi = _arrays(EDGED)
    assert all(s.edge_matters(h) and lo_ < s.comb_edge < h for s, lo_, h in zip(EDGED, lo, hi))
    sh, _, _ = _arrays(EDGED + [PLAIN])
    assert sh.edge_rows(np.append(hi, PLAIN.mu + 0.6)).tolist() == [True] * 4 + [False]


def test_signal_pdf_equals_shape_pdf_with_edge():
    shapes = EDGED + [PLAIN]
    sh, lo, hi = _arrays(shapes)
    x = np.stack([np.linspace(a, b, 4001) for a, b in zip(lo, hi)])
    p = signal_pdf(x, sh, lo, hi)
    for j, s in enumerate(shapes):
        ref = s.pdf(x[j], lo[j], hi[j])
        np.testing.assert_allclose(p[j], ref, rtol=1e-12, atol=0)
    # the edge cuts the combinatorial part: well above it only the DSCB tail is left
    j = 1
    above = x[j] > EDGED[j].comb_edge + 8 * EDGED[j].comb_edge_width
    peak_only = SignalShape(**{**EDGED[j].to_dict(), "comb_fraction": 0.0}).pdf(x[j][above], lo[j], hi[j]) * (1 - EDGED[j].comb_fraction)
    np.testing.assert_allclose(p[j][above], peak_only, rtol=1e-12)


def test_quadrature_normalises_the_edged_shape():
    sh, lo, hi = _arrays(EDGED + [PLAIN])
    x, wq = quadrature_nodes(sh, lo, hi)
    norm = (signal_pdf(x, sh, lo, hi) * wq).sum(axis=1)
    np.testing.assert_allclose(norm, 1.0, rtol=0, atol=1e-9)
    # Asimov-type integral int b log(b + mu s) over the window against adaptive quadrature
    for j, s in enumerate(EDGED):
        b = lambda xx, s=s: 200.0 + 50.0 * (xx - s.mu)  # noqa: E731
        f = lambda xx, b=b, s=s, j=j: b(xx) * np.log(b(xx) + 30.0 * s.pdf(np.atleast_1d(xx), lo[j], hi[j])[0])  # noqa: E731
        pts = sorted({s.mu, s.comb_edge, s.mu - s.alpha_l * s.sigma, s.mu + s.alpha_r * s.sigma} & set(np.clip([s.mu, s.comb_edge], lo[j], hi[j])))
        ref = integrate.quad(f, lo[j], hi[j], points=pts, limit=500, epsabs=1e-13, epsrel=1e-13)[0]
        xs = x[j]
        val = np.sum(wq[j] * b(xs) * np.log(b(xs) + 30.0 * signal_pdf(xs[None, :], sh.take([j]), lo[j : j + 1], hi[j : j + 1])[0]))
        assert abs(val - ref) < 1e-10 * abs(ref)


def test_edge_break_points_are_needed():
    """Without the panels around the edge the peak-only rule misses the step by far more than 1e-9."""
    sh, lo, hi = _arrays(EDGED)
    no_edge = ShapeArrays(**{**{n: getattr(sh, n) for n in sh.__dataclass_fields__}, "comb_edge": np.full(len(sh), np.inf)})
    x, wq = quadrature_nodes(no_edge, lo, hi)
    err = np.abs((signal_pdf(x, sh, lo, hi) * wq).sum(axis=1) - 1.0)
    assert err.max() > 1e-7


def _padded(x, sh, lo, hi, order):
    d = build_design(x, sh, lo, hi, order)
    start = np.searchsorted(x, lo)
    n = np.searchsorted(x, hi, side="right") - start
    j = np.arange(d.xp.shape[1])[None, :]
    idx = np.where(j < n[:, None], np.minimum(start[:, None] + j, len(x) - 1), start[:, None])
    xpad = x[idx]
    w = (j < n[:, None]).astype(float)
    ref = Design(M=moments_at(xpad, sh, lo, hi, order), w=w, integ=d.integ, lo=lo, hi=hi, n_events=n, unit_weights=True)
    return d, ref, xpad


def test_compiled_and_numpy_designs_agree_with_edge():
    rng = np.random.default_rng(2)
    x = np.sort(rng.uniform(6.3, 8.3, 40_000))
    shapes = EDGED + [PLAIN]
    sh, lo, hi = _arrays(shapes)
    d, ref, xpad = _padded(x, sh, lo, hi, 3)
    assert d.compact
    valid = ref.w > 0
    np.testing.assert_allclose(d.s[valid], signal_pdf(xpad, sh, lo, hi)[valid], rtol=1e-12)
    for j, s in enumerate(shapes):
        np.testing.assert_allclose(d.s[j][valid[j]], s.pdf(xpad[j][valid[j]], lo[j], hi[j]), rtol=1e-12)
    np.testing.assert_allclose(d.M * ref.w[:, None, :], ref.M * ref.w[:, None, :], rtol=1e-12, atol=1e-12)
    # an empty window (padding value from the edged density at the window centre)
    e = build_design(np.array([0.1, 0.2]), sh.take([1]), lo[1:2], hi[1:2], 3)
    np.testing.assert_allclose(e.s[0, 0], EDGED[1].pdf(np.array([0.5 * (lo[1] + hi[1])]), lo[1], hi[1])[0], rtol=1e-12)


def test_edge_stays_in_gev_when_the_resolution_scales():
    sh, lo, hi = _arrays(EDGED)
    scaled = sh.scaled_sigma(1.15)
    x = np.stack([np.linspace(a, b, 501) for a, b in zip(lo, hi)])
    p = signal_pdf(x, scaled, lo, hi)
    for j, s in enumerate(EDGED):
        ref = SignalShape(**{**s.to_dict(), "sigma": 1.15 * s.sigma}).pdf(x[j], lo[j], hi[j])
        np.testing.assert_allclose(p[j], ref, rtol=1e-12)
    np.testing.assert_array_equal(scaled.comb_edge, sh.comb_edge)


def test_shapes_without_edge_are_bit_identical():
    """comb_edge = inf (explicitly, or an edge far above the window) gives the same bytes as
    shapes without the edge fields, alone or batched with edged shapes."""
    plain = [SignalShape(mu=m, **_BASE, comb_fraction=f, comb_slope=-0.2) for m, f in ((7.0, 0.2), (7.2, 0.0), (7.4, 0.3))]
    sh0, lo, hi = _arrays(plain)
    fields = {n: getattr(sh0, n) for n in ("mu", "sigma", "alpha_l", "n_l", "alpha_r", "n_r", "comb_fraction", "comb_slope", "comb_domain")}
    old = ShapeArrays(**fields)  # the old layout: no edge fields
    explicit = ShapeArrays(**fields, comb_edge=np.full(3, np.inf), comb_edge_width=np.zeros(3))
    far = ShapeArrays.from_shapes([SignalShape(**{**s.to_dict(), "comb_edge": s.mu + 0.6 + 1.0, "comb_edge_width": 0.1}) for s in plain])
    assert not far.edge_rows(hi).any()
    rng = np.random.default_rng(4)
    x = np.sort(rng.uniform(6.3, 8.1, 20_000))
    xg = np.stack([np.linspace(a, b, 777) for a, b in zip(lo, hi)])

    def values(sh, rows=slice(None)):
        d = build_design(x, sh, lo, hi, 3)
        xq, wq = quadrature_nodes(sh, lo, hi)
        a, _ = build_asimov_design(sh, lo, hi, 3)
        return [signal_pdf(xg, sh, lo, hi), d.s, d.xp, d.cheb_sums, xq, wq, a.M, kernel_shape_parameters(sh, lo, hi)[:, :13]]

    ref = values(old)
    for sh in (explicit, far, sh0):
        for a, b in zip(ref, values(sh)):
            assert a.tobytes() == b.tobytes()
    # batched with edged shapes: the densities of the plain rows keep their bytes
    mixed = ShapeArrays.from_shapes(plain + EDGED)
    _, lo_e, hi_e = _arrays(EDGED)
    lo_m, hi_m = np.append(lo, lo_e), np.append(hi, hi_e)
    xg_m = np.concatenate([xg, np.stack([np.linspace(a, b, 777) for a, b in zip(lo_e, hi_e)])])
    assert signal_pdf(xg_m, mixed, lo_m, hi_m)[:3].tobytes() == ref[0].tobytes()
    dm = build_design(x, mixed, lo_m, hi_m, 3)
    n = ref[1].shape[1]
    assert dm.s[:3, :n].tobytes() == ref[1].tobytes()


def test_plain_hypotheses_keep_their_bits_next_to_edged_ones():
    """Fits and limits of shapes without an edge do not depend on edged shapes in the same batch
    (resumed and distributed scans split the hypotheses differently)."""
    plain = [SignalShape(mu=m, **_BASE, comb_fraction=0.2, comb_slope=-0.2) for m in (6.9, 7.0)]
    rng = np.random.default_rng(1)
    x = np.sort(rng.uniform(6.0, 8.5, 30_000))

    def run(shapes):
        t = fits.evaluate_hypotheses(x, shapes, np.array([s.window() for s in shapes]), bkg_order=3)
        return [np.asarray(getattr(t, f))[: len(plain)] for f in ("nsig", "nll", "z_local", "ul_nsig_obs", "ul_nsig_exp")]

    for a, b in zip(run(plain), run(plain + EDGED[:1])):
        assert a.tobytes() == b.tobytes()


def test_extra_templates_use_the_edged_density():
    from fits.extra_templates import design_columns

    s = EDGED[0]
    peak = SignalShape(mu=7.3, sigma=0.03, alpha_l=1.0, n_l=3.0, alpha_r=2.0, n_r=5.0, comb_fraction=0.3, comb_slope=0.2, comb_edge=7.2, comb_edge_width=0.03)
    lo, hi = s.window()
    x = np.linspace(lo, hi, 301)
    F, integ = design_columns(x, s, [peak], lo, hi, 2)
    np.testing.assert_allclose(F[:, 0], s.pdf(x, lo, hi), rtol=1e-12)
    np.testing.assert_allclose(F[:, 1], peak.pdf(x, lo, hi), rtol=1e-12)


def test_toys_sample_the_edged_shape():
    rng = np.random.default_rng(17)
    for s in EDGED[:2]:
        lo, hi = s.window()
        xs = sample_signal(rng, s, (lo, hi), 40_000)
        assert np.all((xs >= lo) & (xs <= hi))
        assert stats.kstest(xs, lambda v, s=s, lo=lo, hi=hi: _cdf(s, np.asarray(v), lo, hi)).pvalue > 1e-3
        # the test has the power to see the edge: the same shape without it is rejected
        plain = SignalShape(**{k: v for k, v in s.to_dict().items() if not k.startswith("comb_edge")})
        assert stats.kstest(xs, lambda v, plain=plain, lo=lo, hi=hi: _cdf(plain, np.asarray(v), lo, hi)).pvalue < 1e-6


def test_toy_fits_of_the_edged_shape_are_unbiased():
    s = EDGED[0]
    window = s.window()
    toys = generate_toys(s, window, nsig=400.0, beta=[2000.0, -300.0, 40.0, 0.0], n_toys=200, seed=5)
    tf = fit_toys(toys, s, window)
    ok = tf.converged
    assert ok.mean() > 0.95
    pull = (tf.nsig[ok] - 400.0) / tf.nsig_err[ok]
    # mean pull 0 within 4 standard errors, width 1 within ~20%
    assert abs(pull.mean()) < 4.0 / math.sqrt(ok.sum())
    assert 0.8 < pull.std() < 1.2


def test_engines_agree_with_edge():
    zfit = pytest.importorskip("zfit")  # noqa: F841
    from fits.zfit_engine import ZfitHypothesis, fit_zfit

    rng = np.random.default_rng(9)
    shape = EDGED[1]
    lo, hi = shape.window()
    x = np.concatenate([lo + (hi - lo) * rng.power(1.3, 3000), shape.sample(80, lo, hi, rng=rng)])
    window = (lo, hi)
    v = fits.fit(x, shape, window, bkg_order=3)
    h = ZfitHypothesis(x, shape, window, bkg_order=3)
    # the zfit model is the edged density (zfit copies the points into a Data object without a
    # name inside pdf(): its own DeprecationWarning, silenced as around the engine's zfit calls)
    from signal_models.zfit_shapes import zfit_internal_warnings_ignored

    xt = np.linspace(lo, hi, 301)
    with zfit_internal_warnings_ignored():
        zfit_pdf = np.asarray(h.sig.pdf(xt))
    np.testing.assert_allclose(zfit_pdf, shape.pdf(xt, lo, hi), rtol=1e-9)
    z = fit_zfit(x, shape, window, bkg_order=3, hypothesis=h)
    assert v.converged and z.converged
    assert abs(v.nll - z.nll) < 1e-4
    assert abs(v.nsig - z.nsig) < 1e-3 * v.nsig_err
    assert v.nsig_err == pytest.approx(z.nsig_err, rel=1e-3)
    assert v.z_local == pytest.approx(z.z_local, abs=1e-3)

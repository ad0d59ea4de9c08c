"""Compiled data-fit path of the vectorised engine against the numpy path and libm."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fits.densities import ShapeArrays, signal_pdf
from fits.design import Design, build_design, moments_at
from fits.newton import minimise, predict_conditional, start_values
from signal_models import SignalShape

kern = pytest.importorskip("fits._kernels")


def test_vectorised_log_exp_match_libm():
    rng = np.random.default_rng(5)
    y = np.concatenate([
        1.0 + rng.uniform(0, 1e-9, 60), 1.0 - rng.uniform(0, 1e-9, 60), rng.uniform(1.0, 50.0, 150), rng.uniform(1e-6, 1.0, 100),
        10.0 ** rng.uniform(-300, 300, 100), [1.0, 2.0, 0.5, math.sqrt(2.0), np.nextafter(math.sqrt(2.0), 2.0), math.sqrt(0.5), 1e300, 4.0, 2.2250738585072014e-308],
    ])
    out = np.empty_like(y)
    kern._vlog(y.copy(), out)
    ref = np.log(y)
    assert np.all(np.abs(out - ref) <= 4.5e-16 * np.maximum(np.abs(ref), 1.0))
    z = np.concatenate([-rng.exponential(5.0, 200), [0.0, -1e-300, -0.5 * math.log(2.0), -699.0, -700.0, -800.0]])
    e = np.empty_like(z)
    kern._vexp(z.copy(), e)
    ok = z > -700.0
    np.testing.assert_allclose(e[ok], np.exp(z[ok]), rtol=5e-16, atol=0)
    assert np.all(e[~ok] == 0.0)


def test_compiled_normal_cdf_matches_scipy():
    from scipy.special import ndtr

    z = np.concatenate([np.linspace(-38.0, 10.0, 4001), [0.0, -1e-300, 1e-300, -0.7071, 0.7071, -37.5, 8.3]])
    out = np.empty_like(z)
    kern._vphi(z, out)
    ref = ndtr(z)
    # relative error of Phi(z) from the rounding of the argument grows like z^2 eps
    assert np.all(np.abs(out - ref) <= 2e-15 * (1.0 + z * z) * ref + 1e-300)  # scipy flushes subnormals below z = -37.5


def test_lane_sums_specialised_and_general_paths_agree():
    """The cubic-background kernels (sums in registers) and the general-order loops use the
    same lanes and order: identical Chebyshev sums, and gradient/Hessian/NLL equal to rounding."""
    rng = np.random.default_rng(8)
    th = np.array([12.0, 900.0, 40.0, -30.0, 5.0])
    for n in (0, 5, 8, 13, 600, 4099):
        xp = rng.uniform(-1, 1, n)
        s = rng.exponential(20.0, n)
        o3, o4 = np.empty(4), np.empty(5)
        kern._cheb_sums(xp, n, 3, o3)
        kern._cheb_sums(xp, n, 4, o4)
        assert o3.tobytes() == o4[:4].tobytes()
        np.testing.assert_allclose(o4, [np.sum(np.cos(m * np.arccos(xp))) for m in range(5)], rtol=1e-12, atol=1e-9)
        g3, H3, gn, Hn = np.empty(5), np.empty((5, 5)), np.empty(5), np.empty((5, 5))
        assert kern._pass3(s, xp, n, th, g3, H3) == kern._passn(s, xp, n, th, 5, gn, Hn) == 0
        np.testing.assert_allclose(g3, gn, rtol=1e-13)
        np.testing.assert_allclose(H3, Hn, rtol=1e-13)
        lam = s * th[0] + np.polynomial.chebyshev.chebval(xp, th[1:])
        ref = math.fsum(np.log(lam))
        for nb, sl in (kern._slog3(s, xp, n, th), kern._slogn(s, xp, n, th, 5)):
            assert nb == 0 and abs(sl - ref) <= 1e-13 * max(abs(ref), 1.0)
        np.testing.assert_allclose(gn, [np.sum(s / lam)] + [np.sum(np.cos(m * np.arccos(xp)) / lam) for m in range(4)], rtol=1e-12)
    # densities that are not positive are counted, not summed
    th_bad = th.copy()
    th_bad[1] = -1e4
    assert kern._slog3(s, xp, n, th_bad)[0] > 0 and kern._pass3(s, xp, n, th_bad, g3, H3) > 0


def _spectrum(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = np.concatenate([rng.uniform(0.5, 1.5, n), rng.normal(1.0, 0.012, n // 50)])
    return np.sort(x[(x > 0.5) & (x < 1.5)])


SHAPES = [
    SignalShape(mu=m, sigma=0.012, alpha_l=1.2, n_l=3.5, alpha_r=1.6, n_r=8.0, comb_fraction=f, comb_slope=-0.2)
    for m, f in ((0.8, 0.1), (1.0, 0.0), (1.003, 0.3), (1.2, 0.1))
]


def _designs(order: int):
    x = _spectrum(20_000, 3)
    sh = ShapeArrays.from_shapes(SHAPES)
    lo = sh.mu - 0.25
    hi = sh.mu + 0.23
    d = build_design(x, sh, lo, hi, order)
    start = np.searchsorted(x, lo)
    n = np.searchsorted(x, hi, side="right") - start
    idx = np.minimum(start[:, None] + np.arange(d.xp.shape[1])[None, :], len(x) - 1)
    idx = np.where(np.arange(d.xp.shape[1])[None, :] < n[:, None], idx, start[:, None])
    xpad = x[idx]
    w = (np.arange(xpad.shape[1])[None, :] < n[:, None]).astype(float)
    ref = Design(M=moments_at(xpad, sh, lo, hi, order), w=w, integ=d.integ, lo=lo, hi=hi, n_events=n, unit_weights=True)
    return x, sh, d, ref, xpad


@pytest.mark.parametrize("order", [3, 2])
def test_compiled_design_matches_numpy(order):
    _, sh, d, ref, xpad = _designs(order)
    assert d.compact and not ref.compact
    valid = ref.w > 0
    s_np = signal_pdf(xpad, sh, d.lo, d.hi)
    np.testing.assert_allclose(d.s[valid], s_np[valid], rtol=1e-13)
    # the lazily built moment matrix is the numpy one on the real events
    np.testing.assert_allclose((d.M * ref.w[:, None, :]), (ref.M * ref.w[:, None, :]), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(d.cheb_sums, (ref.M[:, 1 : order + 2] * ref.w[:, None, :]).sum(axis=2), rtol=1e-10, atol=1e-8)


@pytest.mark.parametrize("order", [3, 2])
def test_compiled_newton_matches_numpy(order):
    _, _, d, ref, _ = _designs(order)
    th = start_values(ref)
    a = minimise(d, th, mode="free")
    b = minimise(ref, th, mode="free")
    assert a.converged.all() and b.converged.all()
    np.testing.assert_allclose(a.nll, b.nll, rtol=0, atol=1e-7)
    err = np.sqrt(np.diagonal(np.linalg.inv(b.hess), axis1=1, axis2=2))
    assert np.all(np.abs(a.theta - b.theta) < 1e-3 * err)
    # parameter errors (the numpy path returns the Hessian one step before the minimum)
    err_a = np.sqrt(np.diagonal(np.linalg.inv(a.hess), axis1=1, axis2=2))
    np.testing.assert_allclose(err_a, err, rtol=1e-3)
    # conditional fits at fixed yields
    mu = np.abs(b.mu) + 2.0 * err[:, 0]
    th0 = predict_conditional(b.theta, b.hess_lin, mu)
    ca = minimise(d, th0, mode="fixed")
    cb = minimise(ref, th0, mode="fixed")
    assert ca.converged.all() and cb.converged.all()
    np.testing.assert_allclose(ca.theta[:, 0], mu)
    np.testing.assert_allclose(ca.nll, cb.nll, rtol=0, atol=1e-7)
    assert np.all(ca.nll >= a.nll - 1e-9)


def test_compiled_newton_recovers_from_infeasible_start():
    _, _, d, ref, _ = _designs(3)
    good = minimise(ref, start_values(ref))
    th = np.zeros((d.k, d.n_par))
    th[:, 1] = -5.0  # negative density everywhere
    r = minimise(d, th, mode="free")
    assert r.converged.all()
    np.testing.assert_allclose(r.nll, good.nll, rtol=0, atol=1e-7)


@pytest.mark.parametrize("kind", ["lognormal", "gaussian"])
def test_compiled_syst_newton_matches_numpy(kind):
    """Conditional fits with a constrained yield nuisance: compiled and numpy paths agree."""
    _, _, d, ref, _ = _designs(3)
    hat = minimise(ref, start_values(ref), mode="free")
    err = np.sqrt(np.diagonal(np.linalg.inv(hat.hess), axis1=1, axis2=2))[:, 0]
    c = np.abs(hat.mu) + 2.0 * err  # POI above the best fit: the nuisance pulls the yield down
    rel = np.array([0.05, 0.2, 0.5, 0.1])
    a = np.log1p(rel) if kind == "lognormal" else rel
    th = hat.theta.copy()
    th[:, 0] = 0.0
    ca = minimise(d, th, mode="syst", syst_c=c, syst_a=a, syst_kind=kind)
    cb = minimise(ref, th, mode="syst", syst_c=c, syst_a=a, syst_kind=kind)
    assert ca.converged.all() and cb.converged.all()
    np.testing.assert_allclose(ca.nll, cb.nll, rtol=0, atol=1e-7)
    assert np.all(np.abs(ca.mu - cb.mu) < 1e-3 * err)
    assert np.all(ca.theta[:, 0] < 0)  # the constraint is used (yield below c)
    # the nuisance lowers the conditional NLL compared with the fixed yield, by a finite amount
    fx = minimise(d, np.where(np.arange(d.n_par) == 0, c[:, None], hat.theta), mode="fixed")
    assert np.all(ca.nll < fx.nll) and np.all(ca.nll > hat.nll - 1e-9)
    # Hessian in (u, beta) at the solution agrees (parameter errors)
    ea = np.sqrt(np.diagonal(np.linalg.inv(ca.hess), axis1=1, axis2=2))
    eb = np.sqrt(np.diagonal(np.linalg.inv(cb.hess), axis1=1, axis2=2))
    np.testing.assert_allclose(ea, eb, rtol=1e-3)


_REPRO_SCRIPT = r"""
import hashlib, sys
import numpy as np
from fits import _kernels as kern
from fits import evaluate_hypotheses
from fits.densities import ShapeArrays
from fits.design import build_design
from fits.newton import minimise, predict_conditional, start_values
from signal_models import SignalShape

rng = np.random.default_rng(11)
x = np.sort(np.concatenate([rng.uniform(0.5, 1.5, 6000), rng.normal(1.0, 0.012, 150), rng.normal(0.8, 0.012, 40)]))
shapes = [SignalShape(mu=m, sigma=0.012, alpha_l=1.2, n_l=3.5, alpha_r=1.6, n_r=8.0, comb_fraction=f, comb_slope=-0.2)
          for m, f in ((0.8, 0.1), (1.0, 0.0), (1.003, 0.3), (1.2, 0.1), (0.9, 0.0))]
h = hashlib.sha256()

def fits_of(idx, order):
    idx = list(idx)
    sh = ShapeArrays.from_shapes([shapes[i] for i in idx])
    lo, hi = sh.mu - 0.25, sh.mu + 0.23 - 0.01 * np.array(idx)
    d = build_design(x, sh, lo, hi, order)
    hat = minimise(d, start_values(d), mode="free")
    mu = np.abs(hat.mu) + 10.0
    fx = minimise(d, predict_conditional(hat.theta, hat.hess_lin, mu), mode="fixed")
    th = hat.theta.copy()
    th[:, 0] = 0.0
    sy = minimise(d, th, mode="syst", syst_c=mu, syst_a=np.full(len(idx), 0.1), syst_kind="lognormal")
    out = [d.s[:, :5], d.xp[:, :5], d.cheb_sums, hat.theta, hat.nll, hat.hess_lin, fx.theta, fx.nll, sy.theta, sy.nll, sy.hess]
    # the whole chain: fits, observed and expected limits, with a yield systematic
    t = evaluate_hypotheses(x, [shapes[i] for i in idx], np.stack([lo, hi], axis=1), bkg_order=order, signal_scale=np.full(len(idx), 2.0),
                            signal_scale_rel_unc=0.1)
    return out + [t.nsig, t.nll, t.z_local, t.ul_nsig_obs, t.ul_nsig_exp, t.ul_xsec_obs, t.ul_xsec_exp]

for order in (3, 2):
    together = fits_of(range(5), order)
    # the same hypotheses one at a time and in another order: identical bytes
    for split in ([[0], [1], [2], [3], [4]], [[3, 1], [4, 0, 2]]):
        for part in split:
            for a, b in zip(together, fits_of(part, order)):
                assert a[part].tobytes() == b.tobytes(), (order, split)
    for a in together:
        h.update(np.ascontiguousarray(a).tobytes())
print(h.hexdigest())
"""


def _run_repro(cache_dir, threads: int, script: str = _REPRO_SCRIPT) -> str:
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache_dir), NUMBA_NUM_THREADS=str(threads))
    root = Path(__file__).resolve().parents[2]  # the repository (tests/fits/../..)
    env["PYTHONPATH"] = os.pathsep.join([str(root), env.get("PYTHONPATH", "")])
    out = subprocess.run([sys.executable, "-c", script], env=env, cwd=root, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout.strip().splitlines()[-1]


_KERNEL_SCRIPT = r"""
import hashlib
import numpy as np
from fits import _kernels as kern

rng = np.random.default_rng(4)
h = hashlib.sha256()
x = np.sort(rng.uniform(0.5, 1.5, 5003))
par = np.array([[1.0, 0.012, 1.2, 3.5, 1.6, 8.0, 30.0, 0.1, 0.05, -0.2, 2.0, 0.45, 1.55, 0.0]])
for order in (3, 2):
    s, xp, ch = np.empty((1, 5003)), np.empty((1, 5003)), np.empty((1, order + 1))
    kern.event_values(x, np.array([0]), np.array([5001]), par, order, s, xp, ch)
    P = order + 2
    th = np.zeros(P)
    th[0], th[1] = 50.0, 4000.0
    g, H = np.empty(P), np.empty((P, P))
    nb = kern._pass_any(s[0], xp[0], 5001, th, P, g, H)
    nb2, slog = kern._slog(s[0], xp[0], 5001, th, P)
    for a in (s, xp, ch, g, H, np.array([nb, nb2, slog])):
        h.update(np.ascontiguousarray(a, dtype=float).tobytes())
# a window reached by the wrong-pair edge (columns 13, 14: edge width and position, GeV)
pe = np.concatenate([par, [[0.0, 0.0]]], axis=1)
pe[0, 13], pe[0, 14] = 0.04, 1.1
s, xp, ch = np.empty((1, 5003)), np.empty((1, 5003)), np.empty((1, 4))
kern.event_values(x, np.array([0]), np.array([5001]), pe, 3, s, xp, ch)
z = np.linspace(-40.0, 12.0, 1001)
ph = np.empty_like(z)
kern._vphi(z, ph)
for a in (s, xp, ch, ph):
    h.update(np.ascontiguousarray(a, dtype=float).tobytes())
print(h.hexdigest())
"""


def test_fresh_and_cached_event_kernels_give_identical_bits(tmp_path):
    """Per-event kernels (densities, gradient/Hessian sums, NLL sums) compiled from scratch and
    loaded from numba's cache give the same bytes."""
    cache = tmp_path / "numba_cache"
    cache.mkdir()
    fresh = _run_repro(cache, 1, _KERNEL_SCRIPT)
    assert any(p.suffix == ".nbi" for p in cache.rglob("*")), "the first run wrote no cache index"
    assert _run_repro(cache, 2, _KERNEL_SCRIPT) == fresh


@pytest.mark.slow
def test_fresh_compile_and_cached_kernels_give_identical_bits(tmp_path):
    """The whole chain (Newton kernels, limits with a yield systematic) compiled from scratch and
    loaded from numba's cache gives the same bytes, with any number of threads and any split of
    the hypotheses into batches (resumed and distributed scans)."""
    cache = tmp_path / "numba_cache"
    cache.mkdir()
    fresh = _run_repro(cache, 1)
    assert any(p.suffix == ".nbi" for p in cache.rglob("*")), "the first run wrote no cache index"
    cached = _run_repro(cache, 2)
    assert fresh == cached

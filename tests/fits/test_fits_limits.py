"""Asymptotic CLs limits: counting agreement with pyhf, Asimov band, systematics, spurious signal, pyhf export, CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.special import ndtr, ndtri

import fits
from fits.asymptotic import cls_asymptotic, expected_band_targets, q_tilde
from signal_models import SignalShape

SHAPE = SignalShape(mu=2.0, sigma=0.02, alpha_l=1.2, n_l=3.0, alpha_r=1.5, n_r=4.0)


def _bkg(rng: np.random.Generator, n: int = 3000, shape: SignalShape = SHAPE) -> np.ndarray:
    lo, hi = shape.window()
    return lo + (hi - lo) * rng.power(1.3, n)


def _pyhf_counting(s: float, b: float, n: float) -> tuple[float, np.ndarray]:
    pyhf = pytest.importorskip("pyhf")
    spec = {"channels": [{"name": "c", "samples": [
        {"name": "s", "data": [s], "modifiers": [{"name": "mu", "type": "normfactor", "data": None}]},
        {"name": "b", "data": [b], "modifiers": []}]}]}
    model = pyhf.Model(spec, poi_name="mu")
    obs, exp = pyhf.infer.intervals.upper_limits.upper_limit([n] + model.config.auxdata, model, scan=np.linspace(0.02, 6, 200), test_stat="qtilde")
    return float(obs) * s, np.asarray(exp, float) * s


@pytest.mark.parametrize("n_obs", [55, 40, 70])
def test_counting_limit_equals_pyhf(n_obs: int) -> None:
    """Flat signal and background, background fixed: the unbinned likelihood is the one-bin Poisson model."""
    shape = SignalShape(mu=5.0, sigma=0.05, alpha_l=1, n_l=3, alpha_r=1, n_r=3, comb_fraction=1.0, comb_slope=0.0)
    lo, hi = shape.window()
    x = np.linspace(lo, hi, n_obs + 2)[1:-1]
    r = fits.upper_limit(x, shape, (lo, hi), bkg_order=0, bkg_fixed=[50.0 / (hi - lo)])
    obs, exp = _pyhf_counting(10.0, 50.0, n_obs)
    assert r.converged
    assert r.observed == pytest.approx(obs, rel=0.01)
    np.testing.assert_allclose(r.expected, exp, rtol=0.01)


def test_cls_formulas_gaussian_closed_form() -> None:
    # q~ = (mu - mu_hat)^2/s^2, q_A = mu^2/s^2 -> CLs = Phi(-(mu - mu_hat)/s) / Phi(mu_hat/s) in both regimes
    s = 3.0
    for mu_hat in (-2.0, 0.0, 1.5):
        mu = np.linspace(max(mu_hat, 0.0) + 0.5, 12, 30)
        q = np.where(mu_hat < 0, (mu**2 - 2 * mu * mu_hat) / s**2, (mu - mu_hat) ** 2 / s**2)
        cls, _, _ = cls_asymptotic(q, mu**2 / s**2)
        np.testing.assert_allclose(cls, ndtr(-(mu - mu_hat) / s) / ndtr(mu_hat / s), rtol=1e-10)
    # median expected limit for CLs at 95%: 1.96 sigma
    assert expected_band_targets(0.05)[2] == pytest.approx(ndtri(0.975))
    assert q_tilde(5.0, 1.0, 2.0, 3.0, 4.0) == 0.0  # mu_hat > mu


def test_expected_band_matches_asimov_sigma(rng: np.random.Generator) -> None:
    """Expected band = sigma_A (Phi^-1(1 - alpha Phi(N)) + N), sigma_A from the Asimov Hessian (large sample)."""
    x = _bkg(rng, 20000)
    r = fits.upper_limit(x, SHAPE)
    from fits.densities import ShapeArrays
    from fits.design import build_design
    from fits.vectorised import Batch

    sh = ShapeArrays.from_shapes([SHAPE])
    lo, hi = r.fit.window
    b = Batch(build_design(np.sort(x), sh, np.array([lo]), np.array([hi]), 3), sh, 3)
    b.fit()
    sigma_a = b.asimov_sigma()[0]
    targets = expected_band_targets(0.05)
    closed = sigma_a * targets
    # q_A is evaluated exactly at each limit, so sigma = mu / sqrt(q_A) grows slowly with mu
    # (signal adds variance): within a few percent of the constant-sigma closed form,
    # and the effective sigma increases along the band
    np.testing.assert_allclose(r.expected, closed, rtol=0.04)
    assert np.all(np.diff(r.expected / targets) > 0)
    assert r.expected[0] / targets[0] == pytest.approx(sigma_a, rel=0.01)
    # Asimov sigma ~ HESSE error of the data fit
    assert sigma_a == pytest.approx(r.fit.nsig_err, rel=0.05)


def test_limit_brackets_far_away(rng: np.random.Generator) -> None:
    """A huge signal: the bracket expands, the limit exists and lies above N_sig_hat."""
    lo, hi = SHAPE.window()
    x = np.concatenate([_bkg(rng, 500), rng.normal(SHAPE.mu, SHAPE.sigma, 5000)])
    x = x[(x > lo) & (x < hi)]
    r = fits.upper_limit(x, SHAPE)
    assert r.converged and np.isfinite(r.observed)
    assert r.observed > r.fit.nsig + r.fit.nsig_err


def test_yield_systematics(rng: np.random.Generator) -> None:
    x = _bkg(rng)
    base = fits.upper_limit(x, SHAPE)
    tiny = fits.upper_limit(x, SHAPE, rel_unc=1e-6)
    assert tiny.observed == pytest.approx(base.observed, rel=1e-4)
    np.testing.assert_allclose(tiny.expected, base.expected, rtol=1e-4)
    prev = base.observed
    for unc in (0.1, 0.3):
        for kind in ("lognormal", "gaussian"):
            lim = fits.upper_limit(x, SHAPE, rel_unc=unc, syst_kind=kind)
            assert lim.observed > prev * (1 + 1e-4) or kind == "gaussian"
            assert np.all(lim.expected >= base.expected * (1 - 1e-6))
        prev = fits.upper_limit(x, SHAPE, rel_unc=unc).observed
    # cross-section POI: limit scales with 1/signal_scale
    xs = fits.upper_limit(x, SHAPE, signal_scale=250.0, rel_unc=0.1)
    ev = fits.upper_limit(x, SHAPE, rel_unc=0.1)
    assert xs.poi == "xsec"
    assert xs.observed * 250.0 == pytest.approx(ev.observed, rel=1e-4)
    assert fits.combine_rel_unc(0.03, 0.04) == pytest.approx(np.expm1(np.hypot(np.log1p(0.03), np.log1p(0.04))))


def test_evaluate_hypotheses_xsec_columns(rng: np.random.Generator) -> None:
    x = _bkg(rng)
    t = fits.evaluate_hypotheses(x, [SHAPE], [SHAPE.window()], signal_scale=[100.0])
    assert t.ul_xsec_obs[0] * 100.0 == pytest.approx(t.ul_nsig_obs[0])
    t2 = fits.evaluate_hypotheses(x, [SHAPE], [SHAPE.window()], signal_scale=[100.0], signal_scale_rel_unc=0.2)
    assert t2.ul_xsec_obs[0] * 100.0 > t2.ul_nsig_obs[0]
    assert t2.converged[0]


def test_resolution_nuisance(rng: np.random.Generator) -> None:
    x = _bkg(rng)
    base = fits.upper_limit(x, SHAPE)
    tiny = fits.upper_limit(x, SHAPE, resolution_unc=1e-4)
    assert tiny.observed == pytest.approx(base.observed, rel=2e-3)
    wide = fits.upper_limit(x, SHAPE, resolution_unc=0.2)
    assert wide.observed >= base.observed * (1 - 1e-3)


def test_spurious_signal_picks_sufficient_order(rng: np.random.Generator) -> None:
    """An exponential background: order 0 is biased, a higher order passes the 20% criterion."""
    x = 1.0 + rng.exponential(0.4, 400_000)
    x = x[x < 3.0]
    shapes = [SignalShape(mu=m, sigma=0.01 + 0.005 * m, alpha_l=1.3, n_l=3, alpha_r=1.6, n_r=5) for m in (1.5, 2.0, 2.5)]
    win = np.array([fits.default_window(s, (1.0, 3.0)) for s in shapes])
    res = fits.spurious_signal(x, shapes, win, orders=(0, 1, 2, 3), data_fraction=0.02)
    assert not res.passes(0)
    order = fits.choose_bkg_order(res)
    assert 1 <= order <= 3
    assert res.summary()[order]["passes"]


def test_pyhf_export_matches_unbinned_fixed_background(rng: np.random.Generator, tmp_path) -> None:
    """Fixed background, fine bins: pyhf's binned CLs limit ~ the unbinned one."""
    pytest.importorskip("pyhf")
    from fits.pyhf_export import pyhf_upper_limit, workspace_spec

    x = _bkg(rng, 4000)
    spec = workspace_spec(x, SHAPE, bins=200, background="fixed", nsig_ref=10.0)
    binned = pyhf_upper_limit(spec)
    from fits.densities import ShapeArrays
    from fits.design import build_design
    from fits.vectorised import Batch

    lo, hi = SHAPE.window()
    sh = ShapeArrays.from_shapes([SHAPE])
    b = Batch(build_design(np.sort(x), sh, np.array([lo]), np.array([hi]), 3), sh, 3)
    beta0 = b.fit().zero.theta[0, 1:]
    unbinned = fits.upper_limit(x, SHAPE, bkg_fixed=beta0)
    assert binned["observed"] == pytest.approx(unbinned.observed, rel=0.05)
    np.testing.assert_allclose(binned["expected"], unbinned.expected, rtol=0.05)
    path = fits.export_pyhf(x, SHAPE, tmp_path / "ws.json")
    ws = json.loads(path.read_text())
    assert ws["measurements"][0]["config"]["poi"] == "mu"
    assert sum(ws["observations"][0]["data"]) == np.sum((x >= lo) & (x <= hi))


def test_toy_sampling_and_fit_pulls() -> None:
    """Toys from a known model, fitted as one batch: pulls of N_sig ~ N(0, 1), Z ~ N(0, 1)."""
    from fits.toys import fit_toys, generate_toys

    lo, hi = SHAPE.window()
    w = hi - lo
    beta = np.array([1500 / w, -200 / w, 40 / w, 0.0])
    toys = generate_toys(SHAPE, (lo, hi), nsig=40.0, beta=beta, n_toys=400, seed=7)
    assert np.mean([len(t) for t in toys]) == pytest.approx(1540, rel=0.01)
    tf = fit_toys(toys, SHAPE, (lo, hi))
    pull = (tf.nsig - 40.0) / tf.nsig_err
    assert tf.converged.all()
    assert abs(pull.mean()) < 0.15 and abs(pull.std() - 1) < 0.1
    toys0 = generate_toys(SHAPE, (lo, hi), nsig=0.0, beta=beta, n_toys=400, seed=8)
    z = fit_toys(toys0, SHAPE, (lo, hi)).z_local
    assert abs(z.mean()) < 0.15 and abs(z.std() - 1) < 0.1
    # seeded: identical toys
    again = generate_toys(SHAPE, (lo, hi), nsig=40.0, beta=beta, n_toys=400, seed=7)
    assert all(np.array_equal(a, b) for a, b in zip(again, toys))


@pytest.mark.slow
def test_toy_limit_close_to_asymptotic(rng: np.random.Generator) -> None:
    x = _bkg(rng, 3000)
    asym = fits.upper_limit(x, SHAPE)
    toy = fits.upper_limit(x, SHAPE, method="toys", n_toys=300, seed=3)
    assert toy.converged
    assert toy.observed == pytest.approx(asym.observed, rel=0.15)
    assert toy.expected[2] == pytest.approx(asym.expected[2], rel=0.15)


def test_background_toys_follow_density() -> None:
    from fits.toys import generate_background_toys

    toys = generate_background_toys(lambda m: np.exp(-m), (0.0, 5.0), 20000, n_toys=2, seed=1)
    assert abs(len(toys[0]) - 20000) < 5 * np.sqrt(20000)
    # mean of a truncated exponential on [0, 5]
    mean = (1 - 6 * np.exp(-5)) / (1 - np.exp(-5))
    assert np.mean(toys[0]) == pytest.approx(mean, abs=5 * 1.0 / np.sqrt(20000))


def test_cli_fit_and_export(tmp_path) -> None:
    from click.testing import CliRunner

    from bumphunt.cli import cli

    runner = CliRunner()
    res = runner.invoke(cli, ["fit", "--mass", "3.0", "--plot", str(tmp_path / "f.png"), "--json", str(tmp_path / "f.json")])
    assert res.exit_code == 0, res.output
    assert "N_sig" in res.output and "upper limit" in res.output
    out = json.loads((tmp_path / "f.json").read_text())
    assert np.isfinite(out["limit"]["observed"]) and (tmp_path / "f.png").exists()
    res = runner.invoke(cli, ["export-pyhf", "--mass", "3.0", "--out", str(tmp_path / "ws.json"), "--no-limit"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "ws.json").exists()
    np.save(tmp_path / "bad.npy", np.array([1.0, -2.0, 3.0]))
    res = runner.invoke(cli, ["fit", "--mass", "2.0", "--data", str(tmp_path / "bad.npy")])
    assert res.exit_code != 0 and "negative" in res.output and "Traceback" not in res.output


def test_sideband_background_fixed_fit(rng: np.random.Generator) -> None:
    """Sideband coefficients describe the full window; fixing them shrinks the N_sig error."""
    x = _bkg(rng, 20000)
    beta = fits.sideband_background(x, SHAPE, exclude_sigma=5.0)
    lo, hi = SHAPE.window()
    I = 0.5 * (hi - lo) * np.array([2.0, 0.0, -2.0 / 3.0, 0.0])
    n_win = np.sum((x >= lo) & (x <= hi))
    assert beta @ I == pytest.approx(n_win, abs=4 * np.sqrt(n_win))
    floating = fits.fit(x, SHAPE)
    fixed = fits.fit(x, SHAPE, bkg_fixed=beta)
    assert fixed.converged and fixed.nsig_err < floating.nsig_err
    with pytest.raises(fits.FitInputError, match="sidebands"):
        fits.sideband_background(x[:3], SHAPE, (lo, hi))

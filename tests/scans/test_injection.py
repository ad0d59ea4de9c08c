"""Injection and recovery: unbiased, linear signal extraction on toys of a known background; determinism; CLI; bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest

from scans import ScanConfigError
from scans.injection import injection_study
from scans.lee import SmoothBackground
from scans.testing import analytic_signal_model, toy_spectrum

LO, HI, SLOPE, N = 0.1, 10.0, 0.35, 50_000
MODEL = analytic_signal_model()
CFG = {"mass": {"min": 0.3, "max": 9.0}, "vetoes": {"particles": []}}


def _truth() -> SmoothBackground:
    """The generator's spectrum exp(-slope m) as the toys' background (log density linear in the Chebyshev variable)."""
    return SmoothBackground(lo=LO, hi=HI, coeffs=(-SLOPE * (LO + HI) / 2, -SLOPE * (HI - LO) / 2), n_expected=float(N))


def _data() -> np.ndarray:
    return toy_spectrum(N, lo=LO, hi=HI, slope=SLOPE, seed=1)


def test_quick_injection_recovers_the_signal_and_is_deterministic() -> None:
    study = injection_study(_data(), MODEL, config=CFG, masses=[1.0, 6.0], nsig=[0.0, 60.0], n_toys=150, seed=5, background=_truth())
    assert study.n_failed.sum() == 0
    tol = 4.0 / np.sqrt(150)  # four standard errors of a mean pull
    assert np.all(np.abs(study.pull_mean) < tol), study.pull_mean
    assert np.all(np.abs(study.pull_width - 1.0) < 0.25), study.pull_width
    assert np.all(np.abs(study.slope - 1.0) < 0.15), study.slope
    again = injection_study(_data(), MODEL, config=CFG, masses=[1.0], nsig=[0.0, 60.0], n_toys=150, seed=5, background=_truth())
    assert np.array_equal(again.mean_fit[0], study.mean_fit[0]) and np.array_equal(again.pull_width[0], study.pull_width[0])
    other = injection_study(_data(), MODEL, config=CFG, masses=[1.0], nsig=[0.0, 60.0], n_toys=150, seed=6, background=_truth())
    assert not np.array_equal(other.mean_fit[0], study.mean_fit[0])
    # the bias is what the pulls say: mean fitted minus injected, in units of the mean error
    assert np.allclose(study.bias, study.mean_fit - study.nsig[None, :])


def test_injection_detects_a_biased_background_model() -> None:
    """A background order too low for a steep spectrum pulls the fitted yield: the study must see it (the test can fail)."""
    steep = SmoothBackground(lo=LO, hi=HI, coeffs=(-3.0 * (LO + HI) / 2, -3.0 * (HI - LO) / 2), n_expected=float(N))
    study = injection_study(toy_spectrum(N, lo=LO, hi=HI, slope=3.0, seed=2), MODEL, config={**CFG, "bkg_order": 0}, masses=[1.0],
                            nsig=[0.0], n_toys=100, seed=2, background=steep)
    assert abs(study.pull_mean[0, 0]) > 1.0


@pytest.mark.slow
def test_injection_bias_and_pull_width_across_the_mass_range() -> None:
    masses = [0.4, 1.0, 2.5, 4.5, 7.0, 8.8]
    study = injection_study(_data(), MODEL, config=CFG, masses=masses, nsig=[0.0, 40.0, 120.0], n_toys=1000, seed=11, background=_truth())
    assert study.n_failed.sum() == 0
    assert np.all(np.abs(study.bias_over_error) < 0.1), study.bias_over_error
    assert np.all(np.abs(study.pull_width - 1.0) < 0.1), study.pull_width
    assert np.all(np.abs(study.slope - 1.0) < 0.05), study.slope


@pytest.mark.parametrize(("kw", "match"), [
    ({"masses": [9.5], "nsig": [0.0]}, r"mass 9.5 GeV is outside the scan range \[0.3, 9.0\] GeV"),
    ({"masses": [1.0], "nsig": [-3.0]}, r"injected yields must be finite and >= 0"),
    ({"masses": [1.0], "nsig": [0.0], "n_toys": 1}, r"at least 2 toys"),
])
def test_bad_injection_input(kw, match) -> None:
    with pytest.raises(ScanConfigError, match=match):
        injection_study(_data(), MODEL, config=CFG, **kw)


def test_cli_inject(tmp_path) -> None:
    from click.testing import CliRunner

    from bumphunt.cli import cli

    np.save(tmp_path / "c.npy", _data())
    (tmp_path / "s.yaml").write_text("inputs: {files: [c.npy]}\nmass: {min: 0.3, max: 9.0}\nvetoes: {particles: []}\n")
    runner = CliRunner()
    res = runner.invoke(cli, ["inject", str(tmp_path / "s.yaml"), "--masses", "1.0,3.0", "--nsig", "0,40", "--toys", "20",
                              "--out", str(tmp_path / "inj")])
    assert res.exit_code == 0, res.output
    data = json.loads((tmp_path / "inj" / "injection.json").read_text())
    assert data["masses"] == [1.0, 3.0] and data["nsig"] == [0.0, 40.0] and len(data["pull_width"]) == 2
    assert (tmp_path / "inj" / "injection_pulls.png").stat().st_size > 10_000
    bad = runner.invoke(cli, ["inject", str(tmp_path / "s.yaml"), "--masses", "12", "--out", str(tmp_path / "x")])
    assert bad.exit_code != 0 and "outside the scan range" in bad.output and "Traceback" not in bad.output
    bad = runner.invoke(cli, ["inject", str(tmp_path / "s.yaml"), "--masses", "a,b", "--out", str(tmp_path / "x")])
    assert bad.exit_code != 0 and "comma-separated numbers" in bad.output

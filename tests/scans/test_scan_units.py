"""Scan building blocks: configuration, grid, vetoes, conversions, look-elsewhere effect, checkpoints."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats

from scans import ScanConfigError, load_scan_config
from scans.checkpoint import CheckpointStore, atomic_write_json
from scans.config import DEFAULT_CONFIG_PATH, config_hash, sqrt_s_from_config
from scans.errors import CheckpointError
from scans.grid import fit_windows, mass_grid, particle_mass, veto_points
from scans.lee import fit_smooth_background, global_significance, toy_seed, upcrossings
from scans.limits import coupling_limit, lifetime_exclusion, relative_uncertainty, signal_scale, xsec_from_nsig
from scans.testing import analytic_signal_model, sample_signal, toy_spectrum
from signal_models import alp

# -- configuration -------------------------------------------------------------


def test_default_yaml_equals_schema_defaults() -> None:
    import yaml

    from scans.config import SCAN_SCHEMA

    assert load_scan_config(DEFAULT_CONFIG_PATH) == load_scan_config(None)
    # the documented file shows every section (provenance is filled in by the tools that make the candidates)
    assert set(yaml.safe_load(DEFAULT_CONFIG_PATH.read_text())) == set(SCAN_SCHEMA["properties"]) - {"provenance"}
    cfg = load_scan_config(None)
    assert cfg["mass"] == {"min": 0.175, "max": 9.6, "step": 0.05, "step_sigma_fraction": None, "data_range": None}
    assert cfg["window_n_sigma"] == 20.0 and cfg["bkg_order"] == 3 and cfg["cl"] == 0.95


def test_unknown_key_names_path_and_allowed_keys() -> None:
    with pytest.raises(ScanConfigError) as err:
        load_scan_config({"mass": {"stpe": 0.1}})
    msg = str(err.value)
    assert "mass" in msg and "stpe" in msg and "allowed keys" in msg and "step_sigma_fraction" in msg


def test_wrong_type_and_bad_enum_named(tmp_path) -> None:
    with pytest.raises(ScanConfigError, match=r"mass\.step"):
        load_scan_config({"mass": {"step": "fine"}})
    with pytest.raises(ScanConfigError, match=r"engine.*allowed values.*vectorised"):
        load_scan_config({"engine": "magic"})
    with pytest.raises(ScanConfigError, match=r"mass: max"):
        load_scan_config({"mass": {"min": 2.0, "max": 1.0}})
    with pytest.raises(ScanConfigError, match=r"vetoes.particles\[0\].*unknown particle"):
        load_scan_config({"vetoes": {"particles": ["pion-zero"]}})
    path = tmp_path / "bad.yaml"
    path.write_text("mass: [1, 2\n")
    with pytest.raises(ScanConfigError, match="not valid YAML"):
        load_scan_config(path)
    with pytest.raises(ScanConfigError, match="not found"):
        load_scan_config(tmp_path / "missing.yaml")


def test_config_hash_ignores_execution_and_output_only() -> None:
    a = load_scan_config(None)
    b = load_scan_config({"execution": {"workers": 7}, "output": {"dir": "elsewhere"}, "inputs": {"files": ["x.root"]}})
    c = load_scan_config({"bkg_order": 2})
    assert config_hash(a) == config_hash(b)
    assert config_hash(a) != config_hash(c)


def test_sqrt_s_from_beam_energies() -> None:
    cfg = load_scan_config(None)
    # massless beams with a crossing angle: s = 2 E1 E2 (1 + cos(angle))
    assert sqrt_s_from_config(cfg) == pytest.approx(math.sqrt(2 * 7.0 * 4.0 * (1 + math.cos(0.083))), rel=1e-12)
    assert sqrt_s_from_config(load_scan_config({"beam": {"sqrt_s": 10.58}})) == 10.58


# -- grid, windows, vetoes -------------------------------------------------------


def test_fixed_grid_belle2_range() -> None:
    m = mass_grid(0.175, 9.6, step=0.05)
    assert m[0] == 0.175 and m[-1] == pytest.approx(9.575) and len(m) == 189
    assert np.allclose(np.diff(m), 0.05)


def test_sigma_fraction_grid_steps() -> None:
    model = analytic_signal_model()
    m = mass_grid(0.2, 5.0, step_sigma_fraction=0.5, sigma=lambda x: float(model.sigma(x)))
    assert np.allclose(np.diff(m), 0.5 * model.sigma(m[:-1]), rtol=1e-6, atol=2e-9)
    assert m[-1] <= 5.0 and m[-1] + 0.5 * model.sigma(m[-1]) > 5.0


def test_windows_clipped_to_data_and_chebyshev_domain() -> None:
    w = fit_windows([0.2, 5.0, 9.9], [0.01, 0.05, 0.1], n_sigma=20, data_range=(0.1, 10.0))
    assert w[0].tolist() == pytest.approx([0.1, 0.4])
    assert w[1].tolist() == pytest.approx([4.0, 6.0])
    assert w[2].tolist() == pytest.approx([7.9, 10.0])
    w2 = fit_windows([5.0], [0.05], n_sigma=25, data_range=(0.1, 10.0), comb_domain=[20.0])
    assert w2[0].tolist() == pytest.approx([4.0, 6.0])


def test_vetoes_use_pdg_masses_and_local_resolution() -> None:
    assert particle_mass("pi0") == pytest.approx(0.1349768)
    assert particle_mass("eta") == pytest.approx(0.547862)
    m = np.array([0.30, 0.51, 0.545, 0.56, 0.60, 0.955, 1.5, 3.1])
    s = np.full_like(m, 0.01)
    reason = veto_points(m, s, n_sigma=3.0, ranges=[[3.05, 3.15]])
    assert reason == ["", "", "eta", "eta", "", "eta'(958)", "", "range [3.05, 3.15] GeV"]


# -- conversions ----------------------------------------------------------------


def test_cross_section_check_value_from_physics_notes() -> None:
    # g = 1.1e-3 GeV^-1 at m = 0.2 GeV, sqrt(s) = 10.58 GeV -> about 0.14 pb
    xs = alp.cross_section_pb(0.2, 1.1e-3, 10.58)
    by_hand = (1 / 137.035999) * (1.1e-3) ** 2 / 24 * (1 - 0.2**2 / 10.58**2) ** 3 * 0.3893793721e9
    assert xs == pytest.approx(by_hand, rel=1e-9) and xs == pytest.approx(0.143, abs=0.002)
    assert coupling_limit(np.array([xs]), np.array([0.2]), 10.58)[0] == pytest.approx(1.1e-3, rel=1e-12)


def test_signal_scale_and_xsec_conversion() -> None:
    assert signal_scale(0.2, 0.445) == pytest.approx(89.0)  # events per pb
    assert xsec_from_nsig(8.9, 0.2, 0.445) == pytest.approx(0.1)
    band = xsec_from_nsig(np.array([[1.0, 2.0, 3.0, 4.0, 5.0]]), np.array([0.1]), 1.0)
    assert band[0].tolist() == pytest.approx([0.01, 0.02, 0.03, 0.04, 0.05])
    assert relative_uncertainty(0.03, 0.04) == pytest.approx(0.05)
    # coupling band: g scales as sqrt(sigma), so the band maps point by point
    g = coupling_limit(np.array([[0.1, 0.4]]), np.array([1.0]), 10.58)
    assert g[0, 1] / g[0, 0] == pytest.approx(2.0)


def test_lifetime_exclusion_has_lower_and_upper_edge() -> None:
    # detector sees decays within 1 m: eff = eps0 (1 - exp(-1 m / l))
    def eff(m, length):
        return 0.3 * -np.expm1(-1.0 / length)

    masses = np.array([0.05, 0.5])
    ex = lifetime_exclusion(masses, np.array([10.0, 10.0]), eff, luminosity_fb=1000.0, sqrt_s=10.58,
                            couplings=np.logspace(-8, 0, 400))
    # at large coupling the ALP decays promptly: the prompt limit applies
    prompt_g = coupling_limit(np.array([10.0 / (0.3 * 1e6)]), np.array([0.5]), 10.58)[0]
    assert ex.lower_edge[1] == pytest.approx(prompt_g, rel=0.05)
    assert ex.excluded[1, -1]
    # a light ALP at small coupling escapes: a lower edge exists above the prompt one
    assert ex.lower_edge[0] > coupling_limit(np.array([10.0 / (0.3 * 1e6)]), np.array([0.05]), 10.58)[0] * 1.5
    # with an efficiency that vanishes for short decay lengths (displaced search) there is an upper edge
    def displaced(m, length):
        return 0.3 * (np.exp(-0.1 / length) - np.exp(-1.0 / length))

    ex2 = lifetime_exclusion(masses, np.array([10.0, 10.0]), displaced, luminosity_fb=1000.0, sqrt_s=10.58,
                             couplings=np.logspace(-8, 0, 400))
    # the light ALP: excluded between a lower and an upper edge, nothing excluded at large g
    assert np.isfinite(ex2.lower_edge[0]) and ex2.lower_edge[0] < ex2.upper_edge[0] < 1e-2 and not ex2.excluded[0, -1]
    inside = (ex2.couplings >= ex2.lower_edge[0]) & (ex2.couplings <= ex2.upper_edge[0])
    assert ex2.excluded[0, inside].all()
    # the heavier ALP decays too early at every coupling with enough cross-section: no exclusion
    assert not ex2.excluded[1].any() and np.isnan(ex2.lower_edge[1])


# -- look-elsewhere effect ---------------------------------------------------------


def test_upcrossings_counted_within_segments() -> None:
    q = np.array([0.0, 2.0, 0.5, 3.0, 3.0, 0.0, 2.0])
    assert upcrossings(q, 1.0) == 3
    assert upcrossings(q, 1.0, segments=[0, 0, 0, 1, 1, 1, 1]) == 2  # the 0.5 -> 3.0 step crosses a gap
    assert upcrossings(np.stack([q, np.zeros(7)]), 1.0).tolist() == [3, 0]


def _smooth_noise(rng, n_toys, n_points, width):
    """Unit-variance stationary Gaussian processes (white noise smoothed with a Gaussian kernel)."""
    kernel = np.exp(-0.5 * (np.arange(-4 * width, 4 * width + 1) / width) ** 2)
    white = rng.normal(size=(n_toys, n_points + len(kernel) - 1))
    z = np.array([np.convolve(w, kernel, mode="valid") for w in white])
    return z / np.sqrt(np.sum(kernel**2))


def test_gross_vitells_agrees_with_direct_toys(rng) -> None:
    """For a Gaussian process, the up-crossing extrapolation from c0 = 1 predicts the
    tail probability of the maximum measured directly with independent toys."""
    z = _smooth_noise(rng, 6000, 400, 4.0)
    ref, test = z[:1000], z[1000:]
    res = global_significance(np.r_[3.0, np.zeros(399)], np.arange(400.0), z_toys=ref, c0=1.0)
    direct = np.mean(test.max(axis=1) >= 3.0)
    assert res["p_local"] == pytest.approx(stats.norm.sf(3.0))
    assert res["p_global"] == pytest.approx(direct, rel=0.25)
    assert res["toys"]["p_global"] == pytest.approx(direct, abs=4 * res["toys"]["p_global_err"])
    assert res["n_upcrossings_err"] == pytest.approx(np.std(upcrossings(np.maximum(ref, 0) ** 2, 1.0), ddof=1) / math.sqrt(1000))
    assert res["z_global"] < 3.0


def test_smooth_background_fit_closure() -> None:
    x = toy_spectrum(200_000, lo=0.1, hi=10.0, slope=0.35, seed=5)
    bkg = fit_smooth_background(x, data_range=(0.1, 10.0), order=8, bins=1000)
    grid = np.linspace(0.2, 9.8, 50)
    truth = 200_000 * 0.35 * np.exp(-0.35 * grid) / (np.exp(-0.035) - np.exp(-3.5))
    # an order-8 log-polynomial follows the data's fluctuations at the level of a few percent
    assert np.max(np.abs(bkg.density(grid) / truth - 1)) < 0.05
    # exp(linear) contains the truth: the order-1 fit is unbiased at the per-mille level
    lin = fit_smooth_background(x, data_range=(0.1, 10.0), order=1, bins=1000)
    assert np.max(np.abs(lin.density(grid) / truth - 1)) < 0.005
    assert bkg.n_expected == pytest.approx(200_000, rel=0.01)
    # toys are reproducible per index and differ between indices
    a = bkg.sample(np.random.default_rng(toy_seed(7, 3)))
    b = bkg.sample(np.random.default_rng(toy_seed(7, 3)))
    c = bkg.sample(np.random.default_rng(toy_seed(7, 4)))
    assert np.array_equal(a, b) and not np.array_equal(a[:100], c[:100])
    assert abs(len(a) - 200_000) < 5 * math.sqrt(200_000)


def test_smooth_background_interpolates_across_vetoed_peak() -> None:
    x = toy_spectrum(100_000, lo=0.1, hi=3.0, slope=1.0, seed=6)
    peak = np.random.default_rng(1).normal(0.548, 0.01, 5000)
    bkg = fit_smooth_background(np.r_[x, peak], data_range=(0.1, 3.0), order=8, bins=600, exclude=[[0.5, 0.6]])
    truth = 100_000 * np.exp(-0.548) / (np.exp(-0.1) - np.exp(-3.0))
    assert bkg.density(0.548) == pytest.approx(truth, rel=0.05)


# -- checkpoints -------------------------------------------------------------------


def test_checkpoint_refuses_other_hashes_and_clears_without_resume(tmp_path) -> None:
    store = CheckpointStore(tmp_path, {"config": "a", "inputs": "b", "plan": "c"}, resume=False)
    store.save("block", 3, {"x": [1.5]})
    assert store.done("block") == {3} and store.load("block", 3) == {"x": [1.5]}
    again = CheckpointStore(tmp_path, {"config": "a", "inputs": "b", "plan": "c"}, resume=True)
    assert again.done("block") == {3}
    with pytest.raises(CheckpointError, match="configuration"):
        CheckpointStore(tmp_path, {"config": "other", "inputs": "b", "plan": "c"}, resume=True)
    with pytest.raises(CheckpointError, match="input files"):
        CheckpointStore(tmp_path, {"config": "a", "inputs": "x", "plan": "c"}, resume=True)
    with pytest.raises(CheckpointError, match="holds 1 finished job"):  # finished work is not discarded by mistake
        CheckpointStore(tmp_path, {"config": "z", "inputs": "b", "plan": "c"}, resume=False)
    assert again.done("block") == {3}
    fresh = CheckpointStore(tmp_path, {"config": "z", "inputs": "b", "plan": "c"}, resume=False, overwrite=True)
    assert fresh.done("block") == set()


def test_atomic_json_refuses_nan(tmp_path) -> None:
    with pytest.raises(ValueError):
        atomic_write_json(tmp_path / "x.json", {"a": float("nan")})
    assert not (tmp_path / "x.json").exists() and not list(tmp_path.iterdir())
    atomic_write_json(tmp_path / "x.json", {"a": 0.1 + 0.2})
    assert json.loads((tmp_path / "x.json").read_text())["a"] == 0.1 + 0.2


# -- analytic signal model -----------------------------------------------------------


def test_analytic_signal_model_interface(tmp_path) -> None:
    model = analytic_signal_model(sigma_coeffs=[0.01, 0.01])
    sh = model.shape(2.0)
    assert sh.mu == 2.0 and sh.sigma == pytest.approx(0.03)
    assert model.efficiency(1.0) == pytest.approx(0.288)
    assert model.efficiency_uncertainty(1.0) == pytest.approx(0.05 * 0.288)
    with pytest.raises(ValueError, match="outside the signal model range"):
        model.shape(20.0)
    path = model.save(tmp_path / "m.json")
    assert type(model).load(path) == model
    # samples follow the shape: the core holds the DSCB core probability
    lo, hi = sh.window()
    x = sample_signal(sh, 50_000, lo=lo, hi=hi, seed=3)
    frac = np.mean(np.abs(x - 2.0) < 0.03)
    assert frac == pytest.approx(sh.integral(1.97, 2.03, lo, hi), abs=0.01)

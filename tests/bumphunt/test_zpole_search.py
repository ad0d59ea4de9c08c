"""The Z-pole (Giga-Z) search on toy MC: CLI stages with --collider, selection, signal model, scan with beam.collider: zpole."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import uproot
from click.testing import CliRunner

from bumphunt.cli import cli
from bumphunt.events.schema import META_KEY
from bumphunt.zpole import ZPoleSearchSettings, measure_signal, run_zpole_search, zpole_signal_model
from signal_models.alp import Z_MASS_GEV


def _meta(path: Path) -> dict:
    with uproot.open(path) as f:
        return json.loads(str(f[META_KEY]))


def test_cli_generate_preselect_kinfit_at_the_z_pole(tmp_path: Path) -> None:
    runner = CliRunner()
    cfg = tmp_path / "toy.yaml"
    cfg.write_text("backgrounds: {ggg: 1500}\n")
    res = runner.invoke(cli, ["generate", "--collider", "zpole", "--out", str(tmp_path / "toy"), "--config", str(cfg),
                              "--masses", "10", "--n-signal", "300", "--lumi", "0.05"])
    assert res.exit_code == 0, res.output
    assert _meta(tmp_path / "toy" / "signal_m10.000.root")["collider"] == "zpole"
    # pre-selection: the collider comes from the metadata (photons above 2 GeV, 8-172 deg)
    res = runner.invoke(cli, ["preselect", str(tmp_path / "toy" / "*.root"), "--out", str(tmp_path / "pre")])
    assert res.exit_code == 0, res.output
    assert "collider zpole" in res.output
    from bumphunt.events import load_three_photon

    pre = load_three_photon(tmp_path / "pre" / "signal_m10.000_3g.root")
    assert pre["E"].shape[0] > 200 and pre["E"].min() > 2.0
    # kinematic fit: beams from the metadata (the Z pole), the fitted photons add up to m_Z
    res = runner.invoke(cli, ["kinfit", str(tmp_path / "pre" / "signal_m10.000_3g.root"), "--out", str(tmp_path / "fit")])
    assert res.exit_code == 0, res.output
    fitted = load_three_photon(tmp_path / "fit" / "signal_m10.000_3g_kinfit.root")
    assert fitted["kinfit_converged"].mean() > 0.99
    np.testing.assert_allclose(fitted["fit_E"][fitted["kinfit_converged"]].sum(axis=1), Z_MASS_GEV, rtol=1e-4)
    # the same fit with --collider babar uses the BaBar beams (and fails to describe Z-pole events)
    res = runner.invoke(cli, ["kinfit", str(tmp_path / "pre" / "signal_m10.000_3g.root"), "--collider", "babar", "--out",
                              str(tmp_path / "fit_bb")])
    assert res.exit_code == 0, res.output
    bad = load_three_photon(tmp_path / "fit_bb" / "signal_m10.000_3g_kinfit.root")
    assert np.median(bad["kinfit_chi2"]) > 100 * np.median(fitted["kinfit_chi2"])


def test_cli_preselect_refuses_mixed_colliders(tmp_path: Path) -> None:
    runner = CliRunner()
    for name in ("zpole", "belle2"):
        res = runner.invoke(cli, ["generate", "--collider", name, "--out", str(tmp_path / name), "--samples", "signal",
                                  "--masses", "3", "--n-signal", "20"])
        assert res.exit_code == 0, res.output
    res = runner.invoke(cli, ["preselect", str(tmp_path / "*" / "*.root"), "--out", str(tmp_path / "pre")])
    assert res.exit_code != 0 and "different colliders" in res.output and "zpole" in res.output and "belle2" in res.output
    res = runner.invoke(cli, ["generate", "--collider", "lep", "--out", str(tmp_path / "x")])
    assert res.exit_code != 0 and "'lep'" in res.output


def test_zpole_search_small(tmp_path: Path) -> None:
    """Toy MC -> Giga-Z selection -> signal model -> scan (package likelihood) on a few masses."""
    st = ZPoleSearchSettings(lumi_fb=0.3, signal_masses=(5.0, 10.0, 15.0), n_signal_per_mass=600, n_ggg=3000,
                             scan_range=(9.0, 11.0), step_sigma_fraction=3.0, inject={"mass": 10.0, "n_events": 60})
    res = run_zpole_search(tmp_path, st, scan=True, scan_overrides={"lee": {"toys": 0}, "gof": {"method": "none"}})
    for p in res.signal_points:
        assert 0.02 < p.sigma < 0.08 and abs(p.peak - p.mass) < 0.01 and 0.8 < p.efficiency < 1.0
    from scans.config import load_scan_config, sqrt_s_from_config
    from scans.inputs import load_signal_model

    cfg = load_scan_config(res.scan_config)
    assert cfg["beam"]["collider"] == "zpole" and sqrt_s_from_config(cfg) == pytest.approx(Z_MASS_GEV)
    model = load_signal_model(res.signal_model_file)
    assert model.mass_range == (5.0, 15.0)
    for p in res.signal_points:
        assert model.shape(p.mass).sigma == pytest.approx(p.sigma, rel=0.2)
        assert model.efficiency(p.mass) == pytest.approx(p.efficiency, abs=0.05)
    assert np.load(res.mgg_file).shape == res.data.mgg.shape and res.data.n_events > 1000
    assert res.expected_background > 0
    result = res.scan_result
    assert result["sqrt_s"] == pytest.approx(Z_MASS_GEV)
    pts = [p for p in result["points"] if not p["vetoed"]]
    assert len(pts) >= 5 and all(p["converged"] for p in pts)
    best = max(pts, key=lambda p: p["z_local"])
    assert abs(best["mass"] - 10.0) < 0.15 and best["z_local"] > 3


def test_signal_model_fit_and_errors() -> None:
    from bumphunt.errors import InputError
    from bumphunt.zpole import SignalPoint, ZPoleCandidates

    pts = [SignalPoint(mass=m, n_generated=1000, peak=m, sigma=0.03 + 0.001 * m, efficiency=0.9 - 1e-4 * m**2,
                       efficiency_err=0.01, comb_fraction=0.02) for m in (1.0, 10.0, 20.0, 40.0)]
    model = zpole_signal_model(pts)
    assert model.sigma_coeffs == pytest.approx((0.03, 0.001), abs=1e-9)
    assert model.efficiency(30.0) == pytest.approx(0.9 - 0.09, abs=1e-6)
    assert model.comb_fraction == pytest.approx(0.02) and model.mass_range == (1.0, 40.0)
    with pytest.raises(InputError, match="need more masses"):
        zpole_signal_model(pts[:2])
    empty = ZPoleCandidates(mgg=np.zeros(0), weight=np.zeros(0), truth_match=np.zeros(0, bool), mc_ma=np.zeros(0),
                            process=np.zeros(0, np.int32), n_events=0, n_preselected=0, n_selected_events=0)
    with pytest.raises(InputError, match="m_a = 7"):
        measure_signal(empty, 7.0, 100)
    with pytest.raises(InputError, match="scan range"):
        run_zpole_search("unused", ZPoleSearchSettings(signal_masses=(5.0, 10.0), scan_range=(1.0, 10.0)))


@pytest.mark.slow
def test_zpole_search_full_range(tmp_path: Path) -> None:
    """The default study at 10 fb^-1 over 1-50 GeV: an injected signal at 30 GeV is found, nothing else stands out."""
    st = ZPoleSearchSettings(lumi_fb=10.0, n_signal_per_mass=3000, n_ggg=30_000, inject={"mass": 30.0, "n_events": 150})
    res = run_zpole_search(tmp_path, st, scan=True, scan_overrides={"lee": {"toys": 0}})
    pts = [p for p in res.scan_result["points"] if not p["vetoed"]]
    best = max(pts, key=lambda p: p["z_local"])
    assert abs(best["mass"] - 30.0) < 0.3 and best["z_local"] > 4
    far = [p["z_local"] for p in pts if abs(p["mass"] - 30.0) > 2.0]
    assert max(far) < 4.5

"""Blind scans: no observed number anywhere in the outputs; windows mode; --unblind recorded; expected numbers unchanged."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import numpy as np
import pytest

import scans
from scans import CheckpointError, ScanConfigError
from scans.testing import analytic_signal_model, sample_signal, toy_spectrum

MODEL = analytic_signal_model()
CFG = {"mass": {"min": 0.6, "max": 1.4, "step": 0.05}, "vetoes": {"particles": []}, "lee": {"toys": 2, "background_order": 6},
       "execution": {"workers": 1}, "bkg_order": 2, "block_size": 5}
OBSERVED_KEYS = ("nsig", "nsig_err", "z_local", "ul_nsig_obs", "ul_xsec_pb_obs", "ul_g_gev_obs", "xsec_pb", "xsec_pb_err")


def _data() -> np.ndarray:
    sh = MODEL.shape(1.0)
    sig = sample_signal(sh, 60, lo=sh.mu - 20 * sh.sigma, hi=sh.mu + 20 * sh.sigma, seed=4)
    return np.concatenate([toy_spectrum(8000, lo=0.3, hi=2.0, slope=0.4, seed=3), sig])


def _observed_values(result: dict) -> list[float]:
    """Every observed number of an unblinded result (fit numbers, observed limits, significances, post-fit nuisances)."""
    values = []
    for p in result["points"]:
        values += [p[k] for k in OBSERVED_KEYS if k in p]
        for ch in (p.get("channels") or {}).values():
            values += [ch[k] for k in ("nsig", "nbkg") if k in ch]
        values += [v["value"] for v in (p.get("nuisances") or {}).values()]
    g = result["global"]
    values += [g[k] for k in ("max_z_local", "z_global", "p_local", "p_global") if k in g]
    return [float(v) for v in values if isinstance(v, float) and np.isfinite(v) and v != 0.0]


_NUMBER = re.compile(r"-?\d+\.\d+(?:[eE][-+]?\d+)?")


def _significant_digits(token: str) -> int:
    mantissa = token.lstrip("-").split("e")[0].split("E")[0].replace(".", "").strip("0")
    return len(mantissa)


def _leaks(text: str, observed: list[float], allowed: list[float]) -> list[str]:
    """Numbers printed in ``text`` (3 or more significant digits) that equal an observed value rounded to the
    printed precision, unless they equal an allowed (expected) value at that precision too."""
    out = []
    for token in set(_NUMBER.findall(text)):
        digits = _significant_digits(token)
        if digits < 3:
            continue
        f = float(token)
        if any(float(f"{v:.{digits}g}") == f for v in observed) and not any(float(f"{v:.{digits}g}") == f for v in allowed):
            out.append(token)
    return sorted(out)


def _own_log(caplog: pytest.LogCaptureFixture) -> str:
    """The messages logged by the packages themselves (other libraries' debug output, e.g. numba's compiler, prints
    unrelated numbers that may coincide with an observed value)."""
    own = {"scans", "fits", "signal_models", "bumphunt"}
    return "\n".join(r.getMessage() for r in caplog.records if r.name.split(".")[0] in own)


def _files_text(directory: Path) -> str:
    return "\n".join(p.read_text(errors="ignore") for p in directory.rglob("*") if p.is_file() and p.suffix in (".json", ".csv", ".txt"))


def test_a_blind_scan_writes_no_observed_number_anywhere(tmp_path, caplog) -> None:
    x = _data()
    caplog.set_level(logging.DEBUG)
    blind = scans.scan(x, MODEL, config={**CFG, "blinding": {"mode": "blind", "reference_xsec_pb": 0.5}}, out_dir=tmp_path / "blind")
    blind_log = _own_log(caplog)
    caplog.clear()
    opened = scans.scan(x, MODEL, config={**CFG, "blinding": {"mode": "blind", "reference_xsec_pb": 0.5}}, out_dir=tmp_path / "open",
                        unblind=True)
    assert blind["blinding"] == {"mode": "blind", "unblinded": False, "windows": [], "blinded_points": len(blind["points"])}
    assert opened["blinding"]["unblinded"] is True and opened["blinding"]["blinded_points"] == 0
    observed = _observed_values(opened)
    assert len(observed) > 50
    text = _files_text(tmp_path / "blind") + json.dumps(blind) + blind_log
    allowed = [float(v) for p in blind["points"] for k in ("ul_nsig_exp", "ul_xsec_pb_exp", "ul_g_gev_exp", "efficiency", "mass", "window")
               for v in np.ravel(p.get(k, []))]
    assert len(_leaks(json.dumps(opened), observed, allowed)) > 20  # the search finds the numbers where they are
    leaked = _leaks(text, observed, allowed)
    assert not leaked, f"observed numbers of the unblinded scan found in the blind outputs: {leaked[:5]}"
    # the blind result has the expected quantities, equal to the unblinded scan's
    for b, o in zip(blind["points"], opened["points"]):
        assert b["blinded"] is True and not any(k in b for k in OBSERVED_KEYS)
        assert b["ul_xsec_pb_exp"] == pytest.approx(o["ul_xsec_pb_exp"], rel=1e-6)
        assert b["ul_g_gev_exp"] == pytest.approx(o["ul_g_gev_exp"], rel=1e-6)
        assert b["z_expected_reference"] > 0
    assert "max_z_local" not in blind["global"]
    # the plots of a blind result: expected bands only, no p0 plot; fit plots refused
    from scans.plots import plot_all

    files = plot_all(blind, tmp_path / "plots")
    assert {f.name for f in files} == {"brazil_nsig.png", "brazil_xsec.png", "coupling_exclusion.png"}
    with pytest.raises(ValueError, match="this result is blind"):
        plot_all(blind, tmp_path / "plots", fit_masses=[1.0], mgg=x, signal_model=MODEL)


def test_blinded_windows_hide_only_the_listed_ranges_and_resume_across_blinding_is_refused(tmp_path) -> None:
    x = _data()
    cfg = {**CFG, "blinding": {"mode": "windows", "windows": [[0.95, 1.05]]}}
    res = scans.scan(x, MODEL, config=cfg, out_dir=tmp_path / "w")
    for p in res["points"]:
        sigma = MODEL.shape(p["mass"]).sigma
        inside = p["mass"] + 3 * sigma >= 0.95 and p["mass"] - 3 * sigma <= 1.05
        assert p.get("blinded", False) == inside
        assert ("ul_xsec_pb_obs" in p) != inside
    assert res["global"]["blinded_points_excluded"] == sum(p.get("blinded", False) for p in res["points"])
    with pytest.raises(CheckpointError):
        scans.scan(x, MODEL, config=cfg, out_dir=tmp_path / "w", resume=True, unblind=True)
    with pytest.raises(ScanConfigError, match="blinding.windows: mode 'windows' needs at least one"):
        scans.scan(x, MODEL, config={**CFG, "blinding": {"mode": "windows"}})


def test_unblind_without_blinding_section_is_recorded_and_changes_nothing() -> None:
    x = _data()
    a = scans.scan(x, MODEL, config={**CFG, "lee": {"toys": 0}})
    b = scans.scan(x, MODEL, config={**CFG, "lee": {"toys": 0}}, unblind=True)
    assert a["points"] == b["points"]
    assert a["blinding"]["mode"] == "none" and b["blinding"]["unblinded"] is True


def test_cli_scan_blind_then_unblind(tmp_path) -> None:
    from click.testing import CliRunner

    from bumphunt.cli import cli

    np.save(tmp_path / "c.npy", _data())
    (tmp_path / "s.yaml").write_text("inputs: {files: [c.npy]}\nmass: {min: 0.6, max: 1.4, step: 0.1}\nvetoes: {particles: []}\n"
                                     "lee: {toys: 0}\nbkg_order: 2\nblinding: {mode: blind}\n")
    runner = CliRunner()
    res = runner.invoke(cli, ["scan", str(tmp_path / "s.yaml"), "--out", str(tmp_path / "b"), "--workers", "1"])
    assert res.exit_code == 0, res.output
    assert "expected quantities only" in res.output and "largest local excess" not in res.output
    res = runner.invoke(cli, ["scan", str(tmp_path / "s.yaml"), "--out", str(tmp_path / "u"), "--workers", "1", "--unblind", "--no-plots"])
    assert res.exit_code == 0 and "largest local excess" in res.output
    assert json.loads((tmp_path / "u" / "scan_result.json").read_text())["blinding"]["unblinded"] is True


def test_blind_points_get_a_sideband_only_goodness_of_fit() -> None:
    x = toy_spectrum(20000, lo=0.1, hi=3.0, slope=1.5, seed=2)
    cfg = {"mass": {"min": 0.4, "max": 2.4, "step": 0.1}, "vetoes": {"particles": []}, "lee": {"toys": 0}, "execution": {"workers": 1},
           "blinding": {"mode": "blind"}}
    good = scans.scan(x, MODEL, config=cfg)
    p = np.array([q["gof_pvalue_sidebands"] for q in good["points"]])
    assert len(p) == len(good["points"]) and np.all((p >= 0) & (p <= 1)) and np.median(p) > 0.05
    assert good["gof"]["n_tested_sidebands"] == len(p) and good["gof"]["n_tested"] == 0
    bad = scans.scan(x, MODEL, config={**cfg, "bkg_order": 0})  # a flat background on a steep spectrum: the sidebands say so
    assert len(bad["gof"]["flagged"]) > 0.8 * len(p) and all(f["region"] == "sidebands" for f in bad["gof"]["flagged"])

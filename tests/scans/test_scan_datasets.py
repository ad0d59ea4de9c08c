"""Combined scans: several datasets with one cross-section, shape and yield nuisances, trigger efficiency, bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest

import fits
import scans
from scans import ScanConfigError, ScanInputError, run_config
from scans.combined_driver import scan_datasets
from scans.config_datasets import is_combined
from scans.datasets import dataset_from_arrays
from scans.testing import analytic_signal_model, toy_spectrum

BASE = {"mass": {"min": 0.6, "max": 1.4, "step": 0.1}, "vetoes": {"particles": []}, "lee": {"toys": 0}, "execution": {"workers": 1},
        "bkg_order": 2, "block_size": 4}
NARROW = analytic_signal_model()
WIDE = analytic_signal_model(sigma_coeffs=[0.006, 0.013])


def _mgg(n: int, seed: int) -> np.ndarray:
    return toy_spectrum(n, lo=0.3, hi=2.0, slope=0.4, seed=seed)


def _datasets(**kw) -> list:
    return [dataset_from_arrays("run1", _mgg(6000, 1), NARROW, luminosity_fb=0.4, bkg_order=2, **kw),
            dataset_from_arrays("run2", _mgg(12000, 2), WIDE, luminosity_fb=0.8, bkg_order=2, **kw)]


def test_defaults_and_one_dataset_keep_the_one_dataset_engine() -> None:
    assert not is_combined(scans.load_scan_config(None))
    assert not is_combined(scans.load_scan_config(BASE))
    assert is_combined(scans.load_scan_config({**BASE, "nuisances": [{"name": "res", "kind": "resolution", "width": 0.1}]}))
    assert is_combined(scans.load_scan_config({**BASE, "trigger_efficiency": {"value": 0.9}}))


def test_one_dataset_combined_engine_equals_the_one_dataset_scan() -> None:
    """Same model (yield systematic off): the combined engine reproduces today's cross-section limits and yields."""
    x = _mgg(6000, 1)
    cfg = {**BASE, "systematics": {"efficiency": "none"}, "luminosity_rel_unc": 0.0}
    old = scans.scan(x, NARROW, config=cfg)
    new = scan_datasets([dataset_from_arrays("data", x, NARROW, luminosity_fb=cfg.get("luminosity_fb", 0.445), bkg_order=2)], config=cfg)
    assert len(old["points"]) == len(new["points"])
    for p, q in zip(old["points"], new["points"]):
        assert p["converged"] and q["converged"]
        assert q["ul_xsec_pb_obs"] == pytest.approx(p["ul_xsec_pb_obs"], rel=2e-4)
        assert q["ul_xsec_pb_exp"] == pytest.approx(p["ul_xsec_pb_exp"], rel=2e-4)
        assert q["nsig"] == pytest.approx(p["nsig"], abs=2e-3 * p["nsig_err"])
        assert q["z_local"] == pytest.approx(p["z_local"], abs=2e-3)
        assert q["window"] == p["window"] and q["n_events"] == p["n_events"]


def test_two_datasets_each_point_matches_fits_upper_limit_on_channels() -> None:
    nuis = [{"name": "res", "kind": "resolution", "width": 0.1}, {"name": "pos", "kind": "shift", "width": 0.002, "datasets": ["run2"]}]
    cfg = {**BASE, "nuisances": nuis, "systematics": {"efficiency": "none"}}
    ds = _datasets(luminosity_rel_unc=0.02)
    res = scan_datasets(ds, config=cfg)
    assert res["luminosity_fb"] == pytest.approx(1.2)
    assert [d["name"] for d in res["datasets"]] == ["run1", "run2"]
    p = res["points"][3]
    assert p["converged"] and set(p["channels"]) == {"run1", "run2"} and set(p["nuisances"]) == {"yield_run1", "yield_run2", "res", "pos"}
    chans = [fits.Channel(d.mgg, d.signal_model.shape(p["mass"]), p["channels"][d.name]["window"], signal_scale=p["channels"][d.name]["signal_per_pb"],
                          bkg_order=2, name=d.name) for d in ds]
    lim = fits.upper_limit(chans, yield_uncertainties=[fits.YieldUncertainty("yield_run1", {"run1": 0.02}),
                                                        fits.YieldUncertainty("yield_run2", {"run2": 0.02})],
                           shape_uncertainties=[fits.ShapeUncertainty("res", "resolution", 0.1),
                                                fits.ShapeUncertainty("pos", "shift", 0.002, channels=("run2",))])
    assert p["ul_xsec_pb_obs"] == pytest.approx(lim.observed, rel=1e-6)
    assert p["ul_xsec_pb_exp"] == pytest.approx(list(lim.expected), rel=1e-6)
    assert p["ul_nsig_obs"] == pytest.approx(lim.observed * sum(c.signal_scale for c in chans), rel=1e-6)
    assert p["nsig"] == pytest.approx(sum(lim.fit.channel_nsig.values()), rel=1e-6, abs=1e-6)
    assert p["nuisances"]["res"]["value"] == pytest.approx(lim.fit.nuisances["res"][0], abs=1e-6)
    # both datasets together exclude more than either alone
    for one in ds:
        alone = scan_datasets([one], config={**cfg, "nuisances": [nuis[0]]})["points"][3]
        assert p["ul_xsec_pb_exp"][2] < alone["ul_xsec_pb_exp"][2]


def test_trigger_efficiency_scales_the_cross_section_limit() -> None:
    x = _mgg(6000, 1)
    cfg = {**BASE, "systematics": {"efficiency": "none"}, "luminosity_rel_unc": 0.0}
    full = scans.scan(x, NARROW, config={**cfg, "trigger_efficiency": {"table": [[0.5, 1.0], [1.5, 1.0]]}})
    half = scans.scan(x, NARROW, config={**cfg, "trigger_efficiency": {"table": [[0.5, 0.5], [1.5, 0.5]]}})
    for p, q in zip(full["points"], half["points"]):
        assert q["ul_xsec_pb_obs"] == pytest.approx(2 * p["ul_xsec_pb_obs"], rel=1e-6)
        assert q["efficiency"] == pytest.approx(0.5 * p["efficiency"])
        assert q["ul_nsig_obs"] == pytest.approx(p["ul_nsig_obs"], rel=1e-6)
    # an uncertainty on the trigger efficiency becomes the dataset's yield nuisance and weakens the limit
    unc = scans.scan(x, NARROW, config={**cfg, "trigger_efficiency": {"table": [[0.5, 0.5, 0.1], [1.5, 0.5, 0.1]]}})
    assert all(u["ul_xsec_pb_obs"] > q["ul_xsec_pb_obs"] for u, q in zip(unc["points"], half["points"]))
    assert "yield_data" in unc["points"][0]["nuisances"]


def test_a_dataset_without_candidates_at_a_point_is_flagged_and_the_others_fit() -> None:
    x = _mgg(6000, 1)
    ds = [dataset_from_arrays("low", x[x < 0.95], NARROW, luminosity_fb=0.4, bkg_order=1),
          dataset_from_arrays("all", _mgg(6000, 2), NARROW, luminosity_fb=0.4, bkg_order=1)]
    res = scan_datasets(ds, config={**BASE, "mass": {"min": 0.6, "max": 1.4, "step": 0.1}})
    last = res["points"][-1]
    assert last["converged"] and last["channels"]["low"]["n_events"] == 0
    assert "no candidates in the window of channel(s) low" in last["note"]


def test_config_with_two_dataset_files_runs_and_resumes(tmp_path) -> None:
    np.save(tmp_path / "r1.npy", _mgg(6000, 1))
    np.save(tmp_path / "r2.npy", _mgg(12000, 2))
    (tmp_path / "m.json").write_text(json.dumps(WIDE.to_dict()))
    cfg = {**BASE, "datasets": [{"name": "run1", "inputs": {"files": ["r1.npy"]}, "luminosity_fb": 0.4, "luminosity_rel_unc": 0.01},
                                {"name": "run2", "inputs": {"files": ["r2.npy"]}, "luminosity_fb": 0.8, "signal_model": "m.json",
                                 "trigger_efficiency": {"value": 0.95, "rel_unc": 0.02}}],
           "nuisances": [{"name": "res", "kind": "resolution", "width": 0.1}], "lee": {"toys": 3, "background_order": 6}}
    import yaml

    path = tmp_path / "scan.yaml"
    path.write_text(yaml.safe_dump(cfg))
    res = run_config(path, out_dir=tmp_path / "out")
    assert [d["inputs"][0]["sha256"] for d in res["datasets"]] == [scans.checkpoint.sha256_file(tmp_path / f) for f in ("r1.npy", "r2.npy")]
    assert res["datasets"][1]["signal_model"]["sha256"] == scans.checkpoint.sha256_file(tmp_path / "m.json")
    assert res["points"][0]["channels"]["run2"]["trigger_efficiency"] == pytest.approx(0.95)
    assert res["global"]["method"]
    again = run_config(path, out_dir=tmp_path / "out", resume=True)
    assert json.dumps(again["points"]) == json.dumps(res["points"]) and again["global"] == res["global"]


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        ({"nuisances": [{"name": "res", "kind": "resolution", "width": -0.1}]}, r"nuisances\[0\] \(res\)\.width: must be > 0, got -0.1"),
        ({"nuisances": [{"name": "pos", "kind": "shift", "width": 0.01, "datasets": ["run3"]}]}, r"unknown dataset 'run3'"),
        ({"nuisances": [{"name": "lumi", "kind": "yield", "rel_unc": {"run9": 0.1}}]}, r"rel_unc: unknown dataset 'run9'"),
        ({"trigger_efficiency": {"table": [[0.8, 0.9], [1.2, 0.95]]}}, r"trigger_efficiency: the table covers \[0.8, 1.2\] GeV but the scan needs \[0.6, 1.4\]"),
        ({"trigger_efficiency": {"table": [[0.5, 0.9], [1.5, 1.2]]}}, r"trigger_efficiency.table\[1\]: efficiency 1.2 is not in \(0, 1\]"),
        ({"luminosity_fb": 0}, r"luminosity_fb: 0 is less than or equal to the minimum of 0"),
        ({"nuisances": [{"name": "a", "kind": "resolution", "width": 0.1}, {"name": "a", "kind": "shift", "width": 0.1}]}, r"'a' is used twice"),
    ],
)
def test_bad_combined_input_is_one_clear_error_before_any_fit(extra, match, monkeypatch) -> None:
    def no_fit(*a, **k):
        raise AssertionError("a fit ran")

    monkeypatch.setattr("fits.combined_table.evaluate_combined", no_fit)
    with pytest.raises((ScanConfigError, ScanInputError), match=match):
        scans.scan(_mgg(3000, 1), NARROW, config={**BASE, "nuisances": [{"name": "r", "kind": "resolution", "width": 0.1}], **extra})


def test_zero_efficiency_in_one_dataset_names_it() -> None:
    zero = analytic_signal_model(efficiency_coeffs=[0.0, 0.0])
    ds = [dataset_from_arrays("good", _mgg(3000, 1), NARROW, luminosity_fb=0.4), dataset_from_arrays("dead", _mgg(3000, 2), zero, luminosity_fb=0.4)]
    with pytest.raises(ScanInputError, match=r"dataset 'dead': signal efficiency at m = 0.6 GeV is 0.0"):
        scan_datasets(ds, config=BASE)


def test_cli_scan_of_a_datasets_config_with_plots_and_clear_errors(tmp_path) -> None:
    from click.testing import CliRunner

    from bumphunt.cli import cli

    np.save(tmp_path / "r1.npy", _mgg(6000, 1))
    np.save(tmp_path / "r2.npy", _mgg(12000, 2))
    text = ("datasets:\n  - {name: r1, inputs: {files: [r1.npy]}, luminosity_fb: 0.4}\n  - {name: r2, inputs: {files: [r2.npy]}, luminosity_fb: 0.8}\n"
            "nuisances:\n  - {name: res, kind: resolution, width: 0.1}\nmass: {min: 0.6, max: 1.4, step: 0.1}\nvetoes: {particles: []}\n"
            "lee: {toys: 0}\nbkg_order: 2\n")
    (tmp_path / "scan.yaml").write_text(text)
    runner = CliRunner()
    res = runner.invoke(cli, ["scan", str(tmp_path / "scan.yaml"), "--out", str(tmp_path / "out"), "--workers", "1"])
    assert res.exit_code == 0, res.output
    result = json.loads((tmp_path / "out" / "scan_result.json").read_text())
    assert [d["name"] for d in result["datasets"]] == ["r1", "r2"] and result["luminosity_fb"] == pytest.approx(1.2)
    assert {"brazil_xsec.png", "coupling_exclusion.png"} <= {p.name for p in (tmp_path / "out" / "plots").iterdir()}
    (tmp_path / "bad.yaml").write_text(text.replace("width: 0.1}", "width: 0.1, datasets: [r3]}"))
    bad = runner.invoke(cli, ["scan", str(tmp_path / "bad.yaml"), "--out", str(tmp_path / "out2")])
    assert bad.exit_code != 0 and "unknown dataset 'r3'" in bad.output and "Traceback" not in bad.output
    assert len(bad.output.strip().splitlines()) == 1
    bad = runner.invoke(cli, ["scan", str(tmp_path / "scan.yaml"), "--input", str(tmp_path / "r1.npy")])
    assert bad.exit_code != 0 and "CONFIG has datasets" in bad.output

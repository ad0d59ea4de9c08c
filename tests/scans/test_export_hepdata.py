"""HEPData export of scan results: hepdata-validator accepts it, the tables hold the result's numbers, a blind result
exports no observed number, combined results, bad input, the CLI, and the demo scan's export."""

from __future__ import annotations

import copy
import json
import math
import re
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

import scans
from bumphunt.cli import cli
from scans import ScanInputError
from scans.checkpoint import sha256_file
from scans.combined_driver import scan_datasets
from scans.datasets import dataset_from_arrays
from scans.export_hepdata import export_hepdata, validate_submission
from scans.inputs import describe_signal_model
from scans.testing import analytic_signal_model, toy_spectrum

MODEL = analytic_signal_model()
# eta (0.548 GeV) and eta' (0.958 GeV) fall in the range: vetoed points
CFG = {"mass": {"min": 0.3, "max": 1.5, "step": 0.05}, "lee": {"toys": 0}, "execution": {"workers": 1}, "block_size": 50}
OBSERVED_KEYS = ("nsig", "nsig_err", "z_local", "ul_nsig_obs", "ul_xsec_pb_obs", "ul_g_gev_obs")
LIMITS = {"upper_limits_on_n_sig.yaml": "ul_nsig", "upper_limits_on_the_cross-section.yaml": "ul_xsec_pb",
          "upper_limits_on_g_agg.yaml": "ul_g_gev"}
_NUMBER = re.compile(r"-?\d+\.\d+(?:[eE][-+]?\d+)?")


def _mgg() -> np.ndarray:
    return toy_spectrum(6000, lo=0.1, hi=3.0, slope=0.5, seed=21)


@pytest.fixture(scope="module")
def results() -> dict[str, dict[str, Any]]:
    """The same candidates scanned open, blind, and blind in one window."""
    x = _mgg()
    return {
        "open": scans.scan(x, MODEL, config=CFG),
        "blind": scans.scan(x, MODEL, config={**CFG, "blinding": {"mode": "blind", "reference_xsec_pb": 0.5}}),
        "windows": scans.scan(x, MODEL, config={**CFG, "blinding": {"mode": "windows", "windows": [[1.2, 1.3]]}}),
    }


def _assert_valid(directory: Path) -> None:
    """hepdata-validator on the whole submission, on submission.yaml and on every data file."""
    from hepdata_validator.data_file_validator import DataFileValidator
    from hepdata_validator.full_submission_validator import FullSubmissionValidator
    from hepdata_validator.submission_file_validator import SubmissionFileValidator

    full = FullSubmissionValidator()
    ok = full.validate(directory=str(directory))
    if not ok:
        for f in full.get_messages():
            full.print_errors(f)
    assert ok, full.get_messages()
    sub = SubmissionFileValidator()
    ok = sub.validate(file_path=str(directory / "submission.yaml"))
    if not ok:
        sub.print_errors(str(directory / "submission.yaml"))
    assert ok
    docs = [d for d in yaml.safe_load_all((directory / "submission.yaml").read_text()) if d and "data_file" in d]
    assert docs
    for doc in docs:
        data = DataFileValidator()
        path = str(directory / doc["data_file"])
        ok = data.validate(file_path=path)
        if not ok:
            data.print_errors(path)
        assert ok, path
    assert validate_submission(directory) == []


def _tables(directory: Path) -> dict[str, dict[str, Any]]:
    """data file name -> {"doc": its submission.yaml entry, "data": the table}."""
    docs = [d for d in yaml.safe_load_all((directory / "submission.yaml").read_text()) if d and "data_file" in d]
    return {d["data_file"]: {"doc": d, "data": yaml.safe_load((directory / d["data_file"]).read_text())} for d in docs}


def _column(table: dict[str, Any], prefix: str) -> dict[str, Any]:
    (col,) = [v for v in table["data"]["dependent_variables"] if v["header"]["name"].startswith(prefix)]
    return col


def _masses(table: dict[str, Any]) -> list[float]:
    return [v["value"] for v in table["data"]["independent_variables"][0]["values"]]


def test_export_passes_hepdata_validator_and_holds_the_result_numbers(results, tmp_path) -> None:
    result = copy.deepcopy(results["open"])
    fitted = [p for p in result["points"] if not p["vetoed"]]
    failed = fitted[4]
    for k in [k for k in failed if k not in ("mass", "vetoed", "window", "n_events", "efficiency")]:
        del failed[k]
    failed.update(converged=False, reason="fit did not converge (test)")
    vetoed = [p["mass"] for p in result["points"] if p["vetoed"]]
    assert vetoed and result["vetoed_ranges"]
    out = export_hepdata(result, tmp_path / "hepdata", location="Figure 7")
    assert out == tmp_path / "hepdata"
    _assert_valid(out)

    tables = _tables(out)
    assert set(tables) == {*LIMITS, "signal_efficiency.yaml", "local_significance.yaml", "mass_resolution.yaml"}
    kept = [p for p in fitted if p is not failed]
    for t in tables.values():
        assert _masses(t) == pytest.approx([p["mass"] for p in kept], rel=1e-6)
        doc = t["doc"]
        assert "eta" in doc["description"] and f"{failed['mass']:g} GeV" in doc["description"] and doc["location"] == "Figure 7"
        kw = {k["name"]: k["values"] for k in doc["keywords"]}
        assert kw["reactions"] == ["E+ E- --> GAMMA A", "A --> GAMMA GAMMA"]
        assert kw["cmenergies"] == [pytest.approx(result["sqrt_s"], rel=1e-5)] and kw["observables"] and kw["phrases"]
        quals = {q["name"]: q for q in t["data"]["dependent_variables"][0]["qualifiers"]}
        assert quals["SQRT(S)"]["units"] == "GeV" and quals["SQRT(S)"]["value"] == pytest.approx(result["sqrt_s"], rel=1e-5)
    units = {"ul_nsig": "events", "ul_xsec_pb": "pb", "ul_g_gev": "GeV$^{-1}$"}
    for i in (0, 5, len(kept) - 1):
        p = kept[i]
        for name, key in LIMITS.items():
            obs, exp = _column(tables[name], "Observed"), _column(tables[name], "Expected")
            assert obs["header"]["units"] == exp["header"]["units"] == units[key]
            assert obs["values"][i]["value"] == pytest.approx(p[f"{key}_obs"], rel=1e-4)
            e = exp["values"][i]
            band = p[f"{key}_exp"]
            assert e["value"] == pytest.approx(band[2], rel=1e-4)
            errs = {x["label"]: x["asymerror"] for x in e["errors"]}
            scale = 1e-4 * band[2]
            assert e["value"] + errs["1 s.d."]["minus"] == pytest.approx(band[1], abs=scale)
            assert e["value"] + errs["1 s.d."]["plus"] == pytest.approx(band[3], abs=scale)
            assert e["value"] + errs["2 s.d."]["minus"] == pytest.approx(band[0], abs=scale)
            assert e["value"] + errs["2 s.d."]["plus"] == pytest.approx(band[4], abs=scale)
        eff = _column(tables["signal_efficiency.yaml"], "Signal efficiency")
        assert eff["values"][i]["value"] == pytest.approx(p["efficiency"], rel=1e-4)
        z = _column(tables["local_significance.yaml"], "Local significance")
        assert z["values"][i]["value"] == pytest.approx(p["z_local"], rel=1e-4, abs=1e-5)
        sigma = _column(tables["mass_resolution.yaml"], "$\\sigma_{m}$")
        assert sigma["header"]["units"] == "GeV"
        assert sigma["values"][i]["value"] == pytest.approx(MODEL.shape(p["mass"]).sigma, rel=1e-4)
    comment = yaml.safe_load_all((out / "submission.yaml").read_text()).__next__()["comment"]
    assert "fb^-1" in comment and "bumphunt" in comment and "Blinding: mode 'none'" in comment and "fit did not converge (test)" in comment
    # a second export into the same directory replaces the first; the archive holds the files
    export_hepdata(result, out, archive=tmp_path / "hepdata.tar.gz")
    with tarfile.open(tmp_path / "hepdata.tar.gz") as tar:
        assert sorted(tar.getnames()) == sorted(p.name for p in out.iterdir())


def _numbers_in(directory: Path) -> set[str]:
    return {tok for p in directory.iterdir() for tok in _NUMBER.findall(p.read_text())}


def _digits(token: str) -> int:
    return len(token.lstrip("-").split("e")[0].split("E")[0].replace(".", "").strip("0"))


def _matches(token: str, values: list[float]) -> bool:
    d = _digits(token)
    return any(float(f"{v:.{d}g}") == float(token) for v in values)


def _observed(result: dict[str, Any]) -> list[float]:
    values = [float(p[k]) for p in result["points"] for k in OBSERVED_KEYS if k in p]
    values += [0.5 * math.erfc(p["z_local"] / math.sqrt(2.0)) for p in result["points"] if "z_local" in p]  # the local p0
    g = result["global"]
    values += [float(g[k]) for k in ("max_z_local", "z_global", "p_local", "p_global") if k in g]
    return [v for v in values if v != 0.0]


def _allowed(result: dict[str, Any]) -> list[float]:
    """Every expected number an export of ``result`` may print (masses, bands and their offsets, efficiency, resolution, ...)."""
    out = [result["sqrt_s"], result["luminosity_fb"], 0.5]
    for r in result["vetoed_ranges"]:
        out += [r["lo"], r["hi"]]
    for p in result["points"]:
        out += [p["mass"], p.get("efficiency", 0.0), *p.get("window", []), p.get("z_expected_reference", 0.0)]
        if not p["vetoed"]:
            out.append(MODEL.shape(p["mass"]).sigma)
        for k in ("ul_nsig_exp", "ul_xsec_pb_exp", "ul_g_gev_exp"):
            b = p.get(k, [])
            out += b + [v - b[2] for v in b]
    return [float(v) for v in out]


def _leaks(directory: Path, observed: list[float], allowed: list[float]) -> list[str]:
    return sorted(t for t in _numbers_in(directory) if _digits(t) >= 3 and _matches(t, observed) and not _matches(t, allowed))


def test_a_blind_result_exports_no_observed_number(results, tmp_path) -> None:
    observed = _observed(results["open"])
    # the search finds the observed numbers where they are
    export_hepdata(results["open"], tmp_path / "open")
    assert len(_leaks(tmp_path / "open", observed, _allowed(results["open"]))) > 20
    # a blind scan; and an open result marked blind whose points still carry their observed numbers
    marked = copy.deepcopy(results["open"])
    marked["blinding"] = {"mode": "blind", "unblinded": False, "windows": [], "blinded_points": 0}
    for name, result in (("blind", results["blind"]), ("marked", marked)):
        out = export_hepdata(result, tmp_path / name)
        _assert_valid(out)
        leaked = _leaks(out, observed, _allowed(result))
        assert not leaked, f"{name}: observed numbers in the export: {leaked[:5]}"
        tables = _tables(out)
        assert "local_significance.yaml" not in tables and set(LIMITS) <= set(tables)
        for t in tables.values():
            assert "BLINDED RESULT" in t["doc"]["description"] and "expected quantities only" in t["doc"]["description"]
            assert not any(v["header"]["name"].startswith("Observed") for v in t["data"]["dependent_variables"])
        text = (out / "submission.yaml").read_text()
        assert "Largest local excess" not in text and "not unblinded" in text
    ref = _tables(tmp_path / "blind")["expected_significance_of_the_reference_signal.yaml"]
    assert _column(ref, "Expected")["values"][0]["value"] == pytest.approx(
        [p for p in results["blind"]["points"] if not p["vetoed"]][0]["z_expected_reference"], rel=1e-4)


def test_blinded_windows_show_observed_values_outside_the_windows_only(results, tmp_path) -> None:
    result = results["windows"]
    out = export_hepdata(result, tmp_path / "w")
    _assert_valid(out)
    kept = [p for p in result["points"] if not p["vetoed"] and p["converged"]]
    assert any(p.get("blinded") for p in kept) and not all(p.get("blinded") for p in kept)
    table = _tables(out)["upper_limits_on_the_cross-section.yaml"]
    assert "Partly blinded" in table["doc"]["description"]
    for p, v in zip(kept, _column(table, "Observed")["values"]):
        assert v["value"] == "-" if p.get("blinded") else v["value"] == pytest.approx(p["ul_xsec_pb_obs"], rel=1e-4)


def test_combined_result_exports_the_same_tables_and_each_dataset_luminosity(tmp_path) -> None:
    cfg = {"mass": {"min": 0.6, "max": 1.4, "step": 0.1}, "vetoes": {"particles": []}, "lee": {"toys": 0}, "execution": {"workers": 1},
           "bkg_order": 2, "block_size": 4}
    wide = analytic_signal_model(sigma_coeffs=[0.006, 0.013])
    wide.save(tmp_path / "wide.json")
    ds = [dataset_from_arrays("run1", toy_spectrum(6000, lo=0.3, hi=2.0, slope=0.4, seed=1), MODEL, luminosity_fb=0.4, bkg_order=2,
                              signal_model_source=describe_signal_model(MODEL)),
          dataset_from_arrays("run2", toy_spectrum(12000, lo=0.3, hi=2.0, slope=0.4, seed=2), wide, luminosity_fb=0.8, bkg_order=2,
                              signal_model_source={"path": str(tmp_path / "wide.json"), "sha256": sha256_file(tmp_path / "wide.json")})]
    result = scan_datasets(ds, config=cfg)
    out = export_hepdata(result, tmp_path / "c")
    _assert_valid(out)
    tables = _tables(out)
    assert {*LIMITS, "signal_efficiency.yaml", "local_significance.yaml", "mass_resolution.yaml"} <= set(tables)
    for t in tables.values():
        assert "run1: 0.4 fb^-1" in t["doc"]["description"] and "run2: 0.8 fb^-1" in t["doc"]["description"]
    p = result["points"][3]
    eff = tables["signal_efficiency.yaml"]
    assert _column(eff, "Signal efficiency, dataset run2")["values"][3]["value"] == pytest.approx(p["channels"]["run2"]["efficiency"], rel=1e-4)
    sigma = _column(tables["mass_resolution.yaml"], "$\\sigma_{m}$, dataset run2")
    assert sigma["values"][3]["value"] == pytest.approx(wide.shape(p["mass"]).sigma, rel=1e-4)
    assert _column(tables["upper_limits_on_g_agg.yaml"], "Observed")["values"][3]["value"] == pytest.approx(p["ul_g_gev_obs"], rel=1e-4)
    # a model file changed since the scan: that dataset's resolution is left out, and the submission says why
    analytic_signal_model(sigma_coeffs=[0.007, 0.013]).save(tmp_path / "wide.json")
    out = export_hepdata(result, tmp_path / "c")
    res = _tables(out)["mass_resolution.yaml"]["data"]["dependent_variables"]
    assert [v["header"]["name"] for v in res] == ["$\\sigma_{m}$, dataset run1"]
    assert "dataset run2: the signal model" in " ".join((out / "submission.yaml").read_text().split())


def test_bad_input_gives_clear_errors_and_a_missing_signal_model_is_said(results, tmp_path) -> None:
    with pytest.raises(ScanInputError, match="not a scan result"):
        export_hepdata({"config": {}}, tmp_path / "a")
    old = copy.deepcopy(results["open"])
    old["bumphunt_version"] = "0.0.3"
    del [p for p in old["points"] if not p["vetoed"]][2]["ul_g_gev_exp"]
    with pytest.raises(ScanInputError, match=r"bumphunt 0\.0\.3 .*'ul_g_gev_exp'"):
        export_hepdata(old, tmp_path / "b")
    del old["bumphunt_version"]
    with pytest.raises(ScanInputError, match="unknown bumphunt version"):
        export_hepdata(old, tmp_path / "b")
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(ScanInputError, match="not empty"):
        export_hepdata(results["open"], tmp_path / "busy")
    assert (tmp_path / "busy" / "notes.txt").read_text() == "mine"
    with pytest.raises(ScanInputError, match="outside the submission directory"):
        export_hepdata(results["open"], tmp_path / "d", archive=tmp_path / "d" / "s.tar.gz")
    # a signal model handed over in memory is not recorded: no resolution table, and the submission says why
    anon = copy.deepcopy(results["open"])
    anon["signal_model"] = {"object": "MyModel"}
    out = export_hepdata(anon, tmp_path / "e")
    _assert_valid(out)
    assert "mass_resolution.yaml" not in _tables(out)
    assert "No mass-resolution table" in (out / "submission.yaml").read_text().replace("\n ", " ")
    # ... unless given
    assert "mass_resolution.yaml" in _tables(export_hepdata(anon, tmp_path / "f", signal_model=MODEL))


def test_cli_export_hepdata(results, tmp_path) -> None:
    runner = CliRunner()
    for name in ("open", "blind"):
        (tmp_path / f"{name}.json").write_text(json.dumps(results[name]))
    res = runner.invoke(cli, ["export-hepdata", str(tmp_path / "open.json"), "--out", str(tmp_path / "hd")])
    assert res.exit_code == 0, res.output
    assert str(tmp_path / "hd") in res.output and "valid" in res.output
    _assert_valid(tmp_path / "hd")
    res = runner.invoke(cli, ["export-hepdata", str(tmp_path / "blind.json"), "--out", str(tmp_path / "hb")])
    assert res.exit_code == 0 and "expected quantities only" in res.output
    old = copy.deepcopy(results["open"])
    old["bumphunt_version"] = "0.0.3"
    del [p for p in old["points"] if not p["vetoed"]][0]["ul_xsec_pb_obs"]
    (tmp_path / "old.json").write_text(json.dumps(old))
    (tmp_path / "other.json").write_text(json.dumps({"not": "a scan"}))
    for path, message in (("old.json", "bumphunt 0.0.3"), ("other.json", "not a scan result"), ("missing.json", "not found")):
        res = runner.invoke(cli, ["export-hepdata", str(tmp_path / path), "--out", str(tmp_path / "x")])
        assert res.exit_code != 0 and isinstance(res.exception, SystemExit), res.output
        lines = res.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error:") and message in lines[0], res.output
        assert "Traceback" not in res.output


@pytest.mark.slow  # run_demo(small=True) takes about a minute (50 s alone, 100 s on a busy machine)
def test_hepdata_validator_accepts_the_export_of_the_demo_scan(tmp_path) -> None:
    from bumphunt.demo.run import run_demo

    files = run_demo(tmp_path / "demo", small=True, seed=3)
    res = CliRunner().invoke(cli, ["export-hepdata", str(files["scan_result"]), "--out", str(tmp_path / "hepdata")])
    assert res.exit_code == 0, res.output
    _assert_valid(tmp_path / "hepdata")
    tables = _tables(tmp_path / "hepdata")
    # the demo records its signal model file: the resolution table is there
    assert {*LIMITS, "signal_efficiency.yaml", "local_significance.yaml", "mass_resolution.yaml"} <= set(tables)
    result = scans.load_result(files["scan_result"])
    kept = [p for p in result["points"] if not p["vetoed"] and p["converged"]]
    obs = _column(tables["upper_limits_on_the_cross-section.yaml"], "Observed")["values"]
    assert [v["value"] for v in obs] == pytest.approx([p["ul_xsec_pb_obs"] for p in kept], rel=1e-4)

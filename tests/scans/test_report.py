"""The scan report (scans.report, bumphunt report): one self-contained HTML page with every section; it renders in headless
Chromium with all figures loaded; a blind result's page holds no observed number; combined results with pulls and impacts;
a bad result file is one error line."""

from __future__ import annotations

import copy
import json
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

import scans
from bumphunt.cli import cli
from scans.report import write_report
from scans.report_fit import significant_window
from scans.testing import analytic_signal_model, sample_signal, toy_spectrum

MODEL = analytic_signal_model()
CFG = {"mass": {"min": 0.6, "max": 1.4, "step": 0.05}, "vetoes": {"particles": [], "ranges": [[1.18, 1.24]]},
       "lee": {"toys": 2, "background_order": 6}, "execution": {"workers": 1}, "bkg_order": 2, "block_size": 6}
SECTIONS = ("summary", "configuration", "inputs", "datasets", "cut-flow", "limits", "coupling", "significance", "window", "gof", "flagged",
            "vetoes")
OBSERVED_KEYS = ("nsig", "nsig_err", "z_local", "ul_nsig_obs", "ul_xsec_pb_obs", "ul_g_gev_obs", "xsec_pb", "xsec_pb_err")
_NUMBER = re.compile(r"-?\d+\.\d+(?:[eE][-+]?\d+)?")
_IMAGE = re.compile(r"data:image/png;base64,[A-Za-z0-9+/=]+")


def _data() -> np.ndarray:
    sh = MODEL.shape(1.0)
    sig = sample_signal(sh, 70, lo=sh.mu - 20 * sh.sigma, hi=sh.mu + 20 * sh.sigma, seed=4)
    return np.concatenate([toy_spectrum(8000, lo=0.3, hi=2.0, slope=0.4, seed=3), sig])


def _run(folder: Path, cfg: dict[str, Any], *, unblind: bool = False) -> tuple[dict[str, Any], Path]:
    """A scan from a configuration file next to its candidate file: the result records its inputs (path, sha256)."""
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / "c.npy", _data())
    (folder / "scan.yaml").write_text(yaml.safe_dump({**cfg, "inputs": {"files": ["c.npy"]}}))
    result = scans.run_config(folder / "scan.yaml", out_dir=folder / "out", unblind=unblind, show_progress=False)
    return result, folder / "out" / "scan_result.json"


def _text(page: Path) -> str:
    """The page without its embedded images."""
    return _IMAGE.sub("data:image/png;base64,", page.read_text())


def _decorated(result: dict[str, Any]) -> dict[str, Any]:
    """The result with what this version's scans may not write yet: GoF p-values, an event-chain cut flow, a failed point, a note."""
    r = copy.deepcopy(result)
    rng = np.random.default_rng(5)
    fitted = [p for p in r["points"] if not p["vetoed"] and p["converged"]]
    for p in fitted:
        p["gof_pvalue"] = float(rng.uniform())
    fitted[1]["gof_pvalue"] = 0.004
    fitted[2]["note"] = "a note <with markup & quotes\">"
    failed = fitted[-1]
    for k in [k for k in failed if k not in ("mass", "vetoed", "window", "n_events", "efficiency")]:
        del failed[k]
    failed.update(converged=False, reason="fit did not converge (test)")
    r["provenance"]["event_chain"] = {"n_events": 20000, "n_preselected": 9000, "n_kinfit_failed": 12, "n_candidates": 27000,
                                      "n_selected": 8070, "files": ["a.root"]}
    return r


@pytest.fixture(scope="module")
def open_page(tmp_path_factory) -> dict[str, Any]:
    """The report of an open scan (decorated: GoF outlier, cut flow, a failed point, a note), written through the CLI."""
    base = tmp_path_factory.mktemp("open")
    opened, _ = _run(base / "scan", CFG)
    decorated = base / "decorated.json"
    decorated.write_text(json.dumps(_decorated(opened)))
    res = CliRunner().invoke(cli, ["report", str(decorated), "--out", str(base / "report")])
    assert res.exit_code == 0, res.output
    assert f"scan report: {base / 'report' / 'report.html'}" in res.output
    return {"result": opened, "page": base / "report" / "report.html"}


@pytest.fixture(scope="module")
def blind_page(tmp_path_factory) -> dict[str, Any]:
    """The report of a blind scan, and the same scan unblinded."""
    base = tmp_path_factory.mktemp("blind")
    blind_cfg = {**CFG, "blinding": {"mode": "blind", "reference_xsec_pb": 0.5}}
    blind, _ = _run(base / "blind", blind_cfg)
    unblinded, _ = _run(base / "unblinded", blind_cfg, unblind=True)
    return {"result": blind, "unblinded": unblinded, "page": write_report(blind, base / "report")}


@pytest.fixture(scope="module")
def combined_page(tmp_path_factory) -> dict[str, Any]:
    """The report of a combined scan of two datasets with a resolution nuisance."""
    base = tmp_path_factory.mktemp("combined")
    combined, path = _run_combined(base)
    return {"result": combined, "page": write_report(combined, base / "report", result_path=path)}


def _run_combined(folder: Path) -> tuple[dict[str, Any], Path]:
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / "r1.npy", toy_spectrum(6000, lo=0.3, hi=2.0, slope=0.4, seed=1))
    sh = MODEL.shape(1.0)
    sig = sample_signal(sh, 50, lo=sh.mu - 20 * sh.sigma, hi=sh.mu + 20 * sh.sigma, seed=7)
    np.save(folder / "r2.npy", np.concatenate([toy_spectrum(9000, lo=0.3, hi=2.0, slope=0.4, seed=2), sig]))
    cfg = {"mass": {"min": 0.6, "max": 1.4, "step": 0.1}, "vetoes": {"particles": []}, "lee": {"toys": 0}, "execution": {"workers": 1},
           "bkg_order": 2, "datasets": [{"name": "run1", "inputs": {"files": ["r1.npy"]}, "luminosity_fb": 0.4, "luminosity_rel_unc": 0.02},
                                        {"name": "run2", "inputs": {"files": ["r2.npy"]}, "luminosity_fb": 0.6,
                                         "trigger_efficiency": {"value": 0.95, "rel_unc": 0.02}}],
           "nuisances": [{"name": "res", "kind": "resolution", "width": 0.1}]}
    (folder / "scan.yaml").write_text(yaml.safe_dump(cfg))
    result = scans.run_config(folder / "scan.yaml", out_dir=folder / "out", show_progress=False)
    return result, folder / "out" / "scan_result.json"


def test_the_page_is_self_contained_and_holds_every_section(open_page) -> None:
    text = _text(open_page["page"])
    for ident in SECTIONS:
        assert f'<section id="{ident}">' in text
    for ident in ("fig-brazil-nsig", "fig-brazil-xsec", "fig-coupling", "fig-p0", "fig-fit-data", "fig-gof"):
        assert f'<figure id="{ident}">' in text
    assert "could not be drawn" not in text and "could not be read" not in text
    # nothing outside the page: no scripts, style sheets, links or remote images
    assert not re.search(r"<script|<link|<iframe|url\(|src=\"(?!data:image/png;base64,)", text)
    assert "Not blind" in text and "belle2_2020" in text and "BLIND RESULT" not in text
    assert "present, sha256 matches" in text and "analytic model" in text
    assert "<summary>Scan configuration (YAML" in text and "bkg_order: 2" in text
    # the cut flow, the flagged point, the note (escaped), the vetoed range, the GoF outlier
    assert "27000" in text and "8070" in text and "fit did not converge (test)" in text
    assert "a note &lt;with markup &amp; quotes&quot;&gt;" in text and "<with markup" not in text
    assert "1.18" in text and "1.24" in text
    assert re.search(r"1 of \d+ windows with p &lt; 0.01", text) and "0.004" in text
    # the most significant window is refitted from the recorded inputs and gives the scan's numbers
    g = open_page["result"]["global"]
    assert f"m_a = {g['mass_at_max']:.5g} GeV" in text and "The refit gives" not in text
    assert "no pulls or impacts" in text


def test_combined_report_shows_datasets_and_the_pulls_and_impacts_of_the_most_significant_point(combined_page) -> None:
    result = combined_page["result"]
    text = _text(combined_page["page"])
    for ident in ("datasets-table", "window-channels-table", "impacts-table"):
        assert f'id="{ident}"' in text
    assert '<figure id="fig-impacts">' in text and '<figure id="fig-fit-run1">' in text and '<figure id="fig-fit-run2">' in text
    assert "could not be" not in text and "The refit gives" not in text
    # the impacts are those of the recorded point: its post-fit nuisances, refitted from the recorded inputs and models
    visible = [True] * len(result["points"])
    w = significant_window(result, visible)
    assert w.impacts is not None and w.point["mass"] == result["global"]["mass_at_max"]
    assert set(w.impacts.names) == set(w.point["nuisances"]) == {"yield_run1", "yield_run2", "res"}
    for name, value in zip(w.impacts.names, w.impacts.values):
        assert value == pytest.approx(w.point["nuisances"][name]["value"], abs=1e-6)
    assert w.impacts.mu_hat == pytest.approx(w.point["xsec_pb"], rel=1e-6)
    # the inputs are gone: the page says so and shows the recorded post-fit nuisances instead
    moved = copy.deepcopy(result)
    for d in moved["datasets"]:
        d["inputs"] = [{"path": str(Path(i["path"]).with_name("missing.npy")), "sha256": i["sha256"]} for i in d["inputs"]]
    w = significant_window(moved, visible)
    assert w.impacts is None and [n for n, _, _ in w.pulls] == list(w.point["nuisances"]) and "is not found" in w.notes[0]


def _observed(result: dict[str, Any], points: list[dict[str, Any]] | None = None) -> list[float]:
    values: list[Any] = []
    for p in result["points"] if points is None else points:
        values += [p[k] for k in OBSERVED_KEYS if k in p]
        values += [v["value"] for v in (p.get("nuisances") or {}).values()]
    if points is None:
        values += [result["global"][k] for k in ("max_z_local", "z_global", "p_local", "p_global") if k in result["global"]]
    return [float(v) for v in values if isinstance(v, float) and np.isfinite(v) and v != 0.0]


def _leaks(text: str, observed: list[float], allowed: list[float]) -> list[str]:
    """Numbers on the page (3 or more significant digits) equal to an observed value at the printed precision and to no allowed one."""
    out = []
    for token in set(_NUMBER.findall(text)):
        digits = len(token.lstrip("-").split("e")[0].split("E")[0].replace(".", "").strip("0"))
        if digits < 3:
            continue
        f = float(token)
        if any(float(f"{v:.{digits}g}") == f for v in observed) and not any(float(f"{v:.{digits}g}") == f for v in allowed):
            out.append(token)
    return sorted(out)


def _allowed(result: dict[str, Any]) -> list[float]:
    keys = ("ul_nsig_exp", "ul_xsec_pb_exp", "ul_g_gev_exp", "efficiency", "mass", "window", "z_expected_reference")
    return [float(v) for p in result["points"] for k in keys for v in np.ravel(p.get(k, []))]


def test_a_blind_report_shows_no_observed_number(blind_page, tmp_path) -> None:
    blind, unblinded = blind_page["result"], blind_page["unblinded"]
    observed = _observed(unblinded)
    assert len(observed) > 50
    text = _text(blind_page["page"])
    assert not _leaks(text, observed, _allowed(blind))
    assert "BLIND RESULT" in text and 'id="fig-p0"' not in text and 'id="fig-fit' not in text and 'id="fig-reference-z"' in text
    assert "not drawn" in text
    # a result recorded as blind whose points still carry observed numbers: they are dropped before anything is drawn
    relabelled = copy.deepcopy(unblinded)
    relabelled["blinding"] = {"mode": "blind", "unblinded": False, "windows": [], "blinded_points": len(relabelled["points"])}
    text = _text(write_report(relabelled, tmp_path / "relabelled"))
    assert "BLIND RESULT" in text and not _leaks(text, observed, _allowed(blind))
    # the search finds the observed numbers where a page shows them: the same result, not relabelled
    assert len(_leaks(_text(write_report(unblinded, tmp_path / "open")), observed, _allowed(blind))) >= 5


def test_a_partly_blind_report_hides_the_blinded_points_only(tmp_path) -> None:
    cfg = {**CFG, "lee": {"toys": 0}, "blinding": {"mode": "windows", "windows": [[0.95, 1.05]]}}
    res, _ = _run(tmp_path / "w", cfg)
    full, _ = _run(tmp_path / "u", cfg, unblind=True)
    blinded = [q for p, q in zip(res["points"], full["points"]) if p.get("blinded")]
    assert blinded
    text = _text(write_report(res, tmp_path / "report"))
    assert "PARTLY BLIND RESULT" in text and '<figure id="fig-p0">' in text
    assert not _leaks(text, _observed(full, blinded), _allowed(res) + _observed(res))


@pytest.mark.parametrize("content, message", [
    ("{not json", "not a JSON scan result"),
    (json.dumps({"points": []}), "not a scan result, missing key(s)"),
    (json.dumps({"points": [1, 2], "global": {}, "luminosity_fb": 1.0, "sqrt_s": 10.58}), "point 0 has no 'mass'"),
    (json.dumps({"bumphunt_version": "0.0.1", "points": [{"mass": 1.0, "vetoed": False}], "global": {}, "luminosity_fb": 1.0,
                 "sqrt_s": 10.58}), "bumphunt 0.0.1"),
    (json.dumps({"points": [], "global": [], "luminosity_fb": 1.0, "sqrt_s": 10.58}), "unknown bumphunt version"),
])
def test_a_bad_result_file_is_one_error_line(tmp_path, content, message) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    res = CliRunner().invoke(cli, ["report", str(path), "--out", str(tmp_path / "out")])
    assert res.exit_code != 0
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error:") and message in lines[0], res.output
    assert "Traceback" not in res.output and not (tmp_path / "out" / "report.html").exists()
    res = CliRunner().invoke(cli, ["report", str(tmp_path / "absent.json"), "--out", str(tmp_path / "out")])
    assert res.exit_code != 0 and "not found" in res.output and "Traceback" not in res.output


def _browser() -> Any:
    """Headless Chromium driven by Selenium through the system chromedriver, or a skip with the reason."""
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install selenium)")
    binary = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)
    driver = shutil.which("chromedriver")
    if binary is None or driver is None:
        pytest.skip(f"no headless browser: chromium {'found' if binary else 'not found'}, chromedriver {'found' if driver else 'not found'} "
                    "(apt-get install chromium chromium-driver)")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1200,900"):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service(driver), options=options)


@pytest.fixture(scope="module")
def browser() -> Any:
    drv = _browser()
    yield drv
    drv.quit()


@pytest.mark.parametrize("which, figures", [
    ("open", ("fig-brazil-nsig", "fig-brazil-xsec", "fig-coupling", "fig-p0", "fig-fit-data", "fig-gof")),
    ("blind", ("fig-brazil-nsig", "fig-brazil-xsec", "fig-coupling", "fig-reference-z")),
    ("combined", ("fig-brazil-nsig", "fig-brazil-xsec", "fig-coupling", "fig-p0", "fig-fit-run1", "fig-fit-run2", "fig-impacts")),
])
def test_the_report_renders_in_headless_chromium_with_every_figure_loaded(request, browser, which, figures) -> None:
    page = request.getfixturevalue(f"{which}_page")["page"]
    browser.get(page.resolve().as_uri())
    images = browser.execute_script("return Array.from(document.images).map(i => [i.alt, i.complete, i.naturalWidth, i.naturalHeight]);")
    assert len(images) == page.read_text().count("<figure") >= len(figures), images
    for alt, complete, width, height in images:
        assert complete and width > 0 and height > 0, f"figure {alt!r} did not load"
    for ident in (*SECTIONS, *figures):
        assert browser.execute_script(f"return document.getElementById('{ident}') !== null;"), ident
    resources = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name);")
    assert all(r.startswith("data:") for r in resources), resources  # nothing fetched from elsewhere
    assert browser.find_element("id", "blinding-banner").is_displayed()
    assert browser.title.startswith("bumphunt scan report")

"""The validation report (``bumphunt.validation``): plumbing end to end on one tiny check, and the reduced run passing (slow)."""

from __future__ import annotations

import dataclasses
import json
import logging

import pytest

from bumphunt.validation.runner import CHECKS, run_validation, select_checks
from bumphunt.validation.settings import CheckResult, ValidationSettings, check_seed

logger = logging.getLogger(__name__)


def _strict_json(path):
    """Parse ``path`` refusing NaN and infinities (the report's JSON must be standard JSON)."""
    def refuse(const: str):
        raise ValueError(f"{path}: non-standard JSON constant {const}")

    return json.loads(path.read_text(), parse_constant=refuse)


def test_one_tiny_check_writes_the_report_and_readable_json(tmp_path) -> None:
    settings = ValidationSettings.quick(kinfit_events=3000, kinfit_masses=(None,))
    report = run_validation(tmp_path / "val", settings=settings, seed=3, checks=["kinfit_pulls"], command="bumphunt validate --test")
    assert [r.name for r in report.results] == ["kinfit"]
    assert report.passed and report.results[0].verdict == "PASS", report.results[0].headline
    md = (tmp_path / "val" / "report.md").read_text()
    assert "# bumphunt validation report" in md and "Kinematic-fit pulls" in md and "**PASS**" in md
    assert "bumphunt validate --test" in md and "| check | verdict |" in md
    data = _strict_json(tmp_path / "val" / "validation.json")
    assert data["passed"] is True and data["seed"] == 3 and data["mode"] == "quick"
    assert data["checks"]["kinfit"]["verdict"] == "PASS"
    sample = data["checks"]["kinfit"]["data"]["samples"][0]
    assert sample["events"] == 3000 and len(sample["pull_width"]) == 3
    assert data["provenance"]["machine"]["cores"] >= 1 and "load_before" in data["provenance"]
    for fig in report.results[0].figures:  # every figure is referenced, written, and has its numbers as JSON
        assert f"]({fig})" in md
        assert (tmp_path / "val" / fig).stat().st_size > 5000
        assert "pull_mean" in _strict_json((tmp_path / "val" / fig).with_suffix(".json"))


def test_a_check_that_raises_is_a_failure_in_the_report(tmp_path, monkeypatch) -> None:
    def broken(spec, settings, seed, out):
        raise RuntimeError("deliberately broken")

    monkeypatch.setitem(CHECKS, "kinfit", ("Kinematic-fit pulls", broken))
    report = run_validation(tmp_path, checks=["kinfit"])
    assert not report.passed and report.failed == ["kinfit"]
    assert "RuntimeError: deliberately broken" in report.results[0].headline
    assert "**FAIL**" in (tmp_path / "report.md").read_text()


def test_check_selection_seeds_and_verdicts() -> None:
    assert select_checks(None) == list(CHECKS)
    assert select_checks(["kinfit", "local_z", "gross_vitells", "pyhf"]) == ["lee", "references", "kinfit"]
    with pytest.raises(ValueError, match="unknown check 'nope'; choose from coverage"):
        select_checks(["nope"])
    assert check_seed(1, "coverage") == check_seed(1, "coverage")
    assert len({check_seed(1, n) for n in CHECKS} | {check_seed(2, "coverage")}) == len(CHECKS) + 1
    assert CheckResult("a", "A", None, "", "").verdict == "INFO"
    full = ValidationSettings.full(workers=2)
    assert full.mode == "full" and full.workers == 2 and full.coverage_toys > ValidationSettings.quick().coverage_toys
    assert dataclasses.replace(full, mode="x").to_json()["coverage_masses"] == list(full.coverage_masses)


def test_cli_validate_refuses_an_unknown_check_without_traceback(tmp_path) -> None:
    from click.testing import CliRunner

    from bumphunt.cli import cli

    res = CliRunner().invoke(cli, ["validate", "--out", str(tmp_path / "v"), "--quick", "--checks", "coverage,bogus"])
    assert res.exit_code == 2 and "unknown check 'bogus'" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "v").exists()
    res = CliRunner().invoke(cli, ["validate", "--help"])
    assert res.exit_code == 0 and "--quick" in res.output and "--seed" in res.output


def test_module_entry_point_refuses_an_unknown_check(tmp_path, capsys) -> None:
    from bumphunt.validation.__main__ import main

    with pytest.raises(SystemExit) as exc:
        main(["--out", str(tmp_path / "v"), "--checks", "bogus"])
    assert exc.value.code == 2 and "unknown check 'bogus'" in capsys.readouterr().err


@pytest.mark.slow
def test_quick_validation_passes(tmp_path) -> None:
    """The reduced run (``bumphunt validate --quick``): every check passes its criterion."""
    report = run_validation(tmp_path, settings=ValidationSettings.quick(), seed=1)
    for r in report.results:
        logger.info("%s %s: %s", r.verdict, r.title, r.headline)
    assert {r.name for r in report.results} == {"coverage", "coverage_toys", "local_z", "gross_vitells", "injection", "references",
                                                 "spurious", "kinfit"}
    assert report.passed, [(r.name, r.headline) for r in report.results if r.passed is False]
    data = _strict_json(tmp_path / "validation.json")
    assert data["checks"]["local_z"]["data"]["n_toys"] == ValidationSettings.quick().lee_toys

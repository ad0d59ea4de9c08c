"""The validation report: ``report.md`` (Markdown, figures next to it) and ``validation.json`` (every number).

``ValidationReport`` holds the results of one run; ``write_report`` writes
both files into the run's folder, where the checks have already put their
PNG figures and the JSON file of each figure's numbers.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .jsonio import write_json
from .settings import CheckResult, ValidationSettings

logger = logging.getLogger(__name__)

__all__ = ["ValidationReport", "write_report", "markdown_table", "summary_lines", "REPORT_NAME", "JSON_NAME"]

#: the Markdown report in the run's folder
REPORT_NAME = "report.md"
#: every number of the run, in the run's folder
JSON_NAME = "validation.json"


@dataclass(frozen=True)
class ValidationReport:
    """One validation run.

    Attributes
    ----------
    results : tuple of CheckResult
    settings : ValidationSettings
    seed : int
    seconds : float
        Wall-clock time of the whole run (s).
    provenance : dict
        Machine, load before and after, versions, git state (``provenance.provenance``).
    command : str
        The command line that reproduces the run.
    out_dir : Path
    """

    results: tuple[CheckResult, ...]
    settings: ValidationSettings
    seed: int
    seconds: float
    provenance: dict[str, Any] = field(default_factory=dict)
    command: str = ""
    out_dir: Path = Path(".")

    @property
    def passed(self) -> bool:
        """True when no check failed (information-only checks do not count)."""
        return all(r.passed is not False for r in self.results)

    @property
    def failed(self) -> list[str]:
        """Names of the failed checks."""
        return [r.name for r in self.results if r.passed is False]

    @property
    def report_path(self) -> Path:
        return self.out_dir / REPORT_NAME

    @property
    def json_path(self) -> Path:
        return self.out_dir / JSON_NAME

    def to_json(self) -> dict[str, Any]:
        """Everything of the run (numbers of every check, settings, provenance)."""
        return {"passed": self.passed, "failed": self.failed, "seed": self.seed, "mode": self.settings.mode, "seconds": self.seconds,
                "command": self.command, "settings": self.settings.to_json(), "provenance": self.provenance,
                "checks": {r.name: {"title": r.title, "verdict": r.verdict, "criterion": r.criterion, "headline": r.headline,
                                    "seconds": r.seconds, "figures": list(r.figures), "notes": list(r.notes), "data": r.data}
                           for r in self.results}}


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A Markdown table (pipes in cells escaped)."""
    lines = ["| " + " | ".join(_cell(h) for h in header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _header(report: ValidationReport) -> list[str]:
    prov = report.provenance
    git = prov.get("git", {})
    machine = prov.get("machine", {})
    commit = git.get("commit") or "unknown"
    if git.get("dirty"):
        commit += " (with uncommitted changes)"
    n_pass = sum(r.passed is True for r in report.results)
    n_fail = sum(r.passed is False for r in report.results)
    n_info = sum(r.passed is None for r in report.results)
    return [
        "# bumphunt validation report",
        "",
        f"Regenerate with `{report.command}`." if report.command else "",
        "",
        f"- mode: **{report.settings.mode}**, seed {report.seed}; run at {prov.get('time_utc', '?')} (UTC) in {report.seconds:.0f} s",
        f"- bumphunt {prov.get('packages', {}).get('bumphunt', '?')}, commit {commit}",
        f"- machine: {machine.get('cpu_model', '?')}, {machine.get('cores', '?')} cores, {machine.get('memory_gib', '?')} GiB; "
        f"load average before {prov.get('load_before')}, after {prov.get('load_after')} (the cores may be shared)",
        f"- result: **{n_pass} PASS, {n_fail} FAIL, {n_info} information only**",
        "",
    ]


def _setup_section(report: ValidationReport) -> list[str]:
    s = report.settings
    return [
        "## Setup",
        "",
        f"All checks use a known truth: a background spectrum exp(-0.35 m / GeV) on [0.1, 10] GeV with {s.n_candidates} candidates, "
        "the analytic signal model of the scans (DSCB + 10% wrong pairs, sigma(m) = 4 MeV + 0.9% m), fit windows m +- 20 sigma(m) "
        "clipped to the data, a cubic Chebyshev background; toys are drawn from the truth, not from a fit. Every number of every "
        f"figure is in the JSON file with the figure's name; everything is in `{JSON_NAME}`. The settings of this run:",
        "",
        "```json",
        json.dumps(s.to_json(), indent=1),
        "```",
        "",
    ]


def _check_section(r: CheckResult) -> list[str]:
    lines = [f"## {r.title}", "", f"**{r.verdict}** ({r.seconds:.0f} s). Criterion: {r.criterion}.", "", r.headline, ""]
    for header, rows in r.tables:
        lines += [markdown_table(header, rows), ""]
    for note in r.notes:
        lines += [note, ""]
    for fig in r.figures:
        lines += [f"![{r.title}: {Path(fig).stem}]({fig})", "", f"Numbers: [`{Path(fig).with_suffix('.json').name}`]"
                  f"({Path(fig).with_suffix('.json').name})", ""]
    return lines


def write_report(report: ValidationReport) -> tuple[Path, Path]:
    """Write ``report.md`` and ``validation.json`` into ``report.out_dir``; returns both paths."""
    out = report.out_dir
    out.mkdir(parents=True, exist_ok=True)
    summary = markdown_table(("check", "verdict", "main figures", "time / s"),
                             [(r.title, f"**{r.verdict}**", r.headline, f"{r.seconds:.0f}") for r in report.results])
    lines = _header(report) + ["## Summary", "", summary, ""]
    for r in report.results:
        lines += _check_section(r)
    lines += _setup_section(report)
    md = out / REPORT_NAME
    md.write_text("\n".join(lines).replace("\n\n\n", "\n\n"))
    js = write_json(out / JSON_NAME, report.to_json())
    logger.info("validation report: %s, %s", md, js)
    return md, js


def summary_lines(report: ValidationReport) -> list[str]:
    """One line per check (verdict, title, headline) and where the report is: what the commands print."""
    lines = [f"{r.verdict:4s}  {r.title}: {r.headline}" for r in report.results]
    verdict = "all checks passed" if report.passed else f"FAILED: {', '.join(report.failed)}"
    lines.append(f"{verdict} ({report.seconds:.0f} s); report: {report.report_path}, numbers: {report.json_path}")
    return lines

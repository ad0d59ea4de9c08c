"""``bumphunt validate``: the statistical validation report (``bumphunt.validation``)."""

from __future__ import annotations

import logging
import sys

import click

logger = logging.getLogger(__name__)

__all__ = ["validate"]


@click.command("validate")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), required=True,
              help="Report folder: report.md, validation.json, the figures and their numbers as JSON.")
@click.option("--quick", is_flag=True, help="The reduced run (a few minutes) instead of the full one (of the order of an hour on two cores).")
@click.option("--seed", type=int, default=1, show_default=True, help="Seed of the run; every check derives its own from it.")
@click.option("--checks", default="", metavar="A,B,...",
              help="Checks to run (default all): coverage, coverage_toys, lee, injection, references, spurious, kinfit.")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True, help="Processes for the background-only toy scans.")
def validate(out_dir: str, quick: bool, seed: int, checks: str, workers: int) -> None:
    """Run the statistical checks on toys of a known truth and write a report with PASS/FAIL per check.

    Coverage of the 95% CLs limits (asymptotic and toys), local Z under background
    only and the maximum local Z against Gross-Vitells, injection and recovery,
    agreement with zfit + hepstats and pyhf, spurious signal per background order,
    kinematic-fit pulls. Exits 1 when a check fails.
    """
    from bumphunt.validation.report import summary_lines
    from bumphunt.validation.runner import run_validation, select_checks
    from bumphunt.validation.settings import ValidationSettings

    try:
        names = select_checks([c for c in checks.split(",") if c.strip()])
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--checks") from None
    settings = (ValidationSettings.quick if quick else ValidationSettings.full)(workers=workers)
    parts = ["bumphunt validate", "--out", out_dir, *(["--quick"] if quick else []), "--seed", str(seed)]
    if checks:
        parts += ["--checks", checks]
    try:
        report = run_validation(out_dir, settings=settings, seed=seed, checks=names, command=" ".join(parts))
    except OSError as exc:
        raise click.ClickException(f"{out_dir}: cannot write the report: {exc}") from None
    for line in summary_lines(report):
        click.echo(line)
    if not report.passed:
        sys.exit(1)

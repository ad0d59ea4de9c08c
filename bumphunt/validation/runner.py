"""Run the validation checks and write the report: ``run_validation(out_dir, settings=..., seed=..., checks=...)``.

The checks, in the order of the report (``CHECKS``; ``--checks`` picks some):

- ``coverage``: asymptotic CLs coverage versus true signal strength (``coverage``);
- ``coverage_toys``: toy CLs coverage (``coverage``, ``fits.toy_limits``);
- ``lee``: local Z under background only and the maximum local Z against
  Gross-Vitells, from one set of toy scans (``local_z``; two results);
- ``injection``: injection and recovery (``injection``);
- ``references``: zfit + hepstats and pyhf agreement (``references``);
- ``spurious``: spurious signal per background order (``spurious``, information);
- ``kinfit``: kinematic-fit pulls (``kinfit_pulls``).

Every check draws its random numbers from its own seed derived from the run's
seed and its name (``settings.check_seed``), so a check gives the same
numbers whichever other checks run. A check that raises is reported as FAIL
with its error (the traceback goes to the log) and the others still run.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from .report import ValidationReport, write_report
from .settings import CheckResult, ValidationSettings, check_seed
from .spectrum import ReferenceSpectrum

logger = logging.getLogger(__name__)

__all__ = ["CHECKS", "ALIASES", "run_validation", "select_checks"]

Runner = Callable[[ReferenceSpectrum, ValidationSettings, int, Path], Sequence[CheckResult]]


def _coverage(spec: ReferenceSpectrum, s: ValidationSettings, seed: int, out: Path) -> Sequence[CheckResult]:
    from .coverage import asymptotic_coverage

    return (asymptotic_coverage(spec, s, seed=seed, out_dir=out),)


def _coverage_toys(spec: ReferenceSpectrum, s: ValidationSettings, seed: int, out: Path) -> Sequence[CheckResult]:
    from .coverage import toy_coverage

    return (toy_coverage(spec, s, seed=seed, out_dir=out),)


def _lee(spec: ReferenceSpectrum, s: ValidationSettings, seed: int, out: Path) -> Sequence[CheckResult]:
    from .local_z import lee_checks

    return lee_checks(spec, s, seed=seed, out_dir=out)


def _injection(spec: ReferenceSpectrum, s: ValidationSettings, seed: int, out: Path) -> Sequence[CheckResult]:
    from .injection import injection_check

    return (injection_check(spec, s, seed=seed, out_dir=out),)


def _references(spec: ReferenceSpectrum, s: ValidationSettings, seed: int, out: Path) -> Sequence[CheckResult]:
    from .references import reference_check

    return (reference_check(spec, s, seed=seed, out_dir=out),)


def _spurious(spec: ReferenceSpectrum, s: ValidationSettings, seed: int, out: Path) -> Sequence[CheckResult]:
    from .spurious import spurious_check

    return (spurious_check(spec, s, seed=seed, out_dir=out),)


def _kinfit(spec: ReferenceSpectrum, s: ValidationSettings, seed: int, out: Path) -> Sequence[CheckResult]:
    from .kinfit_pulls import kinfit_check

    return (kinfit_check(s, seed=seed, out_dir=out),)


#: check name -> (title for errors, runner), in report order
CHECKS: dict[str, tuple[str, Runner]] = {
    "coverage": ("Coverage of the asymptotic 95% CLs limits", _coverage),
    "coverage_toys": ("Coverage of the toy 95% CLs limits", _coverage_toys),
    "lee": ("Local Z under background only and Gross-Vitells", _lee),
    "injection": ("Injection and recovery", _injection),
    "references": ("Agreement with zfit + hepstats and pyhf", _references),
    "spurious": ("Spurious signal versus mass per background order", _spurious),
    "kinfit": ("Kinematic-fit pulls", _kinfit),
}
#: other names accepted by ``select_checks``
ALIASES = {"local_z": "lee", "gross_vitells": "lee", "gv": "lee", "zfit": "references", "pyhf": "references", "toys": "coverage_toys",
           "spurious_signal": "spurious", "kinfit_pulls": "kinfit"}


def select_checks(names: Sequence[str] | None) -> list[str]:
    """The check names to run, in report order (all when ``names`` is None or empty).

    Raises
    ------
    ValueError
        An unknown name (the message lists the known ones).
    """
    if not names:
        return list(CHECKS)
    wanted = set()
    for n in names:
        key = ALIASES.get(n.strip(), n.strip())
        if key not in CHECKS:
            raise ValueError(f"unknown check {n!r}; choose from {', '.join(CHECKS)}")
        wanted.add(key)
    return [n for n in CHECKS if n in wanted]


def run_validation(
    out_dir: str | Path,
    *,
    settings: ValidationSettings | None = None,
    seed: int = 1,
    checks: Sequence[str] | None = None,
    command: str = "",
) -> ValidationReport:
    """Run the checks and write ``report.md``, ``validation.json`` and the figures into ``out_dir``.

    Parameters
    ----------
    out_dir : path
        Report folder (created).
    settings : ValidationSettings, optional
        Sizes of the checks (default ``ValidationSettings.quick()``).
    seed : int
        Seed of the run; each check derives its own from it.
    checks : sequence of str, optional
        Names from ``CHECKS`` (or ``ALIASES``); default all.
    command : str
        The command line, written into the report.

    Returns
    -------
    ValidationReport
    """
    from .provenance import load_average, provenance

    settings = settings or ValidationSettings.quick()
    names = select_checks(checks)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    prov = provenance()
    prov["load_before"] = load_average()
    spec = ReferenceSpectrum(n=settings.n_candidates)
    t0 = time.perf_counter()
    results: list[CheckResult] = []
    for name in names:
        title, run = CHECKS[name]
        logger.info("validation: %s ...", title)
        t = time.perf_counter()
        try:
            got = list(run(spec, settings, check_seed(seed, name), out))
        except Exception as exc:  # a broken check is a FAIL in the report, not a lost run
            logger.exception("validation check %s failed with an error", name)
            got = [CheckResult(name=name, title=title, passed=False, criterion="the check must run", headline=f"error: {type(exc).__name__}: {exc}",
                               seconds=time.perf_counter() - t)]
        for r in got:
            logger.info("validation: %s %s (%.0f s): %s", r.verdict, r.title, r.seconds, r.headline)
        results.extend(got)
    prov["load_after"] = load_average()
    report = ValidationReport(results=tuple(results), settings=settings, seed=seed, seconds=time.perf_counter() - t0, provenance=prov,
                              command=command, out_dir=out)
    write_report(report)
    return report

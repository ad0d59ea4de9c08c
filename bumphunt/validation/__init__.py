"""Statistical validation of bumphunt at scale: one seeded command that writes a report anyone can regenerate.

``bumphunt validate --out DIR [--quick] [--seed N]`` (or ``python -m
bumphunt.validation``, or ``run_validation``) runs the checks below on toys
of a known truth and writes ``DIR/report.md`` with PNG figures next to it,
the numbers of every figure as JSON with the figure's name, and everything
in ``DIR/validation.json``. Each check prints PASS or FAIL against the
acceptance of issue 15 (information-only checks print INFO):

- coverage of the 95% CLs limits versus the true signal strength at several
  masses, asymptotic and with toys;
- the local Z distribution under background only across the scan (mean,
  width) and the maximum local Z against the Gross-Vitells prediction;
- injection and recovery across the mass range (bias, pull width, linearity);
- agreement with zfit + hepstats and with pyhf on identical models;
- spurious signal versus mass for each background order;
- the kinematic-fit pulls.

Modules: ``runner`` (``run_validation``, the list of checks), ``settings``
(quick and full sizes, thresholds, ``CheckResult``), ``spectrum`` (the known
truth), one module per check (``coverage``, ``local_z``, ``injection``,
``references``, ``spurious``, ``kinfit_pulls``), ``figures``, ``report``,
``jsonio`` and ``provenance`` (machine, versions, git state; also used by
``benchmarks/run_all.py``). Importing the package imports none of them.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__all__ = ["run_validation", "ValidationSettings", "ValidationReport", "CheckResult", "CHECKS"]

_LAZY = {
    "run_validation": ("bumphunt.validation.runner", "run_validation"),
    "CHECKS": ("bumphunt.validation.runner", "CHECKS"),
    "ValidationSettings": ("bumphunt.validation.settings", "ValidationSettings"),
    "CheckResult": ("bumphunt.validation.settings", "CheckResult"),
    "ValidationReport": ("bumphunt.validation.report", "ValidationReport"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        mod, attr = _LAZY[name]
        return getattr(import_module(mod), attr)
    raise AttributeError(f"module 'bumphunt.validation' has no attribute {name!r}")

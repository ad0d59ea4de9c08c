"""Sizes of the validation checks (``ValidationSettings``), their acceptance thresholds, and a check's result (``CheckResult``).

``ValidationSettings.quick()`` is the reduced run (a few minutes on two
cores, the ``slow`` test), ``ValidationSettings.full()`` the run the README
quotes. The thresholds are those of issue 15's acceptance where it gives one
(coverage, local Z, injection bias, reference agreement); the others (pull
width and linearity of the injection, the Gross-Vitells comparison, the
kinematic-fit pulls) are stated next to their constants.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "ValidationSettings",
    "CheckResult",
    "check_seed",
    "COVERAGE_CL",
    "COVERAGE_N_SE",
    "LOCAL_Z_MEAN_MAX",
    "LOCAL_Z_WIDTH_TOL",
    "GV_Z_TOL",
    "GV_MIN_EXCEEDING",
    "INJECTION_BIAS_MAX",
    "INJECTION_WIDTH_TOL",
    "INJECTION_SLOPE_TOL",
    "REFERENCE_REL_TOL",
    "KINFIT_PULL_TOL",
    "KINFIT_CHI2_TOL",
]

#: confidence level of the limits whose coverage is measured
COVERAGE_CL = 0.95
#: coverage passes when ``coverage >= COVERAGE_CL - COVERAGE_N_SE x binomial error`` ("within toy statistics"; 3, not 2,
#: because every mass and strength is a separate test: at exact 95% coverage a 2-error rule fails one point in 44)
COVERAGE_N_SE = 3.0
#: |mean local Z| under background only, pooled over the scan and the toys (acceptance)
LOCAL_Z_MEAN_MAX = 0.05
#: |width of local Z - 1| (acceptance)
LOCAL_Z_WIDTH_TOL = 0.05
#: Gross-Vitells against the toys' maximum local Z: |Z_global(GV) - Z_global(toys)| at each tested level (this package's rule;
#: GV is an asymptotic bound and overestimates p_global somewhat at moderate Z), and GV must not be below the toys beyond 2 errors
GV_Z_TOL = 0.25
#: a level is tested only when at least this many toys exceed it
GV_MIN_EXCEEDING = 10
#: |bias| / mean statistical error of the fitted yield (acceptance)
INJECTION_BIAS_MAX = 0.1
#: |pull width - 1| of the injection (as the injection study's slow test)
INJECTION_WIDTH_TOL = 0.1
#: |linearity slope - 1|
INJECTION_SLOPE_TOL = 0.05
#: relative agreement of limits with zfit + hepstats and pyhf (acceptance)
REFERENCE_REL_TOL = 0.01
#: |mean| and |width - 1| of every kinematic-fit pull (as the kinematic fit's tests)
KINFIT_PULL_TOL = 0.05
#: |mean chi2 - ndf| of the kinematic fit
KINFIT_CHI2_TOL = 0.1


@dataclass(frozen=True)
class ValidationSettings:
    """How large each check is (masses in GeV, yields in signal events).

    Attributes
    ----------
    mode : str
        ``"quick"`` or ``"full"`` (written into the report).
    n_candidates : int
        Candidates of the reference spectrum (exp(-0.35 m / GeV) on [0.1, 10] GeV).
    coverage_masses, coverage_strengths, coverage_toys
        Asymptotic CLs coverage: masses, true signal strengths as multiples of the median expected limit, toys per point.
    toy_coverage_masses, toy_coverage_strengths, toy_coverage_datasets, toy_coverage_toys
        Toy CLs coverage (``fits.toy_limits``): pseudo-data sets per point and toys per limit.
    lee_toys, lee_step_sigma_fraction, lee_levels
        Background-only toy scans: number, grid step (fraction of sigma(m)), and the local-Z levels at which the
        Gross-Vitells prediction is compared with the toys.
    injection_masses, injection_nsig, injection_toys
        Injection and recovery (``scans.injection.injection_study``).
    reference_masses, reference_signal
        Hypotheses compared with zfit + hepstats and pyhf, and the signal events added to the spectrum at each.
    zfit_single : int
        Hypotheses also run through the one-hypothesis zfit path (hepstats with its binned Asimov set; slower).
    pyhf_bins : int
        Bins of the exported workspace.
    spurious_masses, spurious_sample, spurious_orders
        Spurious signal: number of masses, size of the signal-free sample, background orders.
    kinfit_events, kinfit_masses
        Kinematic-fit pulls: events per sample; ALP masses (None: e+e- -> ggg).
    workers : int
        Processes for the background-only toy scans.
    """

    mode: str = "quick"
    n_candidates: int = 50_000
    coverage_masses: tuple[float, ...] = (0.5, 4.0, 8.5)
    coverage_strengths: tuple[float, ...] = (1.0, 2.0, 4.0)
    coverage_toys: int = 1000
    toy_coverage_masses: tuple[float, ...] = (2.0,)
    toy_coverage_strengths: tuple[float, ...] = (2.0,)
    toy_coverage_datasets: int = 50
    toy_coverage_toys: int = 200
    lee_toys: int = 200
    lee_step_sigma_fraction: float = 0.5
    lee_levels: tuple[float, ...] = (3.0, 3.5)
    injection_masses: tuple[float, ...] = (0.5, 4.0, 8.5)
    injection_nsig: tuple[float, ...] = (0.0, 80.0)
    injection_toys: int = 1000
    reference_masses: tuple[float, ...] = (1.0, 5.0)
    reference_signal: tuple[float, ...] = (30.0, 0.0)
    zfit_single: int = 0
    pyhf_bins: int = 2000
    spurious_masses: int = 20
    spurious_sample: int = 2_000_000
    spurious_orders: tuple[int, ...] = (0, 1, 2, 3, 4)
    kinfit_events: int = 20_000
    kinfit_masses: tuple[float | None, ...] = (None, 2.0)
    workers: int = 1

    @classmethod
    def quick(cls, **changes: Any) -> ValidationSettings:
        """The reduced run (a few minutes)."""
        return cls(**changes)

    @classmethod
    def full(cls, **changes: Any) -> ValidationSettings:
        """The full run (of the order of an hour on two shared cores)."""
        values: dict[str, Any] = dict(
            mode="full", coverage_masses=(0.5, 2.0, 5.0, 8.5), coverage_strengths=(0.5, 1.0, 2.0, 4.0), coverage_toys=4000,
            toy_coverage_masses=(1.0, 6.0), toy_coverage_strengths=(1.0, 2.0), toy_coverage_datasets=100, toy_coverage_toys=300,
            lee_toys=2000, lee_levels=(3.0, 3.5, 4.0), injection_masses=(0.4, 1.0, 2.5, 4.5, 7.0, 8.8), injection_nsig=(0.0, 40.0, 120.0),
            injection_toys=1000, reference_masses=(0.5, 1.0, 3.0, 5.0, 8.0), reference_signal=(0.0, 30.0, 60.0, 0.0, 20.0), zfit_single=2,
            spurious_masses=60, spurious_sample=10_000_000, spurious_orders=(0, 1, 2, 3, 4, 5), kinfit_events=100_000,
            kinfit_masses=(None, 0.5, 2.0, 8.0),
        )
        values.update(changes)
        return cls(**values)

    def to_json(self) -> dict[str, Any]:
        """The settings as JSON-ready numbers and lists."""
        from dataclasses import asdict

        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check.

    Attributes
    ----------
    name : str
        Short name (``coverage``, ``local_z``, ...), also the stem of its files.
    title : str
    passed : bool or None
        PASS / FAIL against the criterion; None for a check without one (information only).
    criterion : str
        The rule, in words, with its numbers.
    headline : str
        One line of the main figures (the report's summary table, the command's output).
    tables : tuple of (header, rows)
        Markdown tables: a header tuple and row tuples of already formatted cells.
    figures : tuple of str
        PNG files (names relative to the report folder); each has a JSON file of its numbers with the same stem.
    data : dict
        All numbers of the check (JSON-ready), written to ``validation.json``.
    notes : tuple of str
        Remarks printed under the check in the report.
    seconds : float
        Wall-clock time of the check (s).
    """

    name: str
    title: str
    passed: bool | None
    criterion: str
    headline: str
    tables: tuple[tuple[tuple[str, ...], tuple[tuple[str, ...], ...]], ...] = ()
    figures: tuple[str, ...] = ()
    data: dict[str, Any] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    seconds: float = 0.0

    @property
    def verdict(self) -> str:
        """``PASS``, ``FAIL`` or ``INFO``."""
        return "INFO" if self.passed is None else ("PASS" if self.passed else "FAIL")


def check_seed(seed: int, name: str) -> int:
    """The seed of check ``name`` under the run's ``seed``: independent streams, stable whichever checks run."""
    import zlib

    ss = np.random.SeedSequence(entropy=int(seed), spawn_key=(zlib.crc32(name.encode()),))
    return int(ss.generate_state(1, dtype=np.uint32)[0])

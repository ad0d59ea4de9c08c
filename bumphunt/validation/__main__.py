"""``python -m bumphunt.validation --out DIR [--quick] [--seed N] [--checks A,B] [--workers N]``: the same as ``bumphunt validate``."""

from __future__ import annotations

import argparse
import logging
import os
import sys


def main(argv: list[str] | None = None) -> int:
    """Run the validation; exit status 0 when no check failed, 1 otherwise, 2 for bad arguments."""
    parser = argparse.ArgumentParser(prog="python -m bumphunt.validation", description="Statistical validation report of bumphunt.")
    parser.add_argument("--out", required=True, help="report folder (report.md, validation.json, figures)")
    parser.add_argument("--quick", action="store_true", help="the reduced run (a few minutes)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the run (default 1)")
    parser.add_argument("--checks", default="", help="comma-separated checks to run (default all)")
    parser.add_argument("--workers", type=int, default=1, help="processes for the background-only toy scans (default 1)")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    args = parser.parse_args(argv)
    os.environ.setdefault("MPLBACKEND", "Agg")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("ZFIT_DISABLE_TF_WARNINGS", "1")
    from signal_models._common.tensorflow_import import quiet_tensorflow_import

    quiet_tensorflow_import()  # TensorFlow's import-time lines (TensorFlow >= 2.19 prints them at any TF_CPP_MIN_LOG_LEVEL)
    logging.basicConfig(level=logging.WARNING - 10 * min(args.verbose, 2), format="%(levelname)s %(name)s: %(message)s")

    from .report import summary_lines
    from .runner import run_validation, select_checks
    from .settings import ValidationSettings

    try:
        checks = select_checks([c for c in args.checks.split(",") if c.strip()])
    except ValueError as exc:
        parser.error(str(exc))
    settings = (ValidationSettings.quick if args.quick else ValidationSettings.full)(workers=max(1, args.workers))
    command = " ".join(["python -m bumphunt.validation", *(argv if argv is not None else sys.argv[1:])])
    report = run_validation(args.out, settings=settings, seed=args.seed, checks=checks, command=command)
    print("\n".join(summary_lines(report)))
    return 0 if report.passed else 1


if __name__ == "__main__":
    sys.exit(main())

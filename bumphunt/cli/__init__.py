"""The ``bumphunt`` command line.

Each subcommand lives in its own module under ``bumphunt.cli`` and is imported
only when it is run (or when ``--help`` lists it), so ``bumphunt --help`` stays
fast and never imports TensorFlow: subcommand modules import heavy libraries
inside their command functions.
"""

from __future__ import annotations

import logging
import os
from importlib import import_module

import click

from signal_models._common.version import __version__

#: subcommand name -> "module:attribute" of its click command
SUBCOMMANDS: dict[str, str] = {
    "generate": "bumphunt.cli.generate:generate",
    "preselect": "bumphunt.cli.preselect:preselect",
    "kinfit": "bumphunt.cli.kinfit:kinfit",
    "calibrate-photons": "bumphunt.cli.kinfit:calibrate_photons",
    "selector": "bumphunt.cli.selector:selector",
    "signal-model": "bumphunt.cli.signal_model:signal_model",
    "fit": "bumphunt.cli.fit:fit",
    "export-pyhf": "bumphunt.cli.fit:export_pyhf",
    "scan": "bumphunt.cli.scan:scan",
    "plot": "bumphunt.cli.scan:plot",
    "demo": "bumphunt.cli.demo:demo",
    "export-hepdata": "bumphunt.cli.export:export_hepdata",
    "inject": "bumphunt.cli.inject:inject",
    "report": "bumphunt.cli.report:report",
    "project": "bumphunt.cli.project:project",
    "recast": "bumphunt.cli.recast:recast",
    "validate": "bumphunt.cli.validate:validate",
}


class LazyGroup(click.Group):
    """A click group that imports subcommands on demand and skips absent ones."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(name for name in SUBCOMMANDS if self._load(name) is not None)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return self._load(cmd_name)

    @staticmethod
    def _load(name: str) -> click.Command | None:
        target = SUBCOMMANDS.get(name)
        if target is None:
            return None
        module_name, attr = target.split(":")
        try:
            module = import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:
                return None  # subcommand not available in this build
            raise
        return getattr(module, attr, None)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="bumphunt")
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
def cli(verbose: int) -> None:
    """bumphunt: search for a narrow diphoton resonance (e+e- -> gamma a, a -> gamma gamma).

    Units everywhere: GeV, rad, pb for cross-sections, fb^-1 for luminosity.
    Run `bumphunt demo --out DIR` to see the whole chain on built-in toy data.
    """
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("bumphunt").setLevel(level)
    if verbose < 2:
        # third-party chatter (font fallbacks, TensorFlow start-up banners) only with -vv
        logging.getLogger("matplotlib").setLevel(logging.ERROR)
        # 3 also hides TensorFlow's C++ errors, e.g. the failed CUDA initialisation on machines without a GPU
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3" if verbose == 0 else "2")
        os.environ.setdefault("ZFIT_DISABLE_TF_WARNINGS", "1")
    # TensorFlow >= 2.19 ignores that level for the lines it prints while being imported: silence them at level 3
    from signal_models._common.tensorflow_import import quiet_tensorflow_import

    quiet_tensorflow_import()


def _verbose(argv: list[str]) -> bool:
    """Whether the command line asks for -v (before the subcommand or anywhere as --verbose)."""
    for arg in argv:
        if arg == "--verbose" or (arg.startswith("-v") and set(arg[1:]) == {"v"}):
            return True
    return False


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point.

    Errors the commands can name end in one line (click). Anything unexpected
    prints a short message with the path of a log holding the traceback; with
    ``-v`` the traceback is printed instead.
    """
    import sys
    import tempfile
    import traceback

    args = list(sys.argv[1:] if argv is None else argv)
    try:
        cli.main(args=args, prog_name="bumphunt")
    except Exception as exc:  # the last line of defence: no traceback for a user unless asked for
        if _verbose(args):
            raise
        fd, path = tempfile.mkstemp(prefix="bumphunt-error-", suffix=".log")
        with os.fdopen(fd, "w") as fh:
            fh.write(f"bumphunt {__version__}: {' '.join(args)}\n")
            traceback.print_exc(file=fh)
        click.echo(f"Error: unexpected {type(exc).__name__}: {exc}\n(this is a bug in bumphunt; the traceback is in {path}, "
                   f"or run again with -v to print it)", err=True)
        sys.exit(2)

"""``bumphunt signal-model build|plot``: calibrate the signal shape per generated mass and interpolate.

Heavy libraries (numpy readers, zfit/TensorFlow, matplotlib) are imported
inside the commands so ``bumphunt --help`` stays light.
"""

from __future__ import annotations

import logging
from pathlib import Path

import click

logger = logging.getLogger(__name__)


@click.group("signal-model")
def signal_model() -> None:
    """Signal model: DSCB + Chebyshev shapes fitted per generated mass (zfit) and interpolated in m_a."""


@signal_model.command("build")
@click.option("--signal", "signal", multiple=True, required=True, type=click.Path(exists=True, dir_okay=False),
              help="Signal toy/ntuple ROOT files (repeatable); raw or pre-selected. Their metadata give n_generated per mass.")
@click.option("--selection", type=click.Path(exists=True), default=None, help="Trained Punzi-net selector directory [default: no selection].")
@click.option("--working-point", type=click.FloatRange(0.0, 1.0), default=None, help="Selector score threshold [default: the selector's own working point].")
@click.option("--kinfit/--no-kinfit", default=True, show_default=True, help="Run the 4C kinematic fit when the files do not carry fitted photons.")
@click.option("--holdout", multiple=True, type=float, help="Generated mass (GeV) to fit but keep out of the interpolation (closure check); repeatable.")
@click.option("--float-n", is_flag=True, help="Float the tail exponents n_l, n_r per mass [default: fixed from a pre-pass].")
@click.option("--n-l", type=click.FloatRange(min=0.0, min_open=True), default=None, help="Fix n_l to this value [default: pre-pass median].")
@click.option("--n-r", type=click.FloatRange(min=0.0, min_open=True), default=None, help="Fix n_r to this value [default: pre-pass median].")
@click.option("--half-width", type=click.FloatRange(min=0.0, min_open=True), default=20.0, show_default=True, help="Fit range and Chebyshev domain, in units of the core sigma.")
@click.option("--min-events", type=click.IntRange(min=0), default=100, show_default=True, help="Skip masses with fewer truth-matched candidates.")
@click.option("--out", "out", type=click.Path(dir_okay=False), default="signal_model.json", show_default=True, help="Output JSON file.")
def build(signal: tuple[str, ...], selection: str | None, working_point: float | None, kinfit: bool, holdout: tuple[float, ...], float_n: bool,
          n_l: float | None, n_r: float | None, half_width: float, min_events: int, out: str) -> None:
    """Fit the signal MC at every generated mass with zfit and write the interpolated signal model.

    Masses in GeV. The efficiency is truth-matched candidates in the fit
    window divided by the generated events of that mass.
    """
    from signal_models import ShapeError
    from signal_models._common.progress import progress

    from ..chain import signal_model_from_files
    from ..errors import BumphuntError

    if working_point is not None and selection is None:
        raise click.ClickException("--working-point needs --selection MODEL")
    fixed = () if float_n else ("n_l", "n_r")
    fixed_values = {k: v for k, v in (("n_l", n_l), ("n_r", n_r)) if v is not None and k in fixed}
    try:
        model = signal_model_from_files(
            signal, kinematic_fit=kinfit, selector=selection, working_point=working_point, holdout=holdout,
            n_fixed=fixed, fixed_values=fixed_values, half_width=half_width, min_events=min_events,
            progress=lambda it: progress(it, description="per-mass fits"),
        )
        path = model.save(out)
    except (BumphuntError, ShapeError, ValueError, OSError) as exc:
        raise click.ClickException(str(exc)) from exc
    n_bad = sum(not f.ok for f in model.fits)
    lo, hi = model.mass_range
    click.echo(f"signal model with {len(model.used)} masses in [{lo:.4g}, {hi:.4g}] GeV written to {path}"
               + (f" ({n_bad} mass(es) skipped or failed, see the log)" if n_bad else ""))


@signal_model.command("plot")
@click.argument("model_path", metavar="MODEL", type=click.Path(exists=True, dir_okay=False))
@click.option("--out", "out", type=click.Path(file_okay=False), default="signal_model_plots", show_default=True, help="Output directory for the PNG files.")
@click.option("--max-mass-plots", type=click.IntRange(min=0), default=12, show_default=True, help="At most this many per-mass fit overlays.")
def plot(model_path: str, out: str, max_mass_plots: int) -> None:
    """Plot each parameter vs mass (points, interpolation, band), the efficiency, and per-mass fits with pulls."""
    import matplotlib

    matplotlib.use("Agg")
    from signal_models import SignalModel, SignalModelFormatError
    from signal_models.plots import plot_all

    try:
        model = SignalModel.load(model_path)
        paths = plot_all(model, out, max_mass_plots=max_mass_plots)
    except SignalModelFormatError as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:
        raise click.ClickException(f"{out}: cannot write the plots: {exc}") from None
    click.echo(f"{len(paths)} plots written to {Path(out)}")

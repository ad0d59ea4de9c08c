"""``bumphunt signal-model build|plot``: calibrate the signal shape per generated mass and interpolate.

Heavy libraries (numpy readers, zfit/TensorFlow, matplotlib) are imported
inside the commands so ``bumphunt --help`` stays light.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import click

logger = logging.getLogger(__name__)


@click.group("signal-model")
def signal_model() -> None:
    """Signal model: DSCB + Chebyshev shapes fitted per generated mass (zfit) and interpolated in m_a."""


def _signal_candidates(paths: tuple[str, ...], *, selection: str | None, working_point: float | None, kinfit: bool) -> tuple[dict[str, Any], dict[float, int], dict[str, Any]]:
    """Read signal files -> (candidates after the selection, n_generated per mass, selection description)."""
    import numpy as np

    from ..events.candidates import diphoton_candidates
    from ..errors import InputError
    from ..selection.core import load_samples

    try:
        events, n_gen, _ = load_samples(list(paths))
    except (InputError, OSError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    proc = np.asarray(events.get("process"))
    signal = proc == 0
    if not signal.any():
        raise click.ClickException(f"no signal events (process 0) in {list(paths)}")
    events = {k: (np.asarray(v)[signal] if np.ndim(v) and len(v) == len(proc) else v) for k, v in events.items()}
    if kinfit and "fit_E" not in events:
        from ..kinfit.fitter import apply_to_events

        logger.info("running the 4C kinematic fit on %d events", len(events["E"]))
        events = apply_to_events(events)
    cands = diphoton_candidates(events)
    described: dict[str, Any] = {"inputs": [str(p) for p in paths], "kinematic_fit": "fit_E" in events}
    if selection is not None:
        from ..selection.core import apply, load_selector

        try:
            selector = load_selector(selection)
        except Exception as exc:  # noqa: BLE001 - any failure to load is a user error here
            raise click.ClickException(f"--selection {selection}: cannot load the selector: {exc}") from exc
        score = np.asarray(apply(selector, cands, events))
        threshold = float(working_point) if working_point is not None else float(selector.threshold)
        keep = score >= threshold
        cands = {k: np.asarray(v)[keep] for k, v in cands.items()}
        described.update({"selector": str(selection), "working_point": threshold, "score": "punzi_net"})
    elif working_point is not None:
        raise click.ClickException("--working-point needs --selection MODEL")
    else:
        described["selector"] = None
    return cands, n_gen, described


@signal_model.command("build")
@click.option("--signal", "signal", multiple=True, required=True, type=click.Path(exists=True, dir_okay=False),
              help="Signal toy/ntuple ROOT files (repeatable); raw or pre-selected. Their metadata give n_generated per mass.")
@click.option("--selection", type=click.Path(exists=True), default=None, help="Trained Punzi-net selector directory [default: no selection].")
@click.option("--working-point", type=float, default=None, help="Selector score threshold [default: the selector's own working point].")
@click.option("--kinfit/--no-kinfit", default=True, show_default=True, help="Run the 4C kinematic fit when the files do not carry fitted photons.")
@click.option("--holdout", multiple=True, type=float, help="Generated mass (GeV) to fit but keep out of the interpolation (closure check); repeatable.")
@click.option("--float-n", is_flag=True, help="Float the tail exponents n_l, n_r per mass [default: fixed from a pre-pass].")
@click.option("--n-l", type=float, default=None, help="Fix n_l to this value [default: pre-pass median].")
@click.option("--n-r", type=float, default=None, help="Fix n_r to this value [default: pre-pass median].")
@click.option("--half-width", type=float, default=20.0, show_default=True, help="Fit range and Chebyshev domain, in units of the core sigma.")
@click.option("--min-events", type=int, default=100, show_default=True, help="Skip masses with fewer truth-matched candidates.")
@click.option("--out", "out", type=click.Path(dir_okay=False), default="signal_model.json", show_default=True, help="Output JSON file.")
def build(signal: tuple[str, ...], selection: str | None, working_point: float | None, kinfit: bool, holdout: tuple[float, ...], float_n: bool,
          n_l: float | None, n_r: float | None, half_width: float, min_events: int, out: str) -> None:
    """Fit the signal MC at every generated mass with zfit and write the interpolated signal model.

    Masses in GeV. The efficiency is truth-matched candidates in the fit
    window divided by the generated events of that mass.
    """
    import numpy as np

    from signal_models import ShapeError, build_signal_model

    from signal_models._common.progress import progress

    cands, n_gen, described = _signal_candidates(signal, selection=selection, working_point=working_point, kinfit=kinfit)
    mc_ma = np.round(np.asarray(cands["mc_ma"], dtype=float), 6)
    n_generated = {round(float(k), 6): int(v) for k, v in n_gen.items()}
    fixed = () if float_n else ("n_l", "n_r")
    fixed_values = {k: v for k, v in (("n_l", n_l), ("n_r", n_r)) if v is not None and k in fixed}
    try:
        model = build_signal_model(
            np.asarray(cands["mgg"], dtype=float), np.asarray(cands["truth_match"], dtype=bool), mc_ma,
            n_generated=n_generated, weights=np.asarray(cands["weight"], dtype=float), holdout=holdout,
            n_fixed=fixed, fixed_values=fixed_values, half_width=half_width, min_events=min_events,
            selection=described, progress=lambda it: progress(it, total=len(np.unique(mc_ma)), description="per-mass fits"),
        )
        path = model.save(out)
    except (ShapeError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    n_bad = sum(not f.ok for f in model.fits)
    lo, hi = model.mass_range
    click.echo(f"signal model with {len(model.used)} masses in [{lo:.4g}, {hi:.4g}] GeV written to {path}"
               + (f" ({n_bad} mass(es) skipped or failed, see the log)" if n_bad else ""))


@signal_model.command("plot")
@click.argument("model_path", metavar="MODEL", type=click.Path(exists=True, dir_okay=False))
@click.option("--out", "out", type=click.Path(file_okay=False), default="signal_model_plots", show_default=True, help="Output directory for the PNG files.")
@click.option("--max-mass-plots", type=int, default=12, show_default=True, help="At most this many per-mass fit overlays.")
def plot(model_path: str, out: str, max_mass_plots: int) -> None:
    """Plot each parameter vs mass (points, interpolation, band), the efficiency, and per-mass fits with pulls."""
    import matplotlib

    matplotlib.use("Agg")
    from signal_models import SignalModel, SignalModelFormatError
    from signal_models.plots import plot_all

    try:
        model = SignalModel.load(model_path)
    except SignalModelFormatError as exc:
        raise click.ClickException(str(exc)) from exc
    paths = plot_all(model, out, max_mass_plots=max_mass_plots)
    click.echo(f"{len(paths)} plots written to {Path(out)}")

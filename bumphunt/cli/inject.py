"""``bumphunt inject``: injection and recovery study on the scan's model (bias, pull mean and width, linearity)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import click

from ..errors import BumphuntError

logger = logging.getLogger(__name__)

__all__ = ["inject"]


def _floats(text: str, *, option: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise click.BadParameter(f"expected comma-separated numbers, got {text!r}", param_hint=option) from None
    if not values:
        raise click.BadParameter("give at least one value", param_hint=option)
    return values


@click.command("inject")
@click.argument("config", required=False, type=click.Path(dir_okay=False))
@click.option("--masses", required=True, metavar="M1,M2,...", help="Injection masses in GeV, inside the scan range of CONFIG.")
@click.option("--nsig", default="0,50", show_default=True, metavar="N1,N2,...", help="Injected mean signal yields (events in the window).")
@click.option("--toys", type=click.IntRange(min=2), default=200, show_default=True, help="Toys per mass and yield.")
@click.option("--seed", type=int, default=1, show_default=True, help="Seed of the toys (results do not depend on anything else).")
@click.option("--input", "inputs", multiple=True, type=click.Path(dir_okay=False),
              help="Candidate file(s) the background model is fitted to; overrides inputs.files of CONFIG.")
@click.option("--signal-model", type=click.Path(dir_okay=False), default=None, help="SignalModel JSON; overrides signal_model of CONFIG.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), required=True, help="Directory for injection.json and the plots.")
def inject(config: str | None, masses: str, nsig: str, toys: int, seed: int, inputs: tuple[str, ...], signal_model: str | None,
           out_dir: str) -> None:
    """Inject signal into toys drawn from the scan's background model and fit it back.

    The background is the smooth exp(Chebyshev) fit of the candidates (as for the
    look-elsewhere toys); each toy gets Poisson(N) signal candidates from the signal
    model at each mass and is fitted with the scan's window and background order.
    Prints and writes per mass and yield: mean fitted yield, bias / statistical error,
    pull mean and width; per mass the linearity slope.
    """
    import scans
    from scans.injection import injection_study, plot_injection
    from scans.run import load_signal_model, read_candidates, resolve_inputs

    try:
        cfg = scans.load_scan_config(config)
        base = Path(config).resolve().parent if config else Path.cwd()
        paths = [Path(p) for p in inputs] if inputs else resolve_inputs(cfg, base)
        if not paths:
            raise click.UsageError("no input files: give --input FILE or inputs.files in CONFIG")
        if cfg["inputs"]["kind"] != "candidates":
            raise click.UsageError("inject: give candidate files (inputs.kind: candidates), e.g. the candidates.npz a scan or the demo wrote")
        for p in paths:
            if not p.is_file():
                raise click.ClickException(f"{p}: input file not found")
        sel = cfg["inputs"]["selection"]
        mgg = read_candidates(paths, tree=cfg["inputs"]["tree"] or "candidates", branch=cfg["inputs"]["branch"], aliases=cfg["inputs"]["aliases"],
                              selection_branch=sel["branch"], working_point=sel["working_point"])
        if signal_model is not None:
            model = load_signal_model(Path(signal_model))
        else:
            sm = cfg["signal_model"]
            model = load_signal_model(None if sm is None else (Path(sm) if Path(sm).is_absolute() else base / sm), cfg["analytic_signal_model"])
        study = injection_study(mgg, model, config=cfg, masses=_floats(masses, option="--masses"), nsig=_floats(nsig, option="--nsig"),
                                n_toys=toys, seed=seed)
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "injection.json").write_text(json.dumps(study.to_json(), indent=1, allow_nan=True) + "\n")
        files = plot_injection(study, out)
    except click.ClickException:
        raise
    except (scans.ScanError, BumphuntError, ValueError, OSError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{'mass/GeV':>9} {'N_inj':>7} {'mean fit':>9} {'bias/err':>9} {'pull mean':>10} {'pull width':>11}")
    for i, m in enumerate(study.masses):
        for j, n in enumerate(study.nsig):
            click.echo(f"{m:9.4g} {n:7.4g} {study.mean_fit[i, j]:9.3f} {study.bias_over_error[i, j]:+9.3f} "
                       f"{study.pull_mean[i, j]:+7.3f}+-{study.pull_mean_err[i, j]:.3f} {study.pull_width[i, j]:7.3f}+-{study.pull_width_err[i, j]:.3f}")
    click.echo(f"linearity slope per mass: {', '.join(f'{s:.3f}' for s in study.slope)}")
    click.echo(f"injection study: {out / 'injection.json'}; plots: {', '.join(str(f) for f in files)}")

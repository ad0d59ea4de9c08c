"""``bumphunt demo``: the analysis chain on built-in toy data."""

from __future__ import annotations

import click

__all__ = ["demo"]


@click.command("demo")
@click.option("--out", "-o", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Output folder for the toy samples, intermediate files, plots and report.md.")
@click.option("--seed", default=1, show_default=True, type=int, help="Seed of the toy MC and every random step.")
@click.option("--lumi", "lumi_fb", default=None, type=click.FloatRange(min=0, min_open=True),
              help="Integrated luminosity of the toy samples in fb^-1 (default 0.1; 0.02 with --small).")
@click.option("--small", is_flag=True, help="Small samples (a few seconds), e.g. for a quick check.")
def demo(out_dir: str, seed: int, lumi_fb: float | None, small: bool) -> None:
    """Run the whole chain on toy MC and say where the results are.

    Chain: toy MC -> pre-selection -> 4C kinematic fit -> diphoton candidates
    -> M_gg plots -> Punzi-net selector (trained on a signal-mass grid
    0.2-9.6 GeV and the weighted toy backgrounds, demo-size training) ->
    signal model (DSCB + Chebyshev fitted per mass with zfit, interpolated)
    -> mass scan with CLs limits and look-elsewhere effect -> report.md.
    A few minutes with the defaults; --small takes well under a minute.
    """
    from signal_models import ShapeError

    from ..demo import run_demo
    from ..errors import BumphuntError

    try:
        products = run_demo(out_dir, seed=seed, lumi_fb=lumi_fb, small=small, on_step=lambda line: click.echo(line, err=True))
    except (BumphuntError, ShapeError) as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:
        raise click.ClickException(f"{out_dir}: {exc}") from None
    click.echo(f"Demo finished. Report: {products['report']}")
    for key, what in (("scan_result", "Scan result (JSON)"), ("scan_report", "Scan report (HTML)"), ("scan_points", "Scan points (CSV)"),
                      ("scan_config", "Scan configuration (repeat with: bumphunt scan CONFIG --out DIR)"),
                      ("selector_model", "Selector model"), ("signal_model", "Signal model (JSON)")):
        if key in products:
            click.echo(f"{what}: {products[key]}")
    plots = [str(p) for k, p in products.items() if k.startswith("plot_")]
    if plots:
        click.echo("Plots:\n  " + "\n  ".join(plots))
    click.echo(f"All outputs under {out_dir}")

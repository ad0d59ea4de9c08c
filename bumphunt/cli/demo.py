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

    Currently: toy MC -> pre-selection -> diphoton candidates -> M_gg plots
    and a markdown report (cut flow, candidate counts).
    """
    from ..demo import run_demo
    from ..errors import BumphuntError

    try:
        products = run_demo(out_dir, seed=seed, lumi_fb=lumi_fb, small=small)
    except BumphuntError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"Demo finished. Report: {products['report']}")
    plots = [str(p) for k, p in products.items() if k.startswith("plot_")]
    if plots:
        click.echo("Plots:\n  " + "\n  ".join(plots))
    click.echo(f"All outputs under {out_dir}")

"""``bumphunt selector train|apply``: the Punzi-net selection (one network for all ALP masses).

Thin: the work is done by ``bumphunt.selection.from_config.train_from_config``
and ``bumphunt.selection.apply_files.apply_to_files``, imported when a command
runs (so ``bumphunt --help`` does not import the selector).
"""

from __future__ import annotations

import logging

import click

logger = logging.getLogger(__name__)

__all__ = ["selector"]


@click.group("selector")
def selector() -> None:
    """Punzi-net selector: one network for all ALP masses, trained on the Punzi loss.

    Sensitivities are minimum detectable cross-sections sigma_min = S_min(B) / (eps L) in pb
    (Punzi, a = 5, b = 1.28 by default); masses in GeV, luminosity in fb^-1.
    """


@selector.command("train")
@click.argument("config", required=False, type=click.Path(dir_okay=False))
@click.option("--out", "-o", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Output folder (overrides the config's 'output'; default 'selector').")
@click.option("--quick", is_flag=True, help="Small synthetic sample and few epochs (a smoke run of a minute or two).")
def train(config: str | None, out_dir: str | None, quick: bool) -> None:
    """Train the selector from CONFIG (YAML; every key has a default, so CONFIG may be omitted).

    Without 'inputs' the training runs on the built-in synthetic toy (signal at m_a = 0.175..10.375 GeV
    in 0.05 GeV steps, 22 held-out masses). Writes OUT/model (model.keras + metadata.json with features,
    scaling, windows, working point and training config), OUT/summary.json (mean and per-mass sigma_min
    in pb of the Punzi net, the BCE-only net and the cut-based selection, held-out check) and OUT/plots.
    """
    from ..errors import BumphuntError
    from ..selection.from_config import train_from_config

    try:
        result = train_from_config(config, out_dir=out_dir, quick=quick)
    except BumphuntError as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:  # an output that cannot be written (e.g. --out inside a file)
        raise click.ClickException(f"cannot write the output: {exc}") from None
    summary = result.summary
    m = summary["mean_sigma_min_pb"]
    click.echo(f"mean sigma_min over trained masses: Punzi net {m['punzi']:.4g} pb (cut {summary['working_point']:.2f}), "
               f"BCE only {m['bce']:.4g} pb, cut-based {m['cut_based']:.4g} pb")
    if summary.get("max_heldout_deviation") is not None:
        click.echo(f"held-out masses: largest deviation from the interpolation {100 * summary['max_heldout_deviation']:.1f}%")
    click.echo(f"model: {result.model_dir}   summary: {result.summary_file}")


@selector.command("apply")
@click.argument("model", type=click.Path(exists=True, file_okay=False))
@click.argument("inputs", nargs=-1, required=True)
@click.option("--out", "-o", "out", required=True, type=click.Path(dir_okay=False),
              help="Output file: ROOT (tree 'candidates') or .npz, one row per diphoton candidate with 'punzi_net' "
                   "(output in [0, 1]) and 'pass_punzi' (output above the stored working point).")
@click.option("--threshold", type=float, default=None, help="Cut on the output for 'pass_punzi' (default: the model's working point).")
def apply_cmd(model: str, inputs: tuple[str, ...], out: str, threshold: float | None) -> None:
    """Evaluate the selector MODEL on INPUT files (three-photon files or raw ntuples, globs allowed)."""
    from ..errors import BumphuntError
    from ..selection.apply_files import apply_to_files

    try:
        res = apply_to_files(model, inputs, out=out, threshold=threshold)
    except BumphuntError as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:  # an output that cannot be written (e.g. --out inside a file)
        raise click.ClickException(f"cannot write the output: {exc}") from None
    click.echo(f"{res.n_candidates} candidates, {res.n_pass} pass punzi_net > {res.threshold:.3f} -> {res.path}")


apply_cmd.name = "apply"

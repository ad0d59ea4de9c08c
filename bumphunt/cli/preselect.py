"""``bumphunt preselect``: three-photon pre-selection of ntuples, with cut flows."""

from __future__ import annotations

import click

__all__ = ["preselect"]


@click.command("preselect")
@click.argument("inputs", nargs=-1, required=True)
@click.option("--out", "-o", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Output folder: per input <name>_3g.root, <name>_cutflow.md, <name>_cutflow.json.")
@click.option("--config", "config", type=click.Path(dir_okay=False),
              help="YAML with pre-selection cuts (keys of PreselectionCuts; GeV, rad, ns, cm). "
                   "Default: the Belle II cuts (E > 0.1 GeV, 17-150 deg, |t| < 200 ns, exactly three photons, "
                   "0.8 < M_ggg/sqrt(s) < 1.05, time spread < 20 ns, no good track).")
@click.option("--collider", "collider_name", type=click.Choice(["belle2", "babar", "zpole"]), default=None,
              help="Collider preset: its beams and pre-selection cuts (--config keys replace single cuts). Default: the collider "
                   "in the inputs' metadata (toy MC), else the Belle II cuts with each file's beam.")
@click.option("--aliases", type=click.Path(dir_okay=False),
              help="YAML alias map for ntuples with other branch names/units (see bumphunt.events.aliases).")
@click.option("--energy-unit", type=click.Choice(["GeV", "MeV"]), default=None,
              help="Unit of the energies in the inputs (default: GeV, or the alias map's energy_unit).")
@click.option("--tree", default=None, help="Tree name (default: events, or the alias map's tree).")
@click.option("--step-size", default=250_000, show_default=True, type=click.IntRange(min=1),
              help="Events read per chunk (1e5 to 3e5 is fastest; the result does not depend on it).")
@click.option("--allow-empty", is_flag=True, help="Skip input files with an empty tree (with a warning) instead of failing.")
def preselect(inputs: tuple[str, ...], out_dir: str, config: str | None, collider_name: str | None, aliases: str | None,
              energy_unit: str | None, tree: str | None, step_size: int, allow_empty: bool) -> None:
    """Pre-select three-photon events from INPUT ROOT files (paths or glob patterns), one sample per file."""
    from rich.console import Console

    from ..colliders import collider_of_files, preselection_cuts_for
    from ..errors import BumphuntError
    from ..events import preselect_files

    console = Console(stderr=False)
    try:
        cuts = preselection_cuts_for(None, config)  # the configuration is checked before any input is opened
        preset = collider_of_files(list(inputs), name=collider_name)
        if preset is not None:
            cuts = preselection_cuts_for(preset, config)
        beam = preset.beam if (preset is not None and collider_name is not None) else None
        if energy_unit is None and preset is not None:
            energy_unit = preset.ntuple_energy_unit
        if preset is not None:
            console.print(f"collider {preset.name}: sqrt(s) = {preset.sqrt_s:.4f} GeV, photons E > {cuts.photon_e_min:g} GeV")
        results = preselect_files(list(inputs), out_dir, cuts=cuts, beam=beam, aliases=aliases, energy_unit=energy_unit,
                                  tree=tree, step_size=step_size, allow_empty=allow_empty)
    except BumphuntError as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:  # the output folder cannot be written (e.g. --out inside a file)
        raise click.ClickException(f"{out_dir}: cannot write the outputs: {exc}") from None
    for stem, res in results.items():
        console.print(res.cutflow.rich_table(title=f"{stem}: pre-selection cut flow"))
        console.print(f"{res.n_selected} events -> {res.events}  (cut flow: {res.cutflow_md}, {res.cutflow_json})")

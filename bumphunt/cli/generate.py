"""``bumphunt generate``: write toy-MC samples (signal, backgrounds, control, pseudo-data)."""

from __future__ import annotations

from pathlib import Path

import click


def _masses(text: str | None) -> list[float] | None:
    if text is None:
        return None
    try:
        values = [float(x) for x in text.replace(" ", "").split(",") if x]
    except ValueError:
        raise click.BadParameter(f"expected comma-separated masses in GeV, e.g. 0.5,1,2; got {text!r}") from None
    if not values or any(v <= 0 for v in values):
        raise click.BadParameter(f"masses must be positive numbers in GeV, got {text!r}")
    return values


@click.command("generate")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path), help="Output directory; one ROOT file per sample (<sample>.root).")
@click.option("--seed", type=click.IntRange(min=0), default=None, help="Master random seed (default 0, or the config's). Same seed -> identical files.")
@click.option("--lumi", "lumi_fb", type=click.FloatRange(min=0, min_open=True), default=None, help="Integrated luminosity in fb^-1 for MC weights and the pseudo-data size (default 0.1).")
@click.option("--config", "config", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Toy-MC YAML configuration (see docs/reference/toymc.md); optional.")
@click.option("--collider", "collider_name", type=click.Choice(["belle2", "babar", "zpole"]), default=None,
              help="Collider preset (beams, calorimeter, resolution, default masses and coupling; see bumphunt.colliders). "
                   "Default: the config's collider key, else belle2. zpole: e+e- -> Z -> a gamma (hypercharge) and QED 3 gamma at sqrt(s) = m_Z.")
@click.option("--masses", default=None, help="Comma-separated ALP masses in GeV for the signal samples (default 0.5,1,2,4,7; zpole 1,5,10,20,40).")
@click.option("--n-signal", "n_signal", type=click.IntRange(min=1), default=None, help="Signal events per mass (default 4000).")
@click.option("--samples", default=None, help="Comma-separated samples to write: signal, backgrounds, ggg, eeg, pi0g, etag, etapg, pi0gg, etagg, etapgg, mumug, data, signal_m<mass> (default all).")
@click.option("--data/--no-data", "data", default=None, help="Write the pseudo-data sample (default yes).")
@click.option("--inject-mass", type=click.FloatRange(min=0, min_open=True), default=None, help="Inject signal at this ALP mass (GeV) into the pseudo-data.")
@click.option("--inject-events", type=click.FloatRange(min=0), default=None, help="Mean number of injected signal events (Poisson); needs --inject-mass.")
@click.option("--chunk-size", type=click.IntRange(min=1), default=None, help="Events per write chunk (memory bound; default 100000). Does not change the content.")
def generate(
    out_dir: Path,
    seed: int | None,
    lumi_fb: float | None,
    config: Path | None,
    collider_name: str | None,
    masses: str | None,
    n_signal: int | None,
    samples: str | None,
    data: bool | None,
    inject_mass: float | None,
    inject_events: float | None,
    chunk_size: int | None,
) -> None:
    """Generate Belle II-like toy MC: ALP signal at several masses, e+e- -> 3 gamma,
    e+e- -> e+e- gamma, e+e- -> P gamma (gamma) for P = pi0, eta, eta', the
    e+e- -> mu+ mu- gamma control sample and pseudo-data. With --collider babar
    the same at PEP-II with the BaBar calorimeter; with --collider zpole the ALP
    signal (hypercharge coupling, Z exchange), QED e+e- -> 3 gamma and pseudo-data
    at sqrt(s) = m_Z with a granular calorimeter.

    Runs with built-in defaults (a small sample that takes seconds); units: GeV,
    fb^-1. MC samples are weighted to the luminosity (branch `weight`); the
    pseudo-data are unweighted Poisson draws with the true process in `mc_process`.
    """
    from ..errors import BumphuntError
    from ..toymc import generate as run

    inject = None
    if inject_mass is not None or inject_events is not None:
        if inject_mass is None or inject_events is None:
            raise click.UsageError("--inject-mass and --inject-events go together")
        inject = {"mass": inject_mass, "n_events": inject_events}
    try:
        files = run(
            out_dir,
            lumi_fb=lumi_fb,
            seed=seed,
            signal_masses=_masses(masses),
            n_signal_per_mass=n_signal,
            samples=[s for s in samples.split(",") if s] if samples else None,
            config=config,
            data=data,
            inject=inject,
            chunk_size=chunk_size,
            collider_name=collider_name,
        )
    except BumphuntError as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:  # e.g. --out inside a file, or a folder without write permission
        raise click.ClickException(f"{out_dir}: cannot write the samples: {exc}") from None
    import json

    import uproot

    from ..events.schema import META_KEY, TREE_NAME

    click.echo(f"wrote {len(files)} file(s) to {out_dir}:")
    for name, path in files.items():
        with uproot.open(path) as f:
            meta = json.loads(str(f[META_KEY]))
            n = f[TREE_NAME].num_entries
        click.echo(f"  {name:15s} {n:9d} events  sigma = {meta['xsec_pb']:.4g} pb  weight = {meta['weight']:.4g}  {path}")

"""``bumphunt export-hepdata``: a scan result as a HEPData submission (``scans.export_hepdata``).

``scans`` and ``hepdata_lib`` are imported inside the command so ``bumphunt --help`` stays fast.
"""

from __future__ import annotations

import logging
from pathlib import Path

import click

from ..errors import BumphuntError

logger = logging.getLogger(__name__)

__all__ = ["export_hepdata"]


@click.command("export-hepdata")
@click.argument("result_path", metavar="RESULT", type=click.Path(dir_okay=False))
@click.option("--out", "out_dir", type=click.Path(file_okay=False), required=True,
              help="Directory for submission.yaml and the table files (new, empty, or a previous export, which is replaced).")
@click.option("--signal-model", type=click.Path(dir_okay=False), default=None,
              help="SignalModel JSON for the mass-resolution table [default: the model the result records].")
@click.option("--location", default="bumphunt scan result", show_default=True,
              help="Where the tables appear in the publication (e.g. 'Figure 3').")
@click.option("--archive", type=click.Path(dir_okay=False), default=None,
              help="Also write the submission as a .tar.gz for upload (outside --out).")
def export_hepdata(result_path: str, out_dir: str, signal_model: str | None, location: str, archive: str | None) -> None:
    """Write a HEPData submission of a scan RESULT, checked with hepdata-validator.

    Tables versus the ALP mass (GeV): observed and expected 95% CL upper limits
    with +-1/2 s.d. bands on N_sig, on the cross-section (pb) and on g_agg
    (GeV^-1); the signal efficiency; the local significance; the mass
    resolution of the signal model. A blind result gives expected quantities only.
    """
    import scans
    from scans.export_hepdata import blinding_state
    from scans.export_hepdata import export_hepdata as export

    try:
        result = scans.load_result(result_path)
        model = scans.run.load_signal_model(Path(signal_model)) if signal_model is not None else None
        try:
            out = export(result, out_dir, signal_model=model, location=location, archive=archive)
        except (scans.ScanError, BumphuntError, ValueError, OSError) as exc:
            raise click.ClickException(f"{result_path}: {exc}") from None
    except click.ClickException:
        raise
    except (scans.ScanError, BumphuntError, ValueError, OSError) as exc:
        raise click.ClickException(str(exc)) from None
    n_tables = sum(1 for p in out.glob("*.yaml") if p.name != "submission.yaml")
    click.echo(f"HEPData submission: {out} ({n_tables} tables; hepdata-validator: valid)")
    if blinding_state(result).fully_blind:
        click.echo("blinded result: expected quantities only, no observed number exported")
    if archive is not None:
        click.echo(f"archive for upload: {archive}")

"""``bumphunt report``: a scan result as one self-contained HTML page (``scans.report.write_report``).

``scans`` and matplotlib are imported inside the command so ``bumphunt --help`` stays fast.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import click

from ..errors import BumphuntError

logger = logging.getLogger(__name__)

__all__ = ["report"]


def _event_candidates(result: dict[str, Any]) -> tuple[Any, list[str]]:
    """M_gg of a one-dataset scan of raw events (the event chain run again on the recorded ntuples), and why not if it fails.

    Returns ``(None, [])`` for a result whose candidates the report reads itself (candidate files, combined results).
    """
    cfg = dict(result.get("config") or {})
    if result.get("datasets") or (cfg.get("inputs") or {}).get("kind") != "events":
        return None, []
    from scans.checkpoint import sha256_file

    from ..chain import masses_for_scan_config

    inputs = [d for d in result.get("inputs") or () if isinstance(d, dict)]
    if not inputs:
        return None, ["the result records no raw ntuples to run the event chain on"]
    for d in inputs:
        p = Path(d["path"])
        if not p.is_file():
            return None, [f"the recorded ntuple file {p} is not found"]
        if d.get("sha256") and sha256_file(p) != d["sha256"]:
            return None, [f"the ntuple file {p} changed since the scan (sha256 differs)"]
    selector = (result.get("provenance") or {}).get("selector")
    if selector and Path(selector).is_absolute():  # the scan recorded where its selector was
        cfg["inputs"] = {**cfg["inputs"], "selection": {**cfg["inputs"]["selection"], "model": selector}}
    try:
        mgg, _ = masses_for_scan_config(cfg, [Path(d["path"]) for d in inputs])  # other relative paths: from the working directory
    except (BumphuntError, ValueError, OSError, KeyError) as exc:
        logger.warning("the event chain could not be run again on the recorded ntuples: %s", exc)
        return None, [f"the event chain could not be run again on the recorded ntuples: {exc}"]
    return mgg, []


@click.command("report")
@click.argument("result_path", metavar="RESULT", type=click.Path(dir_okay=False))
@click.option("--out", "out_dir", type=click.Path(file_okay=False), required=True, help="Directory for report.html.")
@click.option("--reference", "references", multiple=True, metavar="NAME",
              help="Published limit to overlay on the coupling plot (repeatable) [default: belle2_2020_curve for the photon coupling].")
def report(result_path: str, out_dir: str, references: tuple[str, ...]) -> None:
    """Write one self-contained HTML page of a scan RESULT (figures embedded, no external files).

    The page shows the configuration, the inputs and their sha256, the cut
    flow where recorded, the Brazil bands, the coupling exclusion, p0 and the
    global significance, the fit of the most significant window with the
    pulls and impacts of its nuisances, the goodness-of-fit p-values, the
    flagged points, the vetoed ranges and the blinding state. A blind result
    gives expected quantities only.
    """
    import scans
    from scans.export_hepdata import blinding_state
    from scans.report import write_report
    from signal_models import reference_limits

    unknown = [r for r in references if r not in reference_limits.available()]
    if unknown:
        raise click.ClickException(f"--reference: unknown reference limit {unknown[0]!r}; available: {', '.join(reference_limits.available())}")
    try:
        result = scans.load_result(result_path)
        mgg, why = (None, []) if blinding_state(result).fully_blind else _event_candidates(result)
        path = write_report(result, out_dir, mgg=mgg, references=references or None, result_path=Path(result_path).resolve(),
                            window_notes=why)
    except (scans.ScanError, BumphuntError, ValueError, OSError) as exc:
        raise click.ClickException(f"{result_path}: {exc}" if str(result_path) not in str(exc) else str(exc)) from None
    click.echo(f"scan report: {path}")
    if blinding_state(result).fully_blind:
        click.echo("blinded result: expected quantities only, no observed number shown")

"""``bumphunt recast RESULT --to MODEL [--sqrt-s GEV] --out FILE``: a scan result's limits in another coupling model or at another sqrt(s).

``scans.recast.recast`` does the work; ``scans`` is imported inside the command.
"""

from __future__ import annotations

import logging

import click

from ..errors import BumphuntError

logger = logging.getLogger(__name__)

__all__ = ["recast"]


@click.command("recast")
@click.argument("result_path", metavar="RESULT", type=click.Path(dir_okay=False))
@click.option("--to", "to_coupling", default=None, metavar="MODEL",
              help="Target coupling model: photon or hypercharge [default: the result's].")
@click.option("--sqrt-s", "sqrt_s", type=float, default=None, metavar="GEV",
              help="Target CM energy in GeV (the limits on N_sig stay) [default: the result's].")
@click.option("--decay-radius", type=click.FloatRange(min=0.0, min_open=True), default=None, metavar="M",
              help="Lifetime-dependent efficiency: keep the fraction 1 - exp(-R/l) of ALPs decaying within R metres "
                   "(l: mean lab decay length at the limit coupling) [default: flat efficiency, prompt decays].")
@click.option("--isr", is_flag=True, help="Include the initial-state-radiation factor at the target in the coupling conversion.")
@click.option("--out", "out_path", type=click.Path(dir_okay=False), required=True, help="The recast result (JSON).")
def recast(result_path: str, to_coupling: str | None, sqrt_s: float | None, decay_radius: float | None, isr: bool, out_path: str) -> None:
    """Recast the limits of a scan RESULT (or a projection) to another coupling model and/or sqrt(s).

    Cross-section limits stay when only the coupling model changes; couplings
    follow from the cross-section ratio at the same mass. At another sqrt(s)
    the limits on N_sig stay (flat efficiency unless --decay-radius). The
    written result records every recast step under "recast".
    """
    import numpy as np

    import scans
    from scans.checkpoint import atomic_write_json
    from scans.recast import read_result
    from scans.recast import recast as do_recast

    if to_coupling is None and sqrt_s is None:
        raise click.UsageError("nothing to recast: give --to MODEL and/or --sqrt-s GEV")
    lifetime = None
    if decay_radius is not None:
        def lifetime(m: np.ndarray, length: np.ndarray) -> np.ndarray:
            return -np.expm1(-decay_radius / length)
    try:
        result = read_result(result_path)
        out = do_recast(result, coupling=to_coupling, sqrt_s=sqrt_s, lifetime_efficiency=lifetime, isr=isr,
                        lifetime_note=None if decay_radius is None else f"decays within {decay_radius:g} m: f = 1 - exp(-R/l)")
        path = atomic_write_json(out_path, out, indent=1)
    except (scans.ScanError, BumphuntError, ValueError, OSError) as exc:
        raise click.ClickException(str(exc)) from None
    step = out["recast"][-1]
    click.echo(f"recast {len(out['points'])} points: {step['from']['coupling']} at sqrt(s) = {step['from']['sqrt_s']:.6g} GeV -> "
               f"{step['to']['coupling']} at {step['to']['sqrt_s']:.6g} GeV; efficiency {step['efficiency'].split(':')[0]}")
    click.echo(f"written: {path}")

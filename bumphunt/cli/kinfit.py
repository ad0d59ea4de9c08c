"""``bumphunt kinfit`` (4C kinematic fit of three-photon files) and ``bumphunt calibrate-photons``."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import click

__all__ = ["kinfit", "calibrate_photons"]

logger = logging.getLogger(__name__)


def _beam_from_meta(meta: dict[str, Any], collider_name: str | None = None) -> Any:
    """The beams: of the named collider preset, else of the metadata (its beam, else its collider), else Belle II."""
    from ..colliders import collider, collider_from_meta
    from ..errors import ConfigError
    from ..kinematics import Beam

    try:
        if collider_name is not None:
            return collider(collider_name).beam
        b = meta.get("beam")
        if isinstance(b, dict):
            try:
                return Beam(**{k: float(v) for k, v in b.items() if k in ("e_her", "e_ler", "crossing_angle", "e_spread_her", "e_spread_ler")})
            except (TypeError, ValueError) as exc:
                raise click.ClickException(f"invalid beam in the sample metadata: {exc}") from None
        preset = collider_from_meta(meta)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    return preset.beam if preset is not None else Beam.belle2()


@click.command("kinfit")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--out", "-o", "out", required=True, type=click.Path(),
              help="Output: a .root file (all inputs fitted and combined) or a folder (one <name>_kinfit.root per input).")
@click.option("--pcm", "pcm_path", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Photon covariance model JSON (from calibrate-photons). Default: the covariances stored in the "
                   "input (gamma_cov_*), else the ECL parametrisation.")
@click.option("--collider", "collider_name", type=click.Choice(["belle2", "babar", "zpole"]), default=None,
              help="Fit to this collider preset's beams. Default: the beams in each file's metadata (or its collider), else Belle II.")
@click.option("--beam-spread/--no-beam-spread", default=False, show_default=True,
              help="Treat the beam four-momentum as measured with the beam-energy spread (soft constraint; ndf stays 4).")
@click.option("--max-iter", default=20, show_default=True, type=click.IntRange(min=1), help="Maximum linearisations per event.")
@click.option("--tol-chi2", default=1e-3, show_default=True, type=click.FloatRange(min=0, min_open=True),
              help="Convergence: change of chi2 between iterations below this.")
@click.option("--tol-constraint", default=1e-5, show_default=True, type=click.FloatRange(min=0, min_open=True),
              help="Convergence: every component of the four-momentum balance below this (GeV).")
@click.option("--plots", "plots", type=click.Path(file_okay=False), default=None,
              help="Folder for validation plots: pulls, chi2 and p-value, M_gg resolution of truth-matched signal.")
def kinfit(inputs: tuple[str, ...], out: str, pcm_path: str | None, collider_name: str | None, beam_spread: bool, max_iter: int,
           tol_chi2: float, tol_constraint: float, plots: str | None) -> None:
    """4C kinematic fit of the three photons of each event to the beam four-momentum.

    INPUTS are three-photon ROOT files written by `bumphunt preselect`. The
    output files carry every input branch plus fit_E, fit_theta, fit_phi
    (GeV, rad; measured values where the fit failed), kinfit_chi2 (+inf where
    it failed), kinfit_pvalue, kinfit_converged, kinfit_status, kinfit_n_iter.
    The beam comes from --collider, else from each file's metadata (default Belle II).
    """
    from rich.console import Console

    from .. import kinfit as kf
    from ..errors import BumphuntError
    from ..events import combine_three_photon, load_three_photon, read_meta, save_three_photon

    console = Console()
    out_path = Path(out)
    combined = out_path.suffix == ".root"
    try:
        model = None
        if pcm_path:
            from ..kinfit import PhotonCovarianceModel

            model = PhotonCovarianceModel.load(pcm_path)
        results = []
        for path in inputs:
            meta = read_meta(path)
            beam = _beam_from_meta(meta, collider_name)
            ev = load_three_photon(path)
            if "E" not in ev or ev["E"].ndim != 2:
                raise click.ClickException(f"{path}: not a three-photon file (no photon branch gamma_E with three photons)")
            if model is None and "cov" not in ev:
                logger.warning("%s: no gamma_cov_* branches, using the ECL parametrisation", path)
            fitted, res = kf.fit_events(ev, beam=beam, covariance_model=model, max_iter=max_iter, tol_chi2=tol_chi2,
                                        tol_constraint=tol_constraint, beam_cov="spread" if beam_spread else None)
            n = len(fitted["kinfit_converged"])
            n_conv = int(fitted["kinfit_converged"].sum())
            meta = dict(meta)
            meta["kinfit"] = {"beam_spread": beam_spread, "max_iter": max_iter, "tol_chi2": tol_chi2,
                              "tol_constraint": tol_constraint, "pcm": str(pcm_path) if pcm_path else None,
                              "n_events": n, "n_converged": n_conv, "source": str(path)}
            results.append((Path(path), fitted, meta, res))
            console.print(f"{path}: {n_conv}/{n} events converged")
        written = []
        if combined:
            allev = combine_three_photon([r[1] for r in results])
            meta = dict(results[0][2])
            meta["kinfit_inputs"] = [str(r[0]) for r in results]
            written.append(save_three_photon(out_path, allev, meta=meta))
        else:
            out_path.mkdir(parents=True, exist_ok=True)
            for path, fitted, meta, _ in results:
                stem = path.name[:-5] if path.name.endswith(".root") else path.name
                written.append(save_three_photon(out_path / f"{stem}_kinfit.root", fitted, meta=meta))
        for w in written:
            console.print(f"wrote {w}")
        if plots:
            _write_plots(Path(plots), [r[1] for r in results], [r[3] for r in results], console)
    except BumphuntError as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:  # an output that cannot be written (e.g. --out inside a file)
        raise click.ClickException(f"{out}: cannot write the output: {exc}") from None


def _write_plots(folder: Path, parts: list[dict], fits: list[Any], console: Any) -> None:
    import numpy as np

    from ..events import combine_three_photon
    from ..kinfit.plots import mgg_resolution, plot_chi2_pvalue, plot_mgg_resolution, plot_pulls

    ev = combine_three_photon(parts)
    folder.mkdir(parents=True, exist_ok=True)
    conv = ev["kinfit_converged"].astype(bool)
    pulls = np.concatenate([r.pulls for r in fits])
    plot_pulls(pulls, conv, folder / "kinfit_pulls.png")
    plot_chi2_pvalue(ev["kinfit_chi2"], ev["kinfit_pvalue"], conv, folder / "kinfit_chi2_pvalue.png")
    written = ["kinfit_pulls.png", "kinfit_chi2_pvalue.png"]
    if "truth_a1" in ev and "mc_ma" in ev and np.any((ev["truth_a1"] >= 0) & (ev["mc_ma"] > 0)):
        plot_mgg_resolution(ev, folder / "kinfit_mgg_resolution.png")
        rows = mgg_resolution(ev)
        (folder / "kinfit_mgg_resolution.json").write_text(json.dumps(rows, indent=2))
        written += ["kinfit_mgg_resolution.png", "kinfit_mgg_resolution.json"]
        for r in rows:
            console.print(f"m_a = {r['m_a']:g} GeV: sigma(M_gg) {1e3 * r['sigma_raw']:.1f} -> {1e3 * r['sigma_fit']:.1f} MeV "
                          f"({100 * r['improvement']:.0f}% better, {r['n']} truth-matched events)")
    console.print(f"plots in {folder}: {', '.join(written)}")


@click.command("calibrate-photons")
@click.argument("control", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--out", "-o", "out", required=True, type=click.Path(dir_okay=False),
              help="Photon covariance model JSON to write (load with --pcm in `bumphunt kinfit`).")
@click.option("--nominal", type=click.Choice(["parametrisation", "ntuple"]), default="parametrisation", show_default=True,
              help="What the fitted per-region factors multiply: the ECL parametrisation of sigma_E or the "
                   "per-photon sigma_E stored in the ntuple (gamma_cov_EE).")
@click.option("--energy-power", is_flag=True, help="Also fit an energy exponent per region: factor = s (E/GeV)^k.")
@click.option("--max-pull", default=4.0, show_default=True, type=click.FloatRange(min=1),
              help="Drop control events whose E_meas - E_pred exceeds this many expected sigmas (tails).")
@click.option("--plot", "plot", type=click.Path(dir_okay=False), default=None,
              help="Write the resolution-versus-energy plot (binned fits and calibrated curve) here (PNG).")
def calibrate_photons(control: tuple[str, ...], out: str, nominal: str, energy_power: bool, max_pull: float, plot: str | None) -> None:
    """Calibrate the photon energy resolution from e+e- -> mu+ mu- gamma CONTROL ntuples.

    The photon energy is predicted from the beams and the two muon tracks
    (missing momentum along the photon direction); the relative energy
    resolution per ECL region is fitted (unbinned, iminuit) with the known
    prediction resolution of the muon momenta and the beam spread folded in.
    Needs raw ntuples with gamma_* and track_* branches (e.g. the `mumug`
    sample of `bumphunt generate`).
    """
    from rich.console import Console

    from ..errors import BumphuntError
    from ..events import read_events
    from ..events.detector import REGION_NAMES
    from ..kinfit import calibrate, control_sample_from_events
    from ..kinfit.plots import plot_calibration

    console = Console()
    try:
        ev = read_events(list(control))
        beam = _beam_from_meta(ev.sample)
        sample = control_sample_from_events(ev, beam=beam)
        if sample["E"].size == 0:
            raise click.ClickException(f"{', '.join(control)}: no mu mu gamma events (two opposite-charge tracks and an ECL photon) in the input")
        cal = calibrate(sample, beam=beam, nominal=nominal, energy_power=energy_power, max_pull=max_pull)
        cal.model.meta.setdefault("calibration", {})["inputs"] = [str(p) for p in control]
        path = cal.save(out)
    except BumphuntError as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:  # an output that cannot be written (e.g. --out inside a file)
        raise click.ClickException(f"{out}: cannot write the output: {exc}") from None
    for code, p in cal.params.items():
        extra = f", power {p['power']:+.3f} +- {p['power_err']:.3f}" if energy_power else ""
        console.print(f"{REGION_NAMES[code]:>16}: scale {p['scale']:.4f} +- {p['scale_err']:.4f}{extra}, "
                      f"energy offset {p['bias']:+.4f} +- {p['bias_err']:.4f} ({p['n_events']} events)")
    if not cal.fit_valid:
        console.print("[yellow]warning: a calibration fit did not converge cleanly (see the JSON)[/yellow]")
    console.print(f"wrote {path}")
    if plot:
        plot_calibration(cal, plot)
        console.print(f"plot {plot}")

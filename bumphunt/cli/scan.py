"""``bumphunt scan`` and ``bumphunt plot``: run a mass scan and draw its plots.

Heavy libraries (numpy stacks, fits, TensorFlow for a selector) are imported
inside the commands so ``bumphunt --help`` stays fast.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import click

from ..errors import BumphuntError

logger = logging.getLogger(__name__)

__all__ = ["scan", "plot"]


def _candidates_from_events(cfg: dict[str, Any], paths: list[Path], base: Path | None = None) -> tuple[Any, dict[str, Any]]:
    """M_gg of selected candidates from raw ntuples (pre-selection, kinematic fit, candidates, selector cut) and their provenance."""
    from ..chain import masses_for_scan_config

    mgg, summary = masses_for_scan_config(cfg, paths, base=base)
    click.echo(f"event chain: {summary.n_events} events -> {summary.n_preselected} pre-selected -> "
               f"{summary.n_candidates} candidates -> {summary.n_selected} selected")
    sel = cfg["inputs"]["selection"]
    provenance = {"event_chain": summary.as_dict(), "kinematic_fit": bool(cfg["inputs"].get("kinematic_fit", True))}
    if sel["model"] is not None:
        model = Path(sel["model"])
        provenance["selector"] = str(model if model.is_absolute() or base is None else (base / model).resolve())
        provenance["working_point"] = sel["working_point"]
    return mgg, provenance


@click.command("scan")
@click.argument("config", required=False, type=click.Path(dir_okay=False))
@click.option("--input", "inputs", multiple=True, type=click.Path(dir_okay=False),
              help="Candidate file(s) (.root/.npy/.npz/.csv with M_gg in GeV); overrides inputs.files of CONFIG.")
@click.option("--signal-model", type=click.Path(dir_okay=False), default=None,
              help="SignalModel JSON; overrides signal_model of CONFIG (default: the analytic model).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Output directory for scan_result.json, scan_points.csv and the checkpoint [default: output.dir = scan_output].")
@click.option("--resume", is_flag=True, help="Continue a killed scan from the checkpoint in the output directory (refused if config or inputs changed).")
@click.option("--dask", "dask_address", default=None, metavar="ADDR",
              help="Run blocks and toys on a Dask cluster: scheduler address (tcp://host:8786) or 'local'.")
@click.option("--workers", type=click.IntRange(min=1), default=None, help="Local worker processes [default: execution.workers = 2].")
@click.option("--toys", type=click.IntRange(min=0), default=None, help="Background-only toy scans for the global significance [default: lee.toys = 50].")
@click.option("--plots/--no-plots", default=True, show_default=True, help="Draw the Brazil bands, coupling exclusion and local p0 into OUT/plots.")
@click.option("--unblind", is_flag=True,
              help="Fit every point in full although CONFIG's blinding section hides observed numbers; recorded in the result.")
@click.option("--overwrite", is_flag=True, help="Discard the finished blocks of an earlier scan in the output directory (else refused).")
@click.option("--strict", is_flag=True, help="Exit with status 3 when any mass point could not be fitted (the result is written all the same).")
def scan(config: str | None, inputs: tuple[str, ...], signal_model: str | None, out_dir: str | None, resume: bool,
         dask_address: str | None, workers: int | None, toys: int | None, plots: bool, unblind: bool, overwrite: bool,
         strict: bool) -> None:
    """Scan the ALP mass: fit signal + background at every m_a, set CLs limits.

    CONFIG is a YAML scan configuration (see docs/reference/scan_config.md;
    every key has a default: m_a from 0.175 to 9.6 GeV in 0.05 GeV steps,
    windows of +-20 sigma(m), pi0/eta/eta' vetoed, 95% CLs, 0.445 fb^-1).
    Writes the scan result JSON (limits on N_sig, cross-section in pb and
    g_agg in GeV^-1, local and global significance) and a CSV of the points.
    """
    import scans
    from scans.checkpoint import sha256_file
    from scans.run import resolve_inputs

    try:
        cfg = scans.load_scan_config(config)
        base = Path(config).resolve().parent if config else Path.cwd()
        if cfg["datasets"]:
            if inputs or signal_model is not None:
                raise click.UsageError("--input/--signal-model: CONFIG has datasets; give each dataset's inputs.files and signal_model there")
            masses, provenance = _dataset_candidates(cfg, base)
            result = scans.run_config(config, mgg=masses or None, out_dir=out_dir, resume=resume, dask=dask_address, workers=workers,
                                      lee_toys=toys, provenance=provenance, unblind=unblind, overwrite=overwrite)
            _report(result, cfg, out_dir, plots, strict=strict)
            return
        paths = [Path(p) for p in inputs] if inputs else resolve_inputs(cfg, base)
        if not paths:
            raise click.UsageError("no input files: give --input FILE or inputs.files in CONFIG")
        for p in paths:
            if not p.is_file():
                raise click.ClickException(f"{p}: input file not found")
        mgg = None
        provenance: dict[str, Any] = {}
        if cfg["inputs"]["kind"] == "events":
            mgg, provenance = _candidates_from_events(cfg, paths, base)
        model = source = None
        if signal_model is not None:
            model = scans.run.load_signal_model(Path(signal_model))
            source = {"path": str(Path(signal_model).resolve()), "sha256": sha256_file(signal_model)}
        result = scans.run_config(
            cfg if config is None else config, mgg=mgg, input_paths=paths, signal_model=model, out_dir=out_dir,
            resume=resume, dask=dask_address, workers=workers, lee_toys=toys, signal_model_source=source, provenance=provenance,
            unblind=unblind, overwrite=overwrite,
        )
    except click.ClickException:
        raise
    except (scans.ScanError, BumphuntError, ValueError, OSError) as exc:
        raise click.ClickException(str(exc)) from None
    _report(result, cfg, out_dir, plots, strict=strict)


def _dataset_candidates(cfg: dict[str, Any], base: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Per dataset of kind events, the selected candidates' M_gg from its raw ntuples, and their provenance."""
    from scans.run import resolve_inputs

    masses: dict[str, Any] = {}
    provenance: dict[str, Any] = {}
    for d in cfg["datasets"]:
        if d["inputs"]["kind"] != "events":
            continue
        sub = {**cfg, "inputs": d["inputs"]}
        paths = resolve_inputs(sub, base)
        for p in paths:
            if not p.is_file():
                raise click.ClickException(f"{p}: input file not found (dataset {d['name']!r})")
        click.echo(f"dataset {d['name']}:", nl=False)
        masses[d["name"]], provenance[d["name"]] = _candidates_from_events(sub, paths, base)
    return masses, ({"datasets": provenance} if provenance else {})


def _report(result: dict[str, Any], cfg: dict[str, Any], out_dir: str | None, plots: bool, *, strict: bool = False) -> None:
    """Say where the result is, what it found, which points could not be fitted; draw the plots (a failure there keeps the result)."""
    from scans.result import unfitted_summary

    out = Path(out_dir) if out_dir is not None else Path(cfg["output"]["dir"])
    g = result["global"]
    click.echo(f"scan result: {out / cfg['output']['result']} ({len(result['points'])} mass points)")
    click.echo(f"points CSV:  {out / cfg['output']['csv']}")
    blinding = result.get("blinding") or {}
    if blinding.get("blinded_points"):
        click.echo(f"blind: {blinding['blinded_points']} point(s) report expected quantities only (bumphunt scan --unblind to fit them)")
    if "max_z_local" in g:
        click.echo(f"largest local excess: Z = {g['max_z_local']:.2f} at m_a = {g['mass_at_max']:.4g} GeV; "
                   f"global Z = {g['z_global']:.2f} ({g['method']})")
    n_failed, reasons = unfitted_summary(result["points"])
    if n_failed:
        click.echo(f"not fitted: {n_failed} of {len(result['points'])} points ({reasons})", err=True)
    if plots:
        from scans.plots import plot_all

        try:
            files = plot_all(result, out / "plots")
        except (OSError, ValueError, RuntimeError) as exc:
            raise click.ClickException(f"the scan result is written ({out / cfg['output']['result']}), but the plots failed: {exc}") from None
        click.echo(f"plots:       {out / 'plots'} ({len(files)} files)")
    if strict and n_failed:
        click.echo(f"--strict: {n_failed} point(s) could not be fitted", err=True)
        raise SystemExit(3)


def _reference_option(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> tuple[str, ...]:
    """``--reference list``: print the bundled published limits and exit (before RESULT and --out are needed)."""
    if "list" not in value:
        return value
    from signal_models import reference_limits

    for name in reference_limits.available():
        ref = reference_limits.load(name)
        click.echo(f"{name}: {ref.label} [coupling: {ref.coupling}] {ref.citation}")
    ctx.exit(0)
    return value


@click.command("plot")
@click.argument("result_path", metavar="RESULT", type=click.Path(dir_okay=False))
@click.option("--out", "out_dir", type=click.Path(file_okay=False), required=True, help="Directory for the PNG plots.")
@click.option("--external", multiple=True, type=click.Path(dir_okay=False),
              help="CSV with columns mass (GeV), g (GeV^-1) of an external limit to overlay on the coupling plot; repeatable.")
@click.option("--reference", "references", multiple=True, metavar="NAME", is_eager=True, callback=_reference_option,
              help="Published limit bundled with the package to overlay on the coupling plot (drawn if on the result's coupling model); "
                   "repeatable; '--reference list' lists them.")
@click.option("--fit-masses", default="", metavar="M1,M2,...",
              help="Comma-separated masses (GeV) for fit plots; needs the scan inputs (read from the result's config and inputs).")
def plot(result_path: str, out_dir: str, external: tuple[str, ...], references: tuple[str, ...], fit_masses: str) -> None:
    """Draw a scan result: Brazil bands (N_sig and cross-section), g_agg exclusion vs m_a, local p0 with the global significance."""
    import scans
    from scans.plots import external_label, plot_all, read_external_limits
    from signal_models import reference_limits

    unknown = [r for r in references if r not in reference_limits.available()]
    if unknown:
        raise click.ClickException(f"--reference: unknown reference limit {unknown[0]!r}; available: {', '.join(reference_limits.available())} "
                                   "(or 'list')")
    try:
        result = scans.load_result(result_path)
        ext = {external_label(p): read_external_limits(p) for p in external}
        masses = [float(m) for m in fit_masses.split(",") if m.strip()]
        mgg = model = None
        if masses and result.get("datasets"):
            raise click.ClickException("--fit-masses: fit plots of combined (several-dataset) results are not drawn yet; "
                                       "the points' channels records hold each dataset's fitted yields")
        if masses:
            cfg = result["config"]
            paths = [Path(d["path"]) for d in result.get("inputs", [])]
            if not paths:
                raise click.ClickException("--fit-masses: the result records no input files to fit")
            if cfg["inputs"]["kind"] == "events":
                mgg, _ = _candidates_from_events(cfg, paths)  # relative selector/alias paths: from the working directory
            else:
                sel = cfg["inputs"]["selection"]
                mgg = scans.read_candidates(paths, tree=cfg["inputs"]["tree"] or "candidates", branch=cfg["inputs"]["branch"],
                                            aliases=cfg["inputs"]["aliases"], selection_branch=sel["branch"],
                                            working_point=sel["working_point"])
            recorded = result.get("signal_model") or {}
            if recorded.get("path"):
                model = scans.run.load_signal_model(Path(recorded["path"]))
            elif recorded.get("analytic") is not None:
                model = scans.run.load_signal_model(None, recorded["analytic"])
            else:
                model = scans.run.load_signal_model(cfg["signal_model"], cfg["analytic_signal_model"])
        files = plot_all(result, out_dir, external=ext, references=references, fit_masses=masses, mgg=mgg, signal_model=model)
    except click.ClickException:
        raise
    except (scans.ScanError, BumphuntError, ValueError, OSError) as exc:
        raise click.ClickException(str(exc)) from None
    for f in files:
        click.echo(str(f))

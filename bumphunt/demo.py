"""The end-to-end demo on toy data (``bumphunt demo``).

``run_demo`` runs a list of stages (``STAGES``) on a shared ``DemoContext``:
each stage is a function ``stage(ctx) -> None`` that reads what earlier
stages left in the context, writes its files under ``ctx.out_dir``, records
them in ``ctx.products`` and adds a section to the report (``ctx.report``).
The report stage always runs last. Later stages of the analysis chain
(kinematic fit, selector, signal model, scan) are added by inserting their
stage functions into ``STAGES`` before ``"report"`` (see ``add_stage``).

Current chain: generate toy MC -> pre-selection -> diphoton candidates ->
plots -> markdown report.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .kinematics import Beam

logger = logging.getLogger(__name__)

__all__ = ["DemoContext", "STAGES", "add_stage", "run_demo", "DEFAULT_LUMI_FB", "SMALL_LUMI_FB"]

#: Default integrated luminosity of the demo toy samples (fb^-1).
DEFAULT_LUMI_FB = 0.5
#: Luminosity used with ``small=True`` (tests, docs).
SMALL_LUMI_FB = 0.05


@dataclass
class DemoContext:
    """State passed from stage to stage.

    Attributes
    ----------
    out_dir : Path
        Root folder of all demo outputs.
    seed : int
        Seed of every random step.
    lumi_fb : float
        Integrated luminosity of the toy samples (fb^-1).
    small : bool
        Use small sizes (tests, docs).
    beam : Beam
    samples : dict
        Sample name -> raw toy MC ROOT file.
    three_photon : dict
        Sample name -> three-photon dict (pre-selected; later stages may add
        kinematic-fit keys).
    cutflows : dict
        Sample name -> ``CutFlow``.
    candidates : dict
        Sample name -> diphoton-candidate dict.
    products : dict
        Name -> produced file (returned by ``run_demo``).
    report : list of str
        Markdown sections, joined into ``report.md`` by the report stage.
    extra : dict
        Free-form results of later stages.
    timings : dict
        Stage name -> wall time (s).
    """

    out_dir: Path
    seed: int
    lumi_fb: float
    small: bool = False
    beam: Beam = field(default_factory=Beam.belle2)
    samples: dict[str, Path] = field(default_factory=dict)
    three_photon: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    cutflows: dict[str, Any] = field(default_factory=dict)
    candidates: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    products: dict[str, Path] = field(default_factory=dict)
    report: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)

    def path(self, *parts: str) -> Path:
        """A path under ``out_dir`` (parent folders created)."""
        p = self.out_dir.joinpath(*parts)
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    def folder(self, name: str) -> Path:
        """A folder under ``out_dir`` (created)."""
        p = self.out_dir / name
        p.mkdir(parents=True, exist_ok=True)
        return p


# --------------------------------------------------------------------------- stages


def stage_generate(ctx: DemoContext) -> None:
    """Generate the toy MC samples (signal and backgrounds), one ROOT file each."""
    from . import toymc

    files = toymc.generate(ctx.folder("toymc"), lumi_fb=ctx.lumi_fb, seed=ctx.seed)
    ctx.samples = {str(k): Path(v) for k, v in files.items()}
    for name, p in ctx.samples.items():
        ctx.products[f"toymc_{name}"] = p
    ctx.report.append(
        "## Toy MC\n\n"
        f"Generated at {ctx.lumi_fb:g} fb^-1 with seed {ctx.seed}, sqrt(s) = {ctx.beam.sqrt_s:.3f} GeV:\n\n"
        + "".join(f"- `{name}`: `{p.relative_to(ctx.out_dir) if p.is_relative_to(ctx.out_dir) else p}`\n"
                  for name, p in ctx.samples.items())
    )


def stage_preselect(ctx: DemoContext) -> None:
    """Pre-select every sample; write the three-photon files and cut flows."""
    from .preselection import load_three_photon, preselect_files

    results = preselect_files(list(ctx.samples.values()), ctx.folder("preselected"), beam=ctx.beam, show_progress=False)
    by_path = {Path(r["source"]): (stem, r) for stem, r in results.items()}
    total = None
    for name, p in ctx.samples.items():
        stem, r = by_path[p]
        ctx.three_photon[name] = load_three_photon(r["events"])
        ctx.cutflows[name] = r["cutflow"]
        ctx.products[f"preselected_{name}"] = r["events"]
        total = r["cutflow"] if total is None else total + r["cutflow"]
    if total is not None:
        ctx.products["cutflow_json"] = total.to_json(ctx.path("cutflow.json"))
        md = ctx.path("cutflow.md")
        md.write_text("# Pre-selection cut flow\n\n" + total.to_markdown())
        ctx.products["cutflow_md"] = md
        ctx.report.append(
            "## Pre-selection\n\nEvents and weighted yields (events expected at the sample luminosity) after each "
            "cut, cumulative:\n\n" + total.to_markdown()
        )


def stage_candidates(ctx: DemoContext) -> None:
    """Build the three diphoton candidates of every pre-selected event."""
    from .candidates import diphoton_candidates

    lines = ["| sample | events | candidates | truth-matched | weighted candidates |", "|---|---:|---:|---:|---:|"]
    for name, ev in ctx.three_photon.items():
        cand = diphoton_candidates(ev, beam=ctx.beam)
        ctx.candidates[name] = cand
        lines.append(f"| {name} | {len(ev['event'])} | {len(cand['mgg'])} | {int(cand['truth_match'].sum())} | "
                     f"{cand['weight'].sum():.4g} |")
    ctx.report.append("## Diphoton candidates\n\nThree candidates (photon pairs) per event; truth-matched = the pair "
                      "is the true ALP (or P meson) pair.\n\n" + "\n".join(lines) + "\n")


def _mgg_bins(ctx: DemoContext) -> np.ndarray:
    return np.linspace(0.0, 10.5, 211)


def stage_plots(ctx: DemoContext) -> None:
    """M_gg spectra: per sample (unweighted shapes) and stacked weighted backgrounds with the signal overlaid."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import mplhep

    from . import plotting

    bins = _mgg_bins(ctx)
    with plotting.style():
        fig, ax = plotting.new_figure()
        for name, cand in ctx.candidates.items():
            if len(cand["mgg"]):
                h, _ = np.histogram(cand["mgg"], bins=bins)
                mplhep.histplot(h / max(h.sum(), 1), bins, ax=ax, label=name, histtype="step")
        ax.set_xlabel(r"$M_{\gamma\gamma}$ [GeV]")
        ax.set_ylabel("fraction of candidates / 0.05 GeV")
        ax.set_yscale("log")
        ax.legend(fontsize="small", ncol=2)
        plotting.label(ax, lumi_fb=ctx.lumi_fb, sqrt_s=ctx.beam.sqrt_s)
        ctx.products["plot_mgg_per_sample"] = plotting.save(fig, ctx.path("plots", "mgg_per_sample.png"))

        fig, ax = plotting.new_figure()
        bkg = {n: c for n, c in ctx.candidates.items() if not n.startswith("signal") and len(c["mgg"])}
        sig = {n: c for n, c in ctx.candidates.items() if n.startswith("signal") and len(c["mgg"])}
        if bkg:
            order = sorted(bkg, key=lambda n: bkg[n]["weight"].sum())
            hs = [np.histogram(bkg[n]["mgg"], bins=bins, weights=bkg[n]["weight"])[0] for n in order]
            mplhep.histplot(hs, bins, ax=ax, stack=True, histtype="fill", label=order, alpha=0.8)
        for n, c in sig.items():
            h, _ = np.histogram(c["mgg"], bins=bins, weights=c["weight"])
            mplhep.histplot(h, bins, ax=ax, histtype="step", color="black", lw=2, label=n)
        ax.set_xlabel(r"$M_{\gamma\gamma}$ [GeV]")
        ax.set_ylabel("candidates / 0.05 GeV")
        ax.set_yscale("log")
        ax.legend(fontsize="small", ncol=2)
        plotting.label(ax, lumi_fb=ctx.lumi_fb, sqrt_s=ctx.beam.sqrt_s)
        ctx.products["plot_mgg_stacked"] = plotting.save(fig, ctx.path("plots", "mgg_stacked.png"))
    ctx.report.append(
        "## Plots\n\n"
        "![M_gg per sample](plots/mgg_per_sample.png)\n\n"
        "![M_gg stacked](plots/mgg_stacked.png)\n"
    )


def stage_report(ctx: DemoContext) -> None:
    """Write ``report.md`` from the sections of all stages."""
    head = (f"# bumphunt demo\n\nToy MC at {ctx.lumi_fb:g} fb^-1, seed {ctx.seed}. Stage wall times: "
            + ", ".join(f"{k} {v:.1f} s" for k, v in ctx.timings.items()) + ".\n")
    path = ctx.path("report.md")
    path.write_text("\n".join([head, *ctx.report]))
    ctx.products["report"] = path


#: The demo stages in order; "report" must stay last.
STAGES: list[tuple[str, Callable[[DemoContext], None]]] = [
    ("generate", stage_generate),
    ("preselect", stage_preselect),
    ("candidates", stage_candidates),
    ("plots", stage_plots),
    ("report", stage_report),
]


def add_stage(name: str, func: Callable[[DemoContext], None], *, after: str | None = None) -> None:
    """Register a stage, after stage ``after`` (default: just before the report)."""
    names = [n for n, _ in STAGES]
    if name in names:
        STAGES[names.index(name)] = (name, func)
        return
    pos = names.index(after) + 1 if after is not None else names.index("report")
    STAGES.insert(pos, (name, func))


def run_demo(out_dir: str | Path, *, seed: int = 1, lumi_fb: float | None = None, small: bool = False,
             beam: Beam | None = None) -> dict[str, Path]:
    """Run the demo chain on toy MC.

    Parameters
    ----------
    out_dir : path
        Output folder (created).
    seed : int
        Seed for the toy MC (and every later random step).
    lumi_fb : float, optional
        Integrated luminosity in fb^-1 (default ``DEFAULT_LUMI_FB``, or
        ``SMALL_LUMI_FB`` with ``small=True``).
    small : bool
        Small samples for tests and docs.

    Returns
    -------
    dict
        Name -> produced file (toy MC, pre-selected files, cut flows, plots,
        ``report``).
    """
    if lumi_fb is None:
        lumi_fb = SMALL_LUMI_FB if small else DEFAULT_LUMI_FB
    if not lumi_fb > 0:
        raise ValueError(f"lumi_fb must be positive, got {lumi_fb}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ctx = DemoContext(out_dir=out, seed=int(seed), lumi_fb=float(lumi_fb), small=small, beam=beam or Beam.belle2())
    for name, func in STAGES:
        t0 = time.perf_counter()
        logger.info("demo stage %s", name)
        func(ctx)
        ctx.timings[name] = time.perf_counter() - t0
    return dict(ctx.products)

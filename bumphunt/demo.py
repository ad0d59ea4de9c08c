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

__all__ = ["DemoContext", "STAGES", "add_stage", "run_demo", "plot_mgg_per_sample", "plot_mgg_stacked", "sample_kind", "DEFAULT_LUMI_FB", "SMALL_LUMI_FB"]

#: Default integrated luminosity of the demo toy samples (fb^-1).
DEFAULT_LUMI_FB = 0.1
#: Luminosity used with ``small=True`` (tests, docs).
SMALL_LUMI_FB = 0.02


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

    config = None
    if ctx.small:
        # a fifth of the default MC sizes (the toy-MC configuration documents these keys)
        from .toymc.config import load_toymc_config

        defaults = load_toymc_config(None)
        config = {"signal": {"n_per_mass": 800},
                  "backgrounds": {p: max(int(n) // 5, 200) for p, n in defaults["backgrounds"].items()},
                  "control": {"n": 500}}
    files = toymc.generate(ctx.folder("toymc"), lumi_fb=ctx.lumi_fb, seed=ctx.seed, config=config)
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
            "## Pre-selection\n\nPer process: events / weighted yield (events expected at the sample luminosity) "
            "(cumulative efficiency) after each cut:\n\n" + total.to_markdown(by="process")
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


def sample_kind(name: str) -> str:
    """"signal", "data", "control" (mu mu gamma) or "background" from a toy-MC sample name."""
    if name.startswith("signal"):
        return "signal"
    if name == "data":
        return "data"
    if name == "mumug":
        return "control"
    return "background"


def _mgg_bins(ctx: DemoContext) -> np.ndarray:
    return np.linspace(0.0, 10.5, 211)


def plot_mgg_per_sample(candidates: dict[str, dict[str, np.ndarray]], *, bins: np.ndarray, lumi_fb: float | None = None,
                        sqrt_s: float | None = None) -> Any:
    """One panel per sample: M_gg of all candidates and of the truth-matched ones (unweighted counts)."""
    import matplotlib.pyplot as plt
    import mplhep

    names = list(candidates)
    ncol = min(4, max(1, len(names)))
    nrow = int(np.ceil(len(names) / ncol)) or 1
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.2 * ncol, 3.3 * nrow), squeeze=False, constrained_layout=True)
    for ax, name in zip(axes.flat, names):
        c = candidates[name]
        h_all, _ = np.histogram(c["mgg"], bins=bins)
        mplhep.histplot(h_all, bins, ax=ax, histtype="step", color="tab:blue", label="all pairs")
        if c["truth_match"].any():
            h_tm, _ = np.histogram(c["mgg"][c["truth_match"]], bins=bins)
            mplhep.histplot(h_tm, bins, ax=ax, histtype="fill", color="tab:orange", alpha=0.6, label="truth-matched")
        ax.set_title(f"{name} ({len(c['mgg']) // 3} events)", fontsize="small")
        if h_all.sum() > 0:
            ax.set_yscale("log")
            ax.set_ylim(bottom=0.5)
        else:
            ax.text(0.5, 0.5, "no events selected", transform=ax.transAxes, ha="center", fontsize="small")
        ax.tick_params(labelsize="x-small")
        ax.set_xlabel(r"$M_{\gamma\gamma}$ [GeV]", fontsize="small")
        ax.set_ylabel("candidates", fontsize="small")
    for ax in list(axes.flat)[len(names):]:
        ax.set_visible(False)
    axes.flat[0].legend(fontsize="x-small")
    info = ", ".join(x for x in (f"{lumi_fb:g} fb$^{{-1}}$" if lumi_fb else "", f"sqrt(s) = {sqrt_s:.2f} GeV" if sqrt_s else "") if x)
    fig.suptitle(f"Diphoton mass per sample (3 pairs per event){': ' + info if info else ''}", fontsize="medium")
    return fig


def plot_mgg_stacked(candidates: dict[str, dict[str, np.ndarray]], *, bins: np.ndarray, lumi_fb: float | None = None,
                     sqrt_s: float | None = None, signal_scale: float = 100.0) -> Any:
    """Weighted backgrounds stacked, signal samples overlaid (times ``signal_scale``), pseudo-data as points."""
    import mplhep

    from . import plotting

    fig, ax = plotting.new_figure(figsize=(11.0, 7.5))
    kinds = {n: sample_kind(n) for n in candidates}
    bkg = {n: c for n, c in candidates.items() if kinds[n] == "background" and len(c["mgg"])}
    sig = {n: c for n, c in candidates.items() if kinds[n] == "signal" and len(c["mgg"])}
    ymax = 1.0
    if bkg:
        order = sorted(bkg, key=lambda n: bkg[n]["weight"].sum())
        hs = [np.histogram(bkg[n]["mgg"], bins=bins, weights=bkg[n]["weight"])[0] for n in order]
        mplhep.histplot(hs, bins, ax=ax, stack=True, histtype="fill", label=order, alpha=0.8)
        ymax = max(ymax, float(np.sum(hs, axis=0).max()))
    for n, c in sig.items():
        h, _ = np.histogram(c["mgg"], bins=bins, weights=c["weight"] * signal_scale)
        mplhep.histplot(h, bins, ax=ax, histtype="step", lw=1.5, label=f"{n} x {signal_scale:g}")
    if "data" in candidates and len(candidates["data"]["mgg"]):
        h, _ = np.histogram(candidates["data"]["mgg"], bins=bins)
        mplhep.histplot(h, bins, ax=ax, histtype="errorbar", yerr=np.sqrt(h), color="black", label="pseudo-data")
        ymax = max(ymax, float(h.max()))
    ax.set_xlabel(r"$M_{\gamma\gamma}$ [GeV]")
    ax.set_ylabel(f"candidates / {bins[1] - bins[0]:.2g} GeV")
    ax.set_yscale("log")
    ax.set_ylim(1e-2, ymax * 30)
    ax.legend(fontsize="xx-small", ncol=3, loc="upper center")
    plotting.label(ax, lumi_fb=lumi_fb, sqrt_s=sqrt_s)
    return fig


def stage_plots(ctx: DemoContext) -> None:
    """M_gg spectra: per sample (all and truth-matched pairs) and stacked weighted backgrounds with signal and data."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    logging.getLogger("matplotlib.mathtext").setLevel(logging.ERROR)

    from . import plotting

    bins = _mgg_bins(ctx)
    with plotting.style():
        fig = plot_mgg_per_sample(ctx.candidates, bins=bins, lumi_fb=ctx.lumi_fb, sqrt_s=ctx.beam.sqrt_s)
        ctx.products["plot_mgg_per_sample"] = plotting.save(fig, ctx.path("plots", "mgg_per_sample.png"))
        fig = plot_mgg_stacked(ctx.candidates, bins=bins, lumi_fb=ctx.lumi_fb, sqrt_s=ctx.beam.sqrt_s)
        ctx.products["plot_mgg_stacked"] = plotting.save(fig, ctx.path("plots", "mgg_stacked.png"))
    ctx.report.append(
        "## Plots\n\n"
        "Diphoton mass of all three pairs per event, per sample, with the truth-matched pairs:\n\n"
        "![M_gg per sample](plots/mgg_per_sample.png)\n\n"
        "Weighted backgrounds stacked (events at the sample luminosity), signal overlaid (scaled), pseudo-data:\n\n"
        "![M_gg stacked](plots/mgg_stacked.png)\n"
    )


def stage_report(ctx: DemoContext) -> None:
    """Write ``report.md`` from the sections of all stages."""
    head = (f"# bumphunt demo\n\nToy MC at {ctx.lumi_fb:g} fb^-1, seed {ctx.seed}. Stage wall times: "
            + ", ".join(f"{k} {v:.1f} s" for k, v in ctx.timings.items()) + ".\n")
    path = ctx.path("report.md")
    path.write_text("\n".join([head, *ctx.report]))
    ctx.products["report"] = path


def stage_scan(ctx: DemoContext) -> None:
    """Mass scan of the (selected) pseudo-data with limits and scan plots (``bumphunt.scan_stage``)."""
    from .scan_stage import run_scan_stage

    run_scan_stage(ctx)


#: The demo stages in order; "report" must stay last.
STAGES: list[tuple[str, Callable[[DemoContext], None]]] = [
    ("generate", stage_generate),
    ("preselect", stage_preselect),
    ("candidates", stage_candidates),
    ("plots", stage_plots),
    ("scan", stage_scan),
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

"""The end-to-end demo on toy data (``bumphunt demo``).

``run_demo`` runs a list of stages (``STAGES``) on a shared ``DemoContext``:
each stage is a function ``stage(ctx) -> None`` that reads what earlier
stages left in the context, writes its files under ``ctx.out_dir``, records
them in ``ctx.products`` and adds a section to the report (``ctx.report``).
The report stage always runs last. Later stages of the analysis chain
(kinematic fit, selector, signal model, scan) are added by inserting their
stage functions into ``STAGES`` before ``"report"`` (see ``add_stage``).

Chain: generate toy MC -> pre-selection -> 4C kinematic fit (all samples) ->
diphoton candidates (fitted photons) -> M_gg plots -> Punzi-net selector
(trained on a signal-mass grid 0.2-9.6 GeV and the weighted backgrounds,
applied to the pseudo-data) -> signal model (from the selected signal grid)
-> mass scan -> markdown report. Sizes of the selector training are in
``SELECTOR_SETTINGS``: demo-size, not a physics-grade training.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..kinematics import Beam

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
    from .. import toymc

    config = None
    if ctx.small:
        # a fifth of the default MC sizes (the toy-MC configuration documents these keys)
        from ..toymc.config import load_toymc_config

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
    from ..events.preselection import load_three_photon, preselect_files

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
    from ..events.candidates import diphoton_candidates

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

    from signal_models._common import plotstyle as plotting

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

    from signal_models._common import plotstyle as plotting

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


def _summary_section(ctx: DemoContext) -> str:
    """Key numbers of every stage that ran (cut flow, kinfit gain, working point, signal model, scan, limits)."""
    lines = ["## Summary\n"]
    if ctx.cutflows:
        tot = {kind: [0, 0] for kind in ("signal", "background", "data")}
        for name, ev in ctx.three_photon.items():
            kind = sample_kind(name)
            if kind in tot:
                tot[kind][0] += len(ev["E"])
        lines.append("- Pre-selection: " + ", ".join(f"{k} {v[0]} events kept" for k, v in tot.items()) + " (cut flow: `cutflow.md`).")
    gains = ctx.extra.get("kinfit_resolution")
    if gains:
        g = [v["gain"] for v in gains.values() if np.isfinite(v["gain"])]
        if g:
            lines.append(f"- Kinematic fit: signal M_gg resolution improved by a factor {min(g):.2f} - {max(g):.2f}.")
    sel = ctx.extra.get("selector_summary")
    if sel:
        lines.append(f"- Selector: working point {sel['threshold']:.2f}, mean truth-matched signal efficiency "
                     f"{sel['mean_efficiency']:.3f}, mean sigma_min {sel['mean_sigma_min_pb']:.3g} pb; "
                     f"{len(ctx.extra.get('selected_mgg', []))} pseudo-data candidates selected.")
    model = ctx.extra.get("signal_model")
    if model is not None and hasattr(model, "mass_range"):
        lo, hi = model.mass_range
        lines.append(f"- Signal model: [{lo:.3f}, {hi:.3f}] GeV.")
    res = ctx.extra.get("scan_result")
    if res:
        g = res["global"]
        pts = [p for p in res["points"] if not p["vetoed"] and p["converged"] and p.get("ul_xsec_pb_obs") is not None]
        lines.append(f"- Scan: {len(res['points'])} mass points, max local Z = {g['max_z_local']:.2f} at {g['mass_at_max']:.3f} GeV, "
                     f"global Z = {g['z_global']:.2f}.")
        if pts:
            pick = [pts[int(i)] for i in np.unique(np.linspace(0, len(pts) - 1, 5).round().astype(int))]
            lines.append("\n| m_a [GeV] | 95% CL UL sigma obs [pb] | expected [pb] | UL g_agg obs [GeV^-1] |\n|---:|---:|---:|---:|")
            for p in pick:
                exp = p.get("ul_xsec_pb_exp") or [float("nan")] * 5
                gg = p.get("ul_g_gev_obs")
                lines.append(f"| {p['mass']:.3f} | {p['ul_xsec_pb_obs']:.3g} | {exp[2]:.3g} | {gg:.3g} |" if gg is not None else
                             f"| {p['mass']:.3f} | {p['ul_xsec_pb_obs']:.3g} | {exp[2]:.3g} | - |")
    return "\n".join(lines) + "\n"


def stage_report(ctx: DemoContext) -> None:
    """Write ``report.md`` from the sections of all stages."""
    head = (f"# bumphunt demo\n\nToy MC at {ctx.lumi_fb:g} fb^-1, seed {ctx.seed}. Stage wall times: "
            + ", ".join(f"{k} {v:.1f} s" for k, v in ctx.timings.items()) + ".\n")
    path = ctx.path("report.md")
    path.write_text("\n".join([head, _summary_section(ctx), *ctx.report]))
    ctx.products["report"] = path


def stage_scan(ctx: DemoContext) -> None:
    """Mass scan of the (selected) pseudo-data with limits and scan plots (``bumphunt.scan_stage``)."""
    from .scan_stage import run_scan_stage

    run_scan_stage(ctx)


# --------------------------------------------------------------------------- kinematic fit


def _mass_resolution(cand: dict[str, np.ndarray], key: str) -> float:
    """Robust core width (GeV) of ``key - mc_ma`` for truth-matched candidates: half the central 68% interval."""
    tm = np.asarray(cand["truth_match"], dtype=bool)
    if tm.sum() < 10:
        return float("nan")
    d = np.asarray(cand[key], dtype=float)[tm] - np.asarray(cand["mc_ma"], dtype=float)[tm]
    lo, hi = np.percentile(d, [16.0, 84.0])
    return float(0.5 * (hi - lo))


def _kinfit_all(three_photon: dict[str, dict[str, np.ndarray]], beam: Beam) -> dict[str, float]:
    """Fit every sample in place; return sample -> fraction of converged fits."""
    from ..kinfit.fitter import apply_to_events

    conv = {}
    for name, ev in list(three_photon.items()):
        if len(ev["E"]) == 0:
            conv[name] = float("nan")
            continue
        fitted = apply_to_events(ev, beam=beam)
        three_photon[name] = fitted
        conv[name] = float(np.mean(fitted["kinfit_converged"]))
    return conv


def stage_kinfit(ctx: DemoContext) -> None:
    """4C kinematic fit of every sample's three-photon events (candidates then use the fitted photons).

    The M_gg resolution of the truth-matched signal pairs (half the central 68%
    interval of M_gg - m_a) is compared with and without the fit.
    """
    from ..events.candidates import diphoton_candidates

    conv = _kinfit_all(ctx.three_photon, ctx.beam)
    rows = ["| signal sample | sigma(M_gg) raw [MeV] | sigma(M_gg) fitted [MeV] | gain (raw / fitted) |", "|---|---:|---:|---:|"]
    gains = {}
    for name, ev in ctx.three_photon.items():
        if sample_kind(name) != "signal" or len(ev["E"]) == 0:
            continue
        cand = diphoton_candidates(ev, beam=ctx.beam)
        raw, fit = _mass_resolution(cand, "mgg_raw"), _mass_resolution(cand, "mgg")
        gains[name] = {"sigma_raw_gev": raw, "sigma_fit_gev": fit, "gain": raw / fit if fit > 0 else float("nan")}
        rows.append(f"| {name} | {1e3 * raw:.1f} | {1e3 * fit:.1f} | {gains[name]['gain']:.2f} |")
    ctx.extra["kinfit_resolution"] = gains
    import json

    path = ctx.path("kinfit", "kinfit_summary.json")
    path.write_text(json.dumps({"converged_fraction": conv, "resolution": gains}, indent=1, allow_nan=True))
    ctx.products["kinfit_summary"] = path
    conv_txt = ", ".join(f"{k} {100 * v:.1f}%" for k, v in conv.items() if np.isfinite(v))
    ctx.report.append(
        "## Kinematic fit\n\n4C fit (energy-momentum conservation) of the three photons of every pre-selected event. "
        f"Converged fits: {conv_txt}.\n\nDiphoton-mass resolution of the truth-matched signal pairs "
        "(half the central 68% interval of M_gg - m_a):\n\n" + "\n".join(rows) + "\n"
    )


# --------------------------------------------------------------------------- selector


#: Selector training sizes of the demo (full / small). The demo shows the chain:
#: these are deliberately modest (a physics-grade training uses ~200 masses,
#: thousands of events each and hundreds of Punzi epochs, see ``bumphunt selector train``).
SELECTOR_SETTINGS: dict[str, dict[str, Any]] = {
    "full": {"n_masses": 24, "n_per_mass": 1500, "heldout": 3, "pretrain_epochs": 10, "punzi_epochs": 80, "patience": 30},
    "small": {"n_masses": 6, "n_per_mass": 500, "heldout": 0, "pretrain_epochs": 3, "punzi_epochs": 15, "patience": 10},
}
#: Mass range (GeV) of the selector / signal-model signal grid.
GRID_RANGE = (0.2, 9.6)


def _signal_grid(ctx: DemoContext, settings: dict[str, Any]) -> tuple[dict[str, np.ndarray], dict[float, int]]:
    """Signal MC on a mass grid: generated, pre-selected and kinematically fitted (one combined three-photon dict)."""
    from .. import toymc
    from ..events.preselection import combine_three_photon, load_three_photon, preselect_files

    masses = np.round(np.linspace(*GRID_RANGE, settings["n_masses"]), 3)
    files = toymc.generate(ctx.folder("signal_grid/toymc"), lumi_fb=ctx.lumi_fb, seed=ctx.seed + 1000, signal_masses=masses,
                           n_signal_per_mass=settings["n_per_mass"], samples=["signal"], data=False)
    res = preselect_files(list(files.values()), ctx.folder("signal_grid/preselected"), beam=ctx.beam, show_progress=False,
                          allow_empty=True)
    parts = {stem: load_three_photon(r["events"]) for stem, r in res.items()}
    _kinfit_all(parts, ctx.beam)
    parts = [p for p in parts.values() if len(p["E"])]
    keys = set(parts[0]).intersection(*parts[1:])
    events = combine_three_photon([{k: p[k] for k in sorted(keys)} for p in parts])
    n_gen = {round(float(m), 6): int(settings["n_per_mass"]) for m in masses}
    return events, n_gen


def stage_selector(ctx: DemoContext) -> None:
    """Train the Punzi net on a signal-mass grid and the weighted backgrounds; select the pseudo-data.

    Sizes from ``SELECTOR_SETTINGS``. Products: the selector directory
    (``selector/model``), its summary and plots (loss curves, sensitivity vs
    mass, ...); ``ctx.extra["selected_mgg"]`` (selected pseudo-data masses),
    ``ctx.extra["selector"]`` and ``ctx.extra["signal_grid"]``.
    """
    import json

    from ..events.candidates import diphoton_candidates
    from ..errors import InputError
    from ..events.preselection import combine_three_photon
    from ..selection.network import TrainConfig, train_selector
    from ..selection.core import prepare_training_data
    from ..selection.plots import plot_all

    st = SELECTOR_SETTINGS["small" if ctx.small else "full"]
    sig_events, n_gen = _signal_grid(ctx, st)
    bkg_parts = [ev for name, ev in ctx.three_photon.items() if sample_kind(name) == "background" and len(ev["E"])]
    if not bkg_parts:
        raise InputError("selector: no background events left after the pre-selection")
    parts = [sig_events, *bkg_parts]
    keys = set(parts[0]).intersection(*parts[1:])
    train_events = combine_three_photon([{k: p[k] for k in sorted(keys)} for p in parts])
    data = prepare_training_data(train_events, n_generated=n_gen, beam=ctx.beam, heldout=st["heldout"], lumi_fb=ctx.lumi_fb,
                                 weight_lumi_fb=ctx.lumi_fb, seed=ctx.seed)
    cfg = TrainConfig(pretrain_epochs=st["pretrain_epochs"], punzi_epochs=st["punzi_epochs"], patience=st["patience"],
                      seed=ctx.seed)
    result = train_selector(data, cfg, beam=ctx.beam, compare=True)
    out = ctx.folder("selector")
    ctx.products["selector_model"] = result.selector.save(out / "model")
    summary = result.summary()
    for name, path in plot_all(result, data, out / "plots").items():
        ctx.products[f"plot_selector_{name}"] = Path(path)
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    ctx.products["selector_summary"] = out / "summary.json"

    wp = result.working_point
    thr = wp.threshold
    selected = {}
    lines = ["| sample | candidates | selected | fraction |", "|---|---:|---:|---:|"]
    for name in ("data",) + tuple(n for n in ctx.candidates if sample_kind(n) == "signal"):
        if name not in ctx.candidates or len(ctx.candidates[name]["mgg"]) == 0:
            continue
        cand = ctx.candidates[name]
        y = result.selector.apply(cand, ctx.three_photon[name], beam=ctx.beam)
        keep = y > thr
        selected[name] = keep
        lines.append(f"| {name} | {keep.size} | {int(keep.sum())} | {keep.mean():.3f} |")
    if "data" in selected:
        ctx.extra["selected_mgg"] = np.asarray(ctx.candidates["data"]["mgg"], dtype=float)[selected["data"]]
    sig_cand = diphoton_candidates(sig_events, beam=ctx.beam)
    sig_keep = result.selector.apply(sig_cand, sig_events, beam=ctx.beam) > thr
    ctx.extra["selector"] = result.selector
    ctx.extra["signal_grid"] = {"candidates": {k: np.asarray(v)[sig_keep] for k, v in sig_cand.items()}, "n_generated": n_gen,
                                "threshold": thr}
    eff = np.asarray(wp.per_mass["efficiency"], dtype=float)
    sm = np.asarray(wp.per_mass["sigma_min_pb"], dtype=float)
    ms = summary["mean_sigma_min_pb"]
    ctx.report.append(
        "## Punzi-net selector\n\n"
        f"Trained on signal at {data.n_masses} masses in [{data.masses.min():.2f}, {data.masses.max():.2f}] GeV "
        f"({st['n_per_mass']} events generated each, {int(data.heldout.sum())} held out) and the weighted toy backgrounds, "
        f"{len(data.names)} features; demo-size training ({st['pretrain_epochs']} BCE + {st['punzi_epochs']} Punzi epochs).\n\n"
        f"Working point: network output > {thr:.2f}. Mean minimum detectable cross-section over trained masses "
        f"(Punzi, a = 5, b = 1.28, {ctx.lumi_fb:g} fb^-1): Punzi net {ms['punzi']:.3g} pb, BCE only {ms['bce']:.3g} pb, "
        f"cut-based {ms['cut_based']:.3g} pb. Truth-matched signal efficiency in the mass window at the working point: "
        f"{np.nanmin(eff):.3f} - {np.nanmax(eff):.3f} (mean {np.nanmean(eff):.3f}); sigma_min from {np.nanmin(sm):.3g} to "
        f"{np.nanmax(sm[np.isfinite(sm)]) if np.isfinite(sm).any() else float('nan'):.3g} pb.\n\n"
        "Selected candidates:\n\n" + "\n".join(lines) + "\n\n"
        "![Loss curves](selector/plots/loss_curves.png)\n\n"
        "![Sensitivity vs mass](selector/plots/sensitivity_vs_mass.png)\n\n"
        "Model: `selector/model`, summary: `selector/summary.json`.\n"
    )
    ctx.extra["selector_summary"] = {"threshold": thr, "mean_efficiency": float(np.nanmean(eff)),
                                     "mean_sigma_min_pb": ms["punzi"]}


# --------------------------------------------------------------------------- signal model


def stage_signal_model(ctx: DemoContext) -> None:
    """Signal model from the selected signal-grid MC (DSCB + Chebyshev per mass, interpolated); saved with its plots.

    The efficiency is truth-matched selected candidates / events generated.
    Puts the model in ``ctx.extra["signal_model"]`` for the scan.
    """
    from signal_models import build_signal_model
    from signal_models.plots import plot_all

    from ..errors import InputError

    grid = ctx.extra.get("signal_grid")
    if grid is None:
        raise InputError("signal_model stage needs the selector stage (selected signal-grid candidates)")
    cand = grid["candidates"]
    model = build_signal_model(
        np.asarray(cand["mgg"], dtype=float), np.asarray(cand["truth_match"], dtype=bool),
        np.round(np.asarray(cand["mc_ma"], dtype=float), 6), n_generated=grid["n_generated"],
        min_events=50 if ctx.small else 100, n_prepass=3 if ctx.small else 8,
        selection={"selector": "selector/model", "working_point": grid["threshold"], "kinematic_fit": True},
    )
    path = model.save(ctx.path("signal_model", "signal_model.json"))
    ctx.products["signal_model"] = Path(path)
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    for p in plot_all(model, ctx.folder("signal_model/plots"), max_mass_plots=4 if ctx.small else 6):
        ctx.products[f"plot_signal_model_{Path(p).stem}"] = Path(p)
    plt.close("all")
    ctx.extra["signal_model"] = model
    lo, hi = model.mass_range
    m = np.linspace(lo, hi, 5)
    eff = np.asarray(model.efficiency(m), dtype=float)
    sig = [model.shape(x) for x in m]
    n_bad = sum(not f.ok for f in model.fits)
    ctx.report.append(
        "## Signal model\n\n"
        f"Fitted {len(model.fits)} generated masses ({n_bad} skipped or failed), interpolated over "
        f"[{lo:.3f}, {hi:.3f}] GeV. Efficiency (truth-matched selected / generated) at "
        + ", ".join(f"{x:.2f} GeV: {e:.3f}" for x, e in zip(m, eff)) + ".\n\n"
        + ("Core width: " + ", ".join(f"{x:.2f} GeV: {1e3 * s.sigma:.1f} MeV" for x, s in zip(m, sig)) + ".\n\n"
           if all(hasattr(s, "sigma") for s in sig) else "")
        + "Model: `signal_model/signal_model.json`, plots in `signal_model/plots/`.\n"
    )


#: The demo stages in order; "report" must stay last.
STAGES: list[tuple[str, Callable[[DemoContext], None]]] = [
    ("generate", stage_generate),
    ("preselect", stage_preselect),
    ("kinfit", stage_kinfit),
    ("candidates", stage_candidates),
    ("plots", stage_plots),
    ("selector", stage_selector),
    ("signal_model", stage_signal_model),
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

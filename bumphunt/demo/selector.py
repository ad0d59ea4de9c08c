"""The demo's Punzi-net selector: trained on a signal-mass grid and the weighted backgrounds, applied to the pseudo-data."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError
from .samples import ChainedSamples
from .settings import GRID_RANGE, DemoSettings, StepOutput, sample_kind

logger = logging.getLogger(__name__)

__all__ = ["SignalGrid", "SelectorStep", "signal_grid", "train_and_select"]


@dataclass(frozen=True)
class SignalGrid:
    """Signal MC on a mass grid: pre-selected files (their metadata give N_gen per mass) and the fitted events."""

    files: tuple[Path, ...]
    events: dict[str, np.ndarray]
    n_generated: dict[float, int]


@dataclass(frozen=True)
class SelectorStep:
    """The trained selector and what it selected.

    Attributes
    ----------
    model_dir : Path
        The saved selector.
    working_point : float
        Cut on the network output (candidates with output >= it are selected).
    data_mgg : ndarray
        M_gg (GeV) of every pseudo-data candidate.
    data_score : ndarray
        Selector output of every pseudo-data candidate.
    output : StepOutput
    """

    model_dir: Path
    working_point: float
    data_mgg: np.ndarray
    data_score: np.ndarray
    output: StepOutput


def signal_grid(settings: DemoSettings) -> SignalGrid:
    """Signal toy MC at ``n_masses`` masses in ``GRID_RANGE``: generated, pre-selected, through the event chain."""
    from .. import toymc
    from ..chain import candidates_from_three_photon
    from ..events import combine_three_photon, load_three_photon, preselect_files

    sizes = settings.sizes
    masses = np.round(np.linspace(*GRID_RANGE, sizes["n_masses"]), 3)
    files = toymc.generate(settings.folder("signal_grid", "toymc"), lumi_fb=settings.lumi_fb, seed=settings.seed + 1000,
                           signal_masses=masses, n_signal_per_mass=sizes["n_per_mass"], samples=["signal"], data=False)
    res = preselect_files(list(files.values()), settings.folder("signal_grid", "preselected"), beam=settings.beam,
                          show_progress=False, allow_empty=True)
    paths = tuple(Path(r.events) for r in res.values())
    parts = [candidates_from_three_photon(load_three_photon(p), beam=settings.beam).events for p in paths]
    parts = [p for p in parts if len(p.get("E", ()))]
    keys = set(parts[0]).intersection(*parts[1:])
    events = combine_three_photon([{k: p[k] for k in sorted(keys)} for p in parts])
    n_gen = {round(float(m), 6): int(sizes["n_per_mass"]) for m in masses}
    return SignalGrid(paths, events, n_gen)


def train_and_select(settings: DemoSettings, samples: ChainedSamples, grid: SignalGrid) -> SelectorStep:
    """Train the selector (``bumphunt.selection.train_from_config``) and select the pseudo-data (``bumphunt.chain``)."""
    from ..chain import candidates_from_three_photon
    from ..events import combine_three_photon
    from ..selection.from_config import train_from_config

    sizes = settings.sizes
    background = [ev for name, ev in samples.three_photon.items() if sample_kind(name) == "background" and len(ev.get("E", ()))]
    if not background:
        raise InputError("selector: no background events left after the pre-selection")
    parts = [grid.events, *background]
    keys = set(parts[0]).intersection(*parts[1:])
    train_events = combine_three_photon([{k: p[k] for k in sorted(keys)} for p in parts])
    config = {"heldout": sizes["heldout"], "lumi_fb": settings.lumi_fb, "weight_lumi_fb": settings.lumi_fb, "seed": settings.seed,
              "training": {"pretrain_epochs": sizes["pretrain_epochs"], "punzi_epochs": sizes["punzi_epochs"],
                           "patience": sizes["patience"], "punzi_learning_rate": 1e-3}}
    trained = train_from_config(config, out_dir=settings.folder("selector"), events=train_events, n_generated=grid.n_generated,
                                beam=settings.beam)
    selector = trained.training.selector
    wp = float(trained.training.working_point.threshold)
    lines = ["| sample | candidates | selected | fraction |", "|---|---:|---:|---:|"]
    data_mgg = np.zeros(0)
    data_score = np.zeros(0, dtype=np.float32)
    for name in ("data", *(n for n in samples.candidates if sample_kind(n) == "signal")):
        if name not in samples.candidates or len(samples.candidates[name]["mgg"]) == 0:
            continue
        out = candidates_from_three_photon(samples.three_photon[name], beam=settings.beam, selector=selector, working_point=wp)
        keep = out.selected
        lines.append(f"| {name} | {keep.size} | {int(keep.sum())} | {keep.mean():.3f} |")
        if name == "data":
            data_mgg, data_score = np.asarray(out.candidates["mgg"], dtype=float), np.asarray(out.score)
    wpr = trained.training.working_point
    eff = np.asarray(wpr.per_mass["efficiency"], dtype=float)
    sm = np.asarray(wpr.per_mass["sigma_min_pb"], dtype=float)
    ms = trained.mean_sigma_min_pb
    section = (
        "## Punzi-net selector\n\n"
        f"Trained on signal at {trained.data.n_masses} masses in [{trained.data.masses.min():.2f}, {trained.data.masses.max():.2f}] GeV "
        f"({sizes['n_per_mass']} events generated each, {int(trained.data.heldout.sum())} held out) and the weighted toy backgrounds, "
        f"{len(trained.data.names)} features; demo-size training ({sizes['pretrain_epochs']} BCE + {sizes['punzi_epochs']} Punzi epochs).\n\n"
        f"Working point: network output >= {wp:.2f}. Mean minimum detectable cross-section over trained masses "
        f"(Punzi, a = 5, b = 1.28, {settings.lumi_fb:g} fb^-1): Punzi net {ms['punzi']:.3g} pb, BCE only {ms['bce']:.3g} pb, "
        f"cut-based {ms['cut_based']:.3g} pb. Truth-matched signal efficiency in the mass window at the working point: "
        f"{np.nanmin(eff):.3f} - {np.nanmax(eff):.3f} (mean {np.nanmean(eff):.3f}); sigma_min from {np.nanmin(sm):.3g} to "
        f"{np.nanmax(sm[np.isfinite(sm)]) if np.isfinite(sm).any() else float('nan'):.3g} pb.\n\n"
        "Selected candidates:\n\n" + "\n".join(lines) + "\n\n"
        "![Loss curves](selector/plots/loss_curves.png)\n\n"
        "![Sensitivity vs mass](selector/plots/sensitivity_vs_mass.png)\n\n"
        "Model: `selector/model`, summary: `selector/summary.json`.\n"
    )
    products: dict[str, Path] = {"selector_model": trained.model_dir, "selector_summary": trained.summary_file}
    products.update({f"plot_selector_{k}": Path(v) for k, v in trained.plots.items()})
    summary = (f"Selector: working point {wp:.2f}, mean truth-matched signal efficiency {np.nanmean(eff):.3f}, mean sigma_min "
               f"{ms['punzi']:.3g} pb; {int(np.count_nonzero(data_score >= wp))} pseudo-data candidates selected.")
    return SelectorStep(trained.model_dir, wp, data_mgg, data_score, StepOutput(products, section, summary))

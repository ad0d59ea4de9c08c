"""The demo's toy samples: generated, pre-selected, and run through the event chain (4C fit, diphoton candidates)."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .settings import DemoSettings, StepOutput, sample_kind

logger = logging.getLogger(__name__)

__all__ = ["ToySamples", "ChainedSamples", "generate_samples", "preselect_samples", "chain_samples", "plot_samples"]


@dataclass(frozen=True)
class ToySamples:
    """Toy-MC ROOT files by sample name (``signal_m...``, backgrounds, ``mumug``, ``data``)."""

    files: dict[str, Path]
    output: StepOutput


@dataclass(frozen=True)
class ChainedSamples:
    """Every sample after the event chain.

    Attributes
    ----------
    three_photon : dict
        Sample -> pre-selected three-photon events with the kinematic-fit keys.
    candidates : dict
        Sample -> its diphoton candidates (``mgg`` from the fitted photons).
    preselected : dict
        Sample -> pre-selected ROOT file.
    cutflow : CutFlow
        The cut flow of all samples together.
    kinfit_gain : dict
        Signal sample -> ``{"sigma_raw_gev", "sigma_fit_gev", "gain"}`` of its truth-matched M_gg.
    """

    three_photon: dict[str, dict[str, np.ndarray]]
    candidates: dict[str, dict[str, np.ndarray]]
    preselected: dict[str, Path]
    cutflow: Any
    kinfit_gain: dict[str, dict[str, float]] = field(default_factory=dict)


def generate_samples(settings: DemoSettings) -> ToySamples:
    """Toy MC of the signal and background processes and pseudo-data at ``settings.lumi_fb``."""
    from .. import toymc

    config = None
    if settings.small:
        # a fifth of the default MC sizes (the toy-MC configuration documents these keys)
        defaults = toymc.load_toymc_config(None)
        config = {"signal": {"n_per_mass": 800},
                  "backgrounds": {p: max(int(n) // 5, 200) for p, n in defaults["backgrounds"].items()},
                  "control": {"n": 500}}
    files = {str(k): Path(v) for k, v in toymc.generate(settings.folder("toymc"), lumi_fb=settings.lumi_fb, seed=settings.seed,
                                                        config=config).items()}
    section = ("## Toy MC\n\n"
               f"Generated at {settings.lumi_fb:g} fb^-1 with seed {settings.seed}, sqrt(s) = {settings.beam.sqrt_s:.3f} GeV:\n\n"
               + "".join(f"- `{name}`: `{settings.relative(p)}`\n" for name, p in files.items()))
    return ToySamples(files, StepOutput({f"toymc_{k}": v for k, v in files.items()}, section))


def preselect_samples(settings: DemoSettings, samples: ToySamples) -> tuple[dict[str, Path], Any, StepOutput]:
    """Pre-select every sample: three-photon files, the combined cut flow (JSON and Markdown)."""
    from ..events import preselect_files

    results = preselect_files(list(samples.files.values()), settings.folder("preselected"), beam=settings.beam, show_progress=False)
    by_source = {Path(r.source): r for r in results.values()}
    files: dict[str, Path] = {}
    total = None
    for name, path in samples.files.items():
        r = by_source[path]
        files[name] = Path(r.events)
        total = r.cutflow if total is None else total + r.cutflow
    products = {f"preselected_{k}": v for k, v in files.items()}
    products["cutflow_json"] = total.to_json(settings.path("cutflow.json"))
    md = settings.path("cutflow.md")
    md.write_text("# Pre-selection cut flow\n\n" + total.to_markdown())
    products["cutflow_md"] = md
    section = ("## Pre-selection\n\nPer process: events / weighted yield (events expected at the sample luminosity) "
               "(cumulative efficiency) after each cut:\n\n" + total.to_markdown(by="process"))
    return files, total, StepOutput(products, section)


def _mass_resolution(cand: dict[str, np.ndarray], key: str) -> float:
    """Robust core width (GeV) of ``key - mc_ma`` of truth-matched candidates: half the central 68% interval."""
    tm = np.asarray(cand["truth_match"], dtype=bool)
    if tm.sum() < 10:
        return float("nan")
    d = np.asarray(cand[key], dtype=float)[tm] - np.asarray(cand["mc_ma"], dtype=float)[tm]
    lo, hi = np.percentile(d, [16.0, 84.0])
    return float(0.5 * (hi - lo))


def chain_samples(settings: DemoSettings, preselected: dict[str, Path], cutflow: Any) -> tuple[ChainedSamples, list[StepOutput]]:
    """The event chain (``bumphunt.chain``: 4C fit, diphoton candidates) on every pre-selected sample.

    Returns the chained samples and the report steps of the kinematic fit and of the candidates.
    """
    from ..chain import candidates_from_three_photon
    from ..events import load_three_photon

    three: dict[str, dict[str, np.ndarray]] = {}
    cands: dict[str, dict[str, np.ndarray]] = {}
    converged: dict[str, float] = {}
    for name, path in preselected.items():
        out = candidates_from_three_photon(load_three_photon(path), beam=settings.beam, kinematic_fit=True)
        three[name], cands[name] = out.events, out.candidates
        n = len(out.events.get("E", ()))
        converged[name] = float(np.mean(out.events["kinfit_converged"])) if n else float("nan")
    gains: dict[str, dict[str, float]] = {}
    rows = ["| signal sample | sigma(M_gg) raw [MeV] | sigma(M_gg) fitted [MeV] | gain (raw / fitted) |", "|---|---:|---:|---:|"]
    for name, c in cands.items():
        if sample_kind(name) != "signal" or len(c["mgg"]) == 0:
            continue
        raw, fit = _mass_resolution(c, "mgg_raw"), _mass_resolution(c, "mgg")
        gains[name] = {"sigma_raw_gev": raw, "sigma_fit_gev": fit, "gain": raw / fit if fit > 0 else float("nan")}
        rows.append(f"| {name} | {1e3 * raw:.1f} | {1e3 * fit:.1f} | {gains[name]['gain']:.2f} |")
    summary_path = settings.path("kinfit", "kinfit_summary.json")
    summary_path.write_text(json.dumps({"converged_fraction": converged, "resolution": gains}, indent=1, allow_nan=True))
    conv_txt = ", ".join(f"{k} {100 * v:.1f}%" for k, v in converged.items() if np.isfinite(v))
    kinfit_step = StepOutput(
        {"kinfit_summary": summary_path},
        "## Kinematic fit\n\n4C fit (energy-momentum conservation) of the three photons of every pre-selected event. "
        f"Converged fits: {conv_txt}.\n\nDiphoton-mass resolution of the truth-matched signal pairs "
        "(half the central 68% interval of M_gg - m_a):\n\n" + "\n".join(rows) + "\n",
        (f"Kinematic fit: signal M_gg resolution improved by a factor {min(g['gain'] for g in gains.values()):.2f} - "
         f"{max(g['gain'] for g in gains.values()):.2f}." if gains else ""),
    )
    lines = ["| sample | events | candidates | truth-matched | weighted candidates |", "|---|---:|---:|---:|---:|"]
    for name, c in cands.items():
        lines.append(f"| {name} | {len(three[name].get('E', ()))} | {len(c['mgg'])} | {int(np.sum(c['truth_match']))} | "
                     f"{np.sum(c['weight']):.4g} |")
    cand_step = StepOutput({}, "## Diphoton candidates\n\nThree candidates (photon pairs) per event; truth-matched = the pair "
                               "is the true ALP (or P meson) pair.\n\n" + "\n".join(lines) + "\n")
    kept = {k: sum(len(three[n].get("E", ())) for n in three if sample_kind(n) == k) for k in ("signal", "background", "data")}
    chained = ChainedSamples(three, cands, dict(preselected), cutflow, gains)
    pre_line = "Pre-selection: " + ", ".join(f"{k} {v} events kept" for k, v in kept.items()) + " (cut flow: `cutflow.md`)."
    return chained, [StepOutput({}, "", pre_line), kinfit_step, cand_step]


def plot_samples(settings: DemoSettings, chained: ChainedSamples) -> StepOutput:
    """M_gg per sample (all and truth-matched pairs) and the stacked weighted spectrum with signal and pseudo-data."""
    import logging as _logging

    import matplotlib

    matplotlib.use("Agg", force=False)
    _logging.getLogger("matplotlib.mathtext").setLevel(_logging.ERROR)

    from signal_models._common import plotstyle

    from .plots import plot_mgg_per_sample, plot_mgg_stacked

    products = {}
    with plotstyle.style():
        fig = plot_mgg_per_sample(chained.candidates, lumi_fb=settings.lumi_fb, sqrt_s=settings.beam.sqrt_s)
        products["plot_mgg_per_sample"] = plotstyle.save(fig, settings.path("plots", "mgg_per_sample.png"))
        fig = plot_mgg_stacked(chained.candidates, lumi_fb=settings.lumi_fb, sqrt_s=settings.beam.sqrt_s)
        products["plot_mgg_stacked"] = plotstyle.save(fig, settings.path("plots", "mgg_stacked.png"))
    return StepOutput(products, (
        "## Plots\n\n"
        "Diphoton mass of all three pairs per event, per sample, with the truth-matched pairs:\n\n"
        "![M_gg per sample](plots/mgg_per_sample.png)\n\n"
        "Weighted backgrounds stacked (events at the sample luminosity), signal overlaid (scaled), pseudo-data:\n\n"
        "![M_gg stacked](plots/mgg_stacked.png)\n"
    ))

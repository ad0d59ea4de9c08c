"""Diphoton-mass plots of the demo: each sample with its truth-matched pairs, and the stacked weighted spectrum."""

from __future__ import annotations

from typing import Any

import numpy as np

from signal_models._common import plotstyle

from .settings import sample_kind

__all__ = ["plot_mgg_per_sample", "plot_mgg_stacked", "process_colours", "MGG_BINS", "PROCESS_COLOURS"]

#: Binning of the demo M_gg plots (GeV).
MGG_BINS = np.linspace(0.0, 10.5, 211)

#: Colours of the processes in a stacked plot, the pseudo-data being black: each next colour is the one
#: (of Kelly's colours of maximum contrast and matplotlib's tab10) farthest from all before it in CIELAB,
#: so any first k of them differ by at least a CIE76 colour difference of 28 (k <= 15).
PROCESS_COLOURS = (
    "#DCD300", "#d62728", "#A1CAF1", "#008856", "#e377c2", "#8c564b", "#F38400", "#0067A5",
    "#C2B280", "#F99379", "#2ca02c", "#17becf", "#2B3D26", "#875692", "#848482",
)


def process_colours(n: int) -> list[str]:
    """``n`` process colours from ``PROCESS_COLOURS`` (repeating only beyond its 15)."""
    return [PROCESS_COLOURS[i % len(PROCESS_COLOURS)] for i in range(n)]


def plot_mgg_per_sample(candidates: dict[str, dict[str, np.ndarray]], *, bins: np.ndarray = MGG_BINS, lumi_fb: float | None = None,
                        sqrt_s: float | None = None) -> Any:
    """One panel per sample: M_gg (GeV) of all candidates and of the truth-matched ones (unweighted counts)."""
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


def plot_mgg_stacked(candidates: dict[str, dict[str, np.ndarray]], *, bins: np.ndarray = MGG_BINS, lumi_fb: float | None = None,
                     sqrt_s: float | None = None, signal_scale: float = 100.0) -> Any:
    """Weighted backgrounds stacked (one colour each), signal samples overlaid (times ``signal_scale``), pseudo-data as points."""
    import matplotlib.pyplot as plt
    import mplhep

    fig, ax = plt.subplots(figsize=(11.0, 7.5), layout="constrained")
    kinds = {n: sample_kind(n) for n in candidates}
    bkg = {n: c for n, c in candidates.items() if kinds[n] == "background" and len(c["mgg"])}
    sig = {n: c for n, c in candidates.items() if kinds[n] == "signal" and len(c["mgg"])}
    # one colour per process: the backgrounds' fills, then the signals' lines (PROCESS_COLOURS)
    colours = process_colours(len(bkg) + len(sig))
    bkg_colors, sig_colors = colours[: len(bkg)], colours[len(bkg) :]
    ymax = 1.0
    curves = []
    if bkg:
        order = sorted(bkg, key=lambda n: bkg[n]["weight"].sum())
        hs = [np.histogram(bkg[n]["mgg"], bins=bins, weights=bkg[n]["weight"])[0] for n in order]
        mplhep.histplot(hs, bins, ax=ax, stack=True, histtype="fill", label=order, alpha=0.85, color=bkg_colors)
        total = np.sum(hs, axis=0)
        ymax = max(ymax, float(total.max()))
        curves.append((0.5 * (bins[1:] + bins[:-1]), total))
    for (n, c), col in zip(sig.items(), sig_colors):
        h, _ = np.histogram(c["mgg"], bins=bins, weights=c["weight"] * signal_scale)
        mplhep.histplot(h, bins, ax=ax, histtype="step", lw=1.5, color=col, label=f"{n} x {signal_scale:g}")
        curves.append((0.5 * (bins[1:] + bins[:-1]), h))
    if "data" in candidates and len(candidates["data"]["mgg"]):
        h, _ = np.histogram(candidates["data"]["mgg"], bins=bins)
        mplhep.histplot(h, bins, ax=ax, histtype="errorbar", yerr=np.sqrt(h), color="black", label="pseudo-data")
        ymax = max(ymax, float(h.max()))
        curves.append((0.5 * (bins[1:] + bins[:-1]), h))
    ax.set_xlabel(r"$M_{\gamma\gamma}$ [GeV]")
    ax.set_ylabel(f"candidates / {bins[1] - bins[0]:.2g} GeV")
    ax.set_yscale("log")
    ax.set_ylim(1e-2, ymax * 30)
    plotstyle.place_legend(ax, curves, fontsize="xx-small", ncol=3)
    plotstyle.label(ax, lumi_fb=lumi_fb, sqrt_s=sqrt_s)
    return fig

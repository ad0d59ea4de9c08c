"""Plots of the Punzi-net selector: training curves, outputs, sensitivity vs mass, data/MC.

Every function draws one figure with the package style, saves it when
``path`` is given and returns the figure (or a dict of figures/numbers), so
tutorials can show it inline.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from signal_models._common.plotstyle import label, new_figure, save, style

from ..errors import InputError
from ..events.schema import PROCESS_NAMES

if TYPE_CHECKING:  # annotations only
    from .training import TrainingResult
    from .training_data import PunziData

logger = logging.getLogger(__name__)

__all__ = [
    "plot_loss_curves",
    "plot_output_distributions",
    "plot_sensitivity_vs_mass",
    "plot_generalisation",
    "data_mc_chi2",
    "plot_data_mc",
    "plot_all",
]


def _finish(fig: Any, path: str | Path | None) -> Any:
    if path is not None:
        save(fig, path)
    return fig


def plot_loss_curves(result: TrainingResult, path: str | Path | None = None) -> Any:
    """BCE pre-training loss and Punzi loss (training and validation) per epoch."""
    import matplotlib.pyplot as plt

    with style():
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(13, 5))
        pre = result.pretrain_history
        if pre.get("loss"):
            a1.plot(np.arange(1, len(pre["loss"]) + 1), pre["loss"], label="training")
            a1.plot(np.arange(1, len(pre["val_loss"]) + 1), pre["val_loss"], label="validation")
        a1.set_xlabel("epoch")
        a1.set_ylabel("weighted BCE")
        a1.set_title("BCE pre-training", loc="left", fontsize="medium")
        a1.legend()
        h = result.history
        ylab = "mean $\\sigma_{min}$ [pb]" if result.selector.metadata["training_config"]["loss"] == "punzi" else "$-$ mean $Z_A$"
        if h.get("loss"):
            a2.plot(h["epoch"], h["loss"], label="training")
            a2.plot(h["epoch"], h["val_loss"], label="validation")
        a2.set_xlabel("epoch")
        a2.set_ylabel(ylab)
        a2.set_title("Punzi-loss training", loc="left", fontsize="medium")
        a2.legend()
        fig.tight_layout()
    return _finish(fig, path)


def plot_output_distributions(data: PunziData, outputs: NDArray, *, threshold: float | None = None, bce_outputs: NDArray | None = None,
                              path: str | Path | None = None) -> Any:
    """Network output for truth-matched signal (all masses) and weighted background, unit-normalised."""
    with style():
        fig, ax = new_figure()
        bins = np.linspace(0, 1, 41)
        sig = (data.label == 1) & data.in_window
        bkg = data.label == 0
        for y, ls, tag in ((outputs, "-", "Punzi net"), (bce_outputs, ":", "BCE only")):
            if y is None:
                continue
            ax.hist(y[sig], bins=bins, density=True, histtype="step", lw=2, ls=ls, color="C0", label=f"signal (TM), {tag}")
            ax.hist(y[bkg], bins=bins, weights=data.weight[bkg], density=True, histtype="step", lw=2, ls=ls, color="C3",
                    label=f"background, {tag}")
        if threshold is not None:
            ax.axvline(threshold, color="k", ls="--", label=f"working point {threshold:.2f}")
        ax.set_yscale("log")
        ax.set_xlabel("network output")
        ax.set_ylabel("normalised density")
        ax.legend(fontsize="small")
        label(ax, lumi_fb=data.lumi_fb)
    return _finish(fig, path)


def plot_sensitivity_vs_mass(result: TrainingResult, data: PunziData, path: str | Path | None = None) -> Any:
    """sigma_min vs m_a for the Punzi net, the BCE-only net (each at its best global cut) and the cut-based selection."""
    with style():
        fig, (ax, rax) = new_figure(ratio=True)
        m = data.masses
        curves = [
            ("Punzi net", result.working_point.per_mass["sigma_min_pb"], result.working_point.mean_sigma_min_pb, "C0"),
            ("BCE only", result.bce_working_point.per_mass["sigma_min_pb"], result.bce_working_point.mean_sigma_min_pb, "C1"),
            ("cut-based", result.cut_based["per_mass"]["sigma_min_pb"], result.cut_based["mean_sigma_min_pb"], "C2"),
        ]
        for name, s, mean, c in curves:
            ax.plot(m[data.trained], s[data.trained], "o-", ms=3, color=c, label=f"{name} (mean {mean:.3g} pb)")
            if data.heldout.any():
                ax.plot(m[data.heldout], s[data.heldout], "s", mfc="none", color=c)
        ref = curves[2][1]
        for _name, s, _, c in curves[:2]:
            rax.plot(m[data.trained], s[data.trained] / ref[data.trained], "o-", ms=3, color=c)
        rax.axhline(1.0, color="k", lw=1)
        rax.set_ylabel("/ cuts", fontsize="small")
        rax.set_xlabel("$m_a$ [GeV]")
        ax.set_ylabel("$\\sigma_{min}$ [pb]")
        ax.legend(fontsize="small", title="open squares: held-out masses", title_fontsize="x-small")
        label(ax, lumi_fb=data.lumi_fb)
    return _finish(fig, path)


def plot_generalisation(result: TrainingResult, data: PunziData, path: str | Path | None = None) -> Any:
    """Held-out-mass sensitivity vs interpolation between trained neighbours."""
    rows = result.generalisation
    with style():
        fig, (ax, rax) = new_figure(ratio=True)
        s = result.working_point.per_mass["sigma_min_pb"]
        ax.plot(data.masses[data.trained], s[data.trained], "o-", ms=3, label="trained masses")
        if rows:
            hm = np.array([r["mass"] for r in rows])
            ax.plot(hm, [r["sigma_min_pb"] for r in rows], "s", color="C3", label="held-out masses")
            ax.plot(hm, [r["interpolated_pb"] for r in rows], "x", color="k", label="interpolation")
            ratios = np.array([r["ratio"] for r in rows])
            unc = np.array([r.get("ratio_stat_unc", 0.0) for r in rows])
            rax.errorbar(hm, ratios, yerr=unc, fmt="s", color="C3")
            rax.set_ylim(min(0.8, ratios.min() - 0.05), max(1.2, ratios.max() + 0.05))
        rax.axhspan(0.9, 1.1, color="0.85", label="+-10%")
        rax.axhline(1.0, color="k", lw=1)
        rax.set_ylabel("ratio", fontsize="small")
        rax.set_xlabel("$m_a$ [GeV]")
        ax.set_ylabel("$\\sigma_{min}$ [pb]")
        ax.legend(fontsize="small")
        label(ax, lumi_fb=data.lumi_fb)
    return _finish(fig, path)


def data_mc_chi2(data_counts: NDArray, mc_counts: NDArray, mc_sumw2: NDArray) -> tuple[float, int]:
    """Pearson-like chi2 of data vs summed MC per bin, variance = data (Poisson, MC expectation if 0) + MC sumw2.

    Bins with neither data nor MC are skipped; returns ``(chi2, ndf)``.
    """
    use = (data_counts > 0) | (mc_counts > 0)
    var = np.where(data_counts > 0, data_counts, mc_counts) + mc_sumw2
    var = np.where(var > 0, var, 1.0)
    chi2 = float(np.sum(((data_counts - mc_counts) ** 2 / var)[use]))
    return chi2, int(use.sum())


def plot_data_mc(
    mc: Mapping[str, NDArray],
    mc_weight: NDArray,
    mc_process: NDArray,
    data: Mapping[str, NDArray],
    names: Sequence[str],
    *,
    bins: int = 30,
    out_dir: str | Path | None = None,
    lumi_fb: float | None = None,
) -> dict[str, dict[str, Any]]:
    """Stacked weighted MC (by process) vs (toy) data per variable, with a ratio panel and chi2.

    Parameters
    ----------
    mc, data : mapping
        Columns per variable name (features, ``punzi_net`` ...).
    mc_weight : ndarray
        MC weights normalised to the data luminosity.
    mc_process : ndarray
        Process code per MC row (``bumphunt.events.schema.PROCESS_CODES``).
    names : sequence of str
        Variables to draw.

    Returns
    -------
    dict
        name -> {"chi2": ..., "ndf": ..., "figure": fig, "path": path or None}.
    """
    out: dict[str, dict[str, Any]] = {}
    w = np.asarray(mc_weight, dtype=float)
    procs = np.unique(mc_process)
    for name in names:
        if name not in mc or name not in data:
            raise InputError(f"data/MC comparison: variable {name!r} missing from {'MC' if name not in mc else 'data'}")
        x_mc, x_d = np.asarray(mc[name], dtype=float), np.asarray(data[name], dtype=float)
        lo, hi = np.percentile(np.concatenate([x_mc, x_d]), [0.5, 99.5])
        if hi <= lo:
            hi = lo + 1.0
        edges = np.linspace(lo, hi, bins + 1)
        centers = 0.5 * (edges[1:] + edges[:-1])
        with style():
            fig, (ax, rax) = new_figure(ratio=True)
            stack = [np.histogram(np.clip(x_mc[mc_process == p], lo, hi), edges, weights=w[mc_process == p])[0] for p in procs]
            ax.hist([centers] * len(procs), bins=edges, weights=stack, stacked=True, histtype="stepfilled", alpha=0.7,
                    label=[PROCESS_NAMES.get(int(p), str(p)) for p in procs])
            tot = np.sum(stack, axis=0)
            sumw2 = np.histogram(np.clip(x_mc, lo, hi), edges, weights=w * w)[0]
            nd = np.histogram(np.clip(x_d, lo, hi), edges)[0].astype(float)
            ax.errorbar(centers, nd, yerr=np.sqrt(nd), fmt="ko", ms=4, label="data")
            chi2, ndf = data_mc_chi2(nd, tot, sumw2)
            ax.set_ylabel("candidates / bin")
            ax.set_yscale("log")
            top = max(float(np.max(tot)), float(np.max(nd)), 1.0)
            ax.set_ylim(0.5, top * 300)
            ax.legend(title=f"$\\chi^2$/ndf = {chi2:.1f}/{ndf}", fontsize="xx-small", title_fontsize="x-small", ncol=3, loc="upper center")
            ratio = np.divide(nd, tot, out=np.full_like(nd, np.nan), where=tot > 0)
            rerr = np.divide(np.sqrt(nd), tot, out=np.zeros_like(nd), where=tot > 0)
            rax.errorbar(centers, ratio, yerr=rerr, fmt="ko", ms=3)
            band = np.divide(np.sqrt(sumw2), tot, out=np.zeros_like(tot), where=tot > 0)
            rax.fill_between(edges, np.append(1 - band, 1 - band[-1]), np.append(1 + band, 1 + band[-1]), step="post", color="0.8")
            rax.axhline(1.0, color="k", lw=1)
            rax.set_ylim(0.5, 1.5)
            rax.set_ylabel("data / MC")
            rax.set_xlabel(name)
            label(ax, lumi_fb=lumi_fb)
        path = None
        if out_dir is not None:
            path = save(fig, Path(out_dir) / f"datamc_{name}.png")
        out[name] = {"chi2": chi2, "ndf": ndf, "figure": fig, "path": str(path) if path else None}
    return out


def plot_all(result: TrainingResult, data: PunziData, out_dir: str | Path) -> dict[str, str]:
    """Write the standard training plots into ``out_dir`` (figures closed afterwards); returns name -> path."""
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    paths = {
        "loss_curves": out_dir / "loss_curves.png",
        "outputs": out_dir / "output_distributions.png",
        "sensitivity": out_dir / "sensitivity_vs_mass.png",
        "generalisation": out_dir / "generalisation.png",
    }
    figures = [
        plot_loss_curves(result, paths["loss_curves"]),
        plot_output_distributions(data, result.outputs, threshold=result.working_point.threshold, bce_outputs=result.bce_outputs,
                                  path=paths["outputs"]),
        plot_sensitivity_vs_mass(result, data, paths["sensitivity"]),
        plot_generalisation(result, data, paths["generalisation"]),
    ]
    for fig in figures:
        plt.close(fig)
    return {k: str(v) for k, v in paths.items()}

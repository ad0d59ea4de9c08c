"""Plots of a signal model: parameters vs mass with bands, efficiency, per-mass fits with pulls.

matplotlib and mplhep are imported inside the functions. Each function
returns the matplotlib figure; ``plot_all`` writes PNG files.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from ._common.plotstyle import fit_axis_labels, place_legend, style
from .model import SignalModel
from .model_quantities import DERIVED, curve_data

logger = logging.getLogger(__name__)

__all__ = ["plot_parameters", "plot_efficiency", "plot_mass_fit", "plot_all"]

_LABELS = {
    "mu_shift": r"$\mu - m_a$ [GeV]",
    "sigma": r"$\sigma$ [GeV]",
    "alpha_l": r"$\alpha_L$",
    "n_l": r"$n_L$",
    "alpha_r": r"$\alpha_R$",
    "n_r": r"$n_R$",
    "comb_fraction": "combinatorial fraction",
    "comb_slope": "combinatorial slope",
    "comb_level": "comb. level / phase space",
    "comb_edge": "wrong-pair edge [GeV]",
    "eff_tm": r"$\varepsilon_{TM}$",
    "eff_total": r"$\varepsilon_{total}$",
}


def _curve_axes(ax: Any, model: SignalModel, name: str, n_points: int = 400) -> list[tuple[Any, Any]]:
    """Draw one quantity vs mass; returns the drawn (x, y) curves and points (for the legend placement)."""
    lo, hi = model.mass_range
    m = np.linspace(lo, hi, n_points)
    y, band = model.parameter(name, m), model.parameter_uncertainty(name, m)
    ax.fill_between(m, y - band, y + band, color="C0", alpha=0.3, label=r"interpolation $\pm 1\sigma$")
    ax.plot(m, y, color="C0", lw=1.5, label="derived" if name in DERIVED else f"{model.curves[name].method}")
    mu, v, e = model.curve_points(name) if name in model.curves else curve_data(model.used, name)
    ax.errorbar(mu, v, yerr=e, fmt="o", color="k", ms=4, label="per-mass fits")
    drawn = [(m, y - band), (m, y), (m, y + band), (mu, v - e), (mu, v), (mu, v + e)]
    held = [f for f in model.fits if f.ok and any(abs(f.mass - h) < 1e-9 for h in model.holdout)]
    if held:
        mh, vh, eh = model.curve_points(name, held) if name in model.curves else curve_data(held, name)
        ax.errorbar(mh, vh, yerr=eh, fmt="s", color="C3", ms=5, mfc="none", label="held out")
        drawn += [(mh, vh - eh), (mh, vh), (mh, vh + eh)]
    ax.set_ylabel(_LABELS.get(name, name), fontsize="small")
    return drawn


def plot_parameters(model: SignalModel) -> Any:
    """Every interpolated quantity vs mass: fitted points, interpolation and band."""
    import matplotlib.pyplot as plt

    names = ["mu_shift", "sigma", "alpha_l", "alpha_r", "n_l", "n_r", "comb_fraction", "comb_slope", "comb_level", "comb_edge"]
    need = {"comb_slope": "comb_slope", "comb_level": "comb_level", "comb_edge": "comb_edge_q"}
    names = [n for n in names if need.get(n, "mu_shift") in model.curves]
    with style():
        fig, axes = plt.subplots(5, 2, figsize=(13, 17), sharex=True, layout="constrained")
        for ax in axes.ravel()[len(names) :]:
            ax.set_visible(False)
        drawn = [_curve_axes(ax, model, name) for ax, name in zip(axes.ravel(), names, strict=False)]
        for ax in axes.ravel()[: len(names)]:
            ax.tick_params(labelsize="small")
        for ax in axes.ravel()[max(len(names) - 2, 0) : len(names)]:
            ax.xaxis.set_tick_params(labelbottom=True)
            ax.set_xlabel(r"$m_a$ [GeV]")
        fit_axis_labels(*axes.ravel()[: len(names)])
        place_legend(axes.ravel()[0], drawn[0], fontsize="x-small")
    return fig


def plot_efficiency(model: SignalModel) -> Any:
    """Truth-matched and total signal efficiency vs mass with bands."""
    import matplotlib.pyplot as plt

    with style():
        fig, ax = plt.subplots(figsize=(8, 6), layout="constrained")
        lo, hi = model.mass_range
        m = np.linspace(lo, hi, 400)
        drawn = []
        for name, color, text in (("eff_tm", "C0", "truth-matched"), ("eff_total", "C1", "total (incl. combinatorics)")):
            y, band = model.parameter(name, m), model.parameter_uncertainty(name, m)
            ax.fill_between(m, y - band, y + band, color=color, alpha=0.3)
            ax.plot(m, y, color=color, label=text)
            mu, v, e = curve_data(model.used, name)
            ax.errorbar(mu, v, yerr=e, fmt="o", color=color, ms=4)
            drawn += [(m, y - band), (m, y), (m, y + band), (mu, v - e), (mu, v), (mu, v + e)]
        ax.set_xlabel(r"$m_a$ [GeV]")
        ax.set_ylabel("signal efficiency")
        fit_axis_labels(ax)
        place_legend(ax, drawn, fontsize="small")
    return fig


def plot_mass_fit(model: SignalModel, mass: float, *, interpolated: bool = False) -> Any:
    """Binned candidates at one generated mass with the fitted (or interpolated) shape and pulls.

    Uses the histogram stored with the per-mass fit (window mu +- 20 sigma).
    """
    import matplotlib.pyplot as plt

    fit = model.fit_at(mass)
    if not fit.ok or not fit.histogram:
        raise ValueError(f"mass {mass} GeV: no fitted histogram to plot (status {fit.status!r})")
    edges = np.asarray(fit.histogram["edges"])
    counts = np.asarray(fit.histogram["counts"])
    counts_tm = np.asarray(fit.histogram["counts_tm"])
    sumw2 = np.asarray(fit.histogram["sumw2"])
    shape = model.shape(mass) if interpolated else fit.shape()
    if interpolated:
        # the interpolated shape's window differs slightly from the fit's: keep the bins inside it
        wlo, whi = shape.window(shape.comb_domain)
        first = int(np.searchsorted(edges, wlo, side="left"))
        last = int(np.searchsorted(edges, whi, side="right")) - 1
        counts, counts_tm, sumw2 = counts[first:last], counts_tm[first:last], sumw2[first:last]
        edges = edges[first : last + 1]
    lo, hi = edges[0], edges[-1]
    total = counts.sum()
    prob = np.array([shape.integral(a, b, lo, hi) for a, b in zip(edges[:-1], edges[1:], strict=True)])
    expected = total * prob
    centres = 0.5 * (edges[1:] + edges[:-1])
    # one candidate's weight (1 for unweighted MC): the error floor of a bin and the lowest count shown
    unit = float(sumw2.sum() / total) if total > 0 else 1.0
    err = np.sqrt(np.maximum(sumw2, unit * unit))
    with style():
        fig, (ax, axp) = plt.subplots(2, 1, figsize=(8, 7), sharex=True, gridspec_kw={"height_ratios": [3, 1]}, layout="constrained")
        fig.get_layout_engine().set(hspace=0.0, h_pad=0.02)
        ax.errorbar(centres, counts, yerr=err, fmt="o", color="k", ms=3, label="signal MC")
        ax.stairs(counts_tm, edges, color="C2", alpha=0.6, label="truth-matched MC")
        x = np.linspace(lo, hi, 800)
        width = (hi - lo) / (len(edges) - 1)
        ax.plot(x, total * width * shape.pdf(x, lo, hi), color="C0", label="interpolated model" if interpolated else "fit")
        ax.plot(x, total * width * shape.comb_fraction * shape.comb_pdf(x, lo, hi), color="C1", ls="--", label="combinatorial part")
        ax.set_ylabel("candidates / bin")
        ax.set_yscale("log")
        ax.set_ylim(0.5 * unit, 30.0 * max(float(counts.max()), unit))  # a decade above the peak for the legend
        pulls = (counts - expected) / np.sqrt(np.maximum(expected, 1e-9) * (sumw2.sum() / max(total, 1e-300)))
        axp.bar(centres, pulls, width=width, color="C0")
        axp.axhline(0, color="k", lw=0.8)
        axp.set_ylim(-4.5, 4.5)
        axp.set_ylabel("pull")
        axp.set_xlabel(r"$M_{\gamma\gamma}$ [GeV]")
        if interpolated:
            used = expected > 5
            text = rf"closure: $\chi^2$/ndf = {np.sum(pulls[used] ** 2):.1f}/{int(used.sum()) - 1} (bins with > 5 expected)"
        else:
            text = rf"$\chi^2$/ndf = {fit.chi2:.1f}/{fit.ndf} (equal-probability bins)"
        fit_axis_labels(ax, axp)
        model_y = total * width * shape.pdf(x, lo, hi)
        drawn = [(centres, counts), (centres, counts + err), (centres, counts - err), (centres, counts_tm), (x, model_y),
                 (x, total * width * shape.comb_fraction * shape.comb_pdf(x, lo, hi))]
        # the goodness of fit heads the legend: placed with it where it covers no data
        place_legend(ax, drawn, fontsize="x-small", ncol=2, title=f"$m_a$ = {mass:.4g} GeV\n{text}", title_fontsize="x-small")
    return fig


def plot_all(model: SignalModel, out_dir: str | Path, *, max_mass_plots: int = 12) -> list[Path]:
    """Write parameter, efficiency and per-mass fit plots (PNG) to ``out_dir``; returns the paths."""
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, fig in (("parameters_vs_mass.png", plot_parameters(model)), ("efficiency_vs_mass.png", plot_efficiency(model))):
        fig.savefig(out / name, dpi=100)
        plt.close(fig)
        written.append(out / name)
    ok = [f for f in model.fits if f.ok and f.histogram]
    if len(ok) > max_mass_plots:
        ok = [ok[i] for i in np.linspace(0, len(ok) - 1, max_mass_plots).round().astype(int)]
    for f in ok:
        held = any(abs(f.mass - h) < 1e-9 for h in model.holdout)
        fig = plot_mass_fit(model, f.mass)
        path = out / f"fit_m{f.mass:.4f}.png"
        fig.savefig(path, dpi=90)
        plt.close(fig)
        written.append(path)
        if held:
            fig = plot_mass_fit(model, f.mass, interpolated=True)
            path = out / f"closure_m{f.mass:.4f}.png"
            fig.savefig(path, dpi=90)
            plt.close(fig)
            written.append(path)
    logger.info("wrote %d signal-model plots to %s", len(written), out)
    return written

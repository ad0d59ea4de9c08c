"""Figures of the validation report; each PNG gets a JSON file of its numbers with the same stem.

Every function takes the check's data (the dict that also goes into
``validation.json``) and the PNG path(s), draws with the package's plot
style (``signal_models._common.plotstyle``) and returns the written PNG paths.
matplotlib is imported inside the functions.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from .jsonio import write_json

logger = logging.getLogger(__name__)

__all__ = ["plot_coverage", "plot_local_z", "plot_max_local_z", "plot_reference", "plot_spurious", "figure_json"]


def figure_json(png: Path, data: Any) -> Path:
    """Write the numbers of figure ``png`` to the JSON file next to it (same stem)."""
    return write_json(Path(png).with_suffix(".json"), data)


def plot_coverage(data: dict[str, Any], png: Path, *, title: str) -> Path:
    """Coverage versus the true signal strength (multiples of the median expected limit), one curve per mass."""
    import matplotlib.pyplot as plt

    from signal_models._common.plotstyle import place_legend, save, style

    cov, err = np.asarray(data["coverage"], float), np.asarray(data["coverage_err"], float)
    f = np.asarray(data["strengths"], float)
    with style():
        fig, ax = plt.subplots(figsize=(8, 6), layout="constrained")
        curves = []
        for i, m in enumerate(data["masses"]):
            shift = (i - 0.5 * (len(data["masses"]) - 1)) * 0.02 * (f.max() if f.size else 1.0)
            ax.errorbar(f + shift, cov[i], yerr=err[i], fmt="o-", capsize=3, label=f"{m:g} GeV")
            curves.append((f + shift, cov[i]))
        ax.axhline(data["cl"], color="k", ls="--", lw=1, label=f"{data['cl']:.0%}")
        curves.append((f, np.full(f.size, data["cl"])))
        ax.set_xlabel("true $N_{sig}$ / median expected limit")
        ax.set_ylabel("coverage")
        ax.set_title(title, fontsize="medium")
        lo = float(np.nanmin(cov - 4 * err)) if cov.size else 0.9
        ax.set_ylim(min(lo, data["cl"] - 0.02), 1.005)
        place_legend(ax, curves, fontsize="small")
        save(fig, png)
    figure_json(png, data)
    return Path(png)


def plot_local_z(data: dict[str, Any], png_hist: Path, png_mass: Path) -> list[Path]:
    """Pooled local Z histogram against N(0, 1), and the per-mass mean and width."""
    import matplotlib.pyplot as plt
    from scipy import stats

    from signal_models._common.plotstyle import save, style

    edges = np.asarray(data["histogram_edges"], float)
    counts = np.asarray(data["histogram_counts"], float)
    total = counts.sum()
    with style():
        fig, ax = plt.subplots(figsize=(8, 6), layout="constrained")
        centres = 0.5 * (edges[1:] + edges[:-1])
        ax.stairs(counts, edges, color="k", label=f"toys: mean {data['mean']:+.3f}, width {data['width']:.3f}")
        ax.plot(centres, total * np.diff(edges) * stats.norm.pdf(centres), "--", color="C1", label="N(0, 1)")
        ax.set_yscale("log")
        ax.set_ylim(0.5, 50.0 * max(total, 1.0))
        ax.set_xlabel("local Z (background only)")
        ax.set_ylabel("scan points")
        ax.legend(fontsize="small", loc="upper left")
        save(fig, png_hist)
        fig, (a1, a2) = plt.subplots(2, 1, figsize=(8, 6.5), sharex=True, layout="constrained")
        m = np.asarray(data["masses"], float)
        a1.fill_between(m, -np.asarray(data["per_mass_mean_err"]) * 2, np.asarray(data["per_mass_mean_err"]) * 2, color="0.85", label="2 errors")
        a1.plot(m, data["per_mass_mean"], ".", color="k", ms=3)
        a1.axhline(0.0, color="grey", lw=0.8)
        a1.set_ylabel("mean local Z")
        a1.legend(fontsize="small", loc="upper right")
        w_err = 2 * np.asarray(data["per_mass_width_err"])
        a2.fill_between(m, 1 - w_err, 1 + w_err, color="0.85")
        a2.plot(m, data["per_mass_width"], ".", color="k", ms=3)
        a2.axhline(1.0, color="grey", lw=0.8)
        a2.set_ylabel("width of local Z")
        a2.set_xlabel(r"$m_a$ [GeV]")
        save(fig, png_mass)
    keys_hist = ("n_toys", "n_points", "mean", "mean_err", "width", "width_err", "histogram_edges", "histogram_counts")
    figure_json(png_hist, {k: data[k] for k in keys_hist})
    keys_mass = ("n_toys", "masses", "per_mass_mean", "per_mass_mean_err", "per_mass_width", "per_mass_width_err")
    figure_json(png_mass, {k: data[k] for k in keys_mass})
    return [Path(png_hist), Path(png_mass)]


def plot_max_local_z(data: dict[str, Any], png: Path) -> Path:
    """P(largest local Z >= u) of the toy scans with binomial errors, and the Gross-Vitells prediction."""
    import matplotlib.pyplot as plt

    from signal_models._common.plotstyle import save, style

    u = np.asarray(data["curve_u"], float)
    p_t, p_e = np.asarray(data["curve_p_toys"], float), np.asarray(data["curve_p_toys_err"], float)
    with style():
        fig, ax = plt.subplots(figsize=(8, 6), layout="constrained")
        ax.errorbar(u, p_t, yerr=p_e, fmt="o", color="k", ms=4, label=f"{data['n_toys']} background-only toy scans")
        ax.plot(u, data["curve_p_gv"], "-", color="C1", label=rf"Gross-Vitells, $\langle N(c_0)\rangle$ = {data['n_upcrossings']:.2f}")
        ax.set_yscale("log")
        ax.set_ylim(max(0.3 / data["n_toys"], 1e-4), 1.5)
        ax.set_xlabel("largest local Z of the scan, $u$")
        ax.set_ylabel(r"$p_{global} = P(Z_{max} \geq u)$")
        ax.legend(fontsize="small", loc="lower left")
        save(fig, png)
    figure_json(png, data)
    return Path(png)


def plot_reference(data: dict[str, Any], png: Path) -> Path:
    """Relative differences of the observed and expected limits, reference minus bumphunt, per hypothesis and reference."""
    import matplotlib.pyplot as plt

    from signal_models._common.plotstyle import save, style

    labels = ["obs", "-2s", "-1s", "med", "+1s", "+2s"]
    with style():
        fig, ax = plt.subplots(figsize=(9, 5.5), layout="constrained")
        x = np.arange(len(labels))
        top = 1.5 * 100 * data["tolerance"]
        for k, row in enumerate(data["rows"]):
            rel = [row["rel_observed"], *row["rel_expected"]]
            ax.plot(x + 0.03 * k, 100 * np.asarray(rel, float), "o-", ms=4, label=f"{row['reference']}, {row['mass']:g} GeV")
            top = max(top, 110 * float(np.nanmax(np.abs(np.asarray(rel, float)))))
        tol = 100 * data["tolerance"]
        ax.axhspan(-tol, tol, color="0.9", zorder=0)
        ax.set_xticks(x, labels)
        ax.set_ylabel("reference / bumphunt - 1 [%]")
        ax.set_ylim(-top, top)
        ax.legend(fontsize="x-small", ncol=2, loc="lower center")
        save(fig, png)
    figure_json(png, data)
    return Path(png)


def plot_spurious(data: dict[str, Any], png: Path) -> Path:
    """|N_spur| / sigma_stat versus mass per background order: on the density (the bias) and on the finite sample."""
    import matplotlib.pyplot as plt

    from signal_models._common.plotstyle import place_legend, save, style

    m = np.asarray(data["masses"], float)
    with style():
        fig, (a1, a2) = plt.subplots(2, 1, figsize=(8, 8.5), sharex=True, layout="constrained")
        c1, c2 = [], []
        for k, order in enumerate(data["orders"]):
            a1.plot(m, data["template_ratio"][k], "-", color=f"C{k}", label=f"order {order}")
            a2.plot(m, data["sample_ratio"][k], ".-", color=f"C{k}", ms=4, lw=0.8, label=f"order {order}")
            c1.append((m, np.asarray(data["template_ratio"][k], float)))
            c2.append((m, np.asarray(data["sample_ratio"][k], float)))
        for ax in (a1, a2):
            ax.axhline(data["max_fraction"], color="k", ls="--", lw=1)
            ax.set_yscale("log")
            ax.set_ylabel(r"$|N_{spur}| / \sigma_{stat}$")
        a2.axhline(data["sample_noise"], color="grey", ls=":", lw=1, label="sample's own noise")
        a1.set_title("background density (no statistical noise)", fontsize="small")
        a2.set_title(f"signal-free sample of {data['sample_size']:,} candidates", fontsize="small")
        place_legend(a1, c1, fontsize="x-small", ncol=3)
        place_legend(a2, c2, fontsize="x-small", ncol=3)
        a2.set_xlabel(r"$m_a$ [GeV]")
        save(fig, png)
    figure_json(png, data)
    return Path(png)

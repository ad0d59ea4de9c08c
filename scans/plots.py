"""Plots of a scan result: Brazil bands, coupling exclusion, local p0, fits at chosen masses.

Every function takes the scan result (dict, as written by the driver) and
returns a matplotlib figure; ``plot_all`` writes the standard set as PNG
files, in the package's plot style (``signal_models._common.plotstyle``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import stats

from signal_models._common.plotstyle import fit_axis_labels, place_legend, style

logger = logging.getLogger(__name__)

__all__ = ["limit_arrays", "plot_brazil", "plot_coupling", "plot_p0", "plot_fit", "read_external_limits", "external_label", "result_coupling",
           "reference_curves", "draw_references", "vetoed_spans", "plot_all"]

_QUANTITY = {
    "nsig": ("ul_nsig_obs", "ul_nsig_exp", r"95% CL upper limit on $N_\mathrm{sig}$"),
    "xsec": ("ul_xsec_pb_obs", "ul_xsec_pb_exp", r"95% CL upper limit on $\sigma(e^+e^-\to\gamma a)$ [pb]"),
    "g": ("ul_g_gev_obs", "ul_g_gev_exp", r"95% CL upper limit on $g_{a\gamma\gamma}$ [GeV$^{-1}$]"),
}


def limit_arrays(result: Mapping[str, Any], quantity: str = "nsig") -> dict[str, NDArray]:
    """Masses, observed limits and expected band (k, 5) of the converged points; NaN at gaps.

    Vetoed and failed points are kept as NaN so that lines break across them.
    """
    obs_key, exp_key, _ = _QUANTITY[quantity]
    pts = result["points"]
    m = np.array([p["mass"] for p in pts])
    ok = np.array([(not p["vetoed"]) and p.get("converged", False) and exp_key in p for p in pts])
    obs = np.array([p[obs_key] if o and obs_key in p else np.nan for p, o in zip(pts, ok)])  # blinded points: expected only
    exp = np.array([p[exp_key] if o else [np.nan] * 5 for p, o in zip(pts, ok)])
    z = np.array([p.get("z_local", np.nan) if o else np.nan for p, o in zip(pts, ok)])
    return {"mass": m, "obs": obs, "exp": exp, "z_local": z, "ok": ok}


def _label(ax: Any, result: Mapping[str, Any]) -> None:
    ax.set_title(f"bumphunt   $\\int L\\,dt = {result['luminosity_fb']:g}$ fb$^{{-1}}$, \u221as = {result['sqrt_s']:.2f} GeV",
                 loc="right", fontsize="small")


def vetoed_spans(result: Mapping[str, Any]) -> list[tuple[float, float]]:
    """Mass ranges (GeV) to shade as vetoed.

    The vetoed ranges recorded in the result (``vetoed_ranges``); for results
    without them, each run of vetoed points spans from the last point before
    it to the first point after it (where the limit curves break).
    """
    if result.get("vetoed_ranges"):
        return [(float(r["lo"]), float(r["hi"])) for r in result["vetoed_ranges"]]
    pts = result["points"]
    masses = [p["mass"] for p in pts]
    spans: list[tuple[float, float]] = []
    i = 0
    while i < len(pts):
        if not pts[i]["vetoed"]:
            i += 1
            continue
        j = i
        while j + 1 < len(pts) and pts[j + 1]["vetoed"]:
            j += 1
        spans.append((masses[i - 1] if i > 0 else masses[i], masses[j + 1] if j + 1 < len(pts) else masses[j]))
        i = j + 1
    return spans


def _shade_vetoes(ax: Any, result: Mapping[str, Any]) -> None:
    for k, (lo, hi) in enumerate(vetoed_spans(result)):
        ax.axvspan(lo, hi, color="0.85", lw=0, zorder=0, label="Vetoed" if k == 0 else None)


def _curves(m: NDArray, *ys: NDArray) -> list[tuple[NDArray, NDArray]]:
    return [(m, y) for y in ys]


def plot_brazil(result: Mapping[str, Any], *, quantity: str = "nsig", ax: Any = None, logy: bool | None = None) -> Any:
    """Observed limit with the expected median and the +-1, +-2 sigma bands.

    Parameters
    ----------
    quantity : {"nsig", "xsec", "g"}
        Signal events, cross-section (pb) or coupling (GeV^-1).
    """
    import matplotlib.pyplot as plt

    a = limit_arrays(result, quantity)
    with style():
        if ax is None:
            fig, ax = plt.subplots(figsize=(9, 6), layout="constrained")
        else:
            fig = ax.figure
        m, e = a["mass"], a["exp"]
        ax.fill_between(m, e[:, 0], e[:, 4], color="#FFDF7F", label=r"Expected $\pm 2\sigma$", step=None)
        ax.fill_between(m, e[:, 1], e[:, 3], color="#85D1FB", label=r"Expected $\pm 1\sigma$")
        ax.plot(m, e[:, 2], "k--", lw=1.2, label="Expected (median)")
        if np.isfinite(a["obs"]).any():  # a blind scan has none
            ax.plot(m, a["obs"], "k-", lw=1.5, label="Observed")
        _shade_vetoes(ax, result)
        ax.set_xlabel(r"$m_a$ [GeV]")
        ax.set_ylabel(_QUANTITY[quantity][2], fontsize="small")
        top = float(np.nanmax(np.r_[e[:, 4], a["obs"]])) if np.isfinite(e).any() else 1.0
        if logy if logy is not None else quantity != "nsig":
            ax.set_yscale("log")
            bottom = float(np.nanmin(np.r_[e[:, 0], a["obs"]])) if np.isfinite(e).any() else 0.1
            ax.set_ylim(bottom / 1.5, top * (top / bottom) ** 0.45)  # headroom for the legend
        else:
            ax.set_ylim(0.0, 1.45 * top)
        _label(ax, result)
        fit_axis_labels(ax)  # the cross-section label is longer than a short frame
        place_legend(ax, _curves(m, a["obs"], *e.T), ncol=2, fontsize="small", frameon=False)
    return fig


def external_label(path: str | Path) -> str:
    """The name of an external limit curve: its ``# label: ...`` header line, else the file name."""
    with open(path) as f:
        for line in f:
            text = line.strip()
            if not text.startswith("#"):
                break
            key, _, value = text.lstrip("#").partition(":")
            if key.strip().lower() == "label" and value.strip():
                return value.strip()
    return Path(path).stem


def read_external_limits(path: str | Path) -> tuple[NDArray, NDArray]:
    """An external limit curve from a CSV with columns ``mass`` (GeV) and ``g`` (GeV^-1); ``#`` lines are comments."""
    import io

    with open(path) as f:
        text = "".join(line for line in f if not line.lstrip().startswith("#"))
    data = np.genfromtxt(io.StringIO(text), delimiter=",", names=True)
    names = data.dtype.names or ()
    if "mass" not in names or "g" not in names:
        raise ValueError(f"{path}: external limit CSV needs columns 'mass' and 'g' (has: {', '.join(names)})")
    return np.atleast_1d(data["mass"]), np.atleast_1d(data["g"])


def result_coupling(result: Mapping[str, Any]) -> str:
    """The coupling model a result's limits are on: its ``coupling`` key, else ``config.coupling``, else ``"photon"``."""
    return str(result.get("coupling") or (result.get("config") or {}).get("coupling") or "photon")


def reference_curves(result: Mapping[str, Any], names: Sequence[str]) -> dict[str, tuple[NDArray, NDArray]]:
    """The bundled published limits ``names`` (``signal_models.reference_limits``) on the result's coupling model.

    Returns ``{label: (mass GeV, g GeV^-1)}``; curves on another coupling model
    are left out (logged). Raises ``ReferenceLimitError`` (a ``ValueError``)
    for an unknown name, listing the available ones.
    """
    from signal_models import reference_limits

    coupling = result_coupling(result)
    curves: dict[str, tuple[NDArray, NDArray]] = {}
    for name in names:
        ref = reference_limits.load(name)
        if ref.coupling != coupling:
            logger.warning("reference limit %s is on the %s coupling, the result on %s: not drawn", name, ref.coupling, coupling)
            continue
        if ref.shape == "region":  # the outline closed, so that a line draws the whole polygon
            curves[ref.label] = (np.r_[ref.masses, ref.masses[:1]], np.r_[ref.couplings, ref.couplings[:1]])
        else:
            curves[ref.label] = (ref.masses, ref.couplings)
    return curves


def _without_closing_edges(xm: ArrayLike, xg: ArrayLike) -> tuple[NDArray, NDArray]:
    """A curve's points without a vertical first or last step (an edge drawn up to close the excluded region),
    for axis ranges and legend placement."""
    xm, xg = np.asarray(xm, dtype=float), np.asarray(xg, dtype=float)
    keep = np.ones(xm.size, dtype=bool)
    if xm.size > 2 and xm[0] == xm[1]:
        keep[0] = False
    if xm.size > 2 and xm[-1] == xm[-2]:
        keep[-1] = False
    return xm[keep], xg[keep]


def region_labels(names: Sequence[str]) -> set[str]:
    """Labels of the bundled limits ``names`` that are regions (closed polygons) rather than curves."""
    from signal_models import reference_limits

    return {ref.label for ref in map(reference_limits.load, names) if ref.shape == "region"}


def draw_references(ax: Any, result: Mapping[str, Any], names: Sequence[str], *, mass_range: tuple[float, float], first_colour: int = 2,
                    **line: Any) -> list[tuple[NDArray, NDArray]]:
    """Draw the bundled published limits ``names`` on ``ax`` (curves as lines; regions, e.g. beam dumps, as a
    lightly filled polygon with its outline) in the colours ``C<first_colour>``, ...; the x axis is limited to
    ``mass_range`` (GeV). Returns the curves' points inside ``mass_range`` (for the y range and the legend
    placement; regions are left to the axes' clipping)."""
    regions = region_labels(names)
    lo, hi = mass_range
    inside = []
    for k, (label, (xm, xg)) in enumerate(reference_curves(result, names).items()):
        colour = f"C{(k + first_colour) % 10}"
        ax.plot(xm, xg, color=colour, label=label, **{"lw": 1.5, **line})
        if label in regions:
            ax.fill(xm, xg, color=colour, alpha=0.15, lw=0)
            continue
        xm, xg = _without_closing_edges(xm, xg)
        keep = (xm >= lo) & (xm <= hi)
        inside.append((xm[keep], xg[keep]))
    ax.set_xlim(lo, hi)
    return inside


def plot_coupling(result: Mapping[str, Any], *, external: Mapping[str, tuple[NDArray, NDArray]] | None = None,
                  references: Sequence[str] = (), ax: Any = None) -> Any:
    """Excluded region in (m_a, g) on log axes with the expected +-1, +-2 sigma bands and optional
    external curves ``{label: (mass GeV, g GeV^-1)}`` and bundled published limits ``references``
    (names from ``signal_models.reference_limits.available()``; only those on the result's coupling model)."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    from signal_models.alp import coupling_model

    refs = reference_curves(result, references)
    regions = region_labels(references)
    external = {**(external or {}), **refs}
    symbol = coupling_model(result_coupling(result)).symbol
    a = limit_arrays(result, "g")
    with style():
        if ax is None:
            fig, ax = plt.subplots(figsize=(9, 6), layout="constrained")
        else:
            fig = ax.figure
        m, obs, e = a["mass"], a["obs"], a["exp"]
        lo_all = np.r_[obs, e[:, 0]]
        hi_all = np.r_[obs, e[:, 4]]
        finite = np.isfinite(lo_all).any()
        for xm, xg in (_without_closing_edges(*c) for lab, c in external.items() if lab not in regions):  # regions: clipped by the axes
            inside = (np.asarray(xm) >= np.nanmin(m)) & (np.asarray(xm) <= np.nanmax(m))
            lo_all, hi_all = np.r_[lo_all, np.asarray(xg)[inside]], np.r_[hi_all, np.asarray(xg)[inside]]
        bottom = float(np.nanmin(lo_all)) / 3.0 if finite else 1e-4
        top = float(np.nanmax(hi_all)) * 30.0 if finite else 1.0
        ax.fill_between(m, e[:, 0], e[:, 4], color="#FFDF7F", label=r"Expected $\pm 2\sigma$")
        ax.fill_between(m, e[:, 1], e[:, 3], color="#85D1FB", label=r"Expected $\pm 1\sigma$")
        ax.plot(m, e[:, 2], "k--", lw=1.0, label="Expected (median)")
        if np.isfinite(obs).any():  # a blind scan has none
            ax.fill_between(m, obs, top, where=np.isfinite(obs), color="tab:blue", alpha=0.25, lw=0, label="Excluded (observed, 95% CL)")
            ax.plot(m, obs, color="tab:blue", lw=1.5)
        curves = _curves(m, obs, *e.T)
        others = {lab: c for lab, c in external.items() if lab not in refs}
        for k, (lab, (xm, xg)) in enumerate(others.items()):
            ax.plot(xm, xg, lw=1.5, color=f"C{(k + 2) % 10}", label=lab)
            curves.append((np.asarray(xm), np.asarray(xg)))
        ax.set_xscale("log")
        curves += draw_references(ax, result, references, mass_range=(float(np.nanmin(m)) / 1.05, float(np.nanmax(m)) * 1.05),
                                  first_colour=len(others) + 2)
        _shade_vetoes(ax, result)
        ax.set_yscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_ylim(bottom, top)
        ax.set_xlabel(r"$m_a$ [GeV]")
        ax.set_ylabel(f"${symbol}$ [GeV$^{{-1}}$]")
        place_legend(ax, curves, fontsize="small", frameon=True, facecolor="white", framealpha=0.9)
        _label(ax, result)
    return fig


def plot_p0(result: Mapping[str, Any], *, ax: Any = None) -> Any:
    """Local p-value p0 = 1 - Phi(Z_local) versus mass, with the global significance of the largest excess."""
    import matplotlib.pyplot as plt

    a = limit_arrays(result, "nsig")
    z = np.array([p.get("z_local", np.nan) if (not p["vetoed"] and p.get("converged", False)) else np.nan for p in result["points"]])
    p0 = stats.norm.sf(np.clip(z, 0, None))
    g = result["global"]
    with style():
        if ax is None:
            fig, ax = plt.subplots(figsize=(9, 6), layout="constrained")
        else:
            fig = ax.figure
        ax.plot(a["mass"], p0, "k-", lw=1.2, label="Local $p_0$")
        lo = min(np.nanmin(p0) / 10 if np.isfinite(p0).any() else 1e-3, 1e-3)
        for s in (1, 2, 3, 4, 5):
            pv = stats.norm.sf(s)
            if pv >= lo:
                ax.axhline(pv, color="tab:red", ls=":", lw=0.8)
                ax.text(a["mass"][-1], pv, f" {s}$\\sigma$", color="tab:red", va="center", fontsize="small")
        ax.set_yscale("log")
        ax.set_ylim(lo, 1.0)
        _shade_vetoes(ax, result)
        ax.set_xlabel(r"$m_a$ [GeV]")
        ax.set_ylabel("Local $p_0$")
        ax.plot([], [], " ", label=f"max $Z_\\mathrm{{local}}$ = {g['max_z_local']:.2f} at {g['mass_at_max']:.3f} GeV")
        ax.plot([], [], " ", label=f"$Z_\\mathrm{{global}}$ = {g['z_global']:.2f} ({g['method'].split(' ')[0]}, {g.get('n_toys', 0)} toys)")
        place_legend(ax, [(a["mass"], p0)], fontsize="small")
        _label(ax, result)
    return fig


def plot_fit(mgg: NDArray, fit_result: Any, *, bins: int = 60, ax: Any = None, mass: float | None = None) -> Any:
    """Data histogram in the fit window with the fitted signal + background (a ``fits.fit`` result)."""
    import matplotlib.pyplot as plt

    lo, hi = fit_result.window
    x = np.asarray(mgg, dtype=float)
    x = x[(x >= lo) & (x <= hi)]
    counts, edges = np.histogram(x, bins=bins, range=(lo, hi))
    centres = 0.5 * (edges[1:] + edges[:-1])
    width = edges[1] - edges[0]
    grid = np.linspace(lo, hi, 400)
    with style():
        if ax is None:
            fig, ax = plt.subplots(figsize=(9, 6), layout="constrained")
        else:
            fig = ax.figure
        ax.errorbar(centres, counts, yerr=np.sqrt(np.maximum(counts, 1)), fmt="ko", ms=3, label="Candidates")
        ax.plot(grid, fit_result.density(grid) * width, "b-", lw=1.5, label="Signal + background fit")
        ax.plot(grid, fit_result.bkg_density(grid) * width, "r--", lw=1.2, label="Background")
        ax.set_xlabel(r"$M_{\gamma\gamma}$ [GeV]")
        ax.set_ylabel(f"Candidates / {1000 * width:.2g} MeV")
        title = f"$m_a$ = {mass:.4g} GeV: " if mass is not None else ""
        ax.set_title(f"{title}$N_\\mathrm{{sig}}$ = {fit_result.nsig:.1f} $\\pm$ {fit_result.nsig_err:.1f}, $Z$ = {fit_result.z_local:.2f}",
                     fontsize="small")
        place_legend(ax, [(centres, counts), (grid, fit_result.density(grid) * width)], fontsize="small")
    return fig


def _save(fig: Any, path: Path) -> Path:
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    logger.info("wrote plot %s", path)
    return path


def plot_all(
    result: Mapping[str, Any],
    out_dir: str | Path,
    *,
    external: Mapping[str, tuple[NDArray, NDArray]] | None = None,
    references: Sequence[str] = (),
    fit_masses: Sequence[float] = (),
    mgg: NDArray | None = None,
    signal_model: Any = None,
) -> list[Path]:
    """Write the standard scan plots to ``out_dir``; fit plots need ``mgg`` and ``signal_model``.

    ``external`` curves and the bundled published limits ``references`` (by name) are overlaid on the coupling plot.

    Returns the list of files written.
    """
    out = Path(out_dir)
    paths = [
        _save(plot_brazil(result, quantity="nsig"), out / "brazil_nsig.png"),
        _save(plot_brazil(result, quantity="xsec"), out / "brazil_xsec.png"),
        _save(plot_coupling(result, external=external, references=references), out / "coupling_exclusion.png"),
    ]
    if "max_z_local" in result["global"]:  # a fully blind scan has no observed significance to draw
        paths.append(_save(plot_p0(result), out / "local_p0.png"))
    pvalues = np.array([p["gof_pvalue"] for p in result["points"] if "gof_pvalue" in p])
    if pvalues.size:  # the goodness of fit of the windows over the scan
        from fits.goodness_of_fit import plot_gof_pvalues

        alpha = float((result.get("gof") or {}).get("alpha", 0.01))
        paths.append(_save(plot_gof_pvalues(pvalues, alpha=alpha), out / "gof_pvalues.png"))
    if fit_masses and (result.get("blinding") or {}).get("blinded_points"):
        raise ValueError("fit plots show observed numbers: this result is blind (bumphunt scan --unblind first)")
    if fit_masses:
        if mgg is None or signal_model is None:
            raise ValueError("fit plots need the candidate masses and the signal model (the scan inputs)")
        import fits

        cfg = result.get("config", {})
        data_range = result.get("data_range") or [float(np.min(mgg)), float(np.max(mgg))]
        n_sigma = cfg.get("window_n_sigma", 20.0)
        for m in fit_masses:
            shape = signal_model.shape(float(m))
            lo = max(m - n_sigma * shape.sigma, data_range[0], shape.mu - shape.comb_domain * shape.sigma)
            hi = min(m + n_sigma * shape.sigma, data_range[1], shape.mu + shape.comb_domain * shape.sigma)
            res = fits.fit(mgg, shape, (lo, hi), bkg_order=cfg.get("bkg_order", 3))
            paths.append(_save(plot_fit(mgg, res, mass=float(m)), out / f"fit_{m:.4f}GeV.png"))
    return paths

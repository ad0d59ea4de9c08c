"""Validation plots of the kinematic fit and of the photon calibration.

Pulls, chi2 and p-value, M_gg resolution before/after the fit, and the
photon energy resolution versus energy from the mu mu gamma calibration.

Each function returns the matplotlib figure and, when ``path`` is given,
saves and closes it. Units: GeV, rad.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from ..events.detector import REGION_NAMES
from ..kinematics import invariant_mass, p4_from_spherical
from .photon_covariance import ECL_REGIONS, PhotonCovarianceModel

if TYPE_CHECKING:
    from .calibration import PhotonCalibration

logger = logging.getLogger(__name__)

__all__ = ["plot_pulls", "plot_chi2_pvalue", "truth_mgg", "mgg_resolution", "plot_mgg_resolution", "robust_width", "plot_calibration"]

_PARAMS = ("E", r"\theta", r"\phi")


def _finish(fig: Any, path: str | Path | None) -> Any:
    """Save ``fig`` to ``path`` (and close it) when a path is given; return it."""
    if path is not None:
        from signal_models._common.plotstyle import save

        save(fig, path)
    return fig


def plot_pulls(pulls: NDArray, converged: NDArray | None = None, path: str | Path | None = None, *, bins: int = 60) -> Any:
    """3x3 grid of pull distributions (photon x parameter) with a unit Gaussian and the fitted mean/width."""
    import matplotlib.pyplot as plt

    from signal_models._common.plotstyle import style

    pulls = np.asarray(pulls)
    if converged is not None:
        pulls = pulls[np.asarray(converged, dtype=bool)]
    x = np.linspace(-5, 5, 200)
    with style():
        fig, axes = plt.subplots(3, 3, figsize=(15, 12), sharex=True)
        for i in range(3):
            for a in range(3):
                ax = axes[i, a]
                v = pulls[:, i, a]
                v = v[np.isfinite(v)]
                ax.hist(v, bins=bins, range=(-5, 5), histtype="step", color="k", density=True)
                ax.plot(x, np.exp(-0.5 * x * x) / np.sqrt(2 * np.pi), "--", color="C1")
                mu = v.mean() if v.size else np.nan
                sd = v.std() if v.size else np.nan
                ax.set_title(f"photon {i}, ${_PARAMS[a]}$: mean {mu:+.3f}, width {sd:.3f}", fontsize="small")
                if i == 2:
                    ax.set_xlabel("pull")
        fig.tight_layout()
    return _finish(fig, path)


def plot_chi2_pvalue(chi2: NDArray, pvalue: NDArray, converged: NDArray | None = None, path: str | Path | None = None, *, ndf: int = 4) -> Any:
    """chi2 distribution with the chi2(ndf) density, and the p-value distribution (flat if the errors are right)."""
    import matplotlib.pyplot as plt
    from scipy import stats

    from signal_models._common.plotstyle import style

    chi2 = np.asarray(chi2)
    pvalue = np.asarray(pvalue)
    if converged is not None:
        c = np.asarray(converged, dtype=bool)
        chi2, pvalue = chi2[c], pvalue[c]
    with style():
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(14, 5.5))
        hi = 25.0
        a1.hist(chi2, bins=50, range=(0, hi), histtype="step", color="k", density=True, label=f"fit, mean {chi2.mean():.2f}")
        x = np.linspace(0, hi, 300)
        a1.plot(x, stats.chi2.pdf(x, ndf), "--", color="C1", label=rf"$\chi^2$ (ndf = {ndf})")
        a1.set_xlabel(r"$\chi^2$")
        a1.set_yscale("log")
        a1.legend(fontsize="small")
        a2.hist(pvalue, bins=20, range=(0, 1), histtype="step", color="k")
        a2.axhline(len(pvalue) / 20, ls="--", color="C1", label="flat")
        a2.set_xlabel("p-value")
        a2.set_ylabel("events / 0.05")
        a2.legend(fontsize="small")
        fig.tight_layout()
    return _finish(fig, path)


def truth_mgg(events: dict[str, NDArray], *, E: NDArray | None = None, theta: NDArray | None = None,
              phi: NDArray | None = None) -> tuple[NDArray, NDArray]:
    """M_gg (GeV) of the truth-matched ALP pair and the mask of events where both ALP photons were kept.

    Uses ``truth_a1``, ``truth_a2`` (positions among the three photons) and
    the given photon kinematics (default: the measured ``E, theta, phi``).
    """
    E = np.asarray(events["E"] if E is None else E)
    theta = np.asarray(events["theta"] if theta is None else theta)
    phi = np.asarray(events["phi"] if phi is None else phi)
    i = np.asarray(events["truth_a1"])
    j = np.asarray(events["truth_a2"])
    ok = (i >= 0) & (j >= 0) & (i != j)
    rows = np.arange(len(i))
    p = p4_from_spherical(E, theta, phi)
    m = invariant_mass(p[rows, np.where(ok, i, 0)], p[rows, np.where(ok, j, 1)])
    return m, ok


def robust_width(x: NDArray) -> float:
    """Half the central 68.3% interval (GeV): sigma for a Gaussian, insensitive to tails."""
    x = np.asarray(x)
    if x.size < 2:
        return float("nan")
    lo, hi = np.quantile(x, [0.15866, 0.84134])
    return float(0.5 * (hi - lo))


def mgg_resolution(events: dict[str, NDArray], *, converged: NDArray | None = None) -> list[dict[str, float]]:
    """Per generated mass: robust M_gg width of truth-matched signal before and after the fit.

    Needs ``mc_ma``, ``truth_a1``, ``truth_a2`` and ``fit_E``/``fit_theta``/``fit_phi``.
    Returns a list of dicts ``{m_a, n, sigma_raw, sigma_fit, improvement}``
    (improvement = 1 - sigma_fit / sigma_raw), using events whose fit converged.
    """
    m_raw, ok = truth_mgg(events)
    m_fit, _ = truth_mgg(events, E=events["fit_E"], theta=events["fit_theta"], phi=events["fit_phi"])
    conv = np.asarray(events.get("kinfit_converged", np.ones(len(ok), bool)) if converged is None else converged, dtype=bool)
    ma = np.asarray(events["mc_ma"])
    sel = ok & conv & (ma > 0)
    rows = []
    for mass in np.unique(np.round(ma[sel], 6)):
        s = sel & np.isclose(ma, mass)
        r, f = robust_width(m_raw[s]), robust_width(m_fit[s])
        rows.append({"m_a": float(mass), "n": int(s.sum()), "sigma_raw": r, "sigma_fit": f,
                     "improvement": float(1 - f / r) if r > 0 else float("nan"),
                     "bias_raw": float(np.median(m_raw[s]) - mass), "bias_fit": float(np.median(m_fit[s]) - mass)})
    return rows


def plot_mgg_resolution(events: dict[str, NDArray], path: str | Path | None = None, *, masses: list[float] | None = None) -> Any:
    """M_gg of truth-matched signal before/after the fit for a few masses, and the resolution versus mass."""
    import matplotlib.pyplot as plt

    from signal_models._common.plotstyle import style

    rows = mgg_resolution(events)
    m_raw, ok = truth_mgg(events)
    m_fit, _ = truth_mgg(events, E=events["fit_E"], theta=events["fit_theta"], phi=events["fit_phi"])
    conv = np.asarray(events.get("kinfit_converged", np.ones(len(ok), bool)), dtype=bool)
    ma = np.asarray(events["mc_ma"])
    all_m = [r["m_a"] for r in rows]
    if masses is None:
        masses = all_m if len(all_m) <= 4 else [all_m[k] for k in np.linspace(0, len(all_m) - 1, 4).astype(int)]
    with style():
        ncol = len(masses) + 1
        fig, axes = plt.subplots(1, ncol, figsize=(5 * ncol, 5))
        axes = np.atleast_1d(axes)
        for ax, mass in zip(axes, masses):
            s = ok & conv & np.isclose(ma, mass)
            w = max(robust_width(m_raw[s]), 1e-4)
            rng = (mass - 6 * w, mass + 6 * w)
            ax.hist(m_raw[s], bins=60, range=rng, histtype="step", color="C1", label="measured")
            ax.hist(m_fit[s], bins=60, range=rng, histtype="step", color="C0", label="4C fit")
            ax.set_xlabel(r"$M_{\gamma\gamma}$ [GeV]")
            ax.set_title(f"$m_a$ = {mass:g} GeV", fontsize="small")
            ax.legend(fontsize="x-small")
        ax = axes[-1]
        if rows:
            x = [r["m_a"] for r in rows]
            ax.plot(x, [1e3 * r["sigma_raw"] for r in rows], "o--", color="C1", label="measured")
            ax.plot(x, [1e3 * r["sigma_fit"] for r in rows], "o-", color="C0", label="4C fit")
        ax.set_xlabel(r"$m_a$ [GeV]")
        ax.set_ylabel(r"$\sigma(M_{\gamma\gamma})$ [MeV]")
        ax.legend(fontsize="x-small")
        fig.tight_layout()
    return _finish(fig, path)


def plot_calibration(cal: PhotonCalibration, path: str | Path | None = None, *, truth: PhotonCovarianceModel | None = None) -> Any:
    """Relative energy resolution versus energy per region: binned fits, calibrated curve, nominal curve.

    Returns the figure (saved to ``path`` and closed when ``path`` is given).
    """
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    from signal_models._common.plotstyle import label, style

    with style():
        fig, axes = plt.subplots(1, 3, figsize=(18, 5.5), sharey=True)
        nominal = PhotonCovarianceModel(resolution=cal.model.resolution)
        for ax, code in zip(axes, ECL_REGIONS):
            pts = [b for b in cal.bins if b["region"] == code and b["rel_resolution_err"] < 0.5 * max(b["rel_resolution"], 1e-9)]
            if pts:
                e = np.array([p["e_mean"] for p in pts])
                ax.errorbar(e, [100 * p["rel_resolution"] for p in pts], yerr=[100 * p["rel_resolution_err"] for p in pts],
                            fmt="o", color="k", label="binned fit (mu mu gamma)")
                ax.plot(e, [100 * p["rel_prediction_resolution"] for p in pts], ":", color="gray", label="prediction (muons, beam)")
                grid = np.geomspace(min(p["e_lo"] for p in pts), max(p["e_hi"] for p in pts), 100)
            else:
                grid = np.geomspace(0.1, 5.0, 100)
            reg = np.full(grid.shape, code)
            ax.plot(grid, 100 * cal.model.sigma_energy(grid, reg) / grid, "-", color="C0", label="calibrated model")
            ax.plot(grid, 100 * nominal.sigma_energy(grid, reg) / grid, "--", color="C1", label="nominal parametrisation")
            if truth is not None:
                ax.plot(grid, 100 * truth.sigma_energy(grid, reg) / grid, "-.", color="C2", label="generated")
            p = cal.params.get(code, {})
            ax.set_title(f"{REGION_NAMES[code]}: s = {p.get('scale', 1):.3f} $\\pm$ {p.get('scale_err', float('nan')):.3f}", fontsize="small")
            ax.set_xscale("log")
            ax.xaxis.set_minor_formatter(NullFormatter())
            ax.xaxis.set_major_formatter(ScalarFormatter())
            ax.set_ylim(0, 2.0 * float(np.max(100 * nominal.sigma_energy(grid, reg) / grid)))
            ax.set_xlabel(r"$E_\gamma$ [GeV]")
        axes[0].set_ylabel(r"$\sigma_E / E$ [%]")
        axes[0].legend(fontsize="x-small")
        label(axes[0], text="")
    return _finish(fig, path)

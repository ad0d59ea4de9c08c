"""Plots of one hypothesis: data with the fitted model and components, pulls; CLs curves.

matplotlib is imported inside the functions; the caller chooses the style
(``signal_models._common.plotstyle.style``).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from signal_models._common.defaults import DEFAULT_CL

from .results import FitResult

logger = logging.getLogger(__name__)

__all__ = ["plot_fit", "plot_cls", "plot_gof_pvalues"]


def plot_fit(mgg: NDArray, res: FitResult, *, bins: int = 50, path: str | Path | None = None, ax: Any = None) -> Any:
    """Histogram of the candidates in the window with the fitted model, its components and pulls.

    The model curves are the densities times the bin width (events per bin);
    pulls are ``(n - nu) / sqrt(nu)`` with ``nu`` the model's bin integral
    (Simpson's rule on 9 points per bin). Returns the path if ``path`` is
    given, else the figure.
    """
    import matplotlib.pyplot as plt

    lo, hi = res.window
    x = np.asarray(mgg, float)
    x = x[(x >= lo) & (x <= hi)]
    edges = np.linspace(lo, hi, bins + 1)
    n, _ = np.histogram(x, bins=edges)
    width = edges[1] - edges[0]
    centres = 0.5 * (edges[1:] + edges[:-1])
    # expected events per bin by Simpson's rule
    sub = np.linspace(0.0, 1.0, 9)
    wts = np.array([1, 4, 2, 4, 2, 4, 2, 4, 1], float) / 24.0
    pts = edges[:-1, None] + width * sub[None, :]
    nu = (res.density(pts.ravel()).reshape(pts.shape) * wts).sum(axis=1) * width
    fine = np.linspace(lo, hi, 600)
    fig, (a1, a2) = plt.subplots(2, 1, figsize=(8, 6.5), sharex=True, gridspec_kw={"height_ratios": [3, 1], "hspace": 0.05})
    a1.errorbar(centres, n, yerr=np.sqrt(np.maximum(n, 1)), fmt="ko", ms=3, label="data")
    a1.plot(fine, res.density(fine) * width, "b-", label="signal + background")
    a1.plot(fine, res.bkg_density(fine) * width, "b--", label="background")
    a1.plot(fine, res.signal_density(fine) * width, "r-", label=f"signal ($N_{{sig}}$ = {res.nsig:.1f} $\\pm$ {res.nsig_err:.1f})")
    a1.set_ylabel(f"candidates / {1000 * width:.2g} MeV")
    a1.set_title(f"$m_a$ hypothesis {res.shape.mu:.4f} GeV, $Z_{{local}}$ = {res.z_local:+.2f} ({res.engine})", fontsize="medium")
    a1.legend(fontsize="small")
    pull = (n - nu) / np.sqrt(np.maximum(nu, 1e-9))
    a2.bar(centres, pull, width=width, color="grey")
    a2.axhline(0, color="k", lw=0.8)
    a2.set_ylabel("pull")
    a2.set_xlabel(r"$M_{\gamma\gamma}$ [GeV]")
    a2.set_ylim(-4, 4)
    if path is None:
        return fig
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def plot_cls(curve: dict[str, Any], *, cl: float = DEFAULT_CL, observed: float | None = None, expected: float | None = None, ax: Any = None) -> Any:
    """CLs (observed and expected median) and q~_mu vs N_sig from ``fits.limit_curve``."""
    import matplotlib.pyplot as plt

    if ax is None:
        fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    else:
        axes = ax
        fig = axes[0].figure
    mu = curve["poi"]
    axes[0].plot(mu, curve["q_tilde"], "k-", label=r"$\tilde q_\mu$ (data)")
    axes[0].plot(mu, curve["q_asimov"], "b--", label=r"$q_{\mu,A}$ (Asimov, b-only)")
    axes[0].set_xlabel(r"$N_{sig}$")
    axes[0].set_ylabel("test statistic")
    axes[0].legend()
    axes[1].semilogy(mu, curve["cls"], "k-", label="CLs observed")
    axes[1].semilogy(mu, curve["cls_expected"], "b--", label="CLs expected (median)")
    axes[1].axhline(1 - cl, color="r", lw=0.8)
    if observed is not None:
        axes[1].axvline(observed, color="k", ls=":", lw=0.8)
    if expected is not None:
        axes[1].axvline(expected, color="b", ls=":", lw=0.8)
    axes[1].set_xlabel(r"$N_{sig}$")
    axes[1].set_ylabel("CLs")
    axes[1].legend()
    return fig


def plot_gof_pvalues(result: Any, *, bins: int = 20, alpha: float = 0.01, path: str | Path | None = None, ax: Any = None) -> Any:
    """Histogram of the p-values of a scan with the uniform expectation (and its +-1 sigma binomial band).

    ``result``: a ``GofResult`` (its tested hypotheses) or an array of p-values. The title
    counts the hypotheses with p < ``alpha``. Returns the path when ``path`` is given, else the figure.
    """
    from signal_models._common.plotstyle import new_figure, save

    if hasattr(result, "pvalue") and hasattr(result, "ok"):  # a GofResult
        p, what = result.pvalue[result.ok], f"{result.method}, {result.calibration}"
    else:
        p, what = np.asarray(result, float), "p-values"
    p = p[np.isfinite(p)]
    fig, ax_ = new_figure() if ax is None else (ax.figure, ax)
    edges = np.linspace(0.0, 1.0, bins + 1)
    counts, _, _ = ax_.hist(p, bins=edges, histtype="stepfilled", color="lightsteelblue", edgecolor="k", label=f"{len(p)} hypotheses")
    mean = len(p) / bins
    band = np.sqrt(mean * (1.0 - 1.0 / bins))
    ax_.fill_between([0.0, 1.0], mean - band, mean + band, color="orange", alpha=0.3, label=r"uniform $\pm 1\sigma$")
    ax_.axhline(mean, color="darkorange", lw=1.5)
    ax_.set_xlim(0.0, 1.0)
    ax_.set_ylim(0.0, 1.35 * max(float(np.max(counts, initial=0.0)), mean + band, 1.0))  # room for the legend
    ax_.set_xlabel("goodness-of-fit p-value")
    ax_.set_ylabel(f"hypotheses / {1.0 / bins:.2g}")
    ax_.set_title(f"{what}: {int(np.sum(p < alpha))} with p < {alpha:g}", fontsize="medium")
    ax_.legend(fontsize="small", loc="upper right")
    if path is None:
        return fig
    return save(fig, path)

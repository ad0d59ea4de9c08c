"""Injection and recovery: is the signal extraction of the scan unbiased and linear across the mass range?

``injection_study(mgg, signal_model, config=..., masses=..., nsig=...)``
draws toy data sets from the background model of the scan (the smooth
exp(Chebyshev) fit of the whole spectrum that the look-elsewhere toys use,
vetoed peaks left out), injects Poisson(N_inj) signal candidates from the
signal model's shape at each chosen mass, and fits every toy with the scan's
model at that mass (window ``m +- window_n_sigma sigma(m)`` clipped to the
data, background order ``bkg_order``). Per mass and injected strength it
reports the mean fitted yield, the bias and the bias in units of the
statistical error, the pull mean and width (pull = (N_fit - N_inj) /
sigma_fit) with their uncertainties, and per mass the linearity (slope and
intercept of the mean fitted yield against the injected one).

The toys of one mass and strength are fitted as one batch: each toy is a
hypothesis of one combined request (``fits.combined_toys.toy_request``: toy
t and its window moved by ``t x spacing``; the fit sees only positions
relative to the window), with one channel and no nuisances, which is the
scan's one-dataset model. Toy ``t`` of mass ``i`` and strength ``j`` has its
own seed (``SeedSequence(seed).spawn``), so results do not depend on how the
work is split. Yields are in signal events in the window.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .config import load_scan_config
from .errors import ScanConfigError
from .grid import fit_windows
from .lee import SmoothBackground, fit_smooth_background
from .plan import plan_scan, sorted_candidates, veto_ranges

logger = logging.getLogger(__name__)

__all__ = ["InjectionStudy", "injection_study", "plot_injection"]

#: points of the grid on which the background's CDF in a window is inverted
_CDF_POINTS = 4097


@dataclass(frozen=True)
class InjectionStudy:
    """Injection and recovery results (arrays over masses x strengths; yields in events).

    Attributes
    ----------
    masses : (m,) float array, GeV
    nsig : (s,) float array
        Injected mean signal yields.
    n_toys : int
    seed : int
    mean_fit : (m, s) float array
        Mean fitted signal yield.
    bias : (m, s) float array
        ``mean_fit - nsig``.
    bias_over_error : (m, s) float array
        Bias in units of the mean statistical error of the fitted yield.
    pull_mean, pull_mean_err, pull_width, pull_width_err : (m, s) float arrays
    n_failed : (m, s) int array
        Toys whose fit failed (left out of the averages).
    slope, intercept : (m,) float arrays
        Linearity: least-squares line of ``mean_fit`` against ``nsig`` (weighted by the errors of the means).
    windows : (m, 2) float array, GeV
    """

    masses: NDArray
    nsig: NDArray
    n_toys: int
    seed: int
    mean_fit: NDArray
    bias: NDArray
    bias_over_error: NDArray
    pull_mean: NDArray
    pull_mean_err: NDArray
    pull_width: NDArray
    pull_width_err: NDArray
    n_failed: NDArray
    slope: NDArray
    intercept: NDArray
    windows: NDArray

    def to_json(self) -> dict[str, Any]:
        """JSON form (lists), e.g. for ``bumphunt inject``'s ``injection.json``."""
        return {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in dataclasses.asdict(self).items()}


def _window_background(bkg: SmoothBackground, lo: float, hi: float) -> tuple[NDArray, NDArray, float]:
    """Grid, normalised CDF and expected candidates of the background in [lo, hi] GeV."""
    x = np.linspace(lo, hi, _CDF_POINTS)
    f = bkg.density(x)
    cdf = np.concatenate([[0.0], np.cumsum(0.5 * (f[1:] + f[:-1]) * np.diff(x))])
    return x, cdf / cdf[-1], float(cdf[-1])


def _toys(shape: Any, lo: float, hi: float, bkg_grid: tuple[NDArray, NDArray, float], nsig: float, n_toys: int,
          seeds: Sequence[np.random.SeedSequence]) -> tuple[NDArray, NDArray]:
    """Masses of ``n_toys`` toys (toy by toy) and their counts: Poisson background in the window plus Poisson(nsig) signal."""
    x, cdf, n_bkg = bkg_grid
    parts, counts = [], np.zeros(n_toys, dtype=np.int64)
    for t, ss in enumerate(seeds):  # one generator per toy: the same toy whatever else is drawn
        rng = np.random.default_rng(ss)
        b = np.interp(rng.random(rng.poisson(n_bkg)), cdf, x)
        s = shape.sample(rng.poisson(nsig), lo, hi, rng=rng) if nsig > 0 else np.zeros(0)
        parts.append(np.concatenate([s, b]))
        counts[t] = parts[-1].size
    return np.concatenate(parts), counts


def injection_study(
    candidates_mgg: ArrayLike,
    signal_model: Any,
    *,
    config: str | Path | Mapping[str, Any] | None = None,
    masses: Sequence[float],
    nsig: Sequence[float],
    n_toys: int = 200,
    seed: int = 1,
    background: SmoothBackground | None = None,
) -> InjectionStudy:
    """Inject signal into background-model toys at ``masses`` with strengths ``nsig`` and fit it back (module docstring).

    Parameters
    ----------
    candidates_mgg : array, GeV
        The data the background model is fitted to.
    signal_model : SignalModel-like
    config : path, mapping or None
        Scan configuration (window, background order, vetoes, data range, the background model's order).
    masses : sequence of float, GeV
        Injection masses, inside the scan range ``mass.min``..``mass.max``.
    nsig : sequence of float
        Injected mean signal yields (events), >= 0.
    n_toys : int
        Toys per mass and strength.
    seed : int
    background : SmoothBackground, optional
        The background the toys are drawn from (expected candidates per GeV); default the smooth fit
        of ``candidates_mgg``. A known truth (e.g. the generator's spectrum) separates the fit's bias
        from features the smooth fit picked up from the data's fluctuations.

    Raises
    ------
    ScanConfigError
        A mass outside the scan range, a negative strength, fewer than 2 toys, or a scan configuration the
        one-dataset model does not describe (datasets, nuisances).
    """
    from fits.channels import Channel, CombinedModel
    from fits.combined_table import evaluate_combined
    from fits.combined_toys import CombinedToys, toy_request

    cfg = load_scan_config(config)
    if cfg["datasets"] or cfg["nuisances"]:
        raise ScanConfigError("inject: datasets and nuisances are not supported yet; the study fits the one-dataset model")
    m_arr = np.asarray(masses, dtype=float)
    s_arr = np.asarray(nsig, dtype=float)
    if m_arr.size == 0 or s_arr.size == 0:
        raise ScanConfigError("inject: give at least one mass and one injected yield")
    bad = m_arr[(m_arr < cfg["mass"]["min"]) | (m_arr > cfg["mass"]["max"])]
    if bad.size:
        raise ScanConfigError(f"inject: mass {bad[0]:g} GeV is outside the scan range [{cfg['mass']['min']}, {cfg['mass']['max']}] GeV")
    if np.any(s_arr < 0) or not np.all(np.isfinite(s_arr)):
        raise ScanConfigError(f"inject: injected yields must be finite and >= 0, got {s_arr.tolist()}")
    if n_toys < 2:
        raise ScanConfigError(f"inject: needs at least 2 toys per point, got {n_toys}")
    mgg = sorted_candidates(candidates_mgg)
    plan = plan_scan(mgg, signal_model, cfg)
    lee = cfg["lee"]
    if background is None:
        smooth = fit_smooth_background(mgg, data_range=plan.data_range, order=lee["background_order"], bins=lee["bins"],
                                       exclude=veto_ranges(plan, cfg["vetoes"]))
        background = dataclasses.replace(smooth, n_expected=float(np.sum((mgg >= smooth.lo) & (mgg <= smooth.hi))))
    bkg = background
    shapes = [signal_model.shape(float(m)) for m in m_arr]
    sig = np.array([s.sigma for s in shapes])
    windows = fit_windows(m_arr, sig, n_sigma=cfg["window_n_sigma"], data_range=plan.data_range,
                          comb_domain=np.array([s.comb_domain for s in shapes]), mus=np.array([s.mu for s in shapes]))
    seeds = np.random.SeedSequence(seed).spawn(m_arr.size * s_arr.size)
    shape_out = (m_arr.size, s_arr.size)
    mean_fit, mean_err, pull_mean, pull_width = (np.full(shape_out, np.nan) for _ in range(4))
    n_failed = np.zeros(shape_out, dtype=np.int64)
    n_ok = np.zeros(shape_out, dtype=np.int64)
    for i, (shape, (lo, hi)) in enumerate(zip(shapes, windows)):  # loop over masses and strengths; the toys are one batch
        grid = _window_background(bkg, lo, hi)
        model = CombinedModel.build([Channel(np.array([0.5 * (lo + hi)]), shape, (lo, hi), signal_scale=1.0, bkg_order=cfg["bkg_order"])])
        for j, n_inj in enumerate(s_arr):
            toy_seeds = seeds[i * s_arr.size + j].spawn(n_toys)
            x, counts = _toys(shape, lo, hi, grid, float(n_inj), n_toys, toy_seeds)
            toys = CombinedToys(masses=(x,), is_signal=(np.zeros(x.size, bool),), counts=counts[:, None], truth=np.array([n_inj]))
            table = evaluate_combined(toy_request(model, toys), limits=False)
            ok = np.asarray(table.converged) & np.isfinite(table.mu_hat) & (table.mu_err > 0)
            n_failed[i, j] = int((~ok).sum())
            n_ok[i, j] = int(ok.sum())
            if n_ok[i, j] < 2:
                continue
            pulls = (table.mu_hat[ok] - n_inj) / table.mu_err[ok]
            mean_fit[i, j] = float(table.mu_hat[ok].mean())
            mean_err[i, j] = float(table.mu_err[ok].mean())
            pull_mean[i, j] = float(pulls.mean())
            pull_width[i, j] = float(pulls.std(ddof=1))
        logger.info("injection at %.4g GeV: pull means %s, widths %s", m_arr[i], np.round(pull_mean[i], 3).tolist(),
                    np.round(pull_width[i], 3).tolist())
    if n_failed.any():
        logger.warning("injection: %d of %d toy fits failed and are left out", int(n_failed.sum()), n_toys * n_failed.size)
    n_eff = np.maximum(n_ok, 2)
    slope, intercept = np.full(m_arr.size, np.nan), np.full(m_arr.size, np.nan)
    if s_arr.size >= 2:
        for i in range(m_arr.size):
            good = np.isfinite(mean_fit[i])
            if good.sum() >= 2:
                w = 1.0 / (mean_err[i, good] ** 2 / n_eff[i, good])
                slope[i], intercept[i] = np.polyfit(s_arr[good], mean_fit[i, good], 1, w=np.sqrt(w))
    return InjectionStudy(
        masses=m_arr, nsig=s_arr, n_toys=int(n_toys), seed=int(seed), mean_fit=mean_fit, bias=mean_fit - s_arr[None, :],
        bias_over_error=(mean_fit - s_arr[None, :]) / mean_err, pull_mean=pull_mean, pull_mean_err=pull_width / np.sqrt(n_eff),
        pull_width=pull_width, pull_width_err=pull_width / np.sqrt(2.0 * (n_eff - 1)), n_failed=n_failed, slope=slope,
        intercept=intercept, windows=np.asarray(windows),
    )


def plot_injection(study: InjectionStudy, out_dir: str | Path) -> list[Path]:
    """Pull mean and width versus mass (one marker per injected yield) and the linearity per mass; returns the files."""
    import matplotlib.pyplot as plt

    from signal_models._common.plotstyle import place_legend, style

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = []
    with style():
        fig, (a1, a2) = plt.subplots(2, 1, figsize=(8, 6.5), sharex=True, layout="constrained")
        curves1, curves2 = [], []
        for j, n in enumerate(study.nsig):
            a1.errorbar(study.masses, study.pull_mean[:, j], yerr=study.pull_mean_err[:, j], fmt="o", label=f"$N_{{inj}}$ = {n:g}")
            a2.errorbar(study.masses, study.pull_width[:, j], yerr=study.pull_width_err[:, j], fmt="o", label=f"$N_{{inj}}$ = {n:g}")
            curves1.append((study.masses, study.pull_mean[:, j]))
            curves2.append((study.masses, study.pull_width[:, j]))
        a1.axhline(0.0, color="grey", lw=0.8)
        a2.axhline(1.0, color="grey", lw=0.8)
        a1.set_ylabel("pull mean")
        a2.set_ylabel("pull width")
        a2.set_xlabel(r"$m_a$ [GeV]")
        place_legend(a1, curves1, fontsize="small")
        files.append(out / "injection_pulls.png")
        fig.savefig(files[-1])
        plt.close(fig)
        fig, ax = plt.subplots(figsize=(7, 5), layout="constrained")
        curves = []
        for i, m in enumerate(study.masses):
            ax.plot(study.nsig, study.mean_fit[i], "o-", label=f"{m:g} GeV")
            curves.append((study.nsig, study.mean_fit[i]))
        ax.plot(study.nsig, study.nsig, "k--", lw=0.8, label="fitted = injected")
        curves.append((study.nsig, study.nsig))
        ax.set_xlabel(r"injected $N_\mathrm{sig}$")
        ax.set_ylabel(r"mean fitted $N_\mathrm{sig}$")
        place_legend(ax, curves, fontsize="small")
        files.append(out / "injection_linearity.png")
        fig.savefig(files[-1])
        plt.close(fig)
    return files

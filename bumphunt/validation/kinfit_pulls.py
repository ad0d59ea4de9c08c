"""Pulls of the 4C kinematic fit on exact toy events.

For each sample (e+e- -> ggg phase space, and e+e- -> gamma a, a -> gamma
gamma at the given ALP masses), ``bumphunt.toymc.exact.three_photon_sample``
smears exact three-photon events with the ECL resolution (photons in
generation order: an energy ordering would select upward fluctuations) and
``bumphunt.kinfit.fit`` fits them to the Belle II beam. With correct errors
the nine pulls (photon x E, theta, phi) are N(0, 1), chi2 follows chi2(4)
(mean 4) and the p-value is flat.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from .figures import figure_json
from .settings import KINFIT_CHI2_TOL, KINFIT_PULL_TOL, CheckResult, ValidationSettings

logger = logging.getLogger(__name__)

__all__ = ["kinfit_check"]

#: the p-value distribution must not be rejected as flat at this level (Kolmogorov-Smirnov)
KS_MIN_PVALUE = 1e-3


def _sample_name(m_a: float | None) -> str:
    return "ggg" if m_a is None else f"alp_{m_a:g}GeV"


def _one_sample(m_a: float | None, n: int, seed: int, out_dir: Path) -> tuple[dict[str, Any], list[Path]]:
    from bumphunt import kinfit
    from bumphunt.kinematics import Beam
    from bumphunt.kinfit.plots import plot_chi2_pvalue, plot_pulls
    from bumphunt.toymc.exact import three_photon_sample

    beam = Beam.belle2()
    ev = three_photon_sample(n, beam=beam, rng=np.random.default_rng(seed), m_a=m_a, sort=False)
    res = kinfit.fit(ev["E"], ev["theta"], ev["phi"], ev["cov"], beam)
    c = np.asarray(res.converged, bool)
    pulls = np.asarray(res.pulls)[c].reshape(-1, 9)
    mean, width = pulls.mean(axis=0), pulls.std(axis=0)
    chi2 = np.asarray(res.chi2)[c]
    ks = float(stats.kstest(np.asarray(res.pvalue)[c], "uniform").pvalue)
    name = _sample_name(m_a)
    files = [out_dir / f"kinfit_pulls_{name}.png", out_dir / f"kinfit_chi2_{name}.png"]
    plot_pulls(res.pulls, c, files[0])
    plot_chi2_pvalue(res.chi2, res.pvalue, c, files[1], ndf=res.ndf)
    hist_edges = np.linspace(-5.0, 5.0, 61)
    stats_ = {"sample": name, "m_a": m_a, "events": n, "converged_fraction": float(c.mean()), "pull_mean": mean.reshape(3, 3),
              "pull_width": width.reshape(3, 3), "chi2_mean": float(chi2.mean()), "ndf": int(res.ndf), "pvalue_ks": ks,
              "pull_mean_err": (width / np.sqrt(len(pulls))).reshape(3, 3)}
    figure_json(files[0], {**stats_, "histogram_edges": hist_edges,
                           "histograms": [[np.histogram(np.asarray(res.pulls)[c][:, i, a], bins=hist_edges)[0] for a in range(3)] for i in range(3)],
                           "axes": "photon (generation order) x parameter (E, theta, phi)"})
    figure_json(files[1], {**stats_, "chi2_edges": np.linspace(0, 25, 51), "chi2_counts": np.histogram(chi2, bins=np.linspace(0, 25, 51))[0],
                           "pvalue_edges": np.linspace(0, 1, 21), "pvalue_counts": np.histogram(np.asarray(res.pvalue)[c], bins=20, range=(0, 1))[0]})
    return stats_, files


def kinfit_check(settings: ValidationSettings, *, seed: int, out_dir: Path) -> CheckResult:
    """Kinematic-fit pulls, chi2 and p-values for ``settings.kinfit_masses`` with ``settings.kinfit_events`` events each."""
    t0 = time.perf_counter()
    samples, files = [], []
    for k, m_a in enumerate(settings.kinfit_masses):
        s, f = _one_sample(m_a, settings.kinfit_events, seed + k, out_dir)
        samples.append(s)
        files.extend(f)
    rows, ok_all = [], True
    for s in samples:
        mean, width = np.asarray(s["pull_mean"]), np.asarray(s["pull_width"])
        ok = (np.all(np.abs(mean) < KINFIT_PULL_TOL) and np.all(np.abs(width - 1.0) < KINFIT_PULL_TOL)
              and abs(s["chi2_mean"] - s["ndf"]) < KINFIT_CHI2_TOL and s["pvalue_ks"] > KS_MIN_PVALUE and s["converged_fraction"] >= 0.995)
        s["pass"] = bool(ok)
        ok_all &= bool(ok)
        rows.append((s["sample"], str(s["events"]), f"{s['converged_fraction']:.4f}", f"{np.abs(mean).max():.4f}",
                     f"{width.min():.4f}-{width.max():.4f}", f"{s['chi2_mean']:.3f}", f"{s['pvalue_ks']:.3g}", "PASS" if ok else "FAIL"))
    header = ("sample", "events", "converged", "max |pull mean|", "pull widths", "mean chi2 (ndf 4)", "p-value flatness (KS p)", "verdict")
    all_mean = max(float(np.abs(np.asarray(s["pull_mean"])).max()) for s in samples)
    widths = np.concatenate([np.asarray(s["pull_width"]).ravel() for s in samples])
    chi2s = ", ".join(f"{s['chi2_mean']:.3f}" for s in samples)
    headline = (f"max |pull mean| {all_mean:.4f}, pull widths {widths.min():.4f}-{widths.max():.4f}, mean chi2 {chi2s} "
                f"({len(samples)} samples x {settings.kinfit_events} events)")
    criterion = (f"every pull: |mean| < {KINFIT_PULL_TOL} and |width - 1| < {KINFIT_PULL_TOL}; |mean chi2 - 4| < {KINFIT_CHI2_TOL}; "
                 f"flat p-value (KS p > {KS_MIN_PVALUE:g}); >= 99.5% converged")
    return CheckResult(name="kinfit", title="Kinematic-fit pulls", passed=ok_all, criterion=criterion, headline=headline,
                       tables=((header, tuple(rows)),), figures=tuple(f.name for f in files), data={"samples": samples},
                       seconds=time.perf_counter() - t0)

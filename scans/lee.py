"""Look-elsewhere effect: background-only toy spectra, up-crossings and global significance.

The toys are drawn from a smooth model of the whole M_gg spectrum: the
expected count per bin is ``exp(sum_k c_k T_k(x))`` (Chebyshev polynomials in
the data range mapped to [-1, 1]), fitted to a fine histogram by a binned
Poisson likelihood. The log-linear form makes the negative log-likelihood
convex in the c_k, so a Newton-type minimiser (scipy ``trust-exact`` with the
exact gradient and Hessian) finds the unique minimum. Vetoed mass regions
(known peaks) are left out of the fit. Each toy has a Poisson number of
candidates with mean the number of candidates in the data and masses drawn by
inverse CDF, seeded per toy from ``numpy.random.SeedSequence(seed).spawn``, so
toy i is the same wherever it runs.

Global significance (Gross & Vitells, arXiv:1005.1891), with u = Z_max^2::

    p_global ~ p_local(u) + <N(c0)> exp(-(u - c0) / 2)

where <N(c0)> is the mean number of up-crossings of the level c0 by
q0(m) = max(Z_local, 0)^2 in the background-only toy scans; checked against
the direct toy p-value, the fraction of toys whose largest Z_local is at
least the observed one (with its binomial uncertainty). The two are compared
(``gross_vitells_check``) at the observed level and at levels the toys reach
(their largest Z exceeded by 10%, 5%, 2% and 1% of them), where at least
``CHECK_MIN_EXCEEDING`` toys lie above: the extrapolation is an upper bound of
the tail probability that becomes exact far in the tail (at p_global ~ 0.05 it
is typically 0.1-0.3 low in Z, i.e. conservative), so it passes when it is not
below the toys by more than two standard deviations and its Z agrees with
the toys' within ``CHECK_Z_TOL`` plus two standard deviations of the toys' Z.
Beyond the toys' reach only the extrapolation is left; the check says how far
it was tested.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import optimize, stats

logger = logging.getLogger(__name__)

__all__ = ["SmoothBackground", "fit_smooth_background", "toy_seed", "segment_labels", "upcrossings", "global_significance", "gross_vitells_check",
           "CHECK_MIN_EXCEEDING", "CHECK_Z_TOL"]

#: toys above a level for the Gross-Vitells extrapolation to be checked there
CHECK_MIN_EXCEEDING = 10
#: largest difference of the global Z from the extrapolation and from the toys at a checked level
CHECK_Z_TOL = 0.25
#: tail fractions of the toys' largest Z whose levels are checked (besides the observed one)
_CHECK_TAILS = (0.1, 0.05, 0.02, 0.01)


@dataclass(frozen=True)
class SmoothBackground:
    """exp(Chebyshev) density on [lo, hi] GeV, normalised to ``n_expected`` candidates."""

    lo: float
    hi: float
    coeffs: tuple[float, ...]
    n_expected: float

    def _u(self, x: NDArray) -> NDArray:
        return (2.0 * np.asarray(x, dtype=float) - (self.lo + self.hi)) / (self.hi - self.lo)

    def log_shape(self, x: ArrayLike) -> NDArray:
        return np.polynomial.chebyshev.chebval(self._u(np.asarray(x, dtype=float)), self.coeffs)

    def _grid(self, n: int = 20001) -> tuple[NDArray, NDArray]:
        x = np.linspace(self.lo, self.hi, n)
        f = np.exp(self.log_shape(x))
        cdf = np.concatenate([[0.0], np.cumsum(0.5 * (f[1:] + f[:-1]) * np.diff(x))])
        return x, cdf

    def density(self, x: ArrayLike) -> NDArray:
        """Expected candidates per GeV."""
        x = np.asarray(x, dtype=float)
        _, cdf = self._grid()
        return np.where((x >= self.lo) & (x <= self.hi), self.n_expected * np.exp(self.log_shape(x)) / cdf[-1], 0.0)

    def sample(self, rng: np.random.Generator, *, n: int | None = None) -> NDArray[np.float64]:
        """A toy spectrum: Poisson(n_expected) candidates (or exactly ``n``), sorted masses in GeV.

        The uniforms are sorted before the (monotone) inverse CDF is applied, which gives the same
        sorted masses as sorting afterwards (the same values; the final sort only repairs rounding
        at the grid nodes) several times faster (the interpolation walks the grid in order).
        """
        if n is None:
            n = int(rng.poisson(self.n_expected))
        x, cdf = self._grid()
        return np.sort(np.interp(np.sort(rng.uniform(size=n)), cdf / cdf[-1], x))


def fit_smooth_background(
    mgg: ArrayLike,
    *,
    data_range: tuple[float, float],
    order: int = 12,
    bins: int = 2000,
    exclude: Sequence[Sequence[float]] = (),
) -> SmoothBackground:
    """Fit exp(Chebyshev of ``order``) to the M_gg spectrum by a binned Poisson likelihood.

    Parameters
    ----------
    mgg : array
        Candidate masses in GeV.
    data_range : (lo, hi) GeV
    order : int
        Polynomial order of the log-density.
    bins : int
        Histogram bins for the fit (fine enough that the binning does not matter).
    exclude : list of [lo, hi]
        Mass ranges left out of the fit (vetoed peaks); the smooth function interpolates across them.
    """
    lo, hi = map(float, data_range)
    x = np.asarray(mgg, dtype=float)
    x = x[(x >= lo) & (x <= hi)]
    counts, edges = np.histogram(x, bins=bins, range=(lo, hi))
    centres = 0.5 * (edges[1:] + edges[:-1])
    keep = np.ones(bins, dtype=bool)
    for a, b in exclude:
        keep &= ~((edges[1:] > a) & (edges[:-1] < b))
    u = (2.0 * centres - (lo + hi)) / (hi - lo)
    basis = np.polynomial.chebyshev.chebvander(u, order)[keep]  # (nb, order+1)
    n = counts[keep].astype(float)

    def nll(c: NDArray) -> float:
        eta = basis @ c
        return float(np.sum(np.exp(eta) - n * eta))

    def grad(c: NDArray) -> NDArray:
        return basis.T @ (np.exp(basis @ c) - n)

    def hess(c: NDArray) -> NDArray:
        return (basis * np.exp(basis @ c)[:, None]).T @ basis

    c0 = np.zeros(order + 1)
    c0[0] = math.log(max(n.mean(), 1e-3))
    res = optimize.minimize(nll, c0, jac=grad, hess=hess, method="trust-exact", options={"gtol": 1e-8, "maxiter": 500})
    if not np.all(np.isfinite(res.x)):
        raise RuntimeError(f"smooth background fit failed: {res.message}")
    if not res.success and np.linalg.norm(grad(res.x)) > 1e-4 * math.sqrt(max(n.sum(), 1.0)):
        logger.warning("smooth background fit: %s (gradient norm %.3g)", res.message, np.linalg.norm(grad(res.x)))
    # normalisation: expected candidates in the whole range (bins inside vetoes interpolated)
    width = (hi - lo) / bins
    coeffs = res.x.copy()
    coeffs[0] -= math.log(width)  # expected count per bin -> per GeV
    model = SmoothBackground(lo=lo, hi=hi, coeffs=tuple(float(c) for c in coeffs), n_expected=1.0)
    _, cdf = model._grid()
    n_expected = float(cdf[-1])  # integral of exp(log_shape) = expected candidates
    return SmoothBackground(lo=lo, hi=hi, coeffs=model.coeffs, n_expected=n_expected)


def toy_seed(seed: int, index: int) -> np.random.SeedSequence:
    """Seed of toy ``index`` (independent streams from one scan seed)."""
    return np.random.SeedSequence(entropy=seed, spawn_key=(index,))


def segment_labels(indices: ArrayLike) -> NDArray[np.int64]:
    """Label runs of consecutive grid indices: points separated by vetoed or empty points start a new segment.

    Parameters
    ----------
    indices : (k,) int array
        Increasing grid indices of the scanned points.

    Returns
    -------
    (k,) int array
        Segment label per point, 0, 1, ... (for ``upcrossings(..., segments=)``).
    """
    idx = np.asarray(indices)
    if len(idx) == 0:
        return np.zeros(0, dtype=int)
    return np.concatenate([[0], np.cumsum(np.diff(idx) != 1)])


def upcrossings(q0: ArrayLike, c0: float, *, segments: ArrayLike | None = None) -> NDArray[np.int64]:
    """Number of up-crossings of level ``c0`` by q0 along the mass axis.

    Parameters
    ----------
    q0 : (..., k) array
        q0 = max(Z_local, 0)^2 at consecutive scanned masses (last axis).
    segments : (k,) int array, optional
        Segment label of each point; crossings between points of different
        segments (across a vetoed gap) are not counted.
    """
    q = np.asarray(q0, dtype=float)
    cross = (q[..., :-1] <= c0) & (q[..., 1:] > c0)
    if segments is not None:
        seg = np.asarray(segments)
        cross = cross & (seg[:-1] == seg[1:])
    return cross.sum(axis=-1)


def global_significance(
    z_obs: ArrayLike,
    masses: ArrayLike,
    *,
    z_toys: NDArray | None = None,
    c0: float = 1.0,
    segments: ArrayLike | None = None,
) -> dict:
    """Global significance of the largest local excess of a scan.

    Parameters
    ----------
    z_obs : (k,)
        Signed local significances of the scanned (not vetoed, converged) points.
    masses : (k,) GeV
    z_toys : (n_toys, k), optional
        Local significances of background-only toy scans at the same points.
        Without toys, <N(c0)> is estimated from the observed scan itself
        (Gross & Vitells' low-reference-level method).
    c0 : float
        Reference level in q0 units.

    Returns
    -------
    dict
        ``max_z_local``, ``mass_at_max``, ``p_local``, ``z_global``, ``p_global``,
        ``p_global_err``, ``z_global_err``, ``method``, ``c0``, ``n_upcrossings``,
        ``n_upcrossings_err``, ``n_toys`` and, with toys, ``toys`` (direct
        p-value, its binomial uncertainty and Z, and ``check``: the
        extrapolation against the toys, ``gross_vitells_check``).
    """
    z = np.asarray(z_obs, dtype=float)
    m = np.asarray(masses, dtype=float)
    if z.size == 0:
        raise ValueError("global_significance: no scanned points")
    i = int(np.argmax(z))
    zmax = float(z[i])
    u = max(zmax, 0.0) ** 2
    p_local = float(stats.norm.sf(max(zmax, 0.0))) if zmax > 0 else 0.5
    if z_toys is not None and len(z_toys):
        zt = np.asarray(z_toys, dtype=float)
        n_cross = upcrossings(np.maximum(zt, 0.0) ** 2, c0, segments=segments)
        n_mean = float(n_cross.mean())
        n_err = float(n_cross.std(ddof=1) / math.sqrt(len(zt))) if len(zt) > 1 else n_mean
        method = "gross-vitells (background-only toy up-crossings)"
    else:
        n_mean = float(upcrossings(np.maximum(z, 0.0) ** 2, c0, segments=segments))
        n_err = math.sqrt(max(n_mean, 1.0))
        method = "gross-vitells (up-crossings of the observed scan)"
    factor = math.exp(-(u - c0) / 2.0) if u > c0 else 1.0
    p_global = min(1.0, p_local + n_mean * factor)
    p_err = n_err * factor
    out = {
        "max_z_local": zmax,
        "mass_at_max": float(m[i]),
        "p_local": p_local,
        "z_global": float(max(stats.norm.isf(p_global), 0.0)),
        "p_global": p_global,
        "p_global_err": p_err,
        "method": method,
        "c0": float(c0),
        "n_upcrossings": n_mean,
        "n_upcrossings_err": n_err,
        "n_toys": 0 if z_toys is None else int(len(z_toys)),
    }
    if _z_err(p_global, p_err) is not None:
        out["z_global_err"] = _z_err(p_global, p_err)
    if z_toys is not None and len(z_toys):
        zt_max = np.max(np.asarray(z_toys, dtype=float), axis=1)
        n_toys = len(zt_max)
        p, p_err_toys, k = _toy_tail(zt_max, zmax)
        out["toys"] = {
            "n_exceeding": k,
            "p_global": p,
            "p_global_err": p_err_toys,
            "z_global": float(max(stats.norm.isf(p), 0.0)) if k > 0 else float(stats.norm.isf(1.0 / n_toys)),
            "z_global_err": _z_err(p, p_err_toys),
            "z_global_is_lower_bound": k == 0,
            "max_z_local_mean": float(zt_max.mean()),
            "check": gross_vitells_check(zt_max, n_mean, n_err, c0=c0, observed=zmax),
        }
    return out


def _toy_tail(zt_max: NDArray, level: float) -> tuple[float, float, int]:
    """Fraction of toys whose largest Z is >= ``level``, its binomial uncertainty and the count.

    With no toy (or every toy) above, the uncertainty is the 68% bound 1.14/n instead of 0.
    """
    n = len(zt_max)
    k = int(np.sum(zt_max >= level))
    p = k / n
    return p, (math.sqrt(p * (1 - p) / n) if 0 < k < n else 1.14 / n), k


def _z_err(p: float, p_err: float) -> float | None:
    """Uncertainty of Z = Phi^-1(1 - p) from that of p (linearised; None where p is 0 or 1)."""
    if not 0 < p < 1:
        return None
    return float(p_err / stats.norm.pdf(stats.norm.isf(p)))


def _gv_tail(u: float, n_mean: float, n_err: float, c0: float) -> tuple[float, float]:
    """Gross-Vitells tail probability of the largest Z at level ``u`` (Z units) and its uncertainty from <N(c0)>."""
    q = max(u, 0.0) ** 2
    factor = math.exp(-(q - c0) / 2.0) if q > c0 else 1.0
    p_local = float(stats.norm.sf(max(u, 0.0))) if u > 0 else 0.5
    return min(1.0, p_local + n_mean * factor), n_err * factor


def gross_vitells_check(zt_max: ArrayLike, n_mean: float, n_err: float, *, c0: float, observed: float | None = None) -> dict:
    """The Gross-Vitells extrapolation against the direct toy tail at the levels the toys reach.

    Parameters
    ----------
    zt_max : (n_toys,) array
        Largest local Z of each background-only toy scan.
    n_mean, n_err : float
        Mean number of up-crossings of ``c0`` per toy scan and its uncertainty.
    c0 : float
        Reference level (q0 units).
    observed : float, optional
        The observed largest local Z (checked as well when the toys reach it).

    Returns
    -------
    dict
        ``levels``: per level (Z units; the observed one first) ``p_toys`` +- ``p_toys_err`` (binomial),
        ``n_exceeding``, ``p_gv`` +- ``p_gv_err``, both as Z (``z_toys`` +- ``z_toys_err``, None without
        a toy above), ``tested`` (at least
        ``CHECK_MIN_EXCEEDING`` toys above) and ``pass``; ``consistent`` (every tested level passes and
        at least one is tested), ``observed_within_reach`` and ``highest_tested_z`` (the largest level
        tested, None if none: beyond it only the extrapolation is left).
    """
    zt = np.asarray(zt_max, dtype=float)
    levels = [] if observed is None else [float(observed)]
    for tail in _CHECK_TAILS:
        if tail * len(zt) >= CHECK_MIN_EXCEEDING:
            levels.append(float(np.quantile(zt, 1.0 - tail)))
    rows = []
    for u in levels:
        p_t, p_t_err, k = _toy_tail(zt, u)
        p_gv, p_gv_err = _gv_tail(u, n_mean, n_err, c0)
        z_t = float(max(stats.norm.isf(p_t), 0.0)) if k > 0 else None
        z_t_err = _z_err(p_t, p_t_err)
        z_gv = float(max(stats.norm.isf(p_gv), 0.0))
        tested = k >= CHECK_MIN_EXCEEDING and z_t is not None and z_t_err is not None
        ok = True
        if tested:
            ok = abs(z_gv - z_t) < CHECK_Z_TOL + 2.0 * z_t_err and p_gv >= p_t - 2.0 * math.hypot(p_t_err, p_gv_err)
        rows.append({"z_local": u, "n_exceeding": k, "p_toys": p_t, "p_toys_err": p_t_err, "p_gv": p_gv, "p_gv_err": p_gv_err, "z_toys": z_t,
                     "z_toys_err": z_t_err, "z_gv": z_gv, "tested": tested, "pass": bool(ok)})
    tested_levels = [r["z_local"] for r in rows if r["tested"]]
    return {
        "levels": rows,
        "consistent": bool(tested_levels) and all(r["pass"] for r in rows),
        "observed_within_reach": bool(rows and observed is not None and rows[0]["tested"]),
        "highest_tested_z": max(tested_levels) if tested_levels else None,
        "min_exceeding": CHECK_MIN_EXCEEDING,
        "z_tolerance": CHECK_Z_TOL,
    }

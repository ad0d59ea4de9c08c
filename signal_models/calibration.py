"""Calibration of the signal shape at every generated mass: the driver over masses.

``calibrate`` fits each generated mass with ``signal_models.mass_fit.fit_mass``
(one reused zfit fitter, ``signal_models.calibration_fitter``). Parameters
kept fixed (by default the tail exponents ``n_l``, ``n_r``) without given
values come from a pre-pass that floats them at a few well-populated masses
and combines the results. A failed fit is retried from the previous mass's
values and with higher Minuit strategies; after all masses, each mass still
failed is retried from its nearest successful neighbours on both sides.

The names other modules import from here (``MassFit``, ``fit_mass``,
``CalibrationFitter``, ``FIT_PARAMS``, ``robust_peak``,
``chi2_equal_probability``) are re-exported from their homes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ._common.defaults import DEFAULT_HALF_WIDTH
from .calibration_fitter import DEFAULT_START, FIT_PARAMS, CalibrationFitter
from .errors import ShapeError
from .goodness_of_fit import chi2_equal_probability
from .mass_fit import MassFit, fit_mass, same_mass
from .sample_stats import robust_peak

logger = logging.getLogger(__name__)

__all__ = ["MassFit", "CalibrationFitter", "calibrate", "fit_mass", "robust_peak", "chi2_equal_probability", "FIT_PARAMS", "DEFAULT_START"]

#: a candidate sample per generated mass: index of the mass -> (masses in GeV, truth-match flags, weights)
DataOf = Callable[[int], tuple[NDArray, NDArray, NDArray]]


def calibrate(
    mgg: ArrayLike,
    truth_match: ArrayLike,
    mc_ma: ArrayLike,
    *,
    n_generated: Mapping[float, int],
    weights: ArrayLike | None = None,
    fixed: Sequence[str] = ("n_l", "n_r"),
    fixed_values: Mapping[str, float] | None = None,
    half_width: float = DEFAULT_HALF_WIDTH,
    min_events: int = 100,
    n_prepass: int = 8,
    masses: Sequence[float] | None = None,
    fitter: CalibrationFitter | None = None,
    progress: Callable[[Iterable[Any]], Iterable[Any]] | None = None,
) -> list[MassFit]:
    """Fit every generated mass; returns one ``MassFit`` per mass (sorted by mass).

    Parameters
    ----------
    mgg, truth_match, mc_ma : array-like, shape (n,)
        Candidate diphoton masses (GeV), truth-match flags, generated ALP mass
        of the candidate's event (GeV).
    n_generated : mapping mass -> int
        Number of generated signal events per mass (efficiency denominator).
    weights : array-like, optional
        Candidate weights (default 1). They weight the shape fits only; the
        efficiencies are counts of candidates over ``n_generated``, both
        unweighted, so per-event weights such as sigma x L / N_gen do not
        scale them.
    fixed : sequence of str
        Shape parameters fixed in the per-mass fits (default the tail exponents).
    fixed_values : mapping, optional
        Values of the fixed parameters. Missing ones are determined by a
        pre-pass that floats them at ``n_prepass`` masses with the most
        events and takes the median.
    half_width : float
        Fit range (and Chebyshev domain) in units of sigma.
    min_events : int
        Masses with fewer truth-matched candidates are skipped with a warning.
    masses : sequence of float, optional
        Fit only these generated masses (default: all in ``mc_ma``).
    fitter : CalibrationFitter, optional
        Reuse a fitter (compiled graph) across calls.
    progress : callable, optional
        Wraps the mass iterable (e.g. a progress bar).
    """
    x = np.asarray(mgg, dtype=float)
    tm = np.asarray(truth_match, dtype=bool)
    ma = np.asarray(mc_ma, dtype=float)
    w = np.ones_like(x) if weights is None else np.asarray(weights, dtype=float)
    if not (x.shape == tm.shape == ma.shape == w.shape) or x.ndim != 1:
        raise ShapeError(f"mgg, truth_match, mc_ma and weights must be 1-D arrays of one length, got shapes {x.shape}, {tm.shape}, {ma.shape}, {w.shape}")
    unknown_fixed = set(fixed) - set(FIT_PARAMS)
    if unknown_fixed:
        raise ShapeError(f"fixed: unknown parameter(s) {sorted(unknown_fixed)}; expected names from {FIT_PARAMS}")
    if not np.isfinite(ma).all():
        raise ShapeError(f"mc_ma contains {int((~np.isfinite(ma)).sum())} non-finite value(s); every candidate needs its generated mass")
    all_masses = np.unique(ma) if masses is None else np.unique(np.asarray(masses, dtype=float))
    ngen = {float(k): int(v) for k, v in n_generated.items()}
    missing = [m for m in all_masses if _lookup(ngen, m) is None]
    if missing:
        raise ShapeError(f"n_generated has no entry for generated mass(es) {missing[:5]} GeV (keys: {sorted(ngen)[:5]}...)")
    fitter = fitter or CalibrationFitter(half_width=half_width)
    if abs(fitter.half_width - half_width) > 1e-12:
        raise ShapeError(f"fitter half_width {fitter.half_width} != half_width {half_width}")
    order = np.argsort(ma, kind="stable")
    ma_sorted = ma[order]
    bounds = np.searchsorted(ma_sorted, all_masses, side="left"), np.searchsorted(ma_sorted, all_masses, side="right")

    def data_of(i: int) -> tuple[NDArray, NDArray, NDArray]:
        idx = order[bounds[0][i] : bounds[1][i]]
        return x[idx], tm[idx], w[idx]

    fixed_values = dict(fixed_values or {})
    need = [k for k in fixed if k not in fixed_values]
    if need:
        fixed_values.update(_prepass(fitter, data_of, all_masses, ngen, need=need, fixed=fixed, fixed_values=fixed_values, min_events=min_events, n_prepass=n_prepass))
        logger.info("fixed tail parameters from the pre-pass: %s", {k: round(v, 4) for k, v in fixed_values.items()})

    fits: list[MassFit] = []
    prev: MassFit | None = None
    it: Iterable[int] = range(len(all_masses))
    if progress is not None:
        it = progress(it)
    for i in it:
        xi, ti, wi = data_of(i)
        res = _fit_with_retries(fitter, xi, ti, wi, mass=all_masses[i], n_generated=_lookup(ngen, all_masses[i]), fixed=fixed, fixed_values=fixed_values, min_events=min_events, neighbours=[prev])
        if res.status == "skipped":
            logger.warning("mass %.6g GeV skipped: %s", res.mass, res.reason)
        elif res.ok and np.isfinite(res.pvalue) and res.pvalue < 1e-3:
            logger.warning("mass %.6g GeV: the fitted shape describes the candidates poorly (chi2/ndf = %.1f/%d, p = %.2g)", res.mass, res.chi2, res.ndf, res.pvalue)
        if res.ok:
            prev = res
        fits.append(res)
    # second pass: failed fits retried from the nearest successful neighbours on both sides
    for i, res in enumerate(fits):
        if res.status != "failed":
            continue
        left = next((f for f in reversed(fits[:i]) if f.ok), None)
        right = next((f for f in fits[i + 1 :] if f.ok), None)
        xi, ti, wi = data_of(i)
        retry = _fit_with_retries(
            fitter, xi, ti, wi, mass=all_masses[i], n_generated=res.n_generated, fixed=fixed, fixed_values=fixed_values, min_events=min_events, neighbours=[right, left], attempts_before=res.n_attempts
        )
        fits[i] = retry
        if retry.ok:
            logger.info("mass %.6g GeV: fit recovered with starting values from a neighbouring mass", retry.mass)
        else:
            logger.warning("mass %.6g GeV: fit failed after %d attempts (%s); excluded from the interpolation", retry.mass, retry.n_attempts, retry.reason)
    return fits


def _lookup(ngen: Mapping[float, int], m: float) -> int | None:
    if m in ngen:
        return ngen[m]
    for k, v in ngen.items():
        if same_mass(m, k):
            return v
    return None


def _fit_with_retries(
    fitter: CalibrationFitter,
    x: NDArray,
    tm: NDArray,
    w: NDArray,
    *,
    mass: float,
    n_generated: int,
    fixed: Sequence[str],
    fixed_values: Mapping[str, float],
    min_events: int,
    neighbours: Sequence[MassFit | None],
    attempts_before: int = 0,
) -> MassFit:
    """``fit_mass`` from each successful neighbour's values, then from the defaults with Minuit strategies 0, 1, 2.

    Returns the first fit that did not fail (or the last failure), its ``n_attempts`` counting from ``attempts_before``.
    """
    starts: list[tuple[MassFit | None, int]] = [(n, 0) for n in neighbours if n is not None and n.ok]
    starts += [(None, 0), (None, 1), (None, 2)]
    res: MassFit | None = None
    for attempt, (start_from, strategy) in enumerate(starts, start=1):
        res = fit_mass(fitter, x, tm, w, mass=mass, n_generated=n_generated, fixed=fixed, fixed_values=fixed_values, min_events=min_events, start_from=start_from, strategy=strategy)
        res = replace(res, n_attempts=attempts_before + attempt)
        if res.status != "failed":
            return res
        logger.info("mass %.6g GeV: attempt %d failed (%s), retrying", mass, attempt, res.reason)
    assert res is not None
    return res


def _prepass(
    fitter: CalibrationFitter,
    data_of: DataOf,
    masses: NDArray,
    ngen: Mapping[float, int],
    *,
    need: Sequence[str],
    fixed: Sequence[str],
    fixed_values: Mapping[str, float],
    min_events: int,
    n_prepass: int,
) -> dict[str, float]:
    """Values of the fixed parameters ``need`` from fits that float them at up to ``n_prepass`` masses."""
    counts = []
    for i in range(len(masses)):
        _, ti, _ = data_of(i)
        counts.append(int(ti.sum()))
    counts = np.asarray(counts)
    eligible = np.flatnonzero(counts >= max(min_events, 200))
    if eligible.size == 0:
        logger.warning("pre-pass: no mass with enough events to determine %s; using defaults %s", need, {k: DEFAULT_START[k] for k in need})
        return {k: DEFAULT_START[k] for k in need}
    # spread over the mass range, preferring large samples
    picks = eligible[np.linspace(0, eligible.size - 1, min(n_prepass, eligible.size)).round().astype(int)]
    fixed_pre = [k for k in fixed if k not in need]
    found: dict[str, list[tuple[float, float]]] = {k: [] for k in need}
    for i in np.unique(picks):
        xi, ti, wi = data_of(i)
        res = _fit_with_retries(fitter, xi, ti, wi, mass=masses[i], n_generated=_lookup(ngen, masses[i]), fixed=fixed_pre, fixed_values=fixed_values, min_events=min_events, neighbours=[])
        if res.ok:
            for k in need:
                found[k].append((res.params[k], res.errors[k]))
    out: dict[str, float] = {}
    for k in need:
        if found[k]:
            # inverse-variance weighted mean of log(n): single-mass tail exponents are poorly
            # constrained (correlated with alpha), the combination is what fixes them
            v = np.array([p for p, _ in found[k]])
            e = np.array([max(err, 1e-3 * p) for p, err in found[k]]) / v
            wts = 1.0 / e**2
            out[k] = float(np.exp(np.sum(wts * np.log(v)) / np.sum(wts)))
            logger.info("pre-pass %s: per-mass %s -> %.4g", k, np.round(v, 3).tolist(), out[k])
        else:
            logger.warning("pre-pass: %s could not be determined; using default %s", k, DEFAULT_START[k])
            out[k] = DEFAULT_START[k]
    return out

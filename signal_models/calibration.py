"""Calibration of the signal shape at every generated mass: the driver over masses.

``calibrate_with_tails`` fits each generated mass with
``signal_models.mass_fit.fit_mass`` (one reused zfit fitter,
``signal_models.calibration_fitter``):

1. Parameters kept fixed at every mass (by default the tail exponents
   ``n_l``, ``n_r``) without given values come from a pre-pass that floats
   them at a few well-populated masses and combines the results; single-mass
   values outside ``N_RANGE`` or with an error above their value (tails the
   data do not reach) are left out, and the result is clipped to ``N_RANGE``.
2. First pass: every mass with the tail starts ``alpha_l``, ``alpha_r``
   floating, each from the default starting values.
3. The tail starts become smooth functions of the mass
   (``signal_models.smooth_tails``), and a second pass refits every mass with
   them fixed to the curves: only the peak position, the core width and the
   combinatorial slope float. This removes the bistability of a weakly
   populated tail (a tail far out and a wider core, or a nearby tail and a
   narrower core) that otherwise makes the core width jump between masses.
   With fewer than ``MIN_CURVE_MASSES`` masses, or ``smooth_tails=()``, the
   first pass is final (tails per mass, each mass starting from the previous
   one's values, as before).

In each pass a failed fit is retried from the previous mass's values and with
higher Minuit strategies; after all masses, each mass still failed is retried
from its nearest successful neighbours on both sides. ``calibrate`` returns
the fits only.

The names other modules import from here (``MassFit``, ``fit_mass``,
``CalibrationFitter``, ``FIT_PARAMS``, ``robust_peak``,
``chi2_equal_probability``) are re-exported from their homes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ._common.defaults import DEFAULT_HALF_WIDTH
from .calibration_fitter import DEFAULT_START, FIT_PARAMS, CalibrationFitter
from .errors import ShapeError
from .goodness_of_fit import chi2_equal_probability
from .mass_fit import MassFit, fit_mass, same_mass
from .sample_stats import robust_peak
from .smooth_tails import MIN_CURVE_MASSES, TAIL_STARTS, TailCurves, fit_tail_curves

logger = logging.getLogger(__name__)

__all__ = ["MassFit", "CalibrationFitter", "Calibration", "calibrate", "calibrate_with_tails", "fit_mass", "N_RANGE", "robust_peak", "chi2_equal_probability", "FIT_PARAMS", "DEFAULT_START"]

#: a candidate sample per generated mass: index of the mass -> (masses in GeV, truth-match flags, weights)
DataOf = Callable[[int], tuple[NDArray, NDArray, NDArray]]
#: sane range of a tail exponent from the pre-pass: single-mass values outside it (a tail the data do
#: not reach, so n runs off towards its fit limit) do not enter the combination, which is clipped to it
N_RANGE = (1.05, 50.0)


@dataclass(frozen=True)
class Calibration:
    """Result of ``calibrate_with_tails``.

    Attributes
    ----------
    fits : list of MassFit
        One fit per generated mass, sorted by mass.
    fixed_values : dict
        Values of the parameters fixed at every mass (the tail exponents).
    tail_curves : TailCurves or None
        The smooth curves the tail starts were fixed to (None: fitted per mass).
    """

    fits: list[MassFit]
    fixed_values: dict[str, float]
    tail_curves: TailCurves | None


def calibrate(mgg: ArrayLike, truth_match: ArrayLike, mc_ma: ArrayLike, **options: Any) -> list[MassFit]:
    """Fit every generated mass; returns one ``MassFit`` per mass (sorted by mass).

    The per-mass fits of ``calibrate_with_tails`` (same arguments), without the tail curves.
    """
    return calibrate_with_tails(mgg, truth_match, mc_ma, **options).fits


def calibrate_with_tails(
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
    smooth_tails: Sequence[str] = TAIL_STARTS,
    exclude_from_curves: Sequence[float] = (),
    masses: Sequence[float] | None = None,
    fitter: CalibrationFitter | None = None,
    progress: Callable[[Iterable[Any]], Iterable[Any]] | None = None,
) -> Calibration:
    """Fit every generated mass, with the tail starts smooth in mass; returns the fits and the tail curves.

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
        pre-pass that floats them at up to ``n_prepass`` well-populated
        masses spread over the range and combines them (weighted mean of
        ``log n``; see ``_prepass``).
    half_width : float
        Fit range (and Chebyshev domain) in units of sigma.
    min_events : int
        Masses with fewer truth-matched candidates are skipped with a warning.
    smooth_tails : sequence of str
        Tail parameters made smooth functions of the mass (default the tail
        starts ``alpha_l``, ``alpha_r``; ``()`` fits them freely at every
        mass). A first pass floats them at every mass, ``signal_models.smooth_tails``
        turns the results into smoothing-spline curves, and a second pass
        refits every mass with them fixed to the curves (their ``errors``
        are then the curves' 1-sigma bands). With fewer than
        ``MIN_CURVE_MASSES`` masses the single per-mass pass is kept.
    exclude_from_curves : sequence of float
        Generated masses (GeV) fitted but kept out of the tail curves (hold-out masses).
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
    unknown_smooth = set(smooth_tails) - {"alpha_l", "alpha_r", "n_l", "n_r"}
    if unknown_smooth:
        raise ShapeError(f"smooth_tails: unknown tail parameter(s) {sorted(unknown_smooth)}; expected alpha_l, alpha_r, n_l, n_r")
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
    smooth = [k for k in smooth_tails if k not in fixed] if len(all_masses) >= MIN_CURVE_MASSES else []
    mass_list = [float(m) for m in all_masses]
    n_gen = [_lookup(ngen, m) for m in mass_list]
    fit_all = partial(_fit_all, fitter, data_of, mass_list, n_gen, min_events=min_events, progress=progress)
    # first pass: the tails float (from the default starts, so that a tail stuck far out at one
    # mass is not handed on to the next when they are to be smoothed)
    fits = fit_all(fixed=fixed, values_of=lambda _i: fixed_values, first_starts=lambda _i: [], defaults_first=bool(smooth), final=not smooth)
    curves = fit_tail_curves(fits, smooth, exclude=exclude_from_curves) if smooth else None
    if curves is None:
        if smooth:
            for f in fits:
                _warn_poor_fit(f)
        return Calibration(fits=fits, fixed_values=fixed_values, tail_curves=None)
    # second pass: the tails fixed to their smooth curves; each mass starts from its own first-pass fit
    first = fits
    fits = fit_all(
        fixed=(*fixed, *curves.names),
        values_of=lambda i: {**fixed_values, **curves.values(mass_list[i])},
        first_starts=lambda i: [first[i]],
        defaults_first=False,
        final=True,
    )
    fits = [_with_curve_errors(f, first[i], curves) if f.ok else f for i, f in enumerate(fits)]
    return Calibration(fits=fits, fixed_values=fixed_values, tail_curves=curves)


def _with_curve_errors(second: MassFit, first: MassFit, curves: TailCurves) -> MassFit:
    """The second-pass fit with the tail starts' errors from the curves' bands, and the errors of the other
    parameters no smaller than in the first pass.

    With the tails fixed, the second-pass errors of the core width and peak position are conditional on the
    tail starts and miss their uncertainty; the first-pass errors (tails floating, constrained by that mass's
    data only) include it in full. Their maximum is a conservative bound of the error with the curves'
    uncertainty propagated (the curves constrain the tails at least as well as one mass does).
    """
    errors = dict(second.errors)
    if first.ok:
        for k, e in first.errors.items():
            if k in errors and k not in curves.names and np.isfinite(e):
                errors[k] = max(errors[k], e)
    errors.update(curves.errors(second.mass))
    return replace(second, errors=errors)


def _warn_poor_fit(res: MassFit) -> None:
    if res.status == "skipped":
        logger.warning("mass %.6g GeV skipped: %s", res.mass, res.reason)
    elif res.ok and np.isfinite(res.pvalue) and res.pvalue < 1e-3:
        logger.warning("mass %.6g GeV: the fitted shape describes the candidates poorly (chi2/ndf = %.1f/%d, p = %.2g)", res.mass, res.chi2, res.ndf, res.pvalue)


def _fit_all(
    fitter: CalibrationFitter,
    data_of: DataOf,
    masses: Sequence[float],
    n_gen: Sequence[int | None],
    *,
    fixed: Sequence[str],
    values_of: Callable[[int], Mapping[str, float]],
    first_starts: Callable[[int], Sequence[MassFit | None]],
    defaults_first: bool,
    final: bool,
    min_events: int,
    progress: Callable[[Iterable[Any]], Iterable[Any]] | None,
) -> list[MassFit]:
    """One pass over all masses (``fit_mass`` with retries), then the failed ones again from both neighbours.

    ``values_of(i)``: the fixed values at mass ``i``; ``first_starts(i)``: fits
    to start from before the previous mass's; ``defaults_first``: try the
    default starting values before any neighbour's; ``final``: log skipped
    masses and poor fits (the pass whose fits are kept).
    """
    fits: list[MassFit] = []
    prev: MassFit | None = None
    it: Iterable[int] = range(len(masses))
    if progress is not None:
        it = progress(it)
    for i in it:
        xi, ti, wi = data_of(i)
        res = _fit_with_retries(
            fitter, xi, ti, wi, mass=masses[i], n_generated=n_gen[i], fixed=fixed, fixed_values=values_of(i), min_events=min_events,
            neighbours=[*first_starts(i), prev], defaults_first=defaults_first,
        )
        if final:
            _warn_poor_fit(res)
        if res.ok:
            prev = res
        fits.append(res)
    # failed fits retried from the nearest successful neighbours on both sides
    for i, res in enumerate(fits):
        if res.status != "failed":
            continue
        left = next((f for f in reversed(fits[:i]) if f.ok), None)
        right = next((f for f in fits[i + 1 :] if f.ok), None)
        xi, ti, wi = data_of(i)
        retry = _fit_with_retries(
            fitter, xi, ti, wi, mass=masses[i], n_generated=res.n_generated, fixed=fixed, fixed_values=values_of(i), min_events=min_events,
            neighbours=[right, left], attempts_before=res.n_attempts,
        )
        fits[i] = retry
        if retry.ok:
            logger.info("mass %.6g GeV: fit recovered with starting values from a neighbouring mass", retry.mass)
        elif final:
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
    defaults_first: bool = False,
    limit_ok: Sequence[str] = (),
) -> MassFit:
    """``fit_mass`` from each successful neighbour's values, then from the defaults with Minuit strategies 0, 1, 2.

    ``defaults_first``: the default starting values (strategy 0) come before
    the neighbours'; ``limit_ok``: parameters that may end at a fit limit.
    Returns the first fit that did not fail (or the last failure), its
    ``n_attempts`` counting from ``attempts_before``.
    """
    starts: list[tuple[MassFit | None, int]] = [(n, 0) for n in neighbours if n is not None and n.ok]
    starts = [(None, 0), *starts, (None, 1), (None, 2)] if defaults_first else [*starts, (None, 0), (None, 1), (None, 2)]
    res: MassFit | None = None
    for attempt, (start_from, strategy) in enumerate(starts, start=1):
        res = fit_mass(fitter, x, tm, w, mass=mass, n_generated=n_generated, fixed=fixed, fixed_values=fixed_values, min_events=min_events, start_from=start_from, strategy=strategy,
                       limit_ok=limit_ok)
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
        res = _fit_with_retries(fitter, xi, ti, wi, mass=masses[i], n_generated=_lookup(ngen, masses[i]), fixed=fixed_pre, fixed_values=fixed_values, min_events=min_events, neighbours=[],
                                limit_ok=[k for k in need if k in ("n_l", "n_r")])
        if res.ok:
            for k in need:
                value, error = res.params[k], res.errors[k]
                if k in ("n_l", "n_r") and not (N_RANGE[0] <= value <= N_RANGE[1] and error < value):
                    logger.info("pre-pass %s at %.6g GeV: %.3g +- %.3g is not constrained (outside %s or error above value); not used", k, masses[i], value, error, N_RANGE)
                    continue
                found[k].append((value, error))
    out: dict[str, float] = {}
    for k in need:
        if found[k]:
            # inverse-variance weighted mean of log(n): single-mass tail exponents are poorly
            # constrained (correlated with alpha), the combination is what fixes them
            v = np.array([p for p, _ in found[k]])
            e = np.array([max(err, 1e-3 * p) for p, err in found[k]]) / v
            wts = 1.0 / e**2
            out[k] = float(np.exp(np.sum(wts * np.log(v)) / np.sum(wts)))
            if k in ("n_l", "n_r"):
                out[k] = float(np.clip(out[k], *N_RANGE))
            logger.info("pre-pass %s: per-mass %s -> %.4g", k, np.round(v, 3).tolist(), out[k])
        else:
            logger.warning("pre-pass: %s could not be determined; using default %s", k, DEFAULT_START[k])
            out[k] = DEFAULT_START[k]
    return out

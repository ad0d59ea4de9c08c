"""``build_signal_model``: calibrate every generated mass of the signal MC with zfit and interpolate in mass."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ._common.defaults import DEFAULT_HALF_WIDTH
from .calibration import calibrate_with_tails
from .calibration_fitter import FIT_PARAMS, CalibrationFitter
from .errors import ShapeError
from .mass_fit import MassFit, grouped_count_error, same_mass
from .model import SignalModel
from .smooth_tails import TAIL_STARTS

__all__ = ["build_signal_model", "fits_value"]


def build_signal_model(
    mgg: ArrayLike,
    truth_match: ArrayLike,
    mc_ma: ArrayLike,
    *,
    n_generated: Mapping[float, int],
    weights: ArrayLike | None = None,
    holdout: Sequence[float] = (),
    n_fixed: Sequence[str] = ("n_l", "n_r"),
    fixed_values: Mapping[str, float] | None = None,
    half_width: float = DEFAULT_HALF_WIDTH,
    min_events: int = 100,
    n_prepass: int = 8,
    smooth_tails: Sequence[str] = TAIL_STARTS,
    event_ids: ArrayLike | None = None,
    interpolation: Mapping[str, Mapping[str, Any]] | None = None,
    selection: Mapping[str, Any] | None = None,
    fitter: CalibrationFitter | None = None,
    progress: Callable[[Iterable[Any]], Iterable[Any]] | None = None,
) -> SignalModel:
    """Calibrate every generated mass with zfit and interpolate in mass.

    Parameters
    ----------
    mgg, truth_match, mc_ma : array-like (n,)
        Selected signal-MC candidates: diphoton mass (GeV), truth-match flag,
        generated ALP mass of the event (GeV).
    n_generated : mapping float -> int
        Generated events per mass (efficiency denominator).
    weights : array-like (n,), optional
        Candidate weights.
    holdout : sequence of float
        Generated masses fitted but not used in the interpolation (closure tests).
    n_fixed : sequence of str
        Shape parameters fixed in the per-mass fits (default the tail
        exponents ``n_l``, ``n_r``); their values come from ``fixed_values`` or
        a pre-pass fit at a few masses with them floating.
    half_width : float
        Fit range and Chebyshev domain, in units of sigma.
    min_events : int
        Masses with fewer truth-matched candidates are skipped with a warning.
    n_prepass : int
        Masses used by the pre-pass that determines fixed values not given in ``fixed_values``.
    smooth_tails : sequence of str
        Tail parameters made smooth functions of the mass before the final
        per-mass fits (default ``alpha_l``, ``alpha_r``; ``()``: free at every
        mass); see ``signal_models.calibration``. The hold-out masses do not
        enter the curves. The first-pass points and the curves are recorded
        in ``settings["smooth_tails"]`` (None when the tails were fitted per mass).
    event_ids : array-like (n,), optional
        The generated event of each candidate (unique over all masses). With
        it, the error of the total efficiency counts the candidates of one
        event together (an event can give up to three candidates, the
        wrong pairs near their kinematic edge); without it, the error is
        binomial on the candidate count, which underestimates it there.
    interpolation : mapping, optional
        Per-quantity ``{"method": "pchip"|"smoothing"|"linear"|"constant", "lam": ...}``;
        default chooses by cross-validation.
    selection : mapping, optional
        Free-form description of the selection / working point.
    fitter : CalibrationFitter, optional
        Reuse a compiled zfit fitter.
    progress : callable, optional
        Wraps the iterable over masses (progress bar).
    """
    holdout = [float(h) for h in holdout]
    generated = np.unique(np.asarray(mc_ma, dtype=float))
    missing = [h for h in holdout if not any(same_mass(h, g) for g in generated)]
    if missing:
        raise ShapeError(f"holdout mass(es) {missing} GeV are not among the generated masses {generated[:10].tolist()}...")
    cal = calibrate_with_tails(
        mgg,
        truth_match,
        mc_ma,
        n_generated=n_generated,
        weights=weights,
        fixed=tuple(n_fixed),
        fixed_values=fixed_values,
        half_width=half_width,
        min_events=min_events,
        n_prepass=n_prepass,
        smooth_tails=tuple(smooth_tails),
        exclude_from_curves=holdout,
        fitter=fitter,
        progress=progress,
    )
    fits = cal.fits
    if event_ids is not None:
        fits = _grouped_total_efficiency_errors(fits, np.asarray(mgg, dtype=float), np.asarray(mc_ma, dtype=float), np.asarray(event_ids))
    fixed_used = {k: fits_value(fits, k) for k in n_fixed}
    settings = {
        "half_width": half_width,
        "fixed": list(n_fixed),
        "fixed_values": fixed_used,
        "min_events": min_events,
        "fit_params": list(FIT_PARAMS),
        "minimiser": "zfit.minimize.Minuit",
        "smooth_tails": None if cal.tail_curves is None else cal.tail_curves.record(),
    }
    return SignalModel(fits, holdout=holdout, interpolation=interpolation, selection=selection, settings=settings, comb_domain=half_width)


def _grouped_total_efficiency_errors(fits: Sequence[MassFit], x: NDArray, ma: NDArray, event_ids: NDArray) -> list[MassFit]:
    """Each successful fit with ``eff_total_err`` from the candidates in its window grouped by event."""
    if event_ids.shape != x.shape:
        raise ShapeError(f"event_ids: expected one event index per candidate ({x.shape[0]}), got shape {event_ids.shape}")
    out = []
    for f in fits:
        if f.ok:
            sel = same_mass(f.mass, ma) & (x >= f.window[0]) & (x <= f.window[1])
            f = replace(f, eff_total_err=grouped_count_error(event_ids[sel], f.n_generated))
        out.append(f)
    return out


def fits_value(fits: Sequence[MassFit], key: str) -> float | None:
    """Parameter ``key`` of the first successful fit (the value of a parameter fixed at every mass), None if none succeeded."""
    for f in fits:
        if f.ok:
            return float(f.params[key])
    return None

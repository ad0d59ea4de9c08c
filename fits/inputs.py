"""Input checks of the fits package: masses, shapes, windows, options, and per-hypothesis problems.

Every public entry point (``fits.fit``, ``fits.upper_limit``,
``fits.evaluate_hypotheses``, ...) validates its arguments here and raises
``fits.FitInputError`` naming the offending value. ``window_problems`` finds
the hypotheses that cannot be fitted at all (too few events, degenerate data,
peak outside the window); they are flagged in the results rather than raised.

``HypothesisInput`` is the checked input of one hypothesis (candidate masses,
signal shape, window, background order): what the single-hypothesis entry
points pass to the engines.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from signal_models._common.defaults import DEFAULT_BKG_ORDER, DEFAULT_HALF_WIDTH
from signal_models.shapes import ShapeError, SignalShape

from .densities import ShapeArrays, default_window
from .errors import FitInputError

__all__ = [
    "ENGINES",
    "HypothesisInput",
    "check_masses",
    "sorted_masses",
    "check_shapes",
    "check_windows",
    "check_cl",
    "check_bkg_order",
    "check_engine",
    "check_signal_scale",
    "check_bkg_fixed",
    "check_extra_shapes",
    "check_optional_number",
    "resolve_window",
    "MAX_BKG_ORDER",
    "window_problems",
]

#: the fit engines: vectorised Newton (default) and the zfit + Minuit reference
ENGINES = ("vectorised", "zfit")
#: highest background polynomial order a fit accepts (the scan configuration allows up to 10)
MAX_BKG_ORDER = 20
#: numbers beyond this are not taken as finite (comparisons work for any int, unlike np.isfinite)
_BIG = float(np.finfo(float).max)


def _float_array(value: object, name: str, expected: str) -> NDArray:
    """``value`` as a float array; ``FitInputError`` naming ``name`` when it is not numeric or ragged."""
    try:
        return np.asarray(value, dtype=float)
    except (TypeError, ValueError, OverflowError):
        raise FitInputError(f"{name}: expected {expected}, got {value!r:.80}") from None


def check_masses(mgg: ArrayLike, *, name: str = "mgg") -> NDArray:
    """Validate candidate masses: 1-D, finite, non-negative (GeV). Returns a float array."""
    try:
        x = np.asarray(mgg, dtype=float)
    except (TypeError, ValueError) as exc:
        raise FitInputError(f"{name}: expected a 1-D array of masses in GeV, got {type(mgg).__name__}") from exc
    if x.ndim != 1:
        raise FitInputError(f"{name}: expected a 1-D array of masses in GeV, got shape {x.shape}")
    bad = ~np.isfinite(x)
    if np.any(bad):
        raise FitInputError(f"{name}: {int(bad.sum())} of {len(x)} masses are NaN or infinite (first at index {int(np.flatnonzero(bad)[0])})")
    neg = x < 0
    if np.any(neg):
        raise FitInputError(f"{name}: {int(neg.sum())} masses are negative (min {x.min():.6g} GeV); masses must be >= 0 GeV")
    return x


def sorted_masses(mgg: ArrayLike) -> NDArray:
    """Checked candidate masses (GeV) sorted ascending; already sorted input (a scan's) is not sorted again."""
    x = check_masses(mgg)
    if x.size > 1 and not np.all(x[1:] >= x[:-1]):  # a scan passes sorted masses: skip the O(n log n) sort
        x = np.sort(x)
    return x


def check_shapes(shapes: Sequence[SignalShape]) -> list[SignalShape]:
    """The signal shapes as a list; raises unless every one is a ``signal_models.SignalShape``."""
    shapes = list(shapes)
    if not all(isinstance(s, SignalShape) for s in shapes):
        raise FitInputError("shapes: expected a sequence of signal_models.SignalShape")
    return shapes


def check_windows(windows: ArrayLike, k: int) -> NDArray:
    """Windows of k hypotheses as a (k, 2) float array (GeV), finite with hi > lo."""
    if k == 0:
        return np.zeros((0, 2))
    w = _float_array(windows, "windows", f"an array of shape ({k}, 2) in GeV")
    if w.shape != (k, 2):
        raise FitInputError(f"windows: expected shape ({k}, 2) in GeV, got {w.shape}")
    if not np.all(np.isfinite(w)):
        raise FitInputError("windows: contain NaN or infinite values")
    bad = w[:, 1] <= w[:, 0]
    if np.any(bad):
        j = int(np.flatnonzero(bad)[0])
        raise FitInputError(f"windows: need hi > lo, got [{w[j, 0]}, {w[j, 1]}] GeV at hypothesis {j}")
    return w


def check_cl(cl: float) -> float:
    """A confidence level in (0, 1)."""
    if isinstance(cl, bool) or not isinstance(cl, (int, float, np.integer, np.floating)) or not 0.0 < cl < 1.0:
        raise FitInputError(f"cl: expected a confidence level in (0, 1), got {cl!r}")
    return cl


def check_bkg_order(bkg_order: int) -> int:
    """The background polynomial order as an int in [0, ``MAX_BKG_ORDER``]."""
    ok = isinstance(bkg_order, (int, float, np.integer, np.floating)) and not isinstance(bkg_order, bool)
    if not ok or not 0 <= bkg_order <= MAX_BKG_ORDER or int(bkg_order) != bkg_order:
        raise FitInputError(f"bkg_order: expected an integer from 0 to {MAX_BKG_ORDER}, got {bkg_order!r}")
    return int(bkg_order)


def check_engine(engine: str) -> str:
    """One of ``ENGINES``."""
    if engine not in ENGINES:
        raise FitInputError(f"engine: expected 'vectorised' or 'zfit', got {engine!r}")
    return engine


def check_signal_scale(signal_scale: ArrayLike | None, k: int) -> NDArray | None:
    """Signal scales (events per pb) of k hypotheses as a (k,) array, finite and > 0; None stays None."""
    if signal_scale is None:
        return None
    try:
        scale = np.broadcast_to(_float_array(signal_scale, "signal_scale", f"{k} numbers (events per pb)"), (k,)).copy()
    except ValueError:
        raise FitInputError(f"signal_scale: expected one number or {k} (events per pb), got shape {np.shape(signal_scale)}") from None
    if not np.all(np.isfinite(scale)) or np.any(scale <= 0):
        raise FitInputError("signal_scale: must be finite and > 0 (events per pb)")
    return scale


def check_bkg_fixed(bkg_fixed: ArrayLike | None, k: int, order: int) -> NDArray | None:
    """Fixed background coefficients (events/GeV) as a (k, order+1) array, finite; None stays None."""
    if bkg_fixed is None:
        return None
    arr = _float_array(bkg_fixed, "bkg_fixed", f"{k} x {order + 1} background coefficients (events/GeV)")
    if arr.size != k * (order + 1):
        raise FitInputError(f"bkg_fixed: expected {k} x {order + 1} background coefficients (events/GeV), got shape {arr.shape}")
    arr = arr.reshape(k, order + 1)
    if not np.all(np.isfinite(arr)):
        raise FitInputError("bkg_fixed: background coefficients must be finite")
    return arr


def check_extra_shapes(extra_shapes: Sequence[Sequence[SignalShape] | None] | None, k: int) -> list[list[SignalShape]]:
    """Per hypothesis, the list of extra peak templates (empty lists when none are given)."""
    if extra_shapes is None:
        return [[] for _ in range(k)]
    extras = [[] if e is None else list(e) for e in extra_shapes]
    if len(extras) != k:
        raise FitInputError(f"extra_shapes: expected one entry (list of SignalShape or None) per hypothesis ({k}), got {len(extras)}")
    for i, e in enumerate(extras):
        if not all(isinstance(s, SignalShape) for s in e):
            raise FitInputError(f"extra_shapes[{i}]: expected a sequence of signal_models.SignalShape")
    return extras


def resolve_window(x: NDArray, shape: SignalShape, window: Sequence[float] | None, *, n_sigma: float = DEFAULT_HALF_WIDTH) -> tuple[float, float]:
    """The fit window (GeV): ``window`` checked, or ``mu +- n_sigma sigma`` clipped to the range of ``x`` (GeV)."""
    if not isinstance(shape, SignalShape):
        raise FitInputError(f"shape: expected a signal_models.SignalShape, got {type(shape).__name__}")
    if window is None:
        if len(x) == 0:
            raise FitInputError("mgg: no candidates, and no window given")
        lo, hi = default_window(shape, (float(x.min()), float(x.max())), n_sigma=n_sigma)
        if not hi > lo:  # no data around the peak: the unclipped window (the fit is then flagged for its few events)
            lo, hi = default_window(shape, None, n_sigma=n_sigma)
        return lo, hi
    w = _float_array(window, "window", "(lo, hi) in GeV with hi > lo")
    if w.shape != (2,) or not np.all(np.isfinite(w)) or w[1] <= w[0]:
        raise FitInputError(f"window: expected (lo, hi) in GeV with hi > lo, got {window}")
    return float(w[0]), float(w[1])


def check_optional_number(value: object, name: str, *, positive: bool = False) -> float | None:
    """``value`` as a finite float (> 0 with ``positive``, else >= 0), or None; ``FitInputError`` naming ``name`` otherwise."""
    if value is None:
        return None
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool) and -_BIG < value < _BIG
    if not ok or value < 0 or (positive and value == 0):
        raise FitInputError(f"{name}: expected a finite number {'> 0' if positive else '>= 0'} or None, got {value!r:.80}")
    return float(value)


@dataclass(frozen=True)
class HypothesisInput:
    """Checked input of one hypothesis.

    Attributes
    ----------
    mgg : ndarray (n,)
        Candidate masses in GeV (checked, in the caller's order; those outside
        the window are ignored by the fits).
    shape : SignalShape
        The fixed signal shape.
    window : (float, float)
        Fit window in GeV.
    bkg_order : int
        Order of the background Chebyshev polynomial.
    """

    mgg: NDArray
    shape: SignalShape
    window: tuple[float, float]
    bkg_order: int = DEFAULT_BKG_ORDER

    @classmethod
    def from_args(cls, mgg: ArrayLike, shape: SignalShape, window: Sequence[float] | None = None, *, bkg_order: int = DEFAULT_BKG_ORDER) -> HypothesisInput:
        """Check the arguments of a single-hypothesis call; the window defaults to ``resolve_window``'s."""
        x = check_masses(mgg)
        return cls(mgg=x, shape=shape, window=resolve_window(x, shape, window), bkg_order=check_bkg_order(bkg_order))


def window_problems(sorted_mgg: NDArray, sh: ShapeArrays, shapes: Sequence[SignalShape], lo: NDArray, hi: NDArray, order: int) -> tuple[list[str], NDArray, NDArray]:
    """Per-hypothesis problems that make a fit meaningless, and the index ranges of the windows.

    Returns ``(reasons, start, stop)``: a reason per hypothesis (empty when it
    can be fitted: enough events and distinct values for the free parameters,
    the peak inside the window, a window the shape accepts) and the positions
    of each window's events in ``sorted_mgg`` (``sorted_mgg[start:stop]``).
    """
    k = len(lo)
    start = np.searchsorted(sorted_mgg, lo, side="left")
    stop = np.searchsorted(sorted_mgg, hi, side="right")
    counts = stop - start
    n_par = order + 2
    reasons = [""] * k
    for j in np.flatnonzero(counts < n_par):
        reasons[j] = f"{int(counts[j])} events in window [{lo[j]:.6g}, {hi[j]:.6g}] GeV, fewer than the {n_par} free parameters"
    # distinct values (all data at one value makes the Chebyshev columns degenerate)
    ok = counts >= n_par
    if np.any(ok) and len(sorted_mgg):
        change = np.concatenate([[0], np.cumsum(np.diff(sorted_mgg) > 0)])
        last = np.clip(stop - 1, 0, len(sorted_mgg) - 1)
        first = np.clip(start, 0, len(sorted_mgg) - 1)
        distinct = np.where(counts > 0, change[last] - change[first] + 1, 0)
        for j in np.flatnonzero(ok & (distinct < n_par)):
            reasons[j] = f"only {int(distinct[j])} distinct mass values in window [{lo[j]:.6g}, {hi[j]:.6g}] GeV: background polynomial of order {order} undetermined"
    for j in range(k):
        if reasons[j]:
            continue
        if not lo[j] <= sh.mu[j] <= hi[j]:
            reasons[j] = f"signal peak mu = {sh.mu[j]:.6g} GeV outside the window [{lo[j]:.6g}, {hi[j]:.6g}] GeV"
            continue
        try:
            shapes[j].check_window(float(lo[j]), float(hi[j]))
        except ShapeError as exc:
            reasons[j] = f"invalid shape/window: {exc}"
    return reasons, start, stop

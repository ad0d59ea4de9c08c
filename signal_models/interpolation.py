"""Interpolation of per-mass fit results in the ALP mass.

Each quantity (shape parameter or efficiency) becomes a ``ParameterCurve``:
a shape-preserving PCHIP interpolant through the fitted points, or a
penalised cubic smoothing spline (``scipy.interpolate.make_smoothing_spline``,
weights 1/error^2), chosen by k-fold cross-validation on the fitted points:
the method (and, for the spline, the penalty from a logarithmic grid) whose
predictions of left-out interior points have the smallest mean squared
pull (each capped at 3^2, so that one abrupt change does not decide) wins.
Penalties whose spline is incompatible with the fitted points themselves
(chi2 of all points, endpoints included, above its expectation + 3 sigma)
are not considered: the spline may smooth the scatter, not the trend.

Positive quantities (widths, tail parameters) are interpolated in log space,
so they stay positive; fractions and efficiencies are clipped to their
physical range. Uncertainty bands propagate the per-mass fit errors: exactly
(linear smoother: sum of squared basis responses times errors squared) for
the smoothing spline and linear interpolation, by a seeded Gaussian bootstrap
for PCHIP (which is not linear in the data).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.interpolate import PchipInterpolator, make_smoothing_spline

logger = logging.getLogger(__name__)

__all__ = ["ParameterCurve", "METHODS", "TRANSFORMS", "fit_curve"]

METHODS = ("pchip", "smoothing", "linear", "constant")
TRANSFORMS = ("identity", "log")


def _forward(y: NDArray, transform: str) -> NDArray:
    return np.log(y) if transform == "log" else y


def _backward(z: NDArray, transform: str) -> NDArray:
    return np.exp(z) if transform == "log" else z


def _build(method: str, x: NDArray, z: NDArray, w: NDArray | None, lam: float | None) -> Any:
    """Interpolant of z (n,) or (n, k) at x; returns a callable."""
    if method == "constant":
        if z.ndim == 1:
            c = float(np.average(z, weights=w))
            return lambda m: np.full(np.shape(m), c)
        cs = np.average(z, axis=0, weights=w)
        return lambda m: np.broadcast_to(cs, np.shape(m) + cs.shape).copy()
    if method == "linear":
        if z.ndim == 1:
            return lambda m: np.interp(m, x, z)
        return lambda m: np.stack([np.interp(m, x, z[:, j]) for j in range(z.shape[1])], axis=-1)
    if method == "pchip":
        return PchipInterpolator(x, z, axis=0, extrapolate=True)
    if method == "smoothing":
        return make_smoothing_spline(x, z, w=w, lam=lam, axis=0)
    raise ValueError(f"unknown interpolation method {method!r}; expected one of {METHODS}")


def _lam_grid(x: NDArray) -> NDArray:
    """Candidate smoothing penalties (the penalty scales with the cube of the mass range)."""
    return np.logspace(-9, 3, 13) * (x[-1] - x[0]) ** 3


@dataclass
class ParameterCurve:
    """One interpolated quantity vs mass.

    Attributes
    ----------
    name : str
        Quantity name (e.g. ``"sigma"``, ``"mu_shift"``, ``"eff_tm"``).
    masses, values, errors : ndarray
        The fitted points (GeV, quantity units); errors are 1-sigma.
    method : str
        ``"pchip"``, ``"smoothing"``, ``"linear"`` or ``"constant"``.
    transform : str
        ``"identity"`` or ``"log"`` (interpolate log of a positive quantity).
    lam : float or None
        Smoothing-spline penalty (method ``"smoothing"``).
    clip : (float, float) or None
        Physical range the interpolated values are clipped to.
    cv_scores : dict
        Cross-validation score of each candidate method (for the record).
    """

    name: str
    masses: NDArray
    values: NDArray
    errors: NDArray
    method: str = "pchip"
    transform: str = "identity"
    lam: float | None = None
    clip: tuple[float, float] | None = None
    cv_scores: dict[str, float] = field(default_factory=dict)
    n_bootstrap: int = 200
    seed: int = 12345

    def __post_init__(self) -> None:
        self.masses = np.asarray(self.masses, dtype=float)
        self.values = np.asarray(self.values, dtype=float)
        self.errors = np.asarray(self.errors, dtype=float)
        if self.method not in METHODS:
            raise ValueError(f"{self.name}: unknown interpolation method {self.method!r}; expected one of {METHODS}")
        if self.transform not in TRANSFORMS:
            raise ValueError(f"{self.name}: unknown transform {self.transform!r}; expected one of {TRANSFORMS}")
        if self.transform == "log" and np.any(self.values <= 0):
            raise ValueError(f"{self.name}: log interpolation needs positive values, got min {self.values.min()}")
        self._z = _forward(self.values, self.transform)
        self._ez = _z_errors(self.values, self.errors, self.transform)
        self._w = _weights(self._ez)
        self._f = _build(self.method, self.masses, self._z, self._w, self.lam)
        self._band_cache: Any = None

    # -- evaluation ------------------------------------------------------------
    def __call__(self, m: ArrayLike) -> NDArray:
        m = np.asarray(m, dtype=float)
        if self.method == "constant" and np.all(self.values == self.values[0]):
            out = np.full(m.shape, self.values[0])  # exact, no log/exp round trip
        else:
            out = _backward(np.asarray(self._f(m), dtype=float), self.transform)
        if self.clip is not None:
            out = np.clip(out, *self.clip)
        return out

    def uncertainty(self, m: ArrayLike) -> NDArray:
        """1-sigma band half-width at ``m`` from the per-mass fit errors (quantity units)."""
        m = np.asarray(m, dtype=float)
        sz = self._z_band(m)
        if self.transform == "log":
            return sz * np.exp(np.asarray(self._f(m), dtype=float))
        return sz

    def _z_band(self, m: NDArray) -> NDArray:
        n = self.masses.size
        if self.method in ("smoothing", "linear", "constant"):
            # linear in the data: exact propagation through the basis responses
            if self._band_cache is None:
                self._band_cache = _build(self.method, self.masses, np.eye(n), self._w, self.lam)
            h = np.asarray(self._band_cache(m.ravel()), dtype=float).reshape(m.size, n)
            return np.sqrt(h**2 @ self._ez**2).reshape(m.shape)
        if self._band_cache is None:
            rng = np.random.default_rng(self.seed)
            z = self._z[:, None] + self._ez[:, None] * rng.standard_normal((n, self.n_bootstrap))
            self._band_cache = _build(self.method, self.masses, z, None, None)
        reps = np.asarray(self._band_cache(m.ravel()), dtype=float).reshape(m.size, -1)
        return reps.std(axis=1, ddof=1).reshape(m.shape)

    # -- serialisation -----------------------------------------------------------
    def settings(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "transform": self.transform,
            "lam": self.lam,
            "clip": list(self.clip) if self.clip is not None else None,
            "cv_scores": {k: float(v) for k, v in self.cv_scores.items()},
            "n_bootstrap": self.n_bootstrap,
            "seed": self.seed,
        }


def _z_errors(values: NDArray, errors: NDArray, transform: str) -> NDArray:
    ez = errors / np.abs(values) if transform == "log" else errors.copy()
    ez = np.where(np.isfinite(ez), ez, 0.0)
    positive = ez[ez > 0]
    # floor at a quarter of the median error: a point with a tiny error (e.g. a fraction that is
    # exactly 0 at one mass) must not dominate a weighted smoothing fit of all the others
    floor = 0.25 * float(np.median(positive)) if positive.size else 0.0
    return np.maximum(ez, floor)


def _weights(ez: NDArray) -> NDArray | None:
    if not np.all(ez > 0):
        return None
    w = 1.0 / ez**2
    return w / w.mean()


def _cv_score(method: str, x: NDArray, z: NDArray, ez: NDArray, w: NDArray | None, *, lam: float | None = None, n_folds: int = 10) -> float:
    """Mean capped (at 9) squared pull of held-out interior points (k-fold or leave-one-out)."""
    n = x.size
    interior = np.arange(1, n - 1)
    folds = [interior[i::n_folds] for i in range(min(n_folds, interior.size))]
    resid: list[NDArray] = []
    for fold in folds:
        keep = np.setdiff1d(np.arange(n), fold)
        if keep.size < (5 if method == "smoothing" else 2):
            return np.inf
        wk = None if w is None else w[keep]
        f = _build(method, x[keep], z[keep], wk, lam)
        pred = np.asarray(f(x[fold]), dtype=float)
        resid.append(((pred - z[fold]) / ez[fold]) ** 2)
    if not resid:
        return np.inf
    # squared pulls capped at 3^2: one abrupt physical change between two generated masses
    # (e.g. the combinatorics leaving the window) must not decide the method for all the
    # other masses, while a method that misses many points still scores badly
    return float(np.mean(np.minimum(np.concatenate(resid), 9.0)))


def _in_sample_chi2(x: NDArray, z: NDArray, ez: NDArray, w: NDArray | None, lam: float) -> float:
    """Sum of squared pulls of the fitted points about the smoothing spline with penalty ``lam``."""
    f = _build("smoothing", x, z, w, lam)
    return float(np.sum(((np.asarray(f(x), dtype=float) - z) / ez) ** 2))


def fit_curve(
    name: str,
    masses: ArrayLike,
    values: ArrayLike,
    errors: ArrayLike,
    *,
    method: str = "auto",
    transform: str = "identity",
    clip: tuple[float, float] | None = None,
    lam: float | None = None,
    candidates: tuple[str, ...] = ("pchip", "smoothing"),
) -> ParameterCurve:
    """Build a ``ParameterCurve``, choosing the method by cross-validation if ``method="auto"``.

    A quantity that is the same at every mass (a fixed parameter) becomes
    ``"constant"``. The smoothing penalty is chosen by cross-validation unless ``lam`` is given.
    """
    x = np.asarray(masses, dtype=float)
    y = np.asarray(values, dtype=float)
    e = np.asarray(errors, dtype=float)
    if x.size == 0:
        raise ValueError(f"{name}: no fitted points to interpolate")
    if np.any(np.diff(x) <= 0):
        raise ValueError(f"{name}: masses must be strictly increasing, got {x.tolist()[:10]}")
    if not np.all(np.isfinite(y)):
        raise ValueError(f"{name}: non-finite fitted value(s) at mass(es) {x[~np.isfinite(y)].tolist()} GeV")
    scores: dict[str, float] = {}
    z = _forward(y, transform) if (transform != "log" or np.all(y > 0)) else y
    ez = _z_errors(y, e, transform)
    w = _weights(ez)

    def best_lam() -> tuple[float, float]:
        # the smoothing penalty is chosen by the same k-fold cross-validation as the method, among
        # the penalties whose curve is compatible with all fitted points (endpoints included,
        # which the cross-validation cannot score): chi2 within 3 sigma of its expectation
        grid = _lam_grid(x)
        limit = x.size + 3.0 * np.sqrt(2.0 * x.size)
        admissible = [lam_ for lam_ in grid if _in_sample_chi2(x, z, ez, w, float(lam_)) <= limit]
        if not admissible:
            return float(grid[0]), np.inf
        cv = [_cv_score("smoothing", x, z, ez, w, lam=float(lam_)) for lam_ in admissible]
        i = int(np.argmin(cv))
        return float(admissible[i]), float(cv[i])

    if method == "auto":
        if x.size == 1 or np.allclose(y, y[0], rtol=1e-12, atol=0):
            method = "constant"
        elif x.size < 5:
            method = "pchip"
        else:
            for cand in candidates:
                if cand == "smoothing":
                    lam, scores[cand] = best_lam()
                else:
                    scores[cand] = _cv_score(cand, x, z, ez, w)
            method = min(scores, key=lambda k: scores[k])
    if method == "smoothing" and lam is None:
        if x.size < 5:
            method = "pchip"
        else:
            lam, _ = best_lam()
    if method != "smoothing":
        lam = None
    return ParameterCurve(name=name, masses=x, values=y, errors=e, method=method, transform=transform, lam=lam, clip=clip, cv_scores=scores)

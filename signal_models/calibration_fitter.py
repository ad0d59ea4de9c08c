"""The zfit fitter of the calibration: one DoubleCB + edged Chebyshev model in standardised units, reused for every mass.

Every fit runs in standardised units ``t = (x - m0) / s0`` where ``m0, s0``
are the current window centre and width, so the window is always
``[-half_width, half_width]`` and a *single* zfit model and compiled
likelihood serve all masses: the data live in shape-agnostic
``tf.Variable`` objects that are re-assigned per mass and the parameters are
reset, so the TensorFlow graph is traced once. The truth-matched pairs are
fitted with ``zfit.pdf.DoubleCB``, the wrong pairs with
``signal_models.zfit_shapes.EdgedChebyshev`` (edge fixed per mass), in one
simultaneous unbinned likelihood minimised by ``zfit.minimize.Minuit`` with
the autodiff gradient. TensorFlow and zfit are imported when a fitter is made.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ._common.defaults import DEFAULT_HALF_WIDTH

__all__ = ["CalibrationFitter", "StandardisedFit", "FIT_PARAMS", "DEFAULT_START", "NO_EDGE_T"]

#: shape parameters fitted per mass (comb_fraction is counted, not fitted)
FIT_PARAMS = ("mu", "sigma", "alpha_l", "n_l", "alpha_r", "n_r", "comb_slope")
#: standardised edge position that stands for "no edge" (the step is exactly 1 on the window)
NO_EDGE_T = 1.0e4
#: starting values of the tail parameters and the slope (mu = 0 and sigma = 1 in standardised units)
DEFAULT_START = {"alpha_l": 1.5, "alpha_r": 1.5, "n_l": 5.0, "n_r": 5.0, "comb_slope": 0.0}
#: parameter limits in standardised units
_BOUNDS_T = {
    "mu": (-5.0, 5.0),
    "sigma": (0.05, 20.0),
    "alpha_l": (0.05, 15.0),
    "alpha_r": (0.05, 15.0),
    "n_l": (1.05, 150.0),
    "n_r": (1.05, 150.0),
    "comb_slope": (-1.0, 1.0),
}


@dataclass(frozen=True)
class StandardisedFit:
    """Outcome of one ``CalibrationFitter.fit`` (standardised units).

    ``values`` holds every ``FIT_PARAMS`` entry (the fixed ones at their set
    values); ``valid`` is False with a ``reason`` when Minuit failed, a
    value is not finite or a parameter (other than the slope) sits at a limit.
    ``edm`` and ``fmin`` are Minuit's (NaN after a minimisation error).
    """

    values: dict[str, float]
    valid: bool
    reason: str
    edm: float
    fmin: float


class CalibrationFitter:
    """One zfit model (DoubleCB + Chebyshev) in standardised units, reused for every mass.

    Parameters
    ----------
    half_width : float
        Fit window half-width in units of sigma (also the Chebyshev domain).
    tol : float
        Minuit tolerance (EDM goal) passed to ``zfit.minimize.Minuit``.
    prefix : str
        Name prefix of the zfit parameters (several fitters may coexist).
    """

    def __init__(self, *, half_width: float = DEFAULT_HALF_WIDTH, tol: float = 1e-3, prefix: str = "cal") -> None:
        import tensorflow as tf
        import zfit
        import zfit.z.numpy as znp

        from .zfit_shapes import EdgedChebyshev, zfit_internal_warnings_ignored

        self._zfit = zfit
        self.half_width = float(half_width)
        self.tol = tol
        with zfit_internal_warnings_ignored():
            obs = zfit.Space("t", lower=-self.half_width, upper=self.half_width)
            self.params = {
                k: zfit.Parameter(f"{prefix}_{k}", self._start_default(k), *_BOUNDS_T[k]) for k in FIT_PARAMS
            }
            p = self.params
            self.dscb = zfit.pdf.DoubleCB(p["mu"], p["sigma"], p["alpha_l"], p["n_l"], p["alpha_r"], p["n_r"], obs=obs)
            # the wrong-pair edge in standardised units, fixed per mass (far away: a step of exactly 1)
            self.edge = {k: zfit.Parameter(f"{prefix}_comb_{k}", v, floating=False) for k, v in (("edge", NO_EDGE_T), ("width", 1.0))}
            self.comb = EdgedChebyshev(obs, p["comb_slope"], self.edge["edge"], self.edge["width"])
        # shape-agnostic variables: new data per mass without retracing the graph
        self._vars = {k: tf.Variable(np.zeros(1), shape=tf.TensorShape([None]), dtype=tf.float64, trainable=False) for k in ("xt", "wt", "xc", "wc")}
        v = self._vars

        @tf.function(reduce_retracing=True)
        def nll() -> Any:
            # traced once. The tensors go to pdf() as they are: zfit wraps them in an unnamed Data (and
            # warns about the name, silenced here); building named zfit.Data inside the traced function
            # breaks when autograph logs the half-built object (seen in Jupyter kernels).
            with zfit_internal_warnings_ignored():
                tm = -znp.sum(v["wt"] * znp.log(self.dscb.pdf(v["xt"])))
                comb = -znp.sum(v["wc"] * znp.log(self.comb.pdf(v["xc"])))
            return tm + comb

        all_params = [self.params[k] for k in FIT_PARAMS]

        @tf.function(reduce_retracing=True)
        def nll_grad() -> Any:
            with tf.GradientTape() as tape:
                value = nll()
            return tape.gradient(value, all_params)

        self._nll = nll
        self._nll_grad = nll_grad
        # analytic (autodiff) gradient: far fewer likelihood calls than Minuit's numerical one
        self._minimizers = {s: zfit.minimize.Minuit(tol=tol, gradient="zfit", mode=s) for s in (0, 1, 2)}
        # loose tolerance for the first, window-finding fit of the iteration
        self._rough = zfit.minimize.Minuit(tol=max(tol, 0.05), gradient="zfit", mode=0)

    @staticmethod
    def _start_default(k: str) -> float:
        return {"mu": 0.0, "sigma": 1.0}.get(k, DEFAULT_START.get(k, 0.0))

    def fit(
        self,
        t_tm: NDArray,
        w_tm: NDArray,
        t_comb: NDArray,
        w_comb: NDArray,
        *,
        start: Mapping[str, float],
        floating: Iterable[str],
        strategy: int = 0,
        rough: bool = False,
        edge: tuple[float, float] | None = None,
        limit_ok: Iterable[str] = (),
    ) -> StandardisedFit:
        """Fit standardised data: truth-matched ``t_tm`` (weights ``w_tm``) and wrong pairs ``t_comb`` (``w_comb``).

        ``start``: starting values (missing ones: the defaults); ``floating``:
        the parameters to fit, the others stay at their start; ``strategy``:
        Minuit strategy 0-2; ``rough``: the loose tolerance of the first,
        window-finding fit; ``edge``: the wrong-pair edge and width in
        standardised units (None: no edge); ``limit_ok``: floating parameters
        that may end at a limit without failing the fit (a tail exponent the
        data do not constrain, in the pre-pass). ``hesse`` then gives the errors.
        """
        zfit = self._zfit
        v = self._vars
        e_t, w_t = edge if edge is not None else (NO_EDGE_T, 1.0)
        self.edge["edge"].set_value(float(min(e_t, NO_EDGE_T)))
        self.edge["width"].set_value(float(w_t))
        v["xt"].assign(np.asarray(t_tm, dtype=float))
        v["wt"].assign(np.asarray(w_tm, dtype=float))
        v["xc"].assign(np.asarray(t_comb, dtype=float))
        v["wc"].assign(np.asarray(w_comb, dtype=float))
        floating = set(floating)
        for k, par in self.params.items():
            lo, hi = _BOUNDS_T[k]
            par.set_value(float(np.clip(start.get(k, self._start_default(k)), lo + 1e-6 * (hi - lo), hi - 1e-6 * (hi - lo))))
            par.floating = k in floating
        free = [self.params[k] for k in FIT_PARAMS if k in floating]
        nll, nll_grad = self._nll, self._nll_grad
        index = [FIT_PARAMS.index(k) for k in FIT_PARAMS if k in floating]

        def gradient(_params: Any) -> Any:
            g = nll_grad()
            return np.array([float(g[i]) for i in index])

        def value(_values: Any) -> Any:
            return nll()

        loss = zfit.loss.SimpleLoss(value, params=free, errordef=0.5, gradient=gradient)
        from zfit.minimizers.strategy import FailMinimizeNaN  # zfit gives up on a likelihood that stays NaN

        with warnings.catch_warnings():
            # Minuit and zfit warn on every failed or limit-touching attempt; the verdict is returned
            # (and the attempt retried and logged by the caller) instead
            warnings.simplefilter("ignore")
            minimizer = self._rough if rough and strategy == 0 else self._minimizers[strategy]
            try:
                result = minimizer.minimize(loss)
            except (RuntimeError, ValueError, FloatingPointError, FailMinimizeNaN) as exc:
                # e.g. a non-finite likelihood (or its gradient) far out in a tail exponent: a failed
                # attempt, retried by the caller from other starting values
                values = {k: float(self.params[k].value()) for k in FIT_PARAMS}
                return StandardisedFit(values=values, valid=False, reason=f"minimisation error: {str(exc) or type(exc).__name__}", edm=math.nan, fmin=math.nan)
        self._last = (result, floating)
        values = {k: float(self.params[k].value()) for k in FIT_PARAMS}
        at_limit = []
        for k in floating - set(limit_ok):
            lo, hi = _BOUNDS_T[k]
            if k == "comb_slope":
                continue  # |slope| = 1 is a legitimate (vanishing-at-the-edge) line
            if min(values[k] - lo, hi - values[k]) < 1e-4 * (hi - lo):
                at_limit.append(k)
        # Minuit's own verdict: zfit's ``valid`` is also False when any parameter sits at a limit,
        # but a combinatorial slope of +-1 (a line vanishing at a domain edge) is a legitimate result
        fmin = result.info.get("original") if isinstance(result.info, Mapping) else None
        minuit_valid = bool(fmin.is_valid) if fmin is not None and hasattr(fmin, "is_valid") else bool(result.valid)
        reason = ""
        if not minuit_valid:
            reason = "Minuit minimum not valid"
        elif not all(np.isfinite(values[k]) for k in FIT_PARAMS):
            reason = "non-finite parameter value"
        elif at_limit:
            reason = f"parameter(s) at limit: {sorted(at_limit)}"
        return StandardisedFit(values=values, valid=reason == "", reason=reason, edm=float(result.edm), fmin=float(result.fmin))

    def hesse(self) -> tuple[dict[str, float], str]:
        """Minuit Hesse errors of the last fit (standardised units; 0 for fixed parameters) and a failure reason ("" when fine)."""
        result, floating = self._last
        errors = {k: 0.0 for k in FIT_PARAMS}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                h = result.hesse(method="minuit_hesse")
            except Exception as exc:  # a failing Hesse is a fit failure, retried by the caller
                return errors, f"Hesse failed: {exc}"
        for k in FIT_PARAMS:
            par = self.params[k]
            if par in h:
                errors[k] = float(h[par]["error"])
        bad = [k for k in floating if not (np.isfinite(errors[k]) and errors[k] > 0)]
        if bad:
            return errors, f"Hesse errors not finite/positive for {bad}"
        return errors, ""

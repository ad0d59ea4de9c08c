"""Public API of the fits package: ``fit``, ``upper_limit``, ``evaluate_hypotheses``."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from signal_models.shapes import ShapeError, SignalShape

from .asymptotic import N_SIGMA
from .errors import FitInputError
from .model import Design, ShapeArrays, _fill_design, _integrals, build_design, chebyshev_basis, chebyshev_integrals, default_window
from .results import FitResult, HypothesisTable, LimitResult
from .vectorised import Batch, Syst

logger = logging.getLogger(__name__)

__all__ = ["fit", "upper_limit", "evaluate_hypotheses", "check_masses", "DEFAULT_BKG_ORDER"]

DEFAULT_BKG_ORDER = 3
#: target number of padded event slots per batch (memory/cache trade-off)
_CHUNK_SLOTS = 600_000


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


def _check_windows(windows: ArrayLike, k: int) -> NDArray:
    w = np.asarray(windows, dtype=float)
    if w.shape != (k, 2):
        raise FitInputError(f"windows: expected shape ({k}, 2) in GeV, got {w.shape}")
    if not np.all(np.isfinite(w)):
        raise FitInputError("windows: contain NaN or infinite values")
    bad = w[:, 1] <= w[:, 0]
    if np.any(bad):
        j = int(np.flatnonzero(bad)[0])
        raise FitInputError(f"windows: need hi > lo, got [{w[j, 0]}, {w[j, 1]}] GeV at hypothesis {j}")
    return w


def _syst_from(rel_unc: ArrayLike | None, k: int, kind: str) -> Syst | None:
    if rel_unc is None:
        return None
    r = np.broadcast_to(np.asarray(rel_unc, float), (k,)).copy()
    if not np.all(np.isfinite(r)) or np.any(r < 0):
        raise FitInputError(f"signal_scale_rel_unc: must be finite and >= 0, got {r}")
    if kind not in ("lognormal", "gaussian"):
        raise FitInputError(f"syst_kind: expected 'lognormal' or 'gaussian', got {kind!r}")
    if np.all(r == 0):
        return None
    return Syst(r, kind)


def combine_rel_unc(*rel: float) -> float:
    """Combine independent relative yield uncertainties (luminosity, efficiency, trigger).

    For log-normal constraints profiling several nuisances that enter only
    through their product is exactly one nuisance with
    ``ln(kappa) = sqrt(sum ln(kappa_i)^2)``; returns ``kappa - 1``.
    """
    return float(np.expm1(np.sqrt(np.sum(np.log1p(np.asarray(rel, float)) ** 2))))


def _prechecks(sorted_mgg: NDArray, sh: ShapeArrays, shapes: Sequence[SignalShape], lo: NDArray, hi: NDArray, order: int) -> tuple[list[str], NDArray, NDArray]:
    """Per-hypothesis problems that make a fit meaningless; returns reasons and index ranges."""
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
            shapes[j]._check_window(float(lo[j]), float(hi[j]))
        except ShapeError as exc:
            reasons[j] = f"invalid shape/window: {exc}"
    return reasons, start, stop


def _bkg_nonnegative(beta: NDArray, order: int, n_grid: int = 129) -> NDArray:
    xp = np.cos(np.linspace(0.0, np.pi, n_grid))  # Chebyshev-Lobatto grid incl. the edges
    T = chebyshev_basis(xp, order)  # (P-1, g)
    vals = beta @ T
    return vals.min(axis=1) >= -1e-9 * np.maximum(np.abs(vals).max(axis=1), 1e-300)


def evaluate_hypotheses(
    mgg: ArrayLike,
    shapes: Sequence[SignalShape],
    windows: ArrayLike,
    *,
    bkg_order: int = DEFAULT_BKG_ORDER,
    cl: float = 0.95,
    limits: bool = True,
    expected: bool = True,
    signal_scale: ArrayLike | None = None,
    signal_scale_rel_unc: ArrayLike | None = None,
    syst_kind: str = "lognormal",
    engine: str = "vectorised",
    bkg_fixed: ArrayLike | None = None,
    chunk_slots: int = _CHUNK_SLOTS,
    show_progress: bool | None = False,
    extra_shapes: Sequence[Sequence[SignalShape] | None] | None = None,
) -> HypothesisTable:
    """Fit and (optionally) set limits for k mass hypotheses at once.

    Parameters
    ----------
    mgg : array (n,)
        Candidate diphoton masses in GeV, any order.
    shapes : sequence of k SignalShape
        Signal shape per hypothesis (fixed in the fit).
    windows : array (k, 2)
        Fit windows in GeV.
    bkg_order : int
        Order of the background Chebyshev polynomial (floating coefficients).
    cl : float
        Confidence level of the CLs upper limits.
    limits, expected : bool
        Compute observed limits / the expected band (Asimov).
    signal_scale : array (k,), optional
        Events per pb (efficiency x luminosity); adds ``ul_xsec_obs`` and
        ``ul_xsec_exp`` in pb.
    signal_scale_rel_unc : float or array (k,), optional
        Relative uncertainty of ``signal_scale`` (luminosity, efficiency and
        trigger combined, see ``combine_rel_unc``), a constrained nuisance
        (log-normal by default, ``syst_kind="gaussian"`` for Gaussian) in the
        cross-section limits.
    engine : {"vectorised", "zfit"}
        ``"zfit"`` loops over hypotheses with the reference engine (slow;
        fits and limits via zfit + hepstats).
    bkg_fixed : array (k, bkg_order+1), optional
        Background coefficients ``beta_k`` (events/GeV of ``T_k(x')``) held
        fixed, e.g. from ``fits.sideband.sideband_background``; only the
        signal yield floats.
    extra_shapes : sequence of k (sequence of SignalShape or None), optional
        Per hypothesis, fixed-shape background templates (e.g. known peaks such
        as the pi0 at its PDG mass), each normalised on the window with a
        floating yield. Hypotheses with templates are fitted on the numpy path
        (``fits.extra_templates``; limits from the asymptotic CLs formulae,
        cross-section limits without the ``signal_scale`` nuisance), the others
        as usual. Not available with ``engine="zfit"`` or ``bkg_fixed``.

    Returns
    -------
    HypothesisTable
    """
    x = check_masses(mgg)
    if x.size > 1 and not np.all(x[1:] >= x[:-1]):  # a scan passes sorted masses: skip the O(n log n) sort
        x = np.sort(x)
    shapes = list(shapes)
    k = len(shapes)
    if not all(isinstance(s, SignalShape) for s in shapes):
        raise FitInputError("shapes: expected a sequence of signal_models.SignalShape")
    win = _check_windows(windows, k) if k else np.zeros((0, 2))
    if not 0.0 < cl < 1.0:
        raise FitInputError(f"cl: expected a confidence level in (0, 1), got {cl}")
    if int(bkg_order) != bkg_order or bkg_order < 0:
        raise FitInputError(f"bkg_order: expected a non-negative integer, got {bkg_order}")
    order = int(bkg_order)
    scale = None
    if signal_scale is not None:
        scale = np.broadcast_to(np.asarray(signal_scale, float), (k,)).copy()
        if not np.all(np.isfinite(scale)) or np.any(scale <= 0):
            raise FitInputError("signal_scale: must be finite and > 0 (events per pb)")
    syst = _syst_from(signal_scale_rel_unc, k, syst_kind)
    extras = _check_extra_shapes(extra_shapes, k)
    if any(extras) and (engine == "zfit" or bkg_fixed is not None):
        raise FitInputError("extra_shapes: floating peak templates need engine='vectorised' and no bkg_fixed")
    if engine == "zfit":
        from .zfit_engine import evaluate_hypotheses_zfit

        return evaluate_hypotheses_zfit(x, shapes, win, bkg_order=order, cl=cl, limits=limits, expected=expected, signal_scale=scale,
                                        signal_scale_rel_unc=None if syst is None else syst.rel_unc, syst_kind=syst_kind)
    if engine != "vectorised":
        raise FitInputError(f"engine: expected 'vectorised' or 'zfit', got {engine!r}")

    bkg_fixed_arr = None
    if bkg_fixed is not None:
        bkg_fixed_arr = np.asarray(bkg_fixed, float).reshape(k, order + 1)
        if not np.all(np.isfinite(bkg_fixed_arr)):
            raise FitInputError("bkg_fixed: background coefficients must be finite")
    lo, hi = win[:, 0].copy(), win[:, 1].copy()
    sh = ShapeArrays.from_shapes(shapes) if k else None
    n_exp = len(N_SIGMA)
    out = {
        "n_events": np.zeros(k, int),
        "nsig": np.zeros(k),
        "nsig_err": np.zeros(k),
        "nbkg": np.zeros(k),
        "nll": np.zeros(k),
        "z_local": np.zeros(k),
        "converged": np.zeros(k, bool),
        "ul_nsig_obs": np.zeros(k),
        "ul_nsig_exp": np.zeros((k, n_exp)),
        "bkg_nonnegative": np.ones(k, bool),
        "beta": np.zeros((k, order + 1)),
    }
    if scale is not None:
        out["ul_xsec_obs"] = np.zeros(k)
        out["ul_xsec_exp"] = np.zeros((k, n_exp))
    if k == 0:
        return HypothesisTable(mass=np.zeros(0), window=win, reason=[], **out)
    reasons, start, stop = _prechecks(x, sh, shapes, lo, hi, order)
    out["n_events"] = (stop - start).astype(int)
    good = np.array([r == "" for r in reasons])
    with_extra = np.array([bool(e) for e in extras])
    for j in np.flatnonzero(good & with_extra):
        _evaluate_with_templates(j, x, shapes[j], extras[j], lo[j], hi[j], start[j], stop[j], order, cl, limits, expected, scale, syst, out, reasons)
    if scale is not None and syst is not None and np.any(good & with_extra):
        logger.warning("%d hypotheses with floating peak templates: their cross-section limits ignore the signal-scale uncertainty",
                       int(np.sum(good & with_extra)))
    good &= ~with_extra
    idx_good = np.flatnonzero(good)
    # chunks of consecutive hypotheses with bounded padded size
    chunks: list[NDArray] = []
    cur: list[int] = []
    cur_max = 0
    for j in idx_good:
        n = int(out["n_events"][j])
        if cur and max(cur_max, n) * (len(cur) + 1) > chunk_slots:
            chunks.append(np.array(cur))
            cur, cur_max = [], 0
        cur.append(j)
        cur_max = max(cur_max, n)
    if cur:
        chunks.append(np.array(cur))

    for idx in chunks:
        bf_chunk = None if bkg_fixed_arr is None else bkg_fixed_arr[idx]
        _evaluate_chunk(idx, x, sh, lo, hi, start, stop, order, cl, limits, expected, scale, syst, out, reasons, bf_chunk)
    return HypothesisTable(mass=sh.mu.copy(), window=win, reason=reasons, **out)


#: positivity guard of sparse windows: grid points per window and their total weight (events)
_GUARD_POINTS = 64
_GUARD_PEAK_POINTS = 33
_GUARD_WEIGHT = 0.05


def _guarded_design(x: NDArray, shc: ShapeArrays, lo: NDArray, hi: NDArray, order: int, start: NDArray, stop: NDArray) -> Design:
    """Data design plus a log barrier that keeps the model density positive across the window.

    The likelihood only requires the density to be positive at the events.
    In a sparse window with no candidates near the peak the signal yield can
    then run away to minus infinity (the density goes negative around the
    peak where nothing pulls it back), so the fit has no minimum. Adding
    ``_GUARD_POINTS`` Chebyshev-Lobatto points over the window (edges included) and
    ``_GUARD_PEAK_POINTS`` over mu +- 4 sigma, with a total weight of
    ``_GUARD_WEIGHT`` events, adds a log barrier ``-w sum_g log f(x_g)``: the
    fit then stops where the density touches zero, i.e. at the most negative
    signal a valid model allows. Where the unguarded fit has a minimum, the
    barrier moves it by a fraction of ``_GUARD_WEIGHT`` events.
    """
    counts = (stop - start).astype(int)
    k = len(lo)
    # Chebyshev-Lobatto points (the window edges included, denser towards them, where a polynomial turns fastest)
    u = 0.5 * (1.0 - np.cos(np.linspace(0.0, np.pi, _GUARD_POINTS)))
    grid = lo[:, None] + (hi - lo)[:, None] * u[None, :]
    peak = shc.mu[:, None] + shc.sigma[:, None] * np.linspace(-4.0, 4.0, _GUARD_PEAK_POINTS)[None, :]
    peak = np.clip(peak, lo[:, None], hi[:, None])
    guard = np.concatenate([grid, peak], axis=1)
    g = guard.shape[1]
    n_max = int(counts.max(initial=0)) + g
    X = np.empty((k, n_max))
    W = np.zeros((k, n_max))
    for j in range(k):  # per hypothesis (not per event): gather the window's events and the guard points
        n = counts[j]
        X[j, :n] = x[start[j]:stop[j]]
        X[j, n:n + g] = guard[j]
        X[j, n + g:] = guard[j, 0]
        W[j, :n] = 1.0
        W[j, n:n + g] = _GUARD_WEIGHT / g
    M = _fill_design(X, shc, lo, hi, order)
    return Design(M=M, w=W, integ=_integrals(lo, hi, order), lo=lo, hi=hi, n_events=counts, unit_weights=False)


def _evaluate_chunk(idx, x, sh, lo, hi, start, stop, order, cl, limits, expected, scale, syst, out, reasons, bkg_fixed=None,
                    guarded=False, checked=False) -> None:
    shc = sh.take(idx)
    if guarded:
        design = _guarded_design(x, shc, lo[idx], hi[idx], order, start[idx], stop[idx])
    else:
        design = build_design(x, shc, lo[idx], hi[idx], order, index_range=(start[idx], stop[idx]))
    batch = Batch(design, shc, order, bkg_fixed=bkg_fixed)
    bf = batch.fit()
    if not guarded and not checked and bkg_fixed is None:
        # a fit without a minimum (signal running away in a sparse window) or a background-only
        # density that goes negative in the window (its Asimov set would not be a valid data set):
        # redo those hypotheses with the density held positive, before any limit is computed
        redo = ~bf.converged | ~_bkg_nonnegative(bf.zero.theta[:, 1:], order) | ~_bkg_nonnegative(bf.hat.theta[:, 1:], order)
        if np.any(redo):
            if np.any(~redo):
                _evaluate_chunk(idx[~redo], x, sh, lo, hi, start, stop, order, cl, limits, expected, scale, syst, out, reasons,
                                checked=True)
            _evaluate_chunk(idx[redo], x, sh, lo, hi, start, stop, order, cl, limits, expected, scale, syst, out, reasons,
                            guarded=True)
            for j in idx[redo]:
                logger.info("m = %.6g GeV (%d events): fitted with the density held positive over the window%s", sh.mu[j],
                            out["n_events"][j], "" if out["converged"][j] else f" and still flagged: {reasons[j]}")
            return
    integ = design.integ
    beta = bf.hat.theta[:, 1:]
    nbkg = np.einsum("kp,kp->k", integ[:, 1:], beta)
    conv = bf.converged.copy()
    err = np.where(np.isfinite(bf.mu_err), bf.mu_err, 0.0)
    out["nsig"][idx] = np.nan_to_num(bf.mu_hat)
    out["nsig_err"][idx] = err
    out["nbkg"][idx] = np.nan_to_num(nbkg)
    out["nll"][idx] = np.nan_to_num(bf.nll_hat)
    out["z_local"][idx] = np.nan_to_num(bf.z_local)
    out["beta"][idx] = beta
    out["bkg_nonnegative"][idx] = _bkg_nonnegative(beta, order)
    for jj, j in enumerate(idx):
        if not conv[jj]:
            if not bf.hat.converged[jj]:
                reasons[j] = "signal + background fit did not converge (Newton, after retry)"
            elif not bf.zero.converged[jj]:
                reasons[j] = "background-only fit did not converge (Newton)"
            else:
                reasons[j] = "Hessian not positive definite at the minimum"
    if limits:
        obs, ok = batch.observed_limit(cl=cl)
        out["ul_nsig_obs"][idx] = np.nan_to_num(obs)
        _flag(reasons, idx, ok, "observed limit root finding did not converge")
        conv &= ok
    if expected:
        exp, ok = batch.expected_limits(cl=cl)
        out["ul_nsig_exp"][idx] = np.nan_to_num(exp)
        _flag(reasons, idx, ok, "expected limit did not converge")
        conv &= ok
    if scale is not None:
        sc = scale[idx]
        if syst is None:
            out["ul_xsec_obs"][idx] = out["ul_nsig_obs"][idx] / sc
            out["ul_xsec_exp"][idx] = out["ul_nsig_exp"][idx] / sc[:, None]
        else:
            sy = Syst(syst.rel_unc[idx], syst.kind)
            if limits:
                obs, ok = batch.observed_limit(cl=cl, scale=sc, syst=sy)
                out["ul_xsec_obs"][idx] = np.nan_to_num(obs)
                _flag(reasons, idx, ok, "observed cross-section limit did not converge")
                conv &= ok
            if expected:
                exp, ok = batch.expected_limits(cl=cl, scale=sc, syst=sy)
                out["ul_xsec_exp"][idx] = np.nan_to_num(exp)
                _flag(reasons, idx, ok, "expected cross-section limit did not converge")
                conv &= ok
    out["converged"][idx] = conv
    failed = idx[~conv]
    if not guarded and bkg_fixed is None and failed.size:
        # a limit that failed on the plain design: retry with the density held positive
        saved = {j: reasons[j] for j in failed}
        for j in failed:
            reasons[j] = ""
        _evaluate_chunk(failed, x, sh, lo, hi, start, stop, order, cl, limits, expected, scale, syst, out, reasons, guarded=True)
        for j in failed:
            if out["converged"][j]:
                logger.info("m = %.6g GeV: converged with the density held positive over the window (%d events; before: %s)",
                            sh.mu[j], out["n_events"][j], saved[j])
            else:
                reasons[j] = f"{saved[j]}; with the density held positive: {reasons[j]}"


def _check_extra_shapes(extra_shapes, k: int) -> list[list[SignalShape]]:
    if extra_shapes is None:
        return [[] for _ in range(k)]
    extras = [[] if e is None else list(e) for e in extra_shapes]
    if len(extras) != k:
        raise FitInputError(f"extra_shapes: expected one entry (list of SignalShape or None) per hypothesis ({k}), got {len(extras)}")
    for i, e in enumerate(extras):
        if not all(isinstance(s, SignalShape) for s in e):
            raise FitInputError(f"extra_shapes[{i}]: expected a sequence of signal_models.SignalShape")
    return extras


def _evaluate_with_templates(j, x, shape, extra, lo, hi, start, stop, order, cl, limits, expected, scale, syst, out, reasons) -> None:
    """One hypothesis with floating peak templates (numpy path, ``fits.extra_templates``)."""
    from .extra_templates import fit_with_templates

    r = fit_with_templates(x[start:stop], shape, extra, float(lo), float(hi), order, cl=cl, limits=limits, expected=expected)
    beta = r["beta"]
    out["nsig"][j] = r["nsig"]
    out["nsig_err"][j] = r["nsig_err"]
    out["nbkg"][j] = float(0.5 * (hi - lo) * chebyshev_integrals(order) @ beta)
    out["nll"][j] = r["nll"]
    out["z_local"][j] = r["z_local"]
    out["beta"][j] = beta
    out["bkg_nonnegative"][j] = _bkg_nonnegative(beta[None, :], order)[0]
    out["converged"][j] = r["converged"]
    reasons[j] = r["reason"]
    if limits:
        out["ul_nsig_obs"][j] = r["ul_nsig_obs"]
    if expected:
        out["ul_nsig_exp"][j] = r["ul_nsig_exp"]
    if scale is not None:
        out["ul_xsec_obs"][j] = out["ul_nsig_obs"][j] / scale[j]
        out["ul_xsec_exp"][j] = out["ul_nsig_exp"][j] / scale[j]


def _flag(reasons: list[str], idx: NDArray, ok: NDArray, msg: str) -> None:
    for jj, j in enumerate(idx):
        if not ok[jj] and not reasons[j]:
            reasons[j] = msg


def _resolve_window(x: NDArray, shape: SignalShape, window: Sequence[float] | None, n_sigma: float = 20.0) -> tuple[float, float]:
    if window is None:
        if len(x) == 0:
            raise FitInputError("mgg: no candidates, and no window given")
        return default_window(shape, (float(x.min()), float(x.max())), n_sigma=n_sigma)
    w = np.asarray(window, float)
    if w.shape != (2,) or not np.all(np.isfinite(w)) or w[1] <= w[0]:
        raise FitInputError(f"window: expected (lo, hi) in GeV with hi > lo, got {window}")
    return float(w[0]), float(w[1])


def fit(
    mgg: ArrayLike,
    shape: SignalShape,
    window: Sequence[float] | None = None,
    *,
    bkg_order: int = DEFAULT_BKG_ORDER,
    engine: str = "vectorised",
    bkg_fixed: ArrayLike | None = None,
) -> FitResult:
    """Extended unbinned fit of signal + Chebyshev background in one window.

    Parameters
    ----------
    mgg : array (n,)
        Candidate masses in GeV (all candidates; those outside the window are ignored).
    shape : SignalShape
        Fixed signal shape.
    window : (lo, hi), optional
        Fit window in GeV; default ``mu +- 20 sigma`` clipped to the data range.
    bkg_order : int
        Chebyshev order of the background (default 3).
    engine : {"vectorised", "zfit"}
        Newton engine (default) or the zfit/Minuit reference engine.

    Returns
    -------
    FitResult
        Flagged (``converged=False``, ``reason``) rather than raising for
        windows that cannot be fitted (too few events, degenerate data, peak
        outside the window).
    """
    x = check_masses(mgg)
    lo, hi = _resolve_window(x, shape, window)
    if engine == "zfit":
        from .zfit_engine import fit_zfit

        return fit_zfit(x, shape, (lo, hi), bkg_order=bkg_order)
    if engine != "vectorised":
        raise FitInputError(f"engine: expected 'vectorised' or 'zfit', got {engine!r}")
    bf = None if bkg_fixed is None else np.asarray(bkg_fixed, float).reshape(1, -1)
    t = evaluate_hypotheses(x, [shape], [[lo, hi]], bkg_order=bkg_order, limits=False, expected=False, bkg_fixed=bf)
    return _fit_result_from_table(t, 0, shape, bkg_order)


def _fit_result_from_table(t: HypothesisTable, j: int, shape: SignalShape, order: int) -> FitResult:
    lo, hi = t.window[j]
    nll_b = float(t.nll[j] + 0.5 * t.z_local[j] ** 2)
    return FitResult(
        nsig=float(t.nsig[j]),
        nsig_err=float(t.nsig_err[j]),
        nbkg=float(t.nbkg[j]),
        nll=float(t.nll[j]),
        converged=bool(t.converged[j]),
        reason=t.reason[j],
        z_local=float(t.z_local[j]),
        n_events=int(t.n_events[j]),
        beta=np.array(t.beta[j]),
        window=(float(lo), float(hi)),
        shape=shape,
        bkg_order=order,
        engine="vectorised",
        bkg_nonnegative=bool(t.bkg_nonnegative[j]),
        nll_bkg_only=nll_b,
    )


def upper_limit(
    mgg: ArrayLike,
    shape: SignalShape,
    window: Sequence[float] | None = None,
    *,
    bkg_order: int = DEFAULT_BKG_ORDER,
    cl: float = 0.95,
    method: str = "asymptotic",
    signal_scale: float | None = None,
    rel_unc: float | None = None,
    syst_kind: str = "lognormal",
    resolution_unc: float | None = None,
    n_toys: int = 1000,
    seed: int | None = 0,
    engine: str = "vectorised",
    bkg_fixed: ArrayLike | None = None,
) -> LimitResult:
    """CLs upper limit (q~_mu) on the signal yield, or on the cross-section.

    Parameters
    ----------
    mgg, shape, window, bkg_order
        As for ``fit``.
    cl : float
        Confidence level (default 0.95).
    method : {"asymptotic", "toys"}
        Asymptotic formulae with the analytic Asimov set, or pseudo-experiments
        generated from the fitted model (``n_toys`` per tested POI value,
        ``seed`` for reproducibility).
    signal_scale : float, optional
        Events per pb; with it the POI is the cross-section in pb
        (``N_sig = sigma * signal_scale``).
    rel_unc : float, optional
        Relative yield uncertainty (constrained nuisance, ``syst_kind``
        log-normal or Gaussian) on ``signal_scale`` (or on the signal yield
        when no scale is given).
    resolution_unc : float, optional
        Relative uncertainty of the signal core width; profiled over a small
        grid of width scales with a Gaussian constraint.
    engine : {"vectorised", "zfit"}
        ``"zfit"`` uses zfit + hepstats' AsymptoticCalculator (slow, reference).
    bkg_fixed : array (bkg_order+1,), optional
        Fixed background coefficients (events/GeV), e.g. from a sideband fit.

    Returns
    -------
    LimitResult
        ``observed``, ``expected`` (-2..+2 sigma) in events (or pb).
    """
    x = check_masses(mgg)
    lo, hi = _resolve_window(x, shape, window)
    if method == "toys":
        from .toys import toy_upper_limit

        return toy_upper_limit(x, shape, (lo, hi), bkg_order=bkg_order, cl=cl, n_toys=n_toys, seed=seed, signal_scale=signal_scale)
    if method != "asymptotic":
        raise FitInputError(f"method: expected 'asymptotic' or 'toys', got {method!r}")
    if engine == "zfit":
        from .zfit_engine import upper_limit_hepstats

        if resolution_unc or bkg_fixed is not None:
            raise FitInputError("engine='zfit': resolution_unc and bkg_fixed are only available with engine='vectorised'")
        return upper_limit_hepstats(x, shape, (lo, hi), bkg_order=bkg_order, cl=cl, signal_scale=signal_scale, rel_unc=rel_unc,
                                    syst_kind=syst_kind)
    if resolution_unc:
        from .systematics import upper_limit_resolution

        return upper_limit_resolution(x, shape, (lo, hi), bkg_order=bkg_order, cl=cl, resolution_unc=resolution_unc, signal_scale=signal_scale, rel_unc=rel_unc, syst_kind=syst_kind)
    scale = None if signal_scale is None else [float(signal_scale)]
    if rel_unc and signal_scale is None:
        scale = [1.0]
    bf = None if bkg_fixed is None else np.asarray(bkg_fixed, float).reshape(1, -1)
    t = evaluate_hypotheses(x, [shape], [[lo, hi]], bkg_order=bkg_order, cl=cl, signal_scale=scale, signal_scale_rel_unc=rel_unc, syst_kind=syst_kind, bkg_fixed=bf)
    f = _fit_result_from_table(t, 0, shape, bkg_order)
    if scale is not None:
        obs, exp, poi = float(t.ul_xsec_obs[0]), np.array(t.ul_xsec_exp[0]), ("xsec" if signal_scale is not None else "nsig")
    else:
        obs, exp, poi = float(t.ul_nsig_obs[0]), np.array(t.ul_nsig_exp[0]), "nsig"
    return LimitResult(observed=obs, expected=exp, cl=cl, poi=poi, method="asymptotic", fit=f, converged=bool(t.converged[0]), reason=t.reason[0])


def limit_curve(
    mgg: ArrayLike,
    shape: SignalShape,
    window: Sequence[float] | None = None,
    *,
    poi_values: ArrayLike,
    bkg_order: int = DEFAULT_BKG_ORDER,
) -> dict[str, Any]:
    """``q~_mu``, ``q_A`` and asymptotic CLs (observed and expected median) along ``poi_values`` (events).

    For plots and cross-checks: one hypothesis, the POI values are fitted as a batch.
    """
    from .asymptotic import cls_asymptotic, q_tilde

    x = np.sort(check_masses(mgg))
    lo, hi = _resolve_window(x, shape, window)
    mu = np.asarray(poi_values, float)
    m = len(mu)
    sh = ShapeArrays.from_shapes([shape] * m)
    design = build_design(x, sh, np.full(m, lo), np.full(m, hi), bkg_order)
    b = Batch(design, sh, bkg_order)
    bf = b.fit()
    c = b.conditional(mu)
    q = q_tilde(c.nll, bf.nll_hat, bf.nll_zero, mu, bf.mu_hat)
    qa, _ = b.q_asimov(mu)
    cls, p_mu, one_m_pb = cls_asymptotic(q, qa)
    from scipy.special import ndtr

    # median under background only: sqrt(q~) = sqrt(q_A), so CLs = (1 - Phi(sqrt(q_A))) / Phi(0)
    cls_med = ndtr(-np.sqrt(qa)) / 0.5
    return {"poi": mu, "q_tilde": q, "q_asimov": qa, "cls": cls, "p_mu": p_mu, "one_minus_pb": one_m_pb, "cls_expected": cls_med, "nsig_hat": float(bf.mu_hat[0]), "nsig_err": float(bf.mu_err[0])}

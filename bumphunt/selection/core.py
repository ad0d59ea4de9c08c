"""Punzi figure of merit, mass windows and training data of the Punzi-net selector.

Everything here is numpy; the network and its training loop live in
``bumphunt.selection.network`` (TensorFlow), imported only when needed.

Sensitivity
-----------
For a selection with signal efficiency ``eps`` (truth-matched candidates
passing inside the mass window / events generated) and ``B`` expected
background candidates in the window, the minimum detectable cross-section is
``sigma_min = S_min(B) / (eps L)`` (Punzi, arXiv:physics/0308063) with

- ``formula="basic"``:    ``S_min = b^2/2 + a sqrt(B) + (b/2) sqrt(b^2 + 4 a sqrt(B) + 4 B)``
- ``formula="extended"``: ``S_min = a^2/8 + 9 b^2/13 + a sqrt(B) + (b/2) sqrt(b^2 + 4 a sqrt(B) + 4 B)``

``a`` is the discovery significance and ``b`` the power, in one-sided Gaussian
sigmas (a = 5, b = 1.28 by default).

Mass windows
------------
Each mass hypothesis ``m`` owns the window ``m +- n_sigma sigma(m)`` in M_gg
(``n_sigma = 10`` by default). ``sigma(m)`` is a callable, an array, or the
default ``default_mass_resolution`` propagated from the photon resolution.
Windows overlap, so one background candidate enters several ``B_m``; sums
over windows are differences of a cumulative sum over the M_gg-sorted
candidates (O(1) per window, no dense masses x candidates matrix).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ..events.detector import Resolution
from ..errors import InputError
from ..kinematics import Beam, invariant_mass, p4_from_spherical

logger = logging.getLogger(__name__)

__all__ = [
    "punzi_smin",
    "punzi_sensitivity",
    "asimov_significance",
    "default_mass_resolution",
    "mass_grid",
    "choose_heldout",
    "basic_candidates",
    "PunziData",
    "prepare_training_data",
    "window_sums",
    "efficiency_and_background",
    "sensitivity_per_mass",
    "scan_working_point",
    "WorkingPoint",
    "cut_based_mask",
    "optimise_cut_based",
    "generalisation_table",
    "apply",
    "load_selector",
    "load_samples",
]

FORMULAS = ("basic", "extended")


# ---------------------------------------------------------------------------
# figures of merit


def punzi_smin(background: ArrayLike, a: float = 5.0, b: float = 1.28, *, formula: str = "basic") -> NDArray[np.float64]:
    """Punzi minimum detectable signal ``S_min(B)`` (events) for ``B`` background events."""
    if formula not in FORMULAS:
        raise ValueError(f"formula must be one of {FORMULAS}, got {formula!r}")
    B = np.asarray(background, dtype=float)
    if np.any(B < 0) or not np.all(np.isfinite(B)):
        raise InputError(f"punzi_smin: background must be finite and >= 0, got min {np.min(B)}")
    sb = np.sqrt(B)
    core = a * sb + 0.5 * b * np.sqrt(b * b + 4.0 * a * sb + 4.0 * B)
    const = b * b / 2.0 if formula == "basic" else a * a / 8.0 + 9.0 * b * b / 13.0
    return const + core


def punzi_sensitivity(
    efficiency: ArrayLike,
    background: ArrayLike,
    lumi: float,
    a: float = 5.0,
    b: float = 1.28,
    *,
    formula: str = "basic",
) -> NDArray[np.float64]:
    """Minimum detectable cross-section ``S_min(B) / (eps L)`` in pb.

    Parameters
    ----------
    efficiency : array_like
        Signal efficiency in [0, 1] (truth-matched passing / generated).
    background : array_like
        Expected background events in the mass window (>= 0).
    lumi : float
        Integrated luminosity in fb^-1 (> 0).
    a, b : float
        Significance and power in one-sided Gaussian sigmas.
    formula : {"basic", "extended"}
        Which Punzi S_min (module docstring).

    Returns
    -------
    ndarray
        sigma_min in pb; ``inf`` where the efficiency is zero (nothing can be
        detected), never NaN.
    """
    eps = np.asarray(efficiency, dtype=float)
    if not np.all(np.isfinite(eps)) or np.any(eps < 0) or np.any(eps > 1 + 1e-9):
        raise InputError(f"punzi_sensitivity: efficiency must be in [0, 1], got range [{np.min(eps)}, {np.max(eps)}]")
    if not (np.isfinite(lumi) and lumi > 0):
        raise InputError(f"punzi_sensitivity: lumi must be > 0 fb^-1, got {lumi}")
    smin = punzi_smin(background, a, b, formula=formula)
    denom = eps * lumi * 1000.0  # fb^-1 -> pb^-1
    with np.errstate(divide="ignore"):
        return np.where(denom > 0, smin / np.where(denom > 0, denom, 1.0), np.inf)


def asimov_significance(signal: ArrayLike, background: ArrayLike) -> NDArray[np.float64]:
    """Median discovery significance ``sqrt(2((S+B) ln(1+S/B) - S))`` (Asimov); 0 where S = 0."""
    S = np.asarray(signal, dtype=float)
    B = np.maximum(np.asarray(background, dtype=float), 1e-300)
    return np.sqrt(np.maximum(2.0 * ((S + B) * np.log1p(S / B) - S), 0.0))


# ---------------------------------------------------------------------------
# masses and resolution


def default_mass_resolution(m: ArrayLike, *, beam: Beam | None = None, resolution: Resolution | None = None) -> NDArray[np.float64]:
    """Diphoton mass resolution sigma(m) in GeV propagated from the photon resolution.

    Symmetric decay of an ALP with its CM energy ``(s + m^2) / (2 sqrt(s))``
    into two photons of half that energy with opening angle ``alpha``,
    ``m = 2 E_1 sin(alpha/2)``: ``sigma_m / m = 1/2 sqrt(2 (sigma_E/E)^2 +
    (cot(alpha/2) sigma_alpha)^2)`` with ``sigma_alpha^2 = sigma_theta^2 +
    sigma_phi^2`` of a barrel photon (``bumphunt.events.detector.Resolution``).
    Good to ~10% against the smeared toy (before any kinematic fit).
    """
    beam = beam or Beam.belle2()
    res = resolution or Resolution()
    m = np.asarray(m, dtype=float)
    sqrt_s = beam.sqrt_s
    e1 = 0.5 * (sqrt_s**2 + m**2) / (2.0 * sqrt_s)
    s_e, s_t, s_p = res.sigmas(e1, np.full(np.shape(e1), 2))
    half = np.arcsin(np.clip(m / (2.0 * e1), 0.0, 1.0))
    cot = np.cos(half) / np.maximum(np.sin(half), 1e-12)
    rel = 0.5 * np.sqrt(2.0 * (s_e / e1) ** 2 + (cot * np.sqrt(s_t**2 + s_p**2)) ** 2)
    return rel * m


def mass_grid(lo: float = 0.175, hi: float = 10.375, step: float = 0.05, *, n: int | None = None) -> NDArray[np.float64]:
    """Signal masses (GeV): ``lo..hi`` in ``step`` (default 205 masses), or ``n`` evenly spaced."""
    if n is not None:
        if n < 1:
            raise ValueError(f"mass_grid: n must be >= 1, got {n}")
        return np.linspace(lo, hi, n)
    k = int(np.floor((hi - lo) / step + 1e-9)) + 1
    return np.round(lo + step * np.arange(k), 10)


def choose_heldout(masses: ArrayLike, n_heldout: int) -> NDArray[np.float64]:
    """``n_heldout`` masses spread evenly over the interior of the grid (never the end points)."""
    masses = np.sort(np.asarray(masses, dtype=float))
    if n_heldout <= 0:
        return np.zeros(0)
    if len(masses) < 2 * n_heldout + 1:
        raise InputError(f"cannot hold out {n_heldout} of {len(masses)} masses and keep trained neighbours on both sides")
    idx = np.unique(np.round(np.linspace(1, len(masses) - 2, n_heldout + 2)[1:-1]).astype(int))
    return masses[idx]


def _sigma_of(masses: NDArray, sigma: Callable | ArrayLike | None, beam: Beam) -> NDArray[np.float64]:
    if sigma is None:
        out = default_mass_resolution(masses, beam=beam)
    elif callable(sigma):
        out = np.asarray(sigma(masses), dtype=float)
    else:
        out = np.broadcast_to(np.asarray(sigma, dtype=float), masses.shape).copy()
    if out.shape != masses.shape or np.any(~np.isfinite(out)) or np.any(out <= 0):
        raise InputError(f"mass resolution sigma(m) must be positive and finite for every mass, got {out}")
    return out


# ---------------------------------------------------------------------------
# candidates


def basic_candidates(events: Mapping[str, Any], *, beam: Beam | None = None, use_fitted: bool | str = "auto") -> dict[str, NDArray]:
    """Minimal diphoton candidates (three per event, event-major) for the selector.

    Columns: ``event_index``, ``i``, ``j``, ``k``, ``mgg`` (GeV, lab photons,
    fitted ones when present and allowed), ``truth_match``, ``process``,
    ``weight``, ``mc_ma``. The full candidate builder of the chain is
    ``bumphunt.events.candidates.diphoton_candidates``; this one needs only the
    fields the selector uses.
    """
    from .features import _use_fitted, candidate_pairs

    for key in ("E", "theta", "phi", "process", "weight"):
        if key not in events:
            raise InputError(f"three-photon events: missing field {key!r}")
    n = int(np.asarray(events["E"]).shape[0])
    cand = candidate_pairs(n)
    pre = "fit_" if _use_fitted(events, use_fitted) else ""
    p4 = p4_from_spherical(events[pre + "E"], events[pre + "theta"], events[pre + "phi"])
    ev = cand["event_index"]
    cand["mgg"] = invariant_mass(p4[ev, cand["i"]], p4[ev, cand["j"]])
    if "truth_a1" in events and "truth_a2" in events:
        a1, a2 = np.asarray(events["truth_a1"])[ev], np.asarray(events["truth_a2"])[ev]
        i, j = cand["i"], cand["j"]
        cand["truth_match"] = (a1 >= 0) & (a2 >= 0) & (((i == a1) & (j == a2)) | ((i == a2) & (j == a1)))
    else:
        cand["truth_match"] = np.zeros(ev.size, dtype=bool)
    cand["process"] = np.asarray(events["process"])[ev]
    cand["weight"] = np.asarray(events["weight"], dtype=float)[ev]
    cand["mc_ma"] = np.asarray(events.get("mc_ma", np.full(n, -1.0)), dtype=float)[ev]
    if "kinfit_chi2" in events:
        cand["kinfit_chi2"] = np.asarray(events["kinfit_chi2"], dtype=float)[ev]
    return cand


def make_candidates(events: Mapping[str, Any], *, beam: Beam | None = None) -> dict[str, NDArray]:
    """Candidates from ``bumphunt.events.candidates`` when available, else ``basic_candidates``."""
    try:
        from ..events.candidates import diphoton_candidates
    except ImportError:
        return basic_candidates(events, beam=beam)
    return diphoton_candidates(events, beam=beam or Beam.belle2())


# ---------------------------------------------------------------------------
# training data


@dataclass
class PunziData:
    """Candidates prepared for Punzi-net training and evaluation.

    Rows are truth-matched signal candidates (``label`` 1) and background
    candidates (``label`` 0); wrong-pair signal candidates are dropped (they
    are neither). Signal rows know their generated mass (``mass_idx`` into
    ``masses``) and whether they lie in that mass's window (``in_window``).

    Attributes
    ----------
    X : ndarray (n, n_features) float32
        Raw (unstandardised) features.
    names : list of str
    mgg : ndarray (n,)
        Diphoton mass in GeV.
    label : ndarray (n,) int8
    weight : ndarray (n,)
        Background: expected events at ``lumi_fb``; signal: ``1 / N_gen(m)``
        (so a sum over signal rows of one mass is an efficiency).
    mass_idx : ndarray (n,) int
        Generated-mass index of signal rows, -1 for background.
    in_window : ndarray (n,) bool
        Signal row inside its own mass window (always True for background).
    split : ndarray (n,) int8
        0 training, 1 validation (by event: the candidates of one event share it).
    masses, sigma, lo, hi, n_gen : ndarray (n_masses,)
        Mass hypotheses (GeV), resolution, window edges, events generated.
    trained : ndarray (n_masses,) bool
        False for held-out masses and masses without signal in their window.
    validation_fraction, lumi_fb, n_sigma : float
    event_id : ndarray (n,) int
        Row of the candidate's event in the input events.
    features : dict
        The feature columns (same rows).
    process : ndarray (n,) int
        Process code per row (``bumphunt.events.schema.PROCESS_CODES``).
    """

    X: NDArray[np.float32]
    names: list[str]
    mgg: NDArray[np.float64]
    label: NDArray[np.int8]
    weight: NDArray[np.float64]
    mass_idx: NDArray[np.int64]
    in_window: NDArray[np.bool_]
    split: NDArray[np.int8]
    masses: NDArray[np.float64]
    sigma: NDArray[np.float64]
    lo: NDArray[np.float64]
    hi: NDArray[np.float64]
    n_gen: NDArray[np.float64]
    trained: NDArray[np.bool_]
    heldout: NDArray[np.bool_]
    validation_fraction: float
    lumi_fb: float
    n_sigma: float
    event_id: NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    features: dict[str, NDArray] = field(default_factory=dict)
    process: NDArray[np.int32] = field(default_factory=lambda: np.zeros(0, dtype=np.int32))

    @property
    def n_masses(self) -> int:
        return int(self.masses.size)

    def split_fraction(self, split: int | None) -> float:
        """Fraction of the events in ``split`` (None: all)."""
        if split is None:
            return 1.0
        return 1.0 - self.validation_fraction if split == 0 else self.validation_fraction

    def sorted_background(self, split: int | None) -> NDArray[np.int64]:
        """Row indices of the background of a split, sorted by M_gg (cached)."""
        cache = self.__dict__.setdefault("_bkg_order", {})
        if split not in cache:
            rows = np.flatnonzero(self.rows(split) & (self.label == 0))
            cache[split] = rows[np.argsort(self.mgg[rows], kind="stable")]
        return cache[split]

    def rows(self, split: int | None) -> NDArray[np.bool_]:
        return np.ones(self.label.size, dtype=bool) if split is None else self.split == split

    def windows(self) -> dict[str, Any]:
        return {"masses": self.masses.tolist(), "sigma": self.sigma.tolist(), "n_sigma": self.n_sigma,
                "lo": self.lo.tolist(), "hi": self.hi.tolist(), "n_gen": self.n_gen.tolist(),
                "trained": self.trained.tolist(), "heldout": self.heldout.tolist()}


def prepare_training_data(
    events: Mapping[str, Any],
    *,
    n_generated: Mapping[float, int] | None,
    candidates: Mapping[str, NDArray] | None = None,
    beam: Beam | None = None,
    feature_names: Sequence[str] | None = None,
    heldout: Sequence[float] | int = 22,
    sigma: Callable | ArrayLike | None = None,
    n_sigma: float = 10.0,
    lumi_fb: float | None = None,
    weight_lumi_fb: float | None = None,
    validation_fraction: float = 0.25,
    seed: int = 1,
) -> PunziData:
    """Select, label, weight and split candidates for Punzi-net training.

    Parameters
    ----------
    events : mapping
        Three-photon events, signal (``process`` 0, ``mc_ma`` the generated
        mass) and background (``weight`` normalised to ``weight_lumi_fb``).
    n_generated : mapping
        Events generated per signal mass ``{m_a: N_gen}`` (the efficiency
        denominator). ``None`` counts the signal events present, which
        overestimates the efficiency if anything was already cut (warned).
    candidates : mapping, optional
        Diphoton candidates (``make_candidates`` by default).
    beam : Beam, optional
    feature_names : sequence of str, optional
        Default: ``bumphunt.selection.features.resolve_feature_names(None, events)``.
    heldout : int or sequence of float
        Number of held-out masses (spread by ``choose_heldout``) or the masses
        (GeV) themselves. Held-out masses are not trained on; they test that
        the selection generalises.
    sigma : callable, array or None
        Mass resolution sigma(m) in GeV (default ``default_mass_resolution``).
    n_sigma : float
        Half-width of the optimisation window in units of sigma(m).
    lumi_fb : float, optional
        Luminosity (fb^-1) of the sensitivity; default ``weight_lumi_fb``.
    weight_lumi_fb : float, optional
        Luminosity the background weights are normalised to (default 1).
    validation_fraction : float
        Fraction of events (not candidates) kept for validation/early stopping.
    seed : int
        Seed of the event split.

    Raises
    ------
    InputError
        No signal or no background; a signal mass missing from ``n_generated``
        or with ``N_gen <= 0``; bad features. Masses whose window holds no
        truth-matched signal are excluded from training with a warning;
        windows without background are warned about (B is then floored in the
        loss, see ``bumphunt.selection.network``).
    """
    from .features import compute_features, feature_matrix, resolve_feature_names

    beam = beam or Beam.belle2()
    weight_lumi_fb = 1.0 if weight_lumi_fb is None else float(weight_lumi_fb)
    lumi_fb = weight_lumi_fb if lumi_fb is None else float(lumi_fb)
    if not 0.0 < validation_fraction < 1.0:
        raise InputError(f"validation_fraction must be in (0, 1), got {validation_fraction}")
    cand = dict(candidates) if candidates is not None else make_candidates(events, beam=beam)
    for key in ("event_index", "i", "j", "k", "mgg", "truth_match", "process", "weight", "mc_ma"):
        if key not in cand:
            raise InputError(f"candidates: missing field {key!r}")
    process = np.asarray(cand["process"])
    is_sig = process == 0
    tm = is_sig & np.asarray(cand["truth_match"], dtype=bool)
    is_bkg = ~is_sig
    if not tm.any():
        raise InputError("no truth-matched signal candidates (process 0 with truth_match) in the input")
    if not is_bkg.any():
        raise InputError("no background candidates (process != 0) in the input")
    keep = tm | is_bkg
    cand = {k: np.asarray(v)[keep] for k, v in cand.items()}
    names = resolve_feature_names(feature_names, events)
    feats = compute_features(events, cand, beam=beam, names=names)
    X = feature_matrix(feats, names)

    mc_ma = np.round(np.asarray(cand["mc_ma"], dtype=float), 6)
    sig_rows = np.asarray(cand["process"]) == 0
    masses = np.unique(mc_ma[sig_rows])
    if n_generated is None:
        logger.warning("n_generated not given: using the signal events present as N_gen (efficiencies are then relative to the input)")
        ev_ma = np.round(np.asarray(events["mc_ma"], dtype=float), 6)[np.asarray(events["process"]) == 0]
        um, cnt = np.unique(ev_ma, return_counts=True)
        ngen_map = dict(zip(um.tolist(), cnt.tolist()))
    else:
        ngen_map = {round(float(k), 6): v for k, v in n_generated.items()}
    missing = [m for m in masses if m not in ngen_map]
    if missing:
        raise InputError(f"n_generated has no entry for signal mass(es) {missing[:5]} GeV")
    n_gen = np.array([float(ngen_map[m]) for m in masses])
    if np.any(n_gen <= 0):
        raise InputError(f"n_generated must be > 0 for every mass, got {n_gen.min()} at {masses[np.argmin(n_gen)]} GeV")
    # masses listed in n_generated that left no truth-matched signal at all
    empty = sorted(set(ngen_map) - set(masses.tolist()))
    if empty:
        logger.warning("no truth-matched signal for mass(es) %s GeV: they cannot be trained on or evaluated", empty[:10])

    sig_w = sigma
    sig = _sigma_of(masses, sig_w, beam)
    lo, hi = masses - n_sigma * sig, masses + n_sigma * sig
    mass_idx = np.where(sig_rows, np.searchsorted(masses, mc_ma), -1).astype(np.int64)
    mgg = np.asarray(cand["mgg"], dtype=float)
    if not np.all(np.isfinite(mgg)):
        raise InputError("candidates: non-finite mgg")
    in_window = np.ones(mgg.size, dtype=bool)
    in_window[sig_rows] = (mgg[sig_rows] >= lo[mass_idx[sig_rows]]) & (mgg[sig_rows] <= hi[mass_idx[sig_rows]])
    weight = np.where(sig_rows, 1.0 / n_gen[np.maximum(mass_idx, 0)], np.asarray(cand["weight"], dtype=float) * lumi_fb / weight_lumi_fb)
    if not np.all(np.isfinite(weight)) or np.any(weight[~sig_rows] < 0):
        raise InputError("candidates: background weights must be finite and >= 0")

    if isinstance(heldout, (int, np.integer)):
        held_m = choose_heldout(masses, int(heldout)) if heldout > 0 else np.zeros(0)
    else:
        held_m = np.round(np.asarray(heldout, dtype=float), 6)
        bad = [m for m in held_m if m not in set(masses.tolist())]
        if bad:
            raise InputError(f"held-out mass(es) {bad} GeV have no signal in the input")
    held = np.isin(masses, held_m)
    has_sig = np.bincount(mass_idx[sig_rows & in_window], minlength=masses.size) > 0
    if not has_sig.all():
        logger.warning("mass(es) %s GeV have no truth-matched signal inside their window: excluded from training", masses[~has_sig].tolist())
    trained = has_sig & ~held
    if not trained.any():
        raise InputError("no mass hypothesis left to train on (all held out or without signal)")

    # background per window (soft check for empty windows)
    order = np.argsort(mgg[~sig_rows])
    bm = mgg[~sig_rows][order]
    nb = np.searchsorted(bm, hi, side="right") - np.searchsorted(bm, lo, side="left")
    if np.any(nb[trained] == 0):
        logger.warning("no background candidates in the window of mass(es) %s GeV: B = 0 there (floored in the loss)",
                       masses[trained & (nb == 0)].tolist())

    ev = np.asarray(cand["event_index"], dtype=np.int64)
    n_events = int(np.asarray(events["E"]).shape[0])
    rng = np.random.default_rng(seed)
    ev_split = (rng.uniform(size=n_events) < validation_fraction).astype(np.int8)
    split = ev_split[ev]
    logger.info("training data: %d signal (TM) + %d background candidates, %d masses (%d trained, %d held out), %d features",
                int(sig_rows.sum()), int((~sig_rows).sum()), masses.size, int(trained.sum()), int(held.sum()), len(names))
    return PunziData(
        X=X, names=names, mgg=mgg, label=sig_rows.astype(np.int8), weight=weight, mass_idx=mass_idx,
        in_window=in_window, split=split, masses=masses, sigma=sig, lo=lo, hi=hi, n_gen=n_gen,
        trained=trained, heldout=held, validation_fraction=validation_fraction, lumi_fb=lumi_fb,
        n_sigma=n_sigma, event_id=ev, features=feats, process=np.asarray(cand["process"], dtype=np.int32),
    )


# ---------------------------------------------------------------------------
# efficiency and background per window


def window_sums(sorted_x: NDArray, values_sorted: NDArray, lo: NDArray, hi: NDArray) -> NDArray[np.float64]:
    """Sums of ``values`` over ``lo <= x <= hi`` for each window, from a cumulative sum.

    ``sorted_x`` ascending; ``values_sorted`` aligned with it; ``values`` may be
    2-D (n, k) to sum k columns at once.
    """
    start = np.searchsorted(sorted_x, lo, side="left")
    stop = np.searchsorted(sorted_x, hi, side="right")
    v = np.asarray(values_sorted, dtype=float)
    cum = np.concatenate([np.zeros((1,) + v.shape[1:]), np.cumsum(v, axis=0)], axis=0)
    return cum[stop] - cum[start]


def efficiency_and_background(
    data: PunziData, outputs: ArrayLike, *, threshold: float | None = None, split: int | None = None
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Per-mass efficiency and background for network outputs (soft or cut).

    Parameters
    ----------
    data : PunziData
    outputs : array_like (n,)
        Network output per row of ``data``.
    threshold : float, optional
        Hard cut ``output > threshold``; None uses the outputs as weights
        (the soft sums of the Punzi loss).
    split : {0, 1, None}
        Restrict to training (0) or validation (1) rows; the sums are then
        scaled by the inverse event fraction of the split.

    Returns
    -------
    eps, B : ndarray (n_masses,)
    """
    y = np.asarray(outputs, dtype=float)
    if y.shape != data.label.shape:
        raise InputError(f"outputs have shape {y.shape}, expected {data.label.shape}")
    if threshold is not None:
        y = (y > threshold).astype(float)
    rows = data.rows(split)
    f = data.split_fraction(split)
    sig = rows & (data.label == 1) & data.in_window
    eps = np.bincount(data.mass_idx[sig], weights=y[sig] * data.weight[sig], minlength=data.n_masses) / f
    b_rows = data.sorted_background(split)
    B = window_sums(data.mgg[b_rows], y[b_rows] * data.weight[b_rows], data.lo, data.hi) / f
    return eps, B


def sensitivity_per_mass(
    data: PunziData, outputs: ArrayLike | None, *, threshold: float | None = 0.5, split: int | None = None,
    a: float = 5.0, b: float = 1.28, formula: str = "basic",
) -> dict[str, NDArray]:
    """Efficiency, background and sigma_min (pb) per mass for a cut on the outputs.

    ``outputs=None`` means no selection (every candidate passes).
    """
    y = np.ones(data.label.size) if outputs is None else outputs
    eps, B = efficiency_and_background(data, y, threshold=threshold if outputs is not None else None, split=split)
    eps = np.clip(eps, 0.0, 1.0)
    return {"mass": data.masses, "efficiency": eps, "background": B,
            "sigma_min_pb": punzi_sensitivity(eps, B, data.lumi_fb, a, b, formula=formula)}


@dataclass
class WorkingPoint:
    """One global cut on the network output and its per-mass sensitivity."""

    threshold: float
    mean_sigma_min_pb: float
    thresholds: NDArray[np.float64]
    mean_curve: NDArray[np.float64]
    per_mass: dict[str, NDArray]

    def to_dict(self) -> dict[str, Any]:
        return {"threshold": float(self.threshold), "mean_sigma_min_pb": float(self.mean_sigma_min_pb),
                "thresholds": self.thresholds.tolist(), "mean_curve": [float(x) if np.isfinite(x) else None for x in self.mean_curve],
                "per_mass": {k: [float(x) if np.isfinite(x) else None for x in np.asarray(v)] for k, v in self.per_mass.items()}}


def scan_working_point(
    data: PunziData, outputs: ArrayLike, *, thresholds: ArrayLike | None = None, masses: str = "trained",
    split: int | None = None, a: float = 5.0, b: float = 1.28, formula: str = "basic",
) -> WorkingPoint:
    """Scan a global output cut; pick the one with the lowest mean sigma_min over masses.

    ``masses`` selects which hypotheses enter the mean ("trained" or "all").
    Cuts that leave a mass with zero efficiency give an infinite mean and are
    never chosen. The loop is over thresholds (each O(n) with cumulative sums).
    """
    thr = np.linspace(0.0, 0.99, 100) if thresholds is None else np.asarray(thresholds, dtype=float)
    sel = data.trained if masses == "trained" else np.ones(data.n_masses, dtype=bool)
    y = np.asarray(outputs, dtype=float)
    curve = np.empty(thr.size)
    for q, c in enumerate(thr):  # loop over cut values, not events
        eps, B = efficiency_and_background(data, y, threshold=c, split=split)
        s = punzi_sensitivity(np.clip(eps, 0, 1), B, data.lumi_fb, a, b, formula=formula)[sel]
        curve[q] = np.mean(s)
    if not np.any(np.isfinite(curve)):
        raise InputError("every cut leaves some mass with zero signal efficiency")
    best = int(np.nanargmin(np.where(np.isfinite(curve), curve, np.inf)))
    per = sensitivity_per_mass(data, y, threshold=thr[best], split=split, a=a, b=b, formula=formula)
    return WorkingPoint(float(thr[best]), float(curve[best]), thr, curve, per)


# ---------------------------------------------------------------------------
# cut-based reference selection


def cut_based_mask(features: Mapping[str, NDArray], *, cos_max: float, ratio_min: float) -> NDArray[np.bool_]:
    """A simple rectangular selection to compare the network with.

    Keeps candidates whose recoil photon is central in the CM,
    ``|cos theta*_recoil| = |u - t| / (u + t) < cos_max`` (QED ggg photons are
    forward-peaked, the signal recoil follows 1 + cos^2), and whose pair
    shares its energy not too asymmetrically, ``E_low / E_high > ratio_min``
    (ALP photons: flat in the CM decay angle; ggg: soft photons).
    """
    for key in ("u_recoil", "t_recoil", "E_low_cm", "E_high_cm"):
        if key not in features:
            raise InputError(f"cut-based selection needs feature {key!r}")
    u, t = np.asarray(features["u_recoil"]), np.asarray(features["t_recoil"])
    cos = np.abs(u - t) / np.maximum(u + t, 1e-300)
    ratio = np.asarray(features["E_low_cm"]) / np.maximum(np.asarray(features["E_high_cm"]), 1e-300)
    return (cos < cos_max) & (ratio > ratio_min)


def optimise_cut_based(
    data: PunziData, *, cos_grid: ArrayLike = (0.5, 0.6, 0.7, 0.8, 0.9, 1.01), ratio_grid: ArrayLike = (0.0, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5),
    a: float = 5.0, b: float = 1.28, formula: str = "basic",
) -> dict[str, Any]:
    """Grid-optimise the two cuts of ``cut_based_mask`` for the best mean sigma_min over trained masses."""
    best: dict[str, Any] = {"mean_sigma_min_pb": np.inf}
    for c in cos_grid:
        for r in ratio_grid:
            mask = cut_based_mask(data.features, cos_max=float(c), ratio_min=float(r)).astype(float)
            per = sensitivity_per_mass(data, mask, threshold=0.5, a=a, b=b, formula=formula)
            mean = float(np.mean(per["sigma_min_pb"][data.trained]))
            if mean < best["mean_sigma_min_pb"]:
                best = {"cos_max": float(c), "ratio_min": float(r), "mean_sigma_min_pb": mean, "per_mass": per}
    return best


# ---------------------------------------------------------------------------
# generalisation


def generalisation_table(masses: NDArray, sigma_min: NDArray, trained: NDArray, heldout: NDArray, *,
                         efficiency: NDArray | None = None, n_gen: NDArray | None = None) -> list[dict[str, float]]:
    """Held-out sensitivity vs linear interpolation between the neighbouring trained masses.

    Returns one row per held-out mass: ``mass``, ``sigma_min_pb``,
    ``interpolated_pb``, ``ratio`` (held-out / interpolated) and the
    neighbours used. With ``efficiency`` and ``n_gen`` (per mass) also
    ``ratio_stat_unc``: the binomial uncertainty of the three efficiencies
    involved propagated to the ratio (the background is common to
    neighbouring windows and neglected), to judge a deviation against the
    signal-MC statistics.
    """
    rows = []
    tm = np.flatnonzero(trained & np.isfinite(sigma_min))
    rel = None
    if efficiency is not None and n_gen is not None:
        eps = np.clip(np.asarray(efficiency, dtype=float), 1e-12, 1.0)
        rel = np.sqrt(eps * (1.0 - eps) / np.asarray(n_gen, dtype=float)) / eps
    for h in np.flatnonzero(heldout):
        left = tm[masses[tm] < masses[h]]
        right = tm[masses[tm] > masses[h]]
        if left.size == 0 or right.size == 0:
            continue
        l, r = left[-1], right[0]
        w = (masses[h] - masses[l]) / (masses[r] - masses[l])
        interp = (1 - w) * sigma_min[l] + w * sigma_min[r]
        row = {"mass": float(masses[h]), "sigma_min_pb": float(sigma_min[h]), "interpolated_pb": float(interp),
               "ratio": float(sigma_min[h] / interp), "left": float(masses[l]), "right": float(masses[r])}
        if rel is not None:
            rel_interp = np.hypot((1 - w) * sigma_min[l] * rel[l], w * sigma_min[r] * rel[r]) / interp
            row["ratio_stat_unc"] = float(row["ratio"] * np.hypot(rel[h], rel_interp))
        rows.append(row)
    return rows


# ---------------------------------------------------------------------------
# model application (TensorFlow imported lazily)


def load_selector(path: str) -> Any:
    """Load a trained selector (directory with ``model.keras`` and ``metadata.json``)."""
    from .network import PunziSelector

    return PunziSelector.load(path)


def apply(model: Any, candidates: dict[str, NDArray], events: Mapping[str, Any] | None = None, *, beam: Beam | None = None) -> NDArray[np.float32]:
    """Evaluate the selector on candidates; adds the column ``punzi_net`` to ``candidates``.

    ``model`` is a ``PunziSelector`` or a path. Features are taken from
    ``candidates`` when it has every feature column, else computed from
    ``events`` (the three-photon dict).
    """
    if not hasattr(model, "predict_features"):
        model = load_selector(model)
    return model.apply(candidates, events, beam=beam)


# ---------------------------------------------------------------------------
# reading training samples


def load_samples(paths: Sequence[str], *, beam: Beam | None = None, include_data: bool = False,
                 require_n_generated: bool = True) -> tuple[dict[str, NDArray], dict[float, int], float | None]:
    """Read signal/background samples for the selector into one three-photon dict.

    Each path (glob patterns allowed) is a three-photon file written by
    ``bumphunt preselect`` or a raw ntuple (pre-selected on the fly). The
    sample metadata give ``N_gen`` of signal files (``mass`` and
    ``n_generated``) and the luminosity the weights are normalised to
    (``lumi_fb``); background weights of files with different ``lumi_fb`` are
    rescaled to the first one. Pseudo-data files (``process`` "data") are
    skipped unless ``include_data``. ``require_n_generated=False`` (applying
    a trained selector) accepts signal files without ``n_generated``.

    Returns
    -------
    events, n_generated, weight_lumi_fb
    """
    from ..errors import SchemaError
    from ..events.io import expand_paths, read_events, read_meta
    from ..events.preselection import combine_three_photon, load_three_photon, preselect

    files = expand_paths(list(paths))
    if not files:
        raise InputError(f"no input files match {list(paths)}")
    parts: list[dict[str, NDArray]] = []
    n_gen: dict[float, int] = {}
    lumi_ref: float | None = None
    for path in files:
        try:
            meta = read_meta(path)
        except Exception:  # noqa: BLE001 - files without metadata are allowed
            meta = {}
        if meta.get("process") == "data" and not include_data:
            logger.warning("%s: pseudo-data sample skipped for training", path)
            continue
        try:
            ev = load_three_photon(path)
        except SchemaError:
            raw = read_events([path])
            ev, _ = preselect(raw, beam=beam)
        n = int(np.asarray(ev.get("E", np.zeros((0, 3)))).shape[0])
        if n == 0:
            logger.warning("%s: no events after pre-selection", path)
        proc = np.asarray(ev.get("process", np.zeros(0)))
        if n and np.any(proc == 0):
            masses = np.unique(np.round(np.asarray(ev["mc_ma"], dtype=float)[proc == 0], 6))
            if "n_generated" not in meta:
                if not require_n_generated:
                    parts.append(ev)
                    continue
                raise InputError(f"{path}: signal file without 'n_generated' in its metadata; give n_generated in the config")
            if isinstance(meta["n_generated"], Mapping):
                n_gen.update({round(float(k), 6): int(v) for k, v in meta["n_generated"].items()})
            elif masses.size == 1:
                n_gen[float(masses[0])] = int(meta["n_generated"])
            else:
                raise InputError(f"{path}: {masses.size} signal masses but one n_generated; give n_generated per mass in the config")
        elif n and "lumi_fb" in meta:
            lumi = float(meta["lumi_fb"])
            if lumi_ref is None:
                lumi_ref = lumi
            elif not np.isclose(lumi, lumi_ref):
                ev["weight"] = np.asarray(ev["weight"], dtype=float) * lumi_ref / lumi
        if n:
            parts.append(ev)
    if not parts:
        raise InputError(f"no events in {[str(f) for f in files]}")
    keys = set(parts[0])
    for p in parts[1:]:
        keys &= set(p)
    events = combine_three_photon([{k: p[k] for k in keys} for p in parts])
    return events, n_gen, lumi_ref

"""Training data of the Punzi-net selector: labelled, weighted and split diphoton candidates.

Rows are truth-matched signal candidates (label 1, weight ``1 / N_gen(m)``)
and background candidates (label 0, weight = expected events at ``lumi_fb``);
wrong-pair signal candidates are dropped. The candidates come from
``bumphunt.events.candidates.diphoton_candidates`` (the one candidate builder
of the package), the features from ``bumphunt.selection.features``.

Mass windows
------------
Each mass hypothesis ``m`` owns the window ``m +- n_sigma sigma(m)`` in M_gg
(``n_sigma = 10`` by default; ``sigma(m)`` from
``bumphunt.selection.masses.mass_resolution``). Windows overlap, so one
background candidate enters several ``B_m``; sums over windows are
differences of a cumulative sum over the M_gg-sorted candidates
(``window_sums``: O(1) per window, no dense masses x candidates matrix).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ..errors import InputError
from ..events.candidates import diphoton_candidates
from ..kinematics import Beam
from .features import compute_features, feature_matrix, resolve_feature_names
from .masses import choose_heldout, mass_resolution

logger = logging.getLogger(__name__)

__all__ = ["PunziData", "prepare_training_data", "window_sums"]


@dataclass(frozen=True)
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
    heldout : ndarray (n_masses,) bool
        Masses kept out of training to test that the selection generalises.
    validation_fraction, lumi_fb, n_sigma : float
    event_id : ndarray (n,) int
        Row of the candidate's event in the input events.
    features : dict
        The feature columns (same rows).
    process : ndarray (n,) int
        Process code per row (``bumphunt.events.schema.PROCESS_CODES``).

    The instance is frozen; only the M_gg order of the background rows per
    split is cached on first use (``sorted_background``).
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
        """Number of mass hypotheses."""
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
        """Mask of the rows of ``split`` (0 training, 1 validation, None: all)."""
        return np.ones(self.label.size, dtype=bool) if split is None else self.split == split

    def windows(self) -> dict[str, Any]:
        """The mass windows as JSON-friendly lists (stored with a trained selector)."""
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
        Diphoton candidates (default ``bumphunt.events.candidates.diphoton_candidates``
        of ``events``).
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
        loss, see ``bumphunt.selection.loss``).
    """
    beam = beam or Beam.belle2()
    weight_lumi_fb = 1.0 if weight_lumi_fb is None else float(weight_lumi_fb)
    lumi_fb = weight_lumi_fb if lumi_fb is None else float(lumi_fb)
    if not 0.0 < validation_fraction < 1.0:
        raise InputError(f"validation_fraction must be in (0, 1), got {validation_fraction}")
    cand = dict(candidates) if candidates is not None else diphoton_candidates(events, beam=beam)
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

    sig = mass_resolution(masses, sigma, beam=beam)
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


def window_sums(sorted_x: NDArray, values_sorted: NDArray, lo: NDArray, hi: NDArray) -> NDArray[np.float64]:
    """Sums of ``values`` over ``lo <= x <= hi`` for each window, from a cumulative sum.

    ``sorted_x`` ascending (e.g. M_gg in GeV); ``values_sorted`` aligned with it; ``values`` may be
    2-D (n, k) to sum k columns at once. ``lo``, ``hi``: window edges (same unit as ``sorted_x``).
    """
    start = np.searchsorted(sorted_x, lo, side="left")
    stop = np.searchsorted(sorted_x, hi, side="right")
    v = np.asarray(values_sorted, dtype=float)
    cum = np.concatenate([np.zeros((1,) + v.shape[1:]), np.cumsum(v, axis=0)], axis=0)
    return cum[stop] - cum[start]


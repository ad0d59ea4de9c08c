"""Per-candidate features of the Punzi-net selector (columnar, vectorised).

A diphoton candidate is a pair ``(i, j)`` of the three photons of an event;
the third photon ``k`` is the recoil. Features are computed in the e+e- CM
frame from the three photons of the "three-photon events" dict (see the data
contracts), using the kinematically fitted photons (``fit_E``, ``fit_theta``,
``fit_phi``) when present and ``use_fitted`` allows it.

Default features (nine, in this order):

``E_high_cm``, ``E_low_cm``, ``E_recoil_cm``
    CM energies (GeV) of the higher- and lower-energy photon of the pair and
    of the recoil photon (ordering by CM energy).
``u_recoil``, ``t_recoil``
    ``u = E^2 (1 + cos theta*) / 2`` and ``t = E^2 (1 - cos theta*) / 2``
    (GeV^2), i.e. ``2u, 2t = E^2 (1 +- cos theta*)``, with ``E`` the CM energy
    of the *recoil photon* and ``theta*`` its CM polar angle to the electron
    beam direction (``Beam.cm_axis()``). For e+e- -> gamma a the recoil
    photon is monochromatic and ``1 + cos^2``-distributed; QED ggg photons
    are softer and forward-peaked.
``sphericity``
    ``S = 3/2 (lambda_2 + lambda_3)`` of the momentum tensor
    ``S^ab = sum p^a p^b / sum |p|^2`` of the three CM photons (event level).
``fox_wolfram_r2``
    ``R2 = H2 / H0`` with ``H_l = sum_ij |p_i| |p_j| P_l(cos theta_ij)`` over
    the three CM photons (event level).
``cleo_cone0``
    Energy (GeV, CM) of the three photons whose direction lies within
    10 degrees of the thrust axis, counting both directions of the axis
    (the innermost of the nine 10-degree CLEO cones). The thrust axis is
    computed exactly from the three CM photons: it is parallel to one of the
    sign combinations ``+-p_1 +- p_2 +- p_3``, of which the one maximising
    ``sum |p_i . n|`` is taken (event level).
``kinfit_chi2``
    chi2 of the 4C kinematic fit (from the three-photon dict), capped at
    ``KINFIT_CHI2_CAP`` (= 1000); events whose fit did not converge carry
    ``+inf`` by contract and get the cap. When the events carry no
    kinematic fit and the default feature list is used, this feature is
    dropped with a warning (eight features).

Add a feature with ``@register_feature("name", unit="GeV", doc="...")`` on a
function ``f(ctx: FeatureContext) -> ndarray`` returning one value per
candidate; then pass its name in ``names``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ..errors import InputError
from ..kinematics import Beam, p4_from_spherical

logger = logging.getLogger(__name__)

__all__ = [
    "FEATURES",
    "DEFAULT_FEATURES",
    "FeatureContext",
    "register_feature",
    "candidate_pairs",
    "compute_features",
    "feature_matrix",
    "resolve_feature_names",
    "Standardizer",
]

#: The nine default features (see module docstring).
DEFAULT_FEATURES: tuple[str, ...] = (
    "E_high_cm",
    "E_low_cm",
    "E_recoil_cm",
    "u_recoil",
    "t_recoil",
    "sphericity",
    "fox_wolfram_r2",
    "cleo_cone0",
    "kinfit_chi2",
)

#: Value given to kinfit_chi2 above it and for fits that did not converge (chi2 = +inf).
KINFIT_CHI2_CAP = 1000.0

#: Opening half-angle of CLEO cone 0 about the thrust axis (rad).
CLEO_CONE0_HALF_ANGLE = np.deg2rad(10.0)


@dataclass(frozen=True)
class FeatureSpec:
    """A registered feature: computing function, unit and description."""

    name: str
    func: Callable[[FeatureContext], NDArray]
    unit: str = ""
    doc: str = ""
    requires: tuple[str, ...] = ()


#: name -> FeatureSpec of every registered feature.
FEATURES: dict[str, FeatureSpec] = {}


def register_feature(name: str, *, unit: str = "", doc: str = "", requires: Sequence[str] = ()) -> Callable:
    """Decorator registering ``func(ctx) -> ndarray (n_candidates,)`` as feature ``name``.

    ``requires`` lists fields of the three-photon dict the feature needs; a
    missing one raises ``InputError`` naming it.
    """

    def deco(func: Callable[[FeatureContext], NDArray]) -> Callable[[FeatureContext], NDArray]:
        if name in FEATURES and FEATURES[name].func is not func:
            logger.warning("feature %r re-registered", name)
        FEATURES[name] = FeatureSpec(name, func, unit, doc or (func.__doc__ or "").strip(), tuple(requires))
        return func

    return deco


def candidate_pairs(n_events: int) -> dict[str, NDArray]:
    """The three diphoton candidates of each event: pairs (0,1), (0,2), (1,2).

    Returns ``event_index``, ``i``, ``j``, ``k`` of length ``3 n_events``,
    event-major (the three candidates of an event are consecutive).
    """
    pairs = np.array([[0, 1, 2], [0, 2, 1], [1, 2, 0]], dtype=np.int64)
    ev = np.repeat(np.arange(n_events, dtype=np.int64), 3)
    p = np.tile(pairs, (n_events, 1))
    return {"event_index": ev, "i": p[:, 0], "j": p[:, 1], "k": p[:, 2]}


def _require(events: Mapping[str, Any], key: str, shape_tail: tuple[int, ...] = (3,), what: str = "") -> NDArray:
    if key not in events:
        raise InputError(f"three-photon events: missing field {key!r} ({what or 'expected an (n, 3) array'}); present: {sorted(events)}")
    arr = np.asarray(events[key], dtype=float)
    if arr.shape[1:] != shape_tail:
        raise InputError(f"three-photon events: field {key!r} has shape {arr.shape}, expected (n, {', '.join(map(str, shape_tail))})")
    return arr


class FeatureContext:
    """Lazily computed kinematic quantities shared by the feature functions.

    Attributes
    ----------
    events : mapping
        The three-photon events dict.
    event_index, i, j, k : ndarray
        Candidate rows: event row and photon positions (pair ``i, j``, recoil ``k``).
    beam : Beam
    use_fitted : bool
        Whether fitted photon kinematics are used.
    """

    def __init__(self, events: Mapping[str, Any], cand: Mapping[str, NDArray], *, beam: Beam, use_fitted: bool):
        self.events = events
        self.beam = beam
        self.use_fitted = use_fitted
        self.event_index = np.asarray(cand["event_index"], dtype=np.int64)
        self.i = np.asarray(cand["i"], dtype=np.int64)
        self.j = np.asarray(cand["j"], dtype=np.int64)
        self.k = np.asarray(cand["k"], dtype=np.int64)
        self.n_events = int(np.asarray(events["E"]).shape[0]) if "E" in events else 0
        if self.event_index.size and (self.event_index.min() < 0 or self.event_index.max() >= self.n_events):
            raise InputError(f"candidates: event_index outside [0, {self.n_events}) of the three-photon events")
        for name, arr in (("i", self.i), ("j", self.j), ("k", self.k)):
            if arr.size and (arr.min() < 0 or arr.max() > 2):
                raise InputError(f"candidates: photon position {name!r} must be 0, 1 or 2")

    # --- per-event photon four-vectors ----------------------------------
    @cached_property
    def p4_cm(self) -> NDArray[np.float64]:
        """CM four-vectors of the three photons of each event, shape (n_events, 3, 4)."""
        pre = "fit_" if self.use_fitted else ""
        E = _require(self.events, pre + "E", what="photon energies in GeV, shape (n, 3)")
        th = _require(self.events, pre + "theta", what="photon polar angles in rad, shape (n, 3)")
        ph = _require(self.events, pre + "phi", what="photon azimuths in rad, shape (n, 3)")
        return self.beam.to_cm(p4_from_spherical(E, th, ph))

    def photon(self, which: NDArray) -> NDArray[np.float64]:
        """CM four-vectors (n_candidates, 4) of photon position ``which`` of each candidate's event."""
        return self.p4_cm[self.event_index, which]

    @cached_property
    def high_low(self) -> tuple[NDArray, NDArray]:
        pi, pj = self.photon(self.i), self.photon(self.j)
        swap = (pj[:, 3] > pi[:, 3])[:, None]
        return np.where(swap, pj, pi), np.where(swap, pi, pj)

    @cached_property
    def recoil(self) -> NDArray[np.float64]:
        return self.photon(self.k)

    @cached_property
    def recoil_cos_theta(self) -> NDArray[np.float64]:
        """cos of the recoil photon's CM polar angle to the electron beam."""
        p = self.recoil
        return (p[:, :3] @ self.beam.cm_axis()) / np.maximum(np.linalg.norm(p[:, :3], axis=1), 1e-300)

    def per_event(self, values: NDArray) -> NDArray:
        """Broadcast an event-level array to the candidates."""
        return np.asarray(values)[self.event_index]

    # --- event shapes (per event, then broadcast) -----------------------
    @cached_property
    def momenta(self) -> NDArray[np.float64]:
        return self.p4_cm[..., :3]

    @cached_property
    def event_sphericity(self) -> NDArray[np.float64]:
        p = self.momenta
        tensor = np.einsum("nqa,nqb->nab", p, p) / np.maximum(np.sum(p * p, axis=(1, 2)), 1e-300)[:, None, None]
        lam = np.linalg.eigvalsh(tensor)  # ascending
        return 1.5 * (lam[:, 0] + lam[:, 1])

    @cached_property
    def event_fox_wolfram_r2(self) -> NDArray[np.float64]:
        p = self.momenta
        mag = np.linalg.norm(p, axis=2)
        unit = p / np.maximum(mag, 1e-300)[..., None]
        cos = np.clip(np.einsum("nqa,nra->nqr", unit, unit), -1.0, 1.0)
        ww = mag[:, :, None] * mag[:, None, :]
        h0 = np.sum(ww, axis=(1, 2))
        h2 = np.sum(ww * 0.5 * (3.0 * cos * cos - 1.0), axis=(1, 2))
        return h2 / np.maximum(h0, 1e-300)

    @cached_property
    def thrust_axis(self) -> tuple[NDArray, NDArray]:
        """Thrust value and unit thrust axis (n_events, 3) of the three CM photons."""
        p = self.momenta
        signs = np.array([[1, 1, 1], [1, 1, -1], [1, -1, 1], [-1, 1, 1]], dtype=float)
        cand = np.einsum("sq,nqa->nsa", signs, p)  # (n, 4, 3)
        axes = cand / np.maximum(np.linalg.norm(cand, axis=2, keepdims=True), 1e-300)
        proj = np.abs(np.einsum("nsa,nqa->nsq", axes, p)).sum(axis=2)
        best = np.argmax(proj, axis=1)
        total = np.maximum(np.linalg.norm(p, axis=2).sum(axis=1), 1e-300)
        rows = np.arange(p.shape[0])
        return proj[rows, best] / total, axes[rows, best]

    @cached_property
    def event_cleo_cone0(self) -> NDArray[np.float64]:
        _, axis = self.thrust_axis
        p = self.momenta
        mag = np.maximum(np.linalg.norm(p, axis=2), 1e-300)
        cos = np.abs(np.einsum("nqa,na->nq", p, axis)) / mag
        inside = cos >= np.cos(CLEO_CONE0_HALF_ANGLE)
        return np.sum(np.where(inside, self.p4_cm[..., 3], 0.0), axis=1)


# ---------------------------------------------------------------------------
# built-in features


@register_feature("E_high_cm", unit="GeV", doc="CM energy of the higher-energy photon of the pair")
def _e_high(ctx: FeatureContext) -> NDArray:
    return ctx.high_low[0][:, 3]


@register_feature("E_low_cm", unit="GeV", doc="CM energy of the lower-energy photon of the pair")
def _e_low(ctx: FeatureContext) -> NDArray:
    return ctx.high_low[1][:, 3]


@register_feature("E_recoil_cm", unit="GeV", doc="CM energy of the recoil photon (the one not in the pair)")
def _e_recoil(ctx: FeatureContext) -> NDArray:
    return ctx.recoil[:, 3]


@register_feature("u_recoil", unit="GeV^2", doc="E*^2 (1 + cos theta*) / 2 of the recoil photon, theta* to the e- beam in the CM")
def _u(ctx: FeatureContext) -> NDArray:
    return 0.5 * ctx.recoil[:, 3] ** 2 * (1.0 + ctx.recoil_cos_theta)


@register_feature("t_recoil", unit="GeV^2", doc="E*^2 (1 - cos theta*) / 2 of the recoil photon, theta* to the e- beam in the CM")
def _t(ctx: FeatureContext) -> NDArray:
    return 0.5 * ctx.recoil[:, 3] ** 2 * (1.0 - ctx.recoil_cos_theta)


@register_feature("sphericity", doc="sphericity of the three CM photons")
def _sph(ctx: FeatureContext) -> NDArray:
    return ctx.per_event(ctx.event_sphericity)


@register_feature("fox_wolfram_r2", doc="Fox-Wolfram ratio H2/H0 of the three CM photons")
def _r2(ctx: FeatureContext) -> NDArray:
    return ctx.per_event(ctx.event_fox_wolfram_r2)


@register_feature("cleo_cone0", unit="GeV", doc="CM energy within 10 deg of the thrust axis (both directions)")
def _cone0(ctx: FeatureContext) -> NDArray:
    return ctx.per_event(ctx.event_cleo_cone0)


@register_feature("kinfit_chi2", doc="chi2 of the 4C kinematic fit, capped at 1000 (not converged: 1000)", requires=("kinfit_chi2",))
def _chi2(ctx: FeatureContext) -> NDArray:
    chi2 = np.asarray(ctx.events["kinfit_chi2"], dtype=float)
    chi2 = np.where(np.isposinf(chi2), KINFIT_CHI2_CAP, np.minimum(chi2, KINFIT_CHI2_CAP))  # NaN stays NaN -> error
    return ctx.per_event(chi2)


# ---------------------------------------------------------------------------


def resolve_feature_names(names: Sequence[str] | None, events: Mapping[str, Any]) -> list[str]:
    """The feature list to use.

    ``None`` means ``DEFAULT_FEATURES``, minus ``kinfit_chi2`` (with a
    warning) when the events carry no kinematic fit. Explicit names must be
    registered; an explicitly requested feature whose input is missing raises.
    """
    if names is None:
        out = list(DEFAULT_FEATURES)
        if "kinfit_chi2" not in events:
            logger.warning("no 'kinfit_chi2' in the events (kinematic fit not run): using %d features without it", len(out) - 1)
            out.remove("kinfit_chi2")
        return out
    out = list(names)
    unknown = [n for n in out if n not in FEATURES]
    if unknown:
        raise InputError(f"unknown feature(s) {unknown}; registered: {sorted(FEATURES)}")
    if len(set(out)) != len(out):
        raise InputError(f"duplicate feature names in {out}")
    return out


def _use_fitted(events: Mapping[str, Any], use_fitted: bool | str) -> bool:
    has = all(k in events for k in ("fit_E", "fit_theta", "fit_phi"))
    if use_fitted == "auto":
        return has
    if use_fitted and not has:
        raise InputError("use_fitted=True but the events carry no fitted photons ('fit_E', 'fit_theta', 'fit_phi')")
    return bool(use_fitted)


def compute_features(
    events: Mapping[str, Any],
    candidates: Mapping[str, Any] | None = None,
    *,
    beam: Beam | None = None,
    names: Sequence[str] | None = None,
    use_fitted: bool | str = "auto",
) -> dict[str, NDArray[np.float64]]:
    """Compute features for every diphoton candidate.

    Parameters
    ----------
    events : mapping
        Three-photon events dict (``E``, ``theta``, ``phi`` of shape (n, 3)
        in GeV/rad, lab frame; optional ``fit_*`` and ``kinfit_chi2``).
    candidates : mapping, optional
        Candidate rows with ``event_index``, ``i``, ``j``, ``k`` (e.g. the
        dict of ``bumphunt.events.candidates.diphoton_candidates``); default: the
        three pairs of every event (``candidate_pairs``).
    beam : Beam, optional
        Defines the CM frame; default ``Beam.belle2()``.
    names : sequence of str, optional
        Features to compute; default ``resolve_feature_names(None, events)``.
    use_fitted : bool or "auto"
        Use the kinematically fitted photons (default when present).

    Returns
    -------
    dict
        name -> float64 array of length n_candidates.

    Raises
    ------
    InputError
        A required field is missing or has the wrong shape, an unknown feature
        is requested, or a feature is not finite (the message names the
        feature, the number of bad candidates and the first bad event row).
    """
    beam = beam or Beam.belle2()
    if candidates is None:
        n = int(np.asarray(_require(events, "E")).shape[0])
        candidates = candidate_pairs(n)
    else:
        missing = [k for k in ("event_index", "i", "j", "k") if k not in candidates]
        if missing:
            raise InputError(f"candidates: missing field(s) {missing} (expected event_index, i, j, k)")
    names = resolve_feature_names(names, events)
    ctx = FeatureContext(events, candidates, beam=beam, use_fitted=_use_fitted(events, use_fitted))
    out: dict[str, NDArray[np.float64]] = {}
    for name in names:
        spec = FEATURES[name]
        for req in spec.requires:
            if req not in events:
                raise InputError(f"feature {name!r} needs field {req!r} of the three-photon events, which is missing")
        values = np.asarray(spec.func(ctx), dtype=float)
        if values.shape != ctx.event_index.shape:
            raise InputError(f"feature {name!r} returned shape {values.shape}, expected ({ctx.event_index.size},)")
        bad = ~np.isfinite(values)
        if bad.any():
            first = int(ctx.event_index[np.argmax(bad)])
            raise InputError(f"feature {name!r} is not finite for {int(bad.sum())} of {bad.size} candidates (first at event row {first})")
        out[name] = values
    return out


def feature_matrix(features: Mapping[str, NDArray], names: Sequence[str]) -> NDArray[np.float32]:
    """Stack feature columns into an (n, n_features) float32 matrix.

    Raises ``InputError`` naming a missing column or a column with NaN/inf.
    """
    missing = [n for n in names if n not in features]
    if missing:
        raise InputError(f"feature column(s) {missing} missing; present: {sorted(features)}")
    cols = []
    for n in names:
        col = np.asarray(features[n], dtype=float)
        bad = ~np.isfinite(col)
        if bad.any():
            raise InputError(f"feature column {n!r} has {int(bad.sum())} non-finite value(s) (first at row {int(np.argmax(bad))})")
        cols.append(col)
    if not cols:
        raise InputError("no features requested")
    return np.stack(cols, axis=1).astype(np.float32)


@dataclass
class Standardizer:
    """Feature standardisation ``(x - mean) / std``, stored with the model."""

    names: list[str]
    mean: NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))
    std: NDArray[np.float64] = field(default_factory=lambda: np.ones(0))

    @classmethod
    def fit(cls, X: NDArray, names: Sequence[str], *, weights: NDArray | None = None) -> Standardizer:
        """Mean and standard deviation per column (weighted if ``weights``); zero spread -> std 1."""
        X = np.asarray(X, dtype=float)
        w = np.ones(X.shape[0]) if weights is None else np.asarray(weights, dtype=float)
        mean = np.average(X, axis=0, weights=w)
        std = np.sqrt(np.average((X - mean) ** 2, axis=0, weights=w))
        flat = std < 1e-12 * np.maximum(1.0, np.abs(mean))
        if flat.any():
            logger.warning("features %s are constant in the training sample", [n for n, f in zip(names, flat) if f])
        std = np.where(flat, 1.0, std)
        return cls(list(names), mean, std)

    def transform(self, X: NDArray) -> NDArray[np.float32]:
        X = np.asarray(X, dtype=float)
        if X.ndim != 2 or X.shape[1] != len(self.names):
            raise InputError(f"expected {len(self.names)} feature columns {self.names}, got array of shape {X.shape}")
        return ((X - self.mean) / self.std).astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        return {"names": list(self.names), "mean": [float(x) for x in self.mean], "std": [float(x) for x in self.std]}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Standardizer:
        return cls(list(d["names"]), np.asarray(d["mean"], dtype=float), np.asarray(d["std"], dtype=float))

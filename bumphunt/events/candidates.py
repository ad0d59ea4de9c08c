"""Diphoton candidates: the three photon pairs of each three-photon event.

An ALP decaying to two photons recoils against the third photon, but which
two of the three photons came from the ALP is not known, so every event
contributes three candidates, pairs (0, 1), (0, 2) and (1, 2) of the
energy-ordered photons, the remaining photon being the recoil candidate. For
signal, exactly one pair is the true ALP pair ("truth matched", TM); the other
two are combinatorial background.

Candidate ``3 * r + p`` belongs to row ``r`` of the three-photon dict and pair
``p``. The diphoton mass is computed from the kinematically fitted photons when
the dict has them (``fit_E``, ``fit_theta``, ``fit_phi``) and ``use_fitted``
allows, else from the measured ones; ``mgg_raw`` is always from the measured
photons. Photon energies and polar angles are also given in the CM frame
(``Beam.to_cm``); CM polar angles are measured from the electron-beam axis in
the CM frame (``Beam.cm_axis``), the axis of the 1 + cos^2 theta* distribution.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import numpy as np

from ..errors import InputError
from ..kinematics import Beam, invariant_mass, p4_from_spherical

logger = logging.getLogger(__name__)

__all__ = ["PAIRS", "diphoton_candidates"]

#: Photon positions (i, j, k) of the three candidates: pair (i, j), recoil k.
PAIRS = np.array([[0, 1, 2], [0, 2, 1], [1, 2, 0]], dtype=np.int8)


def diphoton_candidates(
    events: Mapping[str, np.ndarray],
    *,
    beam: Beam | None = None,
    use_fitted: bool | str = "auto",
) -> dict[str, np.ndarray]:
    """All three diphoton candidates of each three-photon event.

    Parameters
    ----------
    events : dict of numpy arrays
        Three-photon events (``bumphunt.events.preselection.preselect``, optionally
        with the kinematic-fit keys).
    beam : Beam, optional
        Beams for the CM frame (default ``Beam.belle2()``).
    use_fitted : {"auto", True, False}
        "auto": fitted photons when present; True: require them; False: raw.

    Returns
    -------
    dict of numpy arrays of length 3n
        ``event_index``, ``i``, ``j``, ``k``, ``mgg`` (GeV), ``mgg_raw`` (GeV),
        ``truth_match``, ``process``, ``weight``, ``mc_ma``, lab energies
        ``E_high``, ``E_low``, ``E_recoil`` (GeV, the pair's more and less
        energetic photon and the recoil photon), the same in the CM frame
        (``E_high_cm``, ...), CM polar angles ``theta_high_cm``,
        ``theta_low_cm``, ``theta_recoil_cm`` (rad) and ``kinfit_chi2`` when
        present.
    """
    beam = beam or Beam.belle2()
    for key in ("E", "theta", "phi"):
        if key not in events:
            raise InputError(f"diphoton_candidates: three-photon events have no {key!r} (keys: {sorted(events)})")
    E = np.asarray(events["E"], dtype=float)
    if E.ndim != 2 or E.shape[1] != 3:
        raise InputError(f"diphoton_candidates: 'E' must have shape (n, 3), got {E.shape}")
    n = E.shape[0]
    has_fit = all(k in events for k in ("fit_E", "fit_theta", "fit_phi"))
    if use_fitted is True and not has_fit:
        raise InputError("diphoton_candidates: use_fitted=True but the events have no fit_E/fit_theta/fit_phi (run the kinematic fit first)")
    if use_fitted not in (True, False, "auto"):
        raise ValueError(f"use_fitted must be 'auto', True or False, got {use_fitted!r}")
    fitted = has_fit and use_fitted in (True, "auto")

    p4_raw = p4_from_spherical(E, events["theta"], events["phi"])
    if fitted:
        p4 = p4_from_spherical(events["fit_E"], events["fit_theta"], events["fit_phi"])
    else:
        p4 = p4_raw
    i, j, k = PAIRS[:, 0], PAIRS[:, 1], PAIRS[:, 2]
    mgg = invariant_mass(p4[:, i], p4[:, j]).reshape(-1)
    mgg_raw = invariant_mass(p4_raw[:, i], p4_raw[:, j]).reshape(-1)

    # CM-frame energies and polar angles to the CM electron-beam axis
    p4_cm = beam.to_cm(p4)
    axis = beam.cm_axis()
    pmag = np.linalg.norm(p4_cm[..., :3], axis=-1)
    cos_cm = np.clip(np.divide(p4_cm[..., :3] @ axis, pmag, out=np.zeros_like(pmag), where=pmag > 0), -1.0, 1.0)
    theta_cm = np.arccos(cos_cm)
    E_lab = p4[..., 3]
    E_cm = p4_cm[..., 3]

    # within the pair, "high" is the more energetic photon (in the frame used for mgg, lab)
    hi_is_i = E_lab[:, i] >= E_lab[:, j]
    hi = np.where(hi_is_i, i, j)
    lo = np.where(hi_is_i, j, i)
    kk = np.broadcast_to(k, (n, 3))
    take = lambda a, pos: np.take_along_axis(a, pos, axis=1).reshape(-1)  # noqa: E731

    out: dict[str, np.ndarray] = {
        "event_index": np.repeat(np.arange(n, dtype=np.int64), 3),
        "i": np.tile(i, n).astype(np.int8),
        "j": np.tile(j, n).astype(np.int8),
        "k": np.tile(k, n).astype(np.int8),
        "mgg": mgg,
        "mgg_raw": mgg_raw,
    }
    a1 = np.asarray(events.get("truth_a1", np.full(n, -1)))
    a2 = np.asarray(events.get("truth_a2", np.full(n, -1)))
    both = (a1 >= 0) & (a2 >= 0) & (a1 != a2)
    pair_lo = np.minimum(a1, a2)
    pair_hi = np.maximum(a1, a2)
    out["truth_match"] = (both[:, None] & (pair_lo[:, None] == i) & (pair_hi[:, None] == j)).reshape(-1)
    for key, default in (("process", -1), ("weight", 1.0), ("mc_ma", -1.0)):
        arr = np.asarray(events[key]) if key in events else np.full(n, default)
        out[key] = np.repeat(arr, 3)
    out["E_high"] = take(E_lab, hi)
    out["E_low"] = take(E_lab, lo)
    out["E_recoil"] = take(E_lab, kk)
    out["E_high_cm"] = take(E_cm, hi)
    out["E_low_cm"] = take(E_cm, lo)
    out["E_recoil_cm"] = take(E_cm, kk)
    out["theta_high_cm"] = take(theta_cm, hi)
    out["theta_low_cm"] = take(theta_cm, lo)
    out["theta_recoil_cm"] = take(theta_cm, kk)
    for key in ("kinfit_chi2", "kinfit_converged"):
        if key in events:
            out[key] = np.repeat(np.asarray(events[key]), 3)
    logger.debug("diphoton candidates: %d from %d events (%s photons)", 3 * n, n, "fitted" if fitted else "measured")
    return out

"""Recasting a scan result's limits to another coupling model and to another sqrt(s).

A scan sets limits on the number of signal events N_sig; with the
efficiency x luminosity they become limits on the cross-section sigma(e+e- ->
gamma a), and with the Born cross-section of a coupling model at the scan's
sqrt(s) limits on that model's coupling. ``recast(result, coupling=...,
sqrt_s=...)`` redoes the last step (and, with a lifetime-dependent
efficiency, the second):

- another coupling model (``"photon"`` <-> ``"hypercharge"``) at the same
  sqrt(s): the cross-section limits stay; each coupling limit becomes the
  coupling of the new model with that cross-section at the same mass, i.e.
  g_new = g_old sqrt(sigma_old(m, g=1) / sigma_new(m, g=1));
- another sqrt(s): the limits on N_sig stay (the same analysis with the same
  efficiency x luminosity), so with a flat efficiency (the default: the
  efficiency does not depend on sqrt(s) or on the decay length, ALPs decay
  promptly) the cross-section limits stay as well and the couplings follow
  from the cross-section ratio at the same mass at the two energies;
- with ``lifetime_efficiency(m, decay_length_m)``, the fraction (0..1) of
  the result's efficiency kept for ALPs with mean lab decay length l (e.g.
  1 - exp(-R / l) for decays inside a radius R): N(m, g) = sigma(m, g) eps L
  f(m, l(m, g)) with l from the new model's width to photons and beta gamma =
  p/m of the ALP at the target sqrt(s) (CM momentum; the boost of the CM frame
  neglected unless ``beta_gamma`` is given). The coupling limit is the
  smallest g with N(m, g) = N_UL (f must not decrease with g, true for any
  "decays inside a volume around the beams" efficiency); the recorded
  cross-section limit is then sigma(m, g_UL) = sigma_UL / f.

The recast result is a copy of the result with the coupling and
cross-section limits replaced, ``coupling`` and ``sqrt_s`` set to the target,
and a ``recast`` list recording every step (from, to, the efficiency
assumption, the ISR factor). Round trips without a lifetime efficiency or ISR
give back the same numbers bit for bit (couplings are always recomputed from
the cross-section limits).
"""

from __future__ import annotations

import copy
import json
import logging
import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from signal_models import alp
from signal_models._common.version import __version__

from .errors import ScanInputError

logger = logging.getLogger(__name__)

__all__ = ["RecastError", "convert_coupling", "recast", "read_result", "result_coupling_model"]

_LIMIT_KEYS = (("ul_xsec_pb_obs", "ul_g_gev_obs"), ("ul_xsec_pb_exp", "ul_g_gev_exp"), ("counting_xsec_pb", "counting_g_gev"))

FLAT_EFFICIENCY = ("flat: the result's efficiency at every sqrt(s) and decay length (prompt ALP decays assumed; "
                   "the limits on N_sig and on the cross-section are kept)")


class RecastError(ScanInputError):
    """A result that cannot be recast, or an impossible target (the message names the value)."""


def result_coupling_model(result: Mapping[str, Any]) -> str:
    """The coupling model of a result: its ``coupling`` key, else ``config.coupling``, else ``"photon"``."""
    config = result.get("config")
    return str(result.get("coupling") or (config.get("coupling") if isinstance(config, Mapping) else None) or "photon")


def read_result(path: str | Path) -> dict[str, Any]:
    """A scan (or projection) result file, checked to be one.

    Raises
    ------
    RecastError
        Missing file, not JSON, or not a result (no ``points`` list of masses, no ``sqrt_s``).
    """
    path = Path(path)
    if not path.is_file():
        raise RecastError(f"{path}: result file not found")
    try:
        result = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError, OSError) as exc:
        raise RecastError(f"{path}: not a JSON scan result ({exc})") from None
    _check_result(result, str(path))
    return result


def _check_result(result: Any, where: str) -> None:
    if not isinstance(result, Mapping):
        raise RecastError(f"{where}: not a scan result (a JSON {type(result).__name__}, not an object)")
    missing = [k for k in ("points", "sqrt_s", "luminosity_fb") if k not in result]
    if missing:
        raise RecastError(f"{where}: not a scan result, missing key(s) {', '.join(missing)}")
    pts = result["points"]
    if not isinstance(pts, list) or not all(isinstance(p, Mapping) and isinstance(p.get("mass"), (int, float)) for p in pts):
        raise RecastError(f"{where}: not a scan result ('points' must be a list of points with a 'mass')")
    if not isinstance(result["sqrt_s"], (int, float)) or not result["sqrt_s"] > 0:
        raise RecastError(f"{where}: not a scan result (sqrt_s = {result['sqrt_s']!r})")


def convert_coupling(masses: ArrayLike, g: ArrayLike, *, sqrt_s: float, from_coupling: str, to_coupling: str,
                     to_sqrt_s: float | None = None) -> NDArray[np.float64]:
    """Coupling limits g (GeV^-1) of ``from_coupling`` at ``sqrt_s`` as limits of ``to_coupling`` at ``to_sqrt_s``, same cross-section.

    g_new = g sqrt(sigma_from(m, 1, sqrt_s) / sigma_to(m, 1, to_sqrt_s)) (Born, prompt decays), e.g.
    to draw a published photon-coupling curve in the (m_a, g_aBB) plane.
    ``masses`` and ``g`` broadcast; raises ``signal_models.alp.ALPError`` for an unknown model or a mass above threshold.
    """
    m = np.asarray(masses, dtype=float)
    xsec = alp.cross_section_pb(m, g, sqrt_s, coupling=from_coupling)
    return alp.coupling_from_cross_section(xsec, np.broadcast_to(m, xsec.shape), sqrt_s if to_sqrt_s is None else to_sqrt_s,
                                           coupling=to_coupling)


def _lifetime_couplings(m: NDArray, xsec: NDArray, g_prompt: NDArray, *, model: alp.CouplingModel, sqrt_s: float, per_g2: NDArray,
                        factor: Callable[[NDArray, NDArray], NDArray], beta_gamma: NDArray) -> tuple[NDArray, NDArray]:
    """Smallest g with sigma(m, g) f(m, l(m, g)) = xsec (bisection in log g, all values at once); returns g and f there."""

    def f_of(g: NDArray) -> NDArray:
        f = np.asarray(factor(m, model.decay_length(m, g, beta_gamma)), dtype=float).reshape(g.shape)
        if np.any(~np.isfinite(f)) or np.any(f < 0) or np.any(f > 1 + 1e-12):
            raise RecastError("lifetime_efficiency must return values in [0, 1] (the fraction of the result's efficiency kept)")
        return f

    def excess(g: NDArray) -> NDArray:
        with np.errstate(divide="ignore"):
            return np.log(per_g2 * g * g * f_of(g)) - np.log(xsec)

    lo = g_prompt.copy()
    hi = g_prompt * 2.0
    for _ in range(200):  # f <= 1: the limit is at or above the prompt one
        short = excess(hi) < 0
        if not short.any():
            break
        hi = np.where(short, hi * 4.0, hi)
    else:
        raise RecastError("lifetime_efficiency stays ~0 at every coupling: no coupling is excluded")
    for _ in range(80):
        mid = np.sqrt(lo * hi)
        below = excess(mid) < 0
        lo, hi = np.where(below, mid, lo), np.where(below, hi, mid)
    return hi, f_of(hi)


def recast(
    result: Mapping[str, Any],
    *,
    coupling: str | None = None,
    sqrt_s: float | None = None,
    lifetime_efficiency: Callable[[NDArray, NDArray], NDArray] | None = None,
    beta_gamma: Callable[[NDArray], NDArray] | None = None,
    isr: bool = False,
    isr_x_max: float | None = None,
    lifetime_note: str | None = None,
) -> dict[str, Any]:
    """The result with its limits recast to ``coupling`` and/or ``sqrt_s`` (module docstring).

    Parameters
    ----------
    result : mapping
        A scan result (``scans.scan``, ``bumphunt scan``) or a projection (``Projection.to_result``).
    coupling : {"photon", "hypercharge"}, optional
        Target coupling model (default: the result's).
    sqrt_s : float, optional
        Target CM energy in GeV (default: the result's); every mass of the result must lie below it.
    lifetime_efficiency : callable, optional
        f(m GeV, mean lab decay length m) in [0, 1]: the fraction of the result's efficiency kept
        (default: flat, prompt decays).
    beta_gamma : callable, optional
        ALP beta*gamma versus mass at the target (default p/m with the CM momentum).
    isr, isr_x_max : optional
        Include ``signal_models.alp.isr_correction_factor`` at the target in the coupling conversion.
    lifetime_note : str, optional
        How ``lifetime_efficiency`` was defined (recorded; e.g. "decays within 1.25 m").

    Returns
    -------
    dict
        A new result (the input is not changed).

    Raises
    ------
    RecastError
        Not a scan result, or a mass of the result at or above the target sqrt(s) (the message names the mass).
    signal_models.alp.ALPError
        An unknown coupling model (the message lists the known ones).
    """
    _check_result(result, "recast")
    old_model = alp.coupling_model(result_coupling_model(result))
    new_model = alp.coupling_model(old_model.name if coupling is None else coupling)
    old_sqrt_s = float(result["sqrt_s"])
    new_sqrt_s = old_sqrt_s if sqrt_s is None else float(sqrt_s)
    if not (math.isfinite(new_sqrt_s) and new_sqrt_s > 0):
        raise RecastError(f"recast: target sqrt(s) must be > 0 GeV, got {sqrt_s!r}")
    masses = np.array([float(p["mass"]) for p in result["points"]])
    above = masses[masses >= new_sqrt_s]
    if above.size:
        raise RecastError(f"recast: m_a = {above[0]:g} GeV of the result is at or above the target sqrt(s) = {new_sqrt_s:g} GeV "
                          f"(no e+e- -> gamma a there)")
    out = copy.deepcopy(dict(result))
    isr_factor = alp.isr_correction_factor(masses, new_sqrt_s, coupling=new_model, x_max=isr_x_max) if isr and masses.size else np.ones(masses.size)
    per_g2 = alp.cross_section_pb(masses, 1.0, new_sqrt_s, coupling=new_model) * isr_factor
    bg = None
    if lifetime_efficiency is not None and masses.size:
        bg = np.asarray(beta_gamma(masses), dtype=float) if beta_gamma is not None else alp.alp_momentum_cm(masses, new_sqrt_s) / masses
    for i, p in enumerate(out["points"]):
        for xs_key, g_key in _LIMIT_KEYS:
            if xs_key not in p:
                continue
            xs = np.asarray(p[xs_key], dtype=float)
            if not np.all(np.isfinite(xs)):
                continue
            m_i = np.full(xs.shape, masses[i])
            g = alp.coupling_from_cross_section(xs / isr_factor[i] if isr else xs, m_i, new_sqrt_s, coupling=new_model)
            if bg is not None:
                g, f = _lifetime_couplings(m_i, xs, g, model=new_model, sqrt_s=new_sqrt_s, per_g2=np.full(xs.shape, per_g2[i]),
                                           factor=lifetime_efficiency, beta_gamma=np.full(xs.shape, bg[i]))
                p[xs_key] = (xs / f).tolist()
                p.setdefault("decay_acceptance", {})[xs_key] = f.tolist()
                err_key = f"{xs_key}_err"  # toy limits' Monte Carlo errors scale with the limit
                if err_key in p:
                    p[err_key] = (np.asarray(p[err_key], dtype=float) / f).tolist()
            p[g_key] = g.tolist()
    step = {
        "from": {"coupling": old_model.name, "sqrt_s": old_sqrt_s},
        "to": {"coupling": new_model.name, "sqrt_s": new_sqrt_s},
        "efficiency": FLAT_EFFICIENCY if lifetime_efficiency is None else
        ("lifetime-dependent: the result's efficiency times the user function f(m, decay length)"
         + (f" ({lifetime_note})" if lifetime_note else "") + "; beta*gamma " + ("from the user function" if beta_gamma else "= p/m in the CM")),
        "cross_section": "Born" + (f" x ISR factor (x_max = {isr_x_max})" if isr else ""),
        "bumphunt_version": __version__,
    }
    out["recast"] = [*list(result.get("recast") or []), step]
    out["coupling"] = new_model.name
    out["sqrt_s"] = new_sqrt_s
    logger.info("recast %d points: %s at %.6g GeV -> %s at %.6g GeV", masses.size, old_model.name, old_sqrt_s, new_model.name, new_sqrt_s)
    return out

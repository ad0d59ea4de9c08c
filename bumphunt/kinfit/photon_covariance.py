"""Photon covariance model: each photon's 3x3 covariance in (E, theta, phi) for the kinematic fit.

``PhotonCovarianceModel`` provides it

* by default from the ECL parametrisation of ``bumphunt.events.detector.Resolution``
  (barrel formula, endcap factors), per ECL region;
* or from per-photon covariances stored in the ntuple (``gamma_cov_*``
  branches, the ``cov`` array of a three-photon dict) when present;
* in both cases multiplied, for the energy, by calibrated per-region factors
  ``s_r (E / 1 GeV)^k_r`` (``k_r = 0`` for the plain scale model), fitted by
  ``bumphunt.kinfit.calibration.calibrate`` and saved as / loaded from JSON.

Units: GeV, rad.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from signal_models._common.version import __version__

from ..errors import InputError
from ..events.detector import REGION_BARREL, REGION_BWD, REGION_FWD, REGION_NAMES, REGION_NONE, Resolution, ecl_region

__all__ = ["PhotonCovarianceModel", "ECL_REGIONS"]

#: The ECL regions that carry calibration factors (photons in the gaps use the barrel's).
ECL_REGIONS = (REGION_FWD, REGION_BARREL, REGION_BWD)
_FILE_KIND = "bumphunt.photon_covariance_model"


def _photon_array(value: Any, name: str, shape: tuple[int, ...] | None) -> NDArray[np.float64]:
    """A three-photon field as a float array of shape (n, 3) (``shape`` when given); ``InputError`` naming it otherwise."""
    try:
        a = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise InputError(f"three-photon events: {name!r} must be a numeric array of shape (n, 3), got {type(value).__name__}") from None
    if a.ndim != 2 or a.shape[1] != 3 or (shape is not None and a.shape != shape):
        raise InputError(f"three-photon events: {name!r} must have shape {shape or '(n, 3)'} (three photons per event), got {a.shape}")
    return a


@dataclass(frozen=True)
class PhotonCovarianceModel:
    """Photon covariance in (E, theta, phi): parametrisation or ntuple, times calibration.

    Parameters
    ----------
    resolution : Resolution
        The ECL parametrisation used when the ntuple carries no covariance.
    use_ntuple : bool
        Take per-photon covariances from the input (``cov``) when present.
    energy_scale, energy_power : dict
        Calibration per ECL region code: sigma_E is multiplied by
        ``energy_scale[r] * E**energy_power[r]`` (E in GeV). Defaults 1 and 0.
    energy_bias : dict
        Measured relative energy-scale offsets per region (information only;
        the covariance does not use them).
    meta : dict
        Provenance (calibration inputs, uncertainties, version).
    """

    resolution: Resolution = field(default_factory=Resolution)
    use_ntuple: bool = True
    energy_scale: dict[int, float] = field(default_factory=lambda: {r: 1.0 for r in ECL_REGIONS})
    energy_power: dict[int, float] = field(default_factory=lambda: {r: 0.0 for r in ECL_REGIONS})
    energy_bias: dict[int, float] = field(default_factory=lambda: {r: 0.0 for r in ECL_REGIONS})
    meta: dict[str, Any] = field(default_factory=dict)

    # --- evaluation ---------------------------------------------------------
    def energy_factor(self, E: ArrayLike, region: ArrayLike) -> NDArray[np.float64]:
        """Calibration factor multiplying sigma_E (1 for the uncalibrated model)."""
        E = np.asarray(E, dtype=float)
        region = np.broadcast_to(np.asarray(region), E.shape)
        region = np.where(region == REGION_NONE, REGION_BARREL, region)  # gaps use the barrel values
        s = np.ones(E.shape)
        k = np.zeros(E.shape)
        for code in ECL_REGIONS:
            sel = region == code
            s = np.where(sel, float(self.energy_scale.get(code, 1.0)), s)
            k = np.where(sel, float(self.energy_power.get(code, 0.0)), k)
        if np.any(k != 0):
            s = s * np.clip(E, self.resolution.min_energy, None) ** k
        return s

    def covariance(self, E: ArrayLike, region: ArrayLike, *, cov: ArrayLike | None = None) -> NDArray[np.float64]:
        """Photon covariances, shape ``E.shape + (3, 3)``.

        Parameters
        ----------
        E : array_like
            Photon energies in GeV.
        region : array_like of int
            ECL region codes (gaps use the barrel values).
        cov : array_like, optional
            Per-photon covariances from the ntuple (``E.shape + (3, 3)``),
            used instead of the parametrisation when ``use_ntuple``.
        """
        E = np.asarray(E, dtype=float)
        region = np.asarray(region)
        if cov is not None and self.use_ntuple:
            out = np.array(cov, dtype=float, copy=True)
            if out.shape != E.shape + (3, 3):
                raise InputError(f"photon covariance must have shape {E.shape + (3, 3)}, got {out.shape}")
        else:
            reg = np.where(region == REGION_NONE, REGION_BARREL, region)
            out = self.resolution.covariance(E, reg)
        f = self.energy_factor(E, region)
        out[..., 0, :] *= f[..., None]
        out[..., :, 0] *= f[..., None]
        return out

    def sigma_energy(self, E: ArrayLike, region: ArrayLike) -> NDArray[np.float64]:
        """Calibrated sigma_E (GeV) from the parametrisation."""
        E = np.asarray(E, dtype=float)
        region = np.asarray(region)
        reg = np.where(region == REGION_NONE, REGION_BARREL, region)
        return self.resolution.sigmas(E, reg)[0] * self.energy_factor(E, region)

    def event_covariance(self, events: dict[str, NDArray]) -> NDArray[np.float64]:
        """Covariances (n, 3, 3, 3) for a three-photon dict (``E``, ``region``, optional ``cov``)."""
        for key in ("E",):
            if key not in events:
                raise InputError(f"three-photon events lack the field {key!r} needed for the photon covariance")
        E = _photon_array(events["E"], "E", None)
        region = events.get("region")
        if region is None:
            if "theta" not in events:
                raise InputError("three-photon events need 'region' or 'theta' for the photon covariance")
            region = ecl_region(_photon_array(events["theta"], "theta", E.shape))
        else:
            try:
                region = np.asarray(region)
            except (TypeError, ValueError):
                region = np.asarray(None)
            if region.shape != E.shape or region.dtype.kind not in "iuf":
                raise InputError(f"three-photon events: 'region' must be integer codes of shape {E.shape}, got {region.dtype} of shape {region.shape}")
        cov = events.get("cov")
        if cov is not None:
            try:
                cov = np.asarray(cov, dtype=float)
            except (TypeError, ValueError):
                raise InputError(f"three-photon events: 'cov' must be a numeric array of shape {E.shape + (3, 3)}") from None
        return self.covariance(E, region, cov=cov)

    # --- persistence ------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        res = self.resolution
        return {
            "kind": _FILE_KIND,
            "bumphunt_version": __version__,
            "resolution": {
                "endcap_energy_factor": res.endcap_energy_factor,
                "endcap_angle_factor": res.endcap_angle_factor,
                "energy_scale": {str(k): float(v) for k, v in res.energy_scale.items()},
                "min_energy": res.min_energy,
            },
            "use_ntuple": self.use_ntuple,
            "energy_model": "scale * E^power",
            "regions": {
                str(r): {
                    "name": REGION_NAMES[r],
                    "scale": float(self.energy_scale.get(r, 1.0)),
                    "power": float(self.energy_power.get(r, 0.0)),
                    "bias": float(self.energy_bias.get(r, 0.0)),
                }
                for r in ECL_REGIONS
            },
            "meta": self.meta,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any], *, source: str = "<dict>") -> PhotonCovarianceModel:
        if not isinstance(d, dict) or d.get("kind") != _FILE_KIND:
            raise InputError(f"{source}: not a photon covariance model file (expected kind {_FILE_KIND!r})")
        try:
            r = d.get("resolution", {})
            res = Resolution(
                endcap_energy_factor=float(r.get("endcap_energy_factor", 1.5)),
                endcap_angle_factor=float(r.get("endcap_angle_factor", 1.3)),
                energy_scale={int(k): float(v) for k, v in r.get("energy_scale", {}).items()} or {c: 1.0 for c in ECL_REGIONS},
                min_energy=float(r.get("min_energy", 0.05)),
            )
            regions = d.get("regions", {})
            scale = {c: float(regions.get(str(c), {}).get("scale", 1.0)) for c in ECL_REGIONS}
            power = {c: float(regions.get(str(c), {}).get("power", 0.0)) for c in ECL_REGIONS}
            bias = {c: float(regions.get(str(c), {}).get("bias", 0.0)) for c in ECL_REGIONS}
            meta = dict(d.get("meta", {}))
        except (TypeError, ValueError, AttributeError, OverflowError) as exc:
            raise InputError(f"{source}: invalid photon covariance model: {exc}") from exc
        for key in ("endcap_energy_factor", "endcap_angle_factor", "min_energy"):
            value = getattr(res, key)
            if not (np.isfinite(value) and (value > 0 or (key == "min_energy" and value == 0))):
                raise InputError(f"{source}: resolution.{key} must be a positive number, got {value}")
        for code, value in res.energy_scale.items():
            if not (np.isfinite(value) and value > 0):
                raise InputError(f"{source}: resolution.energy_scale.{code} must be a positive number, got {value}")
        for c in ECL_REGIONS:
            if not (np.isfinite(scale[c]) and scale[c] > 0):
                raise InputError(f"{source}: regions.{c}.scale must be a positive number, got {scale[c]}")
            if not np.isfinite(power[c]):
                raise InputError(f"{source}: regions.{c}.power must be finite, got {power[c]}")
            if not np.isfinite(bias[c]):
                raise InputError(f"{source}: regions.{c}.bias must be finite, got {bias[c]}")
        return cls(resolution=res, use_ntuple=bool(d.get("use_ntuple", True)), energy_scale=scale,
                   energy_power=power, energy_bias=bias, meta=meta)

    def save(self, path: str | Path) -> Path:
        """Write the model as JSON."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2, sort_keys=False))
        return path

    @classmethod
    def load(cls, path: str | Path) -> PhotonCovarianceModel:
        """Read a model (e.g. written by ``bumphunt calibrate-photons``)."""
        path = Path(path)
        try:
            d = json.loads(path.read_text())
        except FileNotFoundError as exc:
            raise InputError(f"{path}: photon covariance model file not found") from exc
        except OSError as exc:
            raise InputError(f"{path}: cannot read the photon covariance model file: {exc}") from exc
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
            raise InputError(f"{path}: not valid JSON ({exc})") from exc
        return cls.from_dict(d, source=str(path))

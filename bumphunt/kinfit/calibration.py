"""Calibration of the photon energy resolution from e+e- -> mu+ mu- gamma.

In e+e- -> mu+ mu- gamma the photon energy is predicted from the beams and
the two muon tracks: the missing momentum ``p_miss = P_beam - p(mu+) -
p(mu-)`` is the photon momentum, so ``E_pred = p_miss . n`` with ``n`` the
measured photon direction (``predict_photon_energy``). Angular errors of
``n`` enter only at second order (``p_miss`` is parallel to ``n``), so the
prediction's resolution comes from the muon momenta (``TrackResolution``)
and the beam-energy spread, both known, and is propagated event by event:
``var_pred = n^T (C1 + C2 + C_beam) n``. The residual ``E_meas - E_pred`` is
then Gaussian with variance ``(f_r(E) sigma_nom(E))^2 + var_pred`` and mean
``b_r E_pred`` (an energy-scale offset), and the factors ``f_r`` and offsets
``b_r`` are fitted per region by an unbinned maximum-likelihood fit with
iminuit (``calibrate``). Per energy bin the same fit with a single free
factor gives the points of the resolution-versus-energy plot
(``bumphunt.kinfit.plots.plot_calibration``). The result is a calibrated
``PhotonCovarianceModel``.

Units: GeV, rad.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ..errors import InputError
from ..events.detector import REGION_NAMES, REGION_NONE, TrackResolution, ecl_region
from ..kinematics import Beam
from .photon_covariance import ECL_REGIONS, PhotonCovarianceModel

logger = logging.getLogger(__name__)

__all__ = ["predict_photon_energy", "control_sample_from_events", "PhotonCalibration", "calibrate"]


# ----------------------------------------------------------------------------
# prediction of the photon energy in mu mu gamma
# ----------------------------------------------------------------------------


def predict_photon_energy(
    theta: ArrayLike,
    phi: ArrayLike,
    mu_p3: ArrayLike,
    beam: Beam,
    *,
    track_resolution: TrackResolution | None = None,
    beam_spread: bool = True,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Photon energy predicted from the muons and the beams, with its resolution.

    Parameters
    ----------
    theta, phi : array_like, shape (n,)
        Measured photon direction (rad).
    mu_p3 : array_like, shape (n, 2, 3)
        Measured muon momenta (GeV).
    beam : Beam
    track_resolution : TrackResolution, optional
        Muon momentum resolution used to propagate the prediction error.
    beam_spread : bool
        Include the beam-energy spread in the prediction error.

    Returns
    -------
    E_pred, sigma_pred : ndarray, shape (n,)
        ``(P_beam - p1 - p2) . n`` and its standard deviation (GeV).
    """
    track_resolution = TrackResolution() if track_resolution is None else track_resolution
    theta = np.asarray(theta, dtype=float)
    phi = np.asarray(phi, dtype=float)
    mu = np.asarray(mu_p3, dtype=float)
    if mu.shape != theta.shape + (2, 3):
        raise InputError(f"muon momenta must have shape {theta.shape + (2, 3)}, got {mu.shape}")
    n = np.stack([np.sin(theta) * np.cos(phi), np.sin(theta) * np.sin(phi), np.cos(theta)], axis=-1)
    p_miss = beam.p4[:3] - mu.sum(axis=-2)
    e_pred = np.sum(p_miss * n, axis=-1)
    C = track_resolution.covariance(mu).sum(axis=-3)
    var = np.einsum("...i,...ij,...j->...", n, C, n)
    if beam_spread:
        for p4, e, spread in ((beam.p4_her, beam.e_her, beam.e_spread_her), (beam.p4_ler, beam.e_ler, beam.e_spread_ler)):
            var = var + (spread * e * (n @ (p4[:3] / e))) ** 2
    return e_pred, np.sqrt(var)


def control_sample_from_events(events: Any, *, beam: Beam) -> dict[str, NDArray]:
    """Select mu mu gamma control events from raw events and build the calibration inputs.

    Keeps events with exactly two tracks of opposite charge and at least one
    photon in the ECL; the most energetic photon is the calibration photon.

    Parameters
    ----------
    events : mapping
        Raw events as returned by ``bumphunt.events.read_events`` (jagged ``gamma``
        and ``track`` records) or a dict of jagged ``gamma_*``/``track_*``
        arrays as read from the tree by uproot.

    Returns
    -------
    dict
        ``E, theta, phi, region`` (n,), ``mu_p3`` (n, 2, 3), ``cov`` (n, 3, 3)
        when the covariance branches exist, and ``mc_E`` when present.
    """
    import awkward as ak

    def field_(rec: str, name: str) -> Any:
        try:
            return events[rec][name]
        except (KeyError, TypeError, ValueError, AttributeError):
            pass
        key = f"{rec}_{name}"
        try:
            return events[key]
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"control sample: branch {key!r} not found") from exc

    gE = ak.Array(field_("gamma", "E"))
    gth = ak.Array(field_("gamma", "theta"))
    gph = ak.Array(field_("gamma", "phi"))
    tpx, tpy, tpz = (ak.Array(field_("track", c)) for c in ("px", "py", "pz"))
    tq = ak.Array(field_("track", "charge"))
    in_ecl = ak.Array(ecl_region(ak.flatten(gth).to_numpy()) != REGION_NONE)
    in_ecl = ak.unflatten(in_ecl, ak.num(gth))
    gE_sel = ak.where(in_ecl, gE, -1.0)
    has_photon = ak.fill_none(ak.max(gE_sel, axis=1), -1.0) > 0
    ok = ak.to_numpy((ak.num(tq) == 2) & (ak.sum(tq, axis=1) == 0) & has_photon).astype(bool)
    best = ak.argmax(gE_sel[ok], axis=1, keepdims=True)
    out: dict[str, NDArray] = {}
    for name, arr in (("E", gE), ("theta", gth), ("phi", gph)):
        out[name] = ak.to_numpy(ak.flatten(arr[ok][best])).astype(float)
    out["region"] = ecl_region(out["theta"]).astype(np.int32)
    mu = np.stack([ak.to_numpy(c[ok]) for c in (tpx, tpy, tpz)], axis=-1).astype(float)  # (n, 2, 3)
    out["mu_p3"] = mu
    try:
        from ..events.schema import COV_FIELDS

        cov = np.zeros((out["E"].size, 3, 3))
        for name, a, b in COV_FIELDS:
            v = ak.to_numpy(ak.flatten(ak.Array(field_("gamma", name))[ok][best])).astype(float)
            cov[:, a, b] = v
            cov[:, b, a] = v
        out["cov"] = cov
    except InputError:
        pass
    try:
        out["mc_E"] = ak.to_numpy(ak.flatten(ak.Array(field_("gamma", "mc_E"))[ok][best])).astype(float)
    except InputError:
        pass
    logger.info("control sample: %d of %d events selected as mu mu gamma", int(ok.sum()), len(ok))
    return out


# ----------------------------------------------------------------------------
# calibration fit
# ----------------------------------------------------------------------------


@dataclass(frozen=True)
class PhotonCalibration:
    """Result of ``calibrate``: per-region parameters with uncertainties and binned checks.

    Attributes
    ----------
    model : PhotonCovarianceModel
        The calibrated model (fit details in ``model.meta["calibration"]``).
    params : dict
        Per ECL region code: ``scale``, ``power``, ``bias`` with ``*_err``,
        ``n_events``, ``calibrated`` (False when the region had too few events).
    bins : list of dict
        The binned check: per (region, energy bin in GeV) the fitted factor
        and the relative resolution with its nominal and prediction parts.
    n_events : int
        Control events used.
    fit_valid : bool
        All per-region fits valid (iminuit).
    """

    model: PhotonCovarianceModel
    params: dict[int, dict[str, float]]
    bins: list[dict[str, float]]
    n_events: int
    fit_valid: bool

    def save(self, path: str | Path) -> Path:
        """Write the calibrated ``PhotonCovarianceModel`` (with uncertainties and bins in ``meta``)."""
        return self.model.save(path)


def _nll_mixture(x: NDArray, mu: NDArray, var: NDArray, window: NDArray, f_out: float, w_out: float) -> float:
    """Negative log-likelihood of residuals ``x`` in ``|x| < window``.

    Core: Gaussian(mu, var); outliers (fraction ``f_out``): Gaussian with the
    same mean and ``w_out`` times the core width. Both are normalised on the
    window, since events outside it were dropped before the fit.
    """
    from scipy.special import ndtr

    sd = np.sqrt(var)
    z = (x - mu) / sd
    zlo = (-window - mu) / sd
    zhi = (window - mu) / sd
    core = np.exp(-0.5 * z * z) / sd / np.clip(ndtr(zhi) - ndtr(zlo), 1e-300, None)
    if f_out > 0:
        zo = z / w_out
        out = np.exp(-0.5 * zo * zo) / (sd * w_out) / np.clip(ndtr(zhi / w_out) - ndtr(zlo / w_out), 1e-300, None)
        dens = (1 - f_out) * core + f_out * out
    else:
        dens = core
    return float(-np.sum(np.log(np.clip(dens, 1e-300, None))))


def _region_nll(x: NDArray, e_pred: NDArray, s_nom: NDArray, s_pred: NDArray,
                window: NDArray) -> Callable[[float, float, float, float, float], float]:
    """NLL of one region's residuals ``x`` as a function of the calibration parameters.

    Parameters of the returned function (iminuit reads their names): ``s``,
    ``k`` (sigma_E factor ``s E^k``), ``b`` (relative energy offset),
    ``f_out``, ``w_out`` (outlier fraction and relative width).
    """
    log_e = np.log(e_pred)

    def nll(s: float, k: float, b: float, f_out: float, w_out: float) -> float:
        var = (s * np.exp(k * log_e) * s_nom) ** 2 + s_pred**2
        return _nll_mixture(x, b * e_pred, var, window, f_out, w_out)

    return nll


def _bin_nll(x: NDArray, e_pred: NDArray, s_nom: NDArray, s_pred: NDArray, window: NDArray, bias: float,
             f_out: float, w_out: float) -> Callable[[float], float]:
    """NLL of one energy bin's residuals as a function of a single sigma_E factor ``s``."""

    def nll(s: float) -> float:
        return _nll_mixture(x, bias * e_pred, (s * s_nom) ** 2 + s_pred**2, window, f_out, w_out)

    return nll


def calibrate(
    control: dict[str, NDArray],
    *,
    beam: Beam,
    base: PhotonCovarianceModel | None = None,
    nominal: str = "parametrisation",
    track_resolution: TrackResolution | None = None,
    energy_power: bool = False,
    energy_bins: ArrayLike | None = None,
    min_events: int = 50,
    max_pull: float = 4.0,
    robust: bool = False,
) -> PhotonCalibration:
    """Fit the photon energy resolution per ECL region from mu mu gamma control events.

    Parameters
    ----------
    control : dict
        ``E, theta, phi, region`` (n,) of the photon and ``mu_p3`` (n, 2, 3)
        (see ``control_sample_from_events``); ``cov`` (n, 3, 3) optional.
    beam : Beam
    base : PhotonCovarianceModel, optional
        Model providing the parametrisation (default ``Resolution()``).
    nominal : {"parametrisation", "ntuple"}
        What the fitted factors multiply: the parametrised sigma_E (default;
        the calibrated model then uses the parametrisation times the factors
        and ignores ntuple covariances) or the per-photon sigma_E stored in
        the ntuple (``cov`` of the control sample; the calibrated model then
        scales ntuple covariances).
    track_resolution : TrackResolution, optional
        Muon momentum resolution for the prediction error.
    energy_power : bool
        Also fit an exponent per region, ``f_r = s_r E^k_r``.
    energy_bins : array_like, optional
        Edges (GeV) of the energy bins of the binned check (default 8 bins,
        log-spaced over the sample).
    min_events : int
        Regions with fewer events keep factor 1 (and are reported).
    max_pull : float
        Events whose residual exceeds this many expected sigmas (nominal) are
        dropped before the fit (tails from control events whose photon is not
        the radiated one: beam background, merged clusters); the likelihood
        is normalised on the remaining window, so the cut does not bias the
        Gaussian core. On the toy MC control sample 4 gives an unbiased
        barrel factor; looser windows let the contamination widen the fit.
    robust : bool
        Add a wide outlier component (free fraction and width, same mean).
        Off by default: on the toy MC it absorbs part of the Gaussian core
        and underestimates the resolution.

    Returns
    -------
    PhotonCalibration
    """
    from iminuit import Minuit

    base = PhotonCovarianceModel() if base is None else base
    if nominal not in ("parametrisation", "ntuple"):
        raise InputError(f"calibrate: nominal must be 'parametrisation' or 'ntuple', got {nominal!r}")
    use_ntuple = nominal == "ntuple"
    if use_ntuple and control.get("cov") is None:
        raise InputError("calibrate: nominal='ntuple' needs per-photon covariances ('cov', gamma_cov_* branches) in the control sample")
    for key in ("E", "theta", "phi", "mu_p3"):
        if key not in control:
            raise InputError(f"control sample lacks the field {key!r}")
    E = np.asarray(control["E"], dtype=float)
    theta = np.asarray(control["theta"], dtype=float)
    phi = np.asarray(control["phi"], dtype=float)
    region = np.asarray(control.get("region", ecl_region(theta)))
    good = np.isfinite(E) & (E > 0) & np.isfinite(theta) & np.isfinite(phi)
    e_pred, s_pred = predict_photon_energy(theta, phi, control["mu_p3"], beam, track_resolution=track_resolution)
    good &= np.isfinite(e_pred) & (e_pred > base.resolution.min_energy)
    nominal_model = PhotonCovarianceModel(resolution=base.resolution, use_ntuple=use_ntuple)
    if use_ntuple:
        s_nom = np.sqrt(np.asarray(control["cov"], dtype=float)[:, 0, 0])
    else:
        s_nom = nominal_model.sigma_energy(e_pred, region)
    x = E - e_pred
    window = max_pull * np.sqrt(s_nom**2 + s_pred**2)
    good &= np.abs(x) < window
    logger.info("calibration: %d of %d control events used", int(good.sum()), E.size)

    params: dict[int, dict[str, float]] = {}
    fit_valid = True
    scale, power, bias = {}, {}, {}
    outl: dict[int, tuple[float, float]] = {}
    for code in ECL_REGIONS:
        sel = good & (region == code)
        n_r = int(sel.sum())
        if n_r < min_events:
            logger.warning("calibration: only %d events in %s, keeping factor 1", n_r, REGION_NAMES[code])
            params[code] = {"scale": 1.0, "scale_err": float("nan"), "power": 0.0, "power_err": float("nan"),
                            "bias": 0.0, "bias_err": float("nan"), "n_events": n_r, "calibrated": False}
            scale[code], power[code], bias[code] = 1.0, 0.0, 0.0
            continue
        nll = _region_nll(x[sel], e_pred[sel], s_nom[sel], s_pred[sel], window[sel])
        m = Minuit(nll, s=1.0, k=0.0, b=0.0, f_out=0.05 if robust else 0.0, w_out=4.0)
        m.errordef = Minuit.LIKELIHOOD
        m.limits["s"] = (0.05, 20.0)
        m.limits["k"] = (-2.0, 2.0)
        m.limits["f_out"] = (0.0, 0.5)
        m.limits["w_out"] = (2.0, 50.0)
        if not energy_power:
            m.fixed["k"] = True
        if not robust:
            m.fixed["f_out"] = True
            m.fixed["w_out"] = True
        m.migrad()
        m.hesse()
        fit_valid &= bool(m.valid)
        params[code] = {
            "scale": float(m.values["s"]), "scale_err": float(m.errors["s"]),
            "power": float(m.values["k"]), "power_err": float(m.errors["k"]) if energy_power else 0.0,
            "bias": float(m.values["b"]), "bias_err": float(m.errors["b"]), "n_events": n_r,
            "outlier_fraction": float(m.values["f_out"]), "outlier_width": float(m.values["w_out"]),
            "calibrated": True, "valid": bool(m.valid),
        }
        scale[code], power[code], bias[code] = params[code]["scale"], params[code]["power"], params[code]["bias"]
        outl[code] = (params[code]["outlier_fraction"], params[code]["outlier_width"])

    # binned check: one free factor per (region, energy bin)
    if energy_bins is None:
        lo, hi = np.quantile(e_pred[good], [0.005, 0.995]) if good.any() else (0.1, 5.0)
        energy_bins = np.geomspace(max(lo, 0.05), hi, 9)
    edges = np.asarray(energy_bins, dtype=float)
    bins: list[dict[str, float]] = []
    for code in ECL_REGIONS:
        for lo, hi in zip(edges[:-1], edges[1:]):
            sel = good & (region == code) & (e_pred >= lo) & (e_pred < hi)
            if sel.sum() < max(min_events // 2, 10):
                continue
            er, snr, spr = e_pred[sel], s_nom[sel], s_pred[sel]
            f_o, w_o = outl.get(code, (0.0, 4.0))
            m = Minuit(_bin_nll(x[sel], er, snr, spr, window[sel], bias[code], f_o, w_o), s=1.0)
            m.errordef = Minuit.LIKELIHOOD
            m.limits["s"] = (0.01, 50.0)
            m.migrad()
            m.hesse()
            ec = float(np.exp(np.mean(np.log(er))))
            rel_nom = float(np.mean(snr / er))
            bins.append({
                "region": int(code), "e_lo": float(lo), "e_hi": float(hi), "e_mean": ec, "n_events": int(sel.sum()),
                "factor": float(m.values["s"]), "factor_err": float(m.errors["s"]),
                "rel_resolution": float(m.values["s"]) * rel_nom, "rel_resolution_err": float(m.errors["s"]) * rel_nom,
                "rel_resolution_nominal": rel_nom,
                "rel_prediction_resolution": float(np.mean(spr / er)),
            })
    meta = {
        "calibration": {
            "method": "unbinned Gaussian fit of E_meas - E_pred, E_pred = (P_beam - p_mu1 - p_mu2) . n_gamma",
            "n_events": int(good.sum()),
            "nominal": nominal,
            "energy_power_fitted": bool(energy_power),
            "track_resolution": (track_resolution or TrackResolution()).to_dict(),
            "beam": beam.to_dict(),
            "params": {str(k): v for k, v in params.items()},
            "bins": bins,
            "fit_valid": fit_valid,
        }
    }
    model = PhotonCovarianceModel(resolution=base.resolution, use_ntuple=use_ntuple, energy_scale=scale,
                                  energy_power=power, energy_bias=bias, meta=meta)
    return PhotonCalibration(model=model, params=params, bins=bins, n_events=int(good.sum()), fit_valid=fit_valid)

"""Photon energy response of the toy calorimeter: a Novosibirsk line shape with a low-side tail.

A CsI(Tl) calorimeter does not measure the full energy of every shower:
part of it leaks out of the back and the sides of the crystal array and into
the material between crystals, and shower fluctuations spread the rest. The
measured energy over the true energy therefore has a Gaussian-like core and a
tail on the low side. Belle II describes this ratio with the Novosibirsk
function (H. Ikeda et al., Nucl. Instrum. Meth. A 441 (2000) 401, the Belle
CsI(Tl) beam test); its photon-energy leakage calibration in basf2
(``ecl/calibration/src/eclLeakageAlgorithm.cc``) fits E_reco/E_true of
single-photon simulation with it, starting the tail parameter from its
typical value 0.4.

Convention here (the one of RooFit's ``RooNovosibirsk``): with
``z = (x - peak) / width`` the density is

    f(z) = exp(-ln(1 - tau z)^2 / (2 s0^2) - s0^2 / 2),   s0 = (2 / xi) asinh(tau xi / 2),  xi = 2 sqrt(ln 4),

for ``1 - tau z > 0`` and 0 elsewhere; ``width`` is the FWHM / 2.355 (the
Gaussian sigma of the core), and ``tau > 0`` puts the long tail on the low
side (with tau = 0.4 about 5% of showers lie more than three widths below the
peak). The toy MC draws ``E_meas = E_true (1 + (sigma_E / E) z)`` with the
peak at the true energy (the leakage calibration moves the peak there) and
the core width of the basf2 resolution parametrisation, so the core is
unchanged and the mean lies below the true energy.

Sampling is by the inverse of the numerically integrated CDF of ``f``: the
standardised shape depends on ``tau`` only, so one table per ``tau`` serves
every photon (written by hand: neither numpy nor scipy has this distribution).
"""

from __future__ import annotations

import functools
import math

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["novosibirsk_density", "novosibirsk_quantile", "sample_response"]

_XI = 2.0 * math.sqrt(math.log(4.0))
#: lower end of the tabulated response, in core widths below the peak (the tail beyond holds < 1e-12 for tau <= 1)
_Z_MIN = -60.0
_N_TABLE = 60_001


def novosibirsk_density(z: ArrayLike, tau: float) -> NDArray[np.float64]:
    """Unnormalised Novosibirsk density at standardised ``z = (x - peak) / width`` (1 at the peak).

    Parameters
    ----------
    z : array-like
        Distance from the peak in core widths.
    tau : float
        Tail parameter (> 0: low-side tail; 0: a unit Gaussian).
    """
    z = np.asarray(z, dtype=float)
    if tau == 0.0:
        return np.exp(-0.5 * z * z)
    s0 = (2.0 / _XI) * math.asinh(tau * _XI / 2.0)
    arg = 1.0 - tau * z
    with np.errstate(divide="ignore", invalid="ignore"):
        lg = np.log(np.where(arg > 0, arg, 1.0))
        out = np.exp(-0.5 * lg * lg / (s0 * s0) - 0.5 * s0 * s0)
    return np.where(arg > 0, out, 0.0)


@functools.lru_cache(maxsize=8)
def _cdf_table(tau: float) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """(z grid, normalised CDF on it) of the standardised response."""
    z_max = 1.0 / tau if tau > 0 else 40.0
    z = np.linspace(_Z_MIN, min(z_max, 40.0), _N_TABLE)
    f = novosibirsk_density(z, tau)
    cdf = np.concatenate([[0.0], np.cumsum(0.5 * (f[1:] + f[:-1]) * np.diff(z))])
    cdf /= cdf[-1]
    return z, cdf


def novosibirsk_quantile(u: ArrayLike, tau: float) -> NDArray[np.float64]:
    """Standardised response ``z`` at cumulative probability ``u`` (inverse CDF, linear in the table)."""
    if not 0.0 <= tau <= 1.0:
        raise ValueError(f"energy tail parameter {tau}: expected 0 <= tau <= 1")
    z, cdf = _cdf_table(float(tau))
    return np.interp(np.asarray(u, dtype=float), cdf, z)


def sample_response(z_normal: ArrayLike, tau: float) -> NDArray[np.float64]:
    """Map standard-normal draws to the standardised energy response (one draw per photon).

    ``tau = 0`` returns the draws unchanged (a Gaussian response); otherwise the
    draws are turned into uniform ones and passed through ``novosibirsk_quantile``,
    so the random-number stream is the same whatever ``tau``.
    """
    zn = np.asarray(z_normal, dtype=float)
    if tau == 0.0:
        return zn
    from scipy.special import ndtr

    return novosibirsk_quantile(ndtr(zn), tau)

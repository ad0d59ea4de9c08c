"""Transitional: the names of the former ``bumphunt.kinfit.covariance`` module, re-exported from their new homes.

``PhotonCovarianceModel`` now lives in ``photon_covariance``; the mu mu gamma
calibration (``predict_photon_energy``, ``control_sample_from_events``,
``PhotonCalibration``, ``calibrate``) in ``calibration``; ``plot_calibration``
in ``plots``; ``REGION_NAMES`` and ``ecl_region`` in
``bumphunt.events.detector``. Import from ``bumphunt.kinfit`` (or those
modules); this module goes away once no caller uses it.
"""

from __future__ import annotations

from ..events.detector import REGION_NAMES, ecl_region
from .calibration import PhotonCalibration, calibrate, control_sample_from_events, predict_photon_energy
from .photon_covariance import PhotonCovarianceModel
from .plots import plot_calibration

__all__ = [
    "PhotonCovarianceModel",
    "PhotonCalibration",
    "predict_photon_energy",
    "calibrate",
    "control_sample_from_events",
    "plot_calibration",
    "REGION_NAMES",
    "ecl_region",
]

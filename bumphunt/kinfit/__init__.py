"""The 4C kinematic fit of three photons to the beam four-momentum, and the photon covariance model.

``fit(E, theta, phi, cov, beam)`` fits many events at once (compiled engine,
numpy fallback, per-event reference); ``apply_to_events`` adds the fitted
photons to a three-photon dict.
"""

from __future__ import annotations

from .fitter import ENGINES, STATUS_REASONS, KinFitResult, apply_to_events, beam_covariance, fit, fit_events, fit_reference

__all__ = ["KinFitResult", "fit", "fit_reference", "apply_to_events", "fit_events", "beam_covariance", "STATUS_REASONS", "ENGINES"]

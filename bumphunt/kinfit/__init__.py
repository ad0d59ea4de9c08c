"""The 4C kinematic fit of three photons to the beam four-momentum, and the photon covariance model.

``fit(E, theta, phi, cov, beam)`` fits many events at once and returns a
``KinFitResult``; ``apply_to_events`` / ``fit_events`` add the fitted photons
to a three-photon dict. ``PhotonCovarianceModel`` gives each photon's
covariance, and ``calibrate`` fits its energy resolution from
e+e- -> mu+ mu- gamma control events.

Modules
-------
``api``                the public ``fit``, the engine choice, ``fit_events``, ``apply_to_events``
``inputs``             input checks: array shapes, the beam and its covariance, per-event validity
``options``            ``FitOptions`` and the numerical constants every engine shares
``result``             ``KinFitResult``, the status codes and ``STATUS_REASONS``
``engine_numpy``       the vectorised numpy engine (``engine="numpy"``)
``algebra``            its closed-form 3x3/4x4 algebra on arrays of events
``_engine_numba``      the compiled engine (``engine="numba"``; imported only when used)
``reference``          ``fit_reference``: the same algorithm event by event, for cross-checks
``photon_covariance``  ``PhotonCovarianceModel``: photon covariances in (E, theta, phi)
``calibration``        the mu mu gamma calibration of the photon energy resolution
``plots``              validation plots (pulls, chi2, M_gg resolution, calibration)

Model
-----
Each event has nine measured parameters ``alpha0 = (E_i, theta_i, phi_i)``,
i = 0, 1, 2 (GeV, rad, rad), with a block-diagonal covariance ``V0`` (one 3x3
block per photon, correlations inside a block allowed). The photons are
massless, so photon i has the four-momentum
``p_i = E_i (sin theta_i cos phi_i, sin theta_i sin phi_i, cos theta_i, 1)``.
The four constraints are ``H(alpha) = sum_i p_i(alpha) - P = 0`` with ``P`` the
lab four-momentum of the beams (``Beam.p4``). The fit minimises

    chi2(alpha) = (alpha - alpha0)^T V0^-1 (alpha - alpha0)

subject to ``H(alpha) = 0`` (four constraints, ndf = 4).

Iterated linearisation (Lagrange multipliers)
---------------------------------------------
Around the current point ``alpha_A`` the constraints are replaced by their
tangent, ``H(alpha) ~ H_A + D (alpha - alpha_A)`` with ``D = dH/dalpha`` (4x9).
Minimising chi2 + 2 lambda^T (H_A + D (alpha - alpha_A)) gives, with the
residual of the linearised constraint evaluated at the measurement,
``r = D (alpha0 - alpha_A) + H_A`` and ``S = D V0 D^T`` (4x4):

    lambda = S^-1 r,        alpha = alpha0 - V0 D^T lambda,
    chi2   = lambda^T S lambda = lambda . r.

The last identity is exact for the new point (not an approximation), so the
chi2 of every iterate comes for free. Near the solution the covariance of the
fitted parameters is

    V = V0 - V0 D^T S^-1 D V0,

and the pull of parameter j is ``(alpha0_j - alpha_j) / sqrt(V0_jj - V_jj)``,
whose denominator ``(V0 D^T S^-1 D V0)_jj`` is computed directly (from the
Cholesky factor of S, so it never suffers from cancellation).

Optional beam-energy spread (soft beam constraint)
--------------------------------------------------
With ``beam_cov`` the beam four-momentum is a measured quantity, ``P = P0 + dP``
with covariance ``Vb`` (4x4, may be singular). The constraints stay linear in
``P``, so ``S`` becomes ``D V0 D^T + Vb``, the fitted beam shift is
``dP = Vb lambda`` and chi2 gains ``lambda^T Vb lambda`` (the chi2 of the beam
energies). The number of degrees of freedom stays 4.
``beam_cov="spread"`` builds ``Vb`` from ``Beam.e_spread_her/ler``: each beam
energy fluctuates independently and moves its four-vector along itself
(``beam_covariance``).

Convergence and step control
----------------------------
Let ``h = H^T S^-1 H`` be the constraint violation in chi2 units. A new
iterate is accepted when it is physical (E > 0, 0 < theta < pi) and
``h`` decreased or is below ``tol_chi2``; otherwise the step from the
previous point is halved (up to ``max_halvings`` times). An event has
converged at linearisation point ``alpha_A`` when both

* ``|chi2_new - chi2_prev| < tol_chi2`` (the chi2 of the linearised solution
  changed by less than the tolerance between successive iterations), and
* ``max_k |H_k(alpha_A)| < tol_constraint`` (GeV; every component of the
  four-momentum balance is satisfied at the linearisation point).

The returned point is the solution of that last linearisation, whose own
constraint residual is of second order in the (already tolerated) one.
Typical events need three linearisations. Events with invalid input (NaN/inf,
E <= 0, theta outside (0, pi), a covariance that is not symmetric positive
definite) are not fitted: they keep their measured values and get a status
code (``STATUS_REASONS``).

Engines
-------
``fit(..., engine="auto")`` runs the compiled engine (``_engine_numba``,
numba, vectorised across events and threaded) when numba can be imported,
else the numpy engine (``engine_numpy``). Both perform the same operations
in the same order, so they take the same decisions for every event and agree
to rounding (~1e-12); ``fit_reference`` is the same algorithm with dense
matrices, event by event. numba is imported on the first call of ``fit``,
never by ``import bumphunt`` or ``import bumphunt.kinfit``; the kernel is
compiled once per installation and then loaded from numba's on-disk cache
(see docs/reference/kinfit.md).
"""

from __future__ import annotations

from .api import ENGINES, apply_to_events, beam_covariance, fit, fit_events
from .calibration import PhotonCalibration, calibrate, control_sample_from_events, predict_photon_energy
from .photon_covariance import PhotonCovarianceModel
from .reference import fit_reference
from .result import STATUS_REASONS, KinFitResult

__all__ = [
    "fit",
    "fit_reference",
    "apply_to_events",
    "fit_events",
    "beam_covariance",
    "KinFitResult",
    "STATUS_REASONS",
    "ENGINES",
    "PhotonCovarianceModel",
    "PhotonCalibration",
    "calibrate",
    "predict_photon_energy",
    "control_sample_from_events",
]

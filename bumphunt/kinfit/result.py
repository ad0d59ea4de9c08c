"""The result of the kinematic fit: ``KinFitResult``, the status codes and their reasons.

The status codes are defined here once; every engine (numpy, compiled, the
per-event reference) writes them, and the compiled engine reads them as
compile-time constants (see ``bumphunt.kinfit.options`` about its cache).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "KinFitResult",
    "STATUS_REASONS",
    "OK",
    "BAD_FINITE",
    "BAD_ENERGY",
    "BAD_THETA",
    "BAD_COV",
    "BAD_S",
    "MAX_ITER",
    "BAD_ITER",
    "pvalue_ndf4",
]

#: Status code -> reason string. 0 means converged.
STATUS_REASONS: tuple[str, ...] = (
    "",
    "non-finite input (E, theta, phi or covariance)",
    "non-positive photon energy",
    "theta outside (0, pi)",
    "photon covariance not symmetric positive definite",
    "constraint covariance D V D^T not positive definite",
    "no convergence within max_iter iterations",
    "non-finite values during the iteration",
)
#: Status codes (indices into ``STATUS_REASONS``). The first four are input tests, in
#: the order of precedence in which they are applied to an event.
OK, BAD_FINITE, BAD_ENERGY, BAD_THETA, BAD_COV, BAD_S, MAX_ITER, BAD_ITER = range(8)


def pvalue_ndf4(chi2: NDArray[np.float64]) -> NDArray[np.float64]:
    """Upper-tail chi2 probability for 4 degrees of freedom (closed form ``exp(-chi2/2) (1 + chi2/2)``)."""
    h = 0.5 * chi2
    return np.exp(-h) * (1.0 + h)


@dataclass(frozen=True, eq=False)
class KinFitResult:
    """Result of the 4C kinematic fit, one row per event.

    Attributes
    ----------
    E, theta, phi : ndarray, shape (n, 3)
        Fitted photon energies (GeV) and angles (rad, phi in (-pi, pi]).
        Events that did not converge carry their measured values.
    cov : ndarray, shape (n, 3, 3, 3)
        Covariance of the fitted (E, theta, phi) of each photon; measured
        covariance for events that did not converge.
    chi2 : ndarray, shape (n,)
        chi2 at the fitted point (+inf for events that did not converge).
    ndf : int
        Number of degrees of freedom (4).
    pvalue : ndarray, shape (n,)
        chi2 probability for 4 degrees of freedom (0 when not converged).
    converged : ndarray of bool, shape (n,)
    n_iter : ndarray of int, shape (n,)
        Number of linearisations used.
    pulls : ndarray, shape (n, 3, 3)
        ``(measured - fitted) / sqrt(V_meas - V_fit)`` for each photon and
        parameter (E, theta, phi); NaN for events that did not converge.
    status : ndarray of int8, shape (n,)
        0 when converged, else an index into ``STATUS_REASONS``.
    cov_full : ndarray, shape (n, 9, 9), optional
        Full covariance of the nine fitted parameters (order photon-major:
        E0, theta0, phi0, E1, ...), when requested with ``full_cov=True``.
    beam_p4 : ndarray, shape (n, 4), optional
        Fitted beam four-momentum (GeV) when the beam was a soft constraint.
    options : dict
        Settings of the fit (``FitOptions``), ``beam_cov``, ``beam`` and the
        ``engine`` that ran.
    """

    E: NDArray[np.float64]
    theta: NDArray[np.float64]
    phi: NDArray[np.float64]
    cov: NDArray[np.float64]
    chi2: NDArray[np.float64]
    pvalue: NDArray[np.float64]
    converged: NDArray[np.bool_]
    n_iter: NDArray[np.int16]
    pulls: NDArray[np.float64]
    status: NDArray[np.int8]
    ndf: int = 4
    cov_full: NDArray[np.float64] | None = None
    beam_p4: NDArray[np.float64] | None = None
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def reason(self) -> NDArray[np.str_]:
        """Reason per event ("" when converged), from ``status``."""
        return np.asarray(STATUS_REASONS)[self.status]

    @property
    def n_events(self) -> int:
        """Number of events."""
        return int(self.chi2.shape[0])

    def summary(self) -> dict[str, Any]:
        """Counts of converged events and of each failure reason."""
        codes, counts = np.unique(self.status, return_counts=True)
        return {
            "n_events": self.n_events,
            "n_converged": int(self.converged.sum()),
            "failures": {STATUS_REASONS[c]: int(k) for c, k in zip(codes, counts) if c != OK},
            "mean_n_iter": float(self.n_iter.mean()) if self.n_events else 0.0,
        }

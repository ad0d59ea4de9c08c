"""Settings of a kinematic fit and the numerical constants every engine shares.

``FitOptions`` holds the iteration settings of one call of ``fit`` (or
``fit_reference``); the constants below are the numbers of the algorithm
(see ``bumphunt.kinfit``) that the numpy engine, the compiled engine and the
per-event reference must agree on, defined here once.

The compiled engine (``_engine_numba``) reads these constants, and the status
codes of ``bumphunt.kinfit.result``, as compile-time globals: numba freezes
them into the machine code it caches. numba invalidates its cache only when
the kernel's own file changes, so after changing a number here delete the
cached kernel (``bumphunt/kinfit/__pycache__/_engine_numba.*.nbi`` and
``*.nbc``, or the same files under ``NUMBA_CACHE_DIR``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from ..errors import InputError

__all__ = [
    "FitOptions",
    "POLY_MAX",
    "POLE_MARGIN",
    "SYMMETRY_TOL",
    "VARIANCE_FLOOR",
    "MAX_PHYSICAL_HALVINGS",
    "MAX_COUNT",
]

#: rad: below this, sin/cos of an angle step come from the angle-addition theorem with
#: a Taylor series of the step (truncation errors below 1e-16), above it from sin/cos.
POLY_MAX = 0.02
#: rad: when every theta lies at least this far from the poles, sin(theta) is taken as
#: sqrt(1 - cos^2 theta) (exact to ~1e-15 there, cheaper than sin).
POLE_MARGIN = 0.05
#: Largest relative asymmetry |V_ab - V_ba| (summed over the three pairs, relative to
#: the sum of sqrt(|V_aa V_bb|)) of a photon covariance that is accepted as symmetric.
SYMMETRY_TOL = 1e-9
#: Floor of the pull denominator V0_jj - V_jj (GeV^2 or rad^2), so pulls stay finite.
VARIANCE_FLOOR = 1e-300
#: Largest ``max_iter`` and ``max_halvings`` (the iteration counters are int16 in every engine).
MAX_COUNT = 32767
#: Largest number of halvings back towards the last accepted point while an iterate is
#: unphysical (E <= 0 or theta outside (0, pi)).
MAX_PHYSICAL_HALVINGS = 60


@dataclass(frozen=True)
class FitOptions:
    """Iteration settings of a kinematic fit.

    Attributes
    ----------
    max_iter : int
        Maximum number of linearisations per event (>= 1).
    max_halvings : int
        Maximum number of step halvings per iteration (>= 0).
    tol_chi2 : float
        Convergence tolerance on the change of chi2 between iterations (> 0).
    tol_constraint : float
        Convergence tolerance (GeV) on every component of the four-momentum
        balance at the last linearisation point (> 0).
    full_cov : bool
        Also compute the full (n, 9, 9) covariance of the fitted parameters.

    Raises
    ------
    InputError
        When a setting is out of range.
    """

    max_iter: int = 20
    max_halvings: int = 10
    tol_chi2: float = 1e-3
    tol_constraint: float = 1e-5
    full_cov: bool = False

    def __post_init__(self) -> None:
        if (not 1 <= self.max_iter <= MAX_COUNT or not 0 <= self.max_halvings <= MAX_COUNT or not (self.tol_chi2 > 0)
                or not (self.tol_constraint > 0)):
            raise InputError(f"kinfit: max_iter >= 1, max_halvings >= 0 (both at most {MAX_COUNT}) and positive tolerances "
                             f"are required, got max_iter={self.max_iter}, "
                             f"max_halvings={self.max_halvings}, tol_chi2={self.tol_chi2}, tol_constraint={self.tol_constraint}")

    @classmethod
    def checked(cls, *, max_iter: Any, max_halvings: Any, tol_chi2: Any, tol_constraint: Any, full_cov: Any = False) -> FitOptions:
        """Options from user values, converted to int/float; ``InputError`` names an option that is not a number."""
        values: dict[str, Any] = {}
        for name, value, kind in (("max_iter", max_iter, int), ("max_halvings", max_halvings, int),
                                  ("tol_chi2", tol_chi2, float), ("tol_constraint", tol_constraint, float)):
            try:
                values[name] = kind(value)
            except (TypeError, ValueError, OverflowError):
                raise InputError(f"kinfit: {name} must be a {'whole' if kind is int else 'positive'} number, got {value!r}") from None
        return cls(**values, full_cov=bool(full_cov))

    def to_dict(self) -> dict[str, Any]:
        """The settings as a dict (recorded in ``KinFitResult.options``)."""
        return asdict(self)

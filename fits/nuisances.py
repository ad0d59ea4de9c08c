"""Multiplicative yield uncertainties (luminosity, efficiency, trigger) as one constrained nuisance.

The signal yield of a conditional fit is ``mu = poi * scale * kappa^u``
(log-normal, ``kappa = 1 + rel_unc``) or ``poi * scale * (1 + rel_unc u)``
(Gaussian) with a standard-normal constraint on ``u`` (see ``fits.newton``,
mode "syst"). Several independent log-normal terms combine exactly into one
(``combine_rel_unc``). The signal-resolution nuisance, which is not a yield
factor, is in ``fits.systematics``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .errors import FitInputError

__all__ = ["Syst", "SYST_KINDS", "yield_systematic", "combine_rel_unc"]

#: the constraint shapes of a yield uncertainty
SYST_KINDS = ("lognormal", "gaussian")


@dataclass(frozen=True)
class Syst:
    """A multiplicative yield uncertainty on the POI scale, per hypothesis.

    Attributes
    ----------
    rel_unc : ndarray (k,)
        Relative uncertainty (all sources combined in quadrature, see ``combine_rel_unc``).
    kind : {"lognormal", "gaussian"}
        Constraint shape.
    """

    rel_unc: NDArray
    kind: str = "lognormal"

    @property
    def a(self) -> NDArray:
        """The nuisance coefficient: ``ln(1 + rel_unc)`` (log-normal) or ``rel_unc`` (Gaussian)."""
        if self.kind == "lognormal":
            return np.log1p(self.rel_unc)
        return self.rel_unc

    def take(self, idx: ArrayLike) -> Syst:
        """The uncertainties of the hypotheses at positions (or boolean mask) ``idx``."""
        return Syst(self.rel_unc[idx], self.kind)

    def tile(self, m: int) -> Syst:
        """``m`` stacked copies (one per batch copy)."""
        return Syst(np.tile(self.rel_unc, m), self.kind)


def yield_systematic(rel_unc: ArrayLike | None, k: int, *, kind: str = "lognormal") -> Syst | None:
    """The yield uncertainty of k hypotheses, or None when there is none (absent or all 0).

    Raises FitInputError for negative or non-finite values or an unknown ``kind``.
    """
    if rel_unc is None:
        return None
    try:
        r = np.broadcast_to(np.asarray(rel_unc, float), (k,)).copy()
    except (TypeError, ValueError):
        raise FitInputError(f"signal_scale_rel_unc: expected one number or {k} (relative), got {rel_unc!r:.80}") from None
    if not np.all(np.isfinite(r)) or np.any(r < 0):
        raise FitInputError(f"signal_scale_rel_unc: must be finite and >= 0, got {r}")
    if kind not in SYST_KINDS:
        raise FitInputError(f"syst_kind: expected 'lognormal' or 'gaussian', got {kind!r}")
    if np.all(r == 0):
        return None
    return Syst(r, kind)


def combine_rel_unc(*rel: float) -> float:
    """Combine independent relative yield uncertainties (luminosity, efficiency, trigger).

    For log-normal constraints profiling several nuisances that enter only
    through their product is exactly one nuisance with
    ``ln(kappa) = sqrt(sum ln(kappa_i)^2)``; returns ``kappa - 1``.
    """
    return float(np.expm1(np.sqrt(np.sum(np.log1p(np.asarray(rel, float)) ** 2))))

"""The analytic stand-in for a ``SignalModel``: smooth polynomial mass dependence, no signal MC needed.

``analytic_signal_model()`` returns an ``AnalyticSignalModel``, an object
with the ``SignalModel`` interface used by the fits and the scans (``shape``,
``efficiency``, ``efficiency_total`` and their uncertainties,
``mass_range``, ``save``/``load``) whose parameters are smooth functions of
the ALP mass: the resolution and the efficiency are polynomials in m_a, the
tail parameters and the combinatorial fraction are constants, and the peak
sits at the mass itself. It is frozen, so it pickles (worker processes) and
hashes; its JSON file carries ``"kind": "analytic"``.

``signal_models.synthetic.TruthCurves`` is a different thing on purpose:
the known truth from which synthetic signal MC is *generated*, with the
features the calibration must recover (a peak shift, tails and a
combinatorial slope that vary with the mass, a kinematic edge of the wrong
pairs). ``AnalyticSignalModel`` is a ready-made model to *fit* with, the
simplest one that has the interface; neither is built from the other.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .errors import SignalModelFormatError
from .shapes import SignalShape

logger = logging.getLogger(__name__)

__all__ = ["AnalyticSignalModel", "analytic_signal_model"]


@dataclass(frozen=True)
class AnalyticSignalModel:
    """Signal model with analytic mass dependence (picklable, hashable).

    Parameters
    ----------
    sigma_coeffs : tuple of float
        Polynomial coefficients (constant first) of the DSCB core width sigma(m) in GeV.
    efficiency_coeffs : tuple of float
        Polynomial coefficients of the truth-matched signal efficiency eps(m)
        (truth-matched passing / generated); ``efficiency_total`` adds the
        combinatorial candidates, ``eps / (1 - comb_fraction)``.
    efficiency_rel_unc : float
        Relative efficiency uncertainty.
    mass_range : tuple of float
        Valid mass range in GeV; ``shape`` outside it raises ValueError.
    alpha_l, n_l, alpha_r, n_r : float
        DSCB tail parameters (constant in mass).
    comb_fraction, comb_slope : float
        Combinatorial (wrong-pair) fraction and slope of its linear Chebyshev.
    """

    sigma_coeffs: tuple[float, ...] = (0.004, 0.009)
    efficiency_coeffs: tuple[float, ...] = (0.30, -0.012)
    efficiency_rel_unc: float = 0.05
    mass_range: tuple[float, float] = (0.1, 10.4)
    alpha_l: float = 1.2
    n_l: float = 3.0
    alpha_r: float = 1.6
    n_r: float = 6.0
    comb_fraction: float = 0.1
    comb_slope: float = 0.0
    kind: str = field(default="analytic", repr=False)

    def _check(self, mass: ArrayLike) -> NDArray[np.float64]:
        m = np.asarray(mass, dtype=float)
        lo, hi = self.mass_range
        if np.any(~np.isfinite(m)) or np.any(m < lo) or np.any(m > hi):
            raise ValueError(f"mass {mass} GeV outside the signal model range [{lo}, {hi}] GeV")
        return m

    def sigma(self, mass: ArrayLike) -> NDArray[np.float64]:
        """Core resolution sigma(m) in GeV."""
        m = self._check(mass)
        return np.polynomial.polynomial.polyval(m, self.sigma_coeffs)

    def shape(self, mass: float) -> SignalShape:
        """The signal shape at ``mass`` (GeV), peak at the mass itself."""
        m = float(self._check(mass))
        return SignalShape(
            mu=m,
            sigma=float(self.sigma(m)),
            alpha_l=self.alpha_l,
            n_l=self.n_l,
            alpha_r=self.alpha_r,
            n_r=self.n_r,
            comb_fraction=self.comb_fraction,
            comb_slope=self.comb_slope,
        )

    def efficiency(self, mass: ArrayLike) -> NDArray[np.float64]:
        """Signal efficiency at ``mass`` (dimensionless)."""
        m = self._check(mass)
        return np.polynomial.polynomial.polyval(m, self.efficiency_coeffs)

    def efficiency_uncertainty(self, mass: ArrayLike) -> NDArray[np.float64]:
        """Absolute efficiency uncertainty at ``mass``."""
        return self.efficiency_rel_unc * self.efficiency(mass)

    def efficiency_total(self, mass: ArrayLike) -> NDArray[np.float64]:
        """All signal candidates described by ``shape(m)`` (truth-matched and combinatorial) per
        generated event: ``efficiency(m) / (1 - comb_fraction)``. This normalises N_sig."""
        return self.efficiency(mass) / (1.0 - self.comb_fraction)

    def efficiency_total_uncertainty(self, mass: ArrayLike) -> NDArray[np.float64]:
        """Absolute uncertainty of ``efficiency_total`` (the same relative uncertainty)."""
        return self.efficiency_rel_unc * self.efficiency_total(mass)

    def to_dict(self) -> dict[str, Any]:
        """The parameters as a JSON-safe dict (with ``"kind": "analytic"``)."""
        d = asdict(self)
        d["sigma_coeffs"] = list(self.sigma_coeffs)
        d["efficiency_coeffs"] = list(self.efficiency_coeffs)
        d["mass_range"] = list(self.mass_range)
        return d

    def save(self, path: str | Path) -> Path:
        """Write ``to_dict`` as JSON to ``path``; returns the path."""
        path = Path(path)
        path.write_text(json.dumps(self.to_dict(), indent=1))
        return path

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, source: str = "analytic signal model") -> AnalyticSignalModel:
        """The model of a ``to_dict`` dictionary (lists become tuples).

        Raises
        ------
        SignalModelFormatError
            Not a mapping, an unknown key or a value that is not a finite number
            (coefficients: a non-empty list of them; ``mass_range``: ``[lo, hi]``
            with hi > lo); the message names ``source`` and the key.
        """
        if not isinstance(d, Mapping):
            raise SignalModelFormatError(f"{source}: expected a mapping of parameters, got {type(d).__name__}")
        d = dict(d)
        d.pop("kind", None)
        allowed = [f.name for f in fields(cls) if f.name != "kind"]
        unknown = sorted(str(k) for k in d if k not in allowed)
        if unknown:
            raise SignalModelFormatError(f"{source}: unknown key {unknown[0]!r}; allowed keys: {', '.join(allowed)}")
        for key, value in d.items():
            if key in ("sigma_coeffs", "efficiency_coeffs", "mass_range"):
                ok = isinstance(value, (list, tuple)) and len(value) > 0 and all(_finite_number(v) for v in value)
                if key == "mass_range":
                    ok = ok and len(value) == 2 and value[1] > value[0]
                if not ok:
                    what = "[lo, hi] in GeV with hi > lo" if key == "mass_range" else "a non-empty list of finite numbers"
                    raise SignalModelFormatError(f"{source}: {key}: expected {what}, got {value!r}")
                d[key] = tuple(float(v) for v in value)
            elif not _finite_number(value):
                raise SignalModelFormatError(f"{source}: {key}: expected a finite number, got {value!r}")
        return cls(**d)

    @classmethod
    def load(cls, path: str | Path) -> AnalyticSignalModel:
        """Read a file written by ``save`` (``SignalModelFormatError`` naming the file when it cannot)."""
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise SignalModelFormatError(f"{path}: cannot read the analytic signal model: {exc}") from None
        return cls.from_dict(data, source=str(path))


def _finite_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def analytic_signal_model(**params: Any) -> AnalyticSignalModel:
    """An ``AnalyticSignalModel``; keyword arguments override the defaults.

    The defaults give sigma(m) = 4 MeV + 0.9% m and an efficiency falling from
    30% at low mass, roughly like the Belle II search.
    """
    for key in ("sigma_coeffs", "efficiency_coeffs", "mass_range"):
        if key in params:
            params[key] = tuple(float(v) for v in params[key])
    return AnalyticSignalModel(**params)

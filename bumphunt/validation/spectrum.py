"""The known truth every check draws from: a falling M_gg spectrum, the analytic signal model and the scan's windows.

``ReferenceSpectrum`` is a background density ``exp(-slope m)`` on [lo, hi]
GeV normalised to ``n`` candidates (``scans.testing.toy_spectrum`` draws
it), fitted with the scan's model: the analytic signal model
(``signal_models.analytic``, sigma(m) = 4 MeV + 0.9% m), windows
``m +- 20 sigma(m)`` clipped to the data (``scans.grid.fit_windows``) and
the default cubic background. Because the truth is known, the toys of the
checks come from it rather than from a fit to one sample.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from signal_models._common.defaults import DEFAULT_HALF_WIDTH

logger = logging.getLogger(__name__)

__all__ = ["ReferenceSpectrum", "stack_datasets"]


@dataclass(frozen=True)
class ReferenceSpectrum:
    """Background truth and scan model of the validation.

    Parameters
    ----------
    n : int
        Expected candidates in [lo, hi].
    lo, hi : float
        Data range (GeV).
    slope : float
        Exponential slope (1/GeV).
    seed : int
        Seed of the one reference sample (``candidates``).
    """

    n: int = 50_000
    lo: float = 0.1
    hi: float = 10.0
    slope: float = 0.35
    seed: int = 1

    def signal_model(self) -> Any:
        """The analytic signal model of the scans (``scans.testing.analytic_signal_model``)."""
        from scans.testing import analytic_signal_model

        return analytic_signal_model()

    def candidates(self) -> NDArray[np.float64]:
        """The reference sample: ``n`` candidates (GeV) drawn from the truth."""
        from scans.testing import toy_spectrum

        return toy_spectrum(self.n, lo=self.lo, hi=self.hi, slope=self.slope, seed=self.seed)

    def scan_config(self, *, step_sigma_fraction: float | None = None) -> dict[str, Any]:
        """Scan configuration: masses 0.3 to 9 GeV, no vetoes (the truth has no peaks), the default window and background order."""
        mass: dict[str, Any] = {"min": 0.3, "max": 9.0, "data_range": [self.lo, self.hi]}
        if step_sigma_fraction is not None:
            mass["step_sigma_fraction"] = float(step_sigma_fraction)
        return {"mass": mass, "vetoes": {"particles": []}}

    def truth(self) -> Any:
        """The truth as a ``scans.lee.SmoothBackground`` (log density linear in the Chebyshev variable)."""
        from scans.lee import SmoothBackground

        c = -self.slope
        return SmoothBackground(lo=self.lo, hi=self.hi, coeffs=(c * (self.lo + self.hi) / 2, c * (self.hi - self.lo) / 2), n_expected=float(self.n))

    def background_density(self) -> Any:
        """The truth as a ``fits.combined_toys.BackgroundDensity`` (shape only; counts from ``expected_in``)."""
        from fits.combined_toys import BackgroundDensity

        return BackgroundDensity("exponential", slope=self.slope)

    def expected_in(self, lo: float, hi: float) -> float:
        """Expected background candidates in [lo, hi] GeV."""
        s = self.slope
        return float(self.n * (np.exp(-s * lo) - np.exp(-s * hi)) / (np.exp(-s * self.lo) - np.exp(-s * self.hi)))

    def hypotheses(self, masses: ArrayLike) -> tuple[list[Any], NDArray[np.float64]]:
        """Signal shapes and fit windows (k, 2) in GeV of the scan's model at ``masses``."""
        from scans.grid import fit_windows

        m = np.atleast_1d(np.asarray(masses, dtype=float))
        model = self.signal_model()
        shapes = [model.shape(float(x)) for x in m]
        windows = fit_windows(m, np.array([s.sigma for s in shapes]), n_sigma=DEFAULT_HALF_WIDTH, data_range=(self.lo, self.hi),
                              comb_domain=np.array([s.comb_domain for s in shapes]), mus=np.array([s.mu for s in shapes]))
        return shapes, windows


def stack_datasets(masses: NDArray, counts: NDArray, shape: Any, window: tuple[float, float]) -> tuple[NDArray, list[Any], NDArray]:
    """Pseudo-data sets of one hypothesis as k hypotheses of one call: data set t and its hypothesis moved by ``t x spacing`` GeV.

    The fits see only positions relative to the window, so each moved hypothesis is its data set's own fit
    (as ``fits.combined_toys.toy_request`` does for combined requests). ``masses`` holds the candidates data set
    by data set, ``counts`` (k,) their numbers. Returns the sorted masses, the k moved shapes and the k windows.
    """
    import dataclasses

    lo, hi = window
    k = len(counts)
    off = 2.0 * (hi - lo) * np.arange(k)
    x = np.sort(np.asarray(masses, float) + np.repeat(off, counts))
    edge = shape.comb_edge
    shapes = [dataclasses.replace(shape, mu=shape.mu + o, comb_edge=edge + o if np.isfinite(edge) else edge) for o in off]
    return x, shapes, np.column_stack([lo + off, hi + off])

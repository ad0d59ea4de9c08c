"""Result containers of the fits package (frozen dataclasses): one fit, one limit, a table of hypotheses."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from signal_models.shapes import SignalShape

from .densities import ShapeArrays, chebyshev_basis, signal_pdf

__all__ = ["FitResult", "LimitResult", "HypothesisTable", "CombinedFitResult"]


@dataclass(frozen=True)
class FitResult:
    """Extended unbinned fit of one hypothesis.

    Attributes
    ----------
    nsig, nsig_err : float
        Fitted signal yield (events; may be negative) and its error from the
        inverse Hessian (the same as Minuit's HESSE).
    nbkg : float
        Background yield in the window (``sum_k beta_k I_k``).
    nll : float
        Minimum extended NLL ``mu + sum beta_k I_k - sum_i log lambda(x_i)``
        (no constant terms; the zfit engine reports the same quantity).
    converged : bool
    reason : str
        Empty when fine, else why the fit is flagged.
    z_local : float
        ``sign(nsig) sqrt(q0)``.
    n_events : int
        Candidates in the window.
    beta : ndarray
        Background coefficients of ``T_k(x')`` (events/GeV).
    window : (float, float)
        Fit window in GeV.
    shape : SignalShape
        The fixed signal shape.
    bkg_order : int
        Order of the background polynomial.
    engine : str
        ``"vectorised"`` or ``"zfit"``.
    bkg_nonnegative : bool
        Whether the fitted background density is >= 0 on the whole window
        (checked on a fine grid; not enforced, see the docs).
    nll_bkg_only : float
        Minimum NLL of the background-only fit (same convention as ``nll``).
    n_iter : int
        Newton iterations (0 when not recorded).
    """

    nsig: float
    nsig_err: float
    nbkg: float
    nll: float
    converged: bool
    reason: str
    z_local: float
    n_events: int
    beta: NDArray
    window: tuple[float, float]
    shape: SignalShape
    bkg_order: int
    engine: str = "vectorised"
    bkg_nonnegative: bool = True
    nll_bkg_only: float = float("nan")
    n_iter: int = 0

    # -- densities (events / GeV) -------------------------------------------
    def _xp(self, x: ArrayLike) -> NDArray:
        lo, hi = self.window
        return (2.0 * np.asarray(x, float) - (lo + hi)) / (hi - lo)

    def bkg_density(self, x: ArrayLike) -> NDArray:
        """Fitted background density in events/GeV."""
        T = chebyshev_basis(self._xp(x), self.bkg_order)
        return np.tensordot(self.beta, T, axes=1)

    def signal_density(self, x: ArrayLike) -> NDArray:
        """Fitted signal density in events/GeV."""
        x = np.asarray(x, float)
        sh = ShapeArrays.from_shapes([self.shape])
        lo, hi = self.window
        return self.nsig * signal_pdf(x.reshape(1, -1), sh, np.array([lo]), np.array([hi])).reshape(x.shape)

    def density(self, x: ArrayLike) -> NDArray:
        """Fitted signal + background density in events/GeV."""
        return self.bkg_density(x) + self.signal_density(x)

    def chebyshev_coefficients(self) -> NDArray:
        """Background as a normalised Chebyshev series: coefficients with ``c_0 = 1`` (zfit's convention)."""
        return self.beta / self.beta[0]

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict of the result (the shape as its parameter dict)."""
        d = asdict(self)
        d["beta"] = [float(b) for b in self.beta]
        d["shape"] = self.shape.to_dict()
        d["window"] = [float(v) for v in self.window]
        return d


@dataclass(frozen=True)
class LimitResult:
    """Upper limit of one hypothesis.

    ``observed`` and ``expected`` (-2, -1, 0, +1, +2 sigma) are in signal
    events when ``poi == "nsig"`` and in pb when ``poi == "xsec"``; ``method``
    names how they were computed, ``fit`` is the fit of the hypothesis,
    ``details`` holds method-specific curves and settings.
    """

    observed: float
    expected: NDArray
    cl: float
    poi: str
    method: str
    fit: Any
    converged: bool
    reason: str = ""
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class HypothesisTable:
    """Batched fit and limit results, one entry per hypothesis (arrays of length k).

    ``mass`` and ``window`` in GeV, yields and yield limits in signal events;
    ``ul_xsec_obs`` / ``ul_xsec_exp`` (pb) are present only when a signal
    scale was given. Failed or flagged hypotheses have ``converged=False``, a
    non-empty ``reason`` and finite placeholder numbers (0).
    """

    mass: NDArray
    window: NDArray
    n_events: NDArray
    nsig: NDArray
    nsig_err: NDArray
    nbkg: NDArray
    nll: NDArray
    z_local: NDArray
    converged: NDArray
    reason: list[str]
    ul_nsig_obs: NDArray
    ul_nsig_exp: NDArray
    ul_xsec_obs: NDArray | None = None
    ul_xsec_exp: NDArray | None = None
    bkg_nonnegative: NDArray | None = None
    beta: NDArray | None = None

    def __len__(self) -> int:
        return len(self.nsig)

    def fit_result(self, j: int, *, shape: SignalShape, bkg_order: int) -> FitResult:
        """Hypothesis ``j`` as a ``FitResult`` of the vectorised engine (``shape``: its signal shape)."""
        lo, hi = self.window[j]
        nll_b = float(self.nll[j] + 0.5 * self.z_local[j] ** 2)
        return FitResult(
            nsig=float(self.nsig[j]),
            nsig_err=float(self.nsig_err[j]),
            nbkg=float(self.nbkg[j]),
            nll=float(self.nll[j]),
            converged=bool(self.converged[j]),
            reason=self.reason[j],
            z_local=float(self.z_local[j]),
            n_events=int(self.n_events[j]),
            beta=np.array(self.beta[j]),
            window=(float(lo), float(hi)),
            shape=shape,
            bkg_order=bkg_order,
            engine="vectorised",
            bkg_nonnegative=bool(self.bkg_nonnegative[j]),
            nll_bkg_only=nll_b,
        )

    def row(self, j: int) -> dict[str, Any]:
        """One hypothesis as a JSON-friendly dict."""
        out: dict[str, Any] = {
            "mass": float(self.mass[j]),
            "window": [float(v) for v in self.window[j]],
            "n_events": int(self.n_events[j]),
            "nsig": float(self.nsig[j]),
            "nsig_err": float(self.nsig_err[j]),
            "nbkg": float(self.nbkg[j]),
            "nll": float(self.nll[j]),
            "z_local": float(self.z_local[j]),
            "converged": bool(self.converged[j]),
            "reason": self.reason[j],
            "ul_nsig_obs": float(self.ul_nsig_obs[j]),
            "ul_nsig_exp": [float(v) for v in self.ul_nsig_exp[j]],
        }
        if self.ul_xsec_obs is not None:
            out["ul_xsec_obs"] = float(self.ul_xsec_obs[j])
            out["ul_xsec_exp"] = [float(v) for v in self.ul_xsec_exp[j]]
        return out


@dataclass(frozen=True)
class CombinedFitResult:
    """Fit of channels sharing one parameter of interest ``mu``.

    Attributes
    ----------
    nsig, nsig_err : float
        Fitted ``mu`` and its error (inverse Hessian), in units of ``mu``
        (signal events of a channel = ``mu x signal_scale``).
    nbkg : float
        Fitted background events, summed over the channels' windows.
    nll : float
        Minimum NLL (sum over channels, with the nuisance constraints).
    converged : bool
    reason : str
        Empty when fine; else why the fit is flagged (e.g. a channel without candidates).
    z_local : float
        ``sign(mu) sqrt(q0)``.
    channels : tuple of str
    channel_nsig, channel_nbkg : dict
        Fitted signal and background events per channel.
    nuisances : dict
        Name -> (post-fit value, post-fit error) in units of its constraint (0 +- 1 before the fit).
    nll_bkg_only : float
        Minimum NLL at mu = 0.
    engine : str
    """

    nsig: float
    nsig_err: float
    nbkg: float
    nll: float
    converged: bool
    reason: str
    z_local: float
    channels: tuple[str, ...]
    channel_nsig: dict[str, float] = field(default_factory=dict)
    channel_nbkg: dict[str, float] = field(default_factory=dict)
    nuisances: dict[str, tuple[float, float]] = field(default_factory=dict)
    nll_bkg_only: float = float("nan")
    engine: str = "vectorised"

"""Toy data sets of a combined model (``fits.CombinedModel``), and many toys fitted as one request.

``draw_toys`` draws ``n_toys`` pseudo-experiments of every channel of a
``CombinedModel`` at given true parameters: per toy and channel,
Poisson(N_sig,c) signal candidates and Poisson(n_bkg,c) background candidates
in the channel's window, with

    N_sig,c = mu * signal_scale_c * prod_k kappa_kc(u_k) + sum_a size_ac theta_a

as in ``fits.channels``. The signal masses come from the *true* shape, not
from the interpolated template of the fit: the truth-matched peak
(``SignalShape`` without wrong pairs) with its core width scaled by
``1 + width nu`` (resolution nuisances) and its position moved by
``width nu`` GeV (or ``width nu mu``, relative shifts), and the wrong pairs
(fraction ``comb_fraction``) from the nominal combinatorial spectrum, which
the shape nuisances do not move. Both are drawn exactly by inverse CDF
(``SignalShape.sample``). The background density is a ``BackgroundDensity``
(exponential or Chebyshev series on the window). All toys of a channel are
drawn at once (numpy ``Generator``), so the same seed gives the same toys.

``global_observables`` draws the auxiliary measurements of a frequentist toy
(one standard-normal draw per nuisance around its true value), ``toy_request``
stacks the toys as the hypotheses of one ``CombinedRequest`` (toy t and its
window moved by ``t * spacing`` GeV; the fit sees only positions relative to
the window), and ``fit_toys`` fits them all at once (and, if asked, finds
their asymptotic CLs limits) with each toy's constraints centred at its
global observables (``CentredBatch``; ``evaluate_combined`` centres them at 0).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike, NDArray

from signal_models.shapes import SignalShape

from .background_choice import take_hypotheses
from .channels import CombinedModel
from .combined import TOL, CombinedBatch, CombinedState
from .combined_rows import CombinedRequest, Rows
from .combined_table import CombinedTable, table_from_batch
from .densities import ShapeArrays
from .errors import FitInputError

if TYPE_CHECKING:  # the (private) result type of the public CombinedBatch.minimise, for the annotation only
    from .combined import _Solution

logger = logging.getLogger(__name__)

__all__ = [
    "BackgroundDensity",
    "CombinedToys",
    "CentredBatch",
    "nuisance_vector",
    "true_signal_yields",
    "true_peak_shape",
    "draw_toys",
    "global_observables",
    "toy_request",
    "fit_toys",
]

#: points of the grid on which a Chebyshev background's CDF is inverted
CDF_GRID = 8193


@dataclass(frozen=True)
class BackgroundDensity:
    """A smooth background density on a window.

    Parameters
    ----------
    kind : {"exponential", "chebyshev"}
        ``exponential``: density ~ ``exp(-slope x)`` (``slope`` in 1/GeV, 0 is flat).
        ``chebyshev``: density ~ ``sum_m coeffs[m] T_m(x')`` with ``x' = 2 (x - lo) / (hi - lo) - 1``
        (the fits' background polynomial; must be positive on the window).
    slope : float
        Exponential slope (1/GeV).
    coeffs : tuple of float
        Chebyshev coefficients (any normalisation).
    """

    kind: str = "exponential"
    slope: float = 0.0
    coeffs: tuple[float, ...] = (1.0,)

    def __post_init__(self) -> None:
        if self.kind not in ("exponential", "chebyshev"):
            raise FitInputError(f"BackgroundDensity: kind must be 'exponential' or 'chebyshev', got {self.kind!r}")
        if not np.isfinite(self.slope):
            raise FitInputError(f"BackgroundDensity: slope must be finite (1/GeV), got {self.slope}")
        if self.kind == "chebyshev" and (len(self.coeffs) == 0 or not np.all(np.isfinite(self.coeffs))):
            raise FitInputError(f"BackgroundDensity: coeffs must be finite and not empty, got {self.coeffs}")

    def _cheb_cdf(self, lo: float, hi: float) -> tuple[NDArray, NDArray]:
        """The series' antiderivative from -1 on a grid of x' (checked positive there): grid, antiderivative."""
        c = np.asarray(self.coeffs, float)
        xg = np.linspace(-1.0, 1.0, CDF_GRID)
        if np.any(np.polynomial.chebyshev.chebval(xg, c) <= 0):
            raise FitInputError(f"BackgroundDensity: the Chebyshev series {self.coeffs} is not positive on the window [{lo}, {hi}] GeV")
        return xg, np.polynomial.chebyshev.chebval(xg, np.polynomial.chebyshev.chebint(c, lbnd=-1.0))

    def pdf(self, x: ArrayLike, lo: float, hi: float) -> NDArray:
        """Density normalised on [lo, hi] (1/GeV); zero outside."""
        x = np.asarray(x, float)
        w = hi - lo
        if self.kind == "exponential":
            b = self.slope
            out = np.full(x.shape, 1.0 / w) if b == 0 else b * np.exp(-b * (x - lo)) / -np.expm1(-b * w)
        else:
            _, cdf = self._cheb_cdf(lo, hi)
            total = cdf[-1]
            out = np.polynomial.chebyshev.chebval(2.0 * (x - lo) / w - 1.0, np.asarray(self.coeffs, float)) / (0.5 * w * total)
        return np.where((x >= lo) & (x <= hi), out, 0.0)

    def sample(self, n: int, lo: float, hi: float, *, rng: np.random.Generator) -> NDArray:
        """``n`` masses (GeV) on [lo, hi]: exact inverse CDF (exponential) or inverse CDF on a fine grid (Chebyshev)."""
        q = rng.random(int(n))
        w = hi - lo
        if self.kind == "exponential":
            b = self.slope
            x = lo + w * q if b == 0 else lo - np.log1p(q * np.expm1(-b * w)) / b
        else:
            # the inverse CDF tabulated at equally spaced probabilities, then linear interpolation by index
            xg, cdf = self._cheb_cdf(lo, hi)
            table = np.interp(np.linspace(0.0, cdf[-1], CDF_GRID), cdf, xg)
            pos = q * (CDF_GRID - 1)
            i = np.minimum(pos.astype(np.int64), CDF_GRID - 2)
            frac = pos - i
            x = lo + 0.5 * w * (table[i] * (1.0 - frac) + table[i + 1] * frac + 1.0)
        return np.clip(x, lo, hi)


@dataclass(frozen=True, eq=False)
class CombinedToys:
    """Toy data sets of the channels of a combined model.

    Attributes
    ----------
    masses : tuple of ndarray
        Per channel, the candidates of all toys (GeV), toy by toy (toy 0 first; within a toy the
        truth-matched signal, the wrong pairs, then the background, each in the order drawn).
    is_signal : tuple of ndarray of bool
        Per channel, True for signal candidates (same order as ``masses``).
    counts : ndarray (n_toys, C) int
        Candidates of each toy and channel.
    truth : ndarray (S,)
        The true ``(mu, nuisances)`` (nuisances in standard deviations, in the model's order).
    """

    masses: tuple[NDArray, ...]
    is_signal: tuple[NDArray, ...]
    counts: NDArray
    truth: NDArray

    @property
    def n_toys(self) -> int:
        return self.counts.shape[0]

    def toy(self, t: int, c: int) -> NDArray:
        """The candidates (GeV) of toy ``t`` in channel ``c``."""
        ends = np.cumsum(self.counts[:, c])
        return self.masses[c][ends[t] - self.counts[t, c] : ends[t]]


def nuisance_vector(model: CombinedModel, values: Mapping[str, float] | None) -> NDArray:
    """The nuisances (standard deviations) as a vector in the model's order (``model.nuisance_names``); unnamed ones are 0."""
    names = model.nuisance_names
    out = np.zeros(len(names))
    for name, v in (values or {}).items():
        if name not in names:
            raise FitInputError(f"nuisances: unknown name {name!r}; the model has {list(names)}")
        out[names.index(name)] = float(v)
    return out


def true_signal_yields(model: CombinedModel, mu: float, nuisances: ArrayLike) -> NDArray:
    """Expected signal events (C,) per channel at ``mu`` and the nuisances ``(u, theta, nu)`` (standard deviations)."""
    nu = np.asarray(nuisances, float)
    K, A = len(model.yields), len(model.spurious)
    u, th = nu[:K], nu[K : K + A]
    scale = np.array([c.signal_scale for c in model.channels])
    factor = np.ones(model.n_channels)
    for k in range(K):
        coeff = model.yield_coeff[k]
        factor = factor * (np.exp(coeff * u[k]) if model.yield_lognormal[k] else 1.0 + coeff * u[k])
    n = mu * scale * factor
    if A:
        n = n + th @ model.spurious_size
    if np.any(n < 0) or not np.all(np.isfinite(n)):
        raise FitInputError(f"toys: expected signal events must be finite and >= 0, got {n.tolist()} (mu = {mu}, nuisances = {nu.tolist()})")
    return n


def true_peak_shape(model: CombinedModel, c: int, nuisances: ArrayLike) -> SignalShape:
    """Channel ``c``'s truth-matched peak (no wrong pairs) with every shape nuisance at its value (standard deviations).

    Resolution nuisances multiply the core width by ``1 + width nu``; shifts move the peak by
    ``width nu`` GeV (``width nu mu`` when relative). This is the true shape, not the fit's
    quadratic interpolation (the two agree at nu = -1, 0, +1 for one nuisance).
    """
    nu = np.asarray(nuisances, float)
    J = len(model.shapes)
    shape_nu = nu[len(nu) - J :] if J else nu[:0]
    s = dataclasses.replace(model.channels[c].shape, comb_fraction=0.0)
    sigma, mu = s.sigma, s.mu
    for j, sh in enumerate(model.shapes):
        w = model.shape_widths[j, c]
        if w == 0 or shape_nu[j] == 0:
            continue
        if sh.kind == "resolution":
            sigma *= 1.0 + w * shape_nu[j]
        else:
            mu += w * shape_nu[j] * (s.mu if sh.relative else 1.0)
    if not sigma > 0:
        raise FitInputError(f"toys: channel {model.names[c]!r}: the resolution nuisances give a core width {sigma} GeV <= 0")
    return dataclasses.replace(s, sigma=sigma, mu=mu)


def draw_toys(model: CombinedModel, n_toys: int, *, mu: float, n_bkg: Sequence[float], background: Sequence[BackgroundDensity],
              rng: np.random.Generator, nuisances: Mapping[str, float] | None = None) -> CombinedToys:
    """Draw ``n_toys`` toy data sets of every channel of ``model``.

    Parameters
    ----------
    model : CombinedModel
        Channels (signal shape, window, ``signal_scale``) and nuisances; the channels' own candidates are not used.
    n_toys : int
    mu : float
        True parameter of interest (units of the channels' ``signal_scale``).
    n_bkg : sequence of float
        Per channel, the expected background events in its window.
    background : sequence of BackgroundDensity
        Per channel, the true background density.
    rng : numpy.random.Generator
    nuisances : mapping, optional
        True nuisance values in standard deviations by name (default all 0).

    Returns
    -------
    CombinedToys
    """
    C = model.n_channels
    if len(n_bkg) != C or len(background) != C:
        raise FitInputError(f"toys: give n_bkg and background for each of the {C} channels, got {len(n_bkg)} and {len(background)}")
    if not all(np.isfinite(b) and b >= 0 for b in n_bkg):
        raise FitInputError(f"toys: n_bkg must be finite and >= 0 events, got {list(n_bkg)}")
    n_toys = int(n_toys)
    nu = nuisance_vector(model, nuisances)
    n_sig = true_signal_yields(model, float(mu), nu)
    masses, labels = [], []
    counts = np.zeros((n_toys, C), np.int64)
    for c, ch in enumerate(model.channels):
        lo, hi = ch.window
        shape = ch.shape
        ns = rng.poisson(n_sig[c], n_toys)
        nb = rng.poisson(n_bkg[c], n_toys)
        # the wrong pairs keep the nominal spectrum; the truth-matched peak is the true one
        n_tm = rng.binomial(ns, 1.0 - shape.comb_fraction)
        peak = true_peak_shape(model, c, nu).sample(int(n_tm.sum()), lo, hi, rng=rng)
        n_wp = ns - n_tm
        wrong = dataclasses.replace(shape, comb_fraction=1.0).sample(int(n_wp.sum()), lo, hi, rng=rng) if n_wp.sum() else np.zeros(0)
        bkg = background[c].sample(int(nb.sum()), lo, hi, rng=rng)
        x = np.concatenate([peak, wrong, bkg])
        toy = np.concatenate([np.repeat(np.arange(n_toys), n_tm), np.repeat(np.arange(n_toys), n_wp), np.repeat(np.arange(n_toys), nb)])
        sig = np.concatenate([np.ones(len(peak) + len(wrong), bool), np.zeros(len(bkg), bool)])
        order = np.argsort(toy, kind="stable")
        masses.append(x[order])
        labels.append(sig[order])
        counts[:, c] = ns + nb
    logger.debug("toys: %d toys, expected signal %s and background %s events per channel", n_toys, n_sig, list(n_bkg))
    return CombinedToys(tuple(masses), tuple(labels), counts, np.r_[float(mu), nu])


def global_observables(truth: ArrayLike, n_toys: int, *, rng: np.random.Generator) -> NDArray:
    """Auxiliary measurements (n_toys, S - 1) of a frequentist toy: each nuisance ~ N(true value, 1).

    ``truth`` is the nuisance vector (standard deviations, the model's order), or the full
    ``CombinedToys.truth`` minus its first entry.
    """
    t = np.asarray(truth, float)
    return t[None, :] + rng.standard_normal((int(n_toys), len(t)))


def toy_request(model: CombinedModel, toys: CombinedToys, *, spacing: float | None = None) -> CombinedRequest:
    """The toys as the k = n_toys hypotheses of one request: toy t, its window and its signal shape moved by ``t * spacing`` GeV.

    Every channel's fit depends only on positions relative to the window, so the stacked
    hypotheses are the toys' own fits. ``spacing`` defaults to twice the widest window.
    Relative peak shifts are not invariant under the move and are refused.
    """
    if any(s.kind == "shift" and s.relative for s in model.shapes):
        raise FitInputError("toy_request: relative peak shifts change when the toys are moved; use an absolute shift (GeV)")
    widths = [hi - lo for lo, hi in (ch.window for ch in model.channels)]
    gap = 2.0 * max(widths) if spacing is None else float(spacing)
    if not gap > max(widths):
        raise FitInputError(f"toy_request: spacing {gap} GeV must exceed the widest window ({max(widths)} GeV)")
    n = toys.n_toys
    off = gap * np.arange(n)
    base = take_hypotheses(CombinedRequest.from_model(model), np.zeros(n, np.int64))
    shapes: list[ShapeArrays] = []
    for s in base.shapes:
        edge = s.comb_edge if s.comb_edge is not None else np.full(n, np.inf)
        shapes.append(dataclasses.replace(s, mu=s.mu + off, comb_edge=np.where(np.isfinite(edge), edge + off, edge)))
    mgg = tuple(np.sort(toys.masses[c] + np.repeat(off, toys.counts[:, c])) for c in range(model.n_channels))
    return dataclasses.replace(base, sorted_mgg=mgg, shapes=tuple(shapes), lo=base.lo + off[:, None], hi=base.hi + off[:, None])


class CentredBatch(CombinedBatch):
    """A ``CombinedBatch`` whose data fits centre the nuisances' constraints at per-hypothesis global observables.

    Every minimisation of the data rows (the fits, the conditional fits of the limit search)
    uses ``centre`` (k, S - 1) unless the caller passes its own; the Asimov set keeps its own
    centres (the background-only fit's nuisances), so ``fits.combined_limits`` gives the CLs
    limits of a frequentist toy whose auxiliary measurements are ``centre``.
    """

    def __init__(self, request: CombinedRequest, centre: NDArray) -> None:
        super().__init__(request)
        c = np.asarray(centre, float)
        if c.shape != (request.k, request.n_shared - 1):
            raise FitInputError(f"toys: centre must have shape {(request.k, request.n_shared - 1)} (hypotheses, nuisances), got {c.shape}")
        self.centre = c

    def minimise(self, rows: Rows, start: CombinedState, *, mu_fixed: bool, blocks: NDArray | None = None, centre: NDArray | None = None,
                 max_iter: int = 100, tol: float = TOL) -> _Solution:
        """``CombinedBatch.minimise``, with the data rows' constraints centred at ``self.centre`` by default."""
        if centre is None and rows is self.data:
            centre = self.centre
        return super().minimise(rows, start, mu_fixed=mu_fixed, blocks=blocks, centre=centre, max_iter=max_iter, tol=tol)


def fit_toys(request: CombinedRequest, *, centre: NDArray | None = None, cl: float | None = None) -> CombinedTable:
    """Fit the k toys of ``request`` with their constraints centred at ``centre`` (k, S - 1) (default 0: ``evaluate_combined``).

    With ``cl``, also the observed CLs upper limits on mu (asymptotic, ``fits.combined_limits``).
    """
    from .combined_limits import observed_limits

    batch = CombinedBatch(request) if centre is None else CentredBatch(request, centre)
    batch.fit()
    if cl is None:
        return table_from_batch(batch)
    obs, ok = observed_limits(batch, cl=cl)
    return table_from_batch(batch, ul_obs=obs, limit_ok=ok)

"""The data of combined fits: a request for k hypotheses x C channels, and its rows of morphed templates.

Row ``r = h C + c`` holds the candidates of channel c in the window of
hypothesis h (padded to a common length) with, at every event,

- ``s0``: the nominal signal density (1/GeV, normalised on the window);
- ``dA[j]``, ``dB[j]``: the quadratic vertical interpolation of shape nuisance
  j, ``s(nu) = s0 + sum_j nu_j (dA_j + nu_j dB_j)`` with
  ``dA = (1 - f) (p+ - p-) / 2`` and ``dB = (1 - f) ((p+ + p-) / 2 - p0)``,
  where ``p0`` is the truth-matched peak (the DSCB core, normalised on the
  window) and ``p+-`` the peak with the nuisance at +-1 standard deviation,
  and ``f`` the wrong-pair fraction (zero where the nuisance does not act).
  The resolution and the peak position are properties of the truth-matched
  peak; the wrong-pair combinatorics is a smooth spectrum that they do not
  move, so it stays as it is;
- ``xp``: the scaled coordinate ``x' = 2 (x - lo) / (hi - lo) - 1`` of the
  Chebyshev background.

The same rows at the composite Gauss-Legendre nodes of each window (weights
times the expected density) make the Asimov data set (``asimov_rows``).
Densities at events come from the compiled ``fits._kernels.event_values``
(exactly ``SignalShape.pdf``), at nodes from ``fits.densities.signal_pdf``.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from .channels import CombinedModel
from .densities import ShapeArrays, kernel_shape_parameters, signal_pdf
from .design import quadrature_nodes, window_integrals
from .errors import FitInputError

logger = logging.getLogger(__name__)

__all__ = ["CombinedRequest", "Rows", "data_rows", "asimov_rows"]


@dataclass(frozen=True, eq=False)
class CombinedRequest:
    """What to fit: k hypotheses, each a set of C channels sharing the parameter of interest.

    Attributes
    ----------
    sorted_mgg : tuple of ndarray
        Per channel, its candidate masses (GeV), sorted.
    shapes : tuple of ShapeArrays
        Per channel, the signal shapes of the k hypotheses.
    lo, hi : ndarray (k, C)
        Windows (GeV).
    scale : ndarray (k, C)
        Signal events per unit of the parameter of interest.
    orders : ndarray (k, C) int
        Background order per hypothesis and channel.
    yield_coeff : ndarray (k, K, C)
        Yield nuisances: ``ln(1 + r)`` (log-normal) or ``r`` (Gaussian) per channel.
    yield_lognormal : ndarray (K,) of bool
    shape_kinds : tuple of str
        ``"resolution"`` or ``"shift"`` per shape nuisance (J).
    shape_relative : tuple of bool
        Relative shifts (J).
    shape_widths : ndarray (k, J, C)
        Width of each shape nuisance per channel (0: does not act).
    spurious_size : ndarray (k, A, C)
        Spurious-signal sizes (events).
    channel_names, nuisance_names : tuple of str
    """

    sorted_mgg: tuple[NDArray, ...]
    shapes: tuple[ShapeArrays, ...]
    lo: NDArray
    hi: NDArray
    scale: NDArray
    orders: NDArray
    yield_coeff: NDArray
    yield_lognormal: NDArray
    shape_kinds: tuple[str, ...]
    shape_relative: tuple[bool, ...]
    shape_widths: NDArray
    spurious_size: NDArray
    channel_names: tuple[str, ...]
    nuisance_names: tuple[str, ...]

    @property
    def k(self) -> int:
        return self.lo.shape[0]

    @property
    def n_channels(self) -> int:
        return self.lo.shape[1]

    @property
    def n_yield(self) -> int:
        return self.yield_coeff.shape[1]

    @property
    def n_spurious(self) -> int:
        return self.spurious_size.shape[1]

    @property
    def n_shape(self) -> int:
        return self.shape_widths.shape[1]

    @property
    def n_shared(self) -> int:
        """Parameters shared by the channels: mu, the yield, spurious-signal and shape nuisances."""
        return 1 + self.n_yield + self.n_spurious + self.n_shape

    @property
    def max_order(self) -> int:
        return int(np.max(self.orders))

    @classmethod
    def from_model(cls, model: CombinedModel) -> CombinedRequest:
        """The request of one combined hypothesis (k = 1)."""
        ch = model.channels
        return cls(
            sorted_mgg=tuple(c.mgg for c in ch),
            shapes=tuple(ShapeArrays.from_shapes([c.shape]) for c in ch),
            lo=np.array([[c.window[0] for c in ch]]),
            hi=np.array([[c.window[1] for c in ch]]),
            scale=np.array([[c.signal_scale for c in ch]]),
            orders=np.array([[c.bkg_order for c in ch]], dtype=np.int64),
            yield_coeff=model.yield_coeff[None],
            yield_lognormal=np.asarray(model.yield_lognormal, bool),
            shape_kinds=tuple(s.kind for s in model.shapes),
            shape_relative=tuple(bool(s.relative) for s in model.shapes),
            shape_widths=model.shape_widths[None],
            spurious_size=model.spurious_size[None],
            channel_names=model.names,
            nuisance_names=model.nuisance_names,
        )

    def peak(self, c: int, j: int | None = None, sign: float = 0.0) -> ShapeArrays:
        """Channel ``c``'s truth-matched peak (no wrong pairs) with shape nuisance ``j`` at ``sign`` (+-1) standard deviations."""
        sh = dataclasses.replace(self.shapes[c], comb_fraction=np.zeros(self.k))
        if j is None or sign == 0.0:
            return sh
        w = self.shape_widths[:, j, c]
        if self.shape_kinds[j] == "resolution":
            return dataclasses.replace(sh, sigma=sh.sigma * (1.0 + sign * w))
        return dataclasses.replace(sh, mu=sh.mu + sign * w * (sh.mu if self.shape_relative[j] else 1.0))


@dataclass(frozen=True, eq=False)
class Rows:
    """Rows (hypothesis x channel) of templates for ``fits._kernels.morph_pass``.

    Attributes
    ----------
    s0 : ndarray (R, n)
    dA, dB : ndarray (R, J, n)
    xp : ndarray (R, n)
    w : ndarray (R, n)
        Weights (Asimov rows; unused for data rows, ``unit``).
    n_ev : ndarray (R,) int
        Slots in use (events or nodes).
    integ : ndarray (R, P)
        Window integrals of ``T_0..T_{P-1}`` (GeV), P = max order + 1.
    beta_free : ndarray (R, P) bool
        Background coefficients that float (beyond a channel's order, and in
        windows without events, they are fixed at 0).
    unit : bool
        Events of weight 1 (data) rather than weighted nodes (Asimov).
    cheb_sums : ndarray (R, P), optional
        ``sum_i T_m(x'_i)`` over the events (start values).
    """

    s0: NDArray
    dA: NDArray
    dB: NDArray
    xp: NDArray
    w: NDArray
    n_ev: NDArray
    integ: NDArray
    beta_free: NDArray
    unit: bool
    cheb_sums: NDArray | None = None

    @property
    def n_rows(self) -> int:
        return self.s0.shape[0]

    def tile(self, m: int) -> Rows:
        """``m`` stacked copies (rows of copy i at ``i R + r``)."""
        t2 = lambda a: np.tile(a, (m, 1))  # noqa: E731
        t3 = lambda a: np.tile(a, (m, 1, 1))  # noqa: E731
        return Rows(t2(self.s0), t3(self.dA), t3(self.dB), t2(self.xp), t2(self.w), np.tile(self.n_ev, m), t2(self.integ),
                    t2(self.beta_free), self.unit, None if self.cheb_sums is None else t2(self.cheb_sums))

    def with_weights(self, w: NDArray) -> Rows:
        return dataclasses.replace(self, w=w, unit=False)


def _beta_free(req: CombinedRequest, empty: NDArray) -> NDArray:
    k, C, P = req.k, req.n_channels, req.max_order + 1
    free = np.arange(P)[None, None, :] <= np.asarray(req.orders)[:, :, None]
    free = free & ~empty[:, :, None]
    return free.reshape(k * C, P)


def _integrals(req: CombinedRequest) -> NDArray:
    P = req.max_order + 1
    integ = np.zeros((req.k, req.n_channels, P))
    for c in range(req.n_channels):
        integ[:, c, :] = window_integrals(req.lo[:, c], req.hi[:, c], P - 1)[:, 1:]
    return integ.reshape(-1, P)


def data_rows(req: CombinedRequest) -> Rows:
    """Rows of the candidates in each window (``req.sorted_mgg``)."""
    from . import _kernels as kern

    k, C, J, P = req.k, req.n_channels, req.n_shape, req.max_order + 1
    if J > kern.MORPH_MAX_NUISANCES:
        raise FitInputError(f"nuisances: at most {kern.MORPH_MAX_NUISANCES} shape nuisances per fit, got {J}")
    if req.max_order > kern.MORPH_MAX_ORDER:
        raise FitInputError(f"bkg_order: at most {kern.MORPH_MAX_ORDER} in combined fits, got {req.max_order}")
    starts, counts = [], []
    for c in range(C):
        x = req.sorted_mgg[c]
        st = np.searchsorted(x, req.lo[:, c], side="left")
        starts.append(st)
        counts.append(np.searchsorted(x, req.hi[:, c], side="right") - st)
    n_max = max(1, int(max(cnt.max(initial=0) for cnt in counts)))
    s0 = np.zeros((k, C, n_max))
    dA = np.zeros((k, C, J, n_max))
    dB = np.zeros((k, C, J, n_max))
    xp = np.zeros((k, C, n_max))
    cheb = np.zeros((k, C, P))

    def values(c: int, sh: ShapeArrays) -> tuple[NDArray, NDArray, NDArray]:
        s = np.empty((k, n_max))
        xpc = np.empty((k, n_max))
        ch = np.empty((k, P))
        xs = np.ascontiguousarray(req.sorted_mgg[c], dtype=float)
        kern.event_values(xs, np.ascontiguousarray(starts[c], dtype=np.int64), np.ascontiguousarray(counts[c], dtype=np.int64),
                          kernel_shape_parameters(sh, req.lo[:, c], req.hi[:, c]), P - 1, s, xpc, ch)
        return s, xpc, ch

    for c in range(C):
        s0[:, c], xp[:, c], cheb[:, c] = values(c, req.shapes[c])
        keep = (1.0 - req.shapes[c].comb_fraction)[:, None]
        p0 = None
        for j in range(J):
            if not np.any(req.shape_widths[:, j, c] > 0):
                continue
            if p0 is None:
                p0, _, _ = values(c, req.peak(c))
            pp, _, _ = values(c, req.peak(c, j, +1.0))
            pm, _, _ = values(c, req.peak(c, j, -1.0))
            dA[:, c, j] = keep * 0.5 * (pp - pm)
            dB[:, c, j] = keep * (0.5 * (pp + pm) - p0)
    n_ev = np.stack(counts, axis=1).astype(np.int64)
    R = k * C
    return Rows(s0.reshape(R, n_max), dA.reshape(R, J, n_max), dB.reshape(R, J, n_max), xp.reshape(R, n_max),
                np.zeros((R, 1)), n_ev.reshape(R), _integrals(req), _beta_free(req, n_ev == 0), True, cheb.reshape(R, P))


def asimov_rows(req: CombinedRequest, *, n_gl: int = 12) -> tuple[Rows, NDArray]:
    """Rows at the quadrature nodes of each window (weights still to be multiplied by the expected density).

    Returns the rows (``w`` = quadrature weights, GeV) and the node positions (R, M) in GeV.
    """
    k, C, J = req.k, req.n_channels, req.n_shape
    nodes, weights, s0, dA, dB, xp = [], [], [], [], [], []
    for c in range(C):
        lo, hi = req.lo[:, c], req.hi[:, c]
        x, wq = quadrature_nodes(req.shapes[c], lo, hi, n_gl=n_gl)
        nodes.append(x)
        weights.append(wq)
        s0.append(signal_pdf(x, req.shapes[c], lo, hi))
        a = np.zeros((k, J, x.shape[1]))
        b = np.zeros((k, J, x.shape[1]))
        keep = (1.0 - req.shapes[c].comb_fraction)[:, None]
        p0 = signal_pdf(x, req.peak(c), lo, hi) if J else None
        for j in range(J):
            if not np.any(req.shape_widths[:, j, c] > 0):
                continue
            pp = signal_pdf(x, req.peak(c, j, +1.0), lo, hi)
            pm = signal_pdf(x, req.peak(c, j, -1.0), lo, hi)
            a[:, j] = keep * 0.5 * (pp - pm)
            b[:, j] = keep * (0.5 * (pp + pm) - p0)
        dA.append(a)
        dB.append(b)
        xp.append((2.0 * x - (lo + hi)[:, None]) / (hi - lo)[:, None])
    M = max(x.shape[1] for x in nodes)

    def stack(parts: list[NDArray]) -> NDArray:
        padded = [np.pad(p, [(0, 0)] * (p.ndim - 1) + [(0, M - p.shape[-1])]) for p in parts]
        return np.stack(padded, axis=1)  # (k, C, ..., M)

    R = k * C
    n_ev = np.array([[x.shape[1]] * 1 for x in nodes]).T.repeat(k, axis=0).reshape(R).astype(np.int64)
    rows = Rows(stack(s0).reshape(R, M), stack(dA).reshape(R, J, M), stack(dB).reshape(R, J, M), stack(xp).reshape(R, M),
                stack(weights).reshape(R, M), n_ev, _integrals(req), _beta_free(req, np.zeros((k, C), bool)), False)
    return rows, stack(nodes).reshape(R, M)

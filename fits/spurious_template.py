"""Spurious signal on a background template without statistical noise (an Asimov fit of the template's density).

The spurious-signal test fits signal + background to a signal-free
background description and reads the fitted signal yield ``N_spur`` as the
bias of the background function. With a finite template sample the
fitted yield fluctuates by the sample's own statistical error, which is of
the order of the bias being measured unless the sample is hundreds of
times the data. Here the template is a density (events/GeV, normalised to
the data): the fit runs on its expectation at the Gauss-Legendre nodes of
each window (weights = quadrature weight x density), so ``N_spur`` is the
bias itself, and the inverse Hessian of the same fit is the statistical
error of the signal yield expected in data.

For every hypothesis and channel the lowest order whose
``|N_spur| < max_fraction x sigma_stat`` is chosen (the criterion of
``fits.spurious``); where no candidate order passes, the order with the
smallest ratio. The remaining ``|N_spur|`` at the chosen order is the size of
the spurious-signal nuisance (``fits.SpuriousSignal``).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from .combined import CombinedBatch, CombinedState
from .combined_rows import CombinedRequest, asimov_rows
from .errors import FitInputError

logger = logging.getLogger(__name__)

__all__ = ["SpuriousChoice", "template_spurious_signal"]


@dataclass(frozen=True, eq=False)
class SpuriousChoice:
    """Spurious signal per hypothesis and channel.

    Attributes
    ----------
    orders : (k, C) int array
        Chosen background order.
    size : (k, C) float array, events
        ``|N_spur|`` at the chosen order.
    nsig, nsig_err : (n_orders, k, C) float arrays, events
        Fitted spurious yield and the statistical error expected in data, per tested order.
    tested : tuple of int
    max_fraction : float
    """

    orders: NDArray
    size: NDArray
    nsig: NDArray
    nsig_err: NDArray
    tested: tuple[int, ...]
    max_fraction: float

    @property
    def ratio(self) -> NDArray:
        """``|N_spur| / sigma_stat`` (n_orders, k, C)."""
        return np.abs(self.nsig) / np.where(self.nsig_err > 0, self.nsig_err, np.inf)


def _channel_request(req: CombinedRequest, c: int, order: int) -> CombinedRequest:
    """Channel ``c`` of the request alone, signal in events (scale 1), no nuisances, background order ``order``."""
    k = req.k
    return dataclasses.replace(
        req, sorted_mgg=(np.zeros(0),), shapes=(req.shapes[c],), lo=req.lo[:, c : c + 1], hi=req.hi[:, c : c + 1], scale=np.ones((k, 1)),
        orders=np.full((k, 1), order, dtype=np.int64), yield_coeff=np.zeros((k, 0, 1)), yield_lognormal=np.zeros(0, bool),
        shape_kinds=(), shape_relative=(), shape_widths=np.zeros((k, 0, 1)), spurious_size=np.zeros((k, 0, 1)),
        channel_names=(req.channel_names[c],), nuisance_names=(),
    )


def template_spurious_signal(
    request: CombinedRequest,
    densities: Sequence[Callable[[NDArray], NDArray]],
    *,
    orders: Sequence[int] = (0, 1, 2, 3, 4),
    max_fraction: float = 0.2,
) -> SpuriousChoice:
    """Spurious signal of every hypothesis and channel of ``request`` on background densities.

    Parameters
    ----------
    request : CombinedRequest
        The hypotheses (windows, signal shapes) per channel; its candidates are not used.
    densities : sequence of callables
        Per channel, the background density in events/GeV at masses (GeV), normalised to that channel's data.
    orders : sequence of int
        Candidate background orders, tried from the lowest.
    max_fraction : float
        Criterion on ``|N_spur| / sigma_stat``.

    Raises
    ------
    FitInputError
        A density that is negative or not finite in a window, or a wrong number of densities.
    """
    if len(densities) != request.n_channels:
        raise FitInputError(f"densities: one per channel ({request.n_channels}), got {len(densities)}")
    tested = tuple(sorted(set(int(o) for o in orders)))
    k, C = request.k, request.n_channels
    nsig = np.zeros((len(tested), k, C))
    err = np.zeros((len(tested), k, C))
    for c in range(C):
        base, nodes = asimov_rows(_channel_request(request, c, max(tested)))
        dens = np.asarray(densities[c](nodes), dtype=float)
        if not np.all(np.isfinite(dens)) or np.any(dens < 0):
            raise FitInputError(f"channel {request.channel_names[c]!r}: the background template density is negative or not finite")
        weights = base.w * dens
        width = request.hi[:, c] - request.lo[:, c]
        total = weights.sum(axis=1)
        for t, order in enumerate(tested):
            sub = _channel_request(request, c, order)
            batch = CombinedBatch(sub)
            free = np.broadcast_to(np.arange(base.integ.shape[1])[None, :] <= order, base.integ.shape).copy()
            rows = dataclasses.replace(base.with_weights(weights), beta_free=free)
            beta = np.zeros((k, 1, max(tested) + 1))
            beta[:, 0, 0] = total / width  # flat start: T_0 integrates to the window width
            start = CombinedState(np.zeros((k, 1)), beta[:, :, : batch.P])
            rows = dataclasses.replace(rows, integ=rows.integ[:, : batch.P], beta_free=rows.beta_free[:, : batch.P])
            sol = batch.minimise(rows, start, mu_fixed=False)
            nsig[t, :, c] = np.where(sol.converged, sol.state.shared[:, 0], np.nan)
            var = sol.cov_shared[:, 0, 0]
            err[t, :, c] = np.sqrt(np.where(var > 0, var, np.nan))
    ratio = np.abs(nsig) / np.where(err > 0, err, np.inf)
    ratio = np.where(np.isfinite(ratio), ratio, np.inf)
    passing = ratio < max_fraction
    first = np.argmax(passing, axis=0)
    best = np.argmin(ratio, axis=0)
    pick = np.where(passing.any(axis=0), first, best)
    chosen = np.asarray(tested)[pick]
    size = np.abs(np.take_along_axis(nsig, pick[None], axis=0)[0])
    bad = ~np.isfinite(size)
    if bad.any():
        logger.warning("spurious signal: the template fit failed at %d of %d hypothesis-channel pairs; their size is set to 0", int(bad.sum()),
                       bad.size)
        size = np.where(bad, 0.0, size)
    return SpuriousChoice(orders=chosen.astype(np.int64), size=size, nsig=nsig, nsig_err=err, tested=tested, max_fraction=max_fraction)

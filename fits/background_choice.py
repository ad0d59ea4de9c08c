"""The background order of every hypothesis and channel chosen by the Fisher F-test, and requests with other orders.

Rule (``ftest_orders``)
-----------------------
For every hypothesis h and channel c separately, the candidates of c in the
window of h are fitted with the background alone (mu = 0, no nuisances: at
mu = 0 the channels share nothing, so each channel's background-only NLL is
its own minimum) at each tested order ``n_0 < n_1 < ... < n_last``, giving
``NLL_{h,c,i}`` (dimensionless, -ln L). Starting from the lowest order, the
choice moves from ``n_i`` to ``n_{i+1}`` while

    2 (NLL_i - NLL_{i+1}) > F_chi2^-1(1 - pvalue; d),   d = n_{i+1} - n_i,

(the likelihood-ratio form of the Fisher F-test for nested models: the
improvement of -2 ln L from d more free coefficients is compared with the
chi2 quantile with d degrees of freedom, d = 1 for consecutive orders), and
stops at the first order whose successor does not improve the fit
significantly (or at the highest tested order). A channel without candidates
in the window of a hypothesis gets the lowest tested order; a fit that does
not converge (NLL reported as NaN) ends the walk at the order before it.

The fits are vectorised over hypotheses and orders: one
``fits.combined.CombinedBatch`` per channel, its rows the k hypotheses
repeated once per tested order (row ``i k + h``), each with its own order
(``CombinedRequest.orders``; coefficients beyond a row's order are fixed at 0).
(``CombinedBatch.start`` truncates each row's moment projection to its own
order before checking that the starting background is positive.)

Requests with other orders
--------------------------
``with_orders`` (the same hypotheses with other background orders),
``take_hypotheses`` (a subset or repetition of the hypotheses) and
``channel_background_request`` (one channel, no nuisances) build the requests
that the F-test here and the envelope (``fits.envelope``) fit.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.stats import chi2

from .combined import CombinedBatch
from .combined_rows import CombinedRequest
from .errors import FitInputError

logger = logging.getLogger(__name__)

__all__ = ["OrderChoice", "ftest_orders", "choose_orders_request", "with_orders", "take_hypotheses",
           "channel_background_request", "check_orders"]


@dataclass(frozen=True, eq=False)
class OrderChoice:
    """The background orders chosen by the F-test (``ftest_orders``).

    Attributes
    ----------
    orders : ndarray (k, C) int
        Chosen Chebyshev order of every hypothesis and channel.
    nll : ndarray (k, C, n_orders)
        Background-only NLL (-ln L, dimensionless) of each channel at each tested order
        (NaN where the fit did not converge).
    tested : tuple of int
        The tested orders, increasing.
    pvalue : float
        Size of each step's test (probability).
    """

    orders: NDArray
    nll: NDArray
    tested: tuple[int, ...]
    pvalue: float


def check_orders(orders: Sequence[int], *, what: str = "orders") -> tuple[int, ...]:
    """The distinct candidate orders, increasing; raises ``FitInputError`` for none, negative or too high ones."""
    from ._kernels import MORPH_MAX_ORDER

    try:
        values = [int(o) for o in orders]
    except (TypeError, ValueError) as exc:
        raise FitInputError(f"{what}: expected a sequence of integers, got {orders!r}") from exc
    if not values:
        raise FitInputError(f"{what}: give at least one background order")
    if any(o != float(r) for o, r in zip(values, orders, strict=True)):
        raise FitInputError(f"{what}: orders must be integers, got {list(orders)}")
    bad = [o for o in values if not 0 <= o <= MORPH_MAX_ORDER]
    if bad:
        raise FitInputError(f"{what}: orders must be between 0 and {MORPH_MAX_ORDER} in combined fits, got {bad}")
    return tuple(sorted(set(values)))


def with_orders(request: CombinedRequest, orders: ArrayLike) -> CombinedRequest:
    """``request`` with the background orders ``orders`` ((k, C) ints, or anything broadcastable to it)."""
    o = np.broadcast_to(np.asarray(orders, dtype=np.int64), (request.k, request.n_channels)).copy()
    return dataclasses.replace(request, orders=o)


def take_hypotheses(request: CombinedRequest, idx: ArrayLike) -> CombinedRequest:
    """The hypotheses ``idx`` (integer positions, repeats allowed) of ``request``, channels and nuisances unchanged."""
    idx = np.asarray(idx, dtype=np.int64)
    return dataclasses.replace(
        request,
        shapes=tuple(s.take(idx) for s in request.shapes),
        lo=request.lo[idx],
        hi=request.hi[idx],
        scale=request.scale[idx],
        orders=np.asarray(request.orders, dtype=np.int64)[idx],
        yield_coeff=request.yield_coeff[idx],
        shape_widths=request.shape_widths[idx],
        spurious_size=request.spurious_size[idx],
    )


def channel_background_request(request: CombinedRequest, c: int, idx: ArrayLike, orders: ArrayLike) -> CombinedRequest:
    """Channel ``c`` of the hypotheses ``idx`` alone, without nuisances, with background orders ``orders`` (one per entry of ``idx``)."""
    idx = np.asarray(idx, dtype=np.int64)
    n = len(idx)
    return CombinedRequest(
        sorted_mgg=(request.sorted_mgg[c],),
        shapes=(request.shapes[c].take(idx),),
        lo=request.lo[idx, c : c + 1],
        hi=request.hi[idx, c : c + 1],
        scale=request.scale[idx, c : c + 1],
        orders=np.broadcast_to(np.asarray(orders, dtype=np.int64), (n,)).reshape(n, 1).copy(),
        yield_coeff=np.zeros((n, 0, 1)),
        yield_lognormal=np.zeros(0, bool),
        shape_kinds=(),
        shape_relative=(),
        shape_widths=np.zeros((n, 0, 1)),
        spurious_size=np.zeros((n, 0, 1)),
        channel_names=(request.channel_names[c],),
        nuisance_names=(),
    )


def _walk(nll: NDArray, tested: tuple[int, ...], pvalue: float) -> NDArray:
    """Index (k, C) of the chosen order: the first whose successor does not improve 2 NLL by more than the chi2 quantile."""
    if len(tested) == 1:
        return np.zeros(nll.shape[:2], np.int64)
    dof = np.diff(np.asarray(tested, float))
    threshold = chi2.ppf(1.0 - pvalue, dof)  # (n - 1,)
    with np.errstate(invalid="ignore"):
        gain = 2.0 * (nll[..., :-1] - nll[..., 1:])
        improves = np.isfinite(gain) & (gain > threshold)
    stop = np.concatenate([~improves, np.ones(nll.shape[:2] + (1,), bool)], axis=-1)
    return np.argmax(stop, axis=-1).astype(np.int64)


def ftest_orders(request: CombinedRequest, *, orders: Sequence[int] = (0, 1, 2, 3, 4, 5), pvalue: float = 0.05) -> OrderChoice:
    """Choose the background order of every hypothesis and channel by the F-test (see the module docstring).

    Parameters
    ----------
    request : CombinedRequest
        k hypotheses x C channels (its own orders, nuisances and signal are ignored).
    orders : sequence of int
        Candidate Chebyshev orders (sorted, duplicates dropped).
    pvalue : float
        Size of the test of each step (0 < pvalue < 1; 0.05: accept a higher order only if p < 0.05).

    Returns
    -------
    OrderChoice
    """
    tested = check_orders(orders)
    if not 0.0 < pvalue < 1.0:
        raise FitInputError(f"pvalue: must be between 0 and 1, got {pvalue}")
    k, C, n = request.k, request.n_channels, len(tested)
    hyp = np.tile(np.arange(k), n)  # row i k + h: hypothesis h at order tested[i]
    row_orders = np.repeat(np.asarray(tested, np.int64), k)
    nll = np.full((k, C, n), np.nan)
    empty = np.zeros((k, C), bool)
    for c in range(C):
        batch = CombinedBatch(channel_background_request(request, c, hyp, row_orders))
        sol = batch.minimise(batch.data, batch.start(), mu_fixed=True)
        values = np.where(sol.converged, sol.nll, np.nan)
        nll[:, c, :] = values.reshape(n, k).T
        empty[:, c] = batch.data.n_ev[:k] == 0
        if not np.all(sol.converged | np.tile(empty[:, c], n)):
            logger.warning("F-test: %d background-only fit(s) of channel %s did not converge; their walk stops below them",
                           int(np.sum(~sol.converged)), request.channel_names[c])
    chosen = np.asarray(tested, np.int64)[_walk(nll, tested, pvalue)]
    chosen = np.where(empty, tested[0], chosen)
    return OrderChoice(orders=chosen, nll=nll, tested=tested, pvalue=float(pvalue))


def choose_orders_request(request: CombinedRequest, choice: OrderChoice) -> CombinedRequest:
    """``request`` with the orders chosen by ``ftest_orders``."""
    if choice.orders.shape != (request.k, request.n_channels):
        raise FitInputError(f"choice: orders of shape {choice.orders.shape} do not match the request's {(request.k, request.n_channels)}")
    return with_orders(request, choice.orders)

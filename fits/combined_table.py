"""Many combined hypotheses at once: fits, local significance and CLs limits as arrays (the scans' entry point).

``evaluate_combined(request)`` fits the k hypotheses of a ``CombinedRequest``
(each a set of channels sharing the parameter of interest ``mu``) and
returns a ``CombinedTable``: ``mu`` and its error, the signed local
significance, observed and expected CLs limits on ``mu``, the fitted signal
and background events of every channel and the post-fit nuisances. A
hypothesis whose numbers are not finite is flagged (``converged`` False, a
``reason``), never returned as a silent NaN.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from signal_models._common.defaults import DEFAULT_CL

from .combined import CombinedBatch
from .combined_rows import CombinedRequest

logger = logging.getLogger(__name__)

__all__ = ["CombinedTable", "evaluate_combined", "evaluate_combined_expected", "table_from_batch"]


@dataclass(frozen=True, eq=False)
class CombinedTable:
    """Results of k combined hypotheses (arrays over hypotheses; ``mu`` in its own units).

    Attributes
    ----------
    mu_hat, mu_err : ndarray (k,)
        Fitted parameter of interest and its error (inverse Hessian).
    nll, nll_bkg_only : ndarray (k,)
        Minimum NLL, free and at mu = 0.
    z_local : ndarray (k,)
        Signed local significance ``sign(mu) sqrt(q0)``.
    converged : ndarray (k,) bool
    reason : tuple of str
        Why a hypothesis is flagged ("" if it is not).
    ul_obs : ndarray (k,) or None
        Observed CLs upper limit on mu.
    ul_exp : ndarray (k, 5) or None
        Expected limits at -2, -1, 0, +1, +2 standard deviations.
    n_events : ndarray (k, C) int
        Candidates of each channel in its window.
    channel_nsig, channel_nbkg : ndarray (k, C)
        Fitted signal and background events per channel.
    nuisance_hat, nuisance_err : ndarray (k, S - 1)
        Post-fit nuisances in units of their constraints, and their errors.
    bkg_orders : ndarray (k, C) int
        Background order of each channel.
    channel_names, nuisance_names : tuple of str
    gof_pvalue : ndarray (k,) or None
        Binned goodness-of-fit p-value of each hypothesis (``fits.goodness_of_fit.gof_combined``; NaN where
        it could not be computed), when asked for.
    """

    mu_hat: NDArray
    mu_err: NDArray
    nll: NDArray
    nll_bkg_only: NDArray
    z_local: NDArray
    converged: NDArray
    reason: tuple[str, ...]
    ul_obs: NDArray | None
    ul_exp: NDArray | None
    n_events: NDArray
    channel_nsig: NDArray
    channel_nbkg: NDArray
    nuisance_hat: NDArray
    nuisance_err: NDArray
    bkg_orders: NDArray
    channel_names: tuple[str, ...]
    nuisance_names: tuple[str, ...]
    gof_pvalue: NDArray | None = None

    def __len__(self) -> int:
        return len(self.mu_hat)


def _reasons(request: CombinedRequest, n_events: NDArray, fit_ok: NDArray, finite: NDArray, limit_ok: NDArray | None) -> list[str]:
    out = []
    for h in range(request.k):
        parts = []
        empty = [request.channel_names[c] for c in range(request.n_channels) if n_events[h, c] == 0]
        if len(empty) == request.n_channels:
            parts.append("no candidates in any channel's window")
        elif empty:
            parts.append(f"no candidates in the window of channel(s) {', '.join(empty)} (fitted with the others)")
        if not fit_ok[h]:
            parts.append("the combined fit did not converge")
        elif not finite[h]:
            parts.append("non-finite fit result")
        if limit_ok is not None and fit_ok[h] and finite[h] and not limit_ok[h]:
            parts.append("the limit search did not converge")
        out.append("; ".join(parts))
    return out


def table_from_batch(batch: CombinedBatch, *, ul_obs: NDArray | None = None, ul_exp: NDArray | None = None,
                     limit_ok: NDArray | None = None) -> CombinedTable:
    """The table of a fitted ``CombinedBatch`` (``batch.fit()`` done), with limits when given."""
    req = batch.req
    bf = batch.fit_
    assert bf is not None, "fit() first"
    n_events = batch.data.n_ev.reshape(req.k, req.n_channels).astype(np.int64)
    finite = np.isfinite(bf.mu_hat) & np.isfinite(bf.mu_err) & np.isfinite(bf.z_local) & np.isfinite(bf.nll_hat)
    if ul_obs is not None:
        finite &= np.isfinite(ul_obs)
    if ul_exp is not None:
        finite &= np.all(np.isfinite(ul_exp), axis=1)
    any_events = n_events.sum(axis=1) > 0
    ok = bf.converged & finite & any_events & (np.ones(req.k, bool) if limit_ok is None else limit_ok)
    reason = _reasons(req, n_events, bf.converged, finite, limit_ok)
    return CombinedTable(
        mu_hat=bf.mu_hat, mu_err=bf.mu_err, nll=bf.nll_hat, nll_bkg_only=bf.nll_zero, z_local=bf.z_local, converged=ok,
        reason=tuple(reason), ul_obs=ul_obs, ul_exp=ul_exp, n_events=n_events, channel_nsig=bf.channel_yields,
        channel_nbkg=bf.channel_background, nuisance_hat=bf.nuisance_hat, nuisance_err=bf.nuisance_err,
        bkg_orders=np.asarray(req.orders, dtype=np.int64).copy(), channel_names=req.channel_names, nuisance_names=req.nuisance_names,
    )


def evaluate_combined(request: CombinedRequest, *, cl: float = DEFAULT_CL, limits: bool = True, expected: bool = True,
                      gof: bool = False) -> CombinedTable:
    """Fit the k hypotheses of ``request``; with ``limits``, observed (and ``expected``) CLs limits on mu.

    Parameters
    ----------
    request : CombinedRequest
        k hypotheses x C channels.
    cl : float
        Confidence level of the limits.
    limits, expected : bool
        Compute the observed, and the expected, limits (fits and local Z only when False).
    gof : bool
        Also the binned goodness-of-fit p-value of every hypothesis (asymptotic).

    Returns
    -------
    CombinedTable
    """
    from .combined_limits import expected_limits, observed_limits

    batch = CombinedBatch(request)
    batch.fit()
    pvalues = None
    if gof:
        from .goodness_of_fit import gof_combined

        res = gof_combined(batch)
        pvalues = np.where(res.ok, res.pvalue, np.nan)
    if not limits:
        return dataclasses.replace(table_from_batch(batch), gof_pvalue=pvalues)
    obs, obs_ok = observed_limits(batch, cl=cl)
    exp, exp_ok = expected_limits(batch, cl=cl) if expected else (None, np.ones(request.k, bool))
    return dataclasses.replace(table_from_batch(batch, ul_obs=obs, ul_exp=exp, limit_ok=obs_ok & exp_ok), gof_pvalue=pvalues)


def evaluate_combined_expected(request: CombinedRequest, *, cl: float = DEFAULT_CL, reference_mu: float | None = None,
                               gof_sideband_n_sigma: float | None = None) -> tuple[CombinedTable, NDArray | None]:
    """Expected quantities only (blind analyses): no fit with a free parameter of interest is made.

    The data are fitted with mu fixed at 0 (background only, nuisances
    profiled); the Asimov set of that fit gives the expected CLs band. No
    fitted mu, no local significance and no observed limit is computed: those
    fields of the table are NaN and must not be reported.

    Parameters
    ----------
    request : CombinedRequest
    cl : float
        Confidence level of the expected limits.
    reference_mu : float, optional
        A reference signal (in units of mu): its median expected significance
        ``Z_A = mu_ref / sigma_A`` (Asimov standard deviation of mu, Cowan et al.
        arXiv:1007.1727) is returned as the second value.
    gof_sideband_n_sigma : float, optional
        Also a sideband-only goodness of fit of the background-only fit: the binned test on the bins
        outside ``peak +- n sigma`` of each channel (``gof_pvalue`` of the table).

    Returns
    -------
    table : CombinedTable
        ``ul_exp``, ``n_events``, ``channel_nbkg``, ``bkg_orders`` and the flags; the observed fields are NaN.
    z_reference : ndarray (k,) or None
    """
    from .combined import CombinedFit
    from .combined_limits import asimov_sigma, expected_limits

    batch = CombinedBatch(request)
    zero = batch.minimise(batch.data, batch.start(), mu_fixed=True)
    k = request.k
    nan = np.full(k, np.nan)
    integ = batch.data.integ.reshape(k, batch.C, batch.P)
    nbkg = np.einsum("kcp,kcp->kc", integ, zero.state.beta)
    batch.fit_ = CombinedFit(nan, nan, nan, zero.nll, nan, np.full((k, batch.S - 1), np.nan), np.full((k, batch.S - 1), np.nan),
                             np.full((k, batch.C), np.nan), nbkg, zero.converged, zero.state, zero.state)
    exp, exp_ok = expected_limits(batch, cl=cl)
    z_ref = None if reference_mu is None else float(reference_mu) / asimov_sigma(batch)
    n_events = batch.data.n_ev.reshape(k, batch.C).astype(np.int64)
    finite = np.all(np.isfinite(exp), axis=1)
    ok = zero.converged & exp_ok & finite & (n_events.sum(axis=1) > 0)
    reason = _reasons(request, n_events, zero.converged, finite, exp_ok)
    gof = None
    if gof_sideband_n_sigma is not None:
        from .goodness_of_fit import gof_combined

        res = gof_combined(batch, background_only=True, sideband_n_sigma=gof_sideband_n_sigma)
        gof = np.where(res.ok, res.pvalue, np.nan)
    table = CombinedTable(
        mu_hat=nan, mu_err=nan, nll=nan, nll_bkg_only=zero.nll, z_local=nan, converged=ok, reason=tuple(reason), ul_obs=None,
        ul_exp=exp, n_events=n_events, channel_nsig=np.full((k, batch.C), np.nan), channel_nbkg=nbkg,
        nuisance_hat=np.full((k, batch.S - 1), np.nan), nuisance_err=np.full((k, batch.S - 1), np.nan),
        bkg_orders=np.asarray(request.orders, dtype=np.int64).copy(), channel_names=request.channel_names,
        nuisance_names=request.nuisance_names, gof_pvalue=gof,
    )
    return table, z_ref

"""Asymptotic CLs limits of combined fits (``fits.combined.CombinedBatch``), in units of the shared parameter of interest.

The test statistic is q~_mu of every hypothesis' combined likelihood (all
channels, nuisances profiled); ``q_A`` comes from the Asimov data set of the
background-only fit. The root finding is ``fits.limit_search``'s, as for the
one-channel engine.
"""

from __future__ import annotations

import logging

import numpy as np
from numpy.typing import NDArray
from scipy.special import ndtri

from signal_models._common.defaults import DEFAULT_CL

from .asymptotic import N_SIGMA, cls_asymptotic, expected_band_targets, q_tilde
from .combined import CombinedBatch, CombinedState
from .limit_search import expected_limit_search, observed_limit_search, observed_start

logger = logging.getLogger(__name__)

__all__ = ["asimov_sigma", "observed_limits", "expected_limits"]


def asimov_sigma(batch: CombinedBatch) -> NDArray:
    """Standard deviation (k,) of the parameter of interest on the Asimov set (inverse Hessian at the generating point)."""
    rows, centre, _ = batch.asimov()
    bf = batch.fit_
    assert bf is not None
    ev = batch.evaluate(rows, bf.zero, np.arange(batch.k), centre)
    free = np.ones(batch.S, bool)
    _, _, _, cov = batch.newton_direction(ev, free)
    s = np.sqrt(np.abs(cov[:, 0, 0]))
    return np.where(np.isfinite(s) & (s > 0), s, np.where(np.isfinite(bf.mu_err), bf.mu_err, 1.0))


def observed_limits(batch: CombinedBatch, *, cl: float = DEFAULT_CL, max_iter: int = 60, htol: float = 2e-4,
                    rtol: float = 1e-6) -> tuple[NDArray, NDArray]:
    """Observed CLs limits (k,) on the parameter of interest and a convergence flag (k,)."""
    bf = batch.fit_
    assert bf is not None, "fit() first"
    rows_a, centre, nll_a0 = batch.asimov()
    alpha = 1.0 - cl
    target = ndtri(alpha)
    sig = np.where(np.isfinite(bf.mu_err), bf.mu_err, asimov_sigma(batch))
    x0, sg = observed_start(bf.mu_hat, sig, alpha)
    state = {"data": bf.hat, "asimov": bf.zero}

    def h_of(x: NDArray, act: NDArray) -> NDArray:
        c = batch.minimise(batch.data, state["data"].with_mu(x), mu_fixed=True)
        a = batch.minimise(rows_a, state["asimov"].with_mu(x), mu_fixed=True, centre=centre)
        q = q_tilde(c.nll, bf.nll_hat, bf.nll_zero, x, bf.mu_hat)
        qa = np.maximum(2.0 * (a.nll - nll_a0), 0.0)
        cls, _, _ = cls_asymptotic(q, qa)
        state["data"] = _where(act, c.state, state["data"])
        state["asimov"] = _where(act, a.state, state["asimov"])
        return ndtri(np.clip(cls, 1e-300, 1.0 - 1e-16)) - target

    return observed_limit_search(h_of, x0, sg, max_iter=max_iter, htol=htol, rtol=rtol)


def expected_limits(batch: CombinedBatch, *, cl: float = DEFAULT_CL, n_sigma: NDArray = N_SIGMA, max_iter: int = 30,
                    rtol: float = 1e-5) -> tuple[NDArray, NDArray]:
    """Expected limits (k, len(n_sigma)) on the parameter of interest and a convergence flag (k,)."""
    bf = batch.fit_
    assert bf is not None, "fit() first"
    rows_a, centre, nll_a0 = batch.asimov()
    k = batch.k
    targets = expected_band_targets(1.0 - cl, n_sigma=n_sigma)
    m = len(targets)
    rep = rows_a.tile(m)
    centre_m = np.tile(centre, (m, 1))
    nll0 = np.tile(nll_a0, m)
    tgt = np.repeat(targets[None, :], k, axis=0).T.reshape(-1)  # band position i of hypothesis h at i k + h
    state = {"s": bf.zero.tile(m)}

    def qa_of(x: NDArray) -> NDArray:
        a = batch.minimise(rep, state["s"].with_mu(x), mu_fixed=True, centre=centre_m)
        state["s"] = a.state
        return np.maximum(2.0 * (a.nll - nll0), 0.0)

    x, done = expected_limit_search(qa_of, tgt * np.tile(asimov_sigma(batch), m), tgt, max_iter=max_iter, rtol=rtol)
    return x.reshape(m, k).T, done.reshape(m, k).all(axis=0)


def _where(mask: NDArray, new: CombinedState, old: CombinedState) -> CombinedState:
    return CombinedState(np.where(mask[:, None], new.shared, old.shared), np.where(mask[:, None, None], new.beta, old.beta))

"""Asymptotic formulae for the profile-likelihood test statistics.

Cowan, Cranmer, Gross, Vitells, Eur. Phys. J. C 71 (2011) 1554,
arXiv:1007.1727. ``q~_mu`` (their eq. 16) for upper limits and ``q0`` for
discovery; ``q_A`` is the statistic evaluated on the Asimov data set of the
background-only hypothesis.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import ndtr, ndtri

__all__ = ["q_tilde", "cls_asymptotic", "expected_band_targets", "N_SIGMA", "z_from_q0"]

#: the expected-band positions (-2, -1, 0, +1, +2 sigma)
N_SIGMA = np.array([-2.0, -1.0, 0.0, 1.0, 2.0])


def q_tilde(nll_mu: ArrayLike, nll_hat: ArrayLike, nll_zero: ArrayLike, mu: ArrayLike, mu_hat: ArrayLike) -> NDArray:
    """``q~_mu`` from the NLL values of the conditional (at ``mu``), unconditional and ``mu = 0`` fits.

    ``q~ = 2 (NLL(mu) - NLL(0))`` if ``mu_hat < 0``; ``2 (NLL(mu) - NLL(mu_hat))``
    if ``0 <= mu_hat <= mu``; 0 if ``mu_hat > mu``. Clipped at 0 (rounding).
    """
    nll_mu, nll_hat, nll_zero = (np.asarray(a, float) for a in (nll_mu, nll_hat, nll_zero))
    mu, mu_hat = np.asarray(mu, float), np.asarray(mu_hat, float)
    ref = np.where(mu_hat < 0, nll_zero, nll_hat)
    q = 2.0 * (nll_mu - ref)
    q = np.where(mu_hat > mu, 0.0, q)
    return np.maximum(q, 0.0)


def z_from_q0(nll_zero: ArrayLike, nll_hat: ArrayLike, mu_hat: ArrayLike) -> NDArray:
    """Signed local significance ``sign(mu_hat) sqrt(q0)`` with ``q0 = 2 (NLL(0) - NLL(mu_hat))``."""
    q0 = np.maximum(2.0 * (np.asarray(nll_zero, float) - np.asarray(nll_hat, float)), 0.0)
    return np.sign(np.asarray(mu_hat, float)) * np.sqrt(q0)


def cls_asymptotic(q: ArrayLike, q_a: ArrayLike) -> tuple[NDArray, NDArray, NDArray]:
    """Asymptotic ``(CLs, p_mu, 1 - p_b)`` for ``q~_mu`` given the Asimov value ``q_A``.

    For ``q~ <= q_A``: ``p_mu = 1 - Phi(sqrt(q~))``, ``1 - p_b = Phi(sqrt(q_A) - sqrt(q~))``;
    otherwise ``p_mu = 1 - Phi((q~ + q_A) / (2 sqrt(q_A)))`` and
    ``1 - p_b = 1 - Phi((q~ - q_A) / (2 sqrt(q_A)))``.
    """
    q = np.maximum(np.asarray(q, float), 0.0)
    q_a = np.maximum(np.asarray(q_a, float), 1e-300)
    sq, sqa = np.sqrt(q), np.sqrt(q_a)
    low = q <= q_a
    p_mu = np.where(low, ndtr(-sq), ndtr(-(q + q_a) / (2.0 * sqa)))
    one_m_pb = np.where(low, ndtr(sqa - sq), ndtr(-(q - q_a) / (2.0 * sqa)))
    cls = p_mu / np.maximum(one_m_pb, 1e-300)
    return np.clip(cls, 0.0, 1.0), p_mu, one_m_pb


def expected_band_targets(alpha: float, *, n_sigma: ArrayLike = N_SIGMA) -> NDArray:
    """``sqrt(q_A)`` at the expected CLs limit of band position N: ``Phi^-1(1 - alpha Phi(N)) + N``.

    With ``sigma^2 = mu^2 / q_A`` this is the closed form
    ``mu_N = sigma (Phi^-1(1 - alpha Phi(N)) + N)``.
    """
    n = np.asarray(n_sigma, float)
    return ndtri(1.0 - alpha * ndtr(n)) + n

"""Toy CLs of one hypothesis from its ``q~`` samples: importance weights, survival functions, crossings, errors.

At each POI value ``x`` there are ``n`` background-only toys and ``n``
signal + background toys (toy ``i`` of both drawn from the same random numbers,
``fits.toy_sampling``), each with ``q~_x`` and the log likelihood ratio
``l = log f_sb / f_b`` of the two generating models on it.

Mixture importance sampling (balance heuristic): both sets are one sample of
the mixture ``(f_b + f_sb) / 2``, so every toy counts for both tail
probabilities, with weights ``w_sb = 2 / (1 + exp(-l))`` and ``w_b = 2 / (1 +
exp(l))`` (bounded by 2, self-normalised). The tail ``P_sb(q >= q_obs)`` of an
observed limit, or ``P_sb(q >= q_N)`` of the -2 sigma expected limit (about
1e-3), is then estimated from the many background-only toys with a small
weight instead of the few signal + background toys that reach it; this is
what keeps CLs stable with a hundred toys.

Survival functions are linear between mid-p knots (at each distinct positive
``q`` the weight above it plus half its own, at ``q -> 0+`` the weight with
``q > 0``; ``S(c) = 1`` for ``c <= 0``, the value at the largest ``q`` beyond
it). Observed: ``CLs = S_sb(q_obs) / S_b(q_obs)``. Expected band position N:
``q_N`` solves ``S_b(q_N) = Phi(N)`` and ``CLs_N = S_sb(q_N) / S_b(q_N)``.

Crossings: the CLs curve of each of the six quantities is made non-increasing
in the POI (mean of its running minimum from below and running maximum from
above, which leaves a monotone curve unchanged), then ``probit(CLs) -
probit(1 - cl)`` is interpolated linearly between the two POI values around
its first sign change. A crossing below the first or above the last POI value
is reported as such (the caller adds POI values; it never returns a grid edge).

Monte Carlo errors: Poisson bootstrap replicates weight toy index ``i`` by
``v_i ~ Poisson(1)`` (the same weight for its background-only and all its
signal + background toys, which share random numbers); the error of a limit
is the standard deviation of its crossing over the replicates.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.special import expit, ndtr, ndtri

from .asymptotic import N_SIGMA

__all__ = ["PoiToys", "N_CURVES", "cls_replicates", "crossings", "bootstrap_weights", "BOOTSTRAP_KEY"]

#: the observed limit and the five expected-band positions
N_CURVES = 1 + len(N_SIGMA)
#: last element of the random-number key of the bootstrap weights (above every toy block number)
BOOTSTRAP_KEY = 1 << 40
_EPS = 1e-12


@dataclass(frozen=True)
class PoiToys:
    """The toys of one hypothesis at one POI value.

    ``q_b``, ``l_b``: ``q~`` and ``log f_sb / f_b`` of background-only toys
    ``0 .. n-1``; ``q_sb``, ``l_sb`` the same for signal + background toys
    ``0 .. n-1``; ``q_obs``: ``q~`` of the data.
    """

    poi: float
    q_obs: float
    q_b: NDArray
    l_b: NDArray
    q_sb: NDArray
    l_sb: NDArray

    @property
    def n(self) -> int:
        return len(self.q_b)


def bootstrap_weights(seed: int, key: tuple[int, ...], replicates: int, n_toys: int) -> NDArray:
    """Poisson(1) weights (1 + replicates, n_toys) per toy index; row 0 is the nominal sample (all 1)."""
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key + (BOOTSTRAP_KEY,)))
    v = np.ones((1 + replicates, n_toys))
    v[1:] = rng.poisson(1.0, (replicates, n_toys))
    return v


def _knots(q: NDArray, W: NDArray) -> tuple[NDArray, NDArray]:
    """Mid-p knots of the survival function of weighted samples: positions (m + 1,) and values (R, m + 1)."""
    tot = W.sum(axis=1)
    tot = np.where(tot > 0, tot, 1.0)
    pos = q > 0
    qp = q[pos]
    order = np.argsort(qp, kind="stable")
    qs = qp[order]
    Ws = W[:, pos][:, order]
    if len(qs) == 0:
        return np.zeros(1), np.zeros((W.shape[0], 1))
    first = np.concatenate([[True], qs[1:] > qs[:-1]])
    starts = np.flatnonzero(first)
    u = qs[starts]
    Wu = np.add.reduceat(Ws, starts, axis=1)  # (R, m) weight at each distinct value
    G = np.cumsum(Wu[:, ::-1], axis=1)[:, ::-1]  # weight with q >= u_i
    vals = np.concatenate([G[:, :1], G - 0.5 * Wu], axis=1) / tot[:, None]
    return np.concatenate([[0.0], u]), vals


def _survival_at(pos: NDArray, vals: NDArray, c: NDArray) -> NDArray:
    """Survival functions (R,) at ``c`` (R,): 1 for ``c <= 0``, linear between knots, the last value beyond them."""
    R = vals.shape[0]
    m = len(pos)
    cc = np.minimum(c, pos[-1])
    i = np.clip(np.searchsorted(pos, cc, side="left"), 1, max(m - 1, 1))
    if m == 1:
        out = vals[:, 0].copy()
    else:
        p0, p1 = pos[i - 1], pos[i]
        r = np.arange(R)
        v0, v1 = vals[r, i - 1], vals[r, i]
        f = np.where(p1 > p0, (cc - p0) / np.where(p1 > p0, p1 - p0, 1.0), 0.0)
        out = v0 + f * (v1 - v0)
    return np.where(c <= 0, 1.0, out)


def _inverse_survival(pos: NDArray, vals: NDArray, target: float) -> NDArray:
    """``c`` (R,) with ``S(c) = target`` on the linear survival functions (0 above ``S(0+)``, the last knot below the last value)."""
    R, m = vals.shape
    above = (vals > target).sum(axis=1)  # knots with S above the target (S is non-increasing)
    j = np.clip(above - 1, 0, m - 1)
    jn = np.clip(j + 1, 0, m - 1)
    r = np.arange(R)
    v0, v1 = vals[r, j], vals[r, jn]
    with np.errstate(divide="ignore", invalid="ignore"):
        f = np.where(v0 > v1, (v0 - target) / (v0 - v1), 0.0)
    c = pos[j] + np.clip(f, 0.0, 1.0) * (pos[jn] - pos[j])
    c = np.where(above == 0, 0.0, c)
    return np.where(above >= m, pos[-1], c)


def cls_replicates(t: PoiToys, v: NDArray) -> NDArray:
    """CLs (R, N_CURVES) of the observed limit and the band positions ``N_SIGMA`` at ``t.poi`` for each replicate.

    ``v`` (R, >= n): bootstrap weights per toy index (row 0 all 1).
    """
    n = t.n
    q = np.concatenate([t.q_b, t.q_sb])
    ell = np.concatenate([t.l_b, t.l_sb])
    vv = np.concatenate([v[:, :n], v[:, :n]], axis=1)
    pos_b, kb = _knots(q, vv * (2.0 * expit(-ell))[None, :])
    pos_s, ks = _knots(q, vv * (2.0 * expit(ell))[None, :])
    R = v.shape[0]
    out = np.empty((R, N_CURVES))
    c_obs = np.full(R, t.q_obs)
    out[:, 0] = _ratio(_survival_at(pos_s, ks, c_obs), _survival_at(pos_b, kb, c_obs))
    for jn, nn in enumerate(N_SIGMA):
        qn = _inverse_survival(pos_b, kb, float(ndtr(nn)))
        out[:, 1 + jn] = _ratio(_survival_at(pos_s, ks, qn), _survival_at(pos_b, kb, qn))
    return out


def _ratio(a: NDArray, b: NDArray) -> NDArray:
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(b > 0, a / np.where(b > 0, b, 1.0), np.where(a > 0, 1.0, 0.0))
    return np.clip(r, 0.0, 1.0)


def crossings(pois: NDArray, cls: NDArray, alpha: float) -> tuple[NDArray, NDArray]:
    """Crossings of ``CLs = alpha`` (R, C) and where each lies (R, C): 0 inside the POI range, -1 below, +1 above.

    ``pois`` (G,) increasing, ``cls`` (R, G, C). Outside the range the
    crossing is extrapolated linearly in probit from the two end points
    (not a limit: the caller adds POI values or flags it).
    """
    lo_env = np.minimum.accumulate(cls, axis=1)
    hi_env = np.maximum.accumulate(cls[:, ::-1], axis=1)[:, ::-1]
    m = 0.5 * (lo_env + hi_env)
    h = ndtri(np.clip(m, _EPS, 1.0 - _EPS)) - ndtri(alpha)  # (R, G, C), non-increasing in G
    G = len(pois)
    below = h < 0
    first = np.where(below.any(axis=1), below.argmax(axis=1), G)  # (R, C)
    where = np.where(first == 0, -1, np.where(first == G, 1, 0))
    if G == 1:
        x = np.broadcast_to(pois[0], first.shape).copy()
        return x, where
    i1 = np.clip(first, 1, G - 1)
    i1 = np.where(first == G, G - 1, i1)
    i0 = i1 - 1
    R, C = first.shape
    rr = np.arange(R)[:, None]
    cc = np.arange(C)[None, :]
    h0, h1 = h[rr, i0, cc], h[rr, i1, cc]
    x0, x1 = pois[i0], pois[i1]
    with np.errstate(divide="ignore", invalid="ignore"):
        f = np.where(h0 != h1, h0 / (h0 - h1), 0.0)
    x = x0 + f * (x1 - x0)
    # no slope to extrapolate with (CLs flat at the end points): half the lowest or twice the highest value
    flat = h0 == h1
    x = np.where(flat & (where < 0), 0.5 * pois[0], np.where(flat & (where > 0), 2.0 * pois[-1], x))
    return np.maximum(x, 0.0), where

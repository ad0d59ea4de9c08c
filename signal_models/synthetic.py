"""Synthetic signal MC drawn from known smooth parameter curves (tests, benchmarks, tutorials).

The diphoton mass of each candidate is drawn exactly from the shape
(inverse CDF of the analytic integrals, ``SignalShape.sample``), with
parameters that vary smoothly with the generated mass; the truth is
therefore known and the calibration + interpolation can be checked for
closure. Not a detector simulation: ``bumphunt.toymc`` is.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
from numpy.typing import NDArray

from .combinatorial import comb_integral, edge_factor
from .shapes import SignalShape

__all__ = ["TruthCurves", "generate_candidates"]


@dataclass(frozen=True)
class TruthCurves:
    """Known smooth dependence of the signal shape and efficiency on the mass m (GeV).

    Defaults loosely follow a Belle II-like diphoton resolution (~1% of m
    plus a constant) with a low-side energy-leakage tail.

    ``comb0 + comb1 * m`` is the wrong-pair fraction in the window. With
    ``edge_q`` (GeV^2) the wrong pairs end at ``sqrt(edge_q - mu^2)`` (width
    ``edge_width``, GeV), like the kinematic edge ``sqrt(s - m_a^2)`` of the
    real spectrum, and follow phase space as the real ones do: before the
    edge cuts them, ``acc0 + acc1 * m`` times ``8 * 20 sigma * mu / edge^2``
    wrong pairs per truth-matched pair in the window (m_12^2 uniform up to
    the edge); the fraction in the window is what the edge leaves of them.
    """

    sigma0: float = 0.008
    sigma1: float = 0.009
    shift0: float = -0.002
    shift1: float = 0.0015
    alpha_l0: float = 1.1
    alpha_l1: float = 0.04
    alpha_r0: float = 1.7
    alpha_r1: float = -0.03
    n_l: float = 3.5
    n_r: float = 8.0
    comb0: float = 0.25
    comb1: float = -0.015
    slope0: float = -0.3
    slope1: float = 0.05
    eff0: float = 0.30
    eff1: float = 0.025
    eff2: float = -0.0015
    edge_q: float | None = None
    edge_width: float = 0.04
    acc0: float = 1.0
    acc1: float = 0.0
    extra: dict = field(default_factory=dict)

    def shape(self, m: float) -> SignalShape:
        base = SignalShape(
            mu=m + self.shift0 + self.shift1 * m,
            sigma=self.sigma0 + self.sigma1 * m,
            alpha_l=self.alpha_l0 + self.alpha_l1 * m,
            n_l=self.n_l,
            alpha_r=self.alpha_r0 + self.alpha_r1 * m,
            n_r=self.n_r,
            comb_fraction=float(np.clip(self.comb0 + self.comb1 * m, 0.0, 1.0)),
            comb_slope=float(np.clip(self.slope0 + self.slope1 * m, -1.0, 1.0)),
        )
        if self.edge_q is None:
            return base
        edge = float(np.sqrt(max(self.edge_q - base.mu**2, 0.0)))
        level = self.comb_level(m)
        lo, hi = base.window(base.comb_domain)
        with_edge = replace(base, comb_edge=edge, comb_edge_width=self.edge_width)
        e, w = with_edge.edge_in_domain_units()
        kept = float(comb_integral(-1.0, 1.0, base.comb_slope, e, w) / comb_integral(-1.0, 1.0, base.comb_slope))
        r = kept * level
        if r < 1e-12:
            return replace(base, comb_fraction=0.0)
        return replace(with_edge, comb_fraction=r / (1.0 + r))

    def comb_level(self, m: float) -> float:
        """Wrong pairs per truth-matched pair in the window before the edge cuts them."""
        if self.edge_q is None:
            f = float(np.clip(self.comb0 + self.comb1 * m, 0.0, 0.999))
            return f / (1.0 - f)
        mu, sigma = m + self.shift0 + self.shift1 * m, self.sigma0 + self.sigma1 * m
        return (self.acc0 + self.acc1 * m) * 8.0 * 20.0 * sigma * mu / max(self.edge_q - mu * mu, 1e-12)

    def efficiency(self, m: float | NDArray) -> float | NDArray:
        """True truth-matched efficiency (fraction of generated events with a TM candidate in the window)."""
        return self.eff0 + self.eff1 * m + self.eff2 * m * m


def generate_candidates(
    masses: Sequence[float],
    *,
    n_generated: int | Sequence[int] = 10_000,
    truth: TruthCurves | None = None,
    seed: int = 1,
    outside_width: float = 150.0,
) -> tuple[NDArray, NDArray, NDArray, dict[float, int]]:
    """Candidates at each generated mass, drawn from ``truth``.

    At each mass: ``Binomial(n_generated, efficiency)`` truth-matched
    candidates from the DSCB in the nominal window (mu +- 20 sigma), wrong
    pairs from the Chebyshev in the window with the true combinatorial
    fraction, continued beyond the window for ``outside_width`` sigma on each
    side at the density of the window edge (candidates a fit must ignore).
    The default continuation reaches past the range in which the calibration
    looks for a kinematic edge of the wrong pairs (``signal_models.edges``),
    so these synthetic wrong pairs have none.

    Returns
    -------
    mgg, truth_match, mc_ma : ndarray
        Candidate arrays (GeV, bool, GeV).
    n_generated : dict[float, int]
    """
    truth = truth or TruthCurves()
    rng = np.random.default_rng(seed)
    rng_far = np.random.default_rng([seed, 1])
    masses = [float(m) for m in masses]
    ngen_list = [int(n_generated)] * len(masses) if np.isscalar(n_generated) else [int(n) for n in n_generated]
    xs, tms, mas = [], [], []
    ngen: dict[float, int] = {}
    for m, n_gen in zip(masses, ngen_list, strict=True):
        shape = truth.shape(m)
        lo, hi = shape.window(20.0)
        n_tm = int(rng.binomial(n_gen, float(truth.efficiency(m))))
        f = shape.comb_fraction
        n_comb = int(rng.poisson(n_tm * f / (1.0 - f))) if f < 1 else 0
        tm_shape = SignalShape(shape.mu, shape.sigma, shape.alpha_l, shape.n_l, shape.alpha_r, shape.n_r)
        comb_shape = SignalShape(shape.mu, shape.sigma, shape.alpha_l, shape.n_l, shape.alpha_r, shape.n_r, comb_fraction=1.0, comb_slope=shape.comb_slope)
        x_tm = tm_shape.sample(n_tm, lo, hi, rng=rng)
        edged = truth.edge_q is not None
        if edged:
            # wrong pairs: the line with the edge in the window; outside it, the edge-free density
            # at the window boundaries times the step (so the edge shows wherever it is)
            comb_shape = replace(comb_shape, comb_edge=float(np.sqrt(max(truth.edge_q - shape.mu**2, 0.0))), comb_edge_width=truth.edge_width)
            free = replace(comb_shape, comb_edge=np.inf, comb_edge_width=0.0)
            density = free.comb_pdf(np.array([lo, hi]), lo, hi) * n_tm * truth.comb_level(m)
            x_comb = comb_shape.sample(n_comb, lo, hi, rng=rng) if n_comb else np.empty(0)
        else:
            x_comb = comb_shape.sample(n_comb, lo, hi, rng=rng)
            density = comb_shape.comb_pdf(np.array([lo, hi]), lo, hi) * n_comb
        # the first 10 sigma of the continuation from the main stream, the rest from its own
        # stream (so the candidates near the window do not depend on how far it reaches)
        near = min(outside_width, 10.0) * shape.sigma
        n_lo, n_hi = int(rng.poisson(density[0] * near)), int(rng.poisson(density[1] * near))
        x_out = [lo - rng.uniform(0, near, n_lo), hi + rng.uniform(0, near, n_hi)]
        far = max(outside_width - 10.0, 0.0) * shape.sigma
        if far > 0:
            n_lo, n_hi = int(rng_far.poisson(density[0] * far)), int(rng_far.poisson(density[1] * far))
            x_out += [lo - near - rng_far.uniform(0, far, n_lo), hi + near + rng_far.uniform(0, far, n_hi)]
        x_out = np.concatenate(x_out)
        if edged:
            x_out = x_out[rng_far.random(x_out.size) < edge_factor(x_out, comb_shape.comb_edge, truth.edge_width)]
        x = np.concatenate([x_tm, x_comb, x_out])
        tm = np.concatenate([np.ones(n_tm, bool), np.zeros(n_comb + x_out.size, bool)])
        xs.append(x)
        tms.append(tm)
        mas.append(np.full(x.size, m))
        ngen[m] = n_gen
    return np.concatenate(xs), np.concatenate(tms), np.concatenate(mas), ngen

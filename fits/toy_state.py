"""The state of one hypothesis while the toy engine runs (``fits.toy_runner``, ``fits.toy_stage``).

``HypothesisState`` holds a hypothesis' configuration of the current attempt
(positivity guard, signal cap, extra envelope backgrounds), its data fits,
envelope and POI values (``PoiState``: the data's ``q~`` and generator at that
value, and the toys' ``q~`` and log likelihood ratios appended stage by stage),
the cached background-only fits of its toys, and whether it asks for a restart,
has failed or has its result. Owned by one run; nothing else mutates it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import NDArray

from .densities import ShapeArrays
from .toy_cls import PoiToys, cls_replicates
from .toy_problem import HypothesisToys, ToyProblem
from .toy_sampling import Envelope
from .toy_sets import ToySets
from .toy_statistic import BaseFits

logger = logging.getLogger(__name__)

__all__ = ["RunConfig", "PoiState", "HypothesisState", "state_shapes", "state_windows"]


@dataclass(frozen=True)
class RunConfig:
    """How a hypothesis is run in one attempt."""

    attempt: int
    guarded: bool
    cap_factor: float
    extra_betas: tuple[tuple[float, ...], ...] = ()


class PoiState:
    """Toys of one POI value (appended stage by stage, toy index order)."""

    def __init__(self, x: float, q_obs: float, mu_gen: float, beta_gen: NDArray, u_gen: float, lam_gen: float) -> None:
        self.x, self.q_obs, self.mu_gen, self.beta_gen, self.u_gen, self.lam_gen = x, q_obs, mu_gen, beta_gen, u_gen, lam_gen
        self.parts: list[tuple[NDArray, NDArray, NDArray, NDArray]] = []
        self.n = 0
        self.decided = False

    def add(self, q_b: NDArray, l_b: NDArray, q_sb: NDArray, l_sb: NDArray) -> None:
        self.parts.append((q_b, l_b, q_sb, l_sb))
        self.n += len(q_b)

    def toys(self) -> PoiToys:
        cat = [np.concatenate([p[i] for p in self.parts]) if self.parts else np.zeros(0) for i in range(4)]
        return PoiToys(poi=self.x, q_obs=self.q_obs, q_b=cat[0], l_b=cat[1], q_sb=cat[2], l_sb=cat[3])


class HypothesisState:
    """One hypothesis during a run (owned by ``run_toys``)."""

    def __init__(self, problem: ToyProblem, config: RunConfig) -> None:
        self.problem = problem
        self.config = config
        self.key = problem.key + (config.attempt,)
        self.restart: RunConfig | None = None
        self.failed: str | None = None
        self.result: HypothesisToys | None = None
        self.pois: list[PoiState] = []
        self.n_fits = 0
        self.n_bad = 0
        self.n_rows = 0
        self.cache: BaseFits | None = None
        self.cache_n = 0
        # set by the setup
        self.data: ToySets | None = None
        self.data_base: BaseFits | None = None
        self.data_guarded = False
        self.beta0 = np.zeros(problem.order + 1)
        self.lam0 = 0.0
        self.cap = 0.0
        self.env: Envelope | None = None

    @property
    def active(self) -> bool:
        return self.restart is None and self.failed is None and self.result is None

    @property
    def alpha(self) -> float:
        return 1.0 - self.problem.cl

    def ask_restart(self, why: str, **changes: object) -> None:
        if self.active:
            logger.debug("m = %.6g GeV: toy attempt %d restarts (%s)", self.problem.shape.mu, self.config.attempt, why)
            self.restart = replace(self.config, attempt=self.config.attempt + 1, **changes)

    def fail(self, why: str) -> None:
        if self.active:
            self.failed = why

    def signal_c(self, x: NDArray, g: NDArray) -> tuple[NDArray, NDArray | None]:
        """Nominal signal yield (events) at POI values ``x`` for global observables ``g``, and the nuisance coefficients."""
        p = self.problem
        base = x * p.scale
        if p.syst_a <= 0:
            return base, None
        if p.syst_kind == "lognormal":
            return base * np.exp(p.syst_a * g), np.full(len(x), p.syst_a)
        f = np.maximum(1.0 + p.syst_a * g, 0.05)
        return base * f, p.syst_a / f

    def sorted_pois(self) -> list[PoiState]:
        """The POI values with toys, in increasing order."""
        return sorted((q for q in self.pois if q.n > 0), key=lambda q: q.x)

    def curves(self, v: NDArray) -> tuple[NDArray, NDArray]:
        """POI values (G,) and CLs (R, G, 6) for the replicate weights ``v``."""
        ps = self.sorted_pois()
        cls = np.stack([cls_replicates(q.toys(), v) for q in ps], axis=1)
        return np.array([q.x for q in ps]), cls


def state_shapes(states: Sequence[HypothesisState]) -> ShapeArrays:
    """The signal shapes of ``states`` as arrays."""
    return ShapeArrays.from_shapes([s.problem.shape for s in states])


def state_windows(states: Sequence[HypothesisState]) -> tuple[NDArray, NDArray]:
    """The windows (GeV) of ``states``: ``(lo, hi)``."""
    return np.array([s.problem.window[0] for s in states]), np.array([s.problem.window[1] for s in states])

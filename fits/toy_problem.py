"""Inputs, settings and results of the batched toy CLs engine (``fits.toy_runner``).

``ToyProblem``: one hypothesis (its data in the window, shape, background
order, POI scale and yield nuisance, asymptotic limits that start the POI
grid, random-number key); ``ToyOptions``: the engine's settings;
``HypothesisToys``: the result of one hypothesis (limits, Monte Carlo errors,
CLs curves).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from signal_models.shapes import SignalShape

from .toy_cls import N_CURVES
from .toy_sampling import hypothesis_key

__all__ = ["ToyOptions", "ToyProblem", "HypothesisToys", "problem_key"]


@dataclass(frozen=True)
class ToyOptions:
    """Settings of the toy CLs engine.

    Attributes
    ----------
    stages : tuple of int
        Toy counts after which the POI values are examined (then ``n_toys``).
    decide_z : float
        A POI value is decided when all six CLs values lie more than this many
        bootstrap errors from ``1 - cl``.
    grid_points : int
        Initial POI values (geometric, from half the smallest to 1.5 times the
        largest asymptotic limit).
    max_extensions : int
        POI values added per stage to bracket the crossings.
    bootstrap : int
        Bootstrap replicates of the Monte Carlo errors.
    envelope_margin : float
        Relative margin of the background envelope.
    cap_factor : float
        Signal layer up to this many times the largest initial POI value.
    slots : int
        Event slots per batch of fits (memory).
    guard_below : int
        Windows with fewer events use the positivity guard for every fit;
        elsewhere only toys whose compact fits fail (or with fewer events than
        parameters + 2) are fitted again with it.
    max_attempts : int
        Restarts of a hypothesis (guard, envelope, cap) before it is flagged.
    max_failed_fraction : float
        Largest fraction of toy fits not converged (with the guard) before the limit is flagged.
    """

    stages: tuple[int, ...] = (100, 250, 500)
    decide_z: float = 3.0
    grid_points: int = 10
    max_extensions: int = 12
    bootstrap: int = 40
    envelope_margin: float = 0.05
    cap_factor: float = 2.5
    slots: int = 2_000_000
    guard_below: int = 20
    max_attempts: int = 4
    max_failed_fraction: float = 0.01


@dataclass(frozen=True)
class ToyProblem:
    """One hypothesis for the toy engine.

    ``events``: the data masses in the window (GeV, sorted); ``scale``: signal
    events per POI unit; ``syst_a``: yield-nuisance coefficient (0: none;
    ``fits.nuisances.Syst.a``); ``start`` (6,): asymptotic observed limit and
    expected band in POI units (the initial grid; non-positive values are
    replaced by a guess from the number of events); ``key``: its random-number
    key; ``grid``: initial POI values instead of the grid from ``start``.
    """

    index: int
    shape: SignalShape
    window: tuple[float, float]
    events: NDArray
    order: int
    cl: float
    start: NDArray
    scale: float = 1.0
    syst_a: float = 0.0
    syst_kind: str = "lognormal"
    key: tuple[int, ...] = ()
    grid: NDArray | None = None


@dataclass(frozen=True)
class HypothesisToys:
    """Toy CLs result of one hypothesis (POI units).

    ``poi`` (G,), ``cls`` (G, 6) and ``cls_err`` (G, 6): the CLs curves (observed,
    then the band positions -2..+2) and their bootstrap errors; ``n_per_poi``
    (G,): toys per POI value; ``n_fits``: toy fits run.
    """

    observed: float
    observed_err: float
    expected: NDArray
    expected_err: NDArray
    n_toys: int
    converged: bool
    reason: str
    poi: NDArray = field(default_factory=lambda: np.zeros(0))
    cls: NDArray = field(default_factory=lambda: np.zeros((0, N_CURVES)))
    cls_err: NDArray = field(default_factory=lambda: np.zeros((0, N_CURVES)))
    n_per_poi: NDArray = field(default_factory=lambda: np.zeros(0, int))
    n_fits: int = 0
    guarded: bool = False

    @classmethod
    def failed(cls, reason: str, *, n_fits: int = 0, guarded: bool = False) -> HypothesisToys:
        return cls(0.0, 0.0, np.zeros(N_CURVES - 1), np.zeros(N_CURVES - 1), 0, False, reason, n_fits=n_fits, guarded=guarded)


def problem_key(shape: SignalShape, window: tuple[float, float]) -> tuple[int, ...]:
    """The random-number key of a hypothesis (``fits.toy_sampling.hypothesis_key`` without the attempt)."""
    return hypothesis_key(shape.mu, window[0], window[1])[:-1]

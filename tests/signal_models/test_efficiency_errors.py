"""The error of an efficiency that counts candidates when an event can give several (the wrong pairs near their edge)."""

from __future__ import annotations

import numpy as np

from signal_models.mass_fit import count_efficiency, grouped_count_error


def _sample(rng: np.random.Generator, n_events: int, probs: list[float]) -> np.ndarray:
    """Event index of every candidate: event i gives c_i candidates, c_i ~ probs over 0, 1, 2, 3."""
    counts = rng.choice(len(probs), size=n_events, p=probs)
    return np.repeat(np.arange(n_events), counts)


def test_grouped_error_is_the_spread_of_the_efficiency_over_repeated_samples() -> None:
    rng = np.random.default_rng(7)
    n_gen, probs = 4000, [0.45, 0.15, 0.25, 0.15]  # many events with 2-3 candidates
    effs = np.array([_sample(rng, n_gen, probs).size / n_gen for _ in range(2000)])
    spread = effs.std(ddof=1)  # known to ~1.6% (2000 samples)
    one = _sample(np.random.default_rng(8), n_gen, probs)
    grouped = grouped_count_error(one, n_gen)
    binomial = count_efficiency(one.size, n_gen)[1]
    assert abs(grouped / spread - 1) < 0.06, (grouped, spread)
    assert binomial < 0.75 * spread  # counting candidates as independent underestimates it


def test_one_candidate_per_event_gives_the_binomial_error() -> None:
    ids = np.arange(1200)
    assert grouped_count_error(ids, 4000) == count_efficiency(1200, 4000)[1]
    assert grouped_count_error(np.array([], dtype=int), 4000) == 1.0 / 4000  # at least one event's worth

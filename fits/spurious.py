"""Spurious-signal (background-model bias) test and the choice of the background order.

Signal + background is fitted to a high-statistics, signal-free background
sample (e.g. simulation) at every mass hypothesis, for each background order.
The fitted signal yield ``N_spur`` measures how far the polynomial is from
the true background shape.

Criterion (ATLAS practice, used by ``choose_bkg_order``): after scaling to
the data set (``N_spur * data_fraction``, where ``data_fraction`` = expected
data events / sample events), the spurious yield must stay below
``max_fraction`` (default 20%) of the statistical error of the signal yield
expected in data (``nsig_err * sqrt(data_fraction)``) at every tested mass.
The lowest passing order is chosen (fewest parameters, best sensitivity).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike, NDArray

from signal_models.shapes import SignalShape

from .hypotheses import evaluate_hypotheses

logger = logging.getLogger(__name__)

__all__ = ["SpuriousSignal", "spurious_signal", "choose_bkg_order"]


@dataclass(frozen=True)
class SpuriousSignal:
    """Spurious yields per background order (arrays over masses, GeV).

    ``nsig`` and ``nsig_err`` (events) are scaled to the data set; ``ratio`` =
    ``|nsig| / nsig_err`` (the quantity the criterion bounds).
    """

    mass: NDArray
    orders: list[int]
    nsig: dict[int, NDArray] = field(default_factory=dict)
    nsig_err: dict[int, NDArray] = field(default_factory=dict)
    ratio: dict[int, NDArray] = field(default_factory=dict)
    converged: dict[int, NDArray] = field(default_factory=dict)
    max_fraction: float = 0.2

    def passes(self, order: int) -> bool:
        """Whether every mass converged with ``|N_spur| / sigma_stat < max_fraction`` at this order."""
        ok = self.converged[order]
        return bool(np.all(ok) and np.max(self.ratio[order], initial=0.0) < self.max_fraction)

    def summary(self) -> dict[int, dict[str, float | bool]]:
        """Per order: the largest ratio, the largest |N_spur| (events) and whether it passes."""
        return {o: {"max_ratio": float(np.max(self.ratio[o], initial=0.0)), "max_abs_nsig": float(np.max(np.abs(self.nsig[o]), initial=0.0)), "passes": self.passes(o)} for o in self.orders}


def spurious_signal(
    mgg_background: ArrayLike,
    shapes: Sequence[SignalShape],
    windows: ArrayLike,
    *,
    orders: Sequence[int] = (1, 2, 3, 4, 5),
    data_fraction: float = 1.0,
    max_fraction: float = 0.2,
) -> SpuriousSignal:
    """Fit signal + background of each order to a signal-free sample at every hypothesis.

    Parameters
    ----------
    mgg_background : array
        High-statistics signal-free masses (GeV), unweighted.
    shapes, windows
        The hypotheses (as for ``evaluate_hypotheses``).
    orders : sequence of int
        Background orders to test.
    data_fraction : float
        Expected data events / sample events (luminosity ratio), to scale the
        yields and errors to the data set.
    max_fraction : float
        Criterion threshold on ``|N_spur| / sigma_stat``.
    """
    if data_fraction <= 0:
        raise ValueError(f"data_fraction must be > 0, got {data_fraction}")
    mass = np.array([s.mu for s in shapes])
    nsig: dict[int, NDArray] = {}
    nsig_err: dict[int, NDArray] = {}
    ratio: dict[int, NDArray] = {}
    converged: dict[int, NDArray] = {}
    for o in orders:
        t = evaluate_hypotheses(mgg_background, shapes, windows, bkg_order=o, limits=False, expected=False)
        n = t.nsig * data_fraction
        e = t.nsig_err * np.sqrt(data_fraction)
        nsig[o] = n
        nsig_err[o] = e
        ratio[o] = np.abs(n) / np.where(e > 0, e, np.inf)
        converged[o] = np.asarray(t.converged, bool)
        logger.info("order %d: max |N_spur|/sigma = %.3f", o, float(np.max(ratio[o], initial=0.0)))
    return SpuriousSignal(mass=mass, orders=list(orders), nsig=nsig, nsig_err=nsig_err, ratio=ratio, converged=converged, max_fraction=max_fraction)


def choose_bkg_order(result: SpuriousSignal) -> int:
    """Lowest background order passing the spurious-signal criterion.

    Raises ValueError (naming the best ratio reached) when none passes.
    """
    for o in sorted(result.orders):
        if result.passes(o):
            return o
    best = min(result.orders, key=lambda o: float(np.max(result.ratio[o], initial=np.inf)))
    raise ValueError(
        f"no background order in {sorted(result.orders)} passes |N_spur| < {result.max_fraction} sigma_stat; "
        f"best is order {best} with max ratio {float(np.max(result.ratio[best])):.3f}"
    )

"""Jobs and job results of a combined scan (frozen, picklable; results convert to and from JSON for checkpoints).

- ``CombinedBlockJob``: a block of mass hypotheses, each a combined fit of
  all datasets (``fits.CombinedRequest``), giving a ``CombinedBlockResult``
  (the fitted cross-section, local Z, CLs limits, per-dataset yields and
  background orders, post-fit nuisances);
- ``CombinedToyJob``: one background-only toy scan for the look-elsewhere
  effect, each dataset drawn from its own smooth background, giving a
  ``scans.jobs.ToyResult``.

Masses in GeV, the parameter of interest in pb.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

from fits.combined_rows import CombinedRequest
from fits.densities import ShapeArrays

from .combined_plan import CombinedPlan
from .jobs import json_number, read_bands, read_floats
from .lee import SmoothBackground

logger = logging.getLogger(__name__)

__all__ = ["CombinedSettings", "CombinedBlockJob", "CombinedToyJob", "CombinedBlockResult", "request_of", "combined_block_jobs",
           "combined_toy_jobs"]


@dataclass(frozen=True)
class CombinedSettings:
    """How every combined hypothesis is fitted.

    Attributes
    ----------
    cl : float
        Confidence level of the limits.
    method : {"fixed", "ftest", "spurious_signal", "envelope"}
        Background-model treatment (``background_model.method``).
    orders : tuple of int
        Candidate background orders (ftest, envelope).
    ftest_pvalue : float
    penalty : float
        Envelope penalty per background parameter (units of -2 ln L).
    order_fallback : bool
        Refit failed hypotheses with lower background orders.
    reference_xsec : float or None
        Blinded points: the cross-section (pb) whose median expected significance is reported.
    gof : bool
        Binned goodness-of-fit p-value of every fitted hypothesis (not for the envelope); blind points get
        the sideband-only test of their background-only fit (bins outside ``peak +- blind_n_sigma sigma``).
    blind_n_sigma : float
        Half-width of the signal region of blind points, in sigma(m).
    """

    cl: float
    method: str = "fixed"
    orders: tuple[int, ...] = (0, 1, 2, 3, 4)
    ftest_pvalue: float = 0.05
    penalty: float = 1.0
    order_fallback: bool = True
    reference_xsec: float | None = None
    gof: bool = False
    blind_n_sigma: float = 3.0

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> CombinedSettings:
        bm = config["background_model"]
        return cls(cl=config["cl"], method=bm["method"], orders=tuple(sorted(set(bm["orders"]))), ftest_pvalue=bm["ftest_pvalue"],
                   penalty=bm["penalty"], order_fallback=config["bkg_order_fallback"],
                   reference_xsec=config["blinding"]["reference_xsec_pb"], gof=config["gof"]["method"] != "none",
                   blind_n_sigma=config["blinding"]["signal_region_n_sigma"])


def _window_cover(x: NDArray, lo: NDArray, hi: NDArray, data_range: NDArray) -> NDArray:
    """The sorted candidates inside the data range that cover the windows [lo, hi]."""
    a = int(np.searchsorted(x, max(lo.min(), data_range[0]), side="left"))
    b = int(np.searchsorted(x, min(hi.max(), data_range[1]), side="right"))
    return x[a:b]


def request_of(plan: CombinedPlan, indices: Sequence[int] | NDArray, mgg: Sequence[NDArray]) -> CombinedRequest:
    """The combined request of the plan's points ``indices`` with each dataset's sorted candidates ``mgg`` (GeV)."""
    idx = np.asarray(indices, dtype=int)
    C = plan.n_channels
    lo, hi = plan.windows[idx, :, 0], plan.windows[idx, :, 1]
    k = len(idx)
    spur = plan.spurious_size[idx] if plan.spurious_size is not None else np.zeros((k, 0, C))
    return CombinedRequest(
        sorted_mgg=tuple(_window_cover(np.asarray(mgg[c]), lo[:, c], hi[:, c], plan.channel_ranges[c]) for c in range(C)),
        shapes=tuple(ShapeArrays.from_shapes([plan.shapes[c][i] for i in idx]) for c in range(C)),
        lo=np.ascontiguousarray(lo), hi=np.ascontiguousarray(hi), scale=plan.scale[idx].copy(), orders=plan.orders[idx].copy(),
        yield_coeff=plan.yield_coeff[idx].copy(), yield_lognormal=np.asarray(plan.yield_lognormal, bool),
        shape_kinds=plan.shape_kinds, shape_relative=plan.shape_relative,
        shape_widths=np.broadcast_to(plan.shape_widths, (k, *plan.shape_widths.shape)).copy(),
        spurious_size=spur.copy(), channel_names=plan.names, nuisance_names=plan.nuisance_names,
    )


@dataclass(frozen=True, eq=False)
class CombinedBlockJob:
    """A block of combined hypotheses of the observed scan; ``blinded`` (k,) marks the points fitted background-only."""

    request: CombinedRequest
    settings: CombinedSettings
    blinded: NDArray | None = None


@dataclass(frozen=True, eq=False)
class CombinedToyJob:
    """One background-only toy scan: each dataset drawn from its smooth background, all fitted points refitted.

    Attributes
    ----------
    backgrounds : tuple of SmoothBackground
        Per dataset, the spectrum its toy is drawn from.
    blocks : tuple of CombinedRequest
        The fitted points in blocks (their candidates are replaced by the toy's).
    seed, index : int
        Toy ``index`` uses ``lee.toy_seed(seed, index)``; the datasets are drawn in order from that generator.
    settings : CombinedSettings
    """

    backgrounds: tuple[SmoothBackground, ...]
    blocks: tuple[CombinedRequest, ...]
    seed: int
    index: int
    settings: CombinedSettings


def combined_block_jobs(plan: CombinedPlan, mgg: Sequence[NDArray], *, settings: CombinedSettings) -> list[CombinedBlockJob]:
    """One job per block of the plan, each with the candidates its windows need."""
    return [CombinedBlockJob(request=request_of(plan, idx, mgg), settings=settings,
                             blinded=None if plan.blinded is None else np.asarray(plan.blinded)[idx].copy()) for idx in plan.blocks]


def combined_toy_jobs(plan: CombinedPlan, backgrounds: Sequence[SmoothBackground], *, n_toys: int, seed: int,
                      settings: CombinedSettings) -> list[CombinedToyJob]:
    """``n_toys`` toy scans over the fitted points of the plan, in the plan's blocks."""
    empty = [np.zeros(0) for _ in plan.names]
    blocks = tuple(replace(request_of(plan, idx, empty)) for idx in plan.blocks)
    return [CombinedToyJob(backgrounds=tuple(backgrounds), blocks=blocks, seed=seed, index=t, settings=settings) for t in range(n_toys)]


#: per-point columns of a combined block result that hold one value per dataset
CHANNEL_COLUMNS = ("n_events", "channel_nsig", "channel_nbkg", "bkg_orders")


@dataclass(frozen=True)
class CombinedBlockResult:
    """Results of a block of combined hypotheses, one entry per hypothesis (cross-section in pb).

    Attributes
    ----------
    mu_hat, mu_err : tuple of float
        Fitted cross-section and its error (pb).
    z_local : tuple of float
    converged : tuple of bool
    reason : tuple of str
    ul_obs : tuple of float
        Observed CLs limit on the cross-section (pb).
    ul_exp : tuple of 5-tuples of float
        Expected limits (-2, -1, 0, +1, +2 sigma), pb.
    n_events, bkg_orders : tuple of tuples of int
        Per dataset: candidates in the window, background order.
    channel_nsig, channel_nbkg : tuple of tuples of float
        Per dataset: fitted signal and background events.
    nuisance_hat, nuisance_err : tuple of tuples of float
        Post-fit nuisances (units of their constraints) and errors.
    blinded : tuple of bool
        Points fitted background-only (their observed fields are NaN and never reported).
    z_reference : tuple of float
        Blinded points: median expected significance of the reference signal (NaN otherwise).
    gof_pvalue : tuple of float
        Goodness-of-fit p-value (NaN where not computed).
    """

    mu_hat: tuple[float, ...]
    mu_err: tuple[float, ...]
    z_local: tuple[float, ...]
    converged: tuple[bool, ...]
    reason: tuple[str, ...]
    ul_obs: tuple[float, ...]
    ul_exp: tuple[tuple[float, ...], ...]
    n_events: tuple[tuple[int, ...], ...]
    bkg_orders: tuple[tuple[int, ...], ...]
    channel_nsig: tuple[tuple[float, ...], ...]
    channel_nbkg: tuple[tuple[float, ...], ...]
    nuisance_hat: tuple[tuple[float, ...], ...]
    nuisance_err: tuple[tuple[float, ...], ...]
    blinded: tuple[bool, ...] = ()
    z_reference: tuple[float, ...] = ()
    gof_pvalue: tuple[float, ...] = ()

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CombinedBlockResult:
        ints = lambda rows: tuple(tuple(int(v) for v in r) for r in rows)  # noqa: E731
        return cls(
            mu_hat=read_floats(data["mu_hat"]), mu_err=read_floats(data["mu_err"]), z_local=read_floats(data["z_local"]),
            converged=tuple(bool(v) for v in data["converged"]), reason=tuple(str(v) for v in data["reason"]),
            ul_obs=read_floats(data["ul_obs"]), ul_exp=read_bands(data["ul_exp"]), n_events=ints(data["n_events"]),
            bkg_orders=ints(data["bkg_orders"]), channel_nsig=read_bands(data["channel_nsig"]), channel_nbkg=read_bands(data["channel_nbkg"]),
            nuisance_hat=read_bands(data["nuisance_hat"]), nuisance_err=read_bands(data["nuisance_err"]),
            blinded=tuple(bool(v) for v in data.get("blinded", [False] * len(data["converged"]))),
            z_reference=read_floats(data.get("z_reference", ["nan"] * len(data["converged"]))),
            gof_pvalue=read_floats(data.get("gof_pvalue", ["nan"] * len(data["converged"]))),
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in self.__dataclass_fields__:
            v = getattr(self, name)
            if name in ("converged", "reason", "blinded"):
                out[name] = list(v)
            elif name in ("n_events", "bkg_orders"):
                out[name] = [list(r) for r in v]
            else:
                out[name] = json_number(list(v) if not v or not isinstance(v[0], tuple) else [list(r) for r in v])
        return out

"""What crosses process boundaries in a scan: job payloads and job results (frozen, picklable dataclasses).

Two kinds of job, pickled to a local process pool or a Dask cluster and
run there by ``scans.worker``:

- ``BlockJob``: a block of consecutive mass hypotheses of the observed scan
  (fits, local Z, observed and expected CLs limits on N_sig and on the
  cross-section), giving a ``BlockResult``; ``block_jobs`` makes one per
  block of a ``ScanPlan``;
- ``ToyJob``: one background-only toy scan for the look-elsewhere effect
  (toy spectrum drawn from a smooth background with a seed of its own, local
  Z at every fitted point), giving a ``ToyResult``; ``toy_jobs`` makes them;
- ``ToyBatchJob``: ``TOYS_PER_JOB`` consecutive toy scans (the unit of work
  and of checkpointing of the scan driver's look-elsewhere toys; toy i is the
  same whichever batch holds it), giving a ``ToyBatchResult``;
  ``toy_batch_jobs`` makes them.

Toy scans are fitted as fine histograms in the scan's windows
(``scans.lee_batch``; bin width ``bin_fraction`` of sigma(m), default
``LEE_BIN_FRACTION``), or with ``bin_fraction=None`` by the unbinned fits of
the observed scan.

Results convert to and from JSON (``to_json`` / ``from_json``) for the
checkpoint files; JSON has no NaN, so non-finite numbers are written as the
strings ``"nan"``, ``"inf"``, ``"-inf"``. Masses in GeV, signal scales in
events per pb.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from signal_models import SignalShape

from .lee import SmoothBackground
from .plan import ScanPlan

logger = logging.getLogger(__name__)

__all__ = [
    "FitSettings",
    "Hypotheses",
    "BlockJob",
    "ToyJob",
    "ToyBatchJob",
    "BlockResult",
    "ToyResult",
    "ToyBatchResult",
    "hypotheses_of",
    "window_slice",
    "block_jobs",
    "toy_jobs",
    "toy_batch_jobs",
    "TOYS_PER_JOB",
    "LEE_BIN_FRACTION",
    "BLOCK_COLUMNS",
    "TOY_LIMIT_COLUMNS",
    "json_number",
    "read_floats",
    "read_bands",
]

#: columns of ``fits.HypothesisTable`` a block result keeps (in checkpoint order)
#: columns of toy limits (``fits.limit_methods.ToyHypothesisTable``) a block result keeps when limits come from toys
TOY_LIMIT_COLUMNS = ("limit_method", "ul_nsig_obs_err", "ul_nsig_exp_err", "ul_xsec_obs_err", "ul_xsec_exp_err")
#: toy scans per job of the scan driver's look-elsewhere toys (the checkpoint unit)
TOYS_PER_JOB = 25
#: bin width of the toy fits in units of the narrowest width of a window's shapes (``scans.lee_batch``)
LEE_BIN_FRACTION = 0.1
BLOCK_COLUMNS = ("n_events", "nsig", "nsig_err", "nbkg", "nll", "z_local", "converged", "reason",
                 "ul_nsig_obs", "ul_nsig_exp", "ul_xsec_obs", "ul_xsec_exp")


# ---------------------------------------------------------------------------
# payloads


@dataclass(frozen=True)
class FitSettings:
    """How every hypothesis is fitted.

    Attributes
    ----------
    bkg_order : int
        Order of the Chebyshev background polynomial.
    order_fallback : bool
        Refit failed hypotheses with lower background orders, down to 0.
    cl : float
        Confidence level of the upper limits (e.g. 0.95).
    engine : {"vectorised", "zfit"}
        Fit engine of ``fits.evaluate_hypotheses``.
    gof_method : {"binned", "anderson-darling", "none"}
        Goodness-of-fit test of every fitted window (``fits.goodness_of_fit``).
    gof_toys : int
        Calibration toys per window (0: asymptotic for binned, the default for Anderson-Darling).
    gof_seed : int
    limit_method : {"asymptotic", "toys", "auto"}
    toys, toy_seed : int
        Toys per hypothesis of toy limits and their seed.
    """

    bkg_order: int
    order_fallback: bool
    cl: float
    engine: str
    gof_method: str = "none"
    gof_toys: int = 0
    gof_seed: int = 777
    limit_method: str = "asymptotic"
    toys: int = 1000
    toy_seed: int = 0

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> FitSettings:
        """The settings of a completed scan configuration."""
        gof = config["gof"]
        return cls(bkg_order=config["bkg_order"], order_fallback=config["bkg_order_fallback"], cl=config["cl"], engine=config["engine"],
                   gof_method=gof["method"], gof_toys=gof["toys"], gof_seed=gof["seed"], limit_method=config["limits"]["method"],
                   toys=config["limits"]["toys"], toy_seed=config["limits"]["seed"])


@dataclass(frozen=True, eq=False)
class Hypotheses:
    """k mass hypotheses fitted together.

    Attributes
    ----------
    shapes : tuple of k SignalShape
        Signal shape per hypothesis (fixed in the fit).
    windows : (k, 2) float array, GeV
        Fit windows.
    extras : tuple of k tuples of SignalShape, or None
        Known peaks fitted as background templates per hypothesis (None: no
        hypothesis of the scan has any).
    scale : (k,) float array, events / pb, or None
        Signal scale (efficiency x luminosity) for cross-section limits.
    rel_unc : (k,) float array or None
        Relative uncertainty of ``scale`` (constrained nuisance).
    """

    shapes: tuple[SignalShape, ...]
    windows: NDArray[np.float64]
    extras: tuple[tuple[SignalShape, ...], ...] | None = None
    scale: NDArray[np.float64] | None = None
    rel_unc: NDArray[np.float64] | None = None

    def __len__(self) -> int:
        return len(self.shapes)

    def take(self, idx: NDArray[np.int64] | slice) -> Hypotheses:
        """The hypotheses ``idx`` (index array or slice), in that order."""
        pick = range(len(self))[idx] if isinstance(idx, slice) else idx
        return Hypotheses(
            shapes=tuple(self.shapes[i] for i in pick),
            windows=self.windows[idx],
            extras=None if self.extras is None else tuple(self.extras[i] for i in pick),
            scale=None if self.scale is None else self.scale[idx],
            rel_unc=None if self.rel_unc is None else self.rel_unc[idx],
        )


@dataclass(frozen=True, eq=False)
class BlockJob:
    """A block of hypotheses of the observed scan.

    Attributes
    ----------
    mgg : (n,) float array, GeV
        Sorted candidate masses covering the block's windows.
    hypotheses : Hypotheses
        With signal scales: cross-section limits are computed.
    fit : FitSettings
    """

    mgg: NDArray[np.float64]
    hypotheses: Hypotheses
    fit: FitSettings


@dataclass(frozen=True, eq=False)
class ToyJob:
    """One background-only toy scan of the look-elsewhere effect.

    Attributes
    ----------
    background : SmoothBackground
        Smooth M_gg spectrum the toy is drawn from (Poisson number of candidates).
    hypotheses : Hypotheses
        All fitted points of the scan (no signal scales: fits only).
    seed : int
        Scan seed; toy ``index`` uses ``lee.toy_seed(seed, index)``.
    index : int
        Toy number.
    block_size : int
        Hypotheses fitted together by the unbinned fits (as in the observed scan).
    fit : FitSettings
    bin_fraction : float or None
        Bin width of the binned toy fits in units of sigma(m) (``scans.lee_batch``); None: every
        hypothesis by the unbinned fits of the observed scan (the former path, ~30x slower).
    """

    background: SmoothBackground
    hypotheses: Hypotheses
    seed: int
    index: int
    block_size: int
    fit: FitSettings
    bin_fraction: float | None = LEE_BIN_FRACTION


@dataclass(frozen=True, eq=False)
class ToyBatchJob:
    """Background-only toy scans ``first .. first + count - 1`` of the look-elsewhere effect.

    Attributes as ``ToyJob``; toy ``i`` uses ``lee.toy_seed(seed, i)``, so its result does not
    depend on the batch that holds it.
    """

    background: SmoothBackground
    hypotheses: Hypotheses
    seed: int
    first: int
    count: int
    block_size: int
    fit: FitSettings
    bin_fraction: float | None = LEE_BIN_FRACTION


def hypotheses_of(plan: ScanPlan, indices: Sequence[int] | NDArray[np.int64], *, with_scale: bool) -> Hypotheses:
    """The plan's hypotheses at the grid ``indices`` (fitted points), optionally with their signal scales."""
    idx = np.asarray(indices, dtype=int)
    return Hypotheses(
        shapes=tuple(plan.shapes[i] for i in idx),
        windows=plan.windows[idx],
        extras=tuple(plan.extras[i] for i in idx) if plan.has_extras else None,
        scale=plan.scale[idx] if with_scale else None,
        rel_unc=plan.rel_unc[idx] if with_scale else None,
    )


def window_slice(mgg: NDArray[np.float64], windows: NDArray[np.float64]) -> slice:
    """The slice of the sorted masses ``mgg`` (GeV) that covers all ``windows`` (k, 2)."""
    a = int(np.searchsorted(mgg, windows[:, 0].min(), side="left"))
    b = int(np.searchsorted(mgg, windows[:, 1].max(), side="right"))
    return slice(a, b)


def block_jobs(plan: ScanPlan, mgg: NDArray[np.float64], *, fit: FitSettings) -> list[BlockJob]:
    """One job per block of the plan, each with the candidates its windows need.

    Parameters
    ----------
    plan : ScanPlan
    mgg : (n,) float array, GeV
        Sorted candidate masses.
    fit : FitSettings
    """
    jobs = []
    for idx in plan.blocks:
        hyps = hypotheses_of(plan, idx, with_scale=True)
        jobs.append(BlockJob(mgg=mgg[window_slice(mgg, hyps.windows)], hypotheses=hyps, fit=fit))
    return jobs


def toy_jobs(plan: ScanPlan, background: SmoothBackground, *, n_toys: int, seed: int, block_size: int, fit: FitSettings,
             bin_fraction: float | None = LEE_BIN_FRACTION) -> list[ToyJob]:
    """``n_toys`` toy scans over the fitted points of the plan, one job each.

    Parameters
    ----------
    plan : ScanPlan
    background : SmoothBackground
        Spectrum the toys are drawn from, normalised to the expected number of candidates.
    n_toys : int
    seed : int
        Scan seed of the toys.
    block_size : int
        Hypotheses fitted together by the unbinned fits.
    fit : FitSettings
    bin_fraction : float or None
        Bin width of the toy fits in units of sigma(m); None: unbinned fits.
    """
    hyps = hypotheses_of(plan, plan.fit_indices, with_scale=False)
    return [ToyJob(background=background, hypotheses=hyps, seed=seed, index=t, block_size=block_size, fit=fit, bin_fraction=bin_fraction)
            for t in range(n_toys)]


def toy_batch_jobs(plan: ScanPlan, background: SmoothBackground, *, n_toys: int, seed: int, block_size: int, fit: FitSettings,
                   per_job: int | None = None, bin_fraction: float | None = LEE_BIN_FRACTION) -> list[ToyBatchJob]:
    """``n_toys`` toy scans over the fitted points of the plan, ``per_job`` consecutive toys per job (the last may hold fewer).

    Parameters as ``toy_jobs``; ``per_job`` (default ``TOYS_PER_JOB``) fixes the checkpoint unit: a
    resumed scan needs the same value.
    """
    per_job = TOYS_PER_JOB if per_job is None else per_job
    if per_job < 1:
        raise ValueError(f"per_job: expected a positive number of toys, got {per_job}")
    hyps = hypotheses_of(plan, plan.fit_indices, with_scale=False)
    return [ToyBatchJob(background=background, hypotheses=hyps, seed=seed, first=a, count=min(per_job, n_toys - a), block_size=block_size, fit=fit,
                        bin_fraction=bin_fraction) for a in range(0, n_toys, per_job)]


# ---------------------------------------------------------------------------
# results


def json_number(v: Any) -> Any:
    """A number (or nested list) for JSON: non-finite values as the strings "nan", "inf", "-inf"."""
    if isinstance(v, (list, tuple)):
        return [json_number(x) for x in v]
    return v if math.isfinite(v) else repr(v)


def _number(v: Any) -> float:
    return float(v)  # also reads "nan", "inf", "-inf"


def read_floats(values: Sequence[Any]) -> tuple[float, ...]:
    """Floats from JSON values (also the strings "nan", "inf", "-inf")."""
    return tuple(_number(v) for v in values)


def read_bands(values: Sequence[Sequence[Any]]) -> tuple[tuple[float, ...], ...]:
    """Rows of floats from JSON (``read_floats`` per row)."""
    return tuple(read_floats(v) for v in values)


@dataclass(frozen=True)
class BlockResult:
    """Fit and limit results of a block, one entry per hypothesis.

    Attributes
    ----------
    n_events : tuple of int
        Candidates in the window.
    nsig, nsig_err : tuple of float
        Fitted signal yield and its uncertainty (events).
    nbkg, nll : tuple of float
        Fitted background yield (events) and the NLL at the minimum.
    z_local : tuple of float
        Signed local significance.
    converged : tuple of bool
    reason : tuple of str
        Why a fit failed ("" if it did not).
    ul_nsig_obs : tuple of float
        Observed upper limit on N_sig (events).
    ul_nsig_exp : tuple of 5-tuples of float
        Expected limits (-2, -1, 0, +1, +2 sigma), events.
    bkg_order : tuple of int
        Background order used (lower than configured after a fallback).
    ul_xsec_obs, ul_xsec_exp : tuples of float (pb), or None
        Cross-section limits with the signal-scale systematic (None when the
        engine gave none).
    gof_pvalue : tuple of float, or None
        Goodness-of-fit p-value of each window (NaN where it could not be computed; None: not asked for).
    limit_method : tuple of str, or None
        "asymptotic" or "toys" per hypothesis (None: all asymptotic).
    ul_nsig_obs_err, ul_xsec_obs_err : tuples of float, or None
        Monte Carlo errors of toy limits (0 for asymptotic ones).
    ul_nsig_exp_err, ul_xsec_exp_err : tuples of 5-tuples of float, or None
    """

    n_events: tuple[int, ...]
    nsig: tuple[float, ...]
    nsig_err: tuple[float, ...]
    nbkg: tuple[float, ...]
    nll: tuple[float, ...]
    z_local: tuple[float, ...]
    converged: tuple[bool, ...]
    reason: tuple[str, ...]
    ul_nsig_obs: tuple[float, ...]
    ul_nsig_exp: tuple[tuple[float, ...], ...]
    bkg_order: tuple[int, ...]
    ul_xsec_obs: tuple[float, ...] | None = None
    ul_xsec_exp: tuple[tuple[float, ...], ...] | None = None
    gof_pvalue: tuple[float, ...] | None = None
    limit_method: tuple[str, ...] | None = None
    ul_nsig_obs_err: tuple[float, ...] | None = None
    ul_nsig_exp_err: tuple[tuple[float, ...], ...] | None = None
    ul_xsec_obs_err: tuple[float, ...] | None = None
    ul_xsec_exp_err: tuple[tuple[float, ...], ...] | None = None

    @property
    def has_xsec(self) -> bool:
        """Whether the engine returned cross-section limits."""
        return self.ul_xsec_obs is not None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> BlockResult:
        """A result from its columns (``to_json`` output, or ``scans.worker.table_columns`` plus ``bkg_order``)."""
        return cls(
            n_events=tuple(int(v) for v in data["n_events"]),
            nsig=read_floats(data["nsig"]),
            nsig_err=read_floats(data["nsig_err"]),
            nbkg=read_floats(data["nbkg"]),
            nll=read_floats(data["nll"]),
            z_local=read_floats(data["z_local"]),
            converged=tuple(bool(v) for v in data["converged"]),
            reason=tuple(str(v) for v in data["reason"]),
            ul_nsig_obs=read_floats(data["ul_nsig_obs"]),
            ul_nsig_exp=read_bands(data["ul_nsig_exp"]),
            bkg_order=tuple(int(v) for v in data["bkg_order"]),
            ul_xsec_obs=read_floats(data["ul_xsec_obs"]) if data.get("ul_xsec_obs") is not None else None,
            ul_xsec_exp=read_bands(data["ul_xsec_exp"]) if data.get("ul_xsec_exp") is not None else None,
            gof_pvalue=read_floats(data["gof_pvalue"]) if data.get("gof_pvalue") is not None else None,
            limit_method=tuple(str(v) for v in data["limit_method"]) if data.get("limit_method") is not None else None,
            ul_nsig_obs_err=read_floats(data["ul_nsig_obs_err"]) if data.get("ul_nsig_obs_err") is not None else None,
            ul_nsig_exp_err=read_bands(data["ul_nsig_exp_err"]) if data.get("ul_nsig_exp_err") is not None else None,
            ul_xsec_obs_err=read_floats(data["ul_xsec_obs_err"]) if data.get("ul_xsec_obs_err") is not None else None,
            ul_xsec_exp_err=read_bands(data["ul_xsec_exp_err"]) if data.get("ul_xsec_exp_err") is not None else None,
        )

    def to_json(self) -> dict[str, Any]:
        """The columns as JSON-ready lists (non-finite numbers as strings)."""
        out: dict[str, Any] = {}
        for name in (*BLOCK_COLUMNS, "bkg_order", "gof_pvalue", *TOY_LIMIT_COLUMNS):
            value = getattr(self, name)
            if value is None:
                continue
            out[name] = list(value) if name in ("n_events", "converged", "reason", "bkg_order", "limit_method") else json_number(value)
        return out


@dataclass(frozen=True)
class ToyResult:
    """Local significances of one background-only toy scan.

    Attributes
    ----------
    z_local : tuple of float
        Signed local Z at every fitted point of the scan (0 where a toy fit failed).
    n_failed : int
        Toy fits that failed.
    n_candidates : int
        Candidates in the toy spectrum.
    n_refit : int
        Points the binned toy fits could not take, refitted by the unbinned fits (``scans.lee_batch``;
        0 without binning).
    """

    z_local: tuple[float, ...]
    n_failed: int
    n_candidates: int
    n_refit: int = 0

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ToyResult:
        """A result from its ``to_json`` form."""
        return cls(z_local=read_floats(data["z_local"]), n_failed=int(data["n_failed"]), n_candidates=int(data["n_candidates"]),
                   n_refit=int(data.get("n_refit", 0)))

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form (non-finite numbers as strings)."""
        out = {"z_local": json_number(self.z_local), "n_failed": self.n_failed, "n_candidates": self.n_candidates}
        return {**out, "n_refit": self.n_refit} if self.n_refit else out


@dataclass(frozen=True)
class ToyBatchResult:
    """The toy scans of a ``ToyBatchJob``.

    Attributes
    ----------
    first : int
        Number of the first toy.
    toys : tuple of ToyResult
        Toys ``first, first + 1, ...``.
    """

    first: int
    toys: tuple[ToyResult, ...]

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ToyBatchResult:
        """A result from its ``to_json`` form."""
        return cls(first=int(data["first"]), toys=tuple(ToyResult.from_json(t) for t in data["toys"]))

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form (non-finite numbers as strings)."""
        return {"first": self.first, "toys": [t.to_json() for t in self.toys]}

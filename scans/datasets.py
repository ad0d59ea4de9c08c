"""The datasets of a combined scan: candidates, signal model, luminosity, trigger efficiency and background order of each.

``datasets_from_config`` reads every dataset of a completed configuration
(its candidate files and signal model, paths relative to the configuration
file); without a ``datasets`` section the top-level ``inputs``,
``signal_model``, ``luminosity_fb`` and ``trigger_efficiency`` make one
dataset named ``data``. Per-dataset keys left null take the top-level value.
Everything is checked here, before any fit: missing files, a dataset
without candidates, an unreadable signal model, bad trigger tables.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .checkpoint import sha256_file
from .errors import ScanConfigError, ScanInputError
from .inputs import describe_signal_model, load_signal_model, read_candidates, resolve_path
from .plan import sorted_candidates
from .trigger import TriggerEfficiency, trigger_from_config

logger = logging.getLogger(__name__)

__all__ = ["Dataset", "datasets_from_config", "dataset_from_arrays", "IMPLICIT_NAME"]

#: name of the one dataset made from the top-level keys
IMPLICIT_NAME = "data"


@dataclass(frozen=True, eq=False)
class Dataset:
    """One dataset of a combined scan.

    Attributes
    ----------
    name : str
    mgg : (n,) float array, GeV
        Candidate masses, sorted, finite.
    signal_model : SignalModel-like
        ``shape(m)``, ``efficiency(m)`` (or ``efficiency_total``), optional uncertainties, ``mass_range``.
    luminosity_fb : float
        Integrated luminosity, fb^-1.
    luminosity_rel_unc : float
        Relative luminosity uncertainty (uncorrelated between datasets).
    trigger : TriggerEfficiency
    bkg_order : int
        Background order of this dataset (the fixed method; the starting point of the others).
    inputs : tuple of {"path", "sha256"}
        Input files (empty when the candidates came as an array).
    signal_model_source : dict or None
        ``{"path", "sha256"}`` of the signal model file, or ``{"analytic": parameters}``.
    """

    name: str
    mgg: NDArray[np.float64]
    signal_model: Any
    luminosity_fb: float
    luminosity_rel_unc: float
    trigger: TriggerEfficiency
    bkg_order: int
    inputs: tuple[dict[str, str], ...] = ()
    signal_model_source: dict[str, Any] | None = field(default=None)

    def describe(self) -> dict[str, Any]:
        """The dataset as recorded in the scan result (no candidate masses)."""
        return {
            "name": self.name,
            "n_candidates": int(self.mgg.size),
            "luminosity_fb": self.luminosity_fb,
            "luminosity_rel_unc": self.luminosity_rel_unc,
            "trigger_efficiency": self.trigger.to_json(),
            "bkg_order": self.bkg_order,
            "inputs": [dict(d) for d in self.inputs],
            "signal_model": self.signal_model_source,
        }


def _sorted_masses(mgg: ArrayLike, *, name: str) -> NDArray[np.float64]:
    out = sorted_candidates(mgg, what=f"dataset {name!r}: candidate masses")
    out.setflags(write=False)
    return out


def dataset_from_arrays(
    name: str,
    mgg: ArrayLike,
    signal_model: Any,
    *,
    luminosity_fb: float,
    luminosity_rel_unc: float = 0.0,
    trigger: TriggerEfficiency | None = None,
    bkg_order: int = 3,
    inputs: Sequence[Mapping[str, str]] = (),
    signal_model_source: Mapping[str, Any] | None = None,
) -> Dataset:
    """A dataset from candidate masses (GeV) and a signal model in memory (checked)."""
    if not (np.isfinite(luminosity_fb) and luminosity_fb > 0):
        raise ScanInputError(f"dataset {name!r}: luminosity_fb must be > 0, got {luminosity_fb}")
    if not (np.isfinite(luminosity_rel_unc) and luminosity_rel_unc >= 0):
        raise ScanInputError(f"dataset {name!r}: luminosity_rel_unc must be >= 0, got {luminosity_rel_unc}")
    if trigger is None:
        trigger = trigger_from_config(None)
    return Dataset(name=name, mgg=_sorted_masses(mgg, name=name), signal_model=signal_model, luminosity_fb=float(luminosity_fb),
                   luminosity_rel_unc=float(luminosity_rel_unc), trigger=trigger, bkg_order=int(bkg_order),
                   inputs=tuple({"path": str(d["path"]), "sha256": str(d["sha256"])} for d in inputs),
                   signal_model_source=None if signal_model_source is None else dict(signal_model_source))


def _read_inputs(section: Mapping[str, Any], *, base: Path, where: str) -> tuple[NDArray[np.float64], list[dict[str, str]]]:
    if section["kind"] != "candidates":
        raise ScanConfigError(f"{where}.kind: 'events' is read by the `bumphunt scan` command (event chain); here give candidate files")
    if section["selection"]["model"] is not None:
        raise ScanConfigError(f"{where}.selection.model: a selector is applied to raw ntuples; for candidate files give selection.branch")
    paths = [resolve_path(f, base) for f in section["files"]]
    if not paths:
        raise ScanConfigError(f"{where}.files: no input files given")
    for p in paths:
        if not p.is_file():
            raise ScanInputError(f"{p}: input file not found ({where}.files)")
    mgg = read_candidates(paths, tree=section["tree"] or "candidates", branch=section["branch"], aliases=section["aliases"],
                          selection_branch=section["selection"]["branch"], working_point=section["selection"]["working_point"])
    return mgg, [{"path": str(p.resolve()), "sha256": sha256_file(p)} for p in paths]


def _model(path: str | None, analytic: Mapping[str, Any], *, base: Path) -> tuple[Any, dict[str, Any]]:
    if path is None:
        model = load_signal_model(None, analytic)
        return model, describe_signal_model(model)
    p = resolve_path(path, base)
    return load_signal_model(p), {"path": str(p.resolve()), "sha256": sha256_file(p)}


def datasets_from_config(
    cfg: Mapping[str, Any],
    *,
    base: Path,
    mgg: ArrayLike | Mapping[str, ArrayLike] | None = None,
    signal_model: Any = None,
    signal_model_source: Mapping[str, Any] | None = None,
    inputs: Sequence[Mapping[str, str]] | None = None,
) -> tuple[Dataset, ...]:
    """Every dataset of a completed scan configuration, read and checked.

    Parameters
    ----------
    cfg : mapping
        Completed scan configuration.
    base : Path
        Directory relative paths are relative to (the configuration file's).
    mgg : array or mapping, optional
        Candidate masses (GeV) already read: one array for the implicit
        dataset, or dataset name -> array (the datasets' files are then only hashed).
    signal_model : optional
        Signal model of the implicit dataset, overriding the configuration.
    signal_model_source, inputs : optional
        How that model and those masses are recorded in the result.

    Raises
    ------
    ScanConfigError, ScanInputError
        Naming the dataset, key and value.
    """
    given = dict(mgg) if isinstance(mgg, Mapping) else ({} if mgg is None else {IMPLICIT_NAME: mgg})
    top_trigger = trigger_from_config(cfg["trigger_efficiency"], base=base, source="trigger_efficiency")
    sections = cfg["datasets"]
    if not sections:
        if IMPLICIT_NAME in given:
            x, recorded = given[IMPLICIT_NAME], list(inputs or [])
        else:
            x, recorded = _read_inputs(cfg["inputs"], base=base, where="inputs")
        if signal_model is None:
            signal_model, signal_model_source = _model(cfg["signal_model"], cfg["analytic_signal_model"], base=base)
        return (dataset_from_arrays(IMPLICIT_NAME, x, signal_model, luminosity_fb=cfg["luminosity_fb"],
                                    luminosity_rel_unc=cfg["luminosity_rel_unc"], trigger=top_trigger, bkg_order=cfg["bkg_order"],
                                    inputs=recorded, signal_model_source=signal_model_source),)
    unknown = [n for n in given if n not in [d["name"] for d in sections]]
    if unknown:
        raise ScanInputError(f"candidate masses given for unknown dataset {unknown[0]!r}; datasets are {[d['name'] for d in sections]}")
    out = []
    for i, d in enumerate(sections):
        where = f"datasets[{i}] ({d['name']})"
        if d["name"] in given:
            x = given[d["name"]]
            recorded = [{"path": str(resolve_path(f, base).resolve()), "sha256": sha256_file(resolve_path(f, base))}
                        for f in d["inputs"]["files"] if resolve_path(f, base).is_file()]
        else:
            x, recorded = _read_inputs(d["inputs"], base=base, where=f"{where}.inputs")
        model, source = _model(d["signal_model"], d["analytic_signal_model"] or cfg["analytic_signal_model"], base=base)
        trig = top_trigger if d["trigger_efficiency"] is None else trigger_from_config(
            d["trigger_efficiency"], base=base, source=f"{where}.trigger_efficiency")
        out.append(dataset_from_arrays(
            d["name"], x, model, luminosity_fb=d["luminosity_fb"],
            luminosity_rel_unc=cfg["luminosity_rel_unc"] if d["luminosity_rel_unc"] is None else d["luminosity_rel_unc"],
            trigger=trig, bkg_order=cfg["bkg_order"] if d["bkg_order"] is None else d["bkg_order"], inputs=recorded,
            signal_model_source=source,
        ))
    return tuple(out)

"""Running a scan from a configuration file; reading candidate files and results.

Paths in a configuration file (inputs, signal model) are relative to the
file's directory; the output directory is relative to the working directory.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from numpy.typing import NDArray

from .checkpoint import sha256_file
from .config import load_scan_config
from .config_datasets import is_combined
from .errors import ScanConfigError, ScanInputError
from .inputs import load_signal_model, read_candidates, resolve_inputs

logger = logging.getLogger(__name__)

__all__ = ["read_candidates", "load_signal_model", "run_config", "load_result", "resolve_inputs"]


def run_config(
    config: str | Path | Mapping[str, Any] | None,
    *,
    mgg: NDArray | None = None,
    input_paths: Sequence[str | Path] | None = None,
    signal_model: Any = None,
    out_dir: str | Path | None = None,
    resume: bool = False,
    dask: Any = None,
    workers: int | None = None,
    lee_toys: int | None = None,
    show_progress: bool | None = None,
    signal_model_source: Mapping[str, Any] | None = None,
    provenance: Mapping[str, Any] | None = None,
    unblind: bool = False,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Run the scan a configuration describes and write its outputs.

    Parameters
    ----------
    config : path, mapping or None
        Scan configuration.
    mgg : array or mapping, optional
        Candidate masses already read (e.g. by the CLI from raw events); the
        configuration's input files are then only hashed. With ``datasets``
        in the configuration: dataset name -> masses.
    signal_model : optional
        Signal model object overriding the configuration's ``signal_model``.
    out_dir : path, optional
        Output directory (default ``output.dir``).
    signal_model_source : mapping, optional
        Where an overriding ``signal_model`` came from (``{"path", "sha256"}``),
        recorded in the result.
    provenance : mapping, optional
        Merged over the configuration's ``provenance`` section and recorded in the result.
    unblind : bool
        With a ``blinding`` section: fit every point in full (``bumphunt scan --unblind``; recorded in the result).
    overwrite : bool
        Discard the finished blocks of an earlier scan in the output directory (``bumphunt scan --overwrite``).

    Everything is checked (configuration, files, mass ranges) before the scan starts.
    """
    from .driver import scan

    cfg = load_scan_config(config)
    base = Path(config).resolve().parent if isinstance(config, (str, Path)) else Path.cwd()
    if is_combined(cfg):
        from .combined_driver import scan_datasets
        from .datasets import datasets_from_config

        recorded = None if input_paths is None else [{"path": str(Path(p).resolve()), "sha256": sha256_file(p)} for p in input_paths]
        datasets = datasets_from_config(cfg, base=base, mgg=mgg, signal_model=signal_model, signal_model_source=signal_model_source,
                                        inputs=recorded)
        out = Path(out_dir) if out_dir is not None else Path(cfg["output"]["dir"])
        return scan_datasets(datasets, config=cfg, out_dir=out, resume=resume, workers=workers, dask=dask, lee_toys=lee_toys,
                             show_progress=show_progress, provenance={**cfg["provenance"], **dict(provenance or {})}, unblind=unblind,
                             overwrite=overwrite)
    paths = [Path(p) for p in input_paths] if input_paths is not None else resolve_inputs(cfg, base)
    for p in paths:
        if not p.is_file():
            raise ScanInputError(f"{p}: input file not found (inputs.files)")
    if mgg is None:
        if cfg["inputs"]["kind"] != "candidates":
            raise ScanConfigError(
                "inputs.kind: 'events': raw ntuples are read by the `bumphunt scan` command or bumphunt.chain.masses_for_scan_config "
                "(pre-selection, kinematic fit and selector), whose masses are then passed as mgg; scans.run_config itself reads only "
                "'candidates' files"
            )
        sel = cfg["inputs"]["selection"]
        if sel["model"] is not None:
            raise ScanConfigError(
                "inputs.selection.model: a selector is applied to raw ntuples (inputs.kind: events); for candidate files give "
                "selection.branch, a column with a stored selector output"
            )
        mgg = read_candidates(
            paths, tree=cfg["inputs"]["tree"] or "candidates", branch=cfg["inputs"]["branch"], aliases=cfg["inputs"]["aliases"],
            selection_branch=sel["branch"], working_point=sel["working_point"],
        )
    if signal_model is None:
        sm = cfg["signal_model"]
        sm_path = None if sm is None else ((base / sm) if not Path(sm).is_absolute() else Path(sm))
        signal_model = load_signal_model(sm_path, cfg["analytic_signal_model"])
        if sm_path is not None:
            signal_model_source = {"path": str(sm_path.resolve()), "sha256": sha256_file(sm_path)}
    inputs = [{"path": str(Path(p).resolve()), "sha256": sha256_file(p)} for p in paths]
    out = Path(out_dir) if out_dir is not None else Path(cfg["output"]["dir"])
    record = {**cfg["provenance"], **dict(provenance or {})}
    return scan(mgg, signal_model, config=cfg, inputs=inputs, out_dir=out, resume=resume, workers=workers, dask=dask,
                lee_toys=lee_toys, show_progress=show_progress, signal_model_source=signal_model_source, provenance=record, unblind=unblind,
                overwrite=overwrite)


def load_result(path: str | Path) -> dict[str, Any]:
    """Read a scan result JSON, checking that it has the expected top-level keys."""
    path = Path(path)
    if not path.is_file():
        raise ScanInputError(f"{path}: scan result file not found")
    try:
        result = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ScanInputError(f"{path}: not a JSON scan result ({exc})") from None
    missing = [k for k in ("points", "global", "luminosity_fb", "sqrt_s") if k not in result]
    if missing:
        raise ScanInputError(f"{path}: not a scan result, missing key(s) {', '.join(missing)}")
    return result

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

import numpy as np
from numpy.typing import NDArray

from .checkpoint import sha256_file
from .config import load_scan_config
from .errors import ScanConfigError, ScanInputError

logger = logging.getLogger(__name__)

__all__ = ["read_candidates", "load_signal_model", "run_config", "load_result", "resolve_inputs"]


def _read_one(path: Path, *, tree: str, columns: Sequence[str]) -> dict[str, NDArray]:
    suffix = path.suffix.lower()
    if suffix == ".root":
        import uproot

        try:
            f = uproot.open(path)
        except Exception as exc:  # uproot raises many types for damaged files
            raise ScanInputError(f"{path}: cannot be opened as a ROOT file ({exc})") from None
        with f:
            if tree not in f:
                raise ScanInputError(f"{path}: no tree {tree!r} (has: {', '.join(sorted({k.split(';')[0] for k in f.keys()}))})")
            t = f[tree]
            missing = [c for c in columns if c not in t.keys()]
            if missing:
                raise ScanInputError(f"{path}: tree {tree!r} has no branch {missing[0]!r} (has: {', '.join(t.keys())})")
            arrays = t.arrays(list(columns), library="np")
            return {c: np.asarray(arrays[c], dtype=float) for c in columns}
    if suffix == ".npy":
        if len(columns) > 1:
            raise ScanInputError(f"{path}: a .npy file holds one array (M_gg); a selection branch needs .npz, .csv or ROOT")
        return {columns[0]: np.load(path).astype(float)}
    if suffix == ".npz":
        with np.load(path) as data:
            missing = [c for c in columns if c not in data.files]
            if missing:
                raise ScanInputError(f"{path}: no array {missing[0]!r} (has: {', '.join(data.files)})")
            return {c: np.asarray(data[c], dtype=float) for c in columns}
    if suffix == ".csv":
        data = np.genfromtxt(path, delimiter=",", names=True)
        names = data.dtype.names or ()
        missing = [c for c in columns if c not in names]
        if missing:
            raise ScanInputError(f"{path}: no column {missing[0]!r} (has: {', '.join(names)})")
        return {c: np.atleast_1d(np.asarray(data[c], dtype=float)) for c in columns}
    raise ScanInputError(f"{path}: unknown file type {suffix!r}; expected .root, .npy, .npz or .csv")


def read_candidates(
    files: Sequence[str | Path],
    *,
    tree: str = "candidates",
    branch: str = "mgg",
    aliases: Mapping[str, str] | None = None,
    selection_branch: str | None = None,
    working_point: float = 0.6,
) -> NDArray[np.float64]:
    """M_gg (GeV) of selected candidates from ROOT, .npy, .npz or .csv files.

    Parameters
    ----------
    files : list of paths
    tree : str
        ROOT tree name.
    branch : str
        Branch / column / array with M_gg in GeV (``aliases`` may rename it).
    selection_branch : str, optional
        Column with a stored selector output; candidates with a value below
        ``working_point`` are dropped.

    Raises
    ------
    ScanInputError
        A file is missing, unreadable, or lacks the tree, branch or column (named).
    """
    if not files:
        raise ScanInputError("inputs.files: no input files given")
    aliases = dict(aliases or {})
    cols = [aliases.get(branch, branch)]
    if selection_branch:
        cols.append(aliases.get(selection_branch, selection_branch))
    out = []
    for f in files:
        path = Path(f)
        if not path.is_file():
            raise ScanInputError(f"{path}: input file not found")
        data = _read_one(path, tree=tree, columns=cols)
        mgg = data[cols[0]]
        if selection_branch:
            mgg = mgg[data[cols[1]] >= working_point]
        out.append(mgg)
    return np.concatenate(out)


def load_signal_model(path: str | Path | None, analytic: Mapping[str, Any] | None = None) -> Any:
    """A SignalModel from a file (``signal_models.SignalModel`` or an analytic model's JSON), or the analytic model."""
    from .testing import AnalyticSignalModel, analytic_signal_model

    if path is None:
        return analytic_signal_model(**dict(analytic or {}))
    path = Path(path)
    if not path.is_file():
        raise ScanInputError(f"{path}: signal model file not found")
    try:
        content = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        content = None
    if isinstance(content, dict) and content.get("kind") == "analytic":
        return AnalyticSignalModel.from_dict(content)
    from signal_models import SignalModel

    try:
        return SignalModel.load(path)
    except Exception as exc:  # report whatever the model loader found, naming the file
        raise ScanInputError(f"{path}: cannot load the signal model ({exc})") from None


def resolve_inputs(cfg: Mapping[str, Any], base: Path) -> list[Path]:
    """Input file paths of a configuration, relative to ``base``."""
    return [(base / f) if not Path(f).is_absolute() else Path(f) for f in cfg["inputs"]["files"]]


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
) -> dict[str, Any]:
    """Run the scan a configuration describes and write its outputs.

    Parameters
    ----------
    config : path, mapping or None
        Scan configuration.
    mgg : array, optional
        Candidate masses already read (e.g. by the CLI from raw events); the
        configuration's input files are then only hashed.
    signal_model : optional
        Signal model object overriding the configuration's ``signal_model``.
    out_dir : path, optional
        Output directory (default ``output.dir``).
    signal_model_source : mapping, optional
        Where an overriding ``signal_model`` came from (``{"path", "sha256"}``),
        recorded in the result.
    provenance : mapping, optional
        Merged over the configuration's ``provenance`` section and recorded in the result.

    Everything is checked (configuration, files, mass ranges) before the scan starts.
    """
    from .driver import scan

    cfg = load_scan_config(config)
    base = Path(config).resolve().parent if isinstance(config, (str, Path)) else Path.cwd()
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
                lee_toys=lee_toys, show_progress=show_progress, signal_model_source=signal_model_source, provenance=record)


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

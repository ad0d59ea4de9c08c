"""Reading a scan's inputs: candidate files (ROOT, .npy, .npz, .csv) and signal model files.

Paths in a configuration file are relative to the file's directory
(``resolve_inputs``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .errors import ScanInputError

logger = logging.getLogger(__name__)

__all__ = ["read_candidates", "load_signal_model", "describe_signal_model", "resolve_inputs", "resolve_path"]


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


def resolve_path(path: str | Path, base: Path) -> Path:
    """``path`` relative to ``base`` unless it is absolute."""
    return Path(path) if Path(path).is_absolute() else base / path


def resolve_inputs(cfg: Mapping[str, Any], base: Path) -> list[Path]:
    """Input file paths of a configuration (or of one dataset's section), relative to ``base``."""
    return [resolve_path(f, base) for f in cfg["inputs"]["files"]]


def describe_signal_model(model: Any) -> dict[str, Any]:
    """How a signal model handed over in memory is recorded in a scan result.

    Returns ``{"analytic": parameters}`` for an analytic model, the model's
    source file (``{"path", "sha256"}``) when it knows it, else ``{"object": type name}``.
    """
    import dataclasses

    from .checkpoint import sha256_file
    from .testing import AnalyticSignalModel

    if isinstance(model, AnalyticSignalModel):
        return {"analytic": json.loads(json.dumps(dataclasses.asdict(model)))}
    source = getattr(model, "source", None)
    if source is not None:
        return {"path": str(source), "sha256": sha256_file(source)}
    return {"object": type(model).__name__}

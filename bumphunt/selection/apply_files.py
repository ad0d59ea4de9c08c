"""Applying a trained selector to event files: read, build the diphoton candidates, evaluate, write.

``apply_to_files`` is what ``bumphunt selector apply`` runs. The output has
one row per diphoton candidate (``bumphunt.events.candidates.diphoton_candidates``)
with the network output ``punzi_net`` (in [0, 1]) and ``pass_punzi``
(output above the working point).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..events.candidates import diphoton_candidates
from .samples import load_samples
from .selector import PunziSelector

logger = logging.getLogger(__name__)

__all__ = ["AppliedSelection", "apply_to_files", "write_candidates"]


@dataclass(frozen=True)
class AppliedSelection:
    """Result of ``apply_to_files``.

    Attributes
    ----------
    path : Path
        The candidates file written.
    n_candidates, n_pass : int
        Candidates evaluated and candidates with ``punzi_net > threshold``.
    threshold : float
        The cut on the output used for ``pass_punzi``.
    """

    path: Path
    n_candidates: int
    n_pass: int
    threshold: float


def write_candidates(path: str | Path, candidates: Mapping[str, Any]) -> Path:
    """Write the one-dimensional candidate columns to ``path``: ``.npz``, else a ROOT file with tree ``candidates``.

    Boolean columns are stored as int8.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    cols = {k: (np.asarray(v).astype(np.int8) if np.asarray(v).dtype == bool else np.asarray(v)) for k, v in candidates.items()
            if np.asarray(v).ndim == 1}
    if path.suffix == ".npz":
        np.savez_compressed(path, **cols)
    else:
        import uproot

        with uproot.recreate(path) as f:
            f["candidates"] = cols
    return path


def apply_to_files(model: str | Path | PunziSelector, inputs: Sequence[str], *, out: str | Path,
                   threshold: float | None = None) -> AppliedSelection:
    """Evaluate a selector on input files and write the candidates with ``punzi_net`` and ``pass_punzi``.

    Parameters
    ----------
    model : path or PunziSelector
        Selector directory (``model.keras`` + ``metadata.json``) or a loaded selector.
    inputs : sequence of str
        Three-photon files or raw ntuples (globs allowed); pseudo-data
        included, signal files need no ``n_generated``.
    out : path
        Output file (``.npz`` or ROOT).
    threshold : float, optional
        Cut on the output for ``pass_punzi`` (default: the selector's working point).

    Raises
    ------
    InputError
        Not a selector directory, unreadable inputs or features.
    """
    sel = model if isinstance(model, PunziSelector) else PunziSelector.load(model)
    events, _, _ = load_samples(list(inputs), include_data=True, require_n_generated=False)
    beam = sel.beam
    cand = diphoton_candidates(events, beam=beam)
    y = sel.apply(cand, events, beam=beam)
    cut = sel.threshold if threshold is None else threshold
    cand["pass_punzi"] = y > cut
    path = write_candidates(out, cand)
    n_pass = int(np.sum(y > cut))
    logger.info("selector applied: %d candidates, %d pass punzi_net > %.3f -> %s", len(y), n_pass, cut, path)
    return AppliedSelection(path=path, n_candidates=len(y), n_pass=n_pass, threshold=float(cut))

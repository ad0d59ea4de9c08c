"""Three-photon files: the output of the pre-selection (and of the kinematic fit) as ROOT files.

The three-photon dict (the data contract between the stages) holds, per
event, arrays of shape (n,) (``event``, ``process``, ``weight``, ``mc_ma``,
``truth_*``, ``kinfit_chi2``, ...), (n, 3) per-photon arrays (``E``,
``theta``, ``phi``, ``time``, ``region``, ``mc_*``, ``fit_*``, ...) with the
photons sorted by energy, highest first, and (n, 3, 3, 3) covariances
(``cov``: each photon's 3x3 covariance of (E, theta, phi)).

``save_three_photon`` writes it in the event schema (``ngamma`` = 3, an empty
``track`` collection), so that ``read_events`` reads the file too;
``load_three_photon`` reads it back unchanged (same keys, values and dtypes).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError, SchemaError
from .files import corrupt_file_error, open_root_file
from .jagged import make_jagged_record
from .schema import COV_FIELDS, TREE_NAME
from .writer import write_events

__all__ = ["PHOTON_KEYS", "TRUTH_PHOTON_KEYS", "save_three_photon", "load_three_photon", "combine_three_photon"]

#: Per-photon keys of the three-photon dict (arrays of shape (n, 3)).
PHOTON_KEYS = ("E", "theta", "phi", "time", "region")
#: Per-photon truth keys, present for simulated samples.
TRUTH_PHOTON_KEYS = ("mc_E", "mc_theta", "mc_phi")

#: Matrix position (a, b) -> branch suffix of a covariance element (``EE``, ``Etheta``, ...).
_COV_NAMES = {(a, b): name[len("cov_"):] for name, a, b in COV_FIELDS}


def save_three_photon(path: str | Path, events: Mapping[str, np.ndarray], *, meta: Mapping[str, Any] | None = None) -> Path:
    """Write a three-photon dict to ROOT (tree ``events``).

    Arrays of shape (n,) become event branches; (n, 3) photon arrays become
    jagged ``gamma_<key>`` branches with ``ngamma`` = 3; (n, 3, 3, 3)
    covariances ``<key>`` become ``gamma_<key>_EE``, ``gamma_<key>_Etheta``, ...
    (for ``cov`` exactly the schema's ``gamma_cov_*``). An empty ``track``
    collection is written too, so ``bumphunt.events.read_events`` reads the file.

    Parameters
    ----------
    path : path
        Output file.
    events : mapping of str to numpy arrays
        The three-photon dict.
    meta : mapping, optional
        Sample metadata (``stage`` defaults to ``"preselected"``).

    Returns
    -------
    Path
        The file written.
    """
    n = None
    event_level: dict[str, np.ndarray] = {}
    photon: dict[str, np.ndarray] = {}
    for key, value in events.items():
        arr = np.asarray(value)
        if n is None:
            n = arr.shape[0]
        if arr.shape[:1] != (n,):
            raise InputError(f"save_three_photon: {key!r} has {arr.shape[0]} rows, expected {n}")
        if arr.ndim == 1:
            event_level[key] = arr
        elif arr.shape[1:] == (3,):
            photon[key] = arr.reshape(-1)
        elif arr.shape[1:] == (3, 3, 3):
            for (a, b), suffix in _COV_NAMES.items():
                photon[f"{key}_{suffix}"] = arr[:, :, a, b].reshape(-1)
        else:
            raise InputError(f"save_three_photon: {key!r} has shape {arr.shape}; expected (n,), (n, 3) or (n, 3, 3, 3)")
    n = n or 0
    if "E" not in photon:
        raise InputError("save_three_photon: the dict has no photon energies 'E'")
    g_off = np.arange(0, 3 * n + 1, 3, dtype=np.int64)
    out: dict[str, Any] = dict(event_level)
    out["gamma"] = make_jagged_record(g_off, photon)
    out["track"] = make_jagged_record(np.zeros(n + 1, dtype=np.int64), {
        "px": np.zeros(0), "py": np.zeros(0), "pz": np.zeros(0), "charge": np.zeros(0, dtype=np.int32),
        "dr": np.zeros(0), "dz": np.zeros(0)})
    meta = dict(meta or {})
    meta.setdefault("stage", "preselected")
    return write_events(path, out, meta=meta)


def load_three_photon(path: str | Path) -> dict[str, np.ndarray]:
    """Read a file written by ``save_three_photon`` back into the three-photon dict.

    Raises
    ------
    InputError
        Missing, truncated or corrupt file.
    SchemaError
        No ``events`` tree, or not a three-photon file (``ngamma`` missing or not 3).
    """
    path = Path(path)
    with open_root_file(path) as f:
        try:
            present = TREE_NAME in f
        except Exception as exc:
            raise corrupt_file_error(path, "cannot list the file's contents", exc) from None
        if not present:
            raise SchemaError(f"{path}: no tree {TREE_NAME!r}")
        try:
            tree = f[TREE_NAME]
            keys = [k for k in tree.keys() if k not in ("ntrack",) and not k.startswith("track_")]
        except Exception as exc:
            raise corrupt_file_error(path, f"cannot read tree {TREE_NAME!r}", exc) from None
        if "ngamma" not in keys:
            raise SchemaError(f"{path}: missing branch 'ngamma' (not a three-photon file)")
        try:
            arrays = {k: tree[k].array(library="ak") for k in keys}
        except Exception as exc:
            raise corrupt_file_error(path, "cannot read the three-photon branches", exc) from None
    import awkward as ak

    ngamma = ak.to_numpy(arrays.pop("ngamma"))
    if np.any(ngamma != 3):
        bad = int(np.flatnonzero(ngamma != 3)[0])
        raise SchemaError(f"{path}: branch 'ngamma' is {int(ngamma[bad])} in entry {bad}, a three-photon file has 3 everywhere")
    n = len(ngamma)
    out: dict[str, np.ndarray] = {}
    covs: dict[str, np.ndarray] = {}
    suffix_to_ab = {s: ab for ab, s in _COV_NAMES.items()}
    for key, arr in arrays.items():
        if key.startswith("gamma_"):
            flat = ak.to_numpy(ak.flatten(arr, axis=1)).reshape(n, 3)
            name = key[len("gamma_"):]
            base, _, suffix = name.rpartition("_")
            if suffix in suffix_to_ab and base:
                cov = covs.setdefault(base, np.zeros((n, 3, 3, 3)))
                a, b = suffix_to_ab[suffix]
                cov[:, :, a, b] = flat
                cov[:, :, b, a] = flat
            else:
                out[name] = flat
        else:
            out[key] = ak.to_numpy(arr)
    out.update(covs)
    return out


def combine_three_photon(parts: Iterable[Mapping[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Concatenate three-photon dicts (same keys) along the event axis; ``{}`` for no parts."""
    parts = list(parts)
    if not parts:
        return {}
    keys = list(parts[0])
    return {k: np.concatenate([np.asarray(p[k]) for p in parts]) for k in keys}

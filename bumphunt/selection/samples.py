"""Reading the signal and background samples of the selector into one three-photon dict."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

from ..errors import InputError, SchemaError
from ..kinematics import Beam

logger = logging.getLogger(__name__)

__all__ = ["Samples", "load_samples"]


class Samples(NamedTuple):
    """What ``load_samples`` read (a tuple, so ``events, n_gen, lumi = load_samples(...)`` unpacks it).

    Attributes
    ----------
    events : dict
        One three-photon dict of every sample.
    n_generated : dict
        Events generated per signal mass ``{m_a (GeV, rounded to 1e-6): N_gen}``.
    weight_lumi_fb : float or None
        Luminosity (fb^-1) the background weights are normalised to; None when
        no background file states it.
    """

    events: dict[str, NDArray]
    n_generated: dict[float, int]
    weight_lumi_fb: float | None


def load_samples(paths: Sequence[str], *, beam: Beam | None = None, include_data: bool = False,
                 require_n_generated: bool = True) -> Samples:
    """Read signal/background samples for the selector into one three-photon dict.

    Each path (glob patterns allowed) is a three-photon file written by
    ``bumphunt preselect`` or a raw ntuple (pre-selected on the fly). The
    sample metadata give ``N_gen`` of signal files (``mass`` and
    ``n_generated``) and the luminosity the weights are normalised to
    (``lumi_fb``); background weights of files with different ``lumi_fb`` are
    rescaled to the first one. Pseudo-data files (``process`` "data") are
    skipped unless ``include_data``. ``require_n_generated=False`` (applying
    a trained selector) accepts signal files without ``n_generated``.

    Returns
    -------
    Samples
        ``(events, n_generated, weight_lumi_fb)``.

    Raises
    ------
    InputError
        No file matches, no events at all, or a signal file without
        ``n_generated`` (when required) or with one number for several masses.
    """
    # reading ROOT files needs uproot: imported when samples are read, not with the package
    from ..events import combine_three_photon, expand_paths, load_three_photon, preselect, read_events, read_meta

    files = expand_paths(list(paths))
    if not files:
        raise InputError(f"no input files match {list(paths)}")
    parts: list[dict[str, NDArray]] = []
    n_gen: dict[float, int] = {}
    lumi_ref: float | None = None
    for path in files:
        try:
            meta = read_meta(path)
        except Exception:  # noqa: BLE001 - files without metadata are allowed
            meta = {}
        if meta.get("process") == "data" and not include_data:
            logger.warning("%s: pseudo-data sample skipped for training", path)
            continue
        try:
            ev = load_three_photon(path)
        except SchemaError:
            raw = read_events([path])
            ev, _ = preselect(raw, beam=beam)
        n = int(np.asarray(ev.get("E", np.zeros((0, 3)))).shape[0])
        if n == 0:
            logger.warning("%s: no events after pre-selection", path)
        proc = np.asarray(ev.get("process", np.zeros(0)))
        if n and np.any(proc == 0):
            masses = np.unique(np.round(np.asarray(ev["mc_ma"], dtype=float)[proc == 0], 6))
            if "n_generated" not in meta:
                if not require_n_generated:
                    parts.append(ev)
                    continue
                raise InputError(f"{path}: signal file without 'n_generated' in its metadata; give n_generated in the config")
            if isinstance(meta["n_generated"], Mapping):
                n_gen.update({round(float(k), 6): int(v) for k, v in meta["n_generated"].items()})
            elif masses.size == 1:
                n_gen[float(masses[0])] = int(meta["n_generated"])
            else:
                raise InputError(f"{path}: {masses.size} signal masses but one n_generated; give n_generated per mass in the config")
        elif n and "lumi_fb" in meta:
            lumi = float(meta["lumi_fb"])
            if lumi_ref is None:
                lumi_ref = lumi
            elif not np.isclose(lumi, lumi_ref):
                ev["weight"] = np.asarray(ev["weight"], dtype=float) * lumi_ref / lumi
        if n:
            parts.append(ev)
    if not parts:
        raise InputError(f"no events in {[str(f) for f in files]}")
    keys = set(parts[0])
    for p in parts[1:]:
        keys &= set(p)
    events = combine_three_photon([{k: p[k] for k in keys} for p in parts])
    return Samples(events, n_gen, lumi_ref)

"""Checkpoints of a running scan: one JSON file per finished block, written atomically.

A checkpoint directory holds ``manifest.json`` (hashes of configuration,
inputs and scan plan, see ``inputs_digest``, ``scans.config.config_hash``
and ``ScanPlan.digest``) and ``<kind>_<index>.json`` per finished job. Every
file is written to a temporary file in the same directory and moved into
place with ``os.replace``, so a killed scan leaves only complete files.
Floats go through JSON's shortest round-trip representation, so a result
assembled from checkpoints is bit-identical to one kept in memory.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .errors import CheckpointError

logger = logging.getLogger(__name__)

__all__ = ["atomic_write_text", "atomic_write_json", "sha256_file", "sha256_array", "inputs_digest", "CheckpointStore"]


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (temporary file + ``os.replace``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def atomic_write_json(path: str | Path, obj: Any, *, indent: int | None = None) -> Path:
    """Write ``obj`` as strict JSON (NaN and inf refused) atomically."""
    return atomic_write_text(path, json.dumps(obj, indent=indent, allow_nan=False) + "\n")


def sha256_file(path: str | Path, *, chunk: int = 1 << 20) -> str:
    """sha256 hex digest of a file's content."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while True:
            block = fh.read(chunk)
            if not block:
                break
            h.update(block)
    return h.hexdigest()


def sha256_array(a: Any) -> str:
    """sha256 of a numpy array's float64 bytes."""
    return hashlib.sha256(np.ascontiguousarray(a, dtype=np.float64).tobytes()).hexdigest()


def inputs_digest(mgg: Any, file_hashes: Sequence[str] | None) -> str:
    """sha256 identifying the input of a scan.

    Parameters
    ----------
    mgg : array, GeV
        Candidate masses as scanned (sorted).
    file_hashes : sequence of str or None
        sha256 of the input files (any order); None when the masses were
        given directly, then only the masses are hashed.
    """
    if file_hashes is None:
        return sha256_array(mgg)
    files = hashlib.sha256("".join(sorted(file_hashes)).encode()).hexdigest()
    return hashlib.sha256((files + sha256_array(mgg)).encode()).hexdigest()


class CheckpointStore:
    """Per-block results of one scan in a directory.

    Parameters
    ----------
    directory : path
        Checkpoint directory (created).
    hashes : mapping
        ``{"config": ..., "inputs": ..., "plan": ...}`` identifying the scan.
    resume : bool
        If True, keep finished blocks of a matching earlier run and refuse a
        directory made for another configuration or input; if False, remove
        the block files of any earlier run.
    """

    def __init__(self, directory: str | Path, hashes: Mapping[str, str], *, resume: bool) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.hashes = dict(hashes)
        manifest = self.directory / "manifest.json"
        if resume and manifest.exists():
            try:
                old = json.loads(manifest.read_text())
            except (OSError, json.JSONDecodeError) as exc:
                raise CheckpointError(f"{manifest}: unreadable checkpoint manifest ({exc})") from None
            differ = [k for k in self.hashes if old.get("hashes", {}).get(k) != self.hashes[k]]
            if differ:
                names = {"config": "configuration", "inputs": "input files", "plan": "scan plan (signal model / mass grid)"}
                raise CheckpointError(
                    f"{self.directory}: refusing to resume: the checkpoint was made with a different "
                    f"{' and '.join(names.get(k, k) for k in differ)}; remove the directory or run without --resume"
                )
            logger.info("resuming from %s", self.directory)
        else:
            if resume:
                logger.info("--resume: no checkpoint in %s, starting a new scan", self.directory)
            for old_file in self.directory.glob("*_*.json"):
                old_file.unlink()
        atomic_write_json(manifest, {"hashes": self.hashes}, indent=1)

    def path(self, kind: str, index: int) -> Path:
        """File of job ``index`` of ``kind``."""
        return self.directory / f"{kind}_{index:06d}.json"

    def done(self, kind: str) -> set[int]:
        """Indices of the finished blocks of ``kind``."""
        out = set()
        for p in self.directory.glob(f"{kind}_*.json"):
            try:
                out.add(int(p.stem.split("_")[-1]))
            except ValueError:
                continue
        return out

    def save(self, kind: str, index: int, data: Mapping[str, Any]) -> Path:
        """Write the result of job ``index`` of ``kind`` atomically (strict JSON)."""
        return atomic_write_json(self.path(kind, index), dict(data))

    def load(self, kind: str, index: int) -> dict[str, Any]:
        """Read the result of job ``index`` of ``kind``.

        Raises
        ------
        CheckpointError
            The file is unreadable or not JSON.
        """
        path = self.path(kind, index)
        try:
            return json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise CheckpointError(f"{path}: unreadable checkpoint block ({exc}); remove it and resume") from None

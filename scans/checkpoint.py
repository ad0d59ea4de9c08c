"""Checkpoints of a running scan: one JSON file per finished block, written atomically.

A checkpoint directory holds ``manifest.json`` (hashes of configuration,
inputs and scan plan, see ``inputs_digest``, ``scans.config.config_hash``
and ``ScanPlan.digest``) and ``<kind>_<index>.json`` per finished job. Every
file is written to a temporary file in the same directory and moved into
place with ``os.replace``, so a killed scan leaves only complete files (and
perhaps a temporary file, removed when the store is opened again). Files get
the permissions of the user's umask, like any other output. Each job file
carries a sha256 of its content and of the scan's hashes: a block whose
numbers were edited, or that was made for another scan, is refused with its
name. Floats go through JSON's shortest round-trip representation, so a
result assembled from checkpoints is bit-identical to one kept in memory.
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


def _umask() -> int:
    """The process umask (read without changing it where /proc allows)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)  # elsewhere: read by setting and restoring
    os.umask(mask)
    return mask


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (temporary file + ``os.replace``), with the permissions of the umask."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; outputs follow the umask like any open()
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
        directory made for another configuration or input.
    overwrite : bool
        Without ``resume``: discard the finished blocks of an earlier run
        (without it, a directory holding finished blocks is refused, so that
        no finished work is lost by mistake).
    """

    def __init__(self, directory: str | Path, hashes: Mapping[str, str], *, resume: bool, overwrite: bool = False) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.hashes = dict(hashes)
        for stale in self.directory.glob(".*.tmp"):  # left by a killed scan
            stale.unlink(missing_ok=True)
        manifest = self.directory / "manifest.json"
        finished = sorted(self.directory.glob("*_*.json"))
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
            elif finished and not overwrite:
                raise CheckpointError(
                    f"{self.directory}: holds {len(finished)} finished job(s) of an earlier scan; continue it with --resume, "
                    f"or discard them with --overwrite"
                )
            for old_file in finished:
                old_file.unlink()
        atomic_write_json(manifest, {"hashes": self.hashes}, indent=1)

    def _checksum(self, data: Mapping[str, Any]) -> str:
        blob = json.dumps({"hashes": self.hashes, "result": data}, sort_keys=True, allow_nan=False)
        return hashlib.sha256(blob.encode()).hexdigest()

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
        """Write the result of job ``index`` of ``kind`` atomically (strict JSON) with its checksum."""
        return atomic_write_json(self.path(kind, index), {"sha256": self._checksum(data), "result": dict(data)})

    def load(self, kind: str, index: int) -> dict[str, Any]:
        """Read the result of job ``index`` of ``kind``.

        Raises
        ------
        CheckpointError
            The file is unreadable or not JSON.
        """
        path = self.path(kind, index)
        try:
            content = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise CheckpointError(f"{path}: unreadable checkpoint block ({exc}); remove it and resume") from None
        if not isinstance(content, dict) or "sha256" not in content or "result" not in content:
            raise CheckpointError(f"{path}: not a checkpoint block of this bumphunt version (no checksum); remove it and resume")
        if content["sha256"] != self._checksum(content["result"]):
            raise CheckpointError(f"{path}: checksum mismatch: the block was edited or belongs to another scan; remove it and resume")
        return content["result"]
